"""The payload of each canonical message type (INTERFACES §2) as a frozen pydantic model."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from psop_hub.mappings.fields import (
    BusinessId,
    Code,
    Day,
    Hetu,
    Identifier,
    LaterVersion,
    Money,
    Municipality,
    Name,
    PaymentReference,
    Quantity,
    Reason,
    ServiceCodes,
    Unit,
    UnitMoney,
    Version,
    parse_day,
)

__all__ = [
    "CROSS_FIELD_ERROR",
    "MESSAGE_TYPES",
    "PAYLOAD_MODELS",
    "Client",
    "CrossCheck",
    "DeliveryCancelled",
    "DeliveryCorrected",
    "DeliveryReported",
    "OrderEnded",
    "OrderPlaced",
    "Payload",
    "PayloadBase",
    "PaymentConfirmed",
    "ProviderApproved",
    "Service",
    "VoucherAmended",
    "VoucherAssigned",
    "VoucherGranted",
    "VoucherRevoked",
    "cross_field_problems",
]

# A cross-field rule looks at a payload's values (parsed, or raw when parsing failed elsewhere) and
# returns (field, message) pairs; field "" means the payload as a whole.
CrossCheck = Callable[[Mapping[str, object]], list[tuple[str, str]]]
CROSS_FIELD_ERROR = "cross_field"
_REFERENCE_KEYS = ("voucher_number", "order_number", "event_id", "settlement_id")


def _day_or_none(value: object) -> date | None:
    if value is None:  # an optional date not given: no exception raised and caught
        return None
    try:
        return parse_day(value)
    except PydanticCustomError:
        return None


def _not_before(later: str, earlier: str) -> CrossCheck:
    def check(values: Mapping[str, object]) -> list[tuple[str, str]]:
        first, last = _day_or_none(values.get(earlier)), _day_or_none(values.get(later))
        if first is not None and last is not None and last < first:
            return [(later, f"must not be before {earlier}")]
        return []

    return check


def _exactly_one(first: str, second: str) -> CrossCheck:
    def check(values: Mapping[str, object]) -> list[tuple[str, str]]:
        given = [name for name in (first, second) if values.get(name) is not None]
        if len(given) == 1:
            return []
        which = "both were given" if given else "neither was given"
        return [(first, f"exactly one of {first} and {second} is required ({which})")]

    return check


def _at_least_one(*names: str) -> CrossCheck:
    def check(values: Mapping[str, object]) -> list[tuple[str, str]]:
        if any(values.get(name) is not None for name in names):
            return []
        return [("", f"must contain at least one of {', '.join(names)}")]

    return check


def cross_field_problems(model: type[PayloadBase], values: Mapping[str, object]) -> list[tuple[str, str]]:
    """Every cross-field rule of `model` that `values` break, as (field, message) pairs."""
    return [problem for check in model.cross_checks for problem in check(values)]


class _Frozen(BaseModel):
    # extra="forbid": a misspelt optional field (say "provider_prise") must be an error, not vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Client(_Frozen):
    """The person receiving the service."""

    hetu: Hetu = Field(repr=False)
    home_municipality: Municipality


class Service(_Frozen):
    """The service granted or ordered, in the organiser's own coding."""

    code: Code
    name: Name


class PayloadBase(_Frozen):
    """Common behaviour of every payload model."""

    cross_checks: ClassVar[tuple[CrossCheck, ...]] = ()

    if TYPE_CHECKING:
        # Declared for the type checker only: at run time each model has a field or a property.
        @property
        def organiser(self) -> str | None: ...

        @property
        def provider(self) -> str | None: ...

    @model_validator(mode="after")
    def _cross_fields(self) -> Self:
        # Its fields as they are (extra="forbid": nothing else is in __dict__); `dict(self)` asks
        # the model for `keys` first, which pydantic answers with an exception (~4 us a message).
        problems = cross_field_problems(type(self), self.__dict__)
        if problems:
            field, message = problems[0]
            raise PydanticCustomError(CROSS_FIELD_ERROR, message, {"field": field})
        return self

    @property
    def reference_keys(self) -> dict[str, str]:
        """The voucher/order/event/settlement identifiers this payload carries, for search."""
        keys = {name: getattr(self, name) for name in _reference_fields(type(self))}
        return {name: value for name, value in keys.items() if isinstance(value, str)}


@functools.cache
def _reference_fields(model: type[PayloadBase]) -> tuple[str, ...]:
    """Those of `_REFERENCE_KEYS` that are fields of `model`: a getattr of one it lacks goes
    through pydantic's `__getattr__` and an exception (~7 us a message for the three missing)."""
    return tuple(name for name in _REFERENCE_KEYS if name in model.model_fields)


class _NoOrganiser:
    @property
    def organiser(self) -> str | None:
        """This type carries no organiser."""
        return None


class _NoProvider:
    @property
    def provider(self) -> str | None:
        """This type carries no provider."""
        return None


class VoucherGranted(_NoProvider, PayloadBase):
    """voucher.granted: the organiser's decision creating a voucher (version 1)."""

    cross_checks = (_not_before("valid_to", "valid_from"),)

    voucher_number: Identifier
    organiser: BusinessId
    decision_date: Day
    client: Client
    service: Service
    unit: Unit
    unit_value: UnitMoney
    quantity: Quantity
    valid_from: Day
    valid_to: Day


class VoucherAmended(_NoProvider, PayloadBase):
    """voucher.amended: a new value, quantity or end date for a voucher."""

    cross_checks = (_at_least_one("unit_value", "quantity", "valid_to"),)

    voucher_number: Identifier
    organiser: BusinessId
    version: LaterVersion
    unit_value: UnitMoney | None = None
    quantity: Quantity | None = None
    valid_to: Day | None = None


class VoucherRevoked(_NoProvider, PayloadBase):
    """voucher.revoked: the voucher ends from `effective_date` on."""

    voucher_number: Identifier
    organiser: BusinessId
    version: LaterVersion
    effective_date: Day
    reason: Reason | None = None


class VoucherAssigned(PayloadBase):
    """voucher.assigned: the provider the client chose."""

    voucher_number: Identifier
    organiser: BusinessId
    provider: BusinessId
    provider_price: UnitMoney | None = None
    start_date: Day


class OrderPlaced(PayloadBase):
    """order.placed: a purchased service ordered from a contracted provider (version 1)."""

    cross_checks = (_not_before("end_date", "start_date"),)

    order_number: Identifier
    organiser: BusinessId
    provider: BusinessId
    client: Client
    service: Service
    unit: Unit
    unit_price: UnitMoney
    quantity: Quantity | None = None
    start_date: Day
    end_date: Day | None = None


class OrderEnded(_NoProvider, PayloadBase):
    """order.ended: the order ends on `end_date`."""

    order_number: Identifier
    organiser: BusinessId
    version: LaterVersion
    end_date: Day


class DeliveryReported(PayloadBase):
    """delivery.reported: units delivered against a voucher or an order (version 1)."""

    cross_checks = (_exactly_one("voucher_number", "order_number"),)

    event_id: Identifier
    provider: BusinessId
    organiser: BusinessId
    voucher_number: Identifier | None = None
    order_number: Identifier | None = None
    service_date: Day
    quantity: Quantity
    unit: Unit
    price: UnitMoney | None = None


class DeliveryCorrected(_NoOrganiser, PayloadBase):
    """delivery.corrected: a new quantity for a reported delivery."""

    event_id: Identifier
    provider: BusinessId
    version: LaterVersion
    quantity: Quantity


class DeliveryCancelled(_NoOrganiser, PayloadBase):
    """delivery.cancelled: a reported delivery withdrawn."""

    event_id: Identifier
    provider: BusinessId
    version: LaterVersion


class PaymentConfirmed(_NoOrganiser, _NoProvider, PayloadBase):
    """payment.confirmed: the organiser's ERP paid a settlement."""

    settlement_id: Identifier
    paid_date: Day
    amount: Money
    reference: PaymentReference


class ProviderApproved(PayloadBase):
    """provider.approved: the organiser approves a provider for its services (palveluntuottajan
    hyväksyntä); a newer version replaces the approval, one with `valid_to` ends it."""

    cross_checks = (_not_before("valid_to", "valid_from"),)

    organiser: BusinessId
    provider: BusinessId
    version: Version
    # None: approved for every service of the organiser.
    service_codes: ServiceCodes | None = None
    valid_from: Day
    valid_to: Day | None = None


Payload = (
    VoucherGranted
    | VoucherAmended
    | VoucherRevoked
    | VoucherAssigned
    | OrderPlaced
    | OrderEnded
    | DeliveryReported
    | DeliveryCorrected
    | DeliveryCancelled
    | PaymentConfirmed
    | ProviderApproved
)
PAYLOAD_MODELS: dict[str, type[Payload]] = {
    "voucher.granted": VoucherGranted,
    "voucher.amended": VoucherAmended,
    "voucher.revoked": VoucherRevoked,
    "voucher.assigned": VoucherAssigned,
    "order.placed": OrderPlaced,
    "order.ended": OrderEnded,
    "delivery.reported": DeliveryReported,
    "delivery.corrected": DeliveryCorrected,
    "delivery.cancelled": DeliveryCancelled,
    "payment.confirmed": PaymentConfirmed,
    "provider.approved": ProviderApproved,
}
MESSAGE_TYPES: tuple[str, ...] = tuple(PAYLOAD_MODELS)
