"""The `hub` command: the composition root that wires settings to every component."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from decimal import Decimal

from pydantic import ValidationError

from psop_hub.hub.settings import Settings, get_settings


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"HUB_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"hub: invalid configuration: {problems}") from None


def _logging(settings: Settings) -> None:
    from psop_hub.hub.logs import configure_logging

    configure_logging(settings.log_level)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema."""
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.schema import ensure_database, migrate

    engine = make_engine(_settings(), pool_size=1)
    if ensure_database(engine):
        print(f"created database {engine.url.database}")
    migrate(engine)
    engine.dispose()
    print("schema is up to date")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Run the HTTP API (REST, health, metrics) and the publishing relay."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "psop_hub.api.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
        access_log=False,
        log_config=None,  # uvicorn logs through our handler and its HETU filter
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one Dramatiq worker process."""
    from psop_hub.consumers.worker import run_worker

    run_worker(_settings())
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    """Run the file adapter alone."""
    from psop_hub.adapters.filewatch import run_files

    run_files(_settings())
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run the settlement scheduler: settles the previous month when it is due."""
    from psop_hub.consumers.settlement import run_scheduler

    run_scheduler(_settings())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Migrate, then run every component in one supervised process tree."""
    from psop_hub.hub.supervisor import Supervisor, python_component

    settings = _settings()
    cmd_migrate(args)
    workers = args.workers or settings.worker_processes
    components = [python_component("api", "api")]
    components += [python_component(f"worker-{i + 1}", "worker") for i in range(workers)]
    if settings.files_enabled:
        components.append(python_component("files", "files"))
    if settings.scheduler_enabled:
        components.append(python_component("scheduler", "scheduler"))
    names = ", ".join(c.name for c in components)
    print(f"hub running on port {settings.http_port}: {names} (Ctrl-C stops)", flush=True)
    return Supervisor(components).run()


def _month(value: str) -> date:
    from psop_hub.consumers.settlement import parse_month

    try:
        return parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_settle(args: argparse.Namespace) -> int:
    """Build the settlements of one month and print what was created."""
    from psop_hub.consumers.settlement import build_settlements, first_of_month, helsinki_now
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.errors import HubError

    month: date = args.month
    label = f"{month:%Y-%m}"
    if month == first_of_month(helsinki_now().date()):
        print(
            f"hub: note: {label} is not over yet; what is delivered or reported after this run "
            "goes into a later settlement",
            file=sys.stderr,
        )
    engine = make_engine(_settings(), pool_size=1)
    try:
        created = build_settlements(engine, month)
    except HubError as exc:
        raise SystemExit(f"hub: {exc}") from None
    finally:
        engine.dispose()
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
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.errors import HubError
    from psop_hub.hub.senders import add_client
    from psop_hub.mappings.identifiers import check_business_id

    for flag, value in (("--organiser", args.organiser), ("--provider", args.provider)):
        if value is not None:
            try:
                check_business_id(value)
            except ValueError as exc:
                raise SystemExit(f"hub: {flag}: {exc}") from None
    engine = make_engine(_settings(), pool_size=1)
    try:
        secret = add_client(engine, args.name, args.role, args.organiser, args.provider)
    except (ValueError, HubError) as exc:
        raise SystemExit(f"hub: {exc}") from None
    finally:
        engine.dispose()
    print(f"client {args.name} ({args.role}) added; its secret is shown only now:")
    print(secret)
    return 0


def cmd_parties_set(args: argparse.Namespace) -> int:
    """Set an organiser's or provider's invoicing details; options not given keep their value."""
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.parties import Party, get_party, set_party

    engine = make_engine(_settings(), pool_size=1)
    try:
        with engine.connect() as conn:
            old = get_party(conn, args.business_id)
        given = {k: getattr(args, k) for k in ("name", "street", "postcode", "town", "iban", "bic")}
        kept = {k: (v if v is not None else (getattr(old, k) if old else None)) for k, v in given.items()}
        if not kept["name"]:
            raise SystemExit(f"hub: party {args.business_id} is new: --name is required")
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
    except ValueError as exc:
        raise SystemExit(f"hub: {exc}") from None
    finally:
        engine.dispose()
    print(f"party {args.business_id} saved")
    return 0


def cmd_invoices_write(args: argparse.Namespace) -> int:
    """Write (or write again) one settlement's Finvoice invoice."""
    from psop_hub.adapters.finvoice import write_invoice
    from psop_hub.hub.database import make_engine
    from psop_hub.hub.errors import HubError

    settings = _settings()
    engine = make_engine(settings, pool_size=1)
    try:
        path = write_invoice(engine, args.settlement, settings.data_dir)
    except (ValueError, HubError) as exc:
        raise SystemExit(f"hub: {exc}") from None
    finally:
        engine.dispose()
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
    args = build_parser().parse_args(argv)
    _logging(_settings())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
