"""ICE server configuration shared by the SFU (aiortc) and the browser pages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer


@dataclass(frozen=True)
class IceServer:
    """One entry of `RTCConfiguration.iceServers`; `to_json()` is what a browser expects."""

    urls: list[str] = field(default_factory=list)
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IceServer:
        urls = data["urls"]
        return cls(
            urls=[urls] if isinstance(urls, str) else list(urls),
            username=data.get("username"),
            credential=data.get("credential"),
        )


def turn_rest_credentials(
    secret: str, user: str, ttl_s: int, now: float | None = None
) -> tuple[str, str]:
    """Time-limited TURN credentials for coturn's `use-auth-secret` ("TURN REST API").

    username = "<expiry unix time>:<user>", password = base64(HMAC-SHA1(secret, username)).
    coturn recomputes the same HMAC and rejects the username once the expiry has passed, so the
    shared secret never reaches the browser."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    if ":" in user:
        # coturn splits the username on ':'; a colon in the user part would shift the expiry.
        raise ValueError("user must not contain ':'")
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def rtc_configuration(ice_servers: list[IceServer]) -> RTCConfiguration:
    """aiortc configuration; always explicit, since iceServers=None makes aiortc add Google's
    public STUN server (an empty list means host candidates only).

    max-bundle: one ICE/DTLS transport per peer connection. With aiortc's default "balanced"
    policy, a second transceiver of a kind created before the first answer shares the per-kind
    transport and is then skipped when BUNDLE moves the others onto the first transport, so it
    never sends (measured: one forwarded video stream in three silently dead)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in ice_servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


# --- which remote ICE candidates the SFU uses --------------------------------------------------

# Never: nobody is reachable at these, and a candidate pointing there makes the SFU send STUN
# into places it has no business probing.
_ALWAYS_REFUSED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8",
)]
# Refused by default in production: loopback and link-local.
_LOCAL_ONLY = [ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10",
)]
_LOOPBACK = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128")]


def is_loopback_host(host: str) -> bool:
    """Is the address the server listens on a loopback one (`make run`'s 127.0.0.1)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class IcePolicy:
    """Remote candidates the SFU accepts. `allowed` None: every address except loopback and
    link-local (loopback too when `allow_loopback`); multicast, broadcast and unspecified
    addresses never. Hostname candidates (mDNS `.local`) are not IP literals and are ignored."""

    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    allow_loopback: bool = False

    @classmethod
    def from_settings(cls, networks: tuple[str, ...] | None, listen_host: str) -> IcePolicy:
        """HUIZHEN_ICE_ALLOWED_NETWORKS (CIDRs) or the default; a server that listens on
        loopback is a single-machine install, so its default admits loopback candidates."""
        if networks is None:
            return cls(None, allow_loopback=is_loopback_host(listen_host))
        try:
            parsed = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        except ValueError as exc:
            raise ValueError(f"HUIZHEN_ICE_ALLOWED_NETWORKS: {exc}") from exc
        return cls(parsed)

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False  # a hostname: cannot be checked before it is resolved
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(ip in n for n in _ALWAYS_REFUSED if n.version == ip.version):
            return False
        if self.allowed is not None:
            return any(ip in n for n in self.allowed if n.version == ip.version)
        refused = _LOCAL_ONLY if not self.allow_loopback else [
            n for n in _LOCAL_ONLY if n not in _LOOPBACK]
        return not any(ip in n for n in refused if n.version == ip.version)

    def allows_candidate(self, line: str) -> bool:
        """`line`: an SDP candidate attribute value (`foundation component transport priority
        address port typ …`, with or without `candidate:`/`a=candidate:`)."""
        parts = line.split()
        return len(parts) >= 8 and self.allows(parts[4])

    def filter_sdp(self, sdp: str) -> tuple[str, int]:
        """The SDP without the candidate lines this policy refuses, and how many were dropped."""
        kept: list[str] = []
        dropped = 0
        for line in sdp.splitlines(keepends=True):
            if line.startswith("a=candidate:") and not self.allows_candidate(
                    line[len("a=candidate:"):]):
                dropped += 1
                continue
            kept.append(line)
        return "".join(kept), dropped

    def describe(self) -> str:
        if self.allowed is not None:
            return ", ".join(str(n) for n in self.allowed)
        return "any but link-local" + ("" if self.allow_loopback else " and loopback")
