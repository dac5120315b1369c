"""Sign-in throttling: attempts counted atomically BEFORE the password is checked.

Two counters, each a Redis string with a TTL of one window:
- per (existing username, client address): a lock from one address leaves the same user free to
  sign in from another (an attacker cannot lock a doctor out from elsewhere);
- per client address, for every name (unknown names only ever count here, so guessing names
  creates no key per name). IPv6 addresses count per /64, what one host usually holds.
`attempt` increments both in one MULTI and says whether this attempt may be checked; 40
parallel wrong passwords get counts 1…40 and only the first `per_user` are checked. A success
takes its own attempt back and clears the user's counter for that address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from redis.asyncio import Redis

from server.store import keys

WINDOW_S = 15 * 60
MAX_PER_USER_ADDRESS = 10
MAX_PER_ADDRESS = 100


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    #: True for the first refused attempt of a window (audit it once, not every refusal).
    newly_locked: bool = False


def address_bucket(remote: str | None) -> str:
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return "unknown"
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return str(mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address) + "/64"
    return str(ip)


class LoginLimits:
    def __init__(self, redis: Redis, *, per_user_address: int = MAX_PER_USER_ADDRESS,
                 per_address: int = MAX_PER_ADDRESS, window_s: int = WINDOW_S) -> None:
        self._r = redis
        self.per_user_address = per_user_address
        self.per_address = per_address
        self.window_s = window_s

    async def attempt(self, username: str | None, remote: str | None) -> Verdict:
        """Count one attempt; `username` only when that user exists."""
        bucket = address_bucket(remote)
        counters = [(keys.login_attempts_address(bucket), self.per_address)]
        if username is not None:
            counters.append((keys.login_attempts_user(username, bucket), self.per_user_address))
        async with self._r.pipeline(transaction=True) as pipe:
            for key, _ in counters:
                pipe.incr(key).expire(key, self.window_s, nx=True).ttl(key)
            replies = await pipe.execute()
        verdict = Verdict(True)
        for i, (_, limit) in enumerate(counters):
            count, ttl = int(replies[3 * i]), int(replies[3 * i + 2])
            if count > limit:
                wait = max(1, ttl if ttl > 0 else self.window_s)
                if not verdict.allowed:
                    wait = max(wait, verdict.retry_after_s)
                verdict = Verdict(False, wait, verdict.newly_locked or count == limit + 1)
        return verdict

    async def succeeded(self, username: str, remote: str | None) -> None:
        bucket = address_bucket(remote)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(keys.login_attempts_user(username, bucket))
            pipe.decr(keys.login_attempts_address(bucket))
            await pipe.execute()
