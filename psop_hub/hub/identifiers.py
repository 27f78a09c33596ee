"""Finnish identifier checks: HETU, Y-tunnus, municipality codes and payment references.

The HETU and Y-tunnus checks are computed here, each in one pass, and held by the tests to
python-stdnum's verdict on the same values; the RF creditor reference is stdnum's. Error messages
never repeat a HETU: they end up in problem documents, receipts and logs, where a personal
identity code must not appear.
"""

from __future__ import annotations

import re
from datetime import date

from stdnum import iso11649
from stdnum.exceptions import ValidationError

__all__ = [
    "check_business_id",
    "check_hetu",
    "check_municipality",
    "check_payment_reference",
    "finnish_reference",
    "is_valid_finnish_reference",
]


# The century signs (stdnum keeps its own in a private table); the 2023 reform added Y-U and B-F.
_CENTURIES = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}
_BUSINESS_ID = re.compile(r"[0-9]{7}-[0-9]")
_BUSINESS_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1)
_HETU = re.compile(r"[0-3][0-9][01][0-9][0-9]{2}[-+A-FYXWVU][0-9]{3}[0-9A-FHJ-NPR-Y]")
_HETU_CONTROL = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_MUNICIPALITY = re.compile(r"[0-9]{3}")
_REFERENCE_WEIGHTS = (7, 3, 1)
_HETU_FORMAT = "is not a valid personal identity code (expected DDMMYYCZZZQ)"


def check_hetu(value: str, today: date | None = None) -> str:
    """Return the HETU upper-cased, or raise ValueError (the message never contains the value).

    DDMMYYCZZZQ (DVV's rules): a real birth date, the century sign, an individual number 002-899
    (900-999 are temporary codes, refused) and the check character of DDMMYYZZZ mod 31. Checked
    here in one pass, with python-stdnum's rules (its `validate` and `is_valid` together cost ~12
    us, on every message, in the API and again in a worker); tests/unit/test_validation.py holds
    the two to the same verdict."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    # ASCII only, before upper(): it makes ASCII letters of some others (U+0131 -> I, U+017F -> S).
    if not value.isascii():
        raise ValueError(_HETU_FORMAT)
    number = value.strip().upper()
    if _HETU.fullmatch(number) is None:
        raise ValueError(_HETU_FORMAT)
    individual = int(number[7:10])
    try:
        born: date | None = date(_CENTURIES[number[6]] + int(number[4:6]), int(number[2:4]), int(number[0:2]))
    except ValueError:
        born = None
    if individual < 2:  # for historical reasons individual numbers start at 002
        raise ValueError("has an invalid individual number")
    if born is None:
        raise ValueError("has an invalid birth date")
    if number[10] != _HETU_CONTROL[int(number[0:6] + number[7:10]) % 31]:
        raise ValueError("has a wrong check character")
    if individual >= 900:
        raise ValueError("is a temporary identity code (900-999), which is not accepted")
    if born > (today or date.today()):
        raise ValueError("has a birth date in the future")
    return number


def check_business_id(value: str) -> str:
    """Return a Y-tunnus given in the canonical `NNNNNNN-N` form with a valid check digit (the
    seven digits weighted 7, 9, 10, 5, 8, 4, 2 plus the check digit: divisible by 11)."""
    if not isinstance(value, str) or not _BUSINESS_ID.fullmatch(value):
        raise ValueError("must be a business ID in the form NNNNNNN-N")
    digits = value[:7] + value[8]
    if sum(w * int(d) for w, d in zip(_BUSINESS_ID_WEIGHTS, digits, strict=True)) % 11:
        raise ValueError("has a wrong check digit")
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
