"""The audit log (hub.audit) against the real database: append-only for the hub's own role (a
trigger refuses UPDATE, DELETE and TRUNCATE, and the grants are revoked), newest first with its
filters, CSV export with HETUs masked, and reading or exporting it is audited too."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from psop_hub.hub import audit
from tests.messages import HETU, uid


def _write(engine: Engine, actor: str, action: str, **kw: object) -> None:
    with engine.begin() as conn:
        audit.record(conn, actor, action, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET reason = 'nothing happened'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_hubs_role_cannot_change_or_remove_audit_rows(engine: Engine, statement: str) -> None:
    _write(engine, "admin-anna", audit.MESSAGE_READ, reason="kept")
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), max(id) FROM audit_log")).one()
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "append-only" in str(caught.value.orig)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(id) FROM audit_log")).one() == before


def test_the_grants_to_change_audit_rows_are_revoked(engine: Engine) -> None:
    with engine.connect() as conn:
        owner, acl = conn.execute(
            text("SELECT pg_get_userbyid(relowner), relacl::text FROM pg_class WHERE relname = 'audit_log'")
        ).one()
    # e.g. {root=arxtm/root}: the owner (the role that migrated, the hub's) keeps insert and select only
    grants = dict(item.split("/")[0].split("=") for item in acl.strip("{}").split(","))
    assert set("wdD") & set(grants[owner]) == set()
    assert "a" in grants[owner] and "r" in grants[owner]
    assert "" not in grants  # nothing granted to PUBLIC


def test_entries_newest_first_filtered_and_exported_as_csv(engine: Engine) -> None:
    who = uid("admin")
    hub_id = uuid.uuid4()
    _write(engine, who, audit.MESSAGE_READ, hub_ids=[hub_id], reason=f"client {HETU} asked")
    _write(engine, who, audit.MESSAGE_REPLAY_EDITED, hub_ids=[hub_id], detail={"before": {"hetu": HETU}})
    _write(engine, uid("someone-else"), audit.MESSAGE_READ, hub_ids=[hub_id])
    page = audit.audit_entries(engine, "auditor", actor=who)
    assert [e.action for e in page.entries] == [audit.MESSAGE_REPLAY_EDITED, audit.MESSAGE_READ]
    assert page.total == 2
    body = str(page.to_json())
    assert HETU not in body and "131052-****" in body
    first = page.entries[-1].at
    assert [e.action for e in audit.audit_entries(engine, "auditor", actor=who, since=first).entries] == [
        audit.MESSAGE_REPLAY_EDITED,
        audit.MESSAGE_READ,
    ]
    assert audit.audit_entries(engine, "auditor", actor=who, since=first + timedelta(days=1)).total == 0
    assert audit.audit_entries(engine, "auditor", hub_id=hub_id).total == 3

    exported = audit.export_csv(engine, "auditor", actor=who)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["action"] for r in rows] == [audit.MESSAGE_REPLAY_EDITED, audit.MESSAGE_READ]
    assert rows[1]["hub_ids"] == str(hub_id) and HETU not in exported
    # the reads and the export are on record themselves
    mine = audit.audit_entries(engine, "someone", actor="auditor", limit=10).entries
    assert mine[0].action == audit.AUDIT_EXPORT and mine[0].detail == {"filter": {"actor": who}}
    assert audit.AUDIT_READ in {e.action for e in mine}
