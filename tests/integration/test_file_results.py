"""A receipt's name taken again (after its sender took the old receipt away) replaces its pending
result, bound once; the result then written streams every record in record order."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from psop_hub.adapters.results import record_pending, write_ready
from psop_hub.hub.tables import file_results


def body(file: str, records: int, accepted: list[int], rejected: list[int]) -> dict[str, Any]:
    """A receipt document: `accepted` and `rejected` are record numbers."""
    return {
        "file": file,
        "sha256": uuid.uuid4().hex,
        "records": records,
        "accepted": len(accepted),
        "duplicates": 0,
        "rejected": [
            {"record": n, "line": n + 1, "errors": [{"field": "quantity", "message": "puuttuu"}]}
            for n in rejected
        ],
        "messages": [
            {
                "record": n,
                "line": n + 1,
                "message_id": f"m-{n}",
                "hub_id": str(uuid.uuid4()),
                "duplicate": False,
            }
            for n in accepted
        ],
    }


def test_a_receipt_name_taken_again_replaces_its_pending_result(engine: Engine, tmp_path: Path) -> None:
    sender, receipt = f"prov-{uuid.uuid4().hex[:8]}", "toteumat.csv.receipt.json"
    first, second = body("toteumat.csv", 1, [1], []), body("toteumat.csv", 4, [1, 3, 4], [2])
    with engine.begin() as conn:
        record_pending(conn, tmp_path, sender, receipt, first)
        conn.execute(
            update(file_results).where(file_results.c.sender == sender).values(written_at=func.now())
        )
    with engine.begin() as conn:
        record_pending(conn, tmp_path, sender, receipt, second)
    with engine.connect() as conn:
        row = conn.execute(select(file_results).where(file_results.c.sender == sender)).one()
    assert row.records == 4 and row.sha256 == second["sha256"] and row.written_at is None
    assert sorted(map(str, row.hub_ids)) == sorted(m["hub_id"] for m in second["messages"])
    assert row.listing == {"messages": second["messages"], "rejected": second["rejected"]}

    assert write_ready(engine, tmp_path) >= 1
    result = json.loads((tmp_path / "outbox" / sender / "receipts" / "toteumat.csv.result.json").read_text())
    assert [e["record"] for e in result["results"]] == [1, 2, 3, 4]
    assert result["rejected"] == 1 and result["failed"] == 3  # the three messages are not in this store
    assert result["results"][1] == {
        "record": 2,
        "line": 3,
        "status": "rejected",
        "stage": "intake",
        "errors": [{"field": "quantity", "message": "puuttuu"}],
    }
