"""Logging set-up. Secrets never reach a log line, whoever logs them."""

from __future__ import annotations

import logging
import re

_SECRETS = (
    (re.compile(r"xox[abeoprs]-[A-Za-z0-9-]+"), "xox*-***"),  # Slack bot/user tokens
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "xapp-***"),  # Slack app-level tokens
    (re.compile(r"(://[^:/@\s]+):[^@\s]+@"), r"\1:***@"),  # passwords in URLs
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # slack-sdk logs request details at DEBUG; keep it quiet whatever our level.
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
