"""A fake of the App Store Connect API's customer-review endpoints, checking tokens as Apple does.

Every request needs `Authorization: Bearer <JWT>`: ES256 signed by the team's key, header
`kid` naming that key, claims `iss` (issuer id), `iat`, `exp` at most 20 minutes after
`iat` and not passed, `aud` "appstoreconnect-v1". Anything else answers 401 NOT_AUTHORIZED in
Apple's JSON:API error format. Lists are sorted by `-createdDate` (or `createdDate`), `limit`
1-200, paged by an opaque `cursor` given in `links.next`; `include=response` adds the
developer responses under `included`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from monitor.fakes.server import DropConnection, FakeServer, Request, Response

AUDIENCE = "appstoreconnect-v1"
MAX_TOKEN_LIFETIME_S = 20 * 60
MAX_LIMIT = 200
MAX_REPLY_CHARS = 5970


@dataclass
class ReviewResponse:
    id: str
    body: str
    last_modified: str
    state: str = "PUBLISHED"  # or PENDING_PUBLISH


@dataclass
class ConnectReview:
    id: str
    rating: int
    title: str
    body: str
    nickname: str
    created: str  # ISO 8601 with offset, as Apple sends it
    territory: str = "CHN"
    response: ReviewResponse | None = None


def _error(status: int, code: str, title: str, detail: str) -> Response:
    return Response(
        status,
        {
            "errors": [
                {
                    "id": f"fake-{code}",
                    "status": str(status),
                    "code": code,
                    "title": title,
                    "detail": detail,
                }
            ]
        },
    )


def _unauthorized(detail: str) -> Response:
    return _error(
        401,
        "NOT_AUTHORIZED",
        "Authentication credentials are missing or invalid.",
        f"Provide a properly configured and signed bearer token, and make sure that it has "
        f"not expired. ({detail})",
    )


@dataclass
class Tokens:
    """What the fake saw of the tokens it was given, for tests to assert on."""

    seen: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class FakeAppStoreConnect(FakeServer):
    def __init__(
        self,
        *,
        public_key_pem: str,
        key_id: str,
        issuer_id: str,
        app_id: str,
        reviews: list[ConnectReview] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.public_key_pem = public_key_pem
        self.key_id = key_id
        self.issuer_id = issuer_id
        self.app_id = app_id
        self.reviews = list(reviews or [])
        self.clock = clock
        self.tokens = Tokens()
        self.requests: list[str] = []
        self.rate_limited = 0  # answer this many requests with 429 first
        self.drop_reply_answers = 0  # store this many replies, then drop the connection
        self.reply_posts = 0  # POSTs of customerReviewResponses that changed something
        self._lock = threading.Lock()

    # --- auth --------------------------------------------------------------------------

    def _check_token(self, request: Request) -> str | None:
        """None when the token is good, else why it is refused."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return "no bearer token"
        token = auth[len("Bearer ") :]
        self.tokens.seen.append(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return "malformed token"
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
            return "wrong algorithm or key id"
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=self.issuer_id,
                options={
                    "require": ["iss", "iat", "exp", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            return f"bad signature or claims ({type(exc).__name__})"
        now = self.clock()
        if claims["exp"] <= now:
            return "token expired"
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME_S:
            return "token lifetime over 20 minutes"
        return None

    # --- resources ---------------------------------------------------------------------

    def _resource(self, review: ConnectReview, include: bool) -> dict[str, Any]:
        base = self.url
        related: dict[str, Any] = {
            "links": {
                "self": f"{base}/v1/customerReviews/{review.id}/relationships/response",
                "related": f"{base}/v1/customerReviews/{review.id}/response",
            }
        }
        if include:
            related["data"] = (
                {"type": "customerReviewResponses", "id": review.response.id}
                if review.response
                else None
            )
        return {
            "type": "customerReviews",
            "id": review.id,
            "attributes": {
                "rating": review.rating,
                "title": review.title,
                "body": review.body,
                "reviewerNickname": review.nickname,
                "createdDate": review.created,
                "territory": review.territory,
            },
            "relationships": {"response": related},
            "links": {"self": f"{base}/v1/customerReviews/{review.id}"},
        }

    @staticmethod
    def _included(reviews: list[ConnectReview]) -> list[dict[str, Any]]:
        return [
            {
                "type": "customerReviewResponses",
                "id": r.response.id,
                "attributes": {
                    "responseBody": r.response.body,
                    "lastModifiedDate": r.response.last_modified,
                    "state": r.response.state,
                },
                "relationships": {"review": {"data": {"type": "customerReviews", "id": r.id}}},
            }
            for r in reviews
            if r.response is not None
        ]

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(
                request.path
                + ("?" if request.query else "")
                + "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
            )
            refused = self._check_token(request)
            if refused is not None:
                self.tokens.refused.append(refused)
                return _unauthorized(refused)
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return Response(
                    429,
                    {
                        "errors": [
                            {
                                "status": "429",
                                "code": "RATE_LIMIT_EXCEEDED",
                                "title": "The request rate limit has been reached.",
                                "detail": "We've received too many requests for this API.",
                            }
                        ]
                    },
                    {"Retry-After": "1"},
                )
            if request.method == "POST" and request.path == "/v1/customerReviewResponses":
                return self._reply(request)
            if request.method == "GET" and request.path.endswith("/response"):
                return self._response_of(request.path.split("/")[3])
            list_path = f"/v1/apps/{self.app_id}/customerReviews"
            if request.method == "GET" and request.path == list_path:
                return self._list(request)
            if request.method == "GET" and request.path.startswith("/v1/customerReviews/"):
                return self._one(request, request.path.rsplit("/", 1)[-1])
            if request.path.startswith("/v1/apps/"):
                return _error(
                    404,
                    "NOT_FOUND",
                    "The specified resource does not exist",
                    f"There is no resource of type 'apps' with id '{request.path.split('/')[3]}'",
                )
            return _error(
                404,
                "NOT_FOUND",
                "The specified resource does not exist",
                "The path provided does not match a defined resource type.",
            )

    def _list(self, request: Request) -> Response:
        q = request.query
        sort = q.get("sort", "-createdDate")
        if sort not in ("createdDate", "-createdDate", "rating", "-rating"):
            return _error(
                400,
                "PARAMETER_ERROR.INVALID",
                "A parameter has an invalid value",
                f"'{sort}' is not a valid field name",
            )
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIMIT:
            return _error(
                400,
                "PARAMETER_ERROR.INVALID",
                "A parameter has an invalid value",
                f"The parameter 'limit' can only be between 1 and {MAX_LIMIT}",
            )
        ordered = sorted(self.reviews, key=lambda r: r.created, reverse=sort.startswith("-"))
        try:
            offset = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if "cursor" in q else 0
        except ValueError:
            return _error(
                400,
                "PARAMETER_ERROR.INVALID",
                "A parameter has an invalid value",
                "The cursor is not valid",
            )
        page = ordered[offset : offset + limit]
        include = q.get("include") == "response"
        body: dict[str, Any] = {
            "data": [self._resource(r, include) for r in page],
            "links": {"self": f"{self.url}{request.path}"},
            "meta": {"paging": {"total": len(ordered), "limit": limit}},
        }
        if include:
            body["included"] = self._included(page)
        if offset + limit < len(ordered):
            cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            extra = "&include=response" if include else ""
            body["links"]["next"] = (
                f"{self.url}{request.path}?cursor={cursor}&limit={limit}&sort={sort}{extra}"
            )
        return Response(200, body)

    def publish(self) -> None:
        """Apple publishes the pending responses (it takes a while in reality)."""
        for review in self.reviews:
            if review.response is not None and review.response.state == "PENDING_PUBLISH":
                review.response.state = "PUBLISHED"

    def _response_body(self, review: ConnectReview) -> dict[str, Any]:
        assert review.response is not None
        return {
            "data": self._included([review])[0],
            "links": {"self": f"{self.url}/v1/customerReviewResponses/{review.response.id}"},
        }

    def _response_of(self, review_id: str) -> Response:
        review = next((r for r in self.reviews if r.id == review_id), None)
        if review is None or review.response is None:
            return _error(
                404,
                "NOT_FOUND",
                "The specified resource does not exist",
                f"There is no response for customerReviews '{review_id}'",
            )
        return Response(200, self._response_body(review))

    def _reply(self, request: Request) -> Response:
        try:
            data = json.loads(request.body)["data"]
            text = data["attributes"]["responseBody"]
            review_id = data["relationships"]["review"]["data"]["id"]
            assert data["type"] == "customerReviewResponses" and isinstance(text, str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(
                422,
                "PARAMETER_ERROR.INVALID",
                "The request entity is invalid",
                "expected data.type customerReviewResponses with responseBody "
                "and a review relationship",
            )
        review = next((r for r in self.reviews if r.id == review_id), None)
        if review is None:
            return _error(
                409,
                "ENTITY_ERROR.RELATIONSHIP.INVALID",
                "The provided entity includes a relationship with an invalid value",
                f"customerReviews '{review_id}' does not exist",
            )
        if not text.strip() or len(text) > MAX_REPLY_CHARS:
            return _error(
                409,
                "ENTITY_ERROR.ATTRIBUTE.INVALID",
                "The provided entity includes an attribute with an invalid value",
                f"responseBody must be 1 to {MAX_REPLY_CHARS} characters",
            )
        stamp = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        # One response per review: a second POST overwrites the first.
        rid = review.response.id if review.response else f"resp-{review.id[-8:]}"
        review.response = ReviewResponse(rid, text, stamp, "PENDING_PUBLISH")
        self.reply_posts += 1
        if self.drop_reply_answers > 0:
            self.drop_reply_answers -= 1
            raise DropConnection
        return Response(201, self._response_body(review))

    def _one(self, request: Request, review_id: str) -> Response:
        review = next((r for r in self.reviews if r.id == review_id), None)
        if review is None:
            return _error(
                404,
                "NOT_FOUND",
                "The specified resource does not exist",
                f"There is no resource of type 'customerReviews' with id '{review_id}'",
            )
        include = request.query.get("include") == "response"
        body: dict[str, Any] = {
            "data": self._resource(review, include),
            "links": {"self": f"{self.url}{request.path}"},
        }
        if include:
            body["included"] = self._included([review])
        return Response(200, body)
