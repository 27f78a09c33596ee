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

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection, Engine

from psop_hub.adapters.atomic import json_chunks, write_atomically
from psop_hub.hub.database import driver, raw, unavailable_on_outage
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.store import FINAL_STATUSES
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


# The row of a receipt just written: its hub_ids are taken from the listing by PostgreSQL, which
# gets the listing as one JSON text (bound once, also for the update of a name taken again).
RECORD_PENDING = """
INSERT INTO file_results (sender, receipt, data_dir, file, sha256, records, hub_ids, listing)
SELECT %(sender)s, %(receipt)s, %(data_dir)s, %(file)s, %(sha256)s, %(records)s,
       ARRAY(SELECT DISTINCT (e->>'hub_id')::uuid FROM jsonb_array_elements(l.doc->'messages') AS e
             ORDER BY 1),
       l.doc
FROM (SELECT %(listing)t AS doc) AS l
ON CONFLICT ON CONSTRAINT pk_file_results DO UPDATE SET
    data_dir = EXCLUDED.data_dir, file = EXCLUDED.file, sha256 = EXCLUDED.sha256,
    records = EXCLUDED.records, hub_ids = EXCLUDED.hub_ids, listing = EXCLUDED.listing,
    created_at = now(), written_at = NULL
"""


def record_pending(conn: Connection, root: Path, sender: str, receipt: str, body: Mapping[str, Any]) -> None:
    """Note a receipt just written (`body` is its document; its `messages` and `rejected` may be
    any iterables, read once) so that its result follows; in the caller's transaction. A
    receipt's name is taken again only after the sender took that receipt away: the result then
    belongs to the new receipt of that name, so the row is replaced."""
    raw(conn).execute(
        RECORD_PENDING,
        {
            "sender": sender,
            "receipt": receipt,
            "data_dir": str(root),
            "file": body["file"],
            "sha256": body["sha256"],
            "records": body["records"],
            # in text form (%t): psycopg sends the buffer as it is
            "listing": Jsonb((body.get("messages", ()), body.get("rejected", [])), dumps=listing_json),
        },
    )


def listing_json(listing: tuple[Iterable[Mapping[str, Any]], Iterable[Mapping[str, Any]]]) -> bytes:
    """`{"messages": [...], "rejected": [...]}` of (messages, rejected) as JSON, written one entry
    at a time into one buffer: for a file of 100,000 records ~16 MB, never also a list of 100,000
    objects or of their texts (a StringIO holds 4 bytes a character)."""
    messages, rejected = listing
    out = bytearray()
    for opening, entries in ((b'{"messages": [', messages), (b'], "rejected": [', rejected)):
        out += opening
        separator = b""
        for entry in entries:
            out += separator
            out += json.dumps(entry).encode()
            separator = b", "
    out += b"]}"
    return cast(bytes, out)  # psycopg's dumper takes any buffer: no copy into bytes


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
    key = {"sender": sender, "receipt": receipt}
    with unavailable_on_outage(), engine.begin() as conn:
        cur = raw(conn)
        row = cur.execute(LOCK_RESULT, key).fetchone()
        if row is None:
            return 0  # another adapter has it in hand, or wrote it a moment ago
        # Still under the row's lock: of two adapters, only this one writes it. Readers see no
        # result or the whole of it; one left by an adapter that died before its commit below,
        # or by an earlier receipt of this name that the sender took away, is replaced. The
        # entries come from a server-side cursor (a file of 100,000 records is never all in
        # memory, as rows, entries or text), each with the counts of the whole file: one
        # statement, one snapshot, so the counts are those of the entries written.
        xml = row.file.lower().endswith(".xml")
        with driver(conn).cursor(name="hub_result", row_factory=namedtuple_row) as entries:
            entries.itersize = 2000
            entries.execute(ENTRIES, key)
            first: Any = entries.fetchone()
            if first is not None and first.moving:
                return 0  # replayed meanwhile: on its way again
            head = _head(row, first)
            listed: Iterator[Any] = itertools.chain([first], entries) if first is not None else iter(())
            try:
                path = root / "outbox" / sender / "receipts" / result_name(receipt)
                write_atomically(path, json_chunks(head, "results", (_entry(e, xml) for e in listed)))
            except OSError as exc:  # a full disk: the row stays unwritten and the next round tries again
                name = result_name(receipt)
                log.error("result %s of %s not written: %s; tried again next round", name, sender, exc)
                return 0
        cur.execute(MARK_WRITTEN, key)
    counts = ", ".join(f"{head[k]} {k}" for k in COUNTED if head[k])
    log.info("result %s of %s written: %s", result_name(receipt), sender, counts or "no records")
    return 1


LOCK_RESULT = """
SELECT file, sha256, receipt, records, now() AS now FROM file_results
WHERE sender = %(sender)s AND receipt = %(receipt)s AND written_at IS NULL
FOR UPDATE SKIP LOCKED
"""
MARK_WRITTEN = """
UPDATE file_results SET written_at = now() WHERE sender = %(sender)s AND receipt = %(receipt)s
"""
_FINAL = ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES))
# Every record of the file in record order, with the status it ended with: an accepted one its
# message's (`failed` for a message an operator removed from the store: not final here, and never
# will be; a replaced one with its newest copy, found by an aggregate so that the planner looks
# the copies up by replay_of and does not walk received_at), one refused at intake `rejected`.
# Each row also carries the file's counts (`moving`: records whose message is on its way again).
ENTRIES = f"""
WITH entries AS (
    SELECT l.record, l.line, l.message_id, l.hub_id::text AS hub_id, l.duplicate,
           m.hub_id IS NOT NULL AS stored, m.type, coalesce(m.status, 'failed') AS status, m.errors,
           (SELECT (array_agg(c.hub_id::text ORDER BY c.received_at DESC))[1] FROM messages c
            WHERE m.status = 'replaced' AND c.replay_of = m.hub_id) AS replaced_by,
           NULL::jsonb AS refused
    FROM file_results r
    CROSS JOIN LATERAL jsonb_to_recordset(r.listing->'messages')
         AS l(record int, line int, message_id text, hub_id uuid, duplicate boolean)
    LEFT JOIN messages m ON m.hub_id = l.hub_id
    WHERE r.sender = %(sender)s AND r.receipt = %(receipt)s
    UNION ALL
    SELECT (e->>'record')::int, (e->>'line')::int, NULL, NULL, false, true, NULL, 'rejected', NULL, NULL,
           e->'errors'
    FROM file_results r CROSS JOIN LATERAL jsonb_array_elements(r.listing->'rejected') AS e
    WHERE r.sender = %(sender)s AND r.receipt = %(receipt)s
)
SELECT entries.*,
       {", ".join(f"count(*) FILTER (WHERE status = '{s}') OVER () AS {s}" for s in COUNTED)},
       count(*) FILTER (WHERE duplicate) OVER () AS duplicates,
       count(*) FILTER (WHERE status NOT IN ({_FINAL})) OVER () AS moving
FROM entries
ORDER BY record
"""


def _head(row: Any, first: Any) -> dict[str, Any]:
    """The result's members before `results`: the file, and how many records ended how (the
    counts every entry carries; none without entries)."""
    return {
        "file": row.file,
        "sha256": row.sha256,
        "receipt": row.receipt,
        "records": row.records,
        **{k: 0 if first is None else getattr(first, k) for k in COUNTED},
        "duplicates": 0 if first is None else first.duplicates,
        "completed_at": row.now.isoformat(),
    }


def _entry(e: Any, xml: bool) -> dict[str, Any]:
    """One record's entry: where it was, its message, and the status it ended with."""
    if e.refused is not None:
        return {
            "record": e.record,
            "line": e.line,
            "status": "rejected",
            "stage": "intake",
            "errors": e.refused,
        }
    status = e.status
    errors = e.errors if e.stored else [{"field": "", "message": "no longer stored"}]
    entry: dict[str, Any] = {
        "record": e.record,
        "line": e.line,
        "message_id": e.message_id,
        "hub_id": e.hub_id,
        "duplicate": e.duplicate,
        "status": status,
    }
    if e.duplicate:
        entry["detail"] = (
            "a duplicate: the same record was taken before (an earlier drop of the same "
            "content); this is the status of that first copy"
        )
    if status in ("rejected", "failed"):
        rules = [x["rule"] for x in errors if x.get("rule")]
        if rules:
            entry["rule"] = rules[0]
        record_name = _RECORD_NAMES.get((e.type or "").split(".")[0], "")
        entry["errors"] = [
            {
                "field": _field(x.get("field") or "", xml, record_name),
                "message": mask_text(x.get("message", "")),
            }
            for x in errors
        ]
    if e.replaced_by is not None:
        entry["replaced_by"] = e.replaced_by
    return entry


def _field(canonical: str, xml: bool, record_name: str) -> str:
    """A rule's field in the file's own names: the SOAP element path of an XML record, the CSV
    column of a CSV row (`payload.quantity` -> `quantity`)."""
    if xml and record_name:
        return soap_field(record_name, canonical)
    return "" if canonical == "payload" else canonical.removeprefix("payload.")
