"""Clinics, departments, users and kiosk devices: who exists and what they belong to."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from redis.asyncio import Redis

from server.errors import Conflict, InvalidParameter, NotFound
from server.store import keys

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Role(StrEnum):
    DOCTOR = "doctor"
    EXPERT = "expert"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    # Reads the audit trail (audit page, `huizhen audit search`); no patient data, no editing.
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Clinic:
    id: str
    name: str


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    head: str = ""  # the head of department's username (reassigns its reading requests)


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: Role
    clinic: str | None
    department: str | None
    password_hash: str
    disabled: bool = False
    # Bumped by a password change or a disable: tokens of an older generation are ended.
    session_generation: int = 0

    def public(self) -> dict[str, str | None]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "clinic": self.clinic,
            "department": self.department,
        }


@dataclass(frozen=True)
class UserBrief:
    """Who a user is, without their secrets (Directory.find)."""

    username: str
    display_name: str
    role: Role
    clinic: str | None
    department: str | None


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    clinic: str
    created_at: int = 0
    revoked_at: int = 0  # 0: active

    def public(self) -> dict[str, str | int | bool]:
        return {"id": self.id, "name": self.name, "clinic": self.clinic,
                "created_at": self.created_at, "revoked": bool(self.revoked_at),
                "revoked_at": self.revoked_at}


def _device(data: dict[str, str]) -> Device:
    return Device(id=data["id"], name=data["name"], clinic=data["clinic"],
                  created_at=int(data.get("created_at") or 0),
                  revoked_at=int(data.get("revoked_at") or 0))


def slug(text: str) -> str:
    """A stable id from a human name ("Qingshui Township" -> "qingshui-township")."""
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return value[:64] or "x" + hashlib.sha1(text.encode()).hexdigest()[:8]


def check_id(kind: str, value: str) -> str:
    if not _ID_RE.match(value):
        raise InvalidParameter(
            f"{kind} id {value!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-'"
        )
    return value


def device_digest(token: str) -> str:
    # Device tokens are 256-bit random, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


class Directory:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    # clinics and departments -------------------------------------------------------------
    async def add_clinic(self, name: str, clinic_id: str | None = None) -> Clinic:
        cid = check_id("clinic", clinic_id or slug(name))
        if not await self._r.hsetnx(keys.clinic(cid), "name", name):
            raise Conflict(f"clinic {cid!r} already exists")
        await self._r.hset(keys.clinic(cid), mapping={"id": cid, "created_at": int(time.time())})
        await self._r.sadd(keys.CLINICS, cid)
        return Clinic(cid, name)

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        data = await self._r.hgetall(keys.clinic(clinic_id))
        return Clinic(clinic_id, data["name"]) if data else None

    async def clinics(self) -> list[Clinic]:
        ids = sorted(await self._r.smembers(keys.CLINICS))
        return [c for c in [await self.get_clinic(i) for i in ids] if c]

    async def add_department(self, name: str, department_id: str | None = None) -> Department:
        did = check_id("department", department_id or slug(name))
        if not await self._r.hsetnx(keys.department(did), "name", name):
            raise Conflict(f"department {did!r} already exists")
        await self._r.hset(keys.department(did), "id", did)
        await self._r.sadd(keys.DEPARTMENTS, did)
        return Department(did, name)

    async def get_department(self, department_id: str) -> Department | None:
        data = await self._r.hgetall(keys.department(department_id))
        return Department(department_id, data["name"], data.get("head", "")) if data else None

    async def set_department_head(self, department_id: str, username: str) -> Department:
        """The head of a department: one of its experts ("" clears it)."""
        dept = await self.get_department(department_id)
        if dept is None:
            raise NotFound(f"department {department_id!r} does not exist")
        if username:
            user = await self.get_user(username)
            if user is None:
                raise NotFound(f"user {username!r} does not exist")
            if user.role is not Role.EXPERT or user.department != department_id:
                raise InvalidParameter(
                    f"the head of {department_id} is one of its experts, not {username!r}")
        await self._r.hset(keys.department(department_id), "head", username)
        return Department(dept.id, dept.name, username)

    async def set_clinic_contacts(self, clinic_id: str, usernames: list[str]) -> list[str]:
        """Who a clinic wants told when a critical alert goes unacknowledged (its doctors)."""
        if await self.get_clinic(clinic_id) is None:
            raise NotFound(f"clinic {clinic_id!r} does not exist")
        for name in usernames:
            user = await self.get_user(name)
            if user is None or user.role is not Role.DOCTOR or user.clinic != clinic_id:
                raise InvalidParameter(f"{name!r} is not a doctor of {clinic_id}")
        await self._r.hset(keys.clinic(clinic_id), "escalation_contacts", ",".join(usernames))
        return usernames

    async def clinic_contacts(self, clinic_id: str) -> list[str]:
        raw = await self._r.hget(keys.clinic(clinic_id), "escalation_contacts") or ""
        return [n for n in raw.split(",") if n]

    async def set_on_duty(self, usernames: list[str]) -> list[str]:
        """The coordinators on duty (the last step of an alert's escalation); none: all."""
        for name in usernames:
            user = await self.get_user(name)
            if user is None or user.role is not Role.COORDINATOR:
                raise InvalidParameter(f"{name!r} is not a coordinator")
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(keys.ON_DUTY_COORDINATORS)
            if usernames:
                pipe.sadd(keys.ON_DUTY_COORDINATORS, *usernames)
            await pipe.execute()
        return usernames

    async def on_duty(self) -> list[str]:
        """The coordinators on duty, or every enabled coordinator when none is set."""
        named = sorted(await self._r.smembers(keys.ON_DUTY_COORDINATORS))
        if named:
            return named
        return sorted(await self.members(roles=[Role.COORDINATOR.value]))

    async def find(self, *, role: Role | None = None, clinic: str | None = None,
                   department: str | None = None) -> list[UserBrief]:
        names = sorted(await self._r.smembers(keys.USERS))
        async with self._r.pipeline(transaction=False) as pipe:
            for n in names:
                pipe.hmget(keys.user(n), "role", "clinic", "department", "disabled",
                           "display_name")
            rows = await pipe.execute()
        out: list[UserBrief] = []
        for name, (r, c, d, disabled, display) in zip(names, rows, strict=True):
            if r is None or disabled == "1":
                continue
            if role is not None and r != role.value:
                continue
            if clinic is not None and c != clinic:
                continue
            if department is not None and d != department:
                continue
            out.append(UserBrief(name, display or name, Role(r), c or None, d or None))
        return out

    async def departments(self) -> list[Department]:
        ids = sorted(await self._r.smembers(keys.DEPARTMENTS))
        return [d for d in [await self.get_department(i) for i in ids] if d]

    # users --------------------------------------------------------------------------------
    async def add_user(
        self,
        username: str,
        *,
        role: Role,
        password_hash: str,
        display_name: str | None = None,
        clinic: str | None = None,
        department: str | None = None,
    ) -> User:
        check_id("user", username)
        if role is Role.DOCTOR:
            if not clinic:
                raise InvalidParameter("a doctor belongs to a clinic: give --clinic")
            if await self.get_clinic(clinic) is None:
                raise NotFound(f"clinic {clinic!r} does not exist")
        elif clinic:
            raise InvalidParameter(f"only doctors belong to a clinic, not a {role.value}")
        if role is Role.EXPERT:
            if not department:
                raise InvalidParameter("an expert belongs to a department: give --department")
            if await self.get_department(department) is None:
                raise NotFound(f"department {department!r} does not exist")
        elif department:
            raise InvalidParameter(f"only experts belong to a department, not a {role.value}")
        user = User(username, display_name or username, role, clinic, department, password_hash)
        record = {k: v for k, v in asdict(user).items() if v is not None}
        record["role"] = role.value
        record["disabled"] = "0"
        del record["session_generation"]
        record["session_gen"] = "0"
        record["created_at"] = str(int(time.time()))
        if not await self._r.hsetnx(keys.user(username), "username", username):
            raise Conflict(f"user {username!r} already exists")
        await self._r.hset(keys.user(username), mapping=record)
        await self._r.sadd(keys.USERS, username)
        await self._index_member(user)
        return user

    async def _index_member(self, user: User) -> None:
        pipe = self._r.pipeline(transaction=False)
        pipe.sadd(keys.role_users(user.role.value), user.username)
        if user.clinic:
            pipe.sadd(keys.clinic_users(user.clinic), user.username)
        if user.department:
            pipe.sadd(keys.department_users(user.department), user.username)
        await pipe.execute()

    async def index_members(self) -> int:
        """Rebuild the clinic/department/role member sets from the users (at start: data
        written before these sets existed is indexed too). Idempotent."""
        users = await self.users()
        for user in users:
            await self._index_member(user)
        return len(users)

    async def members(
        self, *, clinics: Iterable[str] = (), departments: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> set[str]:
        """Usernames of the doctors of these clinics, experts of these departments and users of
        these roles (the union)."""
        names = [keys.clinic_users(c) for c in clinics]
        names += [keys.department_users(d) for d in departments]
        names += [keys.role_users(r) for r in roles]
        if not names:
            return set()
        return set(await self._r.sunion(names))

    async def get_user(self, username: str) -> User | None:
        data = await self._r.hgetall(keys.user(username))
        if not data or "password_hash" not in data:
            return None
        return User(
            username=data["username"],
            display_name=data.get("display_name", username),
            role=Role(data["role"]),
            clinic=data.get("clinic") or None,
            department=data.get("department") or None,
            password_hash=data["password_hash"],
            disabled=data.get("disabled") == "1",
            session_generation=int(data.get("session_gen") or 0),
        )

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        if not await self._r.exists(keys.user(username)):
            raise NotFound(f"user {username!r} does not exist")
        await self._r.hset(keys.user(username), "password_hash", password_hash)

    async def change_password(self, username: str, password_hash: str) -> int:
        """Set a new password and end every older session; returns the new generation."""
        await self.set_password_hash(username, password_hash)
        return await self._bump_generation(username)

    async def set_disabled(self, username: str, disabled: bool) -> User:
        """Disable (ending every session) or enable an account."""
        if await self.get_user(username) is None:
            raise NotFound(f"user {username!r} does not exist")
        await self._r.hset(keys.user(username), "disabled", "1" if disabled else "0")
        if disabled:
            await self._bump_generation(username)
        user = await self.get_user(username)
        assert user is not None
        return user

    async def _bump_generation(self, username: str) -> int:
        return int(await self._r.hincrby(keys.user(username), "session_gen", 1))

    async def users(self) -> list[User]:
        names = sorted(await self._r.smembers(keys.USERS))
        return [u for u in [await self.get_user(n) for n in names] if u]

    # kiosk devices ------------------------------------------------------------------------
    async def add_device(self, name: str, clinic: str) -> tuple[Device, str]:
        """Register a kiosk bound to one clinic; returns the device and its one-time-shown token."""
        if await self.get_clinic(clinic) is None:
            raise NotFound(f"clinic {clinic!r} does not exist")
        token = "hzd_" + secrets.token_urlsafe(32)
        if not name.strip() or len(name) > 100:
            raise InvalidParameter("a kiosk name is 1-100 characters")
        device = Device(id=secrets.token_hex(8), name=name, clinic=clinic,
                        created_at=int(time.time()))
        await self._r.hset(keys.device(device_digest(token)), mapping=asdict(device))
        await self._r.sadd(keys.DEVICES, device_digest(token))
        return device, token

    async def device_for_token(self, token: str) -> Device | None:
        """The active device a token belongs to (None: unknown or revoked)."""
        data = await self._r.hgetall(keys.device(device_digest(token)))
        if not data:
            return None
        device = _device(data)
        return None if device.revoked_at else device

    async def devices(self) -> list[Device]:
        digests = sorted(await self._r.smembers(keys.DEVICES))
        found = [await self._r.hgetall(keys.device(d)) for d in digests]
        return sorted((_device(d) for d in found if d), key=lambda d: (d.clinic, d.created_at))

    async def revoke_device(self, id_or_name: str, *, by_name: bool = True) -> Device:
        """Revoke one kiosk by id, or by name when exactly one active kiosk has that name."""
        digests = sorted(await self._r.smembers(keys.DEVICES))
        matches: list[tuple[str, Device]] = []
        for digest in digests:
            data = await self._r.hgetall(keys.device(digest))
            names = (data.get("id"), data.get("name")) if by_name else (data.get("id"),)
            if data and id_or_name in names:
                matches.append((digest, _device(data)))
        by_id = [m for m in matches if m[1].id == id_or_name]
        active = [m for m in matches if not m[1].revoked_at]
        chosen = by_id or active
        if not chosen:
            if matches:
                raise Conflict(f"kiosk {id_or_name!r} is already revoked")
            raise NotFound(f"no kiosk has the id or name {id_or_name!r}")
        if len(chosen) > 1:
            ids = ", ".join(m[1].id for m in chosen)
            raise Conflict(f"{len(chosen)} active kiosks are named {id_or_name!r}: give the id "
                           f"({ids})")
        digest, device = chosen[0]
        if device.revoked_at:
            raise Conflict(f"kiosk {device.id} is already revoked")
        now = int(time.time())
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.device(digest), "revoked_at", now)
            pipe.sadd(keys.DEVICES_REVOKED, device.id)
            await pipe.execute()
        return Device(device.id, device.name, device.clinic, device.created_at, now)
