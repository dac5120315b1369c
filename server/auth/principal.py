"""Who is making a request: the verified claims of a bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from server.store.directory import Role


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    clinic: str | None = None
    department: str | None = None
    device: str | None = None  # kiosk device id when signed in on a clinic kiosk
    token_id: str = ""
    generation: int = 0  # the user's session generation when the token was issued
    expires_at: int = 0  # the token's expiry (epoch seconds; 0: not from a token)
