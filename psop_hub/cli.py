"""The `hub` command: parses the command line; `bootstrap.py` wires, `processes.py` runs.

One-shot commands (migrate, settle, clients, parties, invoices) get an engine from the
composition root for their duration; long-running ones hand over to their process.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from psop_hub import processes
from psop_hub.bootstrap import engine_for, load_settings
from psop_hub.hub.errors import HubError

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.engine import Engine

    from psop_hub.hub.publishing import Publisher
    from psop_hub.hub.search import MessageFilter


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema."""
    from psop_hub.hub.migrator import ensure_database, migrate

    with engine_for(load_settings()) as engine:
        if ensure_database(engine):
            print(f"created database {engine.url.database}")
        before, after = migrate(engine)
    if before == after:
        print(f"schema is up to date (revision {after})")
    else:
        print(f"schema is up to date: upgraded from {before or 'an empty database'} to {after}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Run the HTTP API (REST, SOAP, health, metrics) and the publishing relay."""
    processes.run_api(load_settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one Dramatiq worker process."""
    processes.run_worker(load_settings())
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    """Run the file adapter alone."""
    processes.run_files(load_settings())
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run the settlement scheduler: settles the previous month when it is due."""
    processes.run_scheduler(load_settings())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Migrate, then run every component in one supervised process tree."""
    settings = load_settings()
    cmd_migrate(args)
    return processes.run_all(settings, args.workers or settings.worker_processes)


def _month(value: str) -> date:
    from psop_hub.hub.calendar import parse_month

    try:
        return parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_settle(args: argparse.Namespace) -> int:
    """Build the settlements of one month and print what was created."""
    from psop_hub.consumers.settlement import build_settlements
    from psop_hub.hub.calendar import first_of_month, helsinki_now

    month: date = args.month
    label = f"{month:%Y-%m}"
    if month == first_of_month(helsinki_now().date()):
        print(
            f"hub: note: {label} is not over yet; what is delivered or reported after this run "
            "goes into a later settlement",
            file=sys.stderr,
        )
    try:
        with engine_for(load_settings()) as engine:
            created = build_settlements(engine, month)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    if not created:
        print(f"nothing to settle for {label}: no new or changed deliveries")
        return 0
    for s in created:
        print(s.line())
    total = sum((s.amount for s in created), Decimal("0.00"))
    print(f"total {label}: {len(created)} settlements, {total}")
    return 0


def _when(moment: datetime | None) -> str:
    """A moment as `hub clients` prints it: UTC, to the second (`-` for none)."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else "-"


def _duration(value: str) -> timedelta:
    from psop_hub.hub.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_clients_add(args: argparse.Namespace) -> int:
    """Register a sender; its secret is printed once, as the last line."""
    from psop_hub.hub.identifiers import check_business_id
    from psop_hub.hub.senders import issue_client

    given = [("--organiser", value) for value in args.organiser or ()]
    for flag, value in [*given, ("--provider", args.provider)]:
        if value is not None:
            try:
                check_business_id(value)
            except ValueError as exc:
                raise SystemExit(f"hub: {flag}: {exc}") from None
    settings = load_settings()
    try:
        with engine_for(settings) as engine:
            issued = issue_client(
                engine, args.name, args.role, args.organiser or (), args.provider, settings.secret_lifetime
            )
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    if args.role != "admin":
        from pathlib import Path

        from psop_hub.adapters.filedrop import client_folders

        try:
            folders = client_folders(Path(settings.data_dir), args.name)
        except OSError as exc:  # e.g. an API container without the file-drop volume: the client stands
            print(f"no file-drop folders made here ({exc.strerror}); the file adapter's host needs them")
            folders = []
        if folders is None:
            print(f"no file-drop folders made: {args.name!r} is not a plain folder name")
        elif folders:
            print("file drop: " + ", ".join(str(f) for f in folders))
    print(f"client {args.name} ({args.role}) added; its secret expires at {_when(issued.expires_at)} UTC")
    print("the secret is shown only now:")
    print(issued.secret)
    return 0


def cmd_clients_rotate(args: argparse.Namespace) -> int:
    """Give a client a new secret (printed once, last); the old one works for the grace period."""
    from psop_hub.hub.durations import duration_text
    from psop_hub.hub.senders import rotate_client

    settings = load_settings()
    grace: timedelta = args.grace if args.grace is not None else settings.secret_rotation_grace
    try:
        with engine_for(settings) as engine:
            issued = rotate_client(engine, args.name, grace, settings.secret_lifetime)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    if issued.previous_until is None:
        print(f"client {args.name} had no working secret; its new one replaces none")
    elif grace.total_seconds() <= 0:
        print(f"client {args.name}: the old secret is refused from now on (no grace period)")
    else:
        print(
            f"client {args.name}: the old secret keeps working until {_when(issued.previous_until)} UTC "
            f"(grace {duration_text(grace)}), then is refused, by every API replica"
        )
    print(f"the new secret expires at {_when(issued.expires_at)} UTC and is shown only now:")
    print(issued.secret)
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    """List the clients: name, role, scope, created, secret expiry, revoked; never a secret."""
    from psop_hub.hub.senders import list_clients

    settings = load_settings()
    with engine_for(settings) as engine:
        found = list_clients(engine)
    now = datetime.now(UTC)
    # A system client's organisers, comma-separated without spaces (one column, one word).
    scopes = {c.name: ",".join(c.organisers) or "-" for c in found}
    wide = max([10, *(len(s) for s in scopes.values())])
    print(
        f"{'NAME':<30} {'ROLE':<9} {'ORGANISER':<{wide}} {'PROVIDER':<10} {'CREATED':<20} "
        f"{'SECRET EXPIRES':<20} {'OLD SECRET UNTIL':<20} REVOKED"
    )
    for c in found:
        print(
            f"{c.name:<30} {c.role:<9} {scopes[c.name]:<{wide}} {c.provider or '-':<10} "
            f"{_when(c.created_at):<20} {_when(c.expires_at):<20} {_when(c.previous_until):<20} "
            f"{_when(c.revoked_at)}"
        )
        if c.revoked_at is not None:
            continue
        if c.expired:
            print(
                f"hub: {c.name}: its secret has expired; give it one with hub clients rotate", file=sys.stderr
            )
        elif c.expires_at is not None and c.expires_at - now <= settings.secret_expiry_warning:
            days = (c.expires_at - now).total_seconds() / 86400
            print(
                f"hub: {c.name}: its secret expires in {days:.1f} days; rotate it with hub clients rotate",
                file=sys.stderr,
            )
    return 0


def cmd_clients_revoke(args: argparse.Namespace) -> int:
    """Revoke a client: refused from now on by every replica, the file drop and the admin page."""
    from psop_hub.hub.senders import revoke_client

    try:
        with engine_for(load_settings()) as engine:
            revoked = revoke_client(engine, args.name)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    print(f"client {args.name} revoked at {revoked:%Y-%m-%d %H:%M:%S %Z}; its secret is refused from now on")
    return 0


def cmd_parties_set(args: argparse.Namespace) -> int:
    """Set an organiser's or provider's invoicing details; options not given keep their value."""
    from psop_hub.hub.parties import Party, get_party, set_party

    with engine_for(load_settings()) as engine:
        with engine.connect() as conn:
            old = get_party(conn, args.business_id)
        given = {k: getattr(args, k) for k in ("name", "street", "postcode", "town", "iban", "bic")}
        kept = {k: (v if v is not None else (getattr(old, k) if old else None)) for k, v in given.items()}
        if not kept["name"]:
            raise SystemExit(f"hub: party {args.business_id} is new: --name is required")
        try:
            party = Party(
                args.business_id,
                kept["name"],
                kept["street"] or "",
                kept["postcode"] or "",
                kept["town"] or "",
                kept["iban"],
                kept["bic"],
            )
            set_party(engine, party)
        except HubError as exc:
            raise SystemExit(f"hub: {exc}") from None
    print(f"party {args.business_id} saved")
    return 0


def cmd_invoices_write(args: argparse.Namespace) -> int:
    """Write (or write again) one settlement's Finvoice invoice."""
    from psop_hub.adapters.finvoice import write_invoice

    settings = load_settings()
    try:
        with engine_for(settings) as engine:
            path = write_invoice(engine, args.settlement, settings.data_dir)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    print(path)
    return 0


# --- admin: messages, replay, purge (hub.search, hub.replay, hub.replayjobs, hub.purge) ---------


def _actor() -> str:
    """Who an admin command acts as, for the audit log: the operator's login at this shell."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _filter_of(args: argparse.Namespace) -> MessageFilter:
    from psop_hub.hub.search import MessageFilter

    given = {
        "status": args.status,
        "type": args.type,
        "sender": args.sender,
        "organiser": args.organiser,
        "provider": args.provider,
        "since": args.since,
        "until": args.until,
        "q": args.q,
    }
    try:
        return MessageFilter.from_json({k: v for k, v in given.items() if v})
    except HubError as exc:
        raise SystemExit(f"hub: {_problems(exc)}") from None


def _problems(exc: HubError) -> str:
    from psop_hub.hub.errors import PermanentError

    if isinstance(exc, PermanentError) and exc.errors:
        return "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in exc.errors)
    return str(exc)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="append", help="a status (repeat for several)")
    parser.add_argument("--type", help="a message type, e.g. delivery.reported")
    parser.add_argument("--sender", help="the sender's client name")
    parser.add_argument("--organiser", help="the organiser's business ID")
    parser.add_argument("--provider", help="the provider's business ID")
    parser.add_argument("--since", help="received at or after (ISO 8601 with offset)")
    parser.add_argument("--until", help="received before (ISO 8601 with offset)")
    parser.add_argument("--q", help="a hub_id, message, correlation, voucher, order or event id")


def _hub_id(value: str) -> uuid.UUID:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a hub_id (a UUID)") from None


def cmd_messages_search(args: argparse.Namespace) -> int:
    """Search the message store; one line per message, newest first."""
    import json

    from psop_hub.hub.search import search_messages

    flt = _filter_of(args)
    with engine_for(load_settings()) as engine:
        page = search_messages(engine, flt, args.limit, args.offset, counts=True)
    counts = page.counts or {}
    if args.json:
        print(json.dumps(page.to_json(), indent=2, ensure_ascii=False))
        return 0
    shown = f"{page.offset + 1}-{page.offset + len(page.messages)}" if page.messages else "none"
    print(
        f"{page.total}{'' if page.total_exact else '+'} messages match ({shown} shown); "
        + ", ".join(f"{s} {n}" for s, n in counts.items() if n)
    )
    for m in page.messages:
        j = m.to_json()
        error = (
            f"  {j['last_error']}"
            if j["last_error"] and m.status in ("failed", "rejected", "retrying")
            else ""
        )
        print(
            f"{j['received_at'][:19]}  {j['hub_id']}  {m.status:<10} {m.type:<18} {m.sender:<16} "
            f"{j['reference'] or '-'}{error}"
        )
    return 0


def cmd_messages_show(args: argparse.Namespace) -> int:
    """One message with its payload (HETUs masked unless --reveal), errors and journey; audited."""
    import json

    from psop_hub.hub.search import show_message

    try:
        with engine_for(load_settings()) as engine:
            detail = show_message(engine, _actor(), args.hub_id, reveal=args.reveal, reason=args.reason or "")
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    j = detail.to_json()
    if args.json:
        print(json.dumps(j, indent=2, ensure_ascii=False))
        return 0
    for key in ("hub_id", "message_id", "type", "sender", "status", "channel", "correlation_id", "attempts"):
        print(f"{key + ':':<16}{j[key]}")
    for key in ("replay_of", "replaced_by"):
        if j[key]:
            print(f"{key + ':':<16}{j[key]}")
    for e in j["errors"]:
        print(f"{'error:':<16}{e.get('field') + ': ' if e.get('field') else ''}{e.get('message')}")
    print("journey:")
    for step in j["journey"]:
        print(f"  {step['at'][:23]}  {step['step']:<10} {step['detail']}")
    print("payload:")
    print(json.dumps(j["payload"], indent=2, ensure_ascii=False))
    return 0


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width if not total else int(width * done / total)
    percent = 100.0 if not total else 100.0 * done / total
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:5.1f}%"


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay one message (--hub-id) or, with filters, a bulk replay with a progress bar."""
    from psop_hub.bootstrap import publishing
    from psop_hub.hub import replay, replayjobs

    settings = load_settings()
    try:
        with engine_for(settings, pool_size=2) as engine:
            publisher, _ = publishing(settings, engine)
            try:
                if args.hub_id is not None:
                    result = replay.replay_message(
                        engine, _actor(), args.hub_id, args.reason or "", publisher
                    )
                    print(f"{result.hub_id}: {result.outcome} ({result.detail})")
                    return 0
                if not args.reason and not args.dry_run:
                    raise SystemExit("hub: --reason is required: say why these messages are replayed")
                if args.dry_run:
                    plan = replayjobs.plan_replay(
                        engine, _actor(), _filter_of(args), args.reason or "dry run"
                    )
                    statuses = ", ".join(f"{s} {n}" for s, n in plan.statuses.items()) or "none"
                    print(f"{plan.matched} messages would be replayed ({statuses}); a sample:")
                    for m in plan.sample:
                        j = m.to_json()
                        ref, error = j["reference"] or "-", j["last_error"] or ""
                        print(f"  {j['hub_id']}  {m.status:<9} {m.type:<18} {ref}  {error}")
                    print(f"replay exactly this set with: hub replay --plan {plan.plan_id} --reason ...")
                    return 0
                return _run_bulk(engine, publisher, args)
            finally:
                publisher.broker.close()
    except HubError as exc:
        raise SystemExit(f"hub: {_problems(exc)}") from None


def _run_bulk(engine: Engine, publisher: Publisher, args: argparse.Namespace) -> int:
    from psop_hub.hub import replayjobs

    runner = replayjobs.runner_name()
    flt = None if args.plan is not None else _filter_of(args)
    job = replayjobs.start_replay(engine, _actor(), args.reason, flt, args.plan, runner)
    print(f"replay job {job.job_id}: {job.matched} messages", file=sys.stderr)
    tty = sys.stderr.isatty()
    last = [-1]

    def progress(j: replayjobs.ReplayJob) -> None:
        step = j.done * 10 // max(1, j.matched)
        if tty:
            print(f"\r{_bar(j.done, j.matched)}", end="", file=sys.stderr, flush=True)
        elif step != last[0]:
            print(_bar(j.done, j.matched), file=sys.stderr, flush=True)
        last[0] = step

    try:
        done = replayjobs.run_job(engine, job.job_id, runner, publisher, progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the hub's API processes go on with job {job.job_id}", file=sys.stderr)
        return 130
    if tty:
        print(file=sys.stderr)
    print(
        f"job {done.job_id} {done.status}: matched {done.matched}, queued {done.queued}, "
        f"skipped {done.skipped_applied} already applied, {done.skipped_changed} no longer failed"
    )
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Remove resolved messages older than --older-than days (never unresolved failures)."""
    from psop_hub.hub.purge import purge

    try:
        with engine_for(load_settings()) as engine:
            report = purge(engine, _actor(), args.older_than, dry_run=args.dry_run)
    except HubError as exc:
        raise SystemExit(f"hub: {_problems(exc)}") from None
    verb = "would remove" if report.dry_run else "removed"
    removed = ", ".join(f"{s} {n}" for s, n in sorted(report.removed.items())) or "nothing"
    kept = ", ".join(f"{s} {n}" for s, n in sorted(report.kept.items())) or "none"
    print(f"messages last changed before {report.cutoff.isoformat()}:")
    print(f"  {verb} {report.total} messages ({removed}) and {report.journey_steps} journey steps")
    print(f"  kept {sum(report.kept.values())} (unresolved, or edits whose copy is kept: {kept})")
    masked = "would mask" if report.dry_run else "masked"
    print(
        f"service ended before {report.cutoff.date().isoformat()}: {masked} the client's HETU of "
        f"{report.erased.get('vouchers', 0)} vouchers and {report.erased.get('orders', 0)} orders"
    )
    return 0


def cmd_privacy_report(args: argparse.Namespace) -> int:
    """Where client data is kept (tables, folders, logs, the queue) and for how long."""
    import json

    from psop_hub.hub.privacyreport import build_report, render

    settings = load_settings()
    try:
        with engine_for(settings) as engine:
            rows = build_report(engine, settings)
    except HubError as exc:
        raise SystemExit(f"hub: {_problems(exc)}") from None
    if args.json:
        print(json.dumps({"retention_days": settings.retention_days, "places": rows}, indent=2))
    else:
        print(render(rows, settings), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="hub", description="psop-hub integration hub")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(func=cmd_migrate)
    run = sub.add_parser("run", help="run every component in one supervised process tree")
    run.add_argument(
        "--workers", type=int, default=None, help="worker processes (default HUB_WORKER_PROCESSES)"
    )
    run.set_defaults(func=cmd_run)
    sub.add_parser("api", help="run the HTTP API alone").set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run one worker process alone").set_defaults(func=cmd_worker)
    sub.add_parser("files", help="run the file adapter alone").set_defaults(func=cmd_files)
    sub.add_parser("scheduler", help="run the monthly settlement scheduler alone").set_defaults(
        func=cmd_scheduler
    )
    settle = sub.add_parser("settle", help="build the settlements of one month")
    settle.add_argument("--month", required=True, type=_month, help="the month to settle, YYYY-MM")
    settle.set_defaults(func=cmd_settle)
    clients = sub.add_parser("clients", help="manage senders").add_subparsers(
        dest="clients_command", required=True
    )
    add = clients.add_parser("add", help="register a sender and print its secret once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["system", "provider", "admin"])
    add.add_argument(
        "--organiser",
        action="append",
        help="an organiser's business ID (role system); repeat it for a system acting for several",
    )
    add.add_argument("--provider", help="the provider's business ID (role provider)")
    add.set_defaults(func=cmd_clients_add)
    listing = clients.add_parser("list", help="list the clients (no secrets)")
    listing.set_defaults(func=cmd_clients_list)
    revoke = clients.add_parser("revoke", help="refuse a client's secret from now on, on every replica")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_clients_revoke)
    rotate = clients.add_parser(
        "rotate", help="give a client a new secret (printed once); the old one works for a grace period"
    )
    rotate.add_argument("name")
    rotate.add_argument(
        "--grace",
        type=_duration,
        default=None,
        help="how long the old secret keeps working: 7d, 12h, 30m, 0 (default HUB_SECRET_ROTATION_GRACE)",
    )
    rotate.set_defaults(func=cmd_clients_rotate)
    parties = sub.add_parser("parties", help="invoicing details").add_subparsers(
        dest="parties_command", required=True
    )
    party = parties.add_parser("set", help="set an organiser's or provider's name, address and account")
    party.add_argument("business_id")
    party.add_argument("--name", help="required for a new party")
    party.add_argument("--street")
    party.add_argument("--postcode")
    party.add_argument("--town")
    party.add_argument("--iban")
    party.add_argument("--bic")
    party.set_defaults(func=cmd_parties_set)
    invoices = sub.add_parser("invoices", help="Finvoice invoices").add_subparsers(
        dest="invoices_command", required=True
    )
    write = invoices.add_parser("write", help="write one settlement's invoice to the organiser's outbox")
    write.add_argument("--settlement", required=True)
    write.set_defaults(func=cmd_invoices_write)
    msgs = sub.add_parser("messages", help="search and inspect stored messages").add_subparsers(
        dest="messages_command", required=True
    )
    found = msgs.add_parser("search", help="messages matching the filters, newest first")
    _add_filters(found)
    found.add_argument("--limit", type=int, default=50)
    found.add_argument("--offset", type=int, default=0)
    found.add_argument("--json", action="store_true", help="print the API's JSON")
    found.set_defaults(func=cmd_messages_search)
    show = msgs.add_parser("show", help="one message: payload, errors, journey (the read is audited)")
    show.add_argument("hub_id", type=_hub_id)
    show.add_argument("--reveal", action="store_true", help="show HETUs unmasked")
    show.add_argument("--reason", help="why you look (kept in the audit log)")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.set_defaults(func=cmd_messages_show)
    rep = sub.add_parser("replay", help="replay failed and rejected messages (one, or by filter)")
    _add_filters(rep)
    rep.add_argument("--hub-id", type=_hub_id, help="replay this one message")
    rep.add_argument("--plan", type=_hub_id, help="replay exactly the set a --dry-run counted")
    rep.add_argument("--dry-run", action="store_true", help="count and show a sample; replay nothing")
    rep.add_argument("--reason", help="why (required for a bulk replay; kept in the audit log)")
    rep.set_defaults(func=cmd_replay)
    pur = sub.add_parser(
        "purge",
        help="remove resolved messages older than DAYS (never failures); mask ended services' clients",
    )
    pur.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    pur.add_argument("--dry-run", action="store_true", help="say what would be removed")
    pur.set_defaults(func=cmd_purge)
    privacy = sub.add_parser("privacy", help="client data kept by the hub").add_subparsers(
        dest="privacy_command", required=True
    )
    report = privacy.add_parser("report", help="where client data is stored and for how long")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    report.set_defaults(func=cmd_privacy_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hub` console script."""
    from psop_hub.hub.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(load_settings().log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
