"""`koubei serve`: FastAPI app for Slack interactivity and health.

  POST /slack/actions    buttons and modal submissions (form field `payload`)
  POST /slack/commands   the /koubei slash command
  GET  /healthz          200 while the scheduler's heartbeat is fresh, else 503

Slack wants an answer within 3 seconds: actions only touch the database, and
the outbox is drained after the response is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse

from monitor.watchdog import health
from monitor.web.interactions import Interactions
from monitor.web.pages import Board
from monitor.web.site import mount_board
from monitor.web.verify import Rejected, verify

log = logging.getLogger(__name__)


def create_app(
    interactions: Interactions,
    signing_secret: str,
    after_action: Callable[[], object] | None = None,
    *,
    session_secret: str | None = None,
    secure_cookies: bool = False,
) -> FastAPI:
    app = FastAPI(title="Koubei", docs_url=None, redoc_url=None)
    engine, clock = interactions.engine, interactions.clock
    stale = timedelta(seconds=interactions.settings.policy.watchdog.stale_after_seconds)

    async def verified_form(request: Request) -> dict[str, str]:
        body = await request.body()
        verify(
            engine,
            signing_secret,
            clock,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            body,
        )
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}

    def refused(exc: Rejected) -> JSONResponse:
        log.warning("slack request refused: %s", exc.reason)
        return JSONResponse({"ok": False, "error": exc.reason}, status_code=exc.status)

    @app.post("/slack/actions")
    async def actions(request: Request, background: BackgroundTasks) -> Any:
        try:
            form = await verified_form(request)
        except Rejected as exc:
            return refused(exc)
        try:
            payload = json.loads(form.get("payload", "{}"))
        except json.JSONDecodeError:
            return JSONResponse({"ok": False, "error": "payload is not JSON"}, status_code=400)
        result = interactions.handle_payload(payload)
        if after_action is not None:
            background.add_task(after_action)
        return JSONResponse(result)

    @app.post("/slack/commands")
    async def commands(request: Request, background: BackgroundTasks) -> Any:
        try:
            form = await verified_form(request)
        except Rejected as exc:
            return refused(exc)
        result = interactions.command(form)
        if after_action is not None:
            background.add_task(after_action)
        return JSONResponse(result)

    @app.get("/healthz")
    def healthz() -> Any:
        state = health(engine, clock.now(), stale)
        body = {
            "ok": state.ok,
            "last_heartbeat": state.last_beat.isoformat() if state.last_beat else None,
            "age_seconds": state.age_seconds,
        }
        return JSONResponse(body, status_code=200 if state.ok else 503)

    if session_secret is not None:  # the case board (/login, /cases, ...)
        mount_board(app, Board(interactions, after_action), session_secret, secure_cookies)
    return app
