"""Reports on reading requests and consult opinions: the workflow (issue #10 items 2–4), no HTTP.

    create (draft, status preliminary) ─ autosave … ─ sign ─▶ v1 final
    amend(reason) ─ draft v2 ─ autosave … ─ sign ─▶ v2 amended|corrected (supersedes v1)
    retract(reason) ─▶ vN entered-in-error (supersedes vN-1)

Who may write: a reading report's draft and its first signature belong to the expert holding
the reading request's claim (server/clinical/worklist.py, `holder`); a consult opinion to the
expert who accepted the consult; an amendment or withdrawal to the signer of the version it
supersedes. Every version is written to its file and fsync'd (server/clinical/report_files.py)
before it is indexed in Redis and acknowledged. A signed version is delivered live to the
clinic (notifications, kinds report.final / report.amended / opinion.final) and, for a reading
report, completes the reading request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pydicom

from media.imaging.report_sr import SrReport, build_sr, sr_uids
from server.auth import access
from server.auth.principal import Principal
from server.clinical import report_files
from server.clinical.report_model import (
    ECG,
    KEY_IMAGES,
    MAX_REASON_CHARS,
    REVISIONS,
    ContentError,
    Kind,
    Report,
    Status,
    Subject,
    Version,
    clean_content,
    clean_text,
    ecg_prefill,
    empty_content,
    missing_for_signing,
    new_id,
    normalize_code,
)
from server.config import Settings
from server.errors import Conflict, Forbidden, InvalidParameter, NotFound
from server.ingest import Ingestor
from server.log import event
from server.store import Store
from server.store.consults import ConsultState
from server.store.directory import Role
from server.store.reports import DraftConflict

log = logging.getLogger(__name__)


class DraftStale(Conflict):
    """The draft was saved meanwhile (another tab or device): reload it."""

    code = "draft_stale"


class ReadingClaims(Protocol):
    """What reports need of the worklist (server/clinical/worklist.py, WorklistService)."""

    async def holder(self, item_id: str) -> str | None: ...

    async def item(self, item_id: str) -> Any: ...

    async def touch(self, item_id: str, username: str) -> bool: ...

    async def complete(self, item_id: str, username: str, report_id: str = "") -> Any: ...


NotifierGetter = Callable[[], Any]


@dataclass(frozen=True)
class Viewed:
    """A report as one principal may see it."""

    report: Report
    via: str
    editor: bool  # may write its draft / amend it

    def public(self) -> dict[str, Any]:
        data = self.report.public(with_draft=self.editor)
        data["may_edit"] = self.editor
        return data


class ReportService:
    def __init__(self, settings: Settings, store: Store, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.root: Path = settings.dicom_dir
        self.claims: ReadingClaims | None = None
        self._notifier: NotifierGetter = lambda: None
        self._locks: dict[str, asyncio.Lock] = {}
        self.ingestor: Ingestor | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def start(self, claims: ReadingClaims | None, notifier: NotifierGetter,
              ingestor: Ingestor | None = None) -> None:
        self.claims = claims
        self._notifier = notifier
        self.ingestor = ingestor

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let SR write-backs in flight finish (bounded), then stop."""
        pending = list(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout_s)
            for task in late:
                task.cancel()

    def _spawn(self, coro: Any, what: str, report_id: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception(what, extra={"fields": {"report": report_id}})

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # SR write-back -------------------------------------------------------------------------------
    async def write_sr(self, version: Version) -> str | None:
        """Store the version as a DICOM Enhanced SR into its study (the study's own clinic).
        Returns the SR's SOP Instance UID, None when there is no study to write into."""
        s = version.subject
        if self.ingestor is None or not s.study_uid:
            return None
        records = await self.store.studies.instances(s.clinic, s.study_uid)
        series_uid, _ = sr_uids(version.report_id, version.version)
        records = [r for r in records if r.series_uid != series_uid]
        if not records:
            return None
        wanted = {k["sop_uid"] for k in version.content.get(KEY_IMAGES) or []}
        evidence = [r for r in records if r.sop_uid in wanted] or records[:1]
        department = await self.store.directory.get_department(s.department)
        sr = await self._run(self._build_sr, version, evidence,
                             department.name if department else s.department)
        result = await self.ingestor.store_datasets(s.clinic, [sr], study_uid=s.study_uid)
        if result.failed:
            raise RuntimeError(f"SR refused by ingest: {result.failed[0].message}")
        event(log, "report_sr_stored", report=version.report_id, version=version.version,
              sop=sr.SOPInstanceUID)
        return str(sr.SOPInstanceUID)

    def _build_sr(self, version: Version, evidence: list[Any], department: str) -> Any:
        datasets = [pydicom.dcmread(self.root / r.path, stop_before_pixels=True)
                    for r in evidence]
        by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
        c = version.content
        key_images = tuple((str(by_uid[k["sop_uid"]].SOPClassUID), k["sop_uid"],
                            int(k.get("frame") or 1))
                           for k in c.get(KEY_IMAGES) or [] if k["sop_uid"] in by_uid)
        opinion = version.kind is Kind.OPINION
        recommendation = (c.get("follow_up", "") + ("\n\nReferral recommended / 建议转诊"
                                                     if c.get("refer") else "")
                          if opinion else c.get("recommendation", ""))
        return build_sr(SrReport(
            report_id=version.report_id, version=version.version, opinion=opinion,
            findings=c.get("findings", ""),
            impression=c.get("advice", "") if opinion else c.get("impression", ""),
            recommendation=recommendation.strip(), signer_name=version.signer_name,
            signed_at=version.signed_at, institution=self.settings.institution,
            department=department, key_images=key_images, supersedes=version.supersedes),
            datasets)

    # reading -------------------------------------------------------------------------------------
    async def view(self, who: Principal, report_id: str) -> Viewed:
        report = await self.store.reports.get(report_id) if _is_id(report_id) else None
        if report is None:
            raise NotFound("no such report")
        editor = await self._editor(report)
        involved = who.username in {report.author, editor, *(v.signer for v in report.versions)}
        grants = (await self.store.grants.of_user(who.username, study_uid=report.subject.study_uid)
                  if report.subject.study_uid and who.role is not Role.DOCTOR else [])
        via = access.report_reader(who, clinic=report.subject.clinic,
                                   study_uid=report.subject.study_uid, involved=involved,
                                   grants=grants)
        is_editor = who.role is Role.EXPERT and editor == who.username
        if not report.versions and not is_editor and not involved:
            raise NotFound("no such report")  # nothing signed yet: only its writer sees it
        return Viewed(report, via, is_editor)

    async def signed_version(self, who: Principal, report_id: str, number: int | None
                             ) -> tuple[Viewed, Version]:
        viewed = await self.view(who, report_id)
        report = viewed.report
        version = report.current if number is None else report.version(number)
        if version is None:
            raise NotFound("no such signed version of this report")
        return viewed, version

    async def listing(self, who: Principal, limit: int, offset: int) -> dict[str, Any]:
        kind, scope = access.report_list_scope(who)
        if kind == "clinic":
            ids, total = await self.store.reports.of_clinic(scope, limit, offset)
        else:
            ids, total = await self.store.reports.of_author(scope, limit, offset)
        items = []
        for rid in ids:
            report = await self.store.reports.get(rid)
            if report is None:
                continue
            if kind == "clinic" and (report.subject.clinic != scope or not report.versions):
                continue
            items.append(_summary(report))
        out: dict[str, Any] = {"reports": items, "total": total, "limit": limit,
                               "offset": offset}
        if kind == "author" and who.role is Role.EXPERT:
            out["opinions_pending"] = await self.opinions_pending(who)
        return out

    async def opinions_pending(self, who: Principal) -> list[dict[str, Any]]:
        """Consults this expert accepted that ended without a signed opinion (newest first)."""
        consults = [c for c in await self.store.consults.of_user(who.username, 100, 0)
                    if c.accepted_by == who.username
                    and c.state in (ConsultState.ENDED, ConsultState.ACCEPTED)]
        reports = await self.store.reports.for_consults([c.id for c in consults])
        pending = []
        for c in consults:
            rid = reports.get(c.id)
            report = await self.store.reports.get(rid) if rid else None
            if report is not None and report.versions:
                continue
            if c.state is ConsultState.ACCEPTED and not c.ended_at:
                continue  # still live: its opinion comes at the end
            pending.append({"consult_id": c.id, "clinic": c.clinic, "clinic_name": c.clinic_name,
                            "patient_name": c.patient_name, "question": c.question,
                            "ended_at": c.ended_at, "report_id": rid or None,
                            "has_draft": report is not None and report.draft is not None})
        return pending

    # writing -------------------------------------------------------------------------------------
    async def create(self, who: Principal, kind: Kind, ref: str) -> Viewed:
        """The report of a reading request or consult, created as an empty draft if none
        exists yet (idempotent: the same report again)."""
        access.require_role(who, Role.EXPERT)
        if kind is Kind.READING:
            subject, editor = await self._reading_subject(ref)
            # Who may not see the request is told it does not exist (404, not 403).
            access.check_work_item(who, subject.clinic, subject.department)
            existing = await self.store.reports.for_request(ref)
        else:
            subject, editor = await self._consult_subject(ref)
            existing = await self.store.reports.for_consult(ref)
            if existing is None and who.username != editor:
                raise NotFound("no such consult")
        if existing is None:
            access.require_report_editor(who, editor)
            content = empty_content(kind)
            if kind is Kind.READING and subject.study_uid:
                prefill = ecg_prefill(await self.study_ecg(subject.clinic, subject.study_uid))
                if prefill is not None:  # an ECG study: the ECG template, from the device
                    content[ECG] = prefill
            draft = Version(report_id=new_id(), kind=kind, version=1, status=Status.PRELIMINARY,
                            subject=subject, author=who.username, content=content,
                            created_at=time.time(), updated_at=time.time())
            rid = await self.store.reports.create(draft)
            if rid == draft.report_id:
                await self._run(report_files.write_draft, self.root, draft)
                event(log, "report_created", report=rid, kind=kind.value)
            existing = rid
        return await self.view(who, existing)

    async def study_ecg(self, clinic: str, study_uid: str) -> dict[str, Any] | None:
        """What the index holds of the study's ECG (the first ECG instance, with its
        series/sop UIDs and file path), or None when the study holds none."""
        for record in await self.store.studies.instances(clinic, study_uid):
            if record.ecg is not None:
                return {**record.ecg, "series_uid": record.series_uid,
                        "sop_uid": record.sop_uid, "path": record.path}
        return None

    async def save_draft(self, who: Principal, report_id: str, revision: int,
                         content: dict[str, Any]) -> Version:
        async with self._lock(report_id):
            report, draft = await self._own_draft(who, report_id)
            try:
                cleaned = clean_content(report.kind, content)
            except ContentError as exc:
                raise InvalidParameter(str(exc)) from exc
            saved = replace(draft, content=cleaned, revision=revision + 1,
                            updated_at=time.time())
            try:
                await self.store.reports.save_draft(saved, revision)
            except DraftConflict as exc:
                raise DraftStale("the draft was saved elsewhere meanwhile: reload it",
                                 revision=exc.revision) from None
            await self._run(report_files.write_draft, self.root, saved)
        if report.kind is Kind.READING and self.claims is not None:
            await self.claims.touch(report.subject.reading_request_id, who.username)
        return saved

    async def sign(self, who: Principal, report_id: str, revision: int) -> Version:
        """Sign the open draft as it stands at `revision` (what the signer saw)."""
        async with self._lock(report_id):
            report, draft = await self._own_draft(who, report_id)
            if draft.revision != revision:
                raise DraftStale("the draft changed since you saw it: review it, then sign",
                                 revision=draft.revision)
            missing = missing_for_signing(report.kind, draft.content)
            if missing:
                raise InvalidParameter(f"fill in {', '.join(missing)} before signing",
                                       missing=missing)
            signed = await self._sign(who, report, draft)
        await self._delivered(who, report, signed)
        return signed

    async def amend(self, who: Principal, report_id: str, reason: str, status: Status
                    ) -> Version:
        """Open a draft that will supersede the current version (as `status`)."""
        if status not in REVISIONS:
            raise InvalidParameter("an amendment is 'amended' or 'corrected'")
        reason = _reason(reason)
        async with self._lock(report_id):
            report = await self._require(report_id)
            current = self._current_for_change(who, report)
            draft = Version(report_id=report.id, kind=report.kind, version=current.version + 1,
                            status=Status.PRELIMINARY, target=status, subject=report.subject,
                            author=who.username, content=dict(current.content),
                            created_at=time.time(), updated_at=time.time(),
                            supersedes=current.version, reason=reason)
            if not await self.store.reports.start_draft(draft):
                raise Conflict("an amendment of this report is already open")
            await self._run(report_files.write_draft, self.root, draft)
        return draft

    async def retract(self, who: Principal, report_id: str, reason: str) -> Version:
        """Withdraw the report: a last signed version `entered-in-error`."""
        reason = _reason(reason)
        async with self._lock(report_id):
            report = await self._require(report_id)
            current = self._current_for_change(who, report)
            if report.draft is not None:
                raise Conflict("close the open amendment first (sign it) before withdrawing")
            draft = Version(report_id=report.id, kind=report.kind, version=current.version + 1,
                            status=Status.PRELIMINARY, target=Status.ENTERED_IN_ERROR,
                            subject=report.subject, author=who.username,
                            content=dict(current.content), created_at=time.time(),
                            updated_at=time.time(), supersedes=current.version, reason=reason)
            signed = await self._sign(who, report, draft)
        await self._delivered(who, report, signed)
        return signed

    # verification --------------------------------------------------------------------------------
    async def verify(self, code: str) -> dict[str, Any] | None:
        """What `GET /verify/{code}` shows: authenticity and currency, no patient data."""
        canonical = normalize_code(code)
        if canonical is None:
            return None
        target = await self.store.reports.by_code(canonical)
        if target is None:
            return None
        report = await self.store.reports.get(target.report_id)
        version = report.version(target.version) if report else None
        if report is None or version is None:
            return None
        current = report.current
        assert current is not None
        department = await self.store.directory.get_department(report.subject.department)
        return {
            "code": canonical,
            "authentic": version.intact(),
            "kind": report.kind.value,
            "institution": self.settings.institution,
            "department": department.name if department else report.subject.department,
            "version": version.version,
            "status": version.status.value,
            "signer_name": version.signer_name,
            "signed_at": version.signed_at,
            "signature": version.signature,
            "current": current.version == version.version,
            "superseded_by": report.superseded_by(version.version),
            "current_version": current.version,
            "current_status": current.status.value,
            "withdrawn": current.status is Status.ENTERED_IN_ERROR,
        }

    # internals -----------------------------------------------------------------------------------
    async def _sign(self, who: Principal, report: Report, draft: Version) -> Version:
        user = await self.store.directory.get_user(who.username)
        signed = draft.sign(who.username, user.display_name if user else who.username)
        if not await self._run(report_files.write_signed, self.root, signed):
            # Signed already (another request or node won the file): that file is the version.
            existing = await self._run(report_files.read_signed, self.root, report.subject,
                                       report.id, draft.version)
            await self.store.reports.index_signed(existing)
            raise Conflict("this version was signed already", version=existing.version,
                           signer=existing.signer)
        await self.store.reports.index_signed(signed)
        await self._run(report_files.remove_draft, self.root, report.subject, report.id)
        event(log, "report_signed", report=report.id, version=signed.version,
              status=signed.status.value)
        return signed

    async def _delivered(self, who: Principal, report: Report, signed: Version) -> None:
        """After the signature is durable: the reading request completes, the clinic is told,
        the SR goes into the study. Failures here are logged; the signature stands."""
        s = report.subject
        if (report.kind is Kind.READING and signed.version == 1 and self.claims is not None
                and s.reading_request_id):
            try:
                await self.claims.complete(s.reading_request_id, who.username, report.id)
            except Exception:
                log.exception("report_complete_request_failed",
                              extra={"fields": {"report": report.id}})
        notifier = self._notifier()
        if notifier is not None:
            from server.notifications import Audience

            kind = ("opinion.final" if report.kind is Kind.OPINION
                    else "report.final" if signed.version == 1 else "report.amended")
            users = []
            if report.kind is Kind.OPINION and s.consult_id:
                consult = await self.store.consults.get(s.consult_id)
                users = [consult.doctor] if consult else []
            await notifier.notify(Audience.of(clinics=[s.clinic], users=users), kind, {
                "report_id": report.id, "version": signed.version,
                "status": signed.status.value, "kind": report.kind.value,
                "study_uid": s.study_uid, "consult_id": s.consult_id,
                "reading_request_id": s.reading_request_id, "patient_name": s.patient_name,
                "signer_name": signed.signer_name, "signed_at": signed.signed_at,
                "critical": bool(signed.content.get("critical")),
            }, exclude=who.username)
        # The signed file is the record; the SR is its copy for PACS, written after the answer
        # (header reads, highdicom, ingest: not on the signer's wait; failures logged).
        self._spawn(self.write_sr(signed), "report_sr_failed", report.id)

    async def _require(self, report_id: str) -> Report:
        report = await self.store.reports.get(report_id) if _is_id(report_id) else None
        if report is None:
            raise NotFound("no such report")
        return report

    async def _own_draft(self, who: Principal, report_id: str) -> tuple[Report, Version]:
        report = await self._require(report_id)
        editor = await self._editor(report)
        if report.draft is None:
            if who.username == editor or who.username in {v.signer for v in report.versions}:
                raise Conflict("this report has no open draft (it is signed): amend it")
            raise NotFound("no such report")
        try:
            access.require_report_editor(who, editor)
        except Forbidden:
            involved = who.username in {report.author, *(v.signer for v in report.versions)}
            if not involved:
                raise NotFound("no such report") from None
            raise
        return report, report.draft

    def _current_for_change(self, who: Principal, report: Report) -> Version:
        current = report.current
        if current is None:
            raise Conflict("the report is not signed yet: sign it first")
        if current.status is Status.ENTERED_IN_ERROR:
            raise Conflict("the report was withdrawn (entered in error)")
        access.require_report_editor(who, current.signer)
        return current

    async def _editor(self, report: Report) -> str | None:
        """Who may write the report's open draft now."""
        if report.draft is None:
            return None
        if report.draft.version > 1:
            return report.draft.author  # an amendment: its signer-to-be opened it
        s = report.subject
        if report.kind is Kind.READING:
            if self.claims is None:
                return None
            return await self.claims.holder(s.reading_request_id)
        consult = await self.store.consults.get(s.consult_id)
        return consult.accepted_by if consult else None

    async def _reading_subject(self, request_id: str) -> tuple[Subject, str | None]:
        if self.claims is None or not _is_ref(request_id):
            raise NotFound("no such reading request")
        item = await self.claims.item(request_id)
        if item is None:
            raise NotFound("no such reading request")
        subject = Subject(
            clinic=item.clinic, clinic_name=item.clinic_name, study_uid=item.study_uid,
            patient_name=item.patient_name, patient_id=item.patient_id,
            department=item.department, reading_request_id=request_id,
            study_description=getattr(item, "study_description", ""))
        return subject, await self.claims.holder(request_id)

    async def _consult_subject(self, consult_id: str) -> tuple[Subject, str | None]:
        consult = await self.store.consults.get(consult_id) if _is_ref(consult_id) else None
        if consult is None or not consult.accepted_by:
            raise NotFound("no such consult")
        subject = Subject(
            clinic=consult.clinic, clinic_name=consult.clinic_name, study_uid=consult.study_uid,
            patient_name=consult.patient_name, patient_id=consult.patient_id,
            department=consult.department, consult_id=consult_id)
        return subject, consult.accepted_by

    def _lock(self, report_id: str) -> asyncio.Lock:
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(report_id, asyncio.Lock())

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # reindex -------------------------------------------------------------------------------------
    async def reindex(self) -> tuple[int, int]:
        """Rebuild the report index from the files. Returns (reports, unreadable)."""
        await self.store.reports.clear()
        loop = asyncio.get_running_loop()
        dirs = await loop.run_in_executor(self.executor, lambda: list(report_files.walk(self.root)))
        indexed = bad = 0
        for directory in dirs:
            try:
                report = await loop.run_in_executor(self.executor, report_files.read_dir,
                                                    directory)
            except report_files.ReportFileError as exc:
                bad += 1
                event(log, "reindex_report_unreadable", logging.WARNING, path=directory,
                      error=str(exc))
                continue
            for v in report.versions:
                if not v.intact():
                    event(log, "reindex_report_signature_mismatch", logging.WARNING,
                          report=v.report_id, version=v.version)
                await self.store.reports.index_signed(v)
            if report.draft is not None:
                await self.store.reports.index_draft(report.draft)
            await self.store.reports.index_mapping(report)
            indexed += 1
        return indexed, bad


async def opinion_states(store: Store, consult_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For the consult history: the signed opinion of each consult that has one."""
    found = await store.reports.for_consults(consult_ids)
    out: dict[str, dict[str, Any]] = {}
    for consult_id, rid in found.items():
        report = await store.reports.get(rid)
        if report is None or report.current is None:
            continue
        current = report.current
        out[consult_id] = {"report_id": rid, "status": current.status.value,
                           "version": current.version, "signed_at": current.signed_at,
                           "signer_name": current.signer_name,
                           "refer": bool(current.content.get("refer"))}
    return out


def _summary(report: Report) -> dict[str, Any]:
    current = report.current
    return {"id": report.id, "kind": report.kind.value, "status": report.status.value,
            "subject": report.subject.to_json(),
            "current_version": current.version if current else None,
            "signed_at": current.signed_at if current else "",
            "signer_name": current.signer_name if current else "",
            "critical": bool(current and current.content.get("critical")),
            "has_draft": report.draft is not None}


def _reason(reason: str) -> str:
    try:
        text = clean_text(reason, "reason", MAX_REASON_CHARS).strip()
    except ContentError as exc:
        raise InvalidParameter(str(exc)) from exc
    if len(text) < 4:
        raise InvalidParameter("say why (at least 4 characters): it is part of the record")
    return text


def _is_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def _is_ref(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isascii() and all(
        c.isalnum() or c in "-_." for c in value)
