"""Mount the case board on the app: session cookies, static files, the pages, refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from monitor.errors import ConfigError
from monitor.store.users import ROLE_NAMES
from monitor.web import (
    accounts_page,
    auth,
    board_page,
    case_page,
    followups_page,
    search,
    stories,
    trends,
)
from monitor.web.auth import BadCsrf, Forbidden, NeedLogin, login_redirect
from monitor.web.oidc import OidcSettings, oidc_router
from monitor.web.pages import HERE, Board, render

SESSION_HOURS = 12
# No inline script, no frames, no outside origin: scraped text on these pages is hostile.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def mount_board(app: FastAPI, board: Board, session_secret: str, secure_cookies: bool) -> None:
    if len(session_secret) < 32:
        raise ConfigError(
            "environment", ["KOUBEI_SESSION_SECRET: use at least 32 random characters"]
        )
    app.state.board = board
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie="koubei_session",
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (
        auth,
        board_page,
        case_page,
        accounts_page,
        search,
        stories,
        trends,
        followups_page,
    ):
        app.include_router(module.router)
    oidc = OidcSettings.from_secrets(board.settings.secrets)
    if oidc is not None:
        app.include_router(oidc_router(oidc))
        board.oidc_label = oidc.label

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith("/slack/"):
            for key, value in HEADERS.items():
                response.headers.setdefault(key, value)
        return response

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/cases", status_code=303)

    @app.exception_handler(NeedLogin)
    def need_login(request: Request, _exc: NeedLogin) -> Response:
        page = request.method == "GET" and not request.url.path.endswith(".csv")
        if page:
            return login_redirect(request)
        return PlainTextResponse("请先登录 (sign in first)", status_code=401)

    @app.exception_handler(Forbidden)
    def forbidden(request: Request, exc: Forbidden) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            message=f"需要「{ROLE_NAMES[exc.needed]}」或以上角色",
        )

    @app.exception_handler(BadCsrf)
    def bad_csrf(request: Request, _exc: BadCsrf) -> Response:
        return render(
            request, "error.html", status_code=403, message="表单已过期或来源不明，请刷新页面后重试"
        )
