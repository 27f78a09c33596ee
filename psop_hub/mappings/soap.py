"""SOAP 1.1 bodies to canonical messages: the mapping of VoucherDecision / ServiceOrder /
ProviderApproval elements to the same canonical dicts the REST API takes, after XSD validation.

The hardened parser, the per-thread schema and the XSD error mapping, which the XML batch files
share, are in `mappings/xml.py`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from psop_hub.hub.errors import FieldError, ValidationFailed
from psop_hub.mappings.canonical import Envelope, parse_message
from psop_hub.mappings.xml import schema_errors

NS = "urn:psop-hub:soap:v1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_USERNAME_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _USERNAME_PROFILE + "#PasswordText"  # the name of a password type, not a password

# Canonical payload fields each decision or order type takes, by SOAP element name.
DECISIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "GRANTED": (
        "voucher.granted",
        ("DecisionDate", "Client", "Service", "Unit", "UnitValue", "Quantity", "ValidFrom", "ValidTo"),
    ),
    "AMENDED": ("voucher.amended", ("Version", "UnitValue", "Quantity", "ValidTo")),
    "REVOKED": ("voucher.revoked", ("Version", "EffectiveDate", "Reason")),
    "ASSIGNED": ("voucher.assigned", ("Provider", "ProviderPrice", "StartDate")),
}
ORDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PLACED": (
        "order.placed",
        ("Provider", "Client", "Service", "Unit", "UnitPrice", "Quantity", "StartDate", "EndDate"),
    ),
    "ENDED": ("order.ended", ("Version", "EndDate")),
}
# A ProviderApproval is always provider.approved; its repeatable ServiceCode elements become the
# `service_codes` list (none given: the field is left out, meaning every service).
APPROVAL_TYPE = "provider.approved"
APPROVAL_FIELDS = ("Organiser", "Provider", "Version", "ValidFrom", "ValidTo")
ENVELOPE_FIELDS = ("MessageId", "SentAt", "CorrelationId")


# A decision or an order record: the element naming its kind, the one naming its number, and
# what each kind is; then the elements each kind may hold.
_RECORDS = {
    "VoucherDecision": ("DecisionType", "VoucherNumber", DECISIONS),
    "ServiceOrder": ("OrderType", "OrderNumber", ORDERS),
}
_ALLOWED = {
    (root_name, kind): frozenset({*ENVELOPE_FIELDS, kind_field, number_field, "Organiser", *fields})
    for root_name, (kind_field, number_field, table) in _RECORDS.items()
    for kind, (_, fields) in table.items()
}


def to_message(root_name: str, operation: Any, now: datetime | None = None) -> Envelope:
    """Validate a SOAP operation element (XSD, then the canonical rules) into a canonical message.

    Raises ValidationFailed listing every problem with SOAP element paths. After a structural
    error libxml2 stops checking the rest of that element, so the canonical rules still run
    where the element can be read, and their findings are added for the fields not yet named.
    """
    element = operation.find(f"{{{NS}}}{root_name}")
    errors = schema_errors(operation)
    if element is not None and element.find(f"{{{NS}}}MessageId") is None:
        errors.append(FieldError(f"{root_name}/MessageId", "is required: it is the idempotency key"))
    return _checked(root_name, element, errors, None, now)


def record_to_message(root_name: str, record: Any, message_id: str, now: datetime | None = None) -> Envelope:
    """Validate one record of a file batch into a canonical message with the derived `message_id`."""
    return _checked(root_name, record, schema_errors(record, root_name), message_id, now)


def _checked(
    root_name: str, element: Any, errors: list[FieldError], message_id: str | None, now: datetime | None
) -> Envelope:
    try:
        if element is None:
            raise ValidationFailed([FieldError(root_name, "is required")])
        message = parse_message(to_canonical(root_name, element, now, message_id))
    except ValidationFailed as exc:
        named = {e.field for e in errors}
        for e in exc.errors:
            field = e.field if "/" in e.field else soap_field(root_name, e.field)
            if field not in named:
                errors.append(FieldError(field, soap_text(e.message)))
                named.add(field)
    except (KeyError, ValueError, TypeError):
        # The element cannot be read at all: the schema errors say why.
        errors = errors or [FieldError(root_name, "cannot be read as the WSDL describes it")]
    if errors:
        raise ValidationFailed(errors)
    return message


def local_name(tag: str) -> str:
    """The local name of a tag (`{urn:ns}Name` or `Name`): what etree.QName(tag).localname gives,
    without building a QName object for every element of every call."""
    return tag[tag.find("}") + 1 :]


def _children(element: Any) -> dict[str, Any]:
    """An element's children by local name (comments and the like left out)."""
    return {local_name(c.tag): c for c in element if isinstance(c.tag, str)}


def _text(children: dict[str, Any], name: str) -> str | None:
    child = children.get(name)
    return None if child is None else (child.text or "").strip()


@lru_cache(maxsize=256)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _value(children: dict[str, Any], name: str) -> Any:
    if name in ("Client", "Service"):
        return {_snake(k): (v.text or "").strip() for k, v in _children(children[name]).items()}
    text = _text(children, name)
    return int(text) if name == "Version" and text is not None else text


def to_canonical(
    root_name: str, element: Any, now: datetime | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """A validated VoucherDecision, ServiceOrder or ProviderApproval element as a canonical message dict.

    `message_id` overrides the element's own (file records: the element's MessageId is then
    kept as the correlation id). Raises ValidationFailed for elements the type does not use.
    """
    if root_name == "ProviderApproval":
        return _message_dict(_approval_payload(element), APPROVAL_TYPE, _children(element), now, message_id)
    kind_field, number_field, table = _RECORDS[root_name]
    children = _children(element)
    kind = _text(children, kind_field) or ""
    message_type, fields = table[kind]
    allowed = _ALLOWED[root_name, kind]
    unused = [
        FieldError(f"{root_name}/{name}", f"is not used with {kind_field} {kind}")
        for name in children
        if name not in allowed
    ]
    if unused:
        raise ValidationFailed(unused)
    payload: dict[str, Any] = {
        _snake(number_field): _text(children, number_field),
        "organiser": _text(children, "Organiser"),
    }
    for name in fields:
        if name in children:
            payload[_snake(name)] = _value(children, name)
    return _message_dict(payload, message_type, children, now, message_id)


def _approval_payload(element: Any) -> dict[str, Any]:
    """The canonical payload of a ProviderApproval element (ServiceCode* as a list)."""
    children = _children(element)
    unused = [
        FieldError(f"ProviderApproval/{name}", "is not used in a ProviderApproval")
        for name in children
        if name not in {*ENVELOPE_FIELDS, *APPROVAL_FIELDS, "ServiceCode"}
    ]
    if unused:
        raise ValidationFailed(unused)
    payload = {_snake(name): _value(children, name) for name in APPROVAL_FIELDS if name in children}
    codes = [
        (c.text or "").strip()
        for c in element
        if isinstance(c.tag, str) and local_name(c.tag) == "ServiceCode"
    ]
    if codes:
        payload["service_codes"] = codes
    return payload


def _message_dict(
    payload: dict[str, Any],
    message_type: str,
    children: dict[str, Any],
    now: datetime | None,
    message_id: str | None,
) -> dict[str, Any]:
    own_id = _text(children, "MessageId")
    message: dict[str, Any] = {
        "message_id": message_id or own_id,
        "type": message_type,
        "sent_at": _text(children, "SentAt") or (now or datetime.now(UTC)).isoformat(),
        "payload": payload,
    }
    correlation = _text(children, "CorrelationId") or (own_id if message_id else None)
    if correlation is not None:
        message["correlation_id"] = correlation
    return message


def soap_field(root_name: str, canonical_field: str) -> str:
    """A canonical error path in SOAP names: `payload.client.hetu` -> `VoucherDecision/Client/Hetu`."""
    if canonical_field in ("", "payload"):
        return root_name
    if "/" in canonical_field:  # a SOAP path already
        return canonical_field
    if canonical_field == "type":
        kinds = {"VoucherDecision": "DecisionType", "ServiceOrder": "OrderType"}
        return f"{root_name}/{kinds[root_name]}" if root_name in kinds else root_name
    parts = canonical_field.split(".")
    if parts[0] == "payload":
        parts = parts[1:]
    if parts and parts[0] == "service_codes":
        # The list is the repeated ServiceCode element; an item is named by its position (from 1).
        index = f"[{int(parts[1]) + 1}]" if len(parts) > 1 and parts[1].isdigit() else ""
        return f"{root_name}/ServiceCode{index}"
    return "/".join([root_name, *("".join(w.capitalize() for w in p.split("_")) for p in parts)])


# Every canonical field name of two or more words and the SOAP element it is written as, for the
# messages that name another field ("must not be before valid_from" -> "... before ValidFrom").
_ELEMENTS = {
    *ENVELOPE_FIELDS,
    *APPROVAL_FIELDS,
    "VoucherNumber",
    "OrderNumber",
    "HomeMunicipality",
    *(name for _, fields in (*DECISIONS.values(), *ORDERS.values()) for name in fields),
}
_SOAP_NAMES = {_snake(name): name for name in _ELEMENTS if "_" in _snake(name)} | {
    "service_codes": "ServiceCode"
}
_SNAKE_WORD = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
# The SOAP record each message type is written as; the other types have no SOAP form.
SOAP_RECORDS = {
    **{message_type: "VoucherDecision" for message_type, _ in DECISIONS.values()},
    **{message_type: "ServiceOrder" for message_type, _ in ORDERS.values()},
    APPROVAL_TYPE: "ProviderApproval",
}


def soap_text(message: str) -> str:
    """A message with the canonical field names in it written as SOAP element names."""
    return _SNAKE_WORD.sub(lambda m: _SOAP_NAMES.get(m.group(), m.group()), message)


def soap_errors(message_type: str, errors: list[dict[str, str]]) -> list[FieldError]:
    """A stored message's errors in SOAP terms (GetMessageStatus): fields as element paths of
    its SOAP record, field names in the messages as elements. A type with no SOAP form
    (deliveries, payments: REST and CSV only) keeps the names of the contract it came through."""
    root = SOAP_RECORDS.get(message_type)
    if root is None:
        return [FieldError(e.get("field", ""), e.get("message", "")) for e in errors]
    return [FieldError(soap_field(root, e.get("field", "")), soap_text(e.get("message", ""))) for e in errors]
