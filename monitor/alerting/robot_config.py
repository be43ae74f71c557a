"""A group robot built from koubei.yaml `sinks:` and policy.yaml's people and roles.

The webhook URL and the signing secret come from the environment variables the sink
names (`url_env`, `secret_env`); mentions resolve to the platform's ids (`wecom`,
`dingtalk`, `feishu` keys of a person or role), and to a name where there is none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from monitor.config import Policy, Settings, SinkConfig
from monitor.domain import Mention
from monitor.errors import ConfigError

Platform = Literal["wecom", "dingtalk", "feishu"]


def _holder(policy: Policy, mention: Mention) -> object | None:
    """The person or role a mention names (a role may be named by key or by its Slack text)."""
    if mention.person:
        return policy.person(mention.person)
    if mention.role:
        if mention.role in policy.roles:
            return policy.roles[mention.role]
        for role in policy.roles.values():
            if role.slack == mention.role:
                return role
    return None


def platform_ids(policy: Policy, platform: Platform) -> Callable[[Mention], str | None]:
    def ids(mention: Mention) -> str | None:
        value = getattr(_holder(policy, mention), platform, None)
        return str(value) if value else None

    return ids


def display_names(policy: Policy) -> Callable[[Mention], str | None]:
    def names(mention: Mention) -> str | None:
        value = getattr(_holder(policy, mention), "name", None)
        return str(value) if value else None

    return names


@dataclass(frozen=True)
class RobotArgs:
    url: str
    secret: str | None
    ids: Callable[[Mention], str | None]
    names: Callable[[Mention], str | None]
    keyword: str | None
    timeout: float

    def options(self, *, keyword: bool) -> dict[str, Any]:
        """The sink's `connect` keywords (WeCom robots have no keyword)."""
        out: dict[str, Any] = {"ids": self.ids, "names": self.names, "timeout": self.timeout}
        if keyword:
            out["keyword"] = self.keyword
        return out


def robot_args(
    cfg: SinkConfig, settings: Settings, env: Mapping[str, str], platform: Platform
) -> RobotArgs:
    if not cfg.url_env:
        raise ConfigError(
            str(settings.path),
            [f"sinks: sink {cfg.name!r} ({cfg.kind}) needs url_env, the variable with its webhook"],
        )
    keyword = cfg.options.get("keyword")
    return RobotArgs(
        url=env.get(cfg.url_env, "").strip(),
        secret=(env.get(cfg.secret_env, "").strip() or None) if cfg.secret_env else None,
        ids=platform_ids(settings.policy, platform),
        names=display_names(settings.policy),
        keyword=str(keyword) if keyword else None,
        timeout=float(cfg.options.get("timeout_s") or settings.app.slack.timeout_s),
    )
