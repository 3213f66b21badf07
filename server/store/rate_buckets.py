"""Per-key rate limits that every replica on one database charges together: ``rate_buckets``.

An in-memory token bucket per process made the real limit N times the configured one with
N replicas behind a load balancer. Here a key's budget is one row, charged by a single
conditional ``UPDATE`` that either spends or refuses, so replicas cannot both spend the last
request.

The row holds the key's *theoretical arrival time* (GCRA, the generic cell rate algorithm, a
token bucket written as one timestamp): each granted request pushes ``tat`` one emission
interval ``T = 60 / per_minute`` s into the future (from now, if ``tat`` lies in the past), and
a request is refused when that would put ``tat`` more than ``burst * T`` ahead of now. So
``burst`` requests pass at once, then one every ``T``: what the in-memory ``TokenBucket`` of
``server/security/access.py`` grants, with the same ``Retry-After``.

Used when the database is PostgreSQL (replicas share it); a SQLite file serves one process,
whose in-memory bucket costs no write per request. Synchronous: call from a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Column, Engine, Float, String, Table, case, literal, select, update
from sqlalchemy.exc import IntegrityError

from core.db import METADATA

RATE_BUCKETS = Table(
    "rate_buckets",
    METADATA,
    Column("key_id", String(64), primary_key=True),
    Column("tat", Float, nullable=False),
)


class SharedRateLimits:
    """GCRA budgets per key in ``rate_buckets``."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def take(self, key_id: str, per_minute: int, burst: int) -> float | None:
        """Spend one request of ``key_id``'s budget (``per_minute`` a minute, ``burst`` at
        once): None if granted, else the seconds until one is available."""
        interval = 60.0 / per_minute
        limit = max(1, burst) * interval
        for _ in range(2):  # a first request of another replica may insert between our steps
            now = self._clock()
            start = case((RATE_BUCKETS.c.tat > now, RATE_BUCKETS.c.tat), else_=literal(now))
            with self._engine.begin() as conn:
                granted = conn.execute(
                    update(RATE_BUCKETS)
                    .where(RATE_BUCKETS.c.key_id == key_id, start + interval - now <= limit)
                    .values(tat=start + interval)
                ).rowcount
                if granted:
                    return None
                tat = conn.execute(
                    select(RATE_BUCKETS.c.tat).where(RATE_BUCKETS.c.key_id == key_id)
                ).scalar_one_or_none()
                if tat is not None:
                    return max(float(tat), now) + interval - now - limit
                try:
                    conn.execute(RATE_BUCKETS.insert().values(key_id=key_id, tat=now + interval))
                except IntegrityError:
                    continue
                return None
        raise RuntimeError(f"could not charge the rate limit of key {key_id}")
