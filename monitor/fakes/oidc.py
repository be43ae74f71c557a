"""A fake OpenID Connect provider (authorization code flow), as Keycloak or Slack serve it.

What the board relies on, with the real thing's rules: discovery at
/.well-known/openid-configuration; /authorize checks the client, response_type
`code`, the scope `openid` and the registered redirect URI (exact match), and
sends the browser back with a one-time code and the caller's `state`; /token
takes the code once, within a minute, for the same client (client_secret_basic
or client_secret_post) and redirect URI, and answers an RS256 id_token (iss, aud,
sub, exp, iat, nonce, and the person's claims) signed by a key in /jwks;
/userinfo answers the claims for the access token. Errors are the RFC 6749
ones (invalid_client 401, invalid_grant 400, ...). The person who "signs in at
the provider" is `person`; None answers access_denied, as a user who cancels.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey

from monitor.fakes.server import FakeServer, Request, Response

CODE_LIFETIME_S = 60


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    claims: dict[str, Any]
    issued: float


@dataclass
class FakeOidc(FakeServer):
    client_id: str = "koubei-board"
    client_secret: str = "fake-oidc-client-secret"
    redirect_uris: list[str] = field(default_factory=list)
    person: dict[str, Any] | None = None  # claims of whoever signs in at the provider

    def __post_init__(self) -> None:
        super().__init__()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.token_requests = 0

    @property
    def issuer(self) -> str:
        return self.url

    def handle(self, request: Request) -> Response:
        routes = {
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
            ("GET", "/jwks"): self._jwks,
            ("GET", "/userinfo"): self._userinfo,
        }
        route = routes.get((request.method, request.path))
        return route(request) if route else Response(404, {"error": "not_found"})

    def _discovery(self, _request: Request) -> Response:
        base = self.url
        return Response(
            200,
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
                "userinfo_endpoint": f"{base}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            },
        )

    def _authorize(self, request: Request) -> Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return Response(400, "unknown client_id")  # never redirect for an unknown client
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return Response(400, "redirect_uri is not registered for this client")
        back: dict[str, str] = {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif "openid" not in q.get("scope", "").split():
            back["error"] = "invalid_scope"
        elif self.person is None:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = _Grant(
                    self.client_id, redirect_uri, q.get("nonce"), dict(self.person), time.time()
                )
            back["code"] = code
        return Response(302, b"", {"Location": f"{redirect_uri}?{urlencode(back)}"})

    def _client(self, request: Request, form: dict[str, Any]) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            user, password = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        ok = user == self.client_id and secrets.compare_digest(password, self.client_secret)
        return user if ok else None

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = request.form()
        if self._client(request, form) is None:
            return Response(401, {"error": "invalid_client"}, {"WWW-Authenticate": "Basic"})
        if form.get("grant_type") != "authorization_code":
            return Response(400, {"error": "unsupported_grant_type"})
        with self._lock:
            grant = self._codes.pop(str(form.get("code", "")), None)  # a code works once
        if (
            grant is None
            or time.time() - grant.issued > CODE_LIFETIME_S
            or grant.redirect_uri != form.get("redirect_uri")
        ):
            return Response(400, {"error": "invalid_grant"})
        now = int(time.time())
        claims = {
            **grant.claims,
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        access = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access] = grant.claims
        id_token = jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, self.key)
        return Response(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
                "scope": "openid email profile",
            },
            {"Cache-Control": "no-store"},
        )

    def _jwks(self, _request: Request) -> Response:
        return Response(200, {"keys": [self.key.as_dict(private=False)]})

    def _userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        claims = self._tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if claims is None:
            return Response(401, {"error": "invalid_token"})
        return Response(200, claims)
