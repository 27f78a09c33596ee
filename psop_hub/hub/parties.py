"""Invoicing details of organisers and providers: name, postal address and bank account.

The Finvoice invoice of a settlement names the provider as seller (with the account the organiser
pays to) and the organiser as buyer. `set_party` validates and normalises what it stores, so an
invoice never carries an IBAN, BIC or business ID that fails its check digits:

- business ID (Y-tunnus): `stdnum.fi.ytunnus`, stored as `NNNNNNN-N`;
- IBAN: `stdnum.iban`, stored compact and upper-case (`FI2112345600000785`);
- BIC: `stdnum.bic` (8 or 11 characters), stored upper-case;
- name 2-200 characters; street and town at most 35 characters and postcode five digits, as a
  Finnish Finvoice postal address has them; all three may be left empty (an invoice then refuses
  the party, naming what is missing).

Every bad field is reported at once (`InvalidInput.of`, one `FieldError` per field), whether the
details come from `hub parties set` or from `PUT /api/v1/parties/{business_id}` (`party_from_json`).

What an invoice needs of each party is defined here once (`missing_details`): the seller (the
provider) its IBAN, BIC and postal address, the buyer (the organiser) its postal address. The
Finvoice writer refuses a party that lacks one, and `settlement_views.settlements_waiting_for_details`
lists the settlements that wait for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError
from stdnum.fi import ytunnus as stdnum_ytunnus

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import FieldError, InvalidInput
from psop_hub.hub.tables import parties

__all__ = [
    "BUYER_DETAILS",
    "SELLER_DETAILS",
    "Party",
    "canonical_business_id",
    "get_party",
    "missing_details",
    "normalised",
    "party_from_json",
    "set_party",
]

_POSTCODE = re.compile(r"[0-9]{5}")
# Finvoice's limits for names and address lines (genericStringType2_70 / 2_35).
_NAME_MAX = 200
_ADDRESS_MAX = 35
# What a Finvoice invoice needs of its seller (the provider: it is paid to that account) and of
# its buyer (the organiser), besides a name, which every stored party has.
SELLER_DETAILS = ("iban", "bic", "street", "postcode", "town")
BUYER_DETAILS = ("street", "postcode", "town")
_TEXT_FIELDS = ("name", "street", "postcode", "town")
_OPTIONAL_FIELDS = ("iban", "bic")


@dataclass(frozen=True)
class Party:
    """An organiser's or provider's invoicing details, keyed by its business ID."""

    business_id: str
    name: str
    street: str
    postcode: str
    town: str
    iban: str | None = None
    bic: str | None = None


def canonical_business_id(value: str) -> str:
    """A Y-tunnus in the form `NNNNNNN-N`, or InvalidInput naming the field."""
    try:
        return str(stdnum_ytunnus.format(stdnum_ytunnus.validate(value)))
    except ValidationError:
        raise InvalidInput(
            "business_id", f"business_id {value!r} is not a valid business ID (Y-tunnus)"
        ) from None


def _iban(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return str(stdnum_iban.validate(value)).upper()
    except ValidationError as exc:
        raise InvalidInput("iban", f"iban {value!r} is not a valid IBAN ({exc})") from None


def _bic(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return str(stdnum_bic.validate(value)).upper()
    except ValidationError as exc:
        raise InvalidInput("bic", f"bic {value!r} is not a valid BIC of 8 or 11 characters ({exc})") from None


def _text(field: str, value: str, low: int, high: int) -> str:
    text = " ".join(value.split())
    if text and not low <= len(text) <= high:
        raise InvalidInput(field, f"{field} must be {low}-{high} characters, not {len(text)}")
    return text


def _name(value: str) -> str:
    name = _text("name", value, 2, _NAME_MAX)
    if not name:
        raise InvalidInput("name", "name must not be empty")
    return name


def _postcode(value: str) -> str:
    postcode = value.strip()
    if postcode and not _POSTCODE.fullmatch(postcode):
        raise InvalidInput("postcode", f"postcode {postcode!r} must be five digits, e.g. 00100")
    return postcode


def normalised(party: Party) -> Party:
    """The party with every field checked and in its stored form; InvalidInput lists every bad field."""
    checks: dict[str, Any] = {
        "business_id": lambda: canonical_business_id(party.business_id),
        "name": lambda: _name(party.name),
        "street": lambda: _text("street", party.street, 2, _ADDRESS_MAX),
        "postcode": lambda: _postcode(party.postcode),
        "town": lambda: _text("town", party.town, 2, _ADDRESS_MAX),
        "iban": lambda: _iban(party.iban),
        "bic": lambda: _bic(party.bic),
    }
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for field, check in checks.items():
        try:
            values[field] = check()
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput.of(errors)
    return Party(**values)


def party_from_json(business_id: str, body: Any) -> Party:
    """The party a JSON object describes (`PUT /api/v1/parties/{business_id}`: the whole record,
    `name` required, absent texts empty, absent `iban`/`bic` none), checked like `normalised`:
    InvalidInput lists every bad or unknown field at once."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body", "the body must be a JSON object of the party's invoicing details")
    errors: list[FieldError] = []
    known = {"business_id", *_TEXT_FIELDS, *_OPTIONAL_FIELDS}
    # Keys are the sender's text: shortened, so an error never echoes a whole body back.
    errors += [FieldError(k[:50], f"unknown field {k[:50]!r}") for k in map(str, body) if k not in known]
    if "business_id" in body:
        given = body["business_id"]
        try:
            path_id = canonical_business_id(business_id)
        except InvalidInput:
            path_id = None  # reported below, by `normalised`
        try:
            same = isinstance(given, str) and canonical_business_id(given) == path_id
        except InvalidInput:
            same = False
        if path_id is not None and not same:
            errors.append(FieldError("business_id", "business_id must be the one in the path, or left out"))
    texts: dict[str, str] = {}
    for field in _TEXT_FIELDS:
        value = body.get(field, "")
        if field == "name" and field not in body:
            errors.append(FieldError("name", "name is required"))
        elif not isinstance(value, str):
            errors.append(FieldError(field, f"{field} must be a string"))
        texts[field] = value if isinstance(value, str) else ""
    accounts: dict[str, str | None] = {}
    for field in _OPTIONAL_FIELDS:
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            errors.append(FieldError(field, f"{field} must be a string or null"))
            value = None
        accounts[field] = value
    # Check the values given too, so that one answer lists every bad field (a field already
    # listed as missing or of the wrong type is not listed twice).
    candidate = Party(
        business_id,
        texts["name"],
        texts["street"],
        texts["postcode"],
        texts["town"],
        accounts["iban"],
        accounts["bic"],
    )
    reported = {e.field for e in errors}
    try:
        party = normalised(candidate)
    except InvalidInput as exc:
        errors += [e for e in exc.errors if e.field not in reported]
    if errors:
        raise InvalidInput.of(errors)
    return party


def missing_details(party: Party | None, *, seller: bool) -> tuple[str, ...]:
    """The details an invoice needs of this party that it lacks (`name` and the rest when none
    are stored): as seller (the provider) IBAN, BIC and address, as buyer (the organiser) the
    address."""
    needed = SELLER_DETAILS if seller else BUYER_DETAILS
    if party is None:
        return ("name", *needed)
    return tuple(field for field in needed if not getattr(party, field))


def set_party(engine: Engine, party: Party) -> Party:
    """Insert or replace a party's invoicing details after checking them (InvalidInput lists every
    bad field); returns what was stored. Its `updated_at` moves, which tells the file adapter to
    try the invoices that wait for details again at once (`adapters.invoices.write_pending`)."""
    p = normalised(party)
    values = {
        "name": p.name,
        "street": p.street,
        "postcode": p.postcode,
        "town": p.town,
        "iban": p.iban,
        "bic": p.bic,
    }
    statement = insert(parties).values(business_id=p.business_id, **values)
    statement = statement.on_conflict_do_update(
        index_elements=[parties.c.business_id], set_={**values, "updated_at": func.now()}
    )
    with unavailable_on_outage(), engine.begin() as conn:
        conn.execute(statement)
    return p


def get_party(conn: Connection, business_id: str) -> Party | None:
    """The party's invoicing details, or None if none are stored (or the ID is not a valid one)."""
    try:
        key = canonical_business_id(business_id)
    except InvalidInput:
        return None
    row = conn.execute(select(parties).where(parties.c.business_id == key)).one_or_none()
    if row is None:
        return None
    return Party(row.business_id, row.name, row.street, row.postcode, row.town, row.iban, row.bic)
