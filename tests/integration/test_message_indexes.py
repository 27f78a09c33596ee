"""The queries on the messages' sparse keys use their partial indexes (0014), as PostgreSQL plans
them for a store where most messages lack the key: 30,000 messages without any of them, 100
with each, analysed. The admin search (`q`, the provider filter), a message's replay copies, the
file results' copies of replaced records and the purge's check for copies are run for real, their
statements captured and explained with their own parameters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from psop_hub.adapters.results import ENTRIES, record_pending
from psop_hub.hub.migrator import migrate
from psop_hub.hub.purge import CANDIDATES, RESOLVED
from psop_hub.hub.search import MessageFilter, load_detail, search_in
from tests.conftest import fresh_database
from tests.integration.helpers import STORED_GRANTS

# 100 each with a correlation_id, a provider and an event_id, and 100 copies of replays.
KEYED = """
INSERT INTO messages (hub_id, sender, message_id, type, sent_at, correlation_id, payload, payload_sha256,
                      organiser, provider, reference, channel, status, replay_of)
SELECT gen_random_uuid(), 'provider', 'k-' || g, 'delivery.reported', now(), 'corr-' || g,
       jsonb_build_object('event_id', 'E-' || g), repeat('0', 64), '2077474-0', '1572860-' || mod(g, 10),
       'V-' || g, 'rest', 'applied',
       (SELECT hub_id FROM messages WHERE message_id = 'm-' || g)
FROM generate_series(1, 100) g
"""


@pytest.fixture(scope="module")
def store(run_id: str) -> Iterator[Engine]:
    with fresh_database(f"psop_test_{run_id}_indexes") as url:
        eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            migrate(eng)
            with eng.begin() as conn:
                conn.exec_driver_sql(STORED_GRANTS, (30_000,))
                conn.exec_driver_sql(KEYED)
            with eng.connect() as conn:
                conn.exec_driver_sql("COMMIT")
                conn.exec_driver_sql("ANALYZE messages")
            yield eng
        finally:
            eng.dispose()


def _indexes(plan: dict[str, Any]) -> set[str]:
    """Every index a plan scans; a sequential scan of messages shows as 'Seq Scan messages'."""
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    if plan.get("Node Type") == "Seq Scan":
        found.add(f"Seq Scan {plan['Relation Name']}")
    for child in plan.get("Plans", []):
        found |= _indexes(child)
    return found


def _explained(conn: Connection, statement: str, parameters: Any) -> set[str]:
    row = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
    plans = row if isinstance(row, list) else json.loads(row)
    return _indexes(plans[0]["Plan"])


def _captured(store: Engine, run: Any) -> list[tuple[str, Any]]:
    """The statements `run(conn)` sends, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    with store.connect() as conn:
        event.listen(conn, "before_cursor_execute", capture)
        try:
            run(conn)
        finally:
            event.remove(conn, "before_cursor_execute", capture)
    return seen


def _value(store: Engine, sql: str) -> Any:
    with store.connect() as conn:
        return conn.exec_driver_sql(sql).scalar_one()


def _used(store: Engine, run: Any) -> set[str]:
    statements = _captured(store, run)
    assert statements
    with store.connect() as conn:
        return set().union(*(_explained(conn, s, p) for s, p in statements))


@pytest.mark.parametrize(
    ("q", "index"),
    [("corr-7", "ix_messages_correlation"), ("E-7", "ix_messages_event_id")],
)
def test_the_search_for_a_key_uses_its_partial_index(store: Engine, q: str, index: str) -> None:
    used = _used(store, lambda conn: search_in(conn, MessageFilter(q=q), counts=True))
    assert index in used
    assert "Seq Scan messages" not in used


def test_the_provider_filter_uses_its_partial_index(store: Engine) -> None:
    used = _used(store, lambda conn: search_in(conn, MessageFilter(provider="1572860-7")))
    assert "ix_messages_provider_received" in used
    assert "Seq Scan messages" not in used


def test_a_messages_replay_copies_are_found_by_the_partial_index(store: Engine) -> None:
    original = uuid.UUID(str(_value(store, "SELECT replay_of FROM messages WHERE message_id = 'k-7'")))
    used = _used(store, lambda conn: load_detail(conn, original))
    assert "ix_messages_replay_of" in used
    assert "Seq Scan messages" not in used


def test_the_copies_of_replaced_records_use_the_partial_index(store: Engine) -> None:
    sql = "SELECT replay_of FROM messages WHERE message_id = 'k-{}'"
    originals = [str(_value(store, sql.format(k))) for k in (1, 2)]
    key = {"sender": "provider", "receipt": "toteumat.csv.receipt.json"}
    listed = [
        {"record": n, "line": n + 1, "message_id": f"m-{n}", "hub_id": hub_id, "duplicate": False}
        for n, hub_id in enumerate(originals, start=1)
    ]
    with store.begin() as conn:
        body = {"file": "toteumat.csv", "sha256": "0" * 64, "records": 2, "rejected": [], "messages": listed}
        record_pending(conn, Path("/data"), key["sender"], key["receipt"], body)
    with store.connect() as conn:
        used = _explained(conn, ENTRIES, key)
    assert "ix_messages_replay_of" in used
    assert "Seq Scan messages" not in used


def test_the_purge_looks_for_copies_by_the_partial_index(store: Engine) -> None:
    with store.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # the outer scan is of every old message
        used = _explained(conn, CANDIDATES, {"cutoff": "2999-01-01", "resolved": list(RESOLVED)})
    assert "ix_messages_replay_of" in used
