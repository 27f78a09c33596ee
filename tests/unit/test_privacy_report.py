"""The privacy inventory is kept true: every table of the hub is in it, with columns that exist,
and what it says of RabbitMQ (hub_ids only) holds in the code. File retention removes only what
is older than the setting."""

from __future__ import annotations

import ast
import os
import time
from datetime import date, timedelta
from pathlib import Path

import psop_hub
from psop_hub.adapters.fileretention import remove_old_files
from psop_hub.hub.privacyreport import PLACES
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import metadata
from psop_hub.hub.topology import apply_request

PACKAGE = Path(psop_hub.__file__).resolve().parent
DOCS = PACKAGE.parent / "docs" / "privacy.md"


def test_every_table_is_in_the_inventory_with_columns_that_exist() -> None:
    listed = {p.name: p for p in PLACES if p.kind == "table"}
    assert set(listed) == set(metadata.tables), set(listed) ^ set(metadata.tables)
    for name, place in listed.items():
        columns = set(metadata.tables[name].columns.keys())
        assert set(place.columns) <= columns, (name, set(place.columns) - columns)


def test_every_column_that_holds_a_hetu_is_listed_as_such() -> None:
    hetu_columns = {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.columns
        if "hetu" in column.name
    }
    listed = {(p.name, c) for p in PLACES if p.personal == "HETU" for c in p.columns}
    assert hetu_columns and hetu_columns <= listed, hetu_columns - listed


def test_the_docs_name_every_place_and_the_retention_setting() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for place in PLACES:
        if place.kind in ("table", "folder"):
            assert place.name.split("<")[0] in text, place.name
    assert "HUB_RETENTION_DAYS" in text and "hub privacy report" in text


def _calls(name: str) -> list[tuple[Path, int]]:
    """Where `name(...)` or `x.name(...)` is called in the package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    found.append((path.relative_to(PACKAGE), node.lineno))
    return found


def test_the_only_amqp_message_the_hub_builds_carries_hub_ids_and_counters() -> None:
    # One place builds Dramatiq messages, and no actor is sent to any other way.
    assert {str(p) for p, _ in _calls("Message")} == {"hub/topology.py"}
    assert _calls("send_with_options") == []
    message = apply_request(Settings(), ["6f1c2a5e-0000-4000-8000-000000000001"], retries=2, outages=1)
    assert message.args == (["6f1c2a5e-0000-4000-8000-000000000001"],) and message.kwargs == {}
    assert message.options == {"retries": 2, "outages": 1}
    # Every enqueue passes apply_request's message (named, or built in the call).
    for path, line in _calls("enqueue"):
        source = (PACKAGE / path).read_text(encoding="utf-8")
        assert "apply_request(" in source, (path, line)


def test_file_retention_removes_only_older_days_and_refused_files(tmp_path: Path) -> None:
    today = date(2026, 12, 1)
    old_day = tmp_path / "archive" / "county" / (today - timedelta(days=11)).isoformat()
    kept_day = tmp_path / "archive" / "county" / (today - timedelta(days=10)).isoformat()
    other = tmp_path / "archive" / "county" / "not-a-date"
    for folder in (old_day, kept_day, other):
        folder.mkdir(parents=True)
        (folder / "paatokset.xml").write_bytes(b"<x/>")
    errors = tmp_path / "error" / "county"
    errors.mkdir(parents=True)
    (errors / "old.xml").write_bytes(b"<")
    (errors / "new.xml").write_bytes(b"<")
    eleven_days_ago = time.time() - 11 * 86400
    os.utime(errors / "old.xml", (eleven_days_ago, eleven_days_ago))
    receipts = tmp_path / "outbox" / "county" / "receipts"
    receipts.mkdir(parents=True)
    (receipts / "old.xml.receipt.json").write_text("{}")
    os.utime(receipts / "old.xml.receipt.json", (eleven_days_ago, eleven_days_ago))

    assert remove_old_files(tmp_path, 0, today) == 0  # retention off
    assert old_day.exists()
    assert remove_old_files(tmp_path, 10, today) == 2
    assert not old_day.exists() and not (errors / "old.xml").exists()
    assert (kept_day / "paatokset.xml").exists() and (other / "paatokset.xml").exists()
    assert (errors / "new.xml").exists() and (receipts / "old.xml.receipt.json").exists()
