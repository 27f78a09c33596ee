"""The authorization matrix of docs/authorization.md, walked cell by cell against `hub run`.

The test reads the table from the document: every row names a probe here (by its id), every
probe has its row, and every route of the application is named in some row's action, so the
table, the test and the hub cannot drift apart. Each probe does its row's action as each caller
(real clients made with `hub clients add`, over REST, SOAP, the file drop and the admin page) and
says what it saw, in the table's marks; every cell that differs is reported, all at once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.e2e.conftest import ROOT, Hub, hub_cli, wait_for_status
from tests.messages import HETU, envelope, new_business_id, uid

DOC = ROOT / "docs" / "authorization.md"
ACTORS = (
    "anonymous",
    "system",
    "other system",
    "shared system",
    "other shared system",
    "provider",
    "other provider",
    "admin",
)
MARKS = {"yes", "401", "403", "404", "fault", "error", "rejected", "no", "sign-in", "refused", "-"}
SOAP_NS = "urn:psop-hub:soap:v1"
FILE_NS = "urn:psop-hub:file:v1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PLAN = re.compile(r'name="plan_id" value="([^"]+)"')
FINAL = {"applied", "rejected", "failed", "superseded"}


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of the matrix: what is done, and what each caller gets."""

    id: str
    transport: str
    action: str
    cells: dict[str, str]


def matrix(text: str) -> list[Row]:
    """The rows of the table whose header starts `| id | transport | action |`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| id | transport | action |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert tuple(header[3:]) == ACTORS, header
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(Row(cells[0].strip("`"), cells[1], cells[2], dict(zip(ACTORS, cells[3:], strict=True))))
    return rows


ROWS = matrix(DOC.read_text(encoding="utf-8"))


# --- the callers and the records they are seen from ------------------------------------------


@dataclass
class World:
    """The running hub, a client per column, and the records of organiser O with provider P."""

    hub: Hub
    names: dict[str, str]  # actor -> client name (anonymous: a folder named after no client)
    organiser: str
    provider: str
    voucher: str
    order: str
    settlements: list[str]
    message: dict[str, Any]  # a message the system sent: hub_id, message_id
    rejected: list[str]  # hub_ids of rejected messages, to replay
    assignable: list[str]  # granted vouchers, not assigned yet
    cache: dict[str, Any] = field(default_factory=dict)

    def secret(self, actor: str) -> str | None:
        return None if actor == "anonymous" else self.hub.secrets[self.names[actor]]

    def http(self, actor: str) -> httpx.Client:
        secret = self.secret(actor)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.hub.url, headers=headers, timeout=30, follow_redirects=False)

    @property
    def data(self) -> Path:
        return Path(self.hub.env["HUB_DATA_DIR"])


def applied(client: httpx.Client, raw: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/api/v1/messages", json=raw)
    assert answer.status_code == 202, answer.text
    body = wait_for_status(client, answer.json()["hub_id"], FINAL, timeout=60)
    assert body["status"] == "applied", body
    return body


def granted(organiser: str, number: str) -> dict[str, Any]:
    return envelope(
        "voucher.granted",
        {
            "voucher_number": number,
            "organiser": organiser,
            "decision_date": "2025-01-01",
            "client": {"hetu": HETU, "home_municipality": "091"},
            "service": {"code": "KH01", "name": "Säännöllinen kotihoito"},
            "unit": "hour",
            "unit_value": "25.00",
            "quantity": "100000",
            "valid_from": "2025-01-01",
            "valid_to": "2027-12-31",
        },
    )


def assigned(organiser: str, number: str, provider: str) -> dict[str, Any]:
    payload = {"voucher_number": number, "organiser": organiser, "provider": provider}
    return envelope("voucher.assigned", {**payload, "start_date": "2025-01-01", "provider_price": "30.00"})


def placed(organiser: str, number: str, provider: str) -> dict[str, Any]:
    return envelope(
        "order.placed",
        {
            "order_number": number,
            "organiser": organiser,
            "provider": provider,
            "client": {"hetu": HETU, "home_municipality": "049"},
            "service": {"code": "FT02", "name": "Fysioterapia"},
            "unit": "visit",
            "unit_price": "42.00",
            "quantity": "50",
            "start_date": "2025-01-01",
            "end_date": "2027-06-30",
        },
    )


def approved(organiser: str, provider: str, version: int = 1) -> dict[str, Any]:
    payload = {"organiser": organiser, "provider": provider, "version": version, "valid_from": "2025-01-01"}
    return envelope("provider.approved", payload)


def reported(organiser: str, voucher: str, provider: str, day: str, unit: str = "hour") -> dict[str, Any]:
    return envelope(
        "delivery.reported",
        {
            "event_id": uid("ev"),
            "provider": provider,
            "organiser": organiser,
            "voucher_number": voucher,
            "service_date": day,
            "quantity": "1",
            "unit": unit,
        },
    )


def paid(settlement: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "settlement_id": settlement["settlement_id"],
        "paid_date": "2025-06-20",
        "amount": settlement["amount"],
        "reference": settlement["reference"],
    }
    return envelope("payment.confirmed", payload)


@pytest.fixture(scope="module")
def world(hub: Hub) -> World:
    """Fresh business IDs and clients of the matrix's own, and O's records with P."""
    o, o2, o3, o4, p, p2 = (new_business_id() for _ in range(6))
    names = {actor: uid("mx-" + actor.replace(" ", "-")) for actor in ACTORS}
    hub.add_client(names["system"], "--role", "system", "--organiser", o)
    hub.add_client(names["other system"], "--role", "system", "--organiser", o2)
    # O is the second of the shared system's organisers; the other shares none with O.
    hub.add_client(names["shared system"], "--role", "system", "--organiser", o3, "--organiser", o)
    hub.add_client(names["other shared system"], "--role", "system", "--organiser", o2, "--organiser", o4)
    hub.add_client(names["provider"], "--role", "provider", "--provider", p)
    hub.add_client(names["other provider"], "--role", "provider", "--provider", p2)
    hub.add_client(names["admin"], "--role", "admin")
    for business_id, name in ((o, "Matriisikunta"), (p, "Matriisihoiva Oy")):
        hub_cli(
            hub.env,
            *("parties", "set", business_id, "--name", name, "--street", "Katu 1"),
            *("--postcode", "00100", "--town", "Helsinki", "--iban", "FI2112345600000785"),
        )
    voucher, order = uid("MX-V"), uid("MX-O")
    assignable = [uid("MX-A") for _ in range(4)]
    bare = World(hub, names, o, p, voucher, order, [], {}, [], assignable)
    with bare.http("system") as system, bare.http("provider") as provider:
        applied(system, approved(o, p))
        grant = applied(system, granted(o, voucher))
        applied(system, assigned(o, voucher, p))
        for number in assignable:
            applied(system, granted(o, number))
        applied(system, placed(o, order, p))
        for day in ("2025-03-10", "2025-04-10", "2025-01-10", "2025-02-10"):
            applied(provider, reported(o, voucher, p, day))
        # Rejected messages (a delivery in the wrong unit), for the replay rows.
        rejected = []
        for _ in range(4):
            answer = provider.post("/api/v1/messages", json=reported(o, voucher, p, "2025-05-02", "visit"))
            body = wait_for_status(provider, answer.json()["hub_id"], FINAL, timeout=60)
            assert body["status"] == "rejected", body
            rejected.append(str(body["hub_id"]))
    # Month by month (an earlier month's deliveries would join a later one's settlement):
    # settlements[0] and [1] are the system's to pay (REST and file), [2] and [3] the shared system's.
    by_month = {}
    for month in ("2025-01", "2025-02", "2025-03", "2025-04"):
        out = hub_cli(hub.env, "settle", "--month", month)
        line = next(ln for ln in out.splitlines() if f"provider {p}" in ln and o in ln)
        by_month[month] = line.split()[0]
    settlements = [by_month[m] for m in ("2025-03", "2025-04", "2025-01", "2025-02")]
    return World(
        hub,
        names,
        o,
        p,
        voucher,
        order,
        settlements,
        {"hub_id": grant["hub_id"], "message_id": grant["message_id"]},
        rejected,
        assignable,
    )


# --- marks ------------------------------------------------------------------------------------


def rest_mark(answer: httpx.Response, ok: Sequence[int] = (200, 202)) -> str:
    """`yes` for a success, the status of a problem+json refusal, else what came (a mismatch)."""
    if answer.status_code in ok:
        return "yes"
    if answer.status_code in (401, 403, 404):
        assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
        if answer.status_code == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer")
        return str(answer.status_code)
    return f"HTTP {answer.status_code}: {answer.text[:200]}"


def each(actors: Sequence[str], do: Callable[[str], str]) -> dict[str, str]:
    return {actor: do(actor) for actor in actors}


Probe = Callable[[World, Sequence[str]], dict[str, str]]
PROBES: dict[str, Probe] = {}


def probe(row_id: str) -> Callable[[Probe], Probe]:
    def register(function: Probe) -> Probe:
        assert row_id not in PROBES, row_id
        PROBES[row_id] = function
        return function

    return register


# --- REST -------------------------------------------------------------------------------------


def send_as(w: World, actors: Sequence[str], build: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            return rest_mark(client.post("/api/v1/messages", json=build(actor)))

    return each(actors, do)


@probe("rest.send.voucher")
def _rest_voucher(w: World, actors: Sequence[str]) -> dict[str, str]:
    return send_as(w, actors, lambda _: granted(w.organiser, uid("MX-RV")))


@probe("rest.send.order")
def _rest_order(w: World, actors: Sequence[str]) -> dict[str, str]:
    return send_as(w, actors, lambda _: placed(w.organiser, uid("MX-RO"), w.provider))


@probe("rest.send.approval")
def _rest_approval(w: World, actors: Sequence[str]) -> dict[str, str]:
    # Of a provider of its own, so that the fixture's approval of P stays as it is.
    return send_as(w, actors, lambda _: approved(w.organiser, new_business_id()))


@probe("rest.send.assignment")
def _rest_assignment(w: World, actors: Sequence[str]) -> dict[str, str]:
    targets = {"system": w.assignable[0], "provider": w.assignable[1]}
    return send_as(w, actors, lambda a: assigned(w.organiser, targets.get(a, w.assignable[0]), w.provider))


@probe("rest.send.delivery")
def _rest_delivery(w: World, actors: Sequence[str]) -> dict[str, str]:
    return send_as(w, actors, lambda _: reported(w.organiser, w.voucher, w.provider, "2025-05-12"))


def settlement_of(w: World, index: int) -> dict[str, Any]:
    with w.http("admin") as admin:
        answer = admin.get(f"/api/v1/settlements/{w.settlements[index]}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def outcome_of(w: World, hub_id: str) -> str:
    """A payment's mark once applied: `yes` paid, `404` rejected as an unknown settlement."""
    with w.http("admin") as admin:
        body = wait_for_status(admin, hub_id, FINAL, timeout=60)
    if body["status"] == "applied":
        return "yes"
    errors: Any = body["errors"]
    if body["status"] == "rejected" and errors and "no settlement" in errors[0]["message"]:
        return "404"  # exactly as for a settlement id that does not exist
    return f"{body['status']}: {errors}"


@probe("rest.send.payment")
def _rest_payment(w: World, actors: Sequence[str]) -> dict[str, str]:
    settlement, own = settlement_of(w, 0), settlement_of(w, 2)
    marks = {}
    for actor in actors:
        with w.http(actor) as client:
            answer = client.post(
                "/api/v1/messages", json=paid(own if actor == "shared system" else settlement)
            )
        marks[actor] = rest_mark(answer)
        if answer.status_code == 202:
            marks[actor] = outcome_of(w, answer.json()["hub_id"])
    with w.http("admin") as admin:
        for actor, index in (("system", 0), ("shared system", 2)):
            if marks.get(actor) == "yes":
                assert admin.get(f"/api/v1/settlements/{w.settlements[index]}").json()["status"] == "paid"
    return marks


def get_as(w: World, actors: Sequence[str], path: str, **params: str) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            return rest_mark(client.get(path, params=params))

    return each(actors, do)


@probe("rest.message")
def _rest_message(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/messages/{w.message['hub_id']}")


@probe("rest.message_by_id")
def _rest_message_by_id(w: World, actors: Sequence[str]) -> dict[str, str]:
    marks = get_as(w, actors, "/api/v1/messages", message_id=w.message["message_id"])
    with w.http("system") as system:
        found = system.get("/api/v1/messages", params={"message_id": w.message["message_id"]}).json()
    assert found["hub_id"] == w.message["hub_id"]
    return marks


@probe("rest.voucher")
def _rest_voucher_read(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/vouchers/{w.organiser}/{w.voucher}")


@probe("rest.order")
def _rest_order_read(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/orders/{w.organiser}/{w.order}")


@probe("rest.approval")
def _rest_approval_read(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/providers/{w.organiser}/{w.provider}")


@probe("rest.settlement")
def _rest_settlement(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/settlements/{w.settlements[1]}")


@probe("rest.settlements")
def _rest_settlements(w: World, actors: Sequence[str]) -> dict[str, str]:
    wanted = w.settlements[1]

    def do(actor: str) -> str:
        with w.http(actor) as client:
            answer = client.get("/api/v1/settlements", params={"limit": "1000"})
        if answer.status_code != 200:
            return rest_mark(answer)
        listed = {s["settlement_id"] for s in answer.json()["settlements"]}
        return "yes" if wanted in listed else "404"  # someone else's is simply not in the list

    return each(actors, do)


PARTY = {"name": "Matriisi", "street": "Katu 1", "postcode": "00100", "town": "Helsinki"}


def party_put(w: World, actors: Sequence[str], business_id: str, name: str) -> dict[str, str]:
    def do(actor: str) -> str:
        body = {**PARTY, "name": name, "iban": "FI2112345600000785"}
        with w.http(actor) as client:
            return rest_mark(client.put(f"/api/v1/parties/{business_id}", json=body))

    return each(actors, do)


@probe("rest.party.organiser.read")
def _party_o(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/parties/{w.organiser}")


@probe("rest.party.organiser.write")
def _party_o_put(w: World, actors: Sequence[str]) -> dict[str, str]:
    return party_put(w, actors, w.organiser, "Matriisikunta")


@probe("rest.party.provider.read")
def _party_p(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/parties/{w.provider}")


@probe("rest.party.provider.write")
def _party_p_put(w: World, actors: Sequence[str]) -> dict[str, str]:
    return party_put(w, actors, w.provider, "Matriisihoiva Oy")


@probe("rest.admin.search")
def _admin_search(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, "/api/v1/admin/messages", sender=w.names["system"])


@probe("rest.admin.show")
def _admin_show(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, f"/api/v1/admin/messages/{w.message['hub_id']}")


@probe("rest.admin.replay_one")
def _admin_replay_one(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            path = f"/api/v1/admin/messages/{w.rejected[0]}/replay"
            return rest_mark(client.post(path, json={"reason": "authorization matrix"}))

    return each(actors, do)


NOTHING = {"q": "matrix-matches-nothing"}


@probe("rest.admin.replay")
def _admin_replay(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            body = {"filter": NOTHING, "reason": "authorization matrix"}
            dry = rest_mark(client.post("/api/v1/admin/replay", json={**body, "dry_run": True}))
            job = client.post("/api/v1/admin/replay", json=body)
        if job.status_code in (200, 202):
            w.cache["job_id"] = job.json()["job_id"]
        return dry if dry != "yes" else rest_mark(job)

    return each(actors, do)


@probe("rest.admin.job")
def _admin_job(w: World, actors: Sequence[str]) -> dict[str, str]:
    if "job_id" not in w.cache:
        _admin_replay(w, ["admin"])
    return get_as(w, actors, f"/api/v1/admin/replay/{w.cache['job_id']}")


@probe("rest.admin.audit")
def _admin_audit(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, "/api/v1/admin/audit")


@probe("rest.admin.waiting")
def _admin_waiting(w: World, actors: Sequence[str]) -> dict[str, str]:
    return get_as(w, actors, "/api/v1/admin/settlements/waiting")


@probe("rest.metrics")
def _metrics(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            answer = client.get("/metrics")
        if answer.status_code == 200:
            assert "hub_messages" in answer.text
        return rest_mark(answer)

    return each(actors, do)


def all_yes(w: World, actors: Sequence[str], paths: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            marks = [rest_mark(client.get(path)) for path in paths]
        return next((m for m in marks if m != "yes"), "yes")

    return each(actors, do)


@probe("rest.health")
def _health(w: World, actors: Sequence[str]) -> dict[str, str]:
    return all_yes(w, actors, ["/health/live", "/health/ready"])


@probe("rest.docs")
def _docs(w: World, actors: Sequence[str]) -> dict[str, str]:
    return all_yes(w, actors, ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"])


# --- SOAP -------------------------------------------------------------------------------------


def elements(fields: Sequence[tuple[str, str]], p: str = "t:") -> str:
    return "".join(f"<{p}{k}>{v}</{p}{k}>" for k, v in fields)


def soap_call(w: World, actor: str, operation: str) -> str:
    """One SOAP call with the actor's UsernameToken: `yes`, `fault` (soap:Client), or what came."""
    header = ""
    secret = w.secret(actor)
    if secret is not None:
        header = (
            f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
            f"<wsse:Username>{w.names[actor]}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_TEXT}">{secret}</wsse:Password>'
            "</wsse:UsernameToken></wsse:Security></soap:Header>"
        )
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:t="{SOAP_NS}">{header}'
        f"<soap:Body>{operation}</soap:Body></soap:Envelope>"
    )
    answer = httpx.post(
        f"{w.hub.url}/soap/v1", content=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30
    )
    if answer.status_code == 200 and "Fault>" not in answer.text:
        return "yes"
    if answer.status_code == 500 and "<faultcode>soap:Client</faultcode>" in answer.text:
        return "fault"
    return f"HTTP {answer.status_code}: {answer.text[:300]}"


def soap_decision(w: World, kind: str, number: str, extra: Sequence[tuple[str, str]]) -> str:
    head = [("MessageId", uid("mx-soap")), ("DecisionType", kind), ("VoucherNumber", number)]
    fields = [*head, ("Organiser", w.organiser), *extra]
    record = f"<t:VoucherDecision>{elements(fields)}</t:VoucherDecision>"
    return f"<t:SubmitVoucherDecision>{record}</t:SubmitVoucherDecision>"


GRANTED_FIELDS = [
    ("DecisionDate", "2025-01-01"),
    ("Client", f"<t:Hetu>{HETU}</t:Hetu><t:HomeMunicipality>091</t:HomeMunicipality>"),
    ("Service", "<t:Code>KH01</t:Code><t:Name>Kotihoito</t:Name>"),
    ("Unit", "hour"),
    ("UnitValue", "25.00"),
    ("Quantity", "10"),
    ("ValidFrom", "2025-01-01"),
    ("ValidTo", "2027-12-31"),
]


@probe("soap.wsdl")
def _wsdl(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        with w.http(actor) as client:
            wsdl, xsd = client.get("/soap/v1?wsdl"), client.get("/soap/v1?xsd")
        ok = wsdl.status_code == xsd.status_code == 200 and "definitions" in wsdl.text
        return "yes" if ok else f"HTTP {wsdl.status_code}/{xsd.status_code}"

    return each(actors, do)


@probe("soap.decision")
def _soap_decision(w: World, actors: Sequence[str]) -> dict[str, str]:
    return each(actors, lambda a: soap_call(w, a, soap_decision(w, "GRANTED", uid("MX-SV"), GRANTED_FIELDS)))


@probe("soap.assignment")
def _soap_assignment(w: World, actors: Sequence[str]) -> dict[str, str]:
    targets = {"system": w.assignable[2], "provider": w.assignable[3]}

    def do(actor: str) -> str:
        extra = [("Provider", w.provider), ("ProviderPrice", "30.00"), ("StartDate", "2025-01-01")]
        return soap_call(w, actor, soap_decision(w, "ASSIGNED", targets.get(actor, w.assignable[2]), extra))

    return each(actors, do)


def order_fields(w: World, number: str, p: str = "t:") -> list[tuple[str, str]]:
    return [
        ("OrderType", "PLACED"),
        ("OrderNumber", number),
        ("Organiser", w.organiser),
        ("Provider", w.provider),
        ("Client", f"<{p}Hetu>{HETU}</{p}Hetu><{p}HomeMunicipality>049</{p}HomeMunicipality>"),
        ("Service", f"<{p}Code>FT02</{p}Code><{p}Name>Fysioterapia</{p}Name>"),
        ("Unit", "visit"),
        ("UnitPrice", "42.00"),
        ("Quantity", "5"),
        ("StartDate", "2025-01-01"),
        ("EndDate", "2027-06-30"),
    ]


@probe("soap.order")
def _soap_order(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        fields = [("MessageId", uid("mx-soap")), *order_fields(w, uid("MX-SO"))]
        record = f"<t:ServiceOrder>{elements(fields)}</t:ServiceOrder>"
        call = f"<t:SubmitServiceOrder>{record}</t:SubmitServiceOrder>"
        return soap_call(w, actor, call)

    return each(actors, do)


@probe("soap.approval")
def _soap_approval(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        fields = [
            ("MessageId", uid("mx-soap")),
            ("Organiser", w.organiser),
            ("Provider", new_business_id()),
            ("Version", "1"),
            ("ValidFrom", "2025-01-01"),
        ]
        call = (
            f"<t:SubmitProviderApproval><t:ProviderApproval>{elements(fields)}"
            "</t:ProviderApproval></t:SubmitProviderApproval>"
        )
        return soap_call(w, actor, call)

    return each(actors, do)


@probe("soap.status")
def _soap_status(w: World, actors: Sequence[str]) -> dict[str, str]:
    call = f"<t:GetMessageStatus><t:HubId>{w.message['hub_id']}</t:HubId></t:GetMessageStatus>"
    marks = each(actors, lambda a: soap_call(w, a, call))
    # Another's message is answered exactly as an unknown one.
    unknown = f"<t:GetMessageStatus><t:HubId>{uuid.uuid4()}</t:HubId></t:GetMessageStatus>"
    assert soap_call(w, "other system", unknown) == "fault"
    return marks


# --- the file drop ----------------------------------------------------------------------------


def folder_of(w: World, actor: str) -> str:
    return w.names[actor]  # anonymous: a name no client has


def drop_all(w: World, actors: Sequence[str], suffix: str, content: Callable[[str], bytes]) -> dict[str, Any]:
    """Drop one file per actor into its inbox folder and wait for every receipt."""
    receipts = {}
    for actor in actors:
        folder = folder_of(w, actor)
        name = f"{uid('mx')}{suffix}"
        inbox = w.data / "inbox" / folder
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / f"{name}.part").write_bytes(content(actor))
        (inbox / f"{name}.part").rename(inbox / name)
        receipts[actor] = w.data / "outbox" / folder / "receipts" / f"{name}.receipt.json"
    found = {}
    deadline = time.monotonic() + 90
    for actor, path in receipts.items():
        while not path.exists():
            assert time.monotonic() < deadline, f"no receipt {path}"
            time.sleep(0.2)
        found[actor] = json.loads(path.read_text(encoding="utf-8"))
    return found


def file_mark(receipt: dict[str, Any]) -> str:
    if receipt.get("error"):
        return "error"
    if receipt["records"] == 1 and receipt["accepted"] == 1:
        return "yes"
    if receipt["records"] == 1 and len(receipt["rejected"]) == 1:
        return "rejected"
    return f"receipt {receipt}"


def xml_batch(root: str, record: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{FILE_NS}">{record}</{root}>\n'.encode()


def dropped(w: World, actors: Sequence[str], suffix: str, content: Callable[[str], bytes]) -> dict[str, str]:
    return {actor: file_mark(r) for actor, r in drop_all(w, actors, suffix, content).items()}


def decision_file(w: World) -> bytes:
    fields = [("DecisionType", "GRANTED"), ("VoucherNumber", uid("MX-FV")), ("Organiser", w.organiser)]
    body = elements([*fields, *GRANTED_FIELDS], p="").replace("<t:", "<").replace("</t:", "</")
    return xml_batch("VoucherDecisionBatch", f"<VoucherDecision>{body}</VoucherDecision>")


@probe("file.decisions")
def _file_decisions(w: World, actors: Sequence[str]) -> dict[str, str]:
    return dropped(w, actors, ".xml", lambda _: decision_file(w))


@probe("file.orders")
def _file_orders(w: World, actors: Sequence[str]) -> dict[str, str]:
    def content(_: str) -> bytes:
        body = elements(order_fields(w, uid("MX-FO"), p=""), p="")
        return xml_batch("ServiceOrderBatch", f"<ServiceOrder>{body}</ServiceOrder>")

    return dropped(w, actors, ".xml", content)


@probe("file.approvals")
def _file_approvals(w: World, actors: Sequence[str]) -> dict[str, str]:
    def content(_: str) -> bytes:
        fields = [
            ("Organiser", w.organiser),
            ("Provider", new_business_id()),
            ("Version", "1"),
            ("ValidFrom", "2025-01-01"),
        ]
        return xml_batch(
            "ProviderApprovalBatch", f"<ProviderApproval>{elements(fields, p='')}</ProviderApproval>"
        )

    return dropped(w, actors, ".xml", content)


DELIVERY_HEADER = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price\r\n"


@probe("file.deliveries")
def _file_deliveries(w: World, actors: Sequence[str]) -> dict[str, str]:
    # Another provider's CSV reports as itself: it cannot name P (see the table's notes).
    shown = [a for a in actors if a != "other provider"]

    def content(_: str) -> bytes:
        row = f"{uid('MX-EV')};{w.organiser};{w.voucher};;14.05.2025;1;hour;\r\n"
        return (DELIVERY_HEADER + row).encode()

    return {
        **dropped(w, shown, ".csv", content),
        **({"other provider": "-"} if "other provider" in actors else {}),
    }


@probe("file.payments")
def _file_payments(w: World, actors: Sequence[str]) -> dict[str, str]:
    def csv(actor: str) -> bytes:
        s = settlement_of(w, 3 if actor == "shared system" else 1)
        amount = s["amount"].replace(".", ",")
        row = f"{s['settlement_id']};20.06.2025;{amount};{s['reference']}"
        return f"settlement_id;paid_date;amount;reference\r\n{row}\r\n".encode()

    marks = {}
    for actor, receipt in drop_all(w, actors, ".csv", csv).items():
        marks[actor] = file_mark(receipt)
        if marks[actor] == "yes":
            marks[actor] = outcome_of(w, receipt["messages"][0]["hub_id"])
    return marks


@probe("file.receipt")
def _file_receipt(w: World, actors: Sequence[str]) -> dict[str, str]:
    receipt = drop_all(w, ["system"], ".xml", lambda _: decision_file(w))["system"]
    name = receipt["file"]
    marks = {}
    for actor in actors:
        if actor in ("anonymous", "admin"):
            marks[actor] = "-"
            continue
        folder = w.data / "outbox" / w.names[actor] / "receipts"
        found = list(folder.glob(f"{name}*")) if folder.exists() else []
        marks[actor] = "yes" if found else "no"
    # Nowhere else under outbox/ either (neither the receipt nor, once written, its result).
    everywhere = [p for p in (w.data / "outbox").glob(f"*/receipts/{name}*")]
    assert {p.parent.parent.name for p in everywhere} == {w.names["system"]}
    return marks


# --- the admin page ---------------------------------------------------------------------------


class Page:
    """A browser on the admin page: its own cookies (the session), the pages' CSRF tokens."""

    def __init__(self, w: World, actor: str) -> None:
        self.w = w
        self.client = w.http(actor)  # a bearer header, which the page must ignore
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> httpx.Response:
        if form is not None and self.csrf:
            form = {"csrf_token": self.csrf, **form}
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = self.client.request(method, path, data=form, headers={"Cookie": cookie} if cookie else {})
        for name, value in answer.cookies.items():
            self.cookies[name] = value
        found = CSRF.search(answer.text)
        if found and self.csrf == "":
            self.csrf = found.group(1)
        return answer

    def sign_in(self, name: str, secret: str) -> httpx.Response:
        form = self.request("GET", "/admin/sign-in")
        token = CSRF.search(form.text)
        assert token, form.text
        self.csrf = ""
        answer = self.request(
            "POST",
            "/admin/sign-in",
            {"csrf_token": token.group(1), "name": name, "secret": secret, "next": "/admin/messages"},
        )
        if answer.status_code == 303:
            self.csrf = ""
            self.request("GET", "/admin/messages")  # picks up the session's CSRF token
        return answer

    def close(self) -> None:
        self.client.close()


def page_mark(answer: httpx.Response) -> str:
    location = answer.headers.get("location", "")
    if answer.status_code == 303 and location.startswith("/admin/sign-in") and "signed_out" not in location:
        return "sign-in"
    if answer.status_code in (200, 303):
        return "yes"
    return f"HTTP {answer.status_code} {location}: {answer.text[:200]}"


@pytest.fixture(scope="module")
def admin_page(world: World) -> Iterator[Page]:
    page = Page(world, "admin")
    assert page.sign_in(world.names["admin"], world.secret("admin") or "").status_code == 303
    yield page
    page.close()


Step = tuple[str, str, Callable[[World, Page], dict[str, str] | None]]


def page_probe(w: World, actors: Sequence[str], steps: Sequence[Step]) -> dict[str, str]:
    """Every step as each actor: the admin with its session, the others with none (only their
    bearer secret); one mark per actor (the first step that is not what the others were)."""
    marks = {}
    for actor in actors:
        page = w.cache["admin_page"] if actor == "admin" else Page(w, actor)
        seen = []
        for method, path, form in steps:
            data = form(w, page) if method == "POST" else None
            seen.append(page_mark(page.request(method, path.format(**w.cache), data)))
        wanted = "yes" if actor == "admin" else "sign-in"
        marks[actor] = next((m for m in seen if m != wanted), wanted)
        if actor != "admin":
            page.close()
    return marks


def no_form(w: World, page: Page) -> dict[str, str]:
    return {}


def reason_form(w: World, page: Page) -> dict[str, str]:
    return {"reason": "authorization matrix"}


@probe("page.sign_in")
def _page_sign_in(w: World, actors: Sequence[str]) -> dict[str, str]:
    def do(actor: str) -> str:
        page = Page(w, actor)
        try:
            name = w.names[actor] if actor != "anonymous" else ""
            answer = page.sign_in(name, w.secret(actor) or "")
        finally:
            page.close()
        if answer.status_code == 401 and "sign" in answer.text.lower():
            return "refused"
        return page_mark(answer)

    return each(actors, do)


@probe("page.start")
def _page_start(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("GET", "/admin", no_form), ("GET", "/admin/", no_form)])


@probe("page.messages")
def _page_messages(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("GET", "/admin/messages", no_form)])


@probe("page.message")
def _page_message(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("GET", "/admin/messages/{message_hub_id}", no_form)])


@probe("page.reveal")
def _page_reveal(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("POST", "/admin/messages/{message_hub_id}/reveal", reason_form)])


@probe("page.replay_one")
def _page_replay_one(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("POST", "/admin/messages/{rejected_1}/replay", reason_form)])


def edited(w: World, page: Page) -> dict[str, str]:
    payload = {
        "event_id": uid("ev"),
        "provider": w.provider,
        "organiser": w.organiser,
        "voucher_number": w.voucher,
        "service_date": "2025-05-02",
        "quantity": "1",
        "unit": "hour",
    }
    return {"payload": json.dumps(payload), "reason": "authorization matrix"}


@probe("page.edit")
def _page_edit(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(
        w,
        actors,
        [
            ("GET", "/admin/messages/{rejected_2}/edit", no_form),
            ("POST", "/admin/messages/{rejected_2}/edit", edited),
        ],
    )


def plan_form(w: World, page: Page) -> dict[str, str]:
    return {"q": w.rejected[3], "reason": "authorization matrix"}  # one rejected message


def start_form(w: World, page: Page) -> dict[str, str]:
    return {"plan_id": w.cache.get("plan_id", str(uuid.uuid4())), "reason": "authorization matrix"}


@probe("page.replay")
def _page_replay(w: World, actors: Sequence[str]) -> dict[str, str]:
    marks = {}
    for actor in actors:
        if actor == "admin":
            page: Page = w.cache["admin_page"]
            first = page_mark(page.request("GET", f"/admin/replay?q={w.rejected[3]}"))
            confirm = page.request("POST", "/admin/replay", plan_form(w, page))
            plan = PLAN.search(confirm.text)
            w.cache["plan_id"] = plan.group(1) if plan else ""
            started = page.request("POST", "/admin/replay/start", start_form(w, page))
            if started.status_code == 303:
                w.cache["page_job_id"] = started.headers["location"].rsplit("/", 1)[-1]
            seen = [first, page_mark(confirm), page_mark(started)]
            marks[actor] = next((m for m in seen if m != "yes"), "yes")
        else:
            steps: list[Step] = [
                ("GET", "/admin/replay", no_form),
                ("POST", "/admin/replay", plan_form),
                ("POST", "/admin/replay/start", start_form),
            ]
            marks.update(page_probe(w, [actor], steps))
    return marks


@probe("page.jobs")
def _page_jobs(w: World, actors: Sequence[str]) -> dict[str, str]:
    w.cache.setdefault("page_job_id", w.cache.get("job_id", str(uuid.uuid4())))
    return page_probe(
        w, actors, [("GET", "/admin/jobs", no_form), ("GET", "/admin/jobs/{page_job_id}", no_form)]
    )


@probe("page.audit")
def _page_audit(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("GET", "/admin/audit", no_form)])


@probe("page.waiting")
def _page_waiting(w: World, actors: Sequence[str]) -> dict[str, str]:
    return page_probe(w, actors, [("GET", "/admin/settlements/waiting", no_form)])


@probe("page.sign_out")
def _page_sign_out(w: World, actors: Sequence[str]) -> dict[str, str]:
    marks = {}
    for actor in actors:
        if actor == "admin":
            # A session of its own, so that the other rows' session stays signed in.
            page = Page(w, "admin")
            assert page.sign_in(w.names["admin"], w.secret("admin") or "").status_code == 303
            answer = page.request("POST", "/admin/sign-out", {})
            after = page.request("GET", "/admin/messages")
            page.close()
            ok = "signed_out=1" in answer.headers.get("location", "") and page_mark(after) == "sign-in"
            marks[actor] = "yes" if ok else page_mark(answer)
        else:
            marks.update(page_probe(w, [actor], [("POST", "/admin/sign-out", no_form)]))
    return marks


# --- the tests --------------------------------------------------------------------------------


def routes_named(rows: Sequence[Row]) -> set[tuple[str, str]]:
    """Every `METHOD /path` the actions name (a query string is not part of the route)."""
    named = set()
    for row in rows:
        for method, path in re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`\s?]*)", row.action):
            named.add((method, path))
    return named


def app_routes() -> set[tuple[str, str]]:
    """Every method and path the application serves (static files and HEAD aside)."""
    from psop_hub.api.app import create_app

    # Routes only: nothing is started, and create_app reads no more than this of its services.
    services = SimpleNamespace(settings=SimpleNamespace(access_log=False))
    app = create_app(services)  # type: ignore[arg-type]

    def walk(routes: Sequence[Any]) -> Iterator[tuple[str, str]]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield from walk(inner.routes)
            elif isinstance(route, APIRoute):
                for method in (route.methods or set()) - {"HEAD"}:
                    yield method, route.path
            elif route.__class__.__name__ == "Route":
                for method in (route.methods or set()) - {"HEAD"}:
                    yield method, route.path

    return set(walk(app.routes))


def test_the_table_the_probes_and_the_routes_agree() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), "a row id is used twice"
    assert set(ids) - set(PROBES) == set(), "rows without a probe in this test"
    assert set(PROBES) - set(ids) == set(), "probes without a row in docs/authorization.md"
    bad = {(row.id, actor, mark) for row in ROWS for actor, mark in row.cells.items() if mark not in MARKS}
    assert bad == set(), f"marks the legend does not define: {bad}"
    unnamed = app_routes() - routes_named(ROWS)
    assert unnamed == set(), f"routes the authorization table does not name: {sorted(unnamed)}"


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_every_cell(world: World, admin_page: Page, row: Row) -> None:
    world.cache.setdefault("admin_page", admin_page)
    world.cache.setdefault("message_hub_id", world.message["hub_id"])
    world.cache.setdefault("rejected_1", world.rejected[1])
    world.cache.setdefault("rejected_2", world.rejected[2])
    seen = PROBES[row.id](world, ACTORS)
    wrong = {
        actor: (row.cells[actor], seen.get(actor)) for actor in ACTORS if seen.get(actor) != row.cells[actor]
    }
    assert wrong == {}, f"{row.id} ({row.action}): cells as (table, hub): {wrong}"


def test_a_shared_system_acts_for_each_of_its_organisers_and_no_other(world: World) -> None:
    """A system client of A and B (`--organiser A --organiser B`) against a system of C: it sends
    and reads A's and B's records, its assignments are each one's own decision (no approval
    needed), it lists and pays their settlements; C's it neither sends, reads nor lists."""
    hub = world.hub
    a, b, c = (new_business_id() for _ in range(3))
    shared, third = uid("mx-ab"), uid("mx-c")
    hub.add_client(shared, "--role", "system", "--organiser", a, "--organiser", b)
    hub.add_client(third, "--role", "system", "--organiser", c)
    listing = hub_cli(hub.env, "clients", "list")
    assert next(ln.split() for ln in listing.splitlines() if ln.startswith(f"{shared} "))[1:3] == [
        "system",
        f"{a},{b}",
    ]
    p = world.provider
    numbers = {org: uid("MX-AB") for org in (a, b, c)}

    def http(name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {hub.secrets[name]}"}
        return httpx.Client(base_url=hub.url, headers=headers, timeout=30)

    with http(shared) as s, http(third) as t, world.http("provider") as provider:
        for org, client in ((a, s), (b, s), (c, t)):
            applied(client, granted(org, numbers[org]))
            # P is approved by none of them: the organiser's own system needs no approval.
            applied(client, assigned(org, numbers[org], p))
            applied(provider, reported(org, numbers[org], p, "2025-06-10"))
        for org in (a, b):
            assert s.get(f"/api/v1/vouchers/{org}/{numbers[org]}").status_code == 200
            assert t.get(f"/api/v1/vouchers/{org}/{numbers[org]}").status_code == 404
            assert s.get(f"/api/v1/parties/{org}").status_code in (200, 404)  # may, details or not
        assert s.get(f"/api/v1/vouchers/{c}/{numbers[c]}").status_code == 404
        assert s.get(f"/api/v1/parties/{c}").status_code == 403
        refused = s.post("/api/v1/messages", json=granted(c, uid("MX-AB")))
        assert refused.status_code == 403 and f"organisers {a}, {b}" in refused.json()["detail"]

        out = hub_cli(hub.env, "settle", "--month", "2025-06")
        ids = {}
        for org in (a, b, c):
            line = next(ln for ln in out.splitlines() if f"provider {p}" in ln and org in ln)
            ids[org] = line.split()[0]
        listed = {
            x["settlement_id"]
            for x in s.get("/api/v1/settlements", params={"limit": "1000"}).json()["settlements"]
        }
        assert {ids[a], ids[b]} <= listed and ids[c] not in listed
        only_c = s.get("/api/v1/settlements", params={"organiser": c}).json()["settlements"]
        assert only_c == []
        assert s.get(f"/api/v1/settlements/{ids[c]}").status_code == 404
        for org in (a, b, c):
            answer = s.post("/api/v1/messages", json=paid(settlement_of_id(world, ids[org])))
            assert answer.status_code == 202, answer.text
            assert outcome_of(world, answer.json()["hub_id"]) == ("404" if org == c else "yes")


def settlement_of_id(w: World, settlement_id: str) -> dict[str, Any]:
    with w.http("admin") as admin:
        answer = admin.get(f"/api/v1/settlements/{settlement_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
