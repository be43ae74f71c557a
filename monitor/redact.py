"""Credentials out of URLs and text, before a log line, an error, a table or a message shows them.

A source's `base_url` may carry a credential: a user and password
(https://user:pass@host/...) or a token in the query string (?token=, ?key=,
?sign=, ?access_token=). Every URL or error text that is logged, stored or
shown goes through `redact` (or `redact_url` for one URL), so the credential
never leaves the config.
"""

from __future__ import annotations

import re

# Query and fragment parameters whose value is a credential.
_SECRET_PARAMS = (
    r"access_token|refresh_token|id_token|token|api_?key|apikey|app_?key|app_?secret|key|"
    r"secret|client_secret|sign|signature|sig|password|passwd|pwd|pass|auth|authorization|"
    r"session_?id|session|sid|ticket|credential|private_token|x-amz-signature|x-amz-credential"
)
_PARAM = re.compile(r"(?i)(?<![A-Za-z0-9_-])(" + _SECRET_PARAMS + r")=([^&#\s\"'<>|]+)")
# user:password@ or a lone token@ right after the scheme.
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)([^/?#\s@\"'<>]+)@")
_TOKENS = (
    (re.compile(r"xox[abeoprs]-[A-Za-z0-9-]+"), "xox*-***"),  # Slack bot/user tokens
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "xapp-***"),  # Slack app-level tokens
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
)


def _userinfo(m: re.Match[str]) -> str:
    user, colon, _password = m.group(2).partition(":")
    # A password keeps its user (who connected is useful); a lone user part
    # may itself be a token (https://TOKEN@host), so it goes.
    return f"{m.group(1)}{user}:***@" if colon else f"{m.group(1)}***@"


def redact_url(url: str) -> str:
    """`url` with its user info and credential parameters replaced by ***."""
    return redact(url)


def redact(text: str) -> str:
    """`text` with every credential it carries replaced: URLs' user info and
    credential parameters, Slack tokens, bearer tokens."""
    text = _USERINFO.sub(_userinfo, text)
    text = _PARAM.sub(r"\1=***", text)
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    return text
