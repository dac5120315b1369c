"""Every Redis key Huizhen writes, in one place.

Keys of one study (and later one room) share a hash tag, `{study:UID}`, so they stay in one slot
when the deployment moves to Redis Cluster.
"""

from __future__ import annotations

PREFIX = "hz"


def clinic(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}"


CLINICS = f"{PREFIX}:clinics"


def department(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}"


DEPARTMENTS = f"{PREFIX}:departments"


def user(username: str) -> str:
    return f"{PREFIX}:user:{username}"


USERS = f"{PREFIX}:users"


def device(token_digest: str) -> str:
    return f"{PREFIX}:device:{token_digest}"


DEVICES = f"{PREFIX}:devices"


def login_failures(username: str) -> str:
    return f"{PREFIX}:login-failures:{username}"


def study(study_uid: str) -> str:
    return f"{PREFIX}:{{study:{study_uid}}}:study"


def study_series(study_uid: str) -> str:
    return f"{PREFIX}:{{study:{study_uid}}}:series"


def study_instances(study_uid: str) -> str:
    return f"{PREFIX}:{{study:{study_uid}}}:instances"


def series_stack(study_uid: str, series_uid: str) -> str:
    return f"{PREFIX}:{{study:{study_uid}}}:stack:{series_uid}"


STUDIES = f"{PREFIX}:studies"


def clinic_studies(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:studies"


AUDIT = f"{PREFIX}:audit"
