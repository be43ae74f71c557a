"""The demo: fake App Store (with a transient empty page) -> pipeline -> fake Slack."""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import Session

from monitor.alerting.digest import enqueue_digest
from monitor.alerting.outbox import drain_outbox
from monitor.alerting.sinks import SlackSink
from monitor.app import build_services
from monitor.classify.pii import mask_pii
from monitor.config import Settings, load_settings, resolve_config_path
from monitor.demo import load_demo_reviews
from monitor.fakes.appstore import FakeAppStore
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services, run_source
from monitor.store.tables import PostRow, VerdictRow

CHANNELS = {
    "pr-crisis": "C0CRISIS01",
    "complaints": "C0COMPLA01",
    "complaints-digest": "C0DIGEST01",
}
GRADE_ORDER = ("P1", "P2", "P3", "P4")


def demo_settings(out: Path, appstore_url: str, slack: FakeSlack) -> Settings:
    # demo.yaml sits beside the main config (config/ here, /app/config in the image).
    base = load_settings(resolve_config_path(None).parent / "demo.yaml", env={})
    source = base.app.sources[0].model_copy(update={"base_url": appstore_url})
    app = base.app.model_copy(
        update={
            "sources": [source],
            "slack": base.app.slack.model_copy(update={"base_url": slack.url + "/api/"}),
            "store": base.app.store.model_copy(update={"sqlite_path": str(out / "koubei.db")}),
        }
    )
    secrets = base.secrets.model_copy(update={"slack_bot_token": SecretStr(slack.token)})
    return base.model_copy(update={"app": app, "secrets": secrets})


def _drain(svc: Services, sink: SlackSink) -> None:
    while drain_outbox(svc.engine, sink, svc.settings.app.outbox, svc.clock).pending:
        time.sleep(0.2)


def run_demo(out: Path) -> None:
    started = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    app_id, reviews = load_demo_reviews()
    appstore = FakeAppStore([r.review for r in reviews], app_id=app_id)
    appstore.quirks.empty_pages[2] = 1  # Apple's transient empty page: retried, not "no reviews"
    slack = FakeSlack(token="xoxb-demo-not-a-real-token", channels=CHANNELS, burst=20)
    with appstore, slack:
        settings = demo_settings(out, appstore.url, slack)
        svc = build_services(settings)
        sink = SlackSink.from_config(slack.token, settings.app.slack)
        source = settings.app.sources[0]

        print(f"Fake App Store at {appstore.url}, fake Slack at {slack.url}")
        result = run_source(svc, source)
        print(
            f"Collected {source.name}: {result.fetched} reviews over "
            f"{len(appstore.requests)} requests (one empty page retried), "
            f"{result.new} new, {result.cases_opened} cases opened"
        )
        _drain(svc, sink)
        digested = enqueue_digest(svc)
        _drain(svc, sink)
        again = run_source(svc, source)
        _drain(svc, sink)
        print(f"Second run: {again.new} new posts, {again.alerts} alerts (nothing twice)")
        print(f"P4 digest: {digested} mild complaints in one message")
        print(f"Slack answered HTTP 429 {slack.rate_limited} times; every one was retried.\n")

        grouped = _print_slack(slack)
        _write_outputs(out, svc, slack)
        accuracy = _grader_agreement(svc, reviews)
    print(f"\nRules grader agrees with the hand labels on {accuracy}.")
    print(f"Outputs in {out}/: slack_messages.json, posts.jsonl, koubei.db")
    missing = [g for g in GRADE_ORDER if not grouped.get(g)]
    print(
        f"Done in {time.monotonic() - started:.1f}s."
        + (f" MISSING grades: {missing}" if missing else "")
    )


def _print_slack(slack: FakeSlack) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    names = {cid: name for name, cid in CHANNELS.items()}
    for msg in slack.messages:
        severity = (msg.metadata or {}).get("event_payload", {}).get("severity", "?")
        grouped[severity].append(f"#{names.get(msg.channel, msg.channel)}  {msg.text}")
    for grade in GRADE_ORDER:
        lines = grouped.get(grade, [])
        print(f"== {grade}: {len(lines)} message(s) in Slack ==")
        for line in lines:
            print(f"  {line[:110]}")
    return grouped


def _write_outputs(out: Path, svc: Services, slack: FakeSlack) -> None:
    messages: list[dict[str, Any]] = [
        {
            "channel": m.channel,
            "ts": m.ts,
            "text": m.text,
            "attachments": m.attachments,
            "metadata": m.metadata,
        }
        for m in slack.messages
    ]
    (out / "slack_messages.json").write_text(
        json.dumps(messages, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    with Session(svc.engine) as session, (out / "posts.jsonl").open("w", encoding="utf-8") as fh:
        rows = session.execute(
            select(PostRow, VerdictRow)
            .join(VerdictRow, VerdictRow.post_id == PostRow.id)  # type: ignore[arg-type]
            .order_by(PostRow.published_at.desc())  # type: ignore[attr-defined]
        ).all()
        for post, verdict in rows:
            fh.write(
                json.dumps(
                    {
                        "external_id": post.external_id,
                        "rating": post.rating,
                        "title": mask_pii(post.title),
                        "body": mask_pii(post.body),
                        "severity": verdict.severity,
                        "sentiment": verdict.sentiment,
                        "categories": verdict.categories,
                        "signals": verdict.signals,
                        "reasons": verdict.reasons,
                        "case_id": post.case_id,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


def _grader_agreement(svc: Services, reviews: list[Any]) -> str:
    expected = {r.review.id: r.expect for r in reviews}
    with Session(svc.engine) as session:
        rows = session.execute(
            select(PostRow.external_id, VerdictRow.severity).join(  # type: ignore[call-overload]
                VerdictRow, VerdictRow.post_id == PostRow.id
            )
        ).all()
    agree = sum(1 for ext, sev in rows if expected.get(ext) == sev)
    return f"{agree}/{len(rows)} reviews"
