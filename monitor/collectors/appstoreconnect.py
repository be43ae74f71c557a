"""Every App Store review of the company's own app, through Apple's App Store Connect API.

The public RSS feed stops at 500 reviews and sometimes comes back empty; the API lists them
all. It authenticates with a short-lived ES256 JWT signed by the team's API key (header
`kid`; claims `iss`, `iat`, `exp` at most 20 minutes on, `aud` "appstoreconnect-v1"),
renewed here a minute before it runs out and once more when Apple answers 401 to a token
it has just been given. Lists are newest first (`sort=-createdDate`), up to 200 a page,
paged by the `links.next` cursor; `include=response` brings the developer response.

A 401 that a fresh token does not cure, or a 403, means the key is wrong or revoked: that is
a block, never "no reviews". The private key's PEM text comes from the environment variable
the source names; it is never logged.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import jwt
from pydantic import Field

from monitor.collectors import Collector, CollectorOptions
from monitor.collectors.http import HttpClient
from monitor.domain import PlatformState, RawPost
from monitor.errors import FetchError, ParseError, SourceBlocked

API_HOST = "https://api.appstoreconnect.apple.com"
AUDIENCE = "appstoreconnect-v1"
MAX_LIMIT = 200
_RENEW_BEFORE_S = 60
_REVIEW_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

REPLY_STATES = {"PUBLISHED": "已回复", "PENDING_PUBLISH": "回复待发布"}


class AppStoreConnectOptions(CollectorOptions):
    app_id: str = Field(pattern=r"^\d+$", description="the app's Apple id (App Store Connect)")
    issuer_id: str = Field(pattern=r"^[0-9a-fA-F-]{8,64}$", description="the team's issuer id")
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$", description="the API key's id")
    private_key_env: str = Field(
        default="KOUBEI_ASC_PRIVATE_KEY",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding the .p8 key's PEM text",
    )
    limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)
    max_pages: int = Field(default=50, ge=1, le=1000)
    token_lifetime_s: int = Field(default=19 * 60, ge=120, le=20 * 60)


class AppStoreConnect(Collector, kind="appstoreconnect"):
    Options = AppStoreConnectOptions
    options: AppStoreConnectOptions
    default_base_url: ClassVar[str | None] = API_HOST

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: Callable[[], float] = time.time  # tests move time on without waiting
        self._token: str | None = None
        self._token_expires = 0.0

    # --- the token -----------------------------------------------------------------------

    def _private_key(self) -> str:
        name = self.options.private_key_env
        pem = os.environ.get(name, "").strip()
        if not pem:
            raise SourceBlocked(
                self.source.name,
                self.base_url,
                f"no App Store Connect private key: set {name} to the .p8 key's PEM text "
                "(Users and Access > Integrations > App Store Connect API)",
            )
        return pem

    def token(self, *, fresh: bool = False) -> str:
        now = self.clock()
        if fresh or self._token is None or now >= self._token_expires - _RENEW_BEFORE_S:
            o = self.options
            issued = int(now)
            expires = issued + o.token_lifetime_s
            try:
                self._token = jwt.encode(
                    {"iss": o.issuer_id, "iat": issued, "exp": expires, "aud": AUDIENCE},
                    self._private_key(),
                    algorithm="ES256",
                    headers={"kid": o.key_id, "typ": "JWT"},
                )
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                raise SourceBlocked(
                    self.source.name,
                    self.base_url,
                    f"the key in {o.private_key_env} is not an EC P-256 private key in PEM "
                    f"form ({type(exc).__name__}); download the .p8 file again",
                ) from None
            self._token_expires = float(expires)
        assert self._token is not None
        return self._token

    # --- requests ------------------------------------------------------------------------

    def _get(self, client: HttpClient, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        response = client.get(
            url,
            source=self.source.name,
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
        )
        if response.status_code == 401:
            # A token Apple's clock reads as expired or not yet valid: one fresh try.
            response = client.get(
                url,
                source=self.source.name,
                params=params,
                headers={"Authorization": f"Bearer {self.token(fresh=True)}"},
            )
        if response.status_code in (401, 403):
            raise SourceBlocked(
                self.source.name,
                url,
                f"App Store Connect refused the API key (HTTP {response.status_code} "
                f"{_error_code(_json(response))}): check issuer_id, key_id and the key in "
                f"{self.options.private_key_env}; a revoked key needs a new one",
            )
        if response.status_code != 200:
            raise FetchError(
                self.source.name,
                url,
                f"HTTP {response.status_code} {_error_code(_json(response))}",
            )
        try:
            data = response.json()
        except ValueError:
            raise ParseError(self.source.name, url, "body is not JSON") from None
        if not isinstance(data, dict):
            raise ParseError(self.source.name, url, "the JSON is not an object")
        return data

    def list_url(self) -> str:
        return f"{self.base_url}/v1/apps/{self.options.app_id}/customerReviews"

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        url: str | None = self.list_url()
        params: dict[str, str] | None = {
            "sort": "-createdDate",
            "limit": str(self.options.limit),
            "include": "response",
        }
        seen: set[str] = set()
        for _page in range(self.options.max_pages):
            if url is None:
                break
            data = self._get(client, url, params)
            reached_known = False
            for post in self._posts(data, url):
                seen.add(post.external_id)
                reached_known = reached_known or self.is_known(post.external_id)
                yield post
            if self.stop_at_known and reached_known:
                break
            url, params = self._next(data, url), None
        for review_id in self.revisit:
            if review_id in seen or not _REVIEW_ID.match(review_id):
                continue
            one = f"{self.base_url}/v1/customerReviews/{review_id}"
            data = self._get(client, one, {"include": "response"})
            item = data.get("data")
            if isinstance(item, dict):
                data = {**data, "data": [item]}
                yield from self._posts(data, one)

    def _next(self, data: dict[str, Any], url: str) -> str | None:
        links = data.get("links")
        nxt = links.get("next") if isinstance(links, dict) else None
        if not isinstance(nxt, str) or not nxt:
            return None
        # The cursor link must stay on the API's own host: the token goes with it.
        if urlsplit(nxt).netloc != urlsplit(self.base_url).netloc:
            raise ParseError(self.source.name, url, "links.next points at another host")
        return nxt

    # --- parsing -------------------------------------------------------------------------

    def _posts(self, data: dict[str, Any], url: str) -> Iterator[RawPost]:
        items = data.get("data")
        if not isinstance(items, list):
            raise ParseError(self.source.name, url, "no `data` list in the JSON")
        responses = _responses(data.get("included"))
        for item in items:
            ident = item.get("id") if isinstance(item, dict) else None
            post = self.read_item(item, partial(self.parse, item, responses), ident)
            if post is not None:
                yield post

    def parse(self, item: Any, responses: dict[str, dict[str, Any]]) -> RawPost | None:
        if not isinstance(item, dict) or item.get("type") != "customerReviews":
            return None
        review_id = item.get("id")
        attrs = item.get("attributes")
        if not isinstance(review_id, str) or not _REVIEW_ID.match(review_id):
            raise ValueError(f"a review without a usable id ({str(review_id)[:80]!r})")
        if not isinstance(attrs, dict):
            raise ValueError(f"review {review_id} has no attributes")
        created = _date(attrs.get("createdDate"))
        if created is None:
            raise ValueError(f"review {review_id}: bad createdDate {attrs.get('createdDate')!r}")
        rating = attrs.get("rating")
        response = responses.get(_response_id(item) or "")
        return RawPost(
            source=self.source.name,
            kind=self.kind,
            external_id=review_id,
            url=(
                f"https://appstoreconnect.apple.com/apps/{self.options.app_id}"
                "/distribution/activity/ios/ratingsResponses"
            ),
            author=_text(attrs.get("reviewerNickname")),
            title=_text(attrs.get("title")),
            body=_text(attrs.get("body")),
            rating=rating if isinstance(rating, int) and 1 <= rating <= 5 else None,
            app_version=None,  # the API does not say which version a review is of
            published_at=created,
            extra={
                "territory": _text(attrs.get("territory")) or None,
                **({"response": response} if response else {}),
            },
            platform=_platform(response),
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _error_code(body: Any) -> str:
    """Apple's error code and title, e.g. `NOT_AUTHORIZED`; never the request's token."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return ""
    return " ".join(str(first.get(k, ""))[:120] for k in ("code", "title") if first.get(k))


def _response_id(item: dict[str, Any]) -> str | None:
    rel = item.get("relationships")
    response = rel.get("response") if isinstance(rel, dict) else None
    data = response.get("data") if isinstance(response, dict) else None
    rid = data.get("id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) else None


def _responses(included: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in included if isinstance(included, list) else []:
        if not isinstance(item, dict) or item.get("type") != "customerReviewResponses":
            continue
        attrs = item.get("attributes")
        rid = item.get("id")
        if isinstance(rid, str) and isinstance(attrs, dict):
            out[rid] = {
                "id": rid,
                "body": _text(attrs.get("responseBody")),
                "state": _text(attrs.get("state")),
                "last_modified": _text(attrs.get("lastModifiedDate")) or None,
            }
    return out


def _platform(response: dict[str, Any] | None) -> PlatformState | None:
    """A developer response is the case's first response once Apple publishes it."""
    if response is None:
        return None
    state = response["state"]
    published = state == "PUBLISHED"
    return PlatformState(
        status=REPLY_STATES.get(state, state or "已回复"),
        final=False,  # a customer may edit the review after the reply: keep reading it
        resolved=False,
        replied_at=_date(response["last_modified"]) if published else None,
    )
