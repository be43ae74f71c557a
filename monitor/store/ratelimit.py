"""The per-host rate limit shared by every instance: a row per host in PostgreSQL.

Each request takes the host's next free slot in one atomic upsert (the row
lock serialises instances, like SELECT ... FOR UPDATE) and sleeps until it.
Slots are reckoned on the database's clock, so the instances' clocks need not
agree. SQLite serves one process, whose in-process limiter does the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from sqlalchemy import Engine, text

_TAKE_SLOT = text(
    """
    INSERT INTO host_slots AS s (host, next_at)
    VALUES (:host, clock_timestamp() + make_interval(secs => :gap))
    ON CONFLICT (host) DO UPDATE
      SET next_at = greatest(s.next_at, clock_timestamp()) + make_interval(secs => :gap)
    RETURNING extract(epoch FROM s.next_at - clock_timestamp()) - :gap
    """
)


class SharedHostRateLimiter:
    """At most `rate` requests per second to each host, across all instances."""

    def __init__(
        self,
        engine: Engine,
        default_rate: float,
        rates: Mapping[str, float],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the shared rate limit needs PostgreSQL")
        self._engine = engine
        self._default = default_rate
        self._rates = dict(rates)
        self._sleep = sleep

    def wait(self, host: str) -> None:
        gap = 1.0 / self._rates.get(host, self._default)
        with self._engine.begin() as conn:
            delay = float(conn.execute(_TAKE_SLOT, {"host": host, "gap": gap}).scalar_one())
        if delay > 0:
            self._sleep(delay)
