"""Who hears about what, and when: channels, mentions, on-call, quiet hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config import Oncall, OncallPerson, Policy, QuietHours
from monitor.domain import Severity


def oncall_at(oncall: Oncall, when: datetime, tz: ZoneInfo) -> OncallPerson:
    """The person on call at `when`: an override if one covers it, else the rotation."""
    for override in oncall.overrides:
        if override.start <= when < override.end:
            return override
    local = when.astimezone(tz)
    first = datetime.combine(oncall.first_shift, oncall.handover, tzinfo=tz)
    shifts = int((local - first) // timedelta(days=oncall.period_days))
    return oncall.rotation[shifts % len(oncall.rotation)]


def mention(policy: Policy, role: str, when: datetime, tz: ZoneInfo) -> str:
    """Slack mention text for a role name from policy.yaml ("oncall" is the current person)."""
    if role == "oncall" and policy.oncall is not None:
        person = oncall_at(policy.oncall, when, tz)
        return f"<@{person.slack}>"
    found = policy.roles.get(role)
    return found.slack if found else role


def role_name(policy: Policy, role: str, when: datetime, tz: ZoneInfo) -> str:
    if role == "oncall" and policy.oncall is not None:
        return f"值班 {oncall_at(policy.oncall, when, tz).name}"
    found = policy.roles.get(role)
    return found.name if found else role


def quiet_until(
    quiet: QuietHours | None, severity: Severity, when: datetime, tz: ZoneInfo
) -> datetime | None:
    """End of the quiet hours `when` falls in, for grades that wait; None: send now."""
    if quiet is None or severity.value not in quiet.grades:
        return None
    local = when.astimezone(tz)
    t = local.timetz().replace(tzinfo=None)
    overnight = quiet.start > quiet.end
    inside = (t >= quiet.start or t < quiet.end) if overnight else (quiet.start <= t < quiet.end)
    if not inside:
        return None
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:
        end += timedelta(days=1)
    return end
