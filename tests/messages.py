"""Builders of realistic canonical messages for tests and benchmarks (unique ids per call)."""

from __future__ import annotations

import uuid
from typing import Any

ORGANISER = "2077474-0"  # a valid business ID (check digit right)
OTHER_ORGANISER = "0201256-6"
PROVIDER = "1572860-0"
OTHER_PROVIDER = "0116297-6"
HETU = "131052-308T"
SENT_AT = "2026-11-02T08:15:00+02:00"


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def uid(prefix: str = "m") -> str:
    """A unique id for message ids, voucher numbers and event ids."""
    # Letters only: twelve hex digits can take the shape of a HETU (`088295f4593`), and the
    # masker rightly masks look-alikes, which would change ids that tests look for in masked text.
    return f"{prefix}-{uuid.uuid4().hex[:12].translate(_LETTERS)}"


def envelope(
    type_: str, payload: dict[str, Any], message_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A canonical message around a payload."""
    return {"message_id": message_id or uid(), "type": type_, "sent_at": SENT_AT, "payload": payload, **extra}


def granted(
    voucher_number: str, quantity: str = "100", unit_value: str = "25.00", **over: Any
) -> dict[str, Any]:
    """voucher.granted for home care by the hour, valid through 2027."""
    payload = {
        "voucher_number": voucher_number,
        "organiser": ORGANISER,
        "decision_date": "2026-11-01",
        "client": {"hetu": HETU, "home_municipality": "091"},
        "service": {"code": "KH01", "name": "Säännöllinen kotihoito"},
        "unit": "hour",
        "unit_value": unit_value,
        "quantity": quantity,
        "valid_from": "2026-11-01",
        "valid_to": "2027-12-31",
    }
    payload.update(over)
    return envelope("voucher.granted", payload)


def assigned(voucher_number: str, provider: str = PROVIDER, price: str | None = "30.00") -> dict[str, Any]:
    """voucher.assigned to the provider the client chose."""
    payload: dict[str, Any] = {
        "voucher_number": voucher_number,
        "organiser": ORGANISER,
        "provider": provider,
        "start_date": "2026-11-01",
    }
    if price is not None:
        payload["provider_price"] = price
    return envelope("voucher.assigned", payload)


def delivery(
    voucher_number: str,
    quantity: str = "1",
    provider: str = PROVIDER,
    event_id: str | None = None,
    **over: Any,
) -> dict[str, Any]:
    """delivery.reported against a voucher."""
    payload = {
        "event_id": event_id or uid("ev"),
        "provider": provider,
        "organiser": ORGANISER,
        "voucher_number": voucher_number,
        "service_date": "2026-11-15",
        "quantity": quantity,
        "unit": "hour",
    }
    payload.update(over)
    return envelope("delivery.reported", payload)


def amended(voucher_number: str, version: int, **changes: Any) -> dict[str, Any]:
    """voucher.amended with any of unit_value, quantity, valid_to."""
    return envelope(
        "voucher.amended",
        {"voucher_number": voucher_number, "organiser": ORGANISER, "version": version, **changes},
    )


def revoked(voucher_number: str, version: int, effective_date: str = "2027-01-01") -> dict[str, Any]:
    """voucher.revoked from `effective_date` on."""
    payload = {
        "voucher_number": voucher_number,
        "organiser": ORGANISER,
        "version": version,
        "effective_date": effective_date,
        "reason": "Asiakas muutti toiselle paikkakunnalle",
    }
    return envelope("voucher.revoked", payload)


def placed(
    order_number: str, quantity: str | None = "50", unit_price: str = "42.00", **over: Any
) -> dict[str, Any]:
    """order.placed: physiotherapy visits from the contracted provider."""
    payload: dict[str, Any] = {
        "order_number": order_number,
        "organiser": ORGANISER,
        "provider": PROVIDER,
        "client": {"hetu": HETU, "home_municipality": "049"},
        "service": {"code": "FT02", "name": "Fysioterapia"},
        "unit": "visit",
        "unit_price": unit_price,
        "start_date": "2026-11-01",
        "end_date": "2027-06-30",
    }
    if quantity is not None:
        payload["quantity"] = quantity
    payload.update(over)
    return envelope("order.placed", payload)


def ended(order_number: str, version: int, end_date: str = "2026-12-31") -> dict[str, Any]:
    """order.ended on `end_date`."""
    payload = {"order_number": order_number, "organiser": ORGANISER, "version": version, "end_date": end_date}
    return envelope("order.ended", payload)


def order_delivery(order_number: str, quantity: str = "1", **over: Any) -> dict[str, Any]:
    """delivery.reported against an order."""
    payload: dict[str, Any] = {
        "event_id": uid("ev"),
        "provider": PROVIDER,
        "organiser": ORGANISER,
        "order_number": order_number,
        "service_date": "2026-11-20",
        "quantity": quantity,
        "unit": "visit",
    }
    payload.update(over)
    return envelope("delivery.reported", payload)


def corrected(event_id: str, version: int, quantity: str, provider: str = PROVIDER) -> dict[str, Any]:
    """delivery.corrected to a new quantity."""
    payload = {"event_id": event_id, "provider": provider, "version": version, "quantity": quantity}
    return envelope("delivery.corrected", payload)


def cancelled(event_id: str, version: int, provider: str = PROVIDER) -> dict[str, Any]:
    """delivery.cancelled."""
    return envelope("delivery.cancelled", {"event_id": event_id, "provider": provider, "version": version})


def approval(
    provider: str = PROVIDER,
    version: int = 1,
    service_codes: list[str] | None = None,
    valid_from: str = "2026-01-01",
    valid_to: str | None = None,
    organiser: str = ORGANISER,
) -> dict[str, Any]:
    """provider.approved: the organiser approves the provider (service_codes None: every service)."""
    payload: dict[str, Any] = {
        "organiser": organiser,
        "provider": provider,
        "version": version,
        "valid_from": valid_from,
    }
    if service_codes is not None:
        payload["service_codes"] = service_codes
    if valid_to is not None:
        payload["valid_to"] = valid_to
    return envelope("provider.approved", payload)


def new_business_id() -> str:
    """A fresh valid business ID (Y-tunnus), so a test's approvals are its own."""
    from stdnum.fi import ytunnus

    while True:
        digits = f"{uuid.uuid4().int % 10**7:07d}"
        for check in "0123456789":
            if ytunnus.is_valid(f"{digits}-{check}"):
                return f"{digits}-{check}"


def order_record(number: str, p: str = "") -> str:
    """A PLACED ServiceOrder record as XML (`p` = "v:" for the SOAP namespace): physiotherapy visits."""
    fields = {
        "OrderType": "PLACED",
        "OrderNumber": number,
        "Organiser": ORGANISER,
        "Provider": PROVIDER,
        "Client": f"<{p}Hetu>{HETU}</{p}Hetu><{p}HomeMunicipality>049</{p}HomeMunicipality>",
        "Service": f"<{p}Code>FT02</{p}Code><{p}Name>Fysioterapia</{p}Name>",
        "Unit": "visit",
        "UnitPrice": "42.00",
        "Quantity": "50",
        "StartDate": "2026-11-01",
        "EndDate": "2027-06-30",
    }
    inner = "".join(f"<{p}{k}>{v}</{p}{k}>" for k, v in fields.items())
    return f"<{p}ServiceOrder>{inner}</{p}ServiceOrder>"
