"""Every route from a message type to the handler that applies it, in one table."""

from __future__ import annotations

from psop_hub.consumers import approvals, deliveries, orders, payments, vouchers
from psop_hub.consumers.outcome import Handler

HANDLERS: dict[str, Handler] = {
    "voucher.granted": vouchers.granted,
    "voucher.amended": vouchers.amended,
    "voucher.revoked": vouchers.revoked,
    "voucher.assigned": vouchers.assigned,
    "order.placed": orders.placed,
    "order.ended": orders.ended,
    "delivery.reported": deliveries.reported,
    "delivery.corrected": deliveries.corrected,
    "delivery.cancelled": deliveries.cancelled,
    "payment.confirmed": payments.confirmed,
    "provider.approved": approvals.approved,
}
