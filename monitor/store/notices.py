"""Queueing notices: the alert row and one outbox row per sink it goes to, in the
caller's transaction.

The work floor (pipeline, cases, SLA, health...) builds a channel-neutral `Notice` and
calls `enqueue`; it never builds markup and never imports the outbox or a sink. Every
notice has a dedup key (one per case and kind, per step, per digest...), so a job that
runs twice, or two instances, never notify twice. Routing is the config's `sinks:` list:
each sink takes the grades and kinds it lists, and maps the notice's route key to its
own channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col

from monitor.config import Settings, SinkConfig
from monitor.domain import AlertKind, DeliveryStatus, Notice, NoticeMethod, Severity
from monitor.store.rows import insert_later, insert_now, table_of, write_later
from monitor.store.tables import AlertRow, DeliveryRow, SinkMessageRow

_MEMO = "koubei.notices.memo"
_OUTBOX = "koubei.notices.outbox"  # outbox rows queued under a memo, not written yet


@dataclass
class Memo:
    """What a transaction that queues many alerts (a page of posts) would ask the database
    again and again, answered from what it read before and what it queued since.

    Every alert of the transaction goes through `enqueue_to`, which tells the memo
    (`noted`), so an answer never goes stale inside the transaction. What another
    transaction commits meanwhile is not seen; that changes nothing a unique dedup key
    does not already guard (a clash fails the page, which is then stored post by post).
    """

    exists: dict[str, bool] = field(default_factory=dict)  # dedup key -> queued
    told: dict[int, bool] = field(default_factory=dict)  # case -> case_told
    routes: dict[int, str | None] = field(default_factory=dict)  # case -> case_route
    # The P3 burst check (bursts.group_for), per channel: the new-case P3 alerts since
    # `since` as counted, and the open group this transaction made or found, with its
    # member count.
    p3_since: dict[str, datetime] = field(default_factory=dict)
    p3_recent: dict[str, int] = field(default_factory=dict)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)

    def prefetch(self, session: Session, case_ids: Iterable[int]) -> None:
        """What case_told, case_route and the regrade alert's dedup check would answer for
        these cases, in a few queries."""
        ids = sorted(set(case_ids) - self.told.keys())
        grades = [s.value for s in Severity if s is not Severity.NONE]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            posted = set(
                session.execute(
                    select(col(SinkMessageRow.case_id)).where(
                        col(SinkMessageRow.case_id).in_(chunk)
                    )
                ).scalars()
            )
            keys = {f"case:{c}:new" for c in chunk}
            keys.update(f"case:{c}:regraded:{g}" for c in chunk for g in grades)
            queued = set(
                session.execute(
                    select(col(AlertRow.dedup_key)).where(col(AlertRow.dedup_key).in_(keys))
                ).scalars()
            )
            for key in keys:
                self.exists.setdefault(key, key in queued)
            firsts = session.execute(
                select(col(AlertRow.case_id), col(AlertRow.channel_key))
                .where(
                    col(AlertRow.case_id).in_(chunk),
                    col(AlertRow.kind).in_([AlertKind.NEW_CASE.value, AlertKind.REGRADED.value]),
                )
                .order_by(col(AlertRow.id))
            ).all()
            first: dict[int, str] = {}
            for case, route in firsts:
                first.setdefault(case, route)
            for case in chunk:
                self.told[case] = case in posted or self.exists[f"case:{case}:new"]
                self.routes.setdefault(case, first.get(case))

    def opened(self, case_id: int) -> None:
        """A case this transaction inserted: nothing was told or routed about it yet (its
        id is new, and no case is ever deleted), so it is not asked of the database."""
        self.told.setdefault(case_id, False)
        self.routes.setdefault(case_id, None)

    def noted(self, alert: AlertRow, delivered: bool) -> None:
        """An alert this transaction queued (`delivered`: with outbox rows); its id may be
        unset still (written later with the page's others), but not a group's."""
        self.exists[alert.dedup_key] = True
        case = alert.case_id
        if case is not None:
            if alert.dedup_key == f"case:{case}:new":
                self.told[case] = True
            first = alert.kind in (AlertKind.NEW_CASE.value, AlertKind.REGRADED.value)
            if first and case in self.routes and self.routes[case] is None:
                self.routes[case] = alert.channel_key
        if alert.kind == AlertKind.NEW_CASE.value and alert.severity == Severity.P3.value:
            since = self.p3_since.get(alert.channel_key)
            if since is not None and alert.created_at >= since:
                self.p3_recent[alert.channel_key] += 1
        if alert.group_id is not None:
            for key, (group, members) in self.groups.items():
                if group == alert.group_id:
                    self.groups[key] = (group, members + 1)
        # A group without a delivery is never found open (bursts.group_for joins them).
        if alert.kind == AlertKind.GROUP.value and delivered:
            assert alert.id is not None
            self.groups[alert.channel_key] = (alert.id, 0)


def remember(session: Session) -> Memo:
    """Answer this session's notice look-ups from a memo until it closes (see Memo).

    Only for a session whose alerts all go through `enqueue_to`.
    """
    memo = session.info.get(_MEMO)
    if not isinstance(memo, Memo):
        memo = session.info[_MEMO] = Memo()
        # A rollback (a savepoint's too) takes back what the memo was told: it goes with it.
        if not event.contains(session, "after_transaction_end", _forget):
            event.listen(session, "after_transaction_end", _forget)
        if not event.contains(session, "before_commit", write_outbox):
            event.listen(session, "before_commit", write_outbox)
    return memo


def _forget(session: Session, transaction: SessionTransaction) -> None:
    # A flush runs in a subtransaction of its own: only a real end (or a savepoint's) counts.
    if transaction.nested or transaction.parent is None:
        session.info.pop(_MEMO, None)
    if transaction.parent is None and not transaction.nested:
        # Written before a commit (write_outbox): what is left went with a rollback.
        session.info.pop(_OUTBOX, None)


def write_outbox(session: Session) -> None:
    """Write the outbox rows queued under the memo, in the order they were queued.

    With a memo, `enqueue_to` keeps its outbox rows and they are written together: by
    the commit (this runs before it), and by whatever reads the outbox in the
    transaction first (bursts.group_for). The alerts still waiting (`rows.insert_later`)
    are written first, in order, so the rows' ids and contents are those of one INSERT
    per alert.
    """
    write_later(session)  # the alerts waiting, for the ids their outbox rows name
    rows = session.info.pop(_OUTBOX, None)
    if rows:
        session.connection().execute(insert(table_of(DeliveryRow)), rows)


def memo_of(session: Session) -> Memo | None:
    memo = session.info.get(_MEMO)
    return memo if isinstance(memo, Memo) else None


def can_wait(session: Session) -> bool:
    """Whether an alert enqueued now may be written later (`enqueue_to`'s `later`)."""
    return memo_of(session) is not None and not session.in_nested_transaction()


def alert_exists(session: Session, dedup_key: str) -> bool:
    memo = memo_of(session)
    if memo is not None and dedup_key in memo.exists:
        return memo.exists[dedup_key]
    found = session.execute(
        select(col(AlertRow.id)).where(col(AlertRow.dedup_key) == dedup_key)
    ).first()
    if memo is not None:
        memo.exists[dedup_key] = found is not None
    return found is not None


def routes(settings: Settings, notice: Notice) -> list[tuple[SinkConfig, str]]:
    """(sink, its channel) for each sink this notice goes to."""
    out = []
    for sink in settings.app.sink_configs():
        if not sink.takes(notice.grade, notice.kind.value):
            continue
        channel = sink.channels.get(notice.route)
        if channel is None:
            if sink.kind == "slack":
                continue  # this Slack workspace has no channel for the route
            channel = sink.name  # a robot posts to its one group
        out.append((sink, channel))
    return out


def enqueue(
    session: Session,
    settings: Settings,
    notice: Notice,
    now: datetime,
    *,
    method: NoticeMethod = "post",
    not_before: datetime | None = None,
    group_id: int | None = None,
    severity: Severity | None = None,
    to: tuple[str, str] | None = None,
    later: bool = False,
    dedup_key: Callable[[], str] | None = None,
) -> AlertRow | None:
    """Write the notice's alert and (unless it rides in a group) its outbox rows.

    Returns None when a notice with this dedup key was queued already. `severity` is
    the alert's grade when the notice has none (ops notices: P2 by default); `to` sends
    it to one (sink, channel) outright instead of routing it (a review reply). `later`
    and `dedup_key`: see `enqueue_to`.
    """
    targets = [to] if to is not None else [(s.name, ch) for s, ch in routes(settings, notice)]
    return enqueue_to(
        session,
        notice,
        now,
        targets,
        method=method,
        not_before=not_before,
        group_id=group_id,
        severity=severity,
        later=later,
        dedup_key=dedup_key,
    )


def enqueue_to(
    session: Session,
    notice: Notice,
    now: datetime,
    targets: Sequence[tuple[str, str]],
    *,
    method: NoticeMethod = "post",
    not_before: datetime | None = None,
    group_id: int | None = None,
    severity: Severity | None = None,
    later: bool = False,
    dedup_key: Callable[[], str] | None = None,
) -> AlertRow | None:
    """`enqueue` to these (sink, channel) pairs, already routed.

    The alert is written by one INSERT that skips a dedup key already queued (the
    check and the write in one statement: a concurrent run queueing the same key
    waits, then finds it taken), its outbox rows by one more.

    `later`, under a memo: the alert goes out with the transaction's other later alerts,
    in one INSERT (`rows.insert_later`), and comes back with its id unset; the memo
    takes it as queued. It is still skipped there if its key was taken meanwhile
    (another run queued it first), and then so are its outbox rows. `dedup_key`, with
    `later`: the key, known only once what it names is written (a join's reply names
    its event); `notice.dedup_key` stands in for it until then.
    """
    memo = memo_of(session)
    if dedup_key is not None and not (later and can_wait(session)):
        raise ValueError("enqueue_to: a dedup key worked out later needs `later`, and a memo")
    if not can_wait(session):
        later = False
    if memo is not None and dedup_key is None and memo.exists.get(notice.dedup_key):
        return None
    grade = notice.grade or severity or Severity.P2
    payload = notice.to_json()
    if notice.grade is None:
        # Routed as ungraded (ops sinks), but the alert's grade travels for the sinks'
        # metadata: a dead-man notice is P1 there, as it always was.
        payload["extra"] = {**payload["extra"], "severity": grade.value}
    alert = AlertRow(
        dedup_key=notice.dedup_key,
        kind=notice.kind.value,
        case_id=notice.case_id,
        severity=grade.value,
        channel_key=notice.route,
        created_at=now,
        group_id=group_id,
        payload=payload,
    )
    if later:
        assert memo is not None
        return _enqueue_later(session, memo, alert, now, targets, method, not_before, dedup_key)
    written = insert_now(session, alert, skip_conflict_on="dedup_key")
    if memo is not None:
        memo.exists[notice.dedup_key] = True  # queued now, or before by someone else
    if not written:
        return None
    assert alert.id is not None
    if memo is not None:
        memo.noted(alert, delivered=group_id is None and bool(targets))
    if group_id is not None or not targets:
        return alert
    rows = _outbox_rows(alert, now, targets, method, not_before)
    if memo is not None:
        # A page's alerts each have their outbox rows: written together (write_outbox).
        if session.in_nested_transaction():
            # Rows kept from before the savepoint would be written after these, or inside
            # it and lost with its rollback: no page opens one.
            raise RuntimeError("enqueue_to: a savepoint inside a transaction with a notices memo")
        session.info.setdefault(_OUTBOX, []).extend(rows)
        return alert
    write_outbox(session)  # rows kept before a savepoint ended the memo go first
    session.connection().execute(insert(table_of(DeliveryRow)), rows)
    return alert


def _outbox_rows(
    alert: AlertRow,
    now: datetime,
    targets: Sequence[tuple[str, str]],
    method: NoticeMethod,
    not_before: datetime | None,
) -> list[dict[str, Any]]:
    due = max(now, not_before) if not_before else now
    return [
        {
            "alert_id": alert.id,
            "sink": sink,
            "channel": channel,
            "method": method,
            "case_id": alert.case_id,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "maybe_sent": False,
            "next_attempt_at": due,
            "created_at": now,
        }
        for sink, channel in targets
    ]


def _enqueue_later(
    session: Session,
    memo: Memo,
    alert: AlertRow,
    now: datetime,
    targets: Sequence[tuple[str, str]],
    method: NoticeMethod,
    not_before: datetime | None,
    dedup_key: Callable[[], str] | None,
) -> AlertRow:
    """enqueue_to's alert, written with the transaction's other later alerts."""
    delivered = alert.group_id is None and bool(targets)
    if dedup_key is None:
        memo.noted(alert, delivered=delivered)  # queued now, or before by someone else

    def ready() -> None:
        if dedup_key is not None:
            alert.dedup_key = dedup_key()
            alert.payload = {**alert.payload, "dedup_key": alert.dedup_key}
            memo.noted(alert, delivered=delivered)

    def done(written: bool) -> None:
        # Outbox rows in the order their alerts were queued: they follow the alert rows.
        if written and delivered:
            session.info.setdefault(_OUTBOX, []).extend(
                _outbox_rows(alert, now, targets, method, not_before)
            )

    insert_later(session, alert, skip_conflict_on="dedup_key", ready=ready, done=done)
    return alert


def case_told(session: Session, case_id: int) -> bool:
    """Whether the case was announced (its message is out or queued) on some sink."""
    memo = memo_of(session)
    if memo is not None and case_id in memo.told:
        return memo.told[case_id]
    posted = session.execute(
        select(col(SinkMessageRow.id)).where(col(SinkMessageRow.case_id) == case_id).limit(1)
    ).first()
    told = posted is not None or alert_exists(session, f"case:{case_id}:new")
    if memo is not None:
        memo.told[case_id] = told
    return told


def case_route(session: Session, case_id: int) -> str | None:
    """The route key of the case's first message, where it was first announced."""
    memo = memo_of(session)
    if memo is not None and case_id in memo.routes:
        return memo.routes[case_id]
    route = session.execute(
        select(col(AlertRow.channel_key))
        .where(
            col(AlertRow.case_id) == case_id,
            col(AlertRow.kind).in_([AlertKind.NEW_CASE.value, AlertKind.REGRADED.value]),
        )
        .order_by(col(AlertRow.id))
        .limit(1)
    ).scalar_one_or_none()
    if memo is not None:
        memo.routes[case_id] = route
    return route


@dataclass(frozen=True)
class OpsTarget:
    """Where a delivery refused for good is told: the ops route on the sinks taking it."""

    route: str
    targets: tuple[tuple[str, str], ...]


def ops_target(settings: Settings) -> OpsTarget:
    key = settings.policy.watchdog.ops_channel
    probe = Notice(kind=AlertKind.DELIVERY_FAILED, dedup_key="", route=key, headline="")
    return OpsTarget(key, tuple((s.name, ch) for s, ch in routes(settings, probe)))


def case_message(session: Session, case_id: int, sink: str = "slack") -> SinkMessageRow | None:
    """The case's message on a sink (its thread, the message edits change), if posted."""
    return (
        session.execute(
            select(SinkMessageRow).where(
                col(SinkMessageRow.case_id) == case_id, col(SinkMessageRow.sink) == sink
            )
        )
        .scalars()
        .first()
    )
