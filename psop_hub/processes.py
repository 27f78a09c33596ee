"""The hub's long-running processes, each built by the composition root (`bootstrap.py`):
the HTTP API, a worker, the file adapter, the settlement scheduler, and the supervisor of
`hub run` that runs them all. Each container runs exactly one of the first four.

Every process stops the same way (`until_stopped`): SIGTERM or SIGINT sets an event, the
process finishes the work in hand and returns.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from fastapi import FastAPI

from psop_hub.bootstrap import api_services, broker_for, engine_for, load_settings, publishing
from psop_hub.hub.logs import configure_logging
from psop_hub.hub.settings import Settings

log = logging.getLogger(__name__)


def until_stopped(*also: threading.Event) -> threading.Event:
    """An event set by SIGTERM or SIGINT (which also set `also`, e.g. a loop's wake-up event)."""
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for event in also:
            event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stopping


def started_up() -> None:
    """Move everything a process holds once it has started (modules, the app, its settings and
    pools: hundreds of thousands of objects) out of the garbage collector's sight. Every full
    collection would walk them all again: under load that was ~5 % of the API's CPU."""
    gc.collect()
    gc.freeze()


# --- the API -----------------------------------------------------------------------------------


def api_app() -> FastAPI:
    """The API application of one uvicorn worker process (uvicorn's factory)."""
    from psop_hub.api import connection
    from psop_hub.api.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level)  # uvicorn's worker processes start without it
    connection.configure(settings.header_timeout_s, settings.max_header_bytes)
    app = create_app(api_services(settings))
    started_up()
    return app


def run_api(settings: Settings) -> None:
    """`hub api`: REST, SOAP, health and metrics, and the publishing relay."""
    import uvicorn

    from psop_hub.api.connection import HubHttpProtocol

    # uvicorn's own start-up lines (four per process) are left to HUB_LOG_LEVEL=DEBUG: this is the one.
    log.info(
        "api listening on http://%s:%d (%d process%s)",
        settings.http_host,
        settings.http_port,
        settings.api_workers,
        "" if settings.api_workers == 1 else "es",
    )
    uvicorn.run(
        "psop_hub.processes:api_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.api_workers,
        # httptools with the header limit and deadline it lacks (api/connection.py).
        http=HubHttpProtocol,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.api_max_connections,
        log_level=None,  # the levels are set by configure_logging (uvicorn's start-up chatter off)
        timeout_graceful_shutdown=settings.api_shutdown_timeout_s,
        access_log=False,
        log_config=None,  # uvicorn logs through our handler and its HETU filter
    )


# --- a worker ----------------------------------------------------------------------------------


def run_worker(settings: Settings) -> None:
    """`hub worker`: consume until SIGTERM or SIGINT, then finish the messages in hand and stop."""
    import dramatiq

    from psop_hub.consumers.worker import register_actor

    with engine_for(settings, pool_size=settings.worker_threads) as engine:
        broker = broker_for(settings)
        dramatiq.set_broker(broker)  # before the actor is registered: it binds to this broker
        register_actor(broker, settings, engine)
        worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads)
        stopping = until_stopped()
        started_up()
        worker.start()
        log.info("worker started: %d threads on queue %s", settings.worker_threads, settings.queue_name)
        stopping.wait()
        log.info("worker stopping: finishing the messages in hand")
        worker.stop(timeout=settings.worker_shutdown_timeout_s * 1000)
        broker.close()


# --- the file adapter --------------------------------------------------------------------------


def run_files(settings: Settings) -> None:
    """`hub files`: scan the inboxes on every inotify wake-up or poll interval until SIGTERM or
    SIGINT; the file in hand is finished first. A relay runs here too, so records are published
    without an API; the results of files whose records are all final are written beside their
    receipts, and new settlements' Finvoice invoices to the organisers' outboxes."""
    from psop_hub.adapters import fileretention
    from psop_hub.adapters.filedrop import FileDrop
    from psop_hub.adapters.filewatch import watch
    from psop_hub.adapters.invoices import Backlog, write_pending
    from psop_hub.adapters.results import write_ready
    from psop_hub.hub.publishing import Dispatcher

    # A connection each for the scan, its storing thread, the publishing thread and the relay.
    with engine_for(settings, pool_size=4) as engine:
        publisher, relay = publishing(settings, engine)
        # One publishing thread: a file's batches go to the workers in the order they were read.
        dispatcher = Dispatcher(publisher, threads=1, linger_ms=0)
        drop = FileDrop(settings, engine, dispatcher.submit)
        wake = threading.Event()
        stopping = until_stopped(wake)
        observer = watch(drop.root, wake)
        dispatcher.start()
        relay.start()
        backlog = Backlog()
        started_up()
        log.info("file adapter watching %s (%s)", drop.root / "inbox", "inotify" if observer else "polling")
        next_retention = 0.0
        while not stopping.is_set():
            wake.clear()
            try:
                drop.scan_once()
                write_ready(engine, drop.root)
                write_pending(engine, drop.root, backlog)
                if settings.retention_days and time.monotonic() >= next_retention:
                    fileretention.remove_old_files(drop.root, settings.retention_days)
                    next_retention = time.monotonic() + fileretention.EVERY_S
            except Exception:
                # The files stay where they are (inbox, or claimed in work/): the next round retries.
                log.exception("file scan failed; trying again in %.1fs", settings.files_poll_s)
            wake.wait(settings.files_poll_s)
        if observer is not None:
            observer.stop()
        dispatcher.stop()
        relay.stop()
        publisher.broker.close()


# --- the scheduler -----------------------------------------------------------------------------


def run_scheduler(settings: Settings) -> None:
    """`hub scheduler`: settle the previous month when due, re-checking until SIGTERM or SIGINT."""
    from psop_hub.consumers.settlement import leadership, scheduled_run
    from psop_hub.hub.calendar import helsinki_now
    from psop_hub.hub.errors import TransientError
    from psop_hub.hub.purge import RETENTION_EVERY_S, apply_retention

    with engine_for(settings) as engine:
        stopping = until_stopped()
        log.info(
            "scheduler started: settles the previous month from day %d at %02d:00 Europe/Helsinki, "
            "checking every %ss; retention %s",
            settings.settle_day,
            settings.settle_hour,
            settings.scheduler_interval_s,
            f"{settings.retention_days} days" if settings.retention_days else "off",
        )
        next_retention = 0.0  # monotonic time of the next purge: the first check runs one
        while not stopping.is_set():
            with leadership(engine) as leader:
                if leader:
                    scheduled_run(engine, settings, helsinki_now(), stopping)
                    if settings.retention_days and time.monotonic() >= next_retention:
                        try:
                            apply_retention(engine, settings.retention_days)
                            next_retention = time.monotonic() + RETENTION_EVERY_S
                        except TransientError as exc:
                            log.warning("retention postponed to the next check: %s", exc)
                else:
                    log.info("another scheduler holds the leader lock: this one waits")
            stopping.wait(settings.scheduler_interval_s)
    log.info("scheduler stopped")


# --- the supervisor of `hub run` ---------------------------------------------------------------

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A child whose supervisor is killed must not live on as an orphan consumer.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Component:
    """One supervised child process: `hub ARGS` with this interpreter."""

    name: str
    args: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        """Start (or restart) the process in its own session, so Ctrl-C reaches only the supervisor."""
        argv = [sys.executable, "-m", "psop_hub.cli", *self.args]
        self.process = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        # The first start is told by the component's own line; a restart by the supervisor.
        level = logging.INFO if self.restarts else logging.DEBUG
        log.log(level, "started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    """Runs components until told to stop; a component that exits is restarted with backoff."""

    def __init__(self, components: list[Component], grace_s: float = 30.0) -> None:
        self.components = components
        self.grace_s = grace_s

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM; returns the exit code."""
        stopping = until_stopped()
        for component in self.components:
            component.start()
        while not stopping.is_set():
            now = time.monotonic()
            for c in self.components:
                if c.process is not None and c.process.poll() is not None:
                    if now - c.started_at > 60:
                        c.restarts = 0  # it ran fine for a while: this is a new crash, not a loop
                    delay = min(30.0, 0.5 * 2 ** min(c.restarts, 6))
                    log.error("%s exited with %s; restarting in %.1fs", c.name, c.process.returncode, delay)
                    c.process = None
                    c.restarts += 1
                    c.next_start = now + delay
                if c.process is None and now >= c.next_start:
                    c.start()
            stopping.wait(0.2)
        return self.shutdown()

    def shutdown(self) -> int:
        """SIGTERM every child, wait for them to finish their work, SIGKILL what is left."""
        log.info("stopping: waiting for every component to finish the work in hand")
        live = [c.process for c in self.components if c.process is not None and c.process.poll() is None]
        for p in live:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in time; killing it", p.pid)
                p.kill()
                p.wait()
        log.info("stopped")
        return 0


def run_all(settings: Settings, workers: int) -> int:
    """`hub run`: the API, `workers` workers, the file adapter and the scheduler, supervised."""
    components = [Component("api", ("api",))]
    components += [Component(f"worker-{i + 1}", ("worker",)) for i in range(workers)]
    if settings.files_enabled:
        components.append(Component("files", ("files",)))
    if settings.scheduler_enabled:
        components.append(Component("scheduler", ("scheduler",)))
    names = ", ".join(c.name for c in components)
    print(f"hub running on port {settings.http_port}: {names} (Ctrl-C stops)", flush=True)
    return Supervisor(components).run()
