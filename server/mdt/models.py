"""Request bodies of the MDT API (bounded; the rules beyond shape are in scheduling.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Uid = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

MAX_TITLE = 200
MAX_NOTES = 2000
MAX_EXPERTS = 11  # the room holds 12: the coordinator and 11 experts (doctors share the cap)
MAX_CLINICS = 10
MAX_DEPARTMENTS = 10
MAX_CASES = 20
MAX_STUDIES_PER_CASE = 10
MIN_DURATION_MIN = 15
MAX_DURATION_MIN = 8 * 60


class CaseRef(BaseModel):
    """An agenda entry: an existing case of this session (`case_id`) or a proposal to add."""

    model_config = ConfigDict(extra="forbid")

    case_id: Hex | None = None
    proposal_id: Hex | None = None


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    departments: list[Id] = Field(default_factory=list, max_length=MAX_DEPARTMENTS)
    experts: list[Id] = Field(default_factory=list, max_length=MAX_EXPERTS)
    clinics: list[Id] = Field(default_factory=list, max_length=MAX_CLINICS)
    cases: list[CaseRef] = Field(default_factory=list, max_length=MAX_CASES)
    lead_expert: str = Field(default="", max_length=64)
    notes: str = Field(default="", max_length=MAX_NOTES)


class MdtCreate(_Schedule):
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    starts_at: int = Field(ge=0, le=2**40)
    duration_min: int = Field(default=60, ge=MIN_DURATION_MIN, le=MAX_DURATION_MIN)


class MdtChange(BaseModel):
    """Edit or reschedule: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE)
    starts_at: int | None = Field(default=None, ge=0, le=2**40)
    duration_min: int | None = Field(default=None, ge=MIN_DURATION_MIN, le=MAX_DURATION_MIN)
    departments: list[Id] | None = Field(default=None, max_length=MAX_DEPARTMENTS)
    experts: list[Id] | None = Field(default=None, max_length=MAX_EXPERTS)
    clinics: list[Id] | None = Field(default=None, max_length=MAX_CLINICS)
    cases: list[CaseRef] | None = Field(default=None, max_length=MAX_CASES)
    lead_expert: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=MAX_NOTES)


class ConflictQuery(BaseModel):
    """Whom a planned time would double-book (the coordinator's form asks while editing)."""

    model_config = ConfigDict(extra="forbid")

    starts_at: int = Field(ge=0, le=2**40)
    duration_min: int = Field(default=60, ge=MIN_DURATION_MIN, le=MAX_DURATION_MIN)
    experts: list[Id] = Field(default_factory=list, max_length=MAX_EXPERTS)
    clinics: list[Id] = Field(default_factory=list, max_length=MAX_CLINICS)
    exclude: Hex | None = None


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class ConclusionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    diagnosis: str = Field(min_length=1, max_length=4000)
    plan: str = Field(min_length=1, max_length=4000)
    responsible_department: Id
    follow_up_date: str = Field(default="", max_length=10,
                                pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")


class ProposalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    study_uids: list[Uid] = Field(min_length=1, max_length=MAX_STUDIES_PER_CASE)
    reason: str = Field(min_length=1, max_length=2000)
    departments: list[Id] = Field(default_factory=list, max_length=MAX_DEPARTMENTS)
    # Only needed by an expert whose grants name studies of one UID in several clinics.
    clinic: str | None = Field(default=None, max_length=64)
