"""The admin page's message pages in-process against the real database: search with every
filter and counts, one message with its journey (HETUs masked, reads audited), replay, edit and
replay (refused with every error, then applied as a copy), the invoices waiting for details."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import date
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import any_, literal, select
from sqlalchemy.engine import Engine

from psop_hub.api.adminpage import i18n
from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.consumers.apply import apply, record_failure
from psop_hub.consumers.settlement import settle_pair
from psop_hub.hub import audit
from psop_hub.hub.calendar import HELSINKI
from psop_hub.hub.errors import Waiting
from psop_hub.hub.settings import Settings
from psop_hub.hub.tables import audit_log
from tests.integration.adminpage import csrf_of, new_admin, sign_in
from tests.integration.helpers import PROVIDER_SENDER, status_of, stored
from tests.integration.settling import add_delivery, business_id
from tests.messages import HETU, assigned, delivery, granted, uid


@pytest.fixture(scope="module")
def admin(settings: Settings, engine: Engine) -> Iterator[tuple[TestClient, str]]:
    """A signed-in browser on an app over the real services, and the admin's name."""
    with TestClient(create_app(api_services(settings))) as client:
        name, secret = new_admin(engine)
        sign_in(client, name, secret)
        yield client, name


@pytest.fixture(autouse=True)
def english(admin: tuple[TestClient, str]) -> None:
    """Each test starts in English (a test that switches to Finnish leaves the cookie behind)."""
    admin[0].cookies.delete(i18n.COOKIE, path="/admin")


def _failed_delivery(engine: Engine, number: str, quantity: str = "2") -> uuid.UUID:
    """A delivery whose voucher never came, given up on as the worker does after its attempts."""
    hub_id = stored(engine, delivery(number, quantity), PROVIDER_SENDER)
    with pytest.raises(Waiting):
        apply(engine, hub_id, 1)
    record_failure(engine, hub_id, 5, f"voucher {number} has not arrived yet")
    assert status_of(engine, hub_id).status == "failed"
    return hub_id


def _audit_actions(engine: Engine, hub_id: uuid.UUID) -> list[tuple[str, str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(literal(hub_id) == any_(audit_log.c.hub_ids)).order_by(audit_log.c.id)
        ).all()
    return [(r.actor, r.action, bool(r.detail.get("revealed"))) for r in rows]


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_search_every_filter_counts_and_paging(admin: tuple[TestClient, str], engine: Engine) -> None:
    client, _ = admin
    number = uid("V")
    failed = _failed_delivery(engine, number)
    answer = client.get("/admin/messages", params={"q": number})
    assert answer.status_code == 200
    assert str(failed) in answer.text
    assert "1 messages" in _text(answer.text)
    assert re.search(r'data-status="failed">failed: <span class="count">1</span>', answer.text)
    assert 'id="bulk-replay"' in answer.text and f"q={number}" in answer.text
    # every filter, the times as Helsinki wall-clock time
    received = status_of(engine, failed).received_at.astimezone(HELSINKI)
    around = {
        "status": "failed",
        "type": "delivery.reported",
        "sender": PROVIDER_SENDER.name,
        "provider": PROVIDER_SENDER.provider,
        "since": f"{received:%Y-%m-%dT%H:%M}",
        "q": number,
    }
    assert str(failed) in client.get("/admin/messages", params=around).text
    for other in ({"status": "applied"}, {"type": "voucher.granted"}, {"sender": "nobody"}):
        assert str(failed) not in client.get("/admin/messages", params=around | other).text
    assert (
        str(failed) not in client.get("/admin/messages", params={"q": number, "until": around["since"]}).text
    )
    # the form keeps what was asked
    kept = client.get("/admin/messages", params=around).text
    assert '<option value="failed" selected>' in kept and f'value="{number}"' in kept
    # paging: page 2 of a one-page result is empty, and says which page it is
    assert str(failed) not in client.get("/admin/messages", params={"q": number, "page": "2"}).text


def test_a_bad_filter_is_answered_next_to_the_form(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    answer = client.get("/admin/messages", params={"status": "lost", "since": "tomorrow", "q": "x" * 101})
    assert answer.status_code == 422
    errors = re.search(r'<ul class="errors" role="alert" id="form-errors">(.*?)</ul>', answer.text, re.S)
    assert errors
    assert {"status", "since", "q"} <= set(re.findall(r"<code>(\w+)</code>", errors.group(1)))
    assert '<form class="search"' in answer.text


def test_the_result_list_masks_hetus(admin: tuple[TestClient, str], engine: Engine) -> None:
    client, _ = admin
    # A sender that put a HETU into a voucher number: the list shows it masked.
    number = f"V-{HETU}-{uuid.uuid4().hex[:6]}"
    raw = granted(number)
    raw["message_id"] = f"m-{HETU}-{uuid.uuid4().hex[:6]}"
    raw["correlation_id"] = uid("corr")
    stored(engine, raw)
    answer = client.get("/admin/messages", params={"q": raw["correlation_id"]})
    assert answer.status_code == 200
    assert "1 messages" in _text(answer.text)
    assert HETU not in answer.text and HETU[:6] + "-****" in answer.text


def test_a_message_page_masks_hetus_and_every_read_is_audited(
    admin: tuple[TestClient, str], engine: Engine
) -> None:
    client, name = admin
    number = uid("V")
    hub_id = stored(engine, granted(number))
    apply(engine, hub_id, 1)
    shown = client.get(f"/admin/messages/{hub_id}")
    assert shown.status_code == 200
    assert HETU not in shown.text and f"{HETU[:6]}-****" in shown.text
    assert "applied" in _text(shown.text) and number in shown.text
    assert re.search(r'<table class="journey" id="journey">.*received.*applied', shown.text, re.S)
    assert _audit_actions(engine, hub_id) == [(name, audit.MESSAGE_READ, False)]
    # revealing takes the session's token; without it nothing is shown and nothing is read
    refused = client.post(f"/admin/messages/{hub_id}/reveal", data={"reason": "x"})
    assert refused.status_code == 403 and HETU not in refused.text
    revealed = client.post(
        f"/admin/messages/{hub_id}/reveal",
        data={"csrf_token": csrf_of(shown.text), "reason": "asiakaspalvelu"},
    )
    assert revealed.status_code == 200 and HETU in revealed.text
    assert _audit_actions(engine, hub_id) == [
        (name, audit.MESSAGE_READ, False),
        (name, audit.MESSAGE_READ, True),
    ]
    assert client.get(f"/admin/messages/{uuid.uuid4()}").status_code == 404
    assert client.get("/admin/messages/not-a-uuid").status_code == 404


def test_replay_from_the_message_page(admin: tuple[TestClient, str], engine: Engine) -> None:
    client, _ = admin
    number = uid("V")
    failed = _failed_delivery(engine, number)
    shown = client.get(f"/admin/messages/{failed}")
    assert 'id="replay"' in shown.text and 'id="edit-replay"' in shown.text
    assert "has not arrived yet" in shown.text  # the error
    assert client.post(f"/admin/messages/{failed}/replay", data={}).status_code == 403
    assert status_of(engine, failed).status == "failed"
    answer = client.post(
        f"/admin/messages/{failed}/replay", data={"csrf_token": csrf_of(shown.text)}, follow_redirects=False
    )
    assert (
        answer.status_code == 303 and answer.headers["location"] == f"/admin/messages/{failed}?notice=queued"
    )
    assert status_of(engine, failed).status == "accepted"
    after = client.get(answer.headers["location"])
    assert "The message was queued again." in after.text and 'id="replay"' not in after.text
    again = client.post(f"/admin/messages/{failed}/replay", data={"csrf_token": csrf_of(after.text)})
    assert again.status_code == 409 and "Nothing was replayed" in again.text
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    assert apply(engine, failed, 1).status == "applied"
    assert "applied" in client.get(f"/admin/messages/{failed}").text
    actions = [a for _, a, _ in _audit_actions(engine, failed)]
    assert actions.count(audit.MESSAGE_REPLAY) == 2


def test_edit_and_replay_refuses_every_error_then_applies_a_copy(
    admin: tuple[TestClient, str], engine: Engine
) -> None:
    client, name = admin
    number = uid("V")
    failed = _failed_delivery(engine, number, quantity="3")
    form = client.get(f"/admin/messages/{failed}/edit")
    assert form.status_code == 200
    assert f'"voucher_number": "{number}"' in html.unescape(form.text)
    token = csrf_of(form.text)
    url = f"/admin/messages/{failed}/edit"
    not_json = client.post(url, data={"csrf_token": token, "payload": '{"quantity": '})
    assert not_json.status_code == 422 and "<code>payload</code>" in not_json.text
    assert '{"quantity": ' in html.unescape(not_json.text)  # the admin's text is kept
    bad = {
        "event_id": uid("ev"),
        "provider": PROVIDER_SENDER.provider,
        "organiser": "2077474-0",
        "voucher_number": number,
        "service_date": "15.11.2026",
        "quantity": "-1",
        "unit": "hour",
    }
    refused = client.post(url, data={"csrf_token": token, "payload": json.dumps(bad)})
    assert refused.status_code == 422
    fields = set(re.findall(r"<code>([\w.]+)</code>", refused.text))
    assert {"payload.service_date", "payload.quantity"} <= fields, fields
    assert status_of(engine, failed).status == "failed"  # nothing sent
    assert client.post(url, data={"payload": json.dumps(bad)}).status_code == 403
    good = bad | {"service_date": "2026-11-15", "quantity": "1.5"}
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    answer = client.post(
        url,
        data={"csrf_token": token, "payload": json.dumps(good), "reason": "määrä korjattu"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    copy = uuid.UUID(answer.headers["location"].split("/")[-1].split("?")[0])
    assert status_of(engine, failed).status == "replaced"
    assert status_of(engine, copy).replay_of == failed
    assert apply(engine, copy, 1).status == "applied"
    page = client.get(f"/admin/messages/{failed}").text
    assert f'href="/admin/messages/{copy}"' in page
    assert f'href="/admin/messages/{failed}"' in client.get(f"/admin/messages/{copy}").text
    # the original is no longer failed: its edit form says so instead
    assert client.get(url).status_code == 409
    assert (name, audit.MESSAGE_REPLAY_EDITED, False) in _audit_actions(engine, failed)


def test_the_invoices_waiting_for_details(admin: tuple[TestClient, str], engine: Engine) -> None:
    client, _ = admin
    organiser, provider = business_id(), business_id()
    add_delivery(engine, organiser, provider, date(2026, 3, 2), "2.5", "25.00")
    summary = settle_pair(engine, organiser, provider, date(2026, 3, 1))
    assert summary is not None
    answer = client.get("/admin/settlements/waiting")
    assert answer.status_code == 200
    row = re.search(rf"<tr>\s*<td><code>{summary.settlement_id}</code></td>(.*?)</tr>", answer.text, re.S)
    assert row, answer.text
    assert "2026-03" in row.group(1) and organiser in row.group(1) and provider in row.group(1)
    assert "Provider: name, iban" in row.group(1)
    finnish = client.get("/admin/settlements/waiting?lang=fi").text
    assert "Tilitykset, joiden lasku odottaa laskutustietoja" in finnish


def test_bulk_replay_replays_exactly_the_set_confirmed(admin: tuple[TestClient, str], engine: Engine) -> None:
    client, name = admin
    number = uid("V")
    counted = [_failed_delivery(engine, number) for _ in range(3)]
    query = {"status": "failed", "q": number}
    listed = client.get("/admin/messages", params=query).text
    assert f'href="/admin/replay?{urlencode(query)}"' in listed.replace("&amp;", "&")
    start = client.get("/admin/replay", params=query)
    assert start.status_code == 200
    assert "3 failed or rejected messages match this filter now." in start.text
    token = csrf_of(start.text)
    fields = {"csrf_token": token, **query}
    no_reason = client.post("/admin/replay", data=fields | {"reason": "  "})
    assert no_reason.status_code == 422 and "Give a reason." in no_reason.text
    assert client.post("/admin/replay", data=query | {"reason": "x"}).status_code == 403
    confirm = client.post("/admin/replay", data=fields | {"reason": "voucher arrived late"})
    assert confirm.status_code == 200
    assert 'id="frozen-count" data-count="3"' in confirm.text
    assert 'value="voucher arrived late"' in confirm.text
    plan_id = re.search(r'name="plan_id" value="([^"]+)"', confirm.text)
    assert plan_id
    # One more fails after the count: it is not in the set the admin confirmed.
    late = _failed_delivery(engine, number)
    assert (
        client.post("/admin/replay/start", data={"plan_id": plan_id.group(1), "reason": "x"}).status_code
        == 403
    )
    started = client.post(
        "/admin/replay/start",
        data={"csrf_token": token, "plan_id": plan_id.group(1), "reason": "voucher arrived late"},
        follow_redirects=False,
    )
    assert started.status_code == 303
    job_url = started.headers["location"]
    assert job_url == f"/admin/jobs/{plan_id.group(1)}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(job_url).text
        if 'data-status="done"' in job:
            break
        assert '<meta http-equiv="refresh" content="2">' in job
        time.sleep(0.3)
    assert 'id="job-queued">3<' in job and 'id="job-matched">3<' in job
    assert [status_of(engine, h).status for h in counted] == ["accepted"] * 3
    assert status_of(engine, late).status == "failed"
    # still refreshing: the queued messages are not applied yet
    assert '<meta http-equiv="refresh"' in job
    for raw in (granted(number), assigned(number)):
        apply(engine, stored(engine, raw), 1)
    for hub_id in counted:
        assert apply(engine, hub_id, 1).status == "applied"
    done = client.get(job_url).text
    assert '<meta http-equiv="refresh"' not in done
    assert re.search(r'data-status="applied">applied: <span class="count">3</span>', done)
    # a second confirmation (a reload) starts nothing new
    again = client.post(
        "/admin/replay/start",
        data={"csrf_token": token, "plan_id": plan_id.group(1), "reason": "again"},
        follow_redirects=False,
    )
    assert again.status_code == 303 and again.headers["location"] == job_url
    assert f'href="{job_url}"' in client.get("/admin/jobs").text
    with engine.connect() as conn:
        actions = list(
            conn.execute(
                select(audit_log.c.action).where(
                    audit_log.c.job_id == uuid.UUID(plan_id.group(1)), audit_log.c.actor == name
                )
            ).scalars()
        )
    assert sorted(actions) == [audit.BULK_DRY_RUN, audit.BULK_START]
