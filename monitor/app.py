"""Wiring: settings -> engine, HTTP client, grader, sink. The one place that chooses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from slack_sdk import WebClient
from sqlalchemy import Engine

from monitor.alerting.outbox import drain_outbox, ops_target
from monitor.alerting.review_replies import AppStoreReplySink, RoutingSink
from monitor.alerting.sinks import ConsoleSink, Sink, SlackSink
from monitor.classify.factory import build_grader
from monitor.clock import Clock, SystemClock
from monitor.collectors.http import HttpClient
from monitor.config import Settings
from monitor.pipeline import Services
from monitor.store.engine import make_engine, migrate
from monitor.store.ratelimit import SharedHostRateLimiter
from monitor.web.interactions import Interactions


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
    engine = engine if engine is not None else open_store(settings)
    limiter = None
    if engine.dialect.name == "postgresql":
        http = settings.app.http
        limiter = SharedHostRateLimiter(engine, http.default_rate_per_s, http.rate_per_s)
    return Services(
        settings=settings,
        engine=engine,
        http=HttpClient(settings.app.http, transport=transport, limiter=limiter),
        grader=build_grader(settings),
        clock=clock or SystemClock(),
    )


def make_sink(settings: Settings) -> Sink:
    """Slack (or the console without a token); replies to App Store reviews go to Apple."""
    token = settings.secrets.slack_bot_token
    messages: Sink = (
        ConsoleSink(Path(settings.app.slack.alerts_jsonl))
        if token is None
        else SlackSink.from_config(token.get_secret_value(), settings.app.slack)
    )
    return with_review_replies(settings, messages)


def with_review_replies(settings: Settings, messages: Sink) -> Sink:
    connect = [s for s in settings.app.sources if s.kind == "appstoreconnect"]
    if not connect:
        return messages
    return RoutingSink(messages, AppStoreReplySink(connect, HttpClient(settings.app.http)))


def build_interactions(settings: Settings, clock: Clock | None = None) -> Interactions:
    token = settings.secrets.slack_bot_token
    client = (
        WebClient(token=token.get_secret_value(), base_url=settings.app.slack.base_url)
        if token is not None
        else None
    )
    return Interactions(open_store(settings), settings, clock or SystemClock(), client)


def drain_soon(interactions: Interactions, sink: Sink) -> Callable[[], object]:
    """After a click, deliver the thread reply and the message edit right away."""
    lock = threading.Lock()

    def drain() -> None:
        if not lock.acquire(blocking=False):
            return  # a drain is already running; it will pick these up
        try:
            drain_outbox(
                interactions.engine,
                sink,
                interactions.settings.app.outbox,
                interactions.clock,
                ops=ops_target(interactions.settings),
            )
        finally:
            lock.release()

    return drain
