"""Wiring: settings -> engine, HTTP client, grader, sink. The one place that chooses."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from slack_sdk import WebClient
from sqlalchemy import Engine

from monitor.alerting.outbox import Sinks, drain_outbox, ops_target
from monitor.alerting.review_replies import AppStoreReplySink, RoutingSink
from monitor.alerting.sinks import SINK_KINDS, ConsoleSink
from monitor.alerting.slack.sink import SlackSink
from monitor.classify.factory import build_grader
from monitor.clock import Clock, SystemClock
from monitor.collectors.http import HttpClient
from monitor.config import Settings, SinkConfig
from monitor.domain import Sink
from monitor.errors import ConfigError
from monitor.pipeline import Services
from monitor.replies import REPLY_SINK
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
    """The default sink alone: Slack (or the console without a token), with replies to App
    Store reviews going to Apple. `make_sinks` builds every configured sink."""
    token = settings.secrets.slack_bot_token
    messages: Sink = (
        ConsoleSink(Path(settings.app.slack.alerts_jsonl), policy=settings.policy, name="slack")
        if token is None
        else SlackSink.from_config(token.get_secret_value(), settings.app.slack, settings.policy)
    )
    return with_review_replies(settings, messages)


def sink_class(kind: str) -> Any:
    """The sink class registered for a kind (monitor.alerting.sinks.SINK_KINDS), imported now."""
    module, _, name = SINK_KINDS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "sinks", [f"kind {kind!r} is not available in this version ({exc})"]
        ) from None


def _build(cfg: SinkConfig, settings: Settings, env: Mapping[str, str], default: bool) -> Sink:
    if cfg.kind == "console":
        path = Path(str(cfg.options.get("jsonl") or settings.app.slack.alerts_jsonl))
        return ConsoleSink(path, policy=settings.policy, name=cfg.name)
    if cfg.kind == "slack":
        variable = cfg.secret_env or "SLACK_BOT_TOKEN"
        token: str = (env.get(variable) or "").strip()
        if not token and variable == "SLACK_BOT_TOKEN" and settings.secrets.slack_bot_token:
            token = settings.secrets.slack_bot_token.get_secret_value()
        if not token:
            if default:  # no `sinks:` and no token: the console, as always
                console = Path(settings.app.slack.alerts_jsonl)
                return ConsoleSink(console, policy=settings.policy, name=cfg.name)
            raise ConfigError(
                str(settings.path),
                [f"sinks: sink {cfg.name!r} (slack) needs its bot token in ${variable}; set it"],
            )
        config = settings.app.slack
        if cfg.options.get("base_url"):
            config = config.model_copy(update={"base_url": str(cfg.options["base_url"])})
        return SlackSink.from_config(token, config, settings.policy, name=cfg.name)
    for needed in (cfg.url_env, cfg.secret_env):
        if needed and not env.get(needed, "").strip():
            raise ConfigError(
                str(settings.path),
                [f"sinks: sink {cfg.name!r} ({cfg.kind}) reads ${needed}, which is not set"],
            )
    sink: Sink = sink_class(cfg.kind).from_config(cfg, settings, env)
    return sink


def make_sinks(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Sink]:
    """Every sink of koubei.yaml `sinks:` by name (by default one, "slack"), and the App
    Store reply sink when a source answers reviews. A configured sink whose environment
    variable is missing is a ConfigError naming the sink and the variable."""
    env = os.environ if env is None else env
    default = not settings.app.sinks
    sinks = {cfg.name: _build(cfg, settings, env, default) for cfg in settings.app.sink_configs()}
    connect = [s for s in settings.app.sources if s.kind == "appstoreconnect"]
    if connect:
        sinks[REPLY_SINK] = AppStoreReplySink(connect, HttpClient(settings.app.http))
    return sinks


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


def drain_soon(interactions: Interactions, sink: Sinks) -> Callable[[], object]:
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
