"""The `hub` command: parses the command line; `bootstrap.py` wires, `processes.py` runs.

One-shot commands (migrate, settle, clients, parties, invoices) get an engine from the
composition root for their duration; long-running ones hand over to their process.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from decimal import Decimal

from psop_hub import processes
from psop_hub.bootstrap import engine_for, load_settings
from psop_hub.hub.errors import HubError


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema."""
    from psop_hub.hub.migrator import ensure_database, migrate

    with engine_for(load_settings()) as engine:
        if ensure_database(engine):
            print(f"created database {engine.url.database}")
        migrate(engine)
    print("schema is up to date")
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


def cmd_clients_add(args: argparse.Namespace) -> int:
    """Register a sender; its secret is printed once, as the last line."""
    from psop_hub.hub.identifiers import check_business_id
    from psop_hub.hub.senders import add_client

    for flag, value in (("--organiser", args.organiser), ("--provider", args.provider)):
        if value is not None:
            try:
                check_business_id(value)
            except ValueError as exc:
                raise SystemExit(f"hub: {flag}: {exc}") from None
    try:
        with engine_for(load_settings()) as engine:
            secret = add_client(engine, args.name, args.role, args.organiser, args.provider)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    print(f"client {args.name} ({args.role}) added; its secret is shown only now:")
    print(secret)
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
    add.add_argument("--organiser", help="the organiser's business ID (role system)")
    add.add_argument("--provider", help="the provider's business ID (role provider)")
    add.set_defaults(func=cmd_clients_add)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hub` console script."""
    from psop_hub.hub.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(load_settings().log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
