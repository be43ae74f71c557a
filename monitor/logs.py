"""Logging set-up, one for every command. Secrets never reach a log line, whoever logs
them, nor a traceback.

Two formats: the human one (time, level, logger, message) and JSON lines, one
object per record, for a log shipper (`--log-format json` or logging.format).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.redact import redact

__all__ = ["RedactingFilter", "redact", "setup_logging"]

_FORMAT = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Redacts credentials in every message and traceback; `scrub` (the PII mask,
    given by the command that sets logging up) cleans both too, since a database
    error quotes the row it choked on."""

    def __init__(self, scrub: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._scrub = scrub

    def _clean(self, text: str) -> str:
        text = redact(text)
        return self._scrub(text) if self._scrub else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMAT.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
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


def setup_logging(
    level: str = "INFO", fmt: str = "human", scrub: Callable[[str], str] | None = None
) -> None:
    handler = logging.StreamHandler()
    formatter = (
        JsonFormatter()
        if fmt == "json"
        else _Redacted("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter(scrub))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # slack-sdk logs request details at DEBUG; keep it quiet whatever our level.
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # SQL echo would print bound parameters: customers' phones and ID numbers.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # Alembic says "Context impl ..." at every start; only its problems matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own loggers go through this handler too (serve passes log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
