"""Every route from a message type to the handler that applies it, in one table (and the
set-based handlers of whole batches, in a second)."""

from __future__ import annotations

from psop_hub.consumers import approvals, deliveries, orders, payments, vouchers
from psop_hub.consumers.outcome import BatchHandler, Handler

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

# The types whose batches (an AMQP message of nothing else) are applied set-based, all together:
# the batch handler is the one-message handler's set-based twin (the same rules, the same
# outcomes: tests/integration/test_batch_handlers.py) and raises where that would not apply a
# message, so that the batch is applied one by one through HANDLERS.
BATCH_HANDLERS: dict[str, BatchHandler] = {
    "voucher.granted": vouchers.granted_many,
    "delivery.reported": deliveries.reported_many,
}
