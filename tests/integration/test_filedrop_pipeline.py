"""The file adapter stores each batch one batch behind the reading: whatever way the reading or a
store ends, the receipt counts exactly what is in the store, in record order, and every stored
record is handed over for publishing once, in the file's order voucher by voucher."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from psop_hub.adapters import filedrop
from psop_hub.adapters.filedrop import FileDrop
from psop_hub.hub.errors import Unavailable
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import messages
from psop_hub.mappings.records import UnreadableFile
from tests.integration.helpers import PROVIDER_SENDER
from tests.messages import ORGANISER, uid

HEADER = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"


def drop(root: Path, rows: int, bad_every: int = 0) -> Path:
    """A provider CSV claimed into work/ (as `scan_once` leaves it); every `bad_every`th record
    has no quantity."""
    lines = [HEADER]
    for n in range(rows):
        quantity = "" if bad_every and n % bad_every == 0 else "1"
        lines.append(f"{uid('ev')};{ORGANISER};V-{n % 7};;15.11.2026;{quantity};hour;")
    work = root / "work" / PROVIDER_SENDER.name
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{uuid.uuid4().hex}__toteumat.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def stored_ids(engine: Engine, receipt: dict[str, Any]) -> set[uuid.UUID]:
    """The receipt's hub_ids that are in the store."""
    ids = [uuid.UUID(m["hub_id"]) for m in receipt["messages"]]
    with engine.connect() as conn:
        return set(conn.execute(select(messages.c.hub_id).where(messages.c.hub_id.in_(ids))).scalars())


@pytest.fixture
def adapter(settings: Settings, engine: Engine, tmp_path: Path) -> tuple[FileDrop, list[list[uuid.UUID]]]:
    handed: list[list[uuid.UUID]] = []
    mine = settings.model_copy(update={"data_dir": str(tmp_path), "files_batch": 100})
    return FileDrop(mine, engine, handed.append), handed


def test_every_batch_is_counted_and_handed_over_once(
    adapter: tuple[FileDrop, list[list[uuid.UUID]]], engine: Engine, tmp_path: Path
) -> None:
    drop_, handed = adapter
    receipt = drop_.process(
        PROVIDER_SENDER.name, drop(tmp_path, 1050, bad_every=97), "toteumat.csv"
    ).as_json()
    assert receipt["records"] == 1050 and receipt.get("error") is None
    assert receipt["accepted"] == 1050 - 11 and [r["record"] for r in receipt["rejected"]] == [
        n + 1 for n in range(0, 1050, 97)
    ]
    assert [m["record"] for m in receipt["messages"]] == sorted(m["record"] for m in receipt["messages"])
    ids = [uuid.UUID(m["hub_id"]) for m in receipt["messages"]]
    assert stored_ids(engine, receipt) == set(ids)
    assert sorted(h for batch in handed for h in batch) == sorted(ids)  # each once
    assert len(handed) == 11  # ten full batches and the rest


def test_a_file_that_turns_unreadable_counts_the_batch_in_flight(
    adapter: tuple[FileDrop, list[list[uuid.UUID]]],
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = filedrop._messages

    def breaking(*args: Any) -> Iterator[Any]:
        for n, item in enumerate(real(*args)):
            if n == 250:
                raise UnreadableFile("the file ends in the middle of a record")
            yield item

    monkeypatch.setattr(filedrop, "_messages", breaking)
    drop_, handed = adapter
    receipt = drop_.process(PROVIDER_SENDER.name, drop(tmp_path, 400), "toteumat.csv").as_json()
    assert receipt["error"] == "the file ends in the middle of a record"
    # The first batch was stored while the second was read, the second was in flight when the
    # reading stopped; the 50 records read after it were not stored, and are not counted.
    assert receipt["accepted"] == 200 and len(stored_ids(engine, receipt)) == 200
    assert sorted(h for batch in handed for h in batch) == sorted(
        uuid.UUID(m["hub_id"]) for m in receipt["messages"]
    )
    error = tmp_path / "outbox" / PROVIDER_SENDER.name / "receipts" / "toteumat.csv.receipt.json"
    assert json.loads(error.read_text())["accepted"] == 200


def test_a_store_that_fails_leaves_the_file_claimed_with_what_was_stored_kept(
    adapter: tuple[FileDrop, list[list[uuid.UUID]]],
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = filedrop.submit_many
    calls = 0

    def failing_third(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Unavailable("the database is not reachable")
        return real(*args)

    monkeypatch.setattr(filedrop, "submit_many", failing_third)
    drop_, handed = adapter
    path = drop(tmp_path, 450)
    with pytest.raises(Unavailable):
        drop_.process(PROVIDER_SENDER.name, path, "toteumat.csv")
    assert path.exists()  # still claimed: read again once its lease runs out
    ids = [h for batch in handed for h in batch]
    assert len(ids) == 200  # the two batches stored before the failure, handed over
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(messages.c.hub_id.in_(ids))).scalar_one() == 200
