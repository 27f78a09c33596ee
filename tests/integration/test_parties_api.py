"""`GET`/`PUT /api/v1/parties/{business_id}` and the settlements whose invoice waits for details:
each role allowed or refused, every bad field answered at once, and a waiting invoice written by
the file adapter's next round once a PUT completes the details."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from psop_hub.adapters.finvoice import invoice_path
from psop_hub.adapters.invoices import Backlog, write_pending
from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.consumers.settlement import settle_pair
from psop_hub.hub.parties import get_party
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from psop_hub.hub.settlement_views import settlements_waiting_for_details
from tests.integration.settling import add_delivery, business_id
from tests.messages import uid

SELLER = {
    "name": "Hoivapalvelu Onnela Oy",
    "street": "Kauppakatu 12",
    "postcode": "40100",
    "town": "Jyväskylä",
    "iban": "FI21 1234 5600 0007 85",
    "bic": "NDEAFIHH",
}
BUYER = {
    "name": "Keski-Suomen hyvinvointialue",
    "street": "Keskussairaalantie 19",
    "postcode": "40620",
    "town": "Jyväskylä",
}


class Api:
    """An in-process API with an organiser, a provider and their clients."""

    def __init__(self, client: TestClient, engine: Engine) -> None:
        self.client = client
        self.organiser, self.provider = business_id(), business_id()
        self.other_organiser, self.other_provider = business_id(), business_id()
        roles = {
            "admin": ("admin", None, None),
            "county": ("system", self.organiser, None),
            "other-county": ("system", self.other_organiser, None),
            "provider": ("provider", None, self.provider),
            "other-provider": ("provider", None, self.other_provider),
        }
        self.secrets = {who: add_client(engine, uid(who), *scope) for who, scope in roles.items()}

    def call(self, who: str | None, method: str, path: str, body: Any = None) -> Any:
        """One request as the named client (or anonymous)."""
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        return self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[Api]:
    """A fresh set of parties and clients against an in-process API."""
    with TestClient(create_app(api_services(settings))) as client:
        yield Api(client, engine)


def test_each_role_may_manage_only_its_own_details(api: Api) -> None:
    provider, organiser = f"/api/v1/parties/{api.provider}", f"/api/v1/parties/{api.organiser}"
    assert api.call("provider", "PUT", provider, SELLER).status_code == 200
    assert api.call("county", "PUT", organiser, BUYER).status_code == 200
    allowed = [("provider", provider), ("county", organiser), ("admin", provider), ("admin", organiser)]
    for who, path in allowed:
        assert api.call(who, "GET", path).status_code == 200, (who, path)
    refused = [
        ("other-provider", provider),
        ("provider", organiser),
        ("other-county", organiser),
        ("county", provider),  # an organiser does not set its providers' accounts
    ]
    for who, path in refused:
        for method, body in (("GET", None), ("PUT", SELLER)):
            answer = api.call(who, method, path, body)
            assert answer.status_code == 403, (who, method, path, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
    assert api.call(None, "GET", provider).status_code == 401
    assert api.call("provider", "GET", provider).json()["name"] == SELLER["name"]  # nothing changed


def test_a_refusal_does_not_tell_whether_details_exist(api: Api) -> None:
    stored, unknown = f"/api/v1/parties/{api.provider}", f"/api/v1/parties/{business_id()}"
    api.call("admin", "PUT", stored, SELLER)
    first, second = api.call("other-provider", "GET", stored), api.call("other-provider", "GET", unknown)
    assert first.status_code == second.status_code == 403
    assert first.json()["detail"] == second.json()["detail"]
    assert api.call("admin", "GET", unknown).status_code == 404
    assert api.call("admin", "GET", "/api/v1/parties/not-an-id").status_code == 404
    assert api.call("provider", "GET", "/api/v1/parties/not-an-id").status_code == 403


def test_put_stores_normalised_details_and_says_what_an_invoice_still_needs(api: Api) -> None:
    path = f"/api/v1/parties/{api.provider}"
    answer = api.call("provider", "PUT", path, {**SELLER, "bic": "ndeafihh", "iban": None})
    assert answer.status_code == 200, answer.text
    assert answer.json()["bic"] == "NDEAFIHH" and answer.json()["iban"] is None
    assert answer.json()["missing_for_invoice"] == {"as_provider": ["iban"], "as_organiser": []}
    api.call("provider", "PUT", path, SELLER)
    got = api.call("provider", "GET", path).json()
    assert (got["business_id"], got["iban"]) == (api.provider, "FI2112345600000785")
    assert got["missing_for_invoice"] == {"as_provider": [], "as_organiser": []}
    # PUT replaces the record: what is left out is cleared.
    cleared = api.call("admin", "PUT", path, {"name": "Onnela Oy"}).json()
    assert (cleared["street"], cleared["iban"], cleared["bic"]) == ("", None, None)


def test_every_bad_field_in_one_problem(api: Api) -> None:
    body = {
        "name": "X",
        "postcode": "4010",
        "town": 7,
        "iban": "FI21 1234 5600 0007 86",
        "bic": "NDEA",
        "x": 1,
    }
    answer = api.call("admin", "PUT", f"/api/v1/parties/{api.provider}", body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert set(errors) == {"name", "postcode", "town", "iban", "bic", "x"}
    assert "not a valid IBAN" in errors["iban"]
    bad_id = api.call("admin", "PUT", "/api/v1/parties/2077474-1", {"name": "Oy", "bic": "X"})
    assert {e["field"] for e in bad_id.json()["errors"]} == {"business_id", "bic"}
    assert api.call("admin", "PUT", f"/api/v1/parties/{api.provider}", "text").status_code == 422
    not_json = api.client.put(
        f"/api/v1/parties/{api.provider}",
        content=b"{",
        headers={"Authorization": f"Bearer {api.secrets['admin']}", "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    untyped = api.client.put(
        f"/api/v1/parties/{api.provider}",
        content=b'{"name": "Oy"}',
        headers={"Authorization": f"Bearer {api.secrets['admin']}"},
    )
    assert untyped.status_code == 415
    assert api.call("admin", "GET", f"/api/v1/parties/{api.provider}").status_code == 404  # nothing stored


def settlement(engine: Engine, organiser: str, provider: str) -> str:
    """A settlement of March 2026 for the pair; its id."""
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "2.5", "25.00")
    summary = settle_pair(engine, organiser, provider, date(2026, 3, 1))
    assert summary is not None
    return summary.settlement_id


def waiting(engine: Engine, settlement_id: str) -> Any:
    """The waiting entry of one settlement, or None."""
    return next(
        (w for w in settlements_waiting_for_details(engine) if w.settlement_id == settlement_id), None
    )


def test_a_waiting_invoice_is_listed_and_written_after_put(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settlement_id = settlement(engine, api.organiser, api.provider)
    backlog = Backlog()
    write_pending(engine, tmp_path, backlog, limit=10_000)
    path = invoice_path(tmp_path, api.organiser, settlement_id)
    assert not path.exists()

    entry = waiting(engine, settlement_id)
    assert entry is not None
    assert (entry.organiser, entry.provider, entry.month) == (api.organiser, api.provider, date(2026, 3, 1))
    assert entry.waiting_for == ("provider", "organiser")
    assert entry.provider_missing == ("name", "iban", "bic", "street", "postcode", "town")

    listed = api.call("admin", "GET", "/api/v1/admin/settlements/waiting?limit=10000").json()
    row = next(s for s in listed["settlements"] if s["settlement_id"] == settlement_id)
    assert row["month"] == "2026-03" and row["amount"] == "62.50"
    assert row["waiting_for"] == ["provider", "organiser"]
    for who in ("county", "provider", None):
        assert api.call(who, "GET", "/api/v1/admin/settlements/waiting").status_code in (401, 403)

    api.call("provider", "PUT", f"/api/v1/parties/{api.provider}", {**SELLER, "bic": None})
    entry = waiting(engine, settlement_id)
    assert entry is not None and entry.provider_missing == ("bic",)
    api.call("provider", "PUT", f"/api/v1/parties/{api.provider}", SELLER)
    entry = waiting(engine, settlement_id)
    assert entry is not None and entry.waiting_for == ("organiser",)

    api.call("county", "PUT", f"/api/v1/parties/{api.organiser}", BUYER)
    assert waiting(engine, settlement_id) is None
    # The blocked invoice is tried at once, not after RETRY_BLOCKED_S: the details changed.
    assert settlement_id in backlog.blocked
    write_pending(engine, tmp_path, backlog, limit=10_000)
    assert path.exists()
    assert b"<SellerOrganisationName>Hoivapalvelu Onnela Oy<" in path.read_bytes()


def test_hub_parties_set_reports_every_bad_field(engine: Engine, hub_env: dict[str, str]) -> None:
    bid = business_id()
    args = [
        "parties",
        "set",
        bid,
        "--name",
        "Hoiva Oy",
        "--postcode",
        "123",
        "--iban",
        "FI21 1234",
        "--bic",
        "NDEA",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", *args],
        env={**os.environ, **hub_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    for field in ("postcode", "iban", "bic"):
        assert f"{field} " in done.stderr, done.stderr
    with engine.connect() as conn:
        assert get_party(conn, bid) is None
    good = [*args[:5], "--iban", "fi21 1234 5600 0007 85", "--bic", "ndeafihh"]
    subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", *good], env={**os.environ, **hub_env}, check=True, timeout=60
    )
    with engine.connect() as conn:
        stored = get_party(conn, bid)
    assert stored is not None and (stored.iban, stored.bic) == ("FI2112345600000785", "NDEAFIHH")
