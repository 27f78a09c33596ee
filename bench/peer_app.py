"""The naive stack, as a team would write it with the hub's own libraries (bench/peer.py runs it).

A FastAPI endpoint validates a voucher.granted with pydantic and hands it to Dramatiq
(`actor.send` through a RabbitmqBroker with publisher confirms); an actor stores it with one
SQLAlchemy insert and commit per message. No store before the 202, no inbox, no journey: a message
whose publish is confirmed but whose actor fails is retried by Dramatiq and then lost to its
dead-letter queue. Settings from PEER_AMQP_URL and PEER_DATABASE_URL. Run as
`uvicorn peer_app:app` and `dramatiq peer_app` (both with `bench/` on the path).
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from fastapi import FastAPI
from sqlalchemy import JSON, Date, DateTime, Numeric, String, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from granted import VoucherGranted

broker = RabbitmqBroker(url=os.environ["PEER_AMQP_URL"], confirm_delivery=True)
dramatiq.set_broker(broker)
engine = create_engine(os.environ["PEER_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))


class Base(DeclarativeBase):
    pass


class Voucher(Base):
    __tablename__ = "peer_vouchers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    voucher_number: Mapped[str] = mapped_column(String(50))
    organiser: Mapped[str] = mapped_column(String(9))
    decision_date: Mapped[date] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(10))
    unit_value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dramatiq.actor(max_retries=3)
def store_voucher(message: dict[str, Any]) -> None:
    granted = VoucherGranted.model_validate(message)
    p = granted.payload
    with Session(engine) as session:
        session.add(
            Voucher(
                message_id=granted.message_id,
                voucher_number=p.voucher_number,
                organiser=p.organiser,
                decision_date=p.decision_date,
                unit=p.unit,
                unit_value=p.unit_value,
                quantity=p.quantity,
                valid_from=p.valid_from,
                valid_to=p.valid_to,
                payload=message["payload"],
            )
        )
        session.commit()


app = FastAPI()


@app.post("/messages", status_code=202)
def accept(message: VoucherGranted) -> dict[str, str]:
    store_voucher.send(message.model_dump(mode="json"))
    return {"message_id": message.message_id, "status": "accepted"}
