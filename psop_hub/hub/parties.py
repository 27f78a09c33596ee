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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError
from stdnum.fi import ytunnus as stdnum_ytunnus

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import InvalidInput
from psop_hub.hub.tables import parties

__all__ = ["Party", "canonical_business_id", "get_party", "normalised", "set_party"]

_POSTCODE = re.compile(r"[0-9]{5}")
# Finvoice's limits for names and address lines (genericStringType2_70 / 2_35).
_NAME_MAX = 200
_ADDRESS_MAX = 35


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


def normalised(party: Party) -> Party:
    """The party with every field checked and in its stored form; InvalidInput names the bad field."""
    name = _text("name", party.name, 2, _NAME_MAX)
    if not name:
        raise InvalidInput("name", "name must not be empty")
    postcode = party.postcode.strip()
    if postcode and not _POSTCODE.fullmatch(postcode):
        raise InvalidInput("postcode", f"postcode {postcode!r} must be five digits, e.g. 00100")
    return replace(
        party,
        business_id=canonical_business_id(party.business_id),
        name=name,
        street=_text("street", party.street, 2, _ADDRESS_MAX),
        postcode=postcode,
        town=_text("town", party.town, 2, _ADDRESS_MAX),
        iban=_iban(party.iban),
        bic=_bic(party.bic),
    )


def set_party(engine: Engine, party: Party) -> None:
    """Insert or replace a party's invoicing details after checking them (InvalidInput names the field)."""
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
