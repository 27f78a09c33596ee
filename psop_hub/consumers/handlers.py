"""Every route from a message type to the handler that applies it, in one table."""

from __future__ import annotations

from psop_hub.consumers import vouchers
from psop_hub.consumers.outcome import Handler

HANDLERS: dict[str, Handler] = {
    "voucher.granted": vouchers.granted,
    "voucher.assigned": vouchers.assigned,
    "delivery.reported": vouchers.delivery_on_voucher,
}
