"""OpenID Connect sign-in to the board against a local fake provider, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.fakes.oidc import FakeOidc
from monitor.fakes.slack import FakeSlack
from monitor.pipeline import Services
from monitor.store.users import add_user, find_user
from monitor.web.oidc import SLACK_CLAIM, OidcSettings
from tests.boardkit import board_server

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ZHANG = {
    "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "preferred_username": "zhang.wei",
    "email": "zhang.wei@example.com",
    "email_verified": True,
    "name": "张伟",
    SLACK_CLAIM: "U0ZHANGW01",
}


@pytest.fixture
def provider() -> Iterator[FakeOidc]:
    with FakeOidc() as fake:
        yield fake


@pytest.fixture
def board(svc: Services, slack: FakeSlack, provider: FakeOidc) -> Iterator[str]:
    secrets = svc.settings.secrets.model_copy(
        update={
            "session_secret": SecretStr("x" * 40),
            "oidc_issuer": provider.issuer,
            "oidc_client_id": provider.client_id,
            "oidc_client_secret": SecretStr(provider.client_secret),
        }
    )
    settings: Settings = svc.settings.model_copy(update={"secrets": secrets})
    with Session(svc.engine) as s, s.begin():
        add_user(s, "zhang.wei", "agent", svc.clock.now())  # no password: OpenID only
    with board_server(svc, slack, settings) as url:
        provider.redirect_uris = [f"{url}/login/oidc/callback"]
        yield url


def through_provider(client: httpx.Client) -> tuple[httpx.Response, str]:
    """Start at the board, go to the provider, come back: the last answer and the callback."""
    start = client.get("/login/oidc", params={"next": "/cases?grade=P1"})
    assert start.status_code == 302, start.text
    at_provider = client.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    return client.get(callback), callback


def test_a_known_person_signs_in_and_gets_their_slack_id(
    board: str, provider: FakeOidc, svc: Services
) -> None:
    provider.person = dict(ZHANG)
    with httpx.Client(base_url=board) as client:
        assert "使用企业账号登录" in client.get("/login").text
        back, callback = through_provider(client)
        assert back.status_code == 303 and back.headers["location"] == "/cases?grade=P1"
        assert client.get("/cases").status_code == 200
        # The code was spent, the state with it: the same callback again signs nobody in.
        with httpx.Client(base_url=board) as other:
            assert other.get(callback).status_code == 401
    with Session(svc.engine) as s:
        user = find_user(s, "zhang.wei")
        assert user is not None and user.slack_id == "U0ZHANGW01"
        assert user.oidc_subject == ZHANG["sub"]
    # Later the provider renames them: the subject still finds the same account.
    provider.person = {**ZHANG, "preferred_username": "wei.zhang", "email_verified": False}
    with httpx.Client(base_url=board) as client:
        assert through_provider(client)[0].status_code == 303


def test_a_person_without_an_account_is_refused(board: str, provider: FakeOidc) -> None:
    provider.person = {"sub": "someone-else", "preferred_username": "li.na", "email": "x@y.cn"}
    with httpx.Client(base_url=board) as client:
        back, _ = through_provider(client)
        assert back.status_code == 403 and "请联系管理员开通" in back.text
        assert client.get("/cases").status_code == 303


def test_an_unverified_email_does_not_claim_an_account(
    board: str, provider: FakeOidc, svc: Services
) -> None:
    with Session(svc.engine) as s, s.begin():
        add_user(s, "boss@example.com", "admin", svc.clock.now())
    provider.person = {"sub": "attacker", "email": "boss@example.com", "email_verified": False}
    with httpx.Client(base_url=board) as client:
        assert through_provider(client)[0].status_code == 403


def test_cancelling_at_the_provider_signs_nobody_in(board: str, provider: FakeOidc) -> None:
    provider.person = None
    with httpx.Client(base_url=board) as client:
        back, callback = through_provider(client)
        assert "error=access_denied" in callback
        assert back.status_code == 401 and "已取消或被拒绝" in back.text
        assert client.get("/cases").status_code == 303


def test_half_an_openid_configuration_is_refused(svc: Services) -> None:
    partial: dict[str, Any] = {"oidc_issuer": "https://sso.example.com", "oidc_client_id": "k"}
    with pytest.raises(ConfigError, match="needs all three"):
        OidcSettings.from_secrets(svc.settings.secrets.model_copy(update=partial))
