"""Signed, expiring bearer tokens (JWT, HS256, key from HUIZHEN_SECRET_KEY)."""

from __future__ import annotations

import logging
import secrets
import time

import jwt

from server.auth.principal import Principal
from server.errors import TokenExpired, Unauthenticated
from server.log import event
from server.log_throttle import LogThrottle
from server.store.directory import Role

log = logging.getLogger(__name__)
_LOG_THROTTLE = LogThrottle(burst=10, window_s=60.0)

_ALGORITHM = "HS256"
_ISSUER = "huizhen"


class TokenService:
    # Verifying a JWT costs ~0.1-0.2 ms of CPU; a scrolling viewer sends the same token dozens of
    # times a second. Verified tokens are remembered until their own expiry.
    VERIFIED_ENTRIES = 10_000

    def __init__(self, secret_key: str, ttl_s: int) -> None:
        if len(secret_key) < 32:
            raise ValueError("HUIZHEN_SECRET_KEY must be at least 32 characters")
        self._key = secret_key
        self.ttl_s = ttl_s
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue(
        self, principal: Principal, *, now: float | None = None, generation: int = 0
    ) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        expires = issued + self.ttl_s
        claims = {
            "iss": _ISSUER,
            "sub": principal.username,
            "role": principal.role.value,
            "clinic": principal.clinic,
            "dept": principal.department,
            "dev": principal.device,
            "iat": issued,
            "exp": expires,
            "jti": secrets.token_hex(16),
            "gen": generation,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]
        principal, expires = self._decode(token)
        if len(self._verified) >= self.VERIFIED_ENTRIES:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, int]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "role", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the token has expired: sign in again") from exc
        except jwt.InvalidTokenError as exc:
            # The library's words stay in the log: they help an attacker shape a forged token.
            # Throttled: a client replaying garbage tokens must not become one line each.
            suppressed = _LOG_THROTTLE.allow("token_invalid")
            if suppressed is not None:
                event(log, "token_invalid", reason=type(exc).__name__, detail=str(exc)[:200],
                      suppressed=suppressed)
            raise Unauthenticated("the token is not valid: sign in again") from exc
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise Unauthenticated("the token names an unknown role") from exc
        if not isinstance(claims["jti"], str) or not 8 <= len(claims["jti"]) <= 64:
            raise Unauthenticated("the token has no valid session id")
        principal = Principal(
            username=claims["sub"],
            role=role,
            clinic=claims.get("clinic"),
            department=claims.get("dept"),
            device=claims.get("dev"),
            token_id=str(claims.get("jti", "")),
            generation=claims.get("gen", 0) if isinstance(claims.get("gen", 0), int) else -1,
            expires_at=int(claims["exp"]),
        )
        return principal, int(claims["exp"])
