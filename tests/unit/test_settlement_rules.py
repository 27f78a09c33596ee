"""Settlement building blocks without I/O: months, ids, references, rows, the scheduler's clock."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

import pytest

from psop_hub.consumers.settlement import (
    Item,
    Row,
    SettlementSummary,
    due_month,
    group_rows,
    reference_for,
    settlement_id_for,
)
from psop_hub.hub.calendar import HELSINKI, next_month, parse_month, previous_month
from psop_hub.hub.identifiers import is_valid_finnish_reference

HOME = ("KH01", "Säännöllinen kotihoito")


def item(kind: str, code: str, price: str, quantity: str, amount: str, unit: str = "hour") -> Item:
    """An item; the settled values do not matter for grouping."""
    return Item("ev", kind, code, f"name {code}", unit, D(price), D(quantity), D(amount), D(0), D(0))


@pytest.mark.parametrize(
    ("text", "month"),
    [("2026-11", date(2026, 11, 1)), ("2027-01", date(2027, 1, 1)), (" 2026-09 ", date(2026, 9, 1))],
)
def test_parse_month(text: str, month: date) -> None:
    assert parse_month(text) == month


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "11/2026", "2026-11-01", "", "202611"])
def test_parse_month_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_month_arithmetic_across_the_year_end() -> None:
    assert next_month(date(2026, 12, 31)) == date(2027, 1, 1)
    assert next_month(date(2026, 1, 31)) == date(2026, 2, 1)
    assert previous_month(date(2027, 1, 1)) == date(2026, 12, 1)
    assert previous_month(date(2026, 3, 31)) == date(2026, 2, 1)


def test_settlement_id_is_stable_and_short() -> None:
    sid = settlement_id_for("2077474-0", "1572860-0", date(2026, 11, 1))
    assert sid == "PS-20774740-15728600-202611"
    assert len(sid) <= 100


@pytest.mark.parametrize("seq", [1, 42, 999_999, 1_000_000, 12_345_678_901])
def test_references_are_valid_finnish_references(seq: int) -> None:
    reference = reference_for(date(2026, 11, 1), seq)
    assert reference.startswith("202611")
    assert is_valid_finnish_reference(reference) and len(reference) <= 20


def test_rows_sum_items_per_kind_service_unit_and_price_in_a_stable_order() -> None:
    items = [
        item("adjustment", "KH01", "25.00", "-1", "-25.00"),
        item("delivery", "KH01", "25.00", "2.5", "62.50"),
        item("delivery", "FYS01", "48.90", "1", "48.90", unit="visit"),
        item("delivery", "KH01", "25.00", "0.33", "8.25"),
        item("delivery", "KH01", "22.10", "1", "22.10"),
        item("adjustment", "KH01", "25.00", "-0.5", "-12.50"),
    ]
    rows = group_rows(items)
    assert rows == [
        Row(1, "delivery", "FYS01", "name FYS01", "visit", D("48.90"), D("1"), D("48.90")),
        Row(2, "delivery", "KH01", "name KH01", "hour", D("22.10"), D("1"), D("22.10")),
        Row(3, "delivery", "KH01", "name KH01", "hour", D("25.00"), D("2.83"), D("70.75")),
        Row(4, "adjustment", "KH01", "name KH01", "hour", D("25.00"), D("-1.5"), D("-37.50")),
    ]
    assert sum(r.amount for r in rows) == sum(i.amount for i in items)
    assert group_rows(list(reversed(items))) == rows


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2026, 12, 1, 1, 59, tzinfo=HELSINKI), None),
        (datetime(2026, 12, 1, 2, 0, tzinfo=HELSINKI), date(2026, 11, 1)),
        (datetime(2026, 12, 2, 0, 30, tzinfo=HELSINKI), date(2026, 11, 1)),  # a day late: catches up
        (datetime(2027, 1, 15, 23, 0, tzinfo=HELSINKI), date(2026, 12, 1)),
    ],
)
def test_the_scheduler_settles_the_previous_month_once_due(now: datetime, due: date | None) -> None:
    assert due_month(now, settle_day=1, settle_hour=2) == due


def test_a_later_settle_day_waits_for_it() -> None:
    assert due_month(datetime(2026, 12, 4, 12, tzinfo=HELSINKI), 5, 2) is None
    assert due_month(datetime(2026, 12, 5, 2, tzinfo=HELSINKI), 5, 2) == date(2026, 11, 1)


def test_summary_line_names_id_reference_and_amount() -> None:
    s = SettlementSummary(
        "PS-1-2-202611", "2077474-0", "1572860-0", date(2026, 11, 1), "2026110000014", D("80.05"), 2, 3
    )
    assert s.line().startswith("PS-1-2-202611 reference 2026110000014 amount 80.05 (")


def test_parse_month_refuses_the_year_zero_in_its_own_words() -> None:
    with pytest.raises(ValueError, match="years start at 0001"):
        parse_month("0000-01")
    assert parse_month("0001-01") == date(1, 1, 1)
