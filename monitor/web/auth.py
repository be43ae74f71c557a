"""Signing in to the case board: sessions, CSRF tokens, roles and the sign-in rate limit.

The session is a signed cookie (HttpOnly, SameSite=Lax) holding the account id
and the CSRF token; the account is read from the database on every request, so
a disabled account or a changed role counts at once. Failed sign-ins are rows
in the database, so the limit holds across processes and instances.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from monitor.store.tables import UserRow
from monitor.store.users import (
    at_least,
    check_password,
    failures,
    forget_failures,
    prune_failures,
    record_failure,
)
from monitor.web.pages import board_of, render

WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5  # failed sign-ins per account per window
PER_ADDRESS = 20  # failed sign-ins per client address per window

router = APIRouter()


class NeedLogin(Exception):
    """No valid session: pages send the browser to /login, anything else gets 401."""


class Forbidden(Exception):
    """Signed in, but the account's role does not allow this."""

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


class BadCsrf(Exception):
    """A form came without the session's CSRF token."""


def current_user(request: Request) -> UserRow | None:
    if hasattr(request.state, "user"):
        cached: UserRow | None = request.state.user
        return cached
    user = None
    uid = request.session.get("uid")
    if isinstance(uid, int):
        with Session(board_of(request).engine) as session:
            found = session.get(UserRow, uid)
            if found is not None and found.active:
                session.expunge(found)
                user = found
    if user is None:
        request.session.pop("uid", None)
    request.state.user = user
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """Every form carries the session's token: another site cannot post as the user."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, csrf):
        raise BadCsrf


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def pop_flash(request: Request) -> str | None:
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None


def signed_in(request: Request) -> UserRow:
    user = current_user(request)
    if user is None:
        raise NeedLogin
    return user


def role(needed: str) -> object:
    """A dependency: the signed-in account, if its role is at least `needed`."""

    def dependency(request: Request) -> UserRow:
        user = signed_in(request)
        if not at_least(user.role, needed):
            raise Forbidden(needed)
        return user

    return Depends(dependency)


def safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would hand a phishing site our login."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/cases"


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/cases") -> Response:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/cases",
) -> Response:
    board = board_of(request)
    now = board.clock.now()
    address = request.client.host if request.client else "unknown"
    account_key, address_key = f"user:{name.strip().lower()}", f"ip:{address}"
    with Session(board.engine) as session, session.begin():
        since = now - WINDOW
        if (
            failures(session, account_key, since) >= PER_ACCOUNT
            or failures(session, address_key, since) >= PER_ADDRESS
        ):
            minutes = int(WINDOW.total_seconds() // 60)
            response = render(
                request,
                "login.html",
                status_code=429,
                next=safe_next(next),
                error=f"登录失败次数过多，请 {minutes} 分钟后再试",
            )
            response.headers["Retry-After"] = str(int(WINDOW.total_seconds()))
            return response
        user = check_password(session, name.strip(), password)
        if user is None:
            record_failure(session, [account_key, address_key], now)
            prune_failures(session, now, WINDOW * 4)
            failed = True
        else:
            forget_failures(session, account_key)
            user.last_login_at = now
            uid = user.id
            failed = False
    if failed:
        return render(
            request, "login.html", status_code=401, next=safe_next(next), error="用户名或密码错误"
        )
    # A fresh session at sign-in: a token planted before it is worth nothing after.
    request.session.clear()
    request.session["uid"] = uid
    csrf_token(request)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
