"""Case commands outside Slack: `koubei followups`, `koubei followup`, `koubei reply`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from monitor.config import Settings, load_settings

if TYPE_CHECKING:  # the commands import the work floor only when they run
    from sqlmodel import Session

    from monitor.case_actions import Actor
    from monitor.store.tables import CaseRow

    # What a case action takes, as for the Slack buttons and the board.
    CaseAction = Callable[[Session, Settings, CaseRow, Actor, datetime], str]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="koubei.yaml to use (default: $KOUBEI_CONFIG or config/koubei.yaml)"
    ),
]


def followups(
    config: ConfigOpt = None,
    upcoming: Annotated[bool, typer.Option(help="also list follow-ups not due yet")] = False,
) -> None:
    """Resolved cases whose customer is due a follow-up call (回访), overdue first."""
    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.classify.pii import mask_pii
    from monitor.clock import SystemClock
    from monitor.followups import followups_due

    settings = load_settings(config)
    tz = ZoneInfo(settings.app.timezone)
    with Session(open_store(settings)) as session:
        due = followups_due(session, settings, SystemClock().now(), upcoming=upcoming)
    if not due:
        typer.echo("没有待回访的工单")
        return
    due.sort(key=lambda f: (not f.overdue, f.due_at))
    typer.echo(f"{'工单':>6}  级别  {'应回访':16}  状态      未接通  负责人      标题")
    for f in due:
        state = "已逾期" if f.overdue else "待回访"
        typer.echo(
            f"#{f.case_id:>5}  {f.grade:4}  {f.due_at.astimezone(tz):%Y-%m-%d %H:%M}  "
            f"{state:6}  {f.attempts:>6}  {(f.owner or '—'):10}  {mask_pii(f.title)[:40]}"
        )


def followup(
    case_id: Annotated[int, typer.Argument(help="the case (工单) number")],
    config: ConfigOpt = None,
    reached: Annotated[
        bool, typer.Option("--reached/--not-reached", help="whether the customer was reached")
    ] = True,
    satisfaction: Annotated[
        int | None, typer.Option(min=1, max=5, help="the customer's satisfaction, 1-5")
    ] = None,
    settled: Annotated[
        bool | None,
        typer.Option(
            "--settled/--not-settled",
            help="whether the customer agrees the matter is settled (--not-settled reopens it)",
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="what the customer said")] = "",
    by: Annotated[str, typer.Option(help="who called (Slack user id or name)")] = "koubei-cli",
) -> None:
    """Record a follow-up call on a resolved case."""
    from monitor.followups import record_followup

    def call(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return record_followup(
            session,
            settings,
            case,
            who,
            now,
            reached=reached,
            satisfaction=satisfaction,
            settled=settled,
            note=note,
        )

    _act(config, case_id, by, call)


def reply(
    case_id: Annotated[int, typer.Argument(help="the case (工单) number")],
    text: Annotated[str, typer.Option("--text", help="the public reply")],
    config: ConfigOpt = None,
    link: Annotated[
        str | None,
        typer.Option(help="where the reply was posted by hand (platforms without an API)"),
    ] = None,
    by: Annotated[str, typer.Option(help="who replies (Slack user id or name)")] = "koubei-cli",
) -> None:
    """Reply publicly: App Store reviews through Apple's API (via the outbox), others recorded."""
    from monitor.replies import record_reply

    def send(session: Session, settings: Settings, case: CaseRow, who: Actor, now: datetime) -> str:
        return record_reply(session, settings, case, who, now, text=text, link=link)

    _act(config, case_id, by, send)


def _act(config: Path | None, case_id: int, by: str, action: CaseAction) -> None:
    """Run a case action on the locked row in one transaction, as the Slack buttons do."""
    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.case_actions import ActionRefused, Actor
    from monitor.clock import SystemClock
    from monitor.store.tables import CaseRow

    settings = load_settings(config)
    with Session(open_store(settings)) as session, session.begin():
        case = session.get(CaseRow, case_id, with_for_update=True)
        if case is None:
            typer.echo(f"没有工单 #{case_id}", err=True)
            raise typer.Exit(2)
        try:
            said = action(session, settings, case, Actor(by), SystemClock().now())
        except ActionRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    typer.echo(said)


def register(app: typer.Typer) -> None:
    app.command()(followups)
    app.command()(followup)
    app.command()(reply)
