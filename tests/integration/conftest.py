"""Integration fixtures: the helpers' senders exist as clients, as every real sender does."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from psop_hub.hub.senders import add_client
from tests.integration.helpers import PROVIDER_SENDER, SYSTEM


@pytest.fixture(scope="session", autouse=True)
def registered_senders(engine: Engine) -> None:
    """Register SYSTEM and PROVIDER_SENDER: the handlers look a sender's role up by its name."""
    for sender in (SYSTEM, PROVIDER_SENDER):
        add_client(engine, sender.name, sender.role, sender.organisers, sender.provider)
