"""One exception tree for everything Koubei raises on purpose.

    KoubeiError
     +-- ConfigError      a config file is missing, unreadable or invalid
     +-- FetchError       a source could not be fetched (network, HTTP status, block)
     |    +-- SourceBlocked   a login wall, captcha or risk-control block
     +-- ParseError       a source answered, but not in the format we know
     +-- CollectorFailed  a collector stopped on an error nobody raised on purpose
     +-- DeliveryError    an alert could not be handed to Slack (or the console)
     +-- StoreError       the database is unreachable or not migrated
     +-- ModelError       the model directory is missing, incomplete or unreadable

Every message says what went wrong, where (file and key, source and URL),
and what to do about it, so an operator can act on it at 3 a.m.
"""

from __future__ import annotations

from monitor.redact import redact


class KoubeiError(Exception):
    """Base class of every error Koubei raises on purpose."""


class ConfigError(KoubeiError):
    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config {file}:\n{lines}")


class FetchError(KoubeiError):
    def __init__(self, source: str, url: str, reason: str) -> None:
        # Stored on the run, shown in `koubei sources` and the ops alert: no credentials.
        url, reason = redact(url), redact(reason)
        self.source = source
        self.url = url
        self.reason = reason
        super().__init__(f"source {source!r}: fetching {url} failed: {reason}")


class SourceBlocked(FetchError):
    """The source answered with a login wall or a block instead of data."""


class ParseError(KoubeiError):
    def __init__(self, source: str, url: str, reason: str) -> None:
        url, reason = redact(url), redact(reason)
        self.source = source
        self.url = url
        self.reason = reason
        super().__init__(
            f"source {source!r}: could not parse {url}: {reason} "
            "(the site may have changed its format; save the response and file an issue)"
        )


class CollectorFailed(KoubeiError):
    """Anything else a collector raised: the run is recorded as failed, never left running."""

    def __init__(self, source: str, exc: BaseException) -> None:
        self.source = source
        super().__init__(
            f"source {source!r}: the collector stopped on an unexpected error: "
            f"{describe(exc)} (the run is recorded as failed and the next run tries again; "
            "if it repeats, save the source's answer and file an issue)"
        )


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line naming the error, without the SQL parameters a database error carries.

    SQLAlchemy's message appends the statement and its bound values (a customer's
    text, phone or ID number); the driver's own error (`orig`) says what went wrong.
    """
    if isinstance(exc, KoubeiError):
        text = str(exc)
    else:
        orig = getattr(exc, "orig", None)
        inner = orig if isinstance(orig, BaseException) else exc
        text = f"{type(inner).__name__}: {str(inner).strip()}".rstrip(": ")
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


class DeliveryError(KoubeiError):
    pass


class SinkError(DeliveryError):
    """One delivery attempt failed. `definite`: the message surely did not arrive;
    `permanent`: the service refused it for good (a retry is refused the same way);
    `retry_after`: the service asked us to wait this many seconds (a rate limit),
    which the outbox waits out without counting it against the delivery.
    """

    def __init__(
        self,
        message: str,
        *,
        definite: bool,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.definite = definite or permanent
        self.permanent = permanent
        self.retry_after = retry_after


class StoreError(KoubeiError):
    pass


class ModelError(KoubeiError):
    """The classifier's model directory is missing, incomplete or unreadable."""
