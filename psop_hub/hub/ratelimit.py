"""The per-sender rate limit (HUB_RATE_LIMIT_PER_MINUTE), shared by every API replica.

A fixed window per sender and calendar minute, in PostgreSQL: one upsert counts the request and
returns the count, so replicas never disagree and no process keeps its own tally. The window's
clock is the database's, the same for every replica. A sender's first request of a minute also
deletes its past minutes, so the table holds at most a row or two per active sender.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from psop_hub.hub.database import unavailable_on_outage
from psop_hub.hub.errors import HubError

__all__ = ["RateLimited", "count_in", "count_request"]

_COUNT = text(
    """
    INSERT INTO rate_windows (sender, window_start, requests)
    VALUES (:sender, date_trunc('minute', now()), :n)
    ON CONFLICT ON CONSTRAINT pk_rate_windows
    DO UPDATE SET requests = rate_windows.requests + :n
    RETURNING requests,
              extract(epoch FROM rate_windows.window_start + interval '1 minute' - now()) AS left_s
    """
)
_FORGET = text(
    "DELETE FROM rate_windows WHERE sender = :sender AND window_start < date_trunc('minute', now())"
)


class RateLimited(HubError):
    """The sender is over its requests per minute; it may send again after `retry_after_s`."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(f"over the limit of {limit} requests per minute; send again in {retry_after_s} s")
        self.limit = limit
        self.retry_after_s = retry_after_s


def count_request(engine: Engine, sender: str, limit: int) -> None:
    """Count one request of `sender`; raise `RateLimited` if it is over `limit` this minute
    (0 = no limit: nothing is counted)."""
    if limit <= 0:
        return
    with unavailable_on_outage(), engine.begin() as conn:
        [problem] = count_in(conn, sender, 1, limit)
    if problem is not None:
        raise problem


def count_in(conn: Connection, sender: str, n: int, limit: int) -> list[RateLimited | None]:
    """Count `n` requests of `sender` in the caller's transaction (the intake's group commit
    counts a group's at once); for each, in turn, None or the `RateLimited` it is over the limit
    with. 0 = no limit: nothing is counted."""
    if limit <= 0:
        return [None] * n
    row = conn.execute(_COUNT, {"sender": sender, "n": n}).one()
    if row.requests == n:  # the first of this minute
        conn.execute(_FORGET, {"sender": sender})
    first = row.requests - n + 1
    retry_after = max(1, math.ceil(float(row.left_s)))
    return [RateLimited(limit, retry_after) if first + k > limit else None for k in range(n)]
