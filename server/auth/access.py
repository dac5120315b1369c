"""The access policy: the one place that decides who may see which patient data.

A doctor sees only the studies of their own clinic. Experts and coordinators see studies they are
granted; until consult and MDT grants exist every study counts as granted to them. Admins manage
people, not patients, so they see no patient data at all.
"""

from __future__ import annotations

from server.auth.principal import Principal
from server.errors import Forbidden, NotFound
from server.store.directory import Role

_READERS = {Role.DOCTOR, Role.EXPERT, Role.COORDINATOR}


def study_scope(principal: Principal) -> str | None:
    """The clinic a principal's study searches are limited to (None: no clinic limit)."""
    require_patient_reader(principal)
    return principal.clinic if principal.role is Role.DOCTOR else None


def require_patient_reader(principal: Principal) -> None:
    if principal.role not in _READERS:
        raise Forbidden(f"a {principal.role.value} account has no access to patient data")


def can_view_study(principal: Principal, owner_clinic: str) -> bool:
    if principal.role not in _READERS:
        return False
    if principal.role is Role.DOCTOR:
        return principal.clinic == owner_clinic
    return True


def check_study(principal: Principal, owner_clinic: str | None) -> None:
    """404, not 403, for a study one may not see: its existence is itself patient data."""
    require_patient_reader(principal)
    if owner_clinic is None or not can_view_study(principal, owner_clinic):
        raise NotFound("no such study")


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this action is for {allowed} accounts, not {principal.role.value}")


def upload_clinic(principal: Principal) -> str:
    """Which clinic owns what this principal uploads (only clinic doctors upload)."""
    require_role(principal, Role.DOCTOR)
    assert principal.clinic is not None  # doctors always have a clinic (Directory enforces it)
    return principal.clinic


def require_admin(principal: Principal) -> None:
    """Managing clinics, departments, accounts and kiosks (never patient data)."""
    require_role(principal, Role.ADMIN)


def require_directory_reader(principal: Principal) -> None:
    """Departments and their online counts carry no patient data: every signed-in role
    (doctors choose whom to call, experts whom to invite, admins manage them)."""
    if principal.role not in (Role.DOCTOR, Role.EXPERT, Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("this account may not list departments")
