"""A file's result: `NAME.result.json` beside its receipt once every record has a final status.

The receipt says what the hub took from a file; a record it took can still be rejected by a
business rule, or fail, later. So for every receipt the file adapter records (`record_pending`,
in the transaction that records the finished file) the hub_ids of the file's accepted records and
what the receipt listed. On every round each file adapter (`write_ready`) looks for receipts
whose messages are all final, and writes the result document beside the receipt:
`NAME.receipt.json` gets `NAME.result.json`, `NAME.2.receipt.json` gets `NAME.2.result.json`.

Written once: the adapter that writes a result holds its `file_results` row locked (`FOR UPDATE
SKIP LOCKED`: another adapter skips it) from the check to the mark, and writes it atomically (a
synced temporary file renamed), so a reader sees no result or the whole of it. Only an adapter
that dies between writing and marking leaves it to be written again, alike but for its
`completed_at`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from psop_hub.adapters.atomic import json_chunks, write_atomically
from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.store import FINAL_STATUSES
from psop_hub.hub.tables import file_results
from psop_hub.mappings.soap import soap_field

log = logging.getLogger(__name__)

RECEIPT_SUFFIX = ".receipt.json"
RESULT_SUFFIX = ".result.json"
# The counts of a result, one per final status; they add up to `records` (intake refusals are
# `rejected` too).
COUNTED = ("applied", "rejected", "superseded", "failed", "replaced")
# The SOAP element a record of an XML batch was, by the message type it became.
_RECORD_NAMES = {"voucher": "VoucherDecision", "order": "ServiceOrder", "provider": "ProviderApproval"}

READY = f"""
SELECT r.sender, r.receipt FROM file_results r
WHERE r.data_dir = %(data_dir)s AND r.written_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM messages m
                  WHERE m.hub_id = ANY(r.hub_ids)
                    AND m.status NOT IN ({", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES))}))
ORDER BY r.created_at
LIMIT %(limit)s
"""


def result_name(receipt: str) -> str:
    """The result's file name beside a receipt: `x.csv.2.receipt.json` -> `x.csv.2.result.json`."""
    return receipt.removesuffix(RECEIPT_SUFFIX) + RESULT_SUFFIX


def record_pending(conn: Connection, root: Path, sender: str, receipt: str, body: dict[str, Any]) -> None:
    """Note a receipt just written (`body` is its document) so that its result follows; in the
    caller's transaction. A receipt's name is taken again only after the sender took that receipt
    away: the result then belongs to the new receipt of that name, so the row is replaced."""
    listed = body.get("messages", [])
    values = {
        "data_dir": str(root),
        "file": body["file"],
        "sha256": body["sha256"],
        "records": body["records"],
        "hub_ids": sorted({uuid.UUID(m["hub_id"]) for m in listed}),
        "listing": {"messages": listed, "rejected": body.get("rejected", [])},
    }
    stored = insert(file_results).values(sender=sender, receipt=receipt, **values)
    # The new row's values again as EXCLUDED: bound once (the listing of 100,000 records is tens
    # of MB as JSON, and was encoded twice).
    again = {name: stored.excluded[name] for name in values}
    conn.execute(
        stored.on_conflict_do_update(
            constraint=file_results.primary_key,
            set_={**again, "created_at": func.now(), "written_at": None},
        )
    )


def write_ready(engine: Engine, root: Path, limit: int = 20) -> int:
    """Write the results of this data directory's receipts whose messages are all final; returns
    how many were written."""
    with unavailable_on_outage(), engine.connect() as conn:
        ready = conn.exec_driver_sql(READY, {"data_dir": str(root), "limit": limit}).all()
    written = 0
    for sender, receipt in ready:
        written += _write_one(engine, root, sender, receipt)
    return written


def _write_one(engine: Engine, root: Path, sender: str, receipt: str) -> int:
    with unavailable_on_outage(), engine.begin() as conn:
        row = conn.execute(
            select(file_results)
            .where(
                file_results.c.sender == sender,
                file_results.c.receipt == receipt,
                file_results.c.written_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if row is None:
            return 0  # another adapter has it in hand, or wrote it a moment ago
        statuses = _statuses(conn, list(row.hub_ids))
        if any(s["status"] not in FINAL_STATUSES for s in statuses.values()):
            return 0  # replayed meanwhile: on its way again
        body, entries = _result(row, statuses, conn.execute(select(func.now())).scalar_one())
        # Still under the row's lock: of two adapters, only this one writes it. Readers see no
        # result or the whole of it; one left by an adapter that died before its commit below,
        # or by an earlier receipt of this name that the sender took away, is replaced.
        try:
            path = root / "outbox" / sender / "receipts" / result_name(receipt)
            write_atomically(path, json_chunks(body, "results", entries))
        except OSError as exc:  # a full disk: the row stays unwritten and the next round tries again
            log.error(
                "result %s of %s not written: %s; tried again next round", result_name(receipt), sender, exc
            )
            return 0
        conn.execute(
            update(file_results)
            .where(file_results.c.sender == sender, file_results.c.receipt == receipt)
            .values(written_at=func.now())
        )
    counts = ", ".join(f"{body[k]} {k}" for k in COUNTED if body[k])
    log.info("result %s of %s written: %s", result_name(receipt), sender, counts or "no records")
    return 1


STATUSES_OF = "SELECT hub_id, type, status, errors FROM messages WHERE hub_id = ANY(%(ids)s)"
COPIES_OF = "SELECT replay_of, hub_id FROM messages WHERE replay_of = ANY(%(ids)s)"


def _statuses(conn: Connection, hub_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    rows = conn.exec_driver_sql(STATUSES_OF, {"ids": hub_ids}).all()
    found: dict[str, dict[str, Any]] = {
        str(r.hub_id): {"type": r.type, "status": r.status, "errors": r.errors} for r in rows
    }
    if any(s["status"] == "replaced" for s in found.values()):
        for original, copy in conn.exec_driver_sql(COPIES_OF, {"ids": hub_ids}).all():
            found[str(original)]["replaced_by"] = str(copy)
    for hub_id in {str(h) for h in hub_ids} - set(found):
        # Removed from the store by an operator (retention): not final here, and never will be.
        found[hub_id] = {
            "type": "",
            "status": "failed",
            "errors": [{"field": "", "message": "no longer stored"}],
        }
    return found


def _result(
    row: Any, statuses: dict[str, dict[str, Any]], now: datetime
) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The result of one receipt, every record of the file with its final status in file order:
    its members before `results`, and its entries (made one at a time, in record order: a file
    of 100,000 records is never all in memory as entries or as text)."""
    listed: list[dict[str, Any]] = row.listing["messages"]
    # Refused at intake: listed in the receipt already, and final.
    refused = sorted(row.listing["rejected"], key=lambda r: int(r["record"]))
    counts = dict.fromkeys(COUNTED, 0)
    for m in listed:
        status = statuses[m["hub_id"]]["status"]
        if status in counts:
            counts[status] += 1
    counts["rejected"] += len(refused)
    if any(int(a["record"]) > int(b["record"]) for a, b in itertools.pairwise(listed)):
        listed = sorted(listed, key=lambda m: int(m["record"]))  # receipts list them in order
    head = {
        "file": row.file,
        "sha256": row.sha256,
        "receipt": row.receipt,
        "records": row.records,
        **counts,
        "duplicates": sum(1 for m in listed if m["duplicate"]),
        "completed_at": now.isoformat(),
    }
    xml = row.file.lower().endswith(".xml")
    accepted = (_entry(m, statuses[m["hub_id"]], xml) for m in listed)
    rejected = (
        {
            "record": r["record"],
            "line": r["line"],
            "status": "rejected",
            "stage": "intake",
            "errors": r["errors"],
        }
        for r in refused
    )
    return head, heapq.merge(accepted, rejected, key=lambda e: int(e["record"]))


def _entry(m: dict[str, Any], state: dict[str, Any], xml: bool) -> dict[str, Any]:
    """One accepted record's entry: where it was, its message, and the status it ended with."""
    entry: dict[str, Any] = {
        "record": m["record"],
        "line": m["line"],
        "message_id": m["message_id"],
        "hub_id": m["hub_id"],
        "duplicate": m["duplicate"],
        "status": state["status"],
    }
    if m["duplicate"]:
        entry["detail"] = (
            "a duplicate: the same record was taken before (an earlier drop of the same "
            "content); this is the status of that first copy"
        )
    if state["status"] in ("rejected", "failed"):
        rules = [e["rule"] for e in state["errors"] if e.get("rule")]
        if rules:
            entry["rule"] = rules[0]
        record_name = _RECORD_NAMES.get(state["type"].split(".")[0], "")
        entry["errors"] = [
            {
                "field": _field(e.get("field") or "", xml, record_name),
                "message": mask_text(e.get("message", "")),
            }
            for e in state["errors"]
        ]
    if "replaced_by" in state:
        entry["replaced_by"] = state["replaced_by"]
    return entry


def _field(canonical: str, xml: bool, record_name: str) -> str:
    """A rule's field in the file's own names: the SOAP element path of an XML record, the CSV
    column of a CSV row (`payload.quantity` -> `quantity`)."""
    if xml and record_name:
        return soap_field(record_name, canonical)
    return "" if canonical == "payload" else canonical.removeprefix("payload.")
