"""Case commands outside Slack: `koubei followups`, `koubei followup`, `koubei reply`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from monitor.config import load_settings

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
    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.case_actions import ActionRefused, Actor
    from monitor.clock import SystemClock
    from monitor.followups import record_followup
    from monitor.store.tables import CaseRow

    settings = load_settings(config)
    with Session(open_store(settings)) as session, session.begin():
        case = session.get(CaseRow, case_id, with_for_update=True)
        if case is None:
            typer.echo(f"没有工单 #{case_id}", err=True)
            raise typer.Exit(2)
        try:
            said = record_followup(
                session,
                settings,
                case,
                Actor(by),
                SystemClock().now(),
                reached=reached,
                satisfaction=satisfaction,
                settled=settled,
                note=note,
            )
        except ActionRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    typer.echo(said)


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
    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.case_actions import ActionRefused, Actor
    from monitor.clock import SystemClock
    from monitor.replies import record_reply
    from monitor.store.tables import CaseRow

    settings = load_settings(config)
    with Session(open_store(settings)) as session, session.begin():
        case = session.get(CaseRow, case_id, with_for_update=True)
        if case is None:
            typer.echo(f"没有工单 #{case_id}", err=True)
            raise typer.Exit(2)
        try:
            said = record_reply(
                session, settings, case, Actor(by), SystemClock().now(), text=text, link=link
            )
        except ActionRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    typer.echo(said)


def register(app: typer.Typer) -> None:
    app.command()(followups)
    app.command()(followup)
    app.command()(reply)
