"""OpenID Connect sign-in to the board (authorization code flow, through Authlib).

Any provider with discovery works: Keycloak, Slack, Feishu, 企业微信 through a
bridge. The provider says who the person is; the account (and its role) is
still one an admin created: see monitor.store.users.oidc_account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from monitor.config import Secrets
from monitor.errors import ConfigError
from monitor.store.users import oidc_account
from monitor.web.auth import csrf_token, safe_next
from monitor.web.pages import board_of, render

# Slack's OpenID id_token carries the member id under this claim.
SLACK_CLAIM = "https://slack.com/user_id"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    label: str = "企业账号"

    @classmethod
    def from_secrets(cls, secrets: Secrets) -> OidcSettings | None:
        """Set all three (issuer, client id, secret) or none: half a set is an error."""
        parts = (secrets.oidc_issuer, secrets.oidc_client_id, secrets.oidc_client_secret)
        if not any(parts):
            return None
        if not all(parts):
            raise ConfigError(
                "environment",
                [
                    "KOUBEI_OIDC_ISSUER, KOUBEI_OIDC_CLIENT_ID, KOUBEI_OIDC_CLIENT_SECRET: "
                    "OpenID sign-in needs all three (or none, for passwords only)"
                ],
            )
        assert secrets.oidc_issuer and secrets.oidc_client_id and secrets.oidc_client_secret
        return cls(
            secrets.oidc_issuer.rstrip("/"),
            secrets.oidc_client_id,
            secrets.oidc_client_secret.get_secret_value(),
        )


def oidc_router(settings: OidcSettings) -> APIRouter:
    oauth = OAuth()
    oauth.register(
        name="provider",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile"},
    )
    client: Any = oauth.create_client("provider")
    router = APIRouter()

    def refused(request: Request, message: str, status: int) -> Response:
        return render(request, "login.html", status_code=status, next="/cases", error=message)

    @router.get("/login/oidc")
    async def start(request: Request, next: str = "/cases") -> Response:
        request.session["oidc_next"] = safe_next(next)
        redirect_uri = str(request.url_for("oidc_callback"))
        response: Response = await client.authorize_redirect(request, redirect_uri)
        return response

    @router.get("/login/oidc/callback", name="oidc_callback")
    async def callback(request: Request) -> Response:
        if "error" in request.query_params:
            return refused(request, "企业账号登录已取消或被拒绝", 401)
        try:
            token = await client.authorize_access_token(request)
        except OAuthError as exc:
            return refused(request, f"企业账号登录失败：{exc.error}", 401)
        claims: dict[str, Any] = dict(token.get("userinfo") or {})
        names = [str(claims[k]) for k in ("preferred_username",) if claims.get(k)]
        if claims.get("email") and claims.get("email_verified"):
            names.append(str(claims["email"]))
        slack_id = claims.get(SLACK_CLAIM)
        engine = board_of(request).engine

        def account() -> int | None:
            with Session(engine) as session, session.begin():
                user = oidc_account(
                    session, str(claims["sub"]), names, str(slack_id) if slack_id else None
                )
                return user.id if user is not None else None

        uid = await run_in_threadpool(account)
        if uid is None:
            return refused(request, "没有与此企业账号对应的看板账户，请联系管理员开通", 403)
        target = safe_next(request.session.get("oidc_next"))
        request.session.clear()  # a fresh session at sign-in, as with a password
        request.session["uid"] = uid
        csrf_token(request)
        return RedirectResponse(target, status_code=303)

    return router
