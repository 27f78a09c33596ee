"""One scheduler settles at a time: the leader lock, and several broker URLs in the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from psop_hub.consumers.settlement import leadership
from psop_hub.hub.settings import Settings


def test_only_one_holder_of_the_leader_lock_at_a_time(engine: Engine) -> None:
    with leadership(engine) as first:
        assert first is True
        with leadership(engine) as second:  # another session: another scheduler
            assert second is False
    with leadership(engine) as again:  # released when the first run ended
        assert again is True


def test_a_list_of_broker_urls_names_the_cluster_nodes() -> None:
    settings = Settings(amqp_url="amqp://a:5672/%2F, amqp://b:5672/%2F,amqp://c:5672/%2F")
    assert settings.amqp_urls == ["amqp://a:5672/%2F", "amqp://b:5672/%2F", "amqp://c:5672/%2F"]
    assert Settings(amqp_url="amqp://one/%2F").amqp_urls == ["amqp://one/%2F"]
    with pytest.raises(ValidationError, match="amqp:// or amqps:// URLs"):
        Settings(amqp_url="amqp://a/%2F,http://b/")
