"""The schema is pinned to the migrations: what `migrate` builds is what `tables.metadata` says.

Alembic's autogenerate comparison runs against this run's migrated database and must find no
difference in tables, columns, types, nullability, server defaults, indexes, unique constraints
and foreign keys. Each comparison is also run against a deliberately wrong copy of the metadata,
so a passing test means "no difference", not "the comparison looked at nothing".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import DateTime, ForeignKeyConstraint, MetaData, Numeric, String, UniqueConstraint, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import DefaultClause

from psop_hub.hub.tables import metadata


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
