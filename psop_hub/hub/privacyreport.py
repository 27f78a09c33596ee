"""`hub privacy report`: where the hub keeps client data, and for how long.

The client-data act (703/2023) and GDPR art. 30 ask the controller to know every place personal
data lives. The inventory below is written by hand, one `Place` per table, folder, log and queue,
and a unit test ties it to the code: every table of `hub/tables.py` is listed, with columns that
exist. The report adds what only the running hub knows: the retention in force (the settings),
how many rows and files each place holds now, and the oldest of them.

A place's `personal` is what it holds of a person: "HETU" (identity codes in clear), "client"
(data about a person's service without the HETU, linked to one through a voucher or order
number), "masked" (only masked HETUs), or "" (nothing of a client: organisations, senders).

Functions: `build_report(engine, settings) -> list[dict]`, `render(rows) -> str`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.settings import Settings

FOREVER = "kept until an operator removes it (no automatic expiry)"


@dataclass(frozen=True)
class Place:
    """One place client data can be: a table (with the columns that hold it), a folder, a log."""

    kind: str  # "table", "folder", "log", "queue"
    name: str  # the table's name, or a folder under HUB_DATA_DIR (`archive/<client>/YYYY-MM-DD/`)
    personal: str  # "HETU", "client", "masked" or ""
    columns: tuple[str, ...]  # a table's columns that hold it
    what: str
    kept: str  # for how long; "{retention}" is replaced by the retention in force


RETENTION = "{retention}"

PLACES: tuple[Place, ...] = (
    Place(
        "table",
        "messages",
        "HETU",
        ("payload", "message_id", "correlation_id", "reference", "errors"),
        "every message as received: payloads of voucher.granted and order.placed carry the client's "
        "HETU and home municipality, every payload the service; ids and references are the sender's "
        "text (shown masked); errors are masked when written",
        "resolved (applied, superseded, replaced): " + RETENTION + "; failed, rejected and unfinished: "
        "until resolved (an admin replays them), then " + RETENTION,
    ),
    Place(
        "table",
        "journey",
        "masked",
        ("detail",),
        "each step of a message (accepted, applied, failed: reason masked)",
        "with its message",
    ),
    Place("table", "outbox", "", ("hub_id",), "hub_ids not yet published", "until published (seconds)"),
    Place("table", "inbox", "", ("hub_id",), "hub_ids a consumer has applied", "with its message"),
    Place(
        "table",
        "vouchers",
        "HETU",
        ("client_hetu", "home_municipality", "service_code", "service_name", "revoked_reason"),
        "the service state of each voucher: whose it is, which service, how much is used",
        FOREVER + "; settlements and reconciliation are built from it; the client's HETU is masked "
        "to the birth date once the voucher ended longer ago than the retention (" + RETENTION + ")",
    ),
    Place(
        "table",
        "orders",
        "HETU",
        ("client_hetu", "home_municipality", "service_code", "service_name"),
        "the service state of each purchased-service order",
        FOREVER + "; settlements are built from it; the client's HETU is masked to the birth date "
        "once the order's end_date is longer ago than the retention (" + RETENTION + ")",
    ),
    Place(
        "table",
        "deliveries",
        "client",
        ("voucher_number", "order_number", "service_date", "quantity", "service_code", "service_name"),
        "each service delivered to a client (the person is known through the voucher or order)",
        FOREVER + "; the settled months' invoices rest on it",
    ),
    Place(
        "table",
        "settlement_items",
        "client",
        ("event_id", "quantity"),
        "which deliveries each monthly settlement paid",
        FOREVER,
    ),
    Place(
        "table",
        "settlement_rows",
        "",
        ("service_code", "quantity", "amount"),
        "a settlement's rows: totals per service, no person",
        FOREVER,
    ),
    Place("table", "settlements", "", ("amount",), "monthly totals per organiser and provider", FOREVER),
    Place(
        "table",
        "provider_approvals",
        "",
        ("service_codes",),
        "which services a provider is approved for",
        FOREVER,
    ),
    Place(
        "table",
        "parties",
        "",
        ("name", "street", "iban"),
        "organisers' and providers' invoicing details (organisations, not clients)",
        FOREVER,
    ),
    Place(
        "table",
        "audit_log",
        "HETU",
        ("detail", "reason", "hub_ids"),
        "who read, replayed, edited, exported or purged which message and why (the client-data "
        "act's log); an edit's payloads before and after, unmasked, for the auditor",
        "append-only, never removed by the hub (the act asks for the log to be kept)",
    ),
    Place(
        "table",
        "replay_jobs",
        "masked",
        ("filter", "reason"),
        "bulk replays: the admin's filter and reason",
        FOREVER,
    ),
    Place(
        "table",
        "replay_job_items",
        "masked",
        ("hub_id", "detail"),
        "each message of a bulk replay and its outcome",
        FOREVER,
    ),
    Place(
        "table",
        "files",
        "masked",
        ("name",),
        "each batch file read: its sender, name (HETU-shaped text masked), hash and counts",
        FOREVER,
    ),
    Place("table", "clients", "", ("name",), "senders: names, roles, scopes", FOREVER),
    Place(
        "table",
        "client_secrets",
        "",
        ("client",),
        "each client's secret hashes (SHA-256, never a secret) with their expiry and grace",
        FOREVER,
    ),
    Place(
        "table",
        "file_results",
        "masked",
        ("file", "listing"),
        "each receipt's records (message_id, hub_id, errors as in the receipt) until its result "
        "document is written",
        FOREVER,
    ),
    Place("table", "admin_sessions", "", ("client",), "admin page sign-ins", "until the session ends"),
    Place("table", "rate_windows", "", ("sender",), "requests per sender per minute", "a few minutes"),
    Place(
        "folder",
        "inbox/<client>/",
        "HETU",
        (),
        "batch files as partners drop them (VoucherDecision records carry HETUs)",
        "until the file adapter claims them (seconds)",
    ),
    Place(
        "folder",
        "work/<client>/",
        "HETU",
        (),
        "a batch file while it is read",
        "until read (or, after a crash, until taken over)",
    ),
    Place(
        "folder",
        "archive/<client>/YYYY-MM-DD/",
        "HETU",
        (),
        "every batch file read, as sent",
        RETENTION + " (the file adapter removes older days)",
    ),
    Place(
        "folder",
        "error/<client>/",
        "HETU",
        (),
        "batch files refused whole, as sent",
        RETENTION + " (the file adapter removes older files)",
    ),
    Place(
        "folder",
        "outbox/<client>/receipts/",
        "masked",
        (),
        "one receipt per file: counts, hub_ids, errors (HETUs masked); named after the file, "
        "as the sender named it",
        "until the sender removes them",
    ),
    Place(
        "folder",
        "outbox/<organiser>/invoices/",
        "",
        (),
        "Finvoice invoices of settlements: services and totals, no client",
        "until the organiser's system fetches them",
    ),
    Place(
        "log",
        "stderr of every hub process",
        "masked",
        (),
        "application and access logs: every line and traceback passes the HETU masker "
        "(hub/logs.py); no payload is logged",
        "as long as the log collector keeps them (outside the hub)",
    ),
    Place(
        "queue",
        "RabbitMQ queue HUB_QUEUE_NAME",
        "",
        (),
        "hub_ids and retry counters only (hub/topology.py apply_request): no payload, no HETU, "
        "nothing in headers",
        "until a worker has applied the message (seconds)",
    ),
    Place(
        "log",
        "/metrics",
        "",
        (),
        "counts by message type, sender and status: no HETU or payload text in any label",
        "not stored by the hub (the scraper's retention)",
    ),
)

_COUNT = text("SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass(:name)")
_OLDEST_MESSAGE = text("SELECT min(received_at) AS at FROM messages")


def _retention(settings: Settings) -> str:
    if settings.retention_days:
        return f"{settings.retention_days} days (HUB_RETENTION_DAYS)"
    return "kept until `hub purge` removes them (HUB_RETENTION_DAYS=0)"


def _files(root: Path, pattern: str) -> tuple[int, float | None]:
    count, oldest = 0, None
    for path in root.glob(pattern):
        if path.is_file():
            count += 1
            mtime = path.stat().st_mtime
            oldest = mtime if oldest is None else min(oldest, mtime)
    return count, oldest


_GLOBS = {
    "inbox/<client>/": "inbox/*/*",
    "work/<client>/": "work/*/*",
    "archive/<client>/YYYY-MM-DD/": "archive/*/*/*",
    "error/<client>/": "error/*/*",
    "outbox/<client>/receipts/": "outbox/*/receipts/*",
    "outbox/<organiser>/invoices/": "outbox/*/invoices/*",
}


def build_report(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """Each place with what it holds, for how long (the settings in force) and what it holds now:
    rows (the planner's estimate, -1 before the first ANALYZE) or files, and the oldest."""
    retention = _retention(settings)
    rows: list[dict[str, Any]] = []
    with unavailable_on_outage(), engine.connect() as conn:
        for place in PLACES:
            row: dict[str, Any] = {
                "kind": place.kind,
                "name": place.name,
                "personal": place.personal,
                "columns": list(place.columns),
                "what": place.what,
                "kept": place.kept.replace(RETENTION, retention),
            }
            if place.kind == "table":
                row["rows"] = conn.execute(_COUNT, {"name": place.name}).scalar_one_or_none()
                if place.name == "messages":
                    oldest = conn.execute(_OLDEST_MESSAGE).scalar_one_or_none()
                    row["oldest"] = oldest.isoformat() if oldest is not None else None
            elif place.name in _GLOBS:
                count, mtime = _files(Path(settings.data_dir), _GLOBS[place.name])
                row["files"] = count
                row["oldest"] = (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)) if mtime is not None else None
                )
            rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], settings: Settings) -> str:
    """The report as text, one block per place, personal data first."""
    order = {"HETU": 0, "client": 1, "masked": 2, "": 3}
    lines = [
        f"Client data kept by this hub (HUB_DATA_DIR={settings.data_dir}, retention: {_retention(settings)})",
        "",
    ]
    for row in sorted(rows, key=lambda r: order[r["personal"]]):
        label = {"HETU": "HETU in clear", "client": "client data", "masked": "HETUs masked only", "": "none"}
        lines.append(f"{row['kind']} {row['name']}  [{label[row['personal']]}]")
        if row["columns"]:
            lines.append(f"  columns: {', '.join(row['columns'])}")
        lines.append(f"  holds:   {row['what']}")
        lines.append(f"  kept:    {row['kept']}")
        now = []
        if "rows" in row:
            now.append(
                f"~{row['rows']} rows" if row["rows"] is not None and row["rows"] >= 0 else "rows unknown"
            )
        if "files" in row:
            now.append(f"{row['files']} files")
        if row.get("oldest"):
            now.append(f"oldest {row['oldest']}")
        if now:
            lines.append(f"  now:     {', '.join(now)}")
    return "\n".join(lines) + "\n"
