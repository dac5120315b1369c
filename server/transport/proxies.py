"""The real client behind a reverse proxy: X-Forwarded-For / X-Forwarded-Proto, believed only
when the TCP peer is in HUIZHEN_TRUSTED_PROXIES.

Downstream code (audit, login limits, logs, HSTS) reads `request.remote` and `request.secure`
and so sees the real client and scheme. X-Forwarded-For is walked from the right: every proxy
appends the address it saw, so the first address that is not a trusted proxy is the client (an
address the client wrote itself sits further left and is ignored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from server import appkeys

Network = IPv4Network | IPv6Network
# Set on the request aiohttp itself holds (the one response signals see): the clone handed on
# carries the scheme, but on_response_prepare receives the original.
FORWARDED_SECURE = web.RequestKey("forwarded_secure", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A proxy chain longer than this is not a deployment; the rest is ignored.
MAX_HOPS = 16


def _address(text: str) -> IPv4Address | IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]  # [v6]:port
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # v4:port
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in net for net in networks)


def real_client(
    peer: str | None, forwarded_for: Sequence[str], networks: Sequence[Network]
) -> str | None:
    """The client address, given the TCP peer and the X-Forwarded-For header values."""
    if not _trusted(_address(peer or ""), networks):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()][-MAX_HOPS:]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage: stop at the last hop a trusted proxy vouched for
        client = str(address)
        if not _trusted(address, networks):
            break
    return client


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    networks = request.app[appkeys.SETTINGS].trusted_proxies
    if not networks or not _trusted(_address(request.remote or ""), networks):
        return await handler(request)
    changes: dict[str, str] = {}
    remote = real_client(request.remote, request.headers.getall("X-Forwarded-For", []), networks)
    if remote is not None and remote != request.remote:
        changes["remote"] = remote
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
        request[FORWARDED_SECURE] = proto == "https"
    return await handler(request.clone(**changes) if changes else request)


def is_secure(request: web.Request) -> bool:
    """HTTPS to the client: TLS here, or at a trusted proxy that said so."""
    return request.get(FORWARDED_SECURE, request.secure)
