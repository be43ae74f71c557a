"""Which redirects a collector may follow.

Every URL a collector asks for is built from its source's `base_url`, so the
host of the first request is the source's own. A redirect may go to that same
host and port (any path, http -> https on the default ports too) or to a host
listed for it in `http.redirect_hosts`. A redirect to another host is also
refused when that host resolves to a private, loopback, link-local or other
non-public address, unless the source itself lives on such an address (a local
fake or an intranet mirror): a hostile answer must not make us fetch, and store
as posts, what only our own network can reach.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence

import httpx

Resolve = Callable[[str], list[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def resolve_host(host: str) -> list[str]:
    """The host's addresses (an IP literal is its own); [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _authority(url: httpx.URL) -> str:
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    host = url.host.lower()
    return host if port == _DEFAULT_PORTS.get(url.scheme) else f"{host}:{port}"


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    if a.host.lower() != b.host.lower():
        return False
    if (a.port or _DEFAULT_PORTS[a.scheme]) == (b.port or _DEFAULT_PORTS[b.scheme]):
        return True
    # http -> https on the same host, default ports: the usual upgrade.
    return a.port is None and b.port is None and (a.scheme, b.scheme) == ("http", "https")


def _non_public(addresses: Sequence[str]) -> list[str]:
    out = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            out.append(address)
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            out.append(address)
    return out


def refusal(
    origin: httpx.URL,
    target: httpx.URL,
    allowed: Mapping[str, Sequence[str]],
    resolve: Resolve = resolve_host,
) -> str | None:
    """Why the redirect from `origin` (the first request) to `target` is refused; None if not."""
    if target.scheme not in _DEFAULT_PORTS:
        return f"refused a redirect to a {target.scheme or 'relative'!s} URL"
    if _same_origin(origin, target):
        return None
    listed = {h.lower() for h in allowed.get(origin.host.lower(), ())}
    if target.host.lower() not in listed and _authority(target) not in listed:
        return (
            f"refused a redirect to another host ({_authority(target)}); if the source "
            f"really moved there, add it to http.redirect_hosts[{origin.host!r}] or "
            "change the source's base_url"
        )
    addresses = resolve(target.host)
    if not addresses:
        return f"refused a redirect to {target.host}: the host does not resolve"
    inner = _non_public(addresses)
    if inner and not _non_public(resolve(origin.host)):
        return (
            f"refused a redirect to {target.host}, which resolves to a non-public address "
            f"({', '.join(inner)}), from a source on the public internet"
        )
    return None
