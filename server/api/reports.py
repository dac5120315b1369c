"""Reports and consult opinions over HTTP (thin: the workflow is server/clinical/reports.py,
who may do what is server/auth/access.py), their paper forms, and the public `/verify/{code}`.

    GET  /api/reports                          the caller's list (+ opinions pending, experts)
    POST /api/reports                          open the report of a reading request / consult
    GET  /api/reports/{id}                     the report: signed versions (+ draft for its writer)
    PUT  /api/reports/{id}/draft               autosave {revision, content}
    POST /api/reports/{id}/sign                {revision}
    POST /api/reports/{id}/amend               {reason, status: amended|corrected}
    POST /api/reports/{id}/retract             {reason}
    GET  /api/reports/{id}/document|pdf|fhir   a signed version (?version=N&lang=en|zh)
    GET  /api/verify/{code}, GET /verify/{code}   public, rate-limited: authentic? current?
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from media.ecg import tracing as ecg_tracing
from media.imaging.errors import ImagingError
from media.imaging.window import Window
from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.auth.principal import Principal
from server.clinical.report_model import ECG, KEY_IMAGES, Kind, Status, Version
from server.clinical.report_output import diagnostic_report, document, fhir_date
from server.clinical.reports import ReportService, Viewed
from server.dicomweb.resources import audit
from server.documents import Document, DocumentError, render_pdf_async
from server.errors import InvalidParameter, NotFound, TooManyRequests
from server.log import event
from server.params import parse_int
from server.store.login_limits import address_bucket

log = logging.getLogger(__name__)

SERVICE: web.AppKey[ReportService] = web.AppKey("reports", ReportService)
MAX_LIMIT = 100
KEY_IMAGE_VIEWPORT = (768, 768)


class CreateReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["reading", "opinion"]
    reading_request_id: str | None = Field(default=None, min_length=1, max_length=64)
    consult_id: str | None = Field(default=None, min_length=1, max_length=64)


class SaveDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int = Field(ge=0, le=10**9)
    content: dict[str, Any]


class SignDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int = Field(ge=0, le=10**9)


class Amend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=4000)
    status: Literal["amended", "corrected"] = "amended"


class Retract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=4000)


def _service(request: web.Request) -> ReportService:
    return request.app[SERVICE]


def _who(request: web.Request) -> Principal:
    return principal(request)


def _report_id(request: web.Request) -> str:
    value = request.match_info["report_id"]
    if not (len(value) == 16 and all(c in "0123456789abcdef" for c in value)):
        raise NotFound("no such report")
    return value


def _version_param(request: web.Request) -> int | None:
    raw = request.query.get("version")
    return None if raw is None else parse_int(raw, "version", minimum=1, maximum=100_000)


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang", "zh")
    if lang not in ("en", "zh"):
        raise InvalidParameter("lang must be en or zh")
    return lang


async def _audit_view(request: web.Request, action: str, viewed: Viewed,
                      version: int | None = None) -> None:
    s = viewed.report.subject
    await audit(request, action, report=viewed.report.id, version=version,
                study=s.study_uid or None, study_clinic=s.clinic, via=viewed.via,
                consult=s.consult_id or None, item=s.reading_request_id or None)


async def list_reports(request: web.Request) -> web.Response:
    limit = parse_int(request.query.get("limit", "20"), "limit", minimum=1, maximum=MAX_LIMIT)
    offset = parse_int(request.query.get("offset", "0"), "offset", maximum=100_000)
    page = await _service(request).listing(_who(request), limit, offset)
    await audit(request, "reports.list", count=len(page["reports"]), offset=offset)
    return web.json_response(page)


async def create_report(request: web.Request) -> web.Response:
    body = await read_json(request, CreateReport)
    kind = Kind(body.kind)
    ref = body.reading_request_id if kind is Kind.READING else body.consult_id
    if not ref:
        raise InvalidParameter("a reading report names its reading_request_id, an opinion its "
                               "consult_id")
    viewed = await _service(request).create(_who(request), kind, ref)
    await _audit_view(request, "report.open", viewed)
    return web.json_response(viewed.public())


async def get_report(request: web.Request) -> web.Response:
    viewed = await _service(request).view(_who(request), _report_id(request))
    await _audit_view(request, "report.view", viewed)
    data = viewed.public()
    # Critical values raised on it: who was told, when, the read-back (server/clinical/alerts.py)
    data["communication"] = await request.app[appkeys.ALERTS].communication(viewed.report.id)
    return web.json_response(data)


async def save_draft(request: web.Request) -> web.Response:
    rid = _report_id(request)
    body = await read_json(request, SaveDraft)
    draft = await _service(request).save_draft(_who(request), rid, body.revision, body.content)
    await audit(request, "report.draft", report=rid, version=draft.version,
                revision=draft.revision, study=draft.subject.study_uid or None,
                study_clinic=draft.subject.clinic)
    return web.json_response(draft.public())


async def sign(request: web.Request) -> web.Response:
    rid = _report_id(request)
    body = await read_json(request, SignDraft)
    signed = await _service(request).sign(_who(request), rid, body.revision)
    await _audit_signed(request, "report.sign", signed)
    return web.json_response(signed.public())


async def amend(request: web.Request) -> web.Response:
    rid = _report_id(request)
    body = await read_json(request, Amend)
    draft = await _service(request).amend(_who(request), rid, body.reason, Status(body.status))
    await audit(request, "report.amend", report=rid, version=draft.version,
                supersedes=draft.supersedes, status=draft.target.value, reason=draft.reason,
                study=draft.subject.study_uid or None, study_clinic=draft.subject.clinic)
    return web.json_response(draft.public())


async def retract(request: web.Request) -> web.Response:
    rid = _report_id(request)
    body = await read_json(request, Retract)
    signed = await _service(request).retract(_who(request), rid, body.reason)
    await _audit_signed(request, "report.retract", signed)
    return web.json_response(signed.public())


async def _audit_signed(request: web.Request, action: str, signed: Version) -> None:
    await audit(request, action, report=signed.report_id, version=signed.version,
                status=signed.status.value, signature=signed.signature,
                supersedes=signed.supersedes, study=signed.subject.study_uid or None,
                study_clinic=signed.subject.clinic)


async def _document(request: web.Request, action: str) -> Document:
    service = _service(request)
    viewed, version = await service.signed_version(_who(request), _report_id(request),
                                                   _version_param(request))
    lang = _lang(request)
    gain = _gain(request)
    settings = request.app[appkeys.SETTINGS]
    department = await request.app[appkeys.STORE].directory.get_department(
        version.subject.department)
    images = await _key_images(request, version)
    # Who was told of a critical value raised on it, when, the read-back (server/clinical/
    # alerts.py): printed with the report, as the critical-value rules ask.
    communication = await request.app[appkeys.ALERTS].communication(viewed.report.id)
    tracing = await _tracing(request, version, gain)
    doc = document(viewed.report, version, lang=lang, institution=settings.institution,
                   department_name=department.name if department else version.subject.department,
                   images=images, public_url=settings.public_url, communication=communication,
                   tracing=tracing)
    await _audit_view(request, action, viewed, version.version)
    return doc


def _gain(request: web.Request) -> float:
    """`?gain=` mm/mV of the printed tracing: 10 (standard), or 5 / 20 as the reader chose."""
    text = request.query.get("gain", "10")
    gains = {f"{g:g}": g for g in ecg_tracing.GAINS}
    if text not in gains:
        raise InvalidParameter(f"gain must be one of {', '.join(gains)} (mm/mV)")
    return gains[text]


async def _tracing(request: web.Request, version: Version,
                   gain: float) -> ecg_tracing.Sheets | None:
    """The ECG sheets at true scale (media/ecg/tracing.py, thread pool: rhythm with calibration
    pulses, median beats when present) of an ECG report's study, or None (no ECG template, no
    ECG in the study, or it cannot be read)."""
    s = version.subject
    if not version.content.get(ECG) or not s.study_uid:
        return None
    found = await _service(request).study_ecg(s.clinic, s.study_uid)
    if found is None:
        return None
    path = str(request.app[appkeys.SETTINGS].dicom_dir / found["path"])
    try:
        tracing = await asyncio.get_running_loop().run_in_executor(
            request.app[appkeys.EXECUTOR], ecg_tracing.render_file, path, gain)
    except (OSError, ValueError, ImagingError) as exc:
        event(log, "report_tracing_failed", logging.WARNING, report=version.report_id,
              error=type(exc).__name__)
        return None
    return tracing


async def _key_images(request: web.Request, version: Version) -> list[tuple[bytes, str]]:
    """The version's key images rendered by the one renderer (thread pool), as PNG."""
    s = version.subject
    refs = version.content.get(KEY_IMAGES) or []
    if not refs or not s.study_uid:
        return []
    store = request.app[appkeys.STORE]
    renderer = request.app[appkeys.RENDERER]
    dicom_dir = request.app[appkeys.SETTINGS].dicom_dir

    async def one(ref: dict[str, Any]) -> tuple[bytes, str] | None:
        record = await store.studies.instance(s.clinic, s.study_uid, ref["sop_uid"])
        if record is None or record.series_uid != ref["series_uid"]:
            return None
        window = (Window(float(ref["center"]), float(ref["width"]))
                  if ref.get("center") is not None else None)
        try:
            image = await renderer.render(dicom_dir / record.path, int(ref.get("frame") or 1),
                                          window=window, viewport=KEY_IMAGE_VIEWPORT,
                                          media_type="image/png")
        except (ImagingError, FileNotFoundError) as exc:
            event(log, "report_key_image_failed", logging.WARNING, report=version.report_id,
                  sop=ref["sop_uid"], error=type(exc).__name__)
            return None
        return image.content, ref.get("caption") or ""

    rendered = await asyncio.gather(*(one(r) for r in refs))
    return [r for r in rendered if r is not None]


async def report_document(request: web.Request) -> web.Response:
    doc = await _document(request, "report.document")
    return web.json_response(doc.to_json())


async def report_pdf(request: web.Request) -> web.Response:
    doc = await _document(request, "report.pdf")
    try:
        pdf = await render_pdf_async(doc, request.app[appkeys.EXECUTOR])
    except DocumentError as exc:
        raise InvalidParameter(f"the PDF cannot be made: {exc}") from exc
    rid = _report_id(request)
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="report-{rid}.pdf"',
        "Cache-Control": "no-store"})


async def _study_date(request: web.Request, version: Version) -> str | None:
    """The study's date (and time where its zone is known) as a FHIR dateTime: the report's
    effectiveDateTime. None without a study, or once the study has left the index."""
    s = version.subject
    if not s.study_uid:
        return None
    record = await request.app[appkeys.STORE].studies.study(s.clinic, s.study_uid)
    if record is None:
        return None

    def first(tag: str) -> str | None:
        value = (record.attrs.get(tag) or {}).get("Value") or [None]
        return value[0] if isinstance(value[0], str) else None

    return fhir_date(first("00080020"), first("00080030"), first("00080201"))


async def report_fhir(request: web.Request) -> web.Response:
    service = _service(request)
    viewed, version = await service.signed_version(_who(request), _report_id(request),
                                                   _version_param(request))
    settings = request.app[appkeys.SETTINGS]
    pdf_url = (f"{settings.public_url or ''}/api/reports/{viewed.report.id}/pdf"
               f"?version={version.version}")
    resource = diagnostic_report(viewed.report, version, institution=settings.institution,
                                 pdf_url=pdf_url, effective=await _study_date(request, version))
    await _audit_view(request, "report.fhir", viewed, version.version)
    return web.json_response(resource, content_type="application/fhir+json")


# /verify ------------------------------------------------------------------------------------------
async def _verified(request: web.Request) -> dict[str, Any] | None:
    settings = request.app[appkeys.SETTINGS]
    store = request.app[appkeys.STORE]
    allowed, retry = await store.reports.verify_attempt(
        address_bucket(request.remote), settings.verify_per_window, settings.verify_window_s)
    code = request.match_info["code"][:40]
    if not allowed:
        await store.audit.record(action="verify.limited", user="", role="public", clinic=None,
                                 remote=request.remote)
        raise TooManyRequests("too many verification lookups from this address: wait a little",
                              retry_after_s=retry)
    result = await _service(request).verify(code)
    await store.audit.record(action="verify.lookup", user="", role="public", clinic=None,
                             remote=request.remote, code=code, found=int(result is not None),
                             report=None if result is None else result.get("report_id"))
    return result


async def verify_json(request: web.Request) -> web.Response:
    result = await _verified(request)
    if result is None:
        raise NotFound("no report has this verification code")
    return web.json_response(result)


async def verify_page(request: web.Request) -> web.Response:
    try:
        result = await _verified(request)
    except TooManyRequests as exc:
        return _page(429, "Too many lookups · 查询过于频繁",
                     "<p>Wait a few minutes, then try again. 请稍后再试。</p>",
                     {"Retry-After": str(exc.details.get("retry_after_s", 60))})
    if result is None:
        return _page(404, "Not found · 未找到",
                     "<p data-testid='verify-unknown'>No report has this verification code. "
                     "Check the code on the paper.<br>"
                     "没有与此验证码对应的报告，请核对纸面上的验证码。</p>")
    ok = result["authentic"] and result["current"] and not result["withdrawn"]
    verdict = ("Authentic and current · 真实有效（现行版本）" if ok else
               "Withdrawn · 已撤回" if result["withdrawn"] else
               f"Authentic, but superseded by version {result['superseded_by']} · "
               f"真实，但已被第 {result['superseded_by']} 版取代" if result["authentic"] else
               "NOT authentic: the record does not match its signature · 签名不符")
    rows = [
        ("Institution · 机构", result["institution"]),
        ("Department · 科室", result["department"]),
        ("Document · 文书", "Imaging report · 影像诊断报告" if result["kind"] == "reading"
         else "Consultation opinion · 会诊意见"),
        ("Version · 版本", f"{result['version']} ({result['status']})"),
        ("Signed by · 签名医生", result["signer_name"]),
        ("Signed at (UTC) · 签名时间", result["signed_at"]),
        ("Signature SHA-256 · 签名摘要", result["signature"]),
        ("Current version · 现行版本", f"{result['current_version']} "
                                       f"({result['current_status']})"),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    body = (f"<p class='verdict {'ok' if ok else 'bad'}' data-testid='verify-verdict' "
            f"data-state='{'current' if ok else 'not-current'}'>{html.escape(verdict)}</p>"
            f"<table data-testid='verify-details'>{table}</table>"
            "<p class='note'>This page shows no patient data: compare the details with the "
            "paper. 本页不显示患者信息，请与纸质报告核对。</p>")
    return _page(200, "Report verification · 报告验证", body)


def _page(status: int, title: str, body: str, headers: dict[str, str] | None = None
          ) -> web.Response:
    page = ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>"
            "<link rel='stylesheet' href='/ui/css/verify.css'></head><body><main>"
            f"<h1>{html.escape(title)}</h1>{body}</main></body></html>")
    return web.Response(text=page, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", **(headers or {})})


def setup(app: web.Application, service: ReportService) -> None:
    app[SERVICE] = service
    app.router.add_get("/api/reports", list_reports)
    app.router.add_post("/api/reports", create_report)
    app.router.add_get("/api/reports/{report_id}", get_report)
    app.router.add_put("/api/reports/{report_id}/draft", save_draft)
    app.router.add_post("/api/reports/{report_id}/sign", sign)
    app.router.add_post("/api/reports/{report_id}/amend", amend)
    app.router.add_post("/api/reports/{report_id}/retract", retract)
    app.router.add_get("/api/reports/{report_id}/document", report_document)
    app.router.add_get("/api/reports/{report_id}/pdf", report_pdf)
    app.router.add_get("/api/reports/{report_id}/fhir", report_fhir)
    app.router.add_get("/api/verify/{code}", verify_json)
    app.router.add_get("/verify/{code}", verify_page)
