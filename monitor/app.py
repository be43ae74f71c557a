"""Wiring: settings -> engine, HTTP client, grader, sink. The one place that chooses."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine

from monitor.alerting.sinks import ConsoleSink, SlackSink
from monitor.classify.rules import RulesGrader
from monitor.clock import Clock, SystemClock
from monitor.collectors.http import HttpClient
from monitor.config import Settings
from monitor.pipeline import Services
from monitor.store.engine import make_engine, migrate


def open_store(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url())
    migrate(engine)
    return engine


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Services:
    return Services(
        settings=settings,
        engine=engine if engine is not None else open_store(settings),
        http=HttpClient(settings.app.http, transport=transport),
        grader=RulesGrader(settings.lexicon, settings.policy.raise_one_step),
        clock=clock or SystemClock(),
    )


def make_sink(settings: Settings) -> SlackSink | ConsoleSink:
    token = settings.secrets.slack_bot_token
    if token is None:
        return ConsoleSink(Path(settings.app.slack.alerts_jsonl))
    return SlackSink.from_config(token.get_secret_value(), settings.app.slack)
