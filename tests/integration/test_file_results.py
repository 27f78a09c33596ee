"""A receipt's name taken again (after its sender took the old receipt away) replaces its pending
result, bound once; the result then written streams every record in record order."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from psop_hub.adapters import results
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


# A message of the file's in the store, with its final status (and what made it so).
STORED = """
INSERT INTO messages (hub_id, sender, message_id, type, sent_at, payload, payload_sha256, organiser,
                      reference, channel, status, errors, replay_of, received_at)
VALUES (%(hub_id)s, %(sender)s, %(message_id)s, %(type)s, now(), '{}', repeat('0', 64), '2077474-0',
        'V-1', %(channel)s, %(status)s, %(errors)s::jsonb, %(replay_of)s,
        now() + make_interval(secs => %(later)s))
"""


def test_each_record_ends_with_its_messages_final_status(engine: Engine, tmp_path: Path) -> None:
    """Applied, rejected by a rule (the field in the file's own names), replaced by a replay's
    copy, gone from the store, a duplicate, refused at intake: each entry as the result says it,
    the counts beside them, the listing in record order whatever order the receipt had."""
    sender = f"prov-{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(5)]
    copies = [uuid.uuid4(), uuid.uuid4()]
    rule = [{"field": "payload.quantity", "message": "yli myönnetyn", "rule": "within_grant"}]

    def row(hub_id: uuid.UUID, n: int, status: str, **more: Any) -> dict[str, Any]:
        values = {"hub_id": hub_id, "sender": sender, "message_id": f"m-{n}", "type": "delivery.reported"}
        return {
            **values,
            "channel": "file",
            "status": status,
            "errors": "[]",
            "replay_of": None,
            "later": 0,
            **more,
        }

    with engine.begin() as conn:
        for values in (
            row(ids[0], 1, "applied"),
            row(ids[1], 2, "rejected", errors=json.dumps(rule)),
            row(ids[2], 3, "replaced"),
            row(copies[0], 90, "failed", channel="replay", replay_of=ids[2], later=1),
            row(copies[1], 91, "applied", channel="replay", replay_of=ids[2], later=2),  # the newest
            row(ids[4], 6, "applied"),  # the first copy of record 6, from an earlier drop
        ):
            conn.exec_driver_sql(STORED, values)
    # record 4's message is gone (ids[3]); record 5 was refused at intake
    listed = [
        (6, ids[4], True),
        (1, ids[0], False),
        (2, ids[1], False),
        (3, ids[2], False),
        (4, ids[3], False),
    ]
    document = body("toteumat.csv", 6, [], [5])
    document["messages"] = (
        {"record": n, "line": n + 1, "message_id": f"m-{n}", "hub_id": str(h), "duplicate": d}
        for n, h, d in listed
    )
    with engine.begin() as conn:
        record_pending(conn, tmp_path, sender, "toteumat.csv.receipt.json", document)
    assert write_ready(engine, tmp_path) >= 1
    result = json.loads((tmp_path / "outbox" / sender / "receipts" / "toteumat.csv.result.json").read_text())

    assert {k: result[k] for k in ("records", "applied", "rejected", "replaced", "failed", "duplicates")} == {
        "records": 6,
        "applied": 2,
        "rejected": 2,
        "replaced": 1,
        "failed": 1,
        "duplicates": 1,
    }
    mine = {"line", "message_id", "duplicate"}
    entries = [{k: v for k, v in e.items() if k not in mine} for e in result["results"]]
    assert entries == [
        {"record": 1, "hub_id": str(ids[0]), "status": "applied"},
        {
            "record": 2,
            "hub_id": str(ids[1]),
            "status": "rejected",
            "rule": "within_grant",
            "errors": [{"field": "quantity", "message": "yli myönnetyn"}],
        },
        {"record": 3, "hub_id": str(ids[2]), "status": "replaced", "replaced_by": str(copies[1])},
        {
            "record": 4,
            "hub_id": str(ids[3]),
            "status": "failed",
            "errors": [{"field": "", "message": "no longer stored"}],
        },
        {
            "record": 5,
            "status": "rejected",
            "stage": "intake",
            "errors": [{"field": "quantity", "message": "puuttuu"}],
        },
        {
            "record": 6,
            "hub_id": str(ids[4]),
            "status": "applied",
            "detail": "a duplicate: the same record was taken before (an earlier drop of the same "
            "content); this is the status of that first copy",
        },
    ]
    assert [(e["record"], e["line"], e.get("message_id"), e.get("duplicate")) for e in result["results"]] == [
        (1, 2, "m-1", False),
        (2, 3, "m-2", False),
        (3, 4, "m-3", False),
        (4, 5, "m-4", False),
        (5, 6, None, None),
        (6, 7, "m-6", True),
    ]


def test_a_result_whose_message_moved_again_is_not_written(engine: Engine, tmp_path: Path) -> None:
    """Between the look for ready receipts and the writing, a record's message went on its way
    again (a replay): the entries' own statement sees it, nothing is written, the row waits."""
    sender, hub_id = f"prov-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            STORED,
            {
                "hub_id": hub_id,
                "sender": sender,
                "message_id": "m-1",
                "type": "delivery.reported",
                "channel": "file",
                "status": "retrying",
                "errors": "[]",
                "replay_of": None,
                "later": 0,
            },
        )
        document = body("toteumat.csv", 1, [], [])
        document["messages"] = [
            {"record": 1, "line": 2, "message_id": "m-1", "hub_id": str(hub_id), "duplicate": False}
        ]
        record_pending(conn, tmp_path, sender, "toteumat.csv.receipt.json", document)
    assert results._write_one(engine, tmp_path, sender, "toteumat.csv.receipt.json") == 0
    assert not (tmp_path / "outbox" / sender / "receipts" / "toteumat.csv.result.json").exists()
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(file_results.c.written_at).where(file_results.c.sender == sender)
            ).scalar_one()
            is None
        )
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE messages SET status = 'applied' WHERE hub_id = %(h)s", {"h": hub_id})
    assert results._write_one(engine, tmp_path, sender, "toteumat.csv.receipt.json") == 1
    result = json.loads((tmp_path / "outbox" / sender / "receipts" / "toteumat.csv.result.json").read_text())
    assert result["applied"] == 1 and [e["status"] for e in result["results"]] == ["applied"]
