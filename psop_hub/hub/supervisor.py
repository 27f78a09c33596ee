"""A small process supervisor for `hub run`: starts the components, restarts any that dies,
and on SIGINT/SIGTERM stops them all gracefully (each finishes the work in hand)."""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A child whose supervisor is killed must not live on as an orphan consumer.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Component:
    """One supervised child process."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        """Start (or restart) the process in its own session, so Ctrl-C reaches only the supervisor."""
        self.process = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    """Runs components until told to stop; a component that exits is restarted with backoff."""

    def __init__(self, components: list[Component], grace_s: float = 30.0) -> None:
        self.components = components
        self.grace_s = grace_s
        self.stopping = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM; returns the exit code."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for component in self.components:
            component.start()
        while not self.stopping:
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
            time.sleep(0.2)
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
                log.error("pid %d did not stop in time; killing it", p.pid)
                p.kill()
                p.wait()
        log.info("stopped")
        return 0


def python_component(name: str, *args: str) -> Component:
    """A component that runs `python -m psop_hub.cli ARGS` with this interpreter."""
    return Component(name=name, argv=[sys.executable, "-m", "psop_hub.cli", *args])
