"""Logging set-up, one for every command. Secrets never reach a log line, whoever logs them.

Two formats: the human one (time, level, logger, message) and JSON lines, one
object per record, for a log shipper (`--log-format json` or logging.format).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

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


class _Redacted(logging.Formatter):
    """Tracebacks carry messages too (a URL with a password in an exception)."""

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


class JsonFormatter(_Redacted):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "human") -> None:
    handler = logging.StreamHandler()
    formatter = (
        JsonFormatter()
        if fmt == "json"
        else _Redacted("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # slack-sdk logs request details at DEBUG; keep it quiet whatever our level.
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic says "Context impl ..." at every start; only its problems matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own loggers go through this handler too (serve passes log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
