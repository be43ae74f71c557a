"""Collectors: one class per source kind, registered by kind, with one method.

    class AppStore(Collector, kind="appstore"):
        Options = AppStoreOptions          # validated from the source's `options:`
        def fetch(self, client) -> Iterator[RawPost]: ...

A second class with the same kind is an error at import time. A new source is
one new module here (imported below) plus its fixtures; nothing else changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.collectors.http import HttpClient
from monitor.collectors.payload import post_problem, text_id
from monitor.config import SourceConfig
from monitor.domain import RawPost, Rejected
from monitor.errors import FetchError, describe

log = logging.getLogger(__name__)
# What a payload value may look like before it goes into a URL path or query:
# platform ids are digits or short tokens, never slashes, dots, `?`, `%` or `#`.
_URL_SAFE = re.compile(r"[0-9A-Za-z_-]{1,64}")


class CollectorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Collector:
    kind: ClassVar[str]
    Options: ClassVar[type[CollectorOptions]] = CollectorOptions
    _registry: ClassVar[dict[str, type[Collector]]] = {}
    # The API host a source of this kind uses when its config gives no base_url.
    default_base_url: ClassVar[str | None] = None

    def __init_subclass__(cls, kind: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind in Collector._registry:
            other = Collector._registry[kind]
            raise TypeError(
                f"collector kind {kind!r} is registered twice: "
                f"{other.__module__}.{other.__qualname__} and {cls.__module__}.{cls.__qualname__}"
            )
        cls.kind = kind
        Collector._registry[kind] = cls

    def __init__(
        self,
        source: SourceConfig,
        *,
        is_known: Callable[[str], bool] = lambda _id: False,
        stop_at_known: bool = True,
        revisit: Sequence[str] = (),
        memory: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.options = self.Options.model_validate(source.options)
        self.base_url = (source.base_url or self.default_base_url or "").rstrip("/")
        # Incremental runs stop paging once they reach posts already stored; a run
        # after an interrupted one pages through everything it can reach instead.
        self.is_known = is_known
        self.stop_at_known = stop_at_known
        # Complaints still open on their platform: read them again for status changes.
        self.revisit = list(revisit)
        # Kept between runs in source_state.memory (ETags, cursors); the pipeline saves it.
        self.memory: dict[str, Any] = memory if memory is not None else {}
        # Items that could not be read: the pipeline quarantines them.
        self.rejected: list[Rejected] = []
        self.skipped = 0  # items left out because a value in them was unusable

    def reject(self, raw: Any, error: str, external_id: object = None) -> None:
        ident = text_id(external_id)
        self.rejected.append(Rejected(self.source.name, ident or None, "parse", error, raw))

    def read_item(
        self, raw: Any, parse: Callable[[], RawPost | None], external_id: object = None
    ) -> RawPost | None:
        """Parse one item; one that cannot be read is set aside in `rejected`, not the page.

        Fetch errors (the network, a block) still end the run: they are the
        source's state, not the item's fault, and the next run reads the item.
        """
        try:
            post = parse()
        except FetchError:
            raise
        except Exception as exc:
            self.reject(raw, describe(exc, limit=500), external_id)
            return None
        if post is None:
            return None
        problem = post_problem(post)
        if problem is None and not post.external_id.strip():
            problem = "the item has no id (kept in quarantine rather than merged with another post)"
        if problem is not None:
            self.reject(raw, problem, post.external_id or external_id)
            return None
        return post

    def url_id(self, value: object, what: str = "id") -> str | None:
        """`value` if it is safe to put into a URL; otherwise None, and the item is counted."""
        text = str(value).strip() if isinstance(value, str | int) else ""
        if not isinstance(value, bool) and _URL_SAFE.fullmatch(text):
            return text
        self.skipped += 1
        # Kept in quarantine like any unreadable item, so `koubei sources` shows it.
        self.reject(
            {what: str(value)[:200]}, f"the {what} {str(value)[:80]!a} cannot go into a URL"
        )
        log.warning(
            "source %r: skipped an item whose %s %s cannot go into a URL",
            self.source.name,
            what,
            ascii(str(value)[:80]),
        )
        return None

    def fetch(self, client: HttpClient) -> Iterator[RawPost]:
        """Yield the source's posts, newest first, as far back as this run should go."""
        raise NotImplementedError


def collector_class(kind: str) -> type[Collector]:
    try:
        return Collector._registry[kind]
    except KeyError:
        known = ", ".join(sorted(Collector._registry))
        raise KeyError(f"unknown source kind {kind!r}; known kinds: {known}") from None


def validate_source_options(source: SourceConfig) -> list[str]:
    """Problems with a source's kind or options, as `.key.path: message` lines."""
    try:
        cls = collector_class(source.kind)
    except KeyError as exc:
        return [f".kind: {exc.args[0]}"]
    if not source.base_url and cls.default_base_url is None:
        return [f".base_url: required for kind {source.kind!r} (the site's address, http(s)://…)"]
    try:
        cls.Options.model_validate(source.options)
    except ValidationError as exc:
        return [
            ".options"
            + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            + f": {err['msg']}"
            for err in exc.errors()
        ]
    return []


# Importing the modules registers their kinds.
from monitor.collectors import appstore as appstore  # noqa: E402
from monitor.collectors import appstoreconnect as appstoreconnect  # noqa: E402
from monitor.collectors import heimao as heimao  # noqa: E402
from monitor.collectors import huawei as huawei  # noqa: E402
from monitor.collectors import jutousu as jutousu  # noqa: E402
from monitor.collectors import rss as rss  # noqa: E402
from monitor.collectors import yingyongbao as yingyongbao  # noqa: E402
