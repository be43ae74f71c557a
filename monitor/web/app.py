"""`koubei serve`: FastAPI app for Slack interactivity and health.

  POST /slack/actions    buttons and modal submissions (form field `payload`)
  POST /slack/commands   the /koubei slash command
  POST /ingest/feedback  the app backend's signed ratings and feedback (monitor/web/ingest.py)
  GET  /healthz          200 while the scheduler's heartbeat is fresh, else 503
  GET  /metrics          Prometheus text: the database's state and this process's counters

Slack wants an answer within 3 seconds: actions only touch the database, and
the outbox is drained after the response is sent.

The body is read on the event loop, a chunk at a time and never past
`serve.max_body_bytes` (413), before its signature is checked. Everything that
touches the database runs in plain `def` handlers, which FastAPI runs in its
thread pool, so a slow database holds one request, not the whole server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from monitor.metrics import database_registry, exposition
from monitor.watchdog import health
from monitor.web.ingest import (
    SECRET_ENV,
    SIGNATURE_HEADER,
    Ingestor,
    parse_events,
    verify_signature,
)
from monitor.web.interactions import Interactions
from monitor.web.pages import Board
from monitor.web.payloads import BadPayload
from monitor.web.site import mount_board
from monitor.web.verify import Rejected, verify

log = logging.getLogger(__name__)


async def capped_body(request: Request) -> bytes:
    """The raw body, refused (413) as soon as it is known to be over the app's limit."""
    limit: int = request.app.state.max_body_bytes
    too_large = Rejected(413, f"request body over {limit} bytes (serve.max_body_bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


Body = Annotated[bytes, Depends(capped_body)]


def create_app(
    interactions: Interactions,
    signing_secret: str,
    after_action: Callable[[], object] | None = None,
    ingestor: Ingestor | None = None,
    *,
    session_secret: str | None = None,
    secure_cookies: bool = False,
) -> FastAPI:
    app = FastAPI(title="Koubei", docs_url=None, redoc_url=None)
    engine, clock = interactions.engine, interactions.clock
    stale = timedelta(seconds=interactions.settings.policy.watchdog.stale_after_seconds)
    app.state.max_body_bytes = interactions.settings.app.serve.max_body_bytes

    @app.exception_handler(Rejected)
    def refused(_request: Request, exc: Rejected) -> JSONResponse:
        log.warning("request to %s refused: %s", _request.url.path, exc.reason)
        return JSONResponse({"ok": False, "error": exc.reason}, status_code=exc.status)

    @app.exception_handler(InterfaceError)
    @app.exception_handler(OperationalError)
    def database_down(_request: Request, exc: Exception) -> JSONResponse:
        # Never the driver's message: it can hold the host, the user and bound values.
        log.error("slack request failed: the database did not answer (%s)", type(exc).__name__)
        error = "the database is unavailable; Slack may retry, or try again shortly"
        return JSONResponse({"ok": False, "error": error}, status_code=503)

    def verified_form(request: Request, body: bytes) -> dict[str, str]:
        verify(
            engine,
            signing_secret,
            clock,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            body,
        )
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            raise Rejected(400, "body is not a UTF-8 form with at most 100 fields") from None
        return {k: v[-1] for k, v in fields.items()}

    @app.post("/slack/actions")
    def actions(request: Request, body: Body, background: BackgroundTasks) -> Any:
        form = verified_form(request, body)
        try:
            payload = json.loads(form.get("payload", "{}"))
        except (json.JSONDecodeError, RecursionError):
            raise Rejected(400, "payload is not JSON") from None
        try:
            result = interactions.handle_payload(payload)
        except BadPayload as exc:
            raise Rejected(400, f"malformed payload: {exc.reason}") from None
        if after_action is not None:
            background.add_task(after_action)
        return JSONResponse(result)

    @app.post("/slack/commands")
    def commands(request: Request, body: Body, background: BackgroundTasks) -> Any:
        # A bad argument is answered inside: Slack shows a command's reply only with 200.
        result = interactions.command(verified_form(request, body))
        if after_action is not None:
            background.add_task(after_action)
        return JSONResponse(result)

    @app.post("/ingest/feedback")
    def ingest_feedback(request: Request, body: Body) -> Any:
        if ingestor is None:
            raise Rejected(
                503, f"in-app feedback is off: set {SECRET_ENV} and restart koubei serve"
            )
        verify_signature(ingestor, request.headers.get(SIGNATURE_HEADER), body)
        outcome = ingestor.ingest(parse_events(body))
        return JSONResponse(outcome.as_json(), status_code=202)

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            state = health(engine, clock.now(), stale)
        except SQLAlchemyError as exc:
            log.error("healthz: the database did not answer (%s)", type(exc).__name__)
            down = {"ok": False, "down": ["database"], "error": "the database does not answer"}
            return JSONResponse(down, status_code=503)
        body: dict[str, Any] = {
            "ok": state.ok,
            "last_heartbeat": state.last_beat.isoformat() if state.last_beat else None,
            "age_seconds": state.age_seconds,
        }
        if not state.ok:
            body["down"] = ["scheduler"]
        return JSONResponse(body, status_code=200 if state.ok else 503)

    metrics_registry = database_registry(engine, clock)

    @app.get("/metrics")
    def metrics() -> Response:
        body, ctype = exposition(metrics_registry)
        return Response(body, media_type=ctype)

    if session_secret is not None:  # the case board (/login, /cases, ...)
        mount_board(app, Board(interactions, after_action), session_secret, secure_cookies)
    return app
