"""Helpers for in-process integration tests: store messages as an adapter would."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from psop_hub.adapters.intake import submit
from psop_hub.hub.senders import Sender
from psop_hub.hub.tables import messages, vouchers
from psop_hub.mappings.canonical import parse_message
from tests.messages import ORGANISER, PROVIDER

SYSTEM = Sender("county-system", "system", (ORGANISER,), None)
PROVIDER_SENDER = Sender("provider-system", "provider", (), PROVIDER)


def stored(engine: Engine, raw: dict[str, Any], sender: Sender = SYSTEM) -> uuid.UUID:
    """Validate and store a message; returns its hub_id."""
    return submit(engine, sender, parse_message(raw), "rest").hub_id


def status_of(engine: Engine, hub_id: uuid.UUID) -> Any:
    """The message row (status, errors, attempts)."""
    with engine.connect() as conn:
        return conn.execute(select(messages).where(messages.c.hub_id == hub_id)).one()


def voucher_row(engine: Engine, voucher_number: str) -> Any:
    """The voucher row."""
    with engine.connect() as conn:
        return conn.execute(
            select(vouchers).where(
                vouchers.c.organiser == ORGANISER, vouchers.c.voucher_number == voucher_number
            )
        ).one()


# `%s` applied voucher.granted messages `m-1`, `m-2`, ... (vouchers `V-1`, ...) written straight
# into the store, without journeys: a store of some size for index and migration tests.
STORED_GRANTS = """
INSERT INTO messages (hub_id, sender, message_id, type, sent_at, payload, payload_sha256, organiser,
                      reference, channel, status)
SELECT gen_random_uuid(), 'old', 'm-' || g, 'voucher.granted', now(),
       jsonb_build_object('voucher_number', 'V-' || g), repeat('0', 64), '2077474-0', 'V-' || g,
       'rest', 'applied'
FROM generate_series(1, %s) g
"""
