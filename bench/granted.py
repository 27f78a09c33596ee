"""voucher.granted as the bare endpoint and the naive stack validate it (pydantic, written plainly),
and the 1 KiB JSON body the raw limits publish, store and post."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from tests.messages import granted, uid

KIB = 1024


class Client(BaseModel):
    hetu: str = Field(pattern=r"^\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]$")
    home_municipality: str = Field(pattern=r"^\d{3}$")


class Service(BaseModel):
    code: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)


class GrantedPayload(BaseModel):
    voucher_number: str = Field(min_length=1, max_length=50)
    organiser: str = Field(pattern=r"^\d{7}-\d$")
    decision_date: date
    client: Client
    service: Service
    unit: Literal["hour", "visit", "day", "month"]
    unit_value: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    quantity: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    valid_from: date
    valid_to: date
    notes: str | None = Field(default=None, max_length=4000)


class VoucherGranted(BaseModel):
    message_id: str = Field(min_length=1, max_length=100)
    type: Literal["voucher.granted"]
    sent_at: datetime
    payload: GrantedPayload


def kib_body() -> bytes:
    """A voucher.granted of exactly 1 KiB of JSON (its `notes` pad it), unique ids each call."""
    message = granted(uid("limits-v"))
    message["payload"]["notes"] = ""
    pad = KIB - len(json.dumps(message).encode())
    message["payload"]["notes"] = "x" * max(pad, 0)
    return json.dumps(message).encode()
