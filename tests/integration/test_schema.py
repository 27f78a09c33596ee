"""The schema is pinned to the migrations: what `migrate` builds is what `tables.metadata` says.

Alembic's autogenerate comparison runs against this run's migrated database and must find no
difference in tables, columns, types, nullability, server defaults, indexes, unique constraints
and foreign keys. Each comparison is also run against a deliberately wrong copy of the metadata,
so a passing test means "no difference", not "the comparison looked at nothing".

Alembic does not compare the names of primary keys and foreign keys, nor sequences; the catalog
is listed for those (pg_constraint, pg_indexes, pg_class), and every constraint or index name the
code spells out (`ON CONFLICT ON CONSTRAINT pk_inbox`) must be one of them.
"""

from __future__ import annotations

import io
import re
import threading
import time
import tokenize
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    create_engine,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import DefaultClause

import psop_hub
from psop_hub.hub.migrator import downgrade, migrate
from psop_hub.hub.tables import metadata
from tests.conftest import fresh_database
from tests.integration.helpers import STORED_GRANTS


def differences(conn: Connection, target: MetaData) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match `target`."""
    context = MigrationContext.configure(
        conn,
        # compare_server_default: on PostgreSQL Alembic asks the server whether the two defaults
        # evaluate alike, so now() against now() or 0 against '0'::numeric compare reliably.
        opts={"compare_type": True, "compare_server_default": True},
    )
    return compare_metadata(context, target)


def test_the_migrations_build_what_the_metadata_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        assert differences(conn, metadata) == []


def _copy() -> MetaData:
    copy = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(copy)
    # Sequences are left out: Alembic does not compare them.
    return copy


def _default(copy: MetaData, table: str, column: str, value: Any) -> None:
    col = copy.tables[table].c[column]
    col.server_default = DefaultClause(value)
    col.server_default._set_parent(col)


def _drop_constraint(copy: MetaData, table: str, kind: type, name: str | None = None) -> None:
    t = copy.tables[table]
    found = [c for c in t.constraints if isinstance(c, kind) and (name is None or c.name == name)]
    assert len(found) == 1, found
    t.constraints.discard(found[0])


WRONG: dict[str, tuple[Callable[[MetaData], None], str]] = {
    "a longer varchar": (
        lambda m: setattr(m.tables["messages"].c.sender, "type", String(120)),
        "modify_type",
    ),
    "another numeric scale": (
        lambda m: setattr(m.tables["vouchers"].c.unit_value, "type", Numeric(14, 3)),
        "modify_type",
    ),
    "a timestamp without time zone": (
        lambda m: setattr(m.tables["messages"].c.sent_at, "type", DateTime()),
        "modify_type",
    ),
    "a nullable column made NOT NULL": (
        lambda m: setattr(m.tables["messages"].c.reference, "nullable", False),
        "modify_nullable",
    ),
    "another numeric default": (lambda m: _default(m, "messages", "attempts", text("1")), "modify_default"),
    "another text default": (lambda m: _default(m, "parties", "street", "x"), "modify_default"),
    "now() for clock_timestamp()": (lambda m: _default(m, "journey", "at", text("now()")), "modify_default"),
    "a missing column": (
        lambda m: m.tables["parties"]._columns.remove(m.tables["parties"].c.bic),
        "remove_column",
    ),
    "a missing index": (lambda m: m.tables["outbox"].indexes.clear(), "remove_index"),
    "a missing unique constraint": (
        lambda m: _drop_constraint(m, "settlements", UniqueConstraint, "uq_settlements_period"),
        "remove_constraint",
    ),
    "a missing foreign key": (
        lambda m: _drop_constraint(m, "settlement_rows", ForeignKeyConstraint),
        "remove_fk",
    ),
    "a missing table": (lambda m: m.remove(m.tables["files"]), "remove_table"),
}


def _operations(diff: list[Any]) -> set[str]:
    # A column's changes come as a list of tuples; everything else as one tuple.
    return {(d[0] if isinstance(d, list) else d)[0] for d in diff}


@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_the_comparison_reports_a_wrong_metadata(engine: Engine, wrong: str) -> None:
    change, operation = WRONG[wrong]
    copy = _copy()
    with engine.connect() as conn:
        assert differences(conn, copy) == []  # the copy itself is faithful
        change(copy)
        assert _operations(differences(conn, copy)) == {operation}


# What the catalog calls constraints, indexes and free-standing sequences (a serial's own sequence,
# such as journey_id_seq, belongs to its column and is not listed).
CATALOG = {
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype::text FROM pg_constraint
        WHERE connamespace = current_schema()::regnamespace AND contype IN ('p', 'u', 'f', 'c', 'x')
          AND conrelid <> 'alembic_version'::regclass
    """,
    "indexes": """
        SELECT tablename, indexname, '' FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename <> 'alembic_version'
    """,
    "sequences": """
        SELECT '', c.relname, '' FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'S'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
    """,
}
KINDS = {PrimaryKeyConstraint: "p", UniqueConstraint: "u", ForeignKeyConstraint: "f", CheckConstraint: "c"}


def catalog(conn: Connection) -> dict[str, set[tuple[str, str, str]]]:
    """The names in the database: (table, name, kind) per sort of object."""
    return {sort: {tuple(row) for row in conn.exec_driver_sql(sql)} for sort, sql in CATALOG.items()}


def named_in(target: MetaData) -> dict[str, set[tuple[str, str, str]]]:
    """The same names as `target` gives them (the naming convention applied)."""
    tables = target.tables.values()
    constraints = {(t.name, str(c.name), KINDS[type(c)]) for t in tables for c in t.constraints}
    # A primary key's or unique constraint's index carries the constraint's name.
    backing = {(t, name, "") for t, name, kind in constraints if kind in "pu"}
    indexes = {(t.name, str(i.name), "") for t in tables for i in t.indexes}
    return {
        "constraints": constraints,
        "indexes": indexes | backing,
        "sequences": {("", name, "") for name in target._sequences},
    }


def test_every_constraint_index_and_sequence_has_the_metadata_name(engine: Engine) -> None:
    with engine.connect() as conn:
        assert catalog(conn) == named_in(metadata)


PREDICATES = """
    SELECT c.relname, pg_get_expr(i.indpred, i.indrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = current_schema()::regnamespace AND i.indpred IS NOT NULL
"""


def predicates(conn: Connection) -> dict[str, str]:
    """Each partial index in the database and its predicate, as PostgreSQL prints it back."""
    return {name: predicate for name, predicate in conn.exec_driver_sql(PREDICATES)}


def predicates_in(conn: Connection, target: MetaData) -> dict[str, str]:
    """The same for `target`'s partial indexes, printed back by PostgreSQL after building each on
    an empty copy of its table (in a transaction rolled back), so that both sides read alike."""
    wanted = {
        i: t
        for t in target.tables.values()
        for i in t.indexes
        if i.dialect_options["postgresql"]["where"] is not None
    }
    out = {}
    with conn.begin_nested() as scratch:
        for k, (index, table) in enumerate(wanted.items()):
            where = index.dialect_options["postgresql"]["where"]
            copy = f"predicate_{k}"
            conn.exec_driver_sql(f"CREATE TEMP TABLE {copy} (LIKE {table.name})")
            columns = ", ".join(e.text if hasattr(e, "text") else e.name for e in index.expressions)
            conn.exec_driver_sql(f"CREATE INDEX {copy}_ix ON {copy} ({columns}) WHERE {where.text}")
            out[str(index.name)] = conn.exec_driver_sql(
                "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = %s::regclass",
                (f"{copy}_ix",),
            ).scalar_one()
        scratch.rollback()
    return out


def test_every_partial_index_has_the_metadata_predicate(engine: Engine) -> None:
    # Alembic's comparison does not look at an index's WHERE clause.
    with engine.connect() as conn:
        found = predicates(conn)
        assert found == predicates_in(conn, metadata)
    assert set(found) == {
        "ix_messages_waiting",
        "ix_messages_correlation",
        "ix_messages_provider_received",
        "ix_messages_event_id",
        "ix_messages_replay_of",
    }


def test_the_predicate_comparison_reports_a_wrong_metadata(engine: Engine) -> None:
    wrong = _copy()
    index = next(i for i in wrong.tables["messages"].indexes if i.name == "ix_messages_replay_of")
    index.dialect_options["postgresql"]["where"] = text("replay_of IS NULL")
    with engine.connect() as conn:
        found, expected = predicates(conn), predicates_in(conn, wrong)
    assert {k for k in found if found[k] != expected.get(k)} == {"ix_messages_replay_of"}


def test_migrations_started_at_once_both_succeed_one_after_the_other(run_id: str) -> None:
    with fresh_database(f"psop_test_{run_id}_twice") as url:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with ThreadPoolExecutor(2) as pool:
                reports = sorted(pool.map(lambda _: migrate(eng), range(2)), key=str)
            head = reports[1][1]
            # One built everything (including 0014's concurrent index builds); the other waited
            # for its lock, then found nothing to do. Neither waited for the other in a cycle.
            assert reports == [(head, head), (None, head)]
            with eng.connect() as conn:
                assert differences(conn, metadata) == []
                assert predicates(conn) == predicates_in(conn, metadata)
        finally:
            eng.dispose()


WRITE = """
INSERT INTO messages (hub_id, sender, message_id, type, sent_at, payload, payload_sha256, provider,
                      reference, channel, status)
VALUES (gen_random_uuid(), 'writer', %s, 'delivery.reported', now(), jsonb_build_object('event_id', %s::text),
        repeat('0', 64), '1572860-0', 'V-1', 'rest', 'accepted')
"""


def test_the_partial_indexes_are_built_while_the_hub_goes_on_writing(run_id: str) -> None:
    """0014 on a store of 100,000 messages while another session inserts messages: no insert ever
    waits for a lock (each would fail after 100 ms: a plain CREATE INDEX holds the table's write
    lock for its whole build), and what was written meanwhile is in the new indexes."""
    with fresh_database(f"psop_test_{run_id}_online") as url:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            migrate(eng)
            downgrade(eng, "0014-1")
            with eng.begin() as conn:
                conn.exec_driver_sql(STORED_GRANTS, (100_000,))
            done = threading.Event()
            written: list[str] = []

            def writer() -> None:
                with psycopg.connect(url, autocommit=True) as db:
                    db.execute("SET lock_timeout = '100ms'")
                    while not done.is_set() or len(written) < 20:
                        key = f"w-{len(written)}"
                        db.execute(WRITE, (key, key))
                        written.append(key)

            with ThreadPoolExecutor(1) as pool:
                writing = pool.submit(writer)
                try:
                    while len(written) < 5 and not writing.done():
                        time.sleep(0.01)
                    before = len(written)
                    assert migrate(eng) == ("0013", "0014")
                    during = len(written) - before
                finally:
                    done.set()
                writing.result(timeout=60)  # raises LockNotAvailable had an insert waited 100 ms
            assert during > 0
            with eng.connect() as conn:
                assert predicates(conn) == predicates_in(conn, metadata)
                conn.exec_driver_sql("SET enable_seqscan = off")
                explain = "EXPLAIN SELECT count(*) FROM messages WHERE payload ->> 'event_id' = %s"
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(explain, (written[0],)))
                assert "ix_messages_event_id" in plan
                found = conn.exec_driver_sql(
                    "SELECT count(*) FROM messages WHERE payload ->> 'event_id' = ANY(%s)", (written,)
                ).scalar_one()
            assert found == len(written)
        finally:
            eng.dispose()


def test_no_constraint_or_index_is_named_by_postgresql_defaults(engine: Engine) -> None:
    with engine.connect() as conn:
        found = catalog(conn)
    names = {name for sort in ("constraints", "indexes") for _, name, _ in found[sort]}
    assert {n for n in names if not re.match(r"(pk|uq|fk|ck|ix)_", n)} == set()


SOURCE = Path(psop_hub.__file__).parent
# The convention's names, and PostgreSQL's default names of the hub's tables' constraints.
CONVENTION_NAME = re.compile(r"\b(?:pk|uq|fk|ck|ix)_[a-z0-9_]+")
DEFAULT_NAME = re.compile(r"\b(?:" + "|".join(sorted(metadata.tables)) + r")_[a-z0-9_]*(?:pkey|fkey|key)\b")


def names_in_code() -> dict[str, set[str]]:
    """Constraint and index names spelled out in string literals (raw SQL, constraint names),
    outside the migrations, which must keep the names they created."""
    found: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        if "migrations" in path.relative_to(SOURCE).parts:
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        for token in tokens:
            if token.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)):
                for pattern in (CONVENTION_NAME, DEFAULT_NAME):
                    for name in pattern.findall(token.string):
                        found.setdefault(name, set()).add(str(path.relative_to(SOURCE)))
    return found


def test_every_name_the_code_uses_exists_in_the_database(engine: Engine) -> None:
    used = names_in_code()
    # The scan does see the raw SQL: the inbox claim and the message insert name their keys.
    assert "pk_inbox" in used and "uq_messages_sender_message_id" in used, used
    with engine.connect() as conn:
        known = {name for sort in catalog(conn).values() for _, name, _ in sort}
    assert {name: where for name, where in used.items() if name not in known} == {}


# The eleven constraints PostgreSQL named before 0006 renamed them (their indexes share the name).
DEFAULT_NAMES = {
    ("clients", "clients_pkey", "p"),
    ("clients", "clients_secret_sha256_key", "u"),
    ("messages", "messages_pkey", "p"),
    ("messages", "messages_replay_of_fkey", "f"),
    ("journey", "journey_pkey", "p"),
    ("outbox", "outbox_pkey", "p"),
    ("settlements", "settlements_pkey", "p"),
    ("settlements", "settlements_reference_key", "u"),
    ("settlement_items", "settlement_items_settlement_id_fkey", "f"),
    ("settlement_rows", "settlement_rows_settlement_id_fkey", "f"),
    ("parties", "parties_pkey", "p"),
}


# What 0007 adds (its indexes on messages too).
ADMIN_TABLES = {"audit_log", "replay_jobs", "replay_job_items"}
# What 0009 adds: the admin page's sessions.
SESSION_TABLES = {"admin_sessions"}
# What 0010 adds: the rate limit's windows (no index but its primary key).
RATE_TABLES = {"rate_windows"}
# What 0011 changes: client secrets move from clients.secret_sha256 (and its unique constraint)
# into a table of their own, with its index on the client.
SECRET_TABLES = {"client_secrets"}
SECRET_OPS = {"add_table", "add_index", "remove_constraint", "remove_column"}
# What 0012 adds: the file results' table (with an index), the waiting messages' index on
# messages, and the service month of a settlement row.
RESULT_TABLES = {"file_results"}
RESULT_INDEXES = {"file_results", "messages"}
RESULT_COLUMNS = {("settlement_rows", "service_month")}
RESULT_OPS = {"add_table", "add_index", "add_column"}
# What 0014 makes partial.
SPARSE_INDEXES = {
    "ix_messages_correlation",
    "ix_messages_provider_received",
    "ix_messages_event_id",
    "ix_messages_replay_of",
}
# What 0013 changes: clients.organiser (one business ID) becomes clients.organisers (an array).
ORGANISERS_OPS = {"add_column", "remove_column"}


def _columns(diff: list[Any], operation: str) -> set[tuple[str, str]]:
    return {(d[2], d[3].name) for d in diff if not isinstance(d, list) and d[0] == operation}


def _migrate_to(engine: Engine, revision: str) -> None:
    downgrade(engine, revision)


def test_the_migrations_go_down_and_up_again(run_id: str) -> None:
    with fresh_database(f"psop_test_{run_id}_schema") as url:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            migrate(eng)
            with eng.connect() as conn:
                assert differences(conn, metadata) == []
                assert catalog(conn) == named_in(metadata)
                partial = predicates(conn)

            # The revision before 0014 indexes every message by its sparse keys (no predicate).
            _migrate_to(eng, "0014-1")
            with eng.connect() as conn:
                assert differences(conn, metadata) == []
                assert catalog(conn) == named_in(metadata)
                assert set(partial) - set(predicates(conn)) == SPARSE_INDEXES
            migrate(eng)
            with eng.connect() as conn:
                assert predicates(conn) == partial == predicates_in(conn, metadata)

            # The revision before 0013 has clients.organiser instead of clients.organisers; its
            # clients keep their one organiser as an array of one, and a downgrade keeps the first.
            _migrate_to(eng, "0013-1")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == ORGANISERS_OPS
            assert _columns(diff, "add_column") == {("clients", "organisers")}
            assert _columns(diff, "remove_column") == {("clients", "organiser")}
            with eng.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO clients (name, role, organiser, provider) VALUES "
                        "('old-system', 'system', '2077474-0', NULL), ('old-provider', 'provider', NULL, "
                        "'1572860-0'), ('old-admin', 'admin', NULL, NULL)"
                    )
                )
            migrate(eng)
            with eng.begin() as conn:
                migrated = {
                    r.name: r.organisers for r in conn.execute(text("SELECT name, organisers FROM clients"))
                }
                assert migrated == {"old-system": ["2077474-0"], "old-provider": [], "old-admin": []}
                conn.execute(
                    text("UPDATE clients SET organisers = '{0201256-6,2077474-0}' WHERE name = 'old-system'")
                )
            _migrate_to(eng, "0013-1")
            with eng.begin() as conn:
                back = {
                    r.name: r.organiser for r in conn.execute(text("SELECT name, organiser FROM clients"))
                }
                assert back == {"old-system": "0201256-6", "old-provider": None, "old-admin": None}
                conn.execute(text("DELETE FROM clients"))

            # The revision before 0012 lacks exactly the file results, the waiting index and the
            # rows' service month (and has clients.organiser).
            _migrate_to(eng, "0012-1")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == RESULT_OPS | ORGANISERS_OPS
            assert {d[1].name for d in diff if d[0] == "add_table"} == RESULT_TABLES
            assert {d[1].table.name for d in diff if d[0] == "add_index"} == RESULT_INDEXES
            assert _columns(diff, "add_column") == RESULT_COLUMNS | {("clients", "organisers")}

            # The revision before 0011 lacks the secrets' table too and still has clients.secret_sha256.
            _migrate_to(eng, "0011-1")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == SECRET_OPS | RESULT_OPS
            assert {d[1].name for d in diff if d[0] == "add_table"} == SECRET_TABLES | RESULT_TABLES
            assert {d[1].table.name for d in diff if d[0] == "add_index"} == SECRET_TABLES | RESULT_INDEXES
            assert _columns(diff, "remove_column") == {("clients", "secret_sha256"), ("clients", "organiser")}
            assert _columns(diff, "add_column") == RESULT_COLUMNS | {("clients", "organisers")}

            # The revision before 0010 lacks the rate limit's table too.
            _migrate_to(eng, "0010-1")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == SECRET_OPS | RESULT_OPS
            assert {
                d[1].name for d in diff if d[0] == "add_table"
            } == RATE_TABLES | SECRET_TABLES | RESULT_TABLES

            # The revision before 0009 lacks the admin page's session table too.
            _migrate_to(eng, "0009-1")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == SECRET_OPS | RESULT_OPS
            assert {d[1].name for d in diff if d[0] == "add_table"} == (
                SESSION_TABLES | RATE_TABLES | SECRET_TABLES | RESULT_TABLES
            )
            assert {d[1].table.name for d in diff if d[0] == "add_index"} == (
                SESSION_TABLES | SECRET_TABLES | RESULT_INDEXES
            )

            # 0006's schema lacks exactly what 0007 (and 0009) add: the admin tables and search indexes.
            _migrate_to(eng, "0006")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
            assert _operations(diff) == SECRET_OPS | RESULT_OPS
            assert {
                d[1].name for d in diff if d[0] == "add_table"
            } == ADMIN_TABLES | SESSION_TABLES | RATE_TABLES | SECRET_TABLES | RESULT_TABLES
            assert {d[1].table.name for d in diff if d[0] == "add_index"} == {
                "messages",
                "audit_log",
                "replay_jobs",
                *SESSION_TABLES,
                *SECRET_TABLES,
                *RESULT_INDEXES,
            }

            # 0005's schema is what databases had before 0006: PostgreSQL's names, which both
            # the comparison (unique constraints) and the catalog listing (all of them) see.
            _migrate_to(eng, "0005")
            with eng.connect() as conn:
                diff = differences(conn, metadata)
                names = catalog(conn)
            assert _operations(diff) == {"add_constraint", *SECRET_OPS, *RESULT_OPS}
            assert names["constraints"] - named_in(metadata)["constraints"] == DEFAULT_NAMES

            _migrate_to(eng, "base")
            with eng.connect() as conn:
                assert catalog(conn) == {"constraints": set(), "indexes": set(), "sequences": set()}

            migrate(eng)
            with eng.connect() as conn:
                assert differences(conn, metadata) == []
                assert catalog(conn) == named_in(metadata)
        finally:
            eng.dispose()
