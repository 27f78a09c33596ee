"""Field formats of the canonical messages, as annotated types for the pydantic models.

Validators raise PydanticCustomError so that messages come out plain ("must be ..."), without
pydantic's "Value error, " prefix, wherever the models are used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from psop_hub.hub import identifiers
from psop_hub.hub.money import CENT, money_text

__all__ = [
    "MAX_QUANTITY",
    "MAX_UNIT_AMOUNT",
    "UNITS",
    "BusinessId",
    "Code",
    "Day",
    "Hetu",
    "Identifier",
    "LaterVersion",
    "Money",
    "Municipality",
    "Name",
    "PaymentReference",
    "Quantity",
    "Reason",
    "ServiceCodes",
    "Timestamp",
    "Unit",
    "UnitMoney",
    "Version",
    "format_quantity",
    "parse_day",
]

Unit = Literal["hour", "visit", "day", "month", "piece"]
UNITS: tuple[str, ...] = ("hour", "visit", "day", "month", "piece")

# Twelve integer digits is far above any real voucher or invoice and keeps every amount inside
# a NUMERIC(14, 2) column; the regex also bounds the work done on hostile input.
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_DECIMAL_SHAPE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?")
_OFFSET = re.compile(r"[Zz]|[+-][0-9]{2}:[0-9]{2}")
_MONEY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
_MONEY_EXAMPLE = 'must be a decimal string such as "32.50"'
_QUANTITY_EXAMPLE = 'must be a decimal string such as "1.5"'
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _decimal(value: object, example: str) -> Decimal:
    if isinstance(value, Decimal):
        # Python callers may hand over a Decimal; hold it to what the JSON form allows.
        if not value.is_finite():
            raise _error("decimal_format", example)
        value = format(value, "f")
    if not isinstance(value, str):
        raise _error("decimal_type", example)
    if not _DECIMAL.fullmatch(value):
        if value.startswith("-") and _DECIMAL_SHAPE.fullmatch(value[1:]):
            raise _error("decimal_negative", "must not be negative")
        if _DECIMAL_SHAPE.fullmatch(value):
            raise _error("decimal_too_large", "must have at most 12 digits before the decimal point")
        raise _error("decimal_format", f"{example}, with at most two decimals")
    return Decimal(value)


# Per-unit amounts and quantities are bounded so that every product of the two (a delivery's
# share, an order row) fits the state tables' NUMERIC(14, 2) columns: 999999.99 squared is below
# 10^12. Totals (a payment's amount) may use all twelve integer digits.
MAX_UNIT_AMOUNT = Decimal("999999.99")
MAX_QUANTITY = Decimal("999999.99")


def _money(value: object) -> Decimal:
    return _decimal(value, _MONEY_EXAMPLE).quantize(CENT)


def _unit_money(value: object) -> Decimal:
    amount = _money(value)
    if amount > MAX_UNIT_AMOUNT:
        raise _error("unit_amount_too_large", f"must be at most {MAX_UNIT_AMOUNT} per unit")
    return amount


def _quantity(value: object) -> Decimal:
    amount = _decimal(value, _QUANTITY_EXAMPLE)
    if amount <= 0:
        raise _error("quantity_not_positive", "must be greater than zero")
    if amount > MAX_QUANTITY:
        raise _error("quantity_too_large", f"must be at most {MAX_QUANTITY}")
    return amount


def format_quantity(amount: Decimal) -> str:
    """A quantity as its canonical JSON string: the sender's decimals, no exponent ("1.5")."""
    return format(amount, "f")


def parse_day(value: object) -> date:
    """A `YYYY-MM-DD` string (or a date) as a date; raises PydanticCustomError otherwise."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    message = "must be a date in the form YYYY-MM-DD"
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise _error("date_format", message)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _error("date_invalid", "is not a valid calendar date") from None


def _timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise _error("timestamp_naive", "must include a UTC offset")
        return value
    message = "must be an ISO 8601 timestamp such as 2026-11-02T08:15:00+02:00"
    if not isinstance(value, str):
        raise _error("timestamp_format", message)
    head = _TIMESTAMP.match(value)
    if head is None:
        raise _error("timestamp_format", message)
    rest = value[head.end() :]
    if not rest:
        raise _error("timestamp_naive", "must include a UTC offset")
    if not _OFFSET.fullmatch(rest):
        raise _error("timestamp_format", message)
    fraction = head.group(2) or ""
    # datetime holds microseconds; a sender's nanoseconds are cut, not refused.
    text = value[: head.end() - len(fraction)] + fraction[:7] + ("+00:00" if rest in "Zz" else rest)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _error("timestamp_invalid", "is not a valid date and time") from None


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # exactly the characters of category Cc
# The control characters free text must not hold: category Cc but for _FREE_TEXT_CONTROLS.
_FREE_TEXT_FORBIDDEN = re.compile(
    "[" + "".join(re.escape(chr(n)) for n in range(0x20) if chr(n) not in _FREE_TEXT_CONTROLS) + "\x7f-\x9f]"
)


def _no_controls(value: str) -> str:
    # NFC: "é" typed as one character or as "e" and a combining accent is one name, not two.
    if _CONTROLS.search(value):
        raise _error("control_character", "must not contain control characters")
    if not value.strip():
        raise _error("blank", "must not be blank")
    return unicodedata.normalize("NFC", value)


def _identifier(value: str) -> str:
    # Format characters (category Cf: right-to-left overrides, zero-width spaces and joiners, the
    # BOM) are invisible: with them two ids that look alike differ, or one looks like another.
    value = _no_controls(value)
    if not value.isascii() and any(unicodedata.category(c) == "Cf" for c in value):  # none is ASCII
        raise _error(
            "format_character",
            "must not contain invisible formatting characters (such as a zero-width space "
            "or a right-to-left override)",
        )
    return value


def _free_text(value: str) -> str:
    if _FREE_TEXT_FORBIDDEN.search(value):
        raise _error("control_character", "must not contain control characters")
    return value


def _through(check: Callable[[str], str]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise _error("identifier", str(exc)) from None

    return validate


def _hetu(value: str, info: ValidationInfo) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    today = context.get("today")
    try:
        return identifiers.check_hetu(value, today if isinstance(today, date) else None)
    except ValueError as exc:
        raise _error("hetu", str(exc)) from None


def _later_version(value: int) -> int:
    if value <= 1:
        raise _error("version_not_later", "must be greater than 1 (version 1 is the original message itself)")
    return value


def _distinct_codes(value: list[str]) -> list[str]:
    if not value:
        raise _error(
            "service_codes_empty",
            "must list at least one service code (leave it out to approve every service)",
        )
    seen: set[str] = set()
    for code in value:
        if code in seen:
            raise _error("service_codes_repeated", f"lists service code {code} more than once")
        seen.add(code)
    return value


def _string(max_length: int) -> StringConstraints:
    return StringConstraints(strict=True, min_length=1, max_length=max_length)


Money = Annotated[
    Decimal,
    PlainValidator(_money, json_schema_input_type=str),
    PlainSerializer(money_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _MONEY_PATTERN,
            "description": "money: a decimal string, at most two decimals",
            "examples": ["32.50"],
        }
    ),
]
UnitMoney = Annotated[
    Decimal,
    PlainValidator(_unit_money, json_schema_input_type=str),
    PlainSerializer(money_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _MONEY_PATTERN,
            "description": "money per unit: a decimal string, at most two decimals, at most 999999.99",
            "examples": ["27.50"],
        }
    ),
]
Quantity = Annotated[
    Decimal,
    PlainValidator(_quantity, json_schema_input_type=str),
    PlainSerializer(format_quantity, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _MONEY_PATTERN,
            "description": "a decimal string greater than zero, at most two decimals, at most 999999.99",
            "examples": ["1.5"],
        }
    ),
]
Day = Annotated[
    date,
    PlainValidator(parse_day, json_schema_input_type=str),
    PlainSerializer(date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "examples": ["2026-11-02"]}),
]
Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp, json_schema_input_type=str),
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with an offset",
            "examples": ["2026-11-02T08:15:00+02:00"],
        }
    ),
]
LaterVersion = Annotated[
    int,
    Field(strict=True, le=2**31 - 1),
    AfterValidator(_later_version),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 2,
            "maximum": 2**31 - 1,
            "description": "newer than the current version (1 is the original message)",
        }
    ),
]
Version = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]
Identifier = Annotated[str, _string(100), AfterValidator(_identifier)]
Code = Annotated[str, _string(50), AfterValidator(_identifier)]
# A set of service codes: at least one, none twice (a service coded by the organiser, as Code).
ServiceCodes = Annotated[list[Code], Field(strict=True, max_length=1000), AfterValidator(_distinct_codes)]
Name = Annotated[str, _string(200), AfterValidator(_no_controls)]
Reason = Annotated[str, StringConstraints(strict=True, max_length=1000), AfterValidator(_free_text)]
BusinessId = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_through(identifiers.check_business_id)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{7}-[0-9]$",
            "description": "business ID (Y-tunnus) with a valid check digit",
            "examples": ["2077474-0"],
        }
    ),
]
Municipality = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_through(identifiers.check_municipality)),
    WithJsonSchema(
        {"type": "string", "pattern": "^[0-9]{3}$", "description": "municipality code", "examples": ["091"]}
    ),
]
PaymentReference = Annotated[str, _string(35), AfterValidator(_through(identifiers.check_payment_reference))]
Hetu = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_hetu),
    WithJsonSchema(
        {
            "type": "string",
            "description": "personal identity code (HETU) with a valid check character; never repeated back",
            "examples": ["131052-308T"],
        }
    ),
]
