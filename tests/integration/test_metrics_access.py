"""Who may read `/metrics` (docs/operations.md): by default the scrape token HUB_METRICS_TOKEN or
an admin client's secret; nobody else (401 without credentials or with unknown ones, 403 for a
system's or a provider's secret); HUB_METRICS_ACCESS=open answers anyone. The token works while
the database is down, so the scrape still tells that the database is down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from tests.messages import ORGANISER, PROVIDER, uid

TOKEN = "metrics-access-test-token-0123456789abcdef"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_services(settings.model_copy(update={"metrics_token": TOKEN})))) as client:
        yield client


def test_only_the_token_and_admins_read_the_metrics(api: TestClient, engine: Engine) -> None:
    admin = add_client(engine, uid("admin"), "admin", None, None)
    system = add_client(engine, uid("county"), "system", ORGANISER, None)
    provider = add_client(engine, uid("provider"), "provider", None, PROVIDER)
    for headers in (bearer(TOKEN), bearer(admin)):
        answer = api.get("/metrics", headers=headers)
        assert answer.status_code == 200, answer.text
        assert "hub_client_secrets_expiring" in answer.text
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Basic eDp5"}, 401),
        (bearer(TOKEN + "x"), 401),
        (bearer(TOKEN[:-1]), 401),
        (bearer(system), 403),
        (bearer(provider), 403),
    ):
        answer = api.get("/metrics", headers=headers)
        assert answer.status_code == status, (headers, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "hub_messages" not in answer.text


def test_open_access_answers_anyone(settings: Settings) -> None:
    with TestClient(create_app(api_services(settings.model_copy(update={"metrics_access": "open"})))) as api:
        assert api.get("/metrics").status_code == 200


def test_the_token_works_while_the_database_is_down(settings: Settings) -> None:
    broken = {"database_url": "postgresql://root@127.0.0.1:1/nowhere", "metrics_token": TOKEN}
    with TestClient(
        create_app(api_services(settings.model_copy(update={**broken, "relay_interval_s": 60})))
    ) as api:
        answer = api.get("/metrics", headers=bearer(TOKEN))
    assert answer.status_code == 200
    assert 'hub_metrics_source_up{source="database"} 0.0' in answer.text


def test_the_settings_refuse_a_short_token_and_read_durations() -> None:
    with pytest.raises(ValidationError):
        Settings(metrics_token="short")
    with pytest.raises(ValidationError):
        Settings(metrics_access="anyone")
    read = Settings(secret_lifetime="90d", secret_rotation_grace="1d12h", secret_expiry_warning="P14D")  # type: ignore[arg-type]
    assert read.secret_lifetime == timedelta(days=90)
    assert read.secret_rotation_grace == timedelta(hours=36)
    assert read.secret_expiry_warning == timedelta(days=14)
    assert Settings().secret_lifetime == timedelta(days=365)
    assert Settings().secret_rotation_grace == timedelta(days=7)
    for wrong in ("0s", "-1d", "soon"):
        with pytest.raises(ValidationError):
            Settings(secret_lifetime=wrong)  # type: ignore[arg-type]
