"""Monthly settlements against the real PostgreSQL: rows and amounts to the cent, idempotent runs,
late deliveries and corrections after settlement, concurrent runs, several organisers, the REST
read model, `hub settle` and `hub scheduler` as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from psop_hub.api.app import create_app
from psop_hub.bootstrap import api_services
from psop_hub.consumers.settlement import SettlementSummary, build_settlements, settlement_id_for
from psop_hub.hub.calendar import helsinki_now, previous_month
from psop_hub.hub.errors import RuleBroken
from psop_hub.hub.identifiers import is_valid_finnish_reference
from psop_hub.hub.senders import add_client
from psop_hub.hub.settings import Settings
from psop_hub.hub.settlement_views import settlement_view
from tests.integration.settling import (
    PHYSIO,
    add_delivery,
    business_id,
    cancel,
    correct,
    delivery_row,
    items_of,
    rows_of,
    settlements_of,
)
from tests.messages import uid

ROOT = Path(__file__).resolve().parents[2]
HOME = ("KH01", "Säännöllinen kotihoito")


def mine(created: list[SettlementSummary], organiser: str) -> list[SettlementSummary]:
    """The summaries of one organiser (a run settles every pair in the shared database)."""
    return [s for s in created if s.organiser == organiser]


def test_month_with_several_services_and_prices(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 3, 2), "2.5", "25.00")
    add_delivery(engine, org, prov, date(2026, 3, 10), "1.25", "25.00")
    add_delivery(engine, org, prov, date(2026, 3, 11), "0.33", "27.35")  # 9.0255 -> 9.03
    add_delivery(engine, org, prov, date(2026, 3, 3), "1", "48.90", PHYSIO, "visit")
    add_delivery(engine, org, prov, date(2026, 3, 31), "2", "48.90", PHYSIO, "visit")
    add_delivery(engine, org, prov, date(2026, 3, 5), "4", "25.00", status="cancelled")  # nothing payable
    add_delivery(engine, org, prov, date(2026, 4, 1), "7", "25.00")  # next month
    created = mine(build_settlements(engine, date(2026, 3, 1)), org)
    assert len(created) == 1
    s = settlements_of(engine, org, prov)[0]
    assert s.settlement_id == f"PS-{org.replace('-', '')}-{prov.replace('-', '')}-202603"
    assert s.settlement_id == created[0].settlement_id
    assert rows_of(engine, s.settlement_id) == [
        (1, "delivery", "FYS01", "Fysioterapia", "visit", D("48.90"), D("3.00"), D("146.70")),
        (2, "delivery", *HOME, "hour", D("25.00"), D("3.75"), D("93.75")),
        (3, "delivery", *HOME, "hour", D("27.35"), D("0.33"), D("9.03")),
    ]
    assert (s.amount, s.status, s.month) == (D("249.48"), "open", date(2026, 3, 1))
    assert is_valid_finnish_reference(s.reference) and s.reference.startswith("202603")
    with engine.connect() as conn:
        view = settlement_view(conn, s.settlement_id)
    assert view is not None
    assert (view["month"], view["amount"], view["paid_amount"]) == ("2026-03", "249.48", None)
    assert view["rows"][2] == {
        "row_number": 3,
        "kind": "delivery",
        "service": {"code": "KH01", "name": "Säännöllinen kotihoito"},
        "unit": "hour",
        "unit_price": "27.35",
        "quantity": "0.33",
        "amount": "9.03",
        "service_month": "2026-03",
    }


def test_running_twice_creates_nothing_new(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    event = add_delivery(engine, org, prov, date(2026, 2, 14), "3", "30.00")
    assert len(mine(build_settlements(engine, date(2026, 2, 1)), org)) == 1
    assert mine(build_settlements(engine, date(2026, 2, 1)), org) == []
    assert len(settlements_of(engine, org, prov)) == 1
    assert len(items_of(engine, prov, event)) == 1
    row = delivery_row(engine, prov, event)
    assert (row.settled_quantity, row.settled_amount) == (D("3.00"), D("90.00"))


def test_late_delivery_goes_into_the_next_month_as_an_adjustment_naming_its_month(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 4, 3), "1", "25.00")
    build_settlements(engine, date(2026, 4, 1))
    late = add_delivery(engine, org, prov, date(2026, 4, 20), "2", "25.00")
    assert mine(build_settlements(engine, date(2026, 4, 1)), org) == []  # April stays as it was
    add_delivery(engine, org, prov, date(2026, 5, 6), "1", "25.00")
    build_settlements(engine, date(2026, 5, 1))
    april, may = settlements_of(engine, org, prov)
    assert april.amount == D("25.00")
    # May's own delivery, then April's late one: an adjustment that names April, not May.
    assert rows_of(engine, may.settlement_id) == [
        (1, "delivery", *HOME, "hour", D("25.00"), D("1.00"), D("25.00")),
        (2, "adjustment", *HOME, "hour", D("25.00"), D("2.00"), D("50.00")),
    ]
    assert may.amount == D("75.00")
    with engine.connect() as conn:
        view = settlement_view(conn, may.settlement_id)
    assert view is not None
    assert [(r["kind"], r["service_month"]) for r in view["rows"]] == [
        ("delivery", "2026-05"),
        ("adjustment", "2026-04"),
    ]
    assert [i.settlement_id for i in items_of(engine, prov, late)] == [may.settlement_id]


def test_adjustments_of_two_earlier_months_are_two_rows(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    march = add_delivery(engine, org, prov, date(2026, 3, 30), "4", "25.00")
    build_settlements(engine, date(2026, 3, 1))
    add_delivery(engine, org, prov, date(2026, 4, 1), "1", "25.00")
    build_settlements(engine, date(2026, 4, 1))
    correct(engine, prov, march, "3")  # a change to March, after March and April were settled
    add_delivery(engine, org, prov, date(2026, 4, 29), "2", "25.00")  # April's, reported late
    build_settlements(engine, date(2026, 5, 1))
    may = settlements_of(engine, org, prov)[-1]
    with engine.connect() as conn:
        view = settlement_view(conn, may.settlement_id)
    assert view is not None
    assert [(r["kind"], r["service_month"], r["quantity"], r["amount"]) for r in view["rows"]] == [
        ("adjustment", "2026-03", "-1.00", "-25.00"),
        ("adjustment", "2026-04", "2.00", "50.00"),
    ]


def test_pair_without_a_settlement_for_the_month_gets_one_for_a_late_delivery(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    build_settlements(engine, date(2026, 1, 1))
    add_delivery(engine, org, prov, date(2026, 1, 9), "1", "25.00")  # reported after the run
    created = mine(build_settlements(engine, date(2026, 1, 1)), org)
    assert [s.amount for s in created] == [D("25.00")]


def test_correction_after_settlement_is_a_negative_adjustment_next_month(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    event = add_delivery(engine, org, prov, date(2026, 5, 12), "4", "25.00")
    build_settlements(engine, date(2026, 5, 1))
    correct(engine, prov, event, "3")
    assert mine(build_settlements(engine, date(2026, 5, 1)), org) == []
    build_settlements(engine, date(2026, 6, 1))
    may, june = settlements_of(engine, org, prov)
    assert may.amount == D("100.00")
    assert rows_of(engine, june.settlement_id) == [
        (1, "adjustment", *HOME, "hour", D("25.00"), D("-1.00"), D("-25.00"))
    ]
    with engine.connect() as conn:
        view = settlement_view(conn, june.settlement_id)
    assert view is not None and view["rows"][0]["service_month"] == "2026-05"  # the month it corrects
    assert june.amount == D("-25.00")
    row = delivery_row(engine, prov, event)
    assert (row.settled_quantity, row.settled_amount) == (D("3.00"), D("75.00"))
    assert sorted(i.amount for i in items_of(engine, prov, event)) == [D("-25.00"), D("100.00")]


def test_cancellation_after_settlement_adjusts_the_full_amount(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    event = add_delivery(engine, org, prov, date(2026, 6, 2), "2.5", "31.10")
    build_settlements(engine, date(2026, 6, 1))
    cancel(engine, prov, event)
    add_delivery(engine, org, prov, date(2026, 7, 1), "1", "31.10")
    build_settlements(engine, date(2026, 7, 1))
    june, july = settlements_of(engine, org, prov)
    assert june.amount == D("77.75")
    assert rows_of(engine, july.settlement_id) == [
        (1, "delivery", *HOME, "hour", D("31.10"), D("1.00"), D("31.10")),
        (2, "adjustment", *HOME, "hour", D("31.10"), D("-2.50"), D("-77.75")),
    ]
    assert july.amount == D("-46.65")
    row = delivery_row(engine, prov, event)
    assert (row.settled_quantity, row.settled_amount) == (D("0.00"), D("0.00"))


def test_concurrent_runs_settle_each_delivery_once(engine: Engine) -> None:
    pairs = [(business_id(), business_id()) for _ in range(6)]
    events = {
        pair: [add_delivery(engine, *pair, date(2026, 8, day), "1.5", "22.40") for day in (3, 14, 30)]
        for pair in pairs
    }
    months = [date(2026, 8, 1), date(2026, 8, 1), date(2026, 9, 1), date(2026, 8, 1), date(2026, 9, 1)]
    with ThreadPoolExecutor(len(months)) as pool:
        runs = list(pool.map(lambda m: build_settlements(engine, m), months))
    created = [s for run in runs for s in run if (s.organiser, s.provider) in events]
    assert sorted((s.organiser, s.provider) for s in created) == sorted(pairs)  # one settlement each
    for (org, prov), event_ids in events.items():
        [s] = settlements_of(engine, org, prov)
        assert s.amount == D("100.80")
        for event in event_ids:
            assert len(items_of(engine, prov, event)) == 1
            assert delivery_row(engine, prov, event).settled_amount == D("33.60")


def test_two_organisers_get_separate_settlements(engine: Engine) -> None:
    first, second, prov = business_id(), business_id(), business_id()
    add_delivery(engine, first, prov, date(2026, 9, 4), "1", "40.00")
    add_delivery(engine, second, prov, date(2026, 9, 5), "2", "35.00")
    created = build_settlements(engine, date(2026, 9, 1))
    ours = sorted((s.organiser, s.amount) for s in created if s.provider == prov)
    assert ours == sorted([(first, D("40.00")), (second, D("70.00"))])
    [a], [b] = settlements_of(engine, first, prov), settlements_of(engine, second, prov)
    assert a.settlement_id != b.settlement_id and a.reference != b.reference
    assert a.settlement_id == settlement_id_for(first, prov, date(2026, 9, 1))


def test_missing_service_data_gives_empty_code_and_name(engine: Engine) -> None:
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 10, 8), "1", "20.00", service=(None, None))
    [s] = mine(build_settlements(engine, date(2026, 10, 31)), org)  # any day of the month
    assert rows_of(engine, s.settlement_id)[0][2:4] == ("", "")


def test_a_month_that_has_not_begun_is_refused(engine: Engine) -> None:
    with pytest.raises(RuleBroken, match="2026-12 has not begun"):
        build_settlements(engine, date(2026, 12, 1), today=date(2026, 11, 29))


def test_rest_shows_a_settlement_to_its_organiser_provider_and_admins_only(
    engine: Engine, settings: Settings
) -> None:
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 10, 2), "2", "25.00")
    build_settlements(engine, date(2026, 10, 1))
    [s] = settlements_of(engine, org, prov)
    secrets = {
        who: add_client(engine, uid(who), role, organiser, provider)
        for who, role, organiser, provider in [
            ("county", "system", org, None),
            ("provider", "provider", None, prov),
            ("admin", "admin", None, None),
            ("other-county", "system", business_id(), None),
            ("other-provider", "provider", None, business_id()),
        ]
    }
    with TestClient(create_app(api_services(settings))) as client:

        def get(who: str, settlement_id: str = s.settlement_id) -> tuple[int, dict[str, object]]:
            answer = client.get(
                f"/api/v1/settlements/{settlement_id}", headers={"Authorization": f"Bearer {secrets[who]}"}
            )
            return answer.status_code, answer.json()

        for who in ("county", "provider", "admin"):
            status, body = get(who)
            assert status == 200, body
            assert body["amount"] == "50.00" and body["status"] == "open"
            assert body["reference"] == s.reference and body["month"] == "2026-10"
        hidden = [get(who) for who in ("other-county", "other-provider")]
        missing = get("other-county", "PS-00000000-00000000-202610")
        assert [status for status, _ in [*hidden, missing]] == [404, 404, 404]
        assert hidden[0][1]["detail"] == f"no settlement {s.settlement_id}"
        assert client.get(f"/api/v1/settlements/{s.settlement_id}").status_code == 401


def test_rest_lists_a_shared_systems_settlements_of_each_of_its_organisers_only(
    engine: Engine, settings: Settings
) -> None:
    a, b, c, prov = business_id(), business_id(), business_id(), business_id()
    for org in (a, b, c):
        add_delivery(engine, org, prov, date(2026, 10, 2), "2", "25.00")
    build_settlements(engine, date(2026, 10, 1))
    ids = {org: settlements_of(engine, org, prov)[0].settlement_id for org in (a, b, c)}
    secret = add_client(engine, uid("shared"), "system", (a, b), None)
    with TestClient(create_app(api_services(settings))) as client:

        def listed(**params: str) -> set[str]:
            answer = client.get(
                "/api/v1/settlements",
                params={"limit": "1000", **params},
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert answer.status_code == 200, answer.text
            return {x["settlement_id"] for x in answer.json()["settlements"]}

        everything = listed()
        assert {ids[a], ids[b]} <= everything and ids[c] not in everything
        assert listed(organiser=b, month="2026-10") == {ids[b]}
        assert listed(organiser=c) == set()
        assert listed(provider=prov) & set(ids.values()) == {ids[a], ids[b]}
        # A month the calendar lacks is a 422 naming the field, never a 500.
        answer = client.get(
            "/api/v1/settlements", params={"month": "0000-01"}, headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "month"
        assert "years start at 0001" in answer.json()["errors"][0]["message"]


def _hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "psop_hub.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_hub_settle_prints_what_it_created(engine: Engine, hub_env: dict[str, str]) -> None:
    org, prov = business_id(), business_id()
    add_delivery(engine, org, prov, date(2026, 11, 3), "2", "25.00")
    add_delivery(engine, org, prov, date(2026, 11, 4), "1", "30.05")
    done = _hub(hub_env, "settle", "--month", "2026-11")
    assert done.returncode == 0, done.stderr
    [s] = settlements_of(engine, org, prov)
    assert f"{s.settlement_id} reference {s.reference} amount 80.05 " in done.stdout
    assert done.stdout.splitlines()[-1].startswith("total 2026-11: ")
    again = _hub(hub_env, "settle", "--month", "2026-11")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing to settle for 2026-11: no new or changed deliveries"


@pytest.mark.parametrize(
    ("month", "message"),
    [("2026-13", "not a month in the form YYYY-MM"), ("11/2026", "YYYY-MM"), ("2999-01", "has not begun")],
)
def test_hub_settle_refuses_a_bad_month(hub_env: dict[str, str], month: str, message: str) -> None:
    done = _hub(hub_env, "settle", "--month", month)
    assert done.returncode != 0
    assert message in done.stderr
    assert done.stdout == ""


def test_hub_scheduler_settles_the_previous_month_and_stops_on_sigterm(
    engine: Engine, hub_env: dict[str, str]
) -> None:
    org, prov = business_id(), business_id()
    month = previous_month(helsinki_now().date())
    add_delivery(engine, org, prov, month.replace(day=11), "1", "25.00")
    env = {
        **os.environ,
        **hub_env,
        "HUB_SETTLE_DAY": "1",
        "HUB_SETTLE_HOUR": "0",  # always due, whatever the clock says
        "HUB_SCHEDULER_INTERVAL_S": "0.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "psop_hub.cli", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not settlements_of(engine, org, prov) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(settlements_of(engine, org, prov)) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "settlement created: PS-" in stderr and "scheduler stopped" in stderr
