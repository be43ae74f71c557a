"""Keeping a delivery's claim alive while its send is in flight.

A claim holds its row for `outbox.lease_seconds`; once that runs out another drain
(another instance) may claim the row and send it too. No bound on a send's total time
can be promised from configuration: slack-sdk's HTTP timeout is per socket read, not per
call; it sleeps out each 429's Retry-After (whatever the service asks) before trying
again; a file upload is three calls; a lookup pages through the channel. So instead of
guessing a worst case, the sender renews its lease while the send runs: every third of
the lease, in a short transaction of its own, and only while the row still carries this
claim's token (a claim superseded meanwhile is not revived). A send then outlasts its
lease only when the instance cannot write to the database for a whole lease (or is
frozen that long); the renewal that finds the claim gone logs it, and the claim's
outcome is dropped when the send ends (`outbox._held`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import Clock
from monitor.domain import DeliveryStatus
from monitor.store.tables import DeliveryRow

log = logging.getLogger(__name__)
_T = DeliveryRow.__table__  # type: ignore[attr-defined]


def renew(engine: Engine, delivery_id: int, token: int, clock: Clock, lease_seconds: float) -> bool:
    """Extend the claim's lease from now; False when the row is no longer this claim's."""
    statement = (
        update(_T)
        .where(
            _T.c.id == delivery_id,
            _T.c.claim_token == token,
            _T.c.status == DeliveryStatus.PENDING.value,
            _T.c.claimed_until.is_not(None),
        )
        .values(claimed_until=clock.now() + timedelta(seconds=lease_seconds))
    )
    with engine.begin() as conn:
        return conn.execute(statement).rowcount == 1


@contextmanager
def kept(
    engine: Engine, delivery_id: int, token: int, clock: Clock, lease_seconds: float, what: str
) -> Iterator[None]:
    """Renew the claim `token` of delivery `delivery_id` until the block ends.

    The renewing thread has stopped when the block is left, so nothing it writes can
    land after the claim's outcome is recorded."""
    stop = threading.Event()
    every = lease_seconds / 3

    def beat() -> None:
        while not stop.wait(every):
            try:
                if not renew(engine, delivery_id, token, clock, lease_seconds):
                    log.warning(
                        "%s: the lease ran out and the delivery was claimed again while this "
                        "send was in flight; its outcome will not be kept",
                        what,
                    )
                    return
            except SQLAlchemyError as exc:
                # The next beat tries again: one missed beat still leaves a third of the lease.
                log.warning("%s: could not renew the lease (%s)", what, type(exc).__name__)

    thread = threading.Thread(target=beat, name=f"lease-{delivery_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
