"""Money: Decimal end to end, rounded to the cent with halves away from zero, shown with a dot."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """Round to the cent, halves away from zero (as Finnish invoicing does)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money_text(value: Decimal) -> str:
    """The JSON form of an amount: a decimal string with two decimals, never an exponent."""
    return format(cents(value), "f")


def optional_money_text(value: Decimal | None) -> str | None:
    """`money_text`, or None for a missing amount."""
    return None if value is None else money_text(value)


def number_text(value: Decimal) -> str:
    """A quantity or an amount in a rule's message or a journey's detail: a decimal with a point
    and two decimals (`2.50`, `40.00`), the one way the hub writes a number in words."""
    return format(cents(value), "f")
