"""Finnish identifier checks: HETU, Y-tunnus, municipality codes and payment references.

The check digits come from python-stdnum; only the Finnish reference number, which stdnum does not
cover, is computed here. Error messages never repeat a HETU: they end up in problem documents,
receipts and logs, where a personal identity code must not appear.
"""

from __future__ import annotations

import re
from datetime import date

from stdnum import iso11649
from stdnum.exceptions import InvalidChecksum, InvalidComponent, ValidationError
from stdnum.fi import hetu as stdnum_hetu
from stdnum.fi import ytunnus as stdnum_ytunnus

__all__ = [
    "check_business_id",
    "check_hetu",
    "check_municipality",
    "check_payment_reference",
    "finnish_reference",
    "is_valid_finnish_reference",
]


# Kept here rather than read from stdnum's private table; the 2023 reform added Y-U and B-F.
_CENTURIES = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}
_BUSINESS_ID = re.compile(r"[0-9]{7}-[0-9]")
_MUNICIPALITY = re.compile(r"[0-9]{3}")
_REFERENCE_WEIGHTS = (7, 3, 1)
_HETU_FORMAT = "is not a valid personal identity code (expected DDMMYYCZZZQ)"


def check_hetu(value: str, today: date | None = None) -> str:
    """Return the HETU upper-cased, or raise ValueError (the message never contains the value)."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    # isascii: stdnum's \d would also accept other scripts' digits.
    if not value.isascii():
        raise ValueError(_HETU_FORMAT)
    number = stdnum_hetu.compact(value)
    try:
        stdnum_hetu.validate(number, allow_temporary=True)
    except InvalidChecksum:
        raise ValueError("has a wrong check character") from None
    except InvalidComponent:
        # stdnum raises the same error for both; the format is known to be right at this point.
        if int(number[7:10]) < 2:
            raise ValueError("has an invalid individual number") from None
        raise ValueError("has an invalid birth date") from None
    except ValidationError:
        raise ValueError(_HETU_FORMAT) from None
    if not stdnum_hetu.is_valid(number):
        # Only the temporary range is left once allow_temporary=True passed.
        raise ValueError("is a temporary identity code (900-999), which is not accepted")
    if _birth_date(number) > (today or date.today()):
        raise ValueError("has a birth date in the future")
    return number


def _birth_date(number: str) -> date:
    century = _CENTURIES[number[6]]
    return date(century + int(number[4:6]), int(number[2:4]), int(number[0:2]))


def check_business_id(value: str) -> str:
    """Return a Y-tunnus given in the canonical `NNNNNNN-N` form with a valid check digit."""
    if not isinstance(value, str) or not _BUSINESS_ID.fullmatch(value):
        raise ValueError("must be a business ID in the form NNNNNNN-N")
    try:
        stdnum_ytunnus.validate(value)
    except ValidationError:
        raise ValueError("has a wrong check digit") from None
    return value


def check_municipality(value: str) -> str:
    """Return a municipality code (kuntanumero) of exactly three digits."""
    if not isinstance(value, str) or not _MUNICIPALITY.fullmatch(value):
        raise ValueError("must be a three-digit municipality code such as 091")
    return value


def _reference_check_digit(base: str) -> str:
    total = sum(int(digit) * _REFERENCE_WEIGHTS[i % 3] for i, digit in enumerate(reversed(base)))
    return str((10 - total % 10) % 10)


def finnish_reference(base: str) -> str:
    """Append the check digit to a 3-19 digit base, giving a Finnish reference number (viitenumero)."""
    if not base.isascii() or not base.isdigit() or not 3 <= len(base) <= 19:
        raise ValueError("reference base must be 3-19 digits")
    return base + _reference_check_digit(base)


def is_valid_finnish_reference(value: str) -> bool:
    """Whether `value` (spaces ignored) is a 4-20 digit Finnish reference number with a valid check digit."""
    if not isinstance(value, str):
        return False
    number = value.replace(" ", "")
    if not number.isascii() or not number.isdigit() or not 4 <= len(number) <= 20:
        return False
    return _reference_check_digit(number[:-1]) == number[-1]


def check_payment_reference(value: str) -> str:
    """Return a Finnish or RF creditor reference compacted (no spaces, upper case), or raise ValueError."""
    message = "must be a valid Finnish reference number or RF creditor reference"
    if not isinstance(value, str):
        raise ValueError(message)
    if value.strip()[:2].upper() == "RF":
        try:
            return str(iso11649.validate(value))
        except ValidationError:
            raise ValueError(message) from None
    if not is_valid_finnish_reference(value):
        raise ValueError(message)
    return value.replace(" ", "")
