"""The per-sender rate limit's counter in PostgreSQL (hub/ratelimit.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from psop_hub.hub.ratelimit import RateLimited, count_request
from tests.messages import uid


def test_over_the_limit_is_refused_with_the_seconds_left_in_the_minute(engine: Engine) -> None:
    sender = uid("rl")
    with engine.connect() as conn:
        second = conn.execute(text("SELECT extract(second FROM now())")).scalar_one()
    if second > 55:  # do not straddle a minute's end
        import time

        time.sleep(61 - float(second))
    for _ in range(3):
        count_request(engine, sender, 3)
    with pytest.raises(RateLimited) as caught:
        count_request(engine, sender, 3)
    assert 1 <= caught.value.retry_after_s <= 60
    assert "3 requests per minute" in str(caught.value)
    count_request(engine, uid("rl"), 3)  # another sender has its own count


def test_no_limit_counts_nothing(engine: Engine) -> None:
    sender = uid("rl")
    for _ in range(5):
        count_request(engine, sender, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*) FROM rate_windows WHERE sender = :s"), {"s": sender}
        ).scalar_one()
    assert rows == 0


def test_a_senders_past_minutes_are_forgotten_when_its_next_begins(engine: Engine) -> None:
    sender = uid("rl")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rate_windows VALUES (:s, date_trunc('minute', now()) - interval '5 minutes', 99)"
            ),
            {"s": sender},
        )
    count_request(engine, sender, 10)
    with engine.connect() as conn:
        left = (
            conn.execute(text("SELECT requests FROM rate_windows WHERE sender = :s"), {"s": sender})
            .scalars()
            .all()
        )
    assert left == [1]
