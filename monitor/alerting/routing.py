"""Who hears about what, and when: on-call, Slack mention text, quiet hours.

The rules live at the work floor (`monitor.notices`), where notices are built; this
module keeps the Slack-text helpers the Slack side still needs.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config import Policy
from monitor.notices import oncall_at, quiet_until, role_name

__all__ = ["mention", "oncall_at", "quiet_until", "role_name"]


def mention(policy: Policy, role: str, when: datetime, tz: ZoneInfo) -> str:
    """Slack mention text for a role name from policy.yaml ("oncall" is the current person)."""
    if role == "oncall" and policy.oncall is not None:
        person = oncall_at(policy.oncall, when, tz)
        return f"<@{person.slack}>"
    found = policy.roles.get(role)
    return found.slack if found else role
