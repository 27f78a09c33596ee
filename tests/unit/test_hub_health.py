"""docker/hub-health, the containers' health checks: a list of AMQP URLs (a cluster's nodes)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "hub-health"


def load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("hub_health", str(SCRIPT))
    spec = importlib.util.spec_from_loader("hub_health", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_any_reachable_node_of_the_list_is_enough(listening: int, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = f"amqp://hub:x@nonexistent.invalid:5672/psop, amqp://hub:x@127.0.0.1:{listening}/psop"
    monkeypatch.setenv("HUB_AMQP_URL", urls)
    assert load().reachable("HUB_AMQP_URL", 5672) is True


def test_no_reachable_node_is_unhealthy_and_names_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    monkeypatch.setenv("HUB_AMQP_URL", f"amqp://a@nonexistent.invalid:5672/p,amqp://a@127.0.0.1:{closed}/p")
    assert load().reachable("HUB_AMQP_URL", 5672) is False
    err = capsys.readouterr().err
    assert "nonexistent.invalid:5672" in err and f"127.0.0.1:{closed}" in err
