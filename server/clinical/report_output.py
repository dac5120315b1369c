"""A signed report version as paper (a Document of server/documents/) and as a FHIR R4
DiagnosticReport. Pure: the caller supplies the rendered key images and the URLs."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from media.ecg.tracing import Sheets
from server.clinical.report_model import (
    ECG,
    ECG_FIELDS,
    KEY_IMAGES,
    Kind,
    Report,
    Status,
    Version,
    iso_time,
)
from server.documents import DocImage, Document, Section, Verification

TITLES = {
    ("en", Kind.READING): "Imaging report",
    ("zh", Kind.READING): "影像诊断报告",
    ("en", Kind.OPINION): "Consultation opinion",
    ("zh", Kind.OPINION): "会诊意见",
}
FIELD_LABELS = {
    "en": {"findings": "Findings", "impression": "Impression",
           "recommendation": "Recommendation", "advice": "Advice", "follow_up": "Follow-up",
           "critical": "Critical finding", "refer": "Referral recommended",
           "patient": "Patient", "patient_id": "Patient ID", "clinic": "Clinic",
           "study": "Study", "department": "Department", "signer": "Signed by",
           "signed_at": "Signed at (UTC)", "version": "Version", "status": "Status",
           "supersedes": "Supersedes", "reason": "Reason", "signature": "Signature (SHA-256)",
           "yes": "YES", "no": "no", "withdrawn": "WITHDRAWN (entered in error)",
           "superseded": "SUPERSEDED by version {n}: do not use this version",
           "page_note": "Signed electronically in Huizhen; check it at the verification URL.",
           "communication": "Critical value communication",
           "comm_row": "{tier} raised {raised_at} by {raised_by}: {finding}",
           "comm_ack": "acknowledged {at} by {by}, read back: “{read_back}”",
           "comm_unack": "not acknowledged yet ({state})",
           "comm_action": "action taken: {action}",
           "tier.critical": "Critical value", "tier.significant": "Significant finding",
           "ecg": "ECG", "ecg.rhythm": "Rhythm", "ecg.rate": "Rate (/min)", "ecg.pr": "PR (ms)",
           "ecg.qrs": "QRS (ms)", "ecg.qt": "QT (ms)", "ecg.qtc": "QTc (ms)",
           "ecg.axis": "QRS axis (°)", "ecg.p_axis": "P axis (°)",
           "ecg.t_axis": "T axis (°)", "ecg.st_t": "ST-T changes", "ecg.conclusion": "Conclusion",
           "ecg.tracing": "ECG tracing · 25 mm/s · {gain} mm/mV · calibration 1 mV",
           "ecg.medians": "Median beats · 25 mm/s · {gain} mm/mV"},
    "zh": {"findings": "检查所见", "impression": "诊断意见", "recommendation": "建议",
           "advice": "会诊意见", "follow_up": "随访", "critical": "危急值",
           "refer": "建议转诊", "patient": "患者", "patient_id": "患者编号", "clinic": "申请机构",
           "study": "检查", "department": "科室", "signer": "签名医生",
           "signed_at": "签名时间 (UTC)", "version": "版本", "status": "状态",
           "supersedes": "取代版本", "reason": "原因", "signature": "签名 (SHA-256)",
           "yes": "是", "no": "否", "withdrawn": "已撤回（录入错误）",
           "superseded": "已被第 {n} 版取代：请勿使用此版本",
           "page_note": "本报告经会诊 Huizhen 电子签名，可通过验证网址核验。",
           "communication": "危急值通报记录",
           "comm_row": "{tier}：{raised_at} 由 {raised_by} 报告：{finding}",
           "comm_ack": "{at} 由 {by} 确认，复读：“{read_back}”",
           "comm_unack": "尚未确认（{state}）",
           "comm_action": "处理措施：{action}",
           "tier.critical": "危急值", "tier.significant": "重大阳性",
           "ecg": "心电图", "ecg.rhythm": "心律", "ecg.rate": "心率 (次/分)", "ecg.pr": "PR (ms)",
           "ecg.qrs": "QRS (ms)", "ecg.qt": "QT (ms)", "ecg.qtc": "QTc (ms)",
           "ecg.axis": "QRS 电轴 (°)", "ecg.p_axis": "P 电轴 (°)",
           "ecg.t_axis": "T 电轴 (°)", "ecg.st_t": "ST-T 改变", "ecg.conclusion": "心电图诊断",
           "ecg.tracing": "心电图 · 25 mm/s · {gain} mm/mV · 定标 1 mV",
           "ecg.medians": "中位数心搏 · 25 mm/s · {gain} mm/mV"},
}
STATUS_TEXT = {
    "en": {Status.FINAL: "final", Status.AMENDED: "amended", Status.CORRECTED: "corrected",
           Status.ENTERED_IN_ERROR: "entered in error", Status.PRELIMINARY: "draft"},
    "zh": {Status.FINAL: "正式", Status.AMENDED: "修订", Status.CORRECTED: "更正",
           Status.ENTERED_IN_ERROR: "录入错误（撤回）", Status.PRELIMINARY: "草稿"},
}


def verification_url(public_url: str | None, code: str) -> str:
    return f"{public_url or ''}/verify/{code}"


def _utc(t: object) -> str:
    try:
        return iso_time(float(t)).replace("T", " ")[:16] + " UTC"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"


def communication_section(lang: str, entries: list[dict[str, Any]]) -> Section | None:
    """The critical-value alerts raised on the report (H6's AlertService.communication):
    who was told, when, the read-back, the action — printed with the report."""
    if not entries:
        return None
    t = FIELD_LABELS[lang]
    paragraphs = []
    for e in entries:
        line = t["comm_row"].format(tier=t.get(f"tier.{e.get('tier')}", e.get("tier", "")),
                                    raised_at=_utc(e.get("raised_at")),
                                    raised_by=e.get("raised_by", ""),
                                    finding=e.get("finding", ""))
        if e.get("acknowledged_at"):
            line += "; " + t["comm_ack"].format(at=_utc(e["acknowledged_at"]),
                                               by=e.get("acknowledged_by", ""),
                                               read_back=e.get("read_back", ""))
        else:
            line += "; " + t["comm_unack"].format(state=e.get("state", ""))
        if e.get("action_taken"):
            line += "; " + t["comm_action"].format(action=e["action_taken"])
        paragraphs.append(line)
    return Section(t["communication"], tuple(paragraphs))


def ecg_section(lang: str, ecg: dict[str, Any] | None) -> Section | None:
    """The ECG template's fields as a table (numbers, then texts); None without them."""
    if not ecg:
        return None
    t = FIELD_LABELS[lang]
    rows = []
    for name in ECG_FIELDS:
        value = ecg.get(name)
        if value is None or str(value).strip() == "":
            continue
        rows.append((t[f"ecg.{name}"], str(value)))
    return Section(t["ecg"], rows=tuple(rows)) if rows else None


def document(report: Report, version: Version, *, lang: str, institution: str,
             department_name: str, images: list[tuple[bytes, str]],
             public_url: str | None,
             communication: list[dict[str, Any]] | None = None,
             tracing: Sheets | None = None) -> Document:
    """`tracing`: the ECG's sheets at true size (media/ecg/tracing.py): the rhythm, then the
    median beats when the ECG has them."""
    t = FIELD_LABELS[lang]
    s = version.subject
    c = version.content
    meta = [(t["patient"], s.patient_name or "—"), (t["patient_id"], s.patient_id or "—"),
            (t["clinic"], s.clinic_name or s.clinic)]
    if s.study_uid:
        meta.append((t["study"], " · ".join(x for x in (s.study_description, s.study_uid) if x)))
    meta += [(t["signer"], f"{version.signer_name} ({version.signer})"),
             (t["signed_at"], version.signed_at.replace("T", " ").removesuffix("Z")),
             (t["version"], f"{version.version} · {STATUS_TEXT[lang][version.status]}")]
    if version.supersedes:
        meta.append((t["supersedes"], str(version.supersedes)))
    if version.reason:
        meta.append((t["reason"], version.reason))
    meta.append((t["signature"], version.signature))
    sections = []
    if report.kind is Kind.READING:
        if c.get("critical"):
            sections.append(Section(t["critical"], (t["yes"],)))
        ecg = ecg_section(lang, c.get(ECG))
        if ecg is not None:
            sections.append(ecg)
        for name in ("findings", "impression", "recommendation"):
            if str(c.get(name, "")).strip():
                sections.append(Section(t[name], _paragraphs(c[name])))
    else:
        for name in ("findings", "advice"):
            if str(c.get(name, "")).strip():
                sections.append(Section(t[name], _paragraphs(c[name])))
        sections.append(Section(t["refer"], (t["yes"] if c.get("refer") else t["no"],)))
        if str(c.get("follow_up", "")).strip():
            sections.append(Section(t["follow_up"], _paragraphs(c["follow_up"])))
    comm = communication_section(lang, communication or [])
    if comm is not None:
        sections.append(comm)
    later = report.superseded_by(version.version)
    current = report.current
    watermark = ""
    if current is not None and current.status is Status.ENTERED_IN_ERROR:
        watermark = t["withdrawn"]
    elif later is not None:
        watermark = t["superseded"].format(n=later)
    code = version.verification_code
    return Document(
        title=TITLES[(lang, report.kind)], institution=institution,
        subtitle=department_name, meta=tuple(meta), sections=tuple(sections),
        images=tuple(DocImage(png, caption) for png, caption in images)
        + _tracing_images(lang, tracing),
        verification=Verification(code, verification_url(public_url, code)),
        footer=t["page_note"], lang=lang, watermark=watermark)


def _tracing_images(lang: str, sheets: Sheets | None) -> tuple[DocImage, ...]:
    if sheets is None:
        return ()
    t = FIELD_LABELS[lang]
    out = [DocImage(sheets.rhythm.png, t["ecg.tracing"].format(gain=f"{sheets.rhythm.gain:g}"),
                    width_mm=sheets.rhythm.width_mm, height_mm=sheets.rhythm.height_mm)]
    if sheets.medians is not None:
        m = sheets.medians
        out.append(DocImage(m.png, t["ecg.medians"].format(gain=f"{m.gain:g}"),
                            width_mm=m.width_mm, height_mm=m.height_mm))
    return tuple(out)


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(p for p in (x.strip() for x in text.split("\n\n")) if p) or (text,)


# FHIR R4 ------------------------------------------------------------------------------------------
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
#: The ECG template's numbers as Observations: field -> (LOINC code, LOINC display, UCUM code,
#: human unit). Codes and displays as LOINC (and US Core's clinical test codes) list them; the
#: T wave axis is 8638-9 (LOINC's mod-10 check digit; 8638-1 is no LOINC code).
ECG_OBSERVATIONS: dict[str, tuple[str, str, str, str]] = {
    "rate": ("8867-4", "Heart rate", "/min", "/min"),
    "pr": ("8625-6", "P-R interval", "ms", "ms"),
    "qrs": ("8633-0", "QRS duration", "ms", "ms"),
    "qt": ("8634-8", "Q-T interval", "ms", "ms"),
    "qtc": ("8636-3", "Q-T interval corrected", "ms", "ms"),
    "p_axis": ("8626-4", "P wave axis", "deg", "°"),
    "axis": ("8632-2", "QRS axis", "deg", "°"),
    "t_axis": ("8638-9", "T wave axis", "deg", "°"),
}
ID_SYSTEM = "urn:huizhen:report"
CODE_SYSTEM = "urn:huizhen:verification-code"
EXT_SIGNATURE = "urn:huizhen:fhir:signature-sha256"
EXT_SUPERSEDES = "urn:huizhen:fhir:supersedes-version"
EXT_CRITICAL = "urn:huizhen:fhir:critical-finding"
EXT_REFER = "urn:huizhen:fhir:referral-recommended"


def _coding(system: str, value: str, display: str) -> dict[str, str]:
    """A FHIR Coding (a terminology code, not one of the API's error codes)."""
    return {"system": system, "code": value, "display": display}


def plain_text(report: Report, version: Version) -> str:
    t = FIELD_LABELS["en"]
    c = version.content
    names = (("findings", "impression", "recommendation") if report.kind is Kind.READING
             else ("findings", "advice", "follow_up"))
    parts = [f"{t[n]}: {c[n]}" for n in names if str(c.get(n, "")).strip()]
    ecg = ecg_section("en", c.get(ECG)) if report.kind is Kind.READING else None
    if ecg is not None:
        parts.insert(0, "ECG: " + "; ".join(f"{k} {v}" for k, v in ecg.rows))
    if report.kind is Kind.READING and c.get("critical"):
        parts.insert(0, "CRITICAL FINDING")
    if report.kind is Kind.OPINION:
        parts.append(f"{t['refer']}: {'yes' if c.get('refer') else 'no'}")
    return "\n\n".join(parts)


def fhir_date(study_date: str | None, study_time: str | None = None,
              offset: str | None = None) -> str | None:
    """A DICOM DA (+ TM, + Timezone Offset From UTC) as a FHIR dateTime; None when the date is
    not a valid DA. FHIR requires a zone with a time of day, and a DICOM time without Timezone
    Offset From UTC (0008,0201) has none, so then only the date is given (never a guessed zone)."""
    d = (study_date or "").strip()
    if len(d) != 8 or not d.isascii() or not d.isdigit():
        return None
    try:
        datetime.date(int(d[:4]), int(d[4:6]), int(d[6:]))
    except ValueError:
        return None
    day = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    t = (study_time or "").strip().split(".")[0]
    z = (offset or "").strip()
    if (len(t) >= 4 and t.isascii() and t.isdigit() and len(z) == 5 and z[0] in "+-"
            and z[1:].isascii() and z[1:].isdigit()):
        hh, mm, ss = t[:2], t[2:4], t[4:6] or "00"
        if int(hh) < 24 and int(mm) < 60 and int(ss) < 60:
            return f"{day}T{hh}:{mm}:{ss}{z[:3]}:{z[3:]}"
    return day


def diagnostic_report(report: Report, version: Version, *, institution: str,
                      pdf_url: str, effective: str | None = None) -> dict[str, Any]:
    """The FHIR R4 DiagnosticReport of one signed version (validated by fhir.resources in the
    tests). The report id is the resource id, the version number its meta.versionId.
    `effective`: the clinically relevant time (the study's date, `fhir_date`); without one, the
    time the report was begun (a consult opinion has no study), never the signing time, which
    is `issued`."""
    s = version.subject
    c = version.content
    reading = report.kind is Kind.READING
    ecg = c.get(ECG) if reading else None
    if ecg:
        code = {"coding": [_coding(LOINC, "11524-6", "EKG study")], "text": "ECG report"}
        category = _coding(V2_0074, "EC", "Electrocardiac (e.g., EKG, EEC, Holter)")
    elif reading:
        code = {"coding": [_coding(LOINC, "18748-4", "Diagnostic imaging study")],
                "text": "Imaging report"}
        category = _coding(V2_0074, "RAD", "Radiology")
    else:
        code = {"coding": [_coding(LOINC, "11488-4", "Consult note")],
                "text": "Consultation opinion"}
        category = _coding(V2_0074, "OTH", "Other")
    subject = {"identifier": {"system": f"urn:huizhen:clinic:{s.clinic}:patient-id",
                              "value": s.patient_id or "unknown"},
               "display": s.patient_name or "unknown"}
    # R4: `performer` is the diagnostic service responsible for the report (the institution),
    # `resultsInterpreter` the person who read and signed it.
    organization = {"type": "Organization", "display": institution}
    interpreter = {"type": "Practitioner", "display": version.signer_name,
                   "identifier": {"system": "urn:huizhen:user", "value": version.signer}}
    text = plain_text(report, version)
    extensions: list[dict[str, Any]] = [
        {"url": EXT_SIGNATURE, "valueString": version.signature}]
    if version.supersedes:
        extensions.append({"url": EXT_SUPERSEDES, "valueInteger": version.supersedes})
    if reading:
        extensions.append({"url": EXT_CRITICAL, "valueBoolean": bool(c.get("critical"))})
    else:
        extensions.append({"url": EXT_REFER, "valueBoolean": bool(c.get("refer"))})
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report.id,
        "meta": {"versionId": str(version.version), "lastUpdated": version.signed_at},
        "extension": extensions,
        "identifier": [{"system": ID_SYSTEM, "value": report.id},
                       {"system": CODE_SYSTEM, "value": version.verification_code}],
        "status": version.status.value,
        "category": [{"coding": [category]}],
        "code": code,
        "subject": subject,
        "effectiveDateTime": effective or iso_time(report.first.created_at),
        "issued": version.signed_at,
        "performer": [organization],
        "resultsInterpreter": [interpreter],
        "presentedForm": [
            {"contentType": "text/plain; charset=utf-8", "language": "zh-CN",
             "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
             "title": code["text"]},
            {"contentType": "application/pdf", "url": pdf_url, "title": code["text"]},
        ],
    }
    conclusion = c.get("impression") if reading else c.get("advice")
    if conclusion:
        resource["conclusion"] = conclusion
    if s.study_uid:
        resource["imagingStudy"] = [{"identifier": {"system": "urn:dicom:uid",
                                                    "value": f"urn:oid:{s.study_uid}"},
                                     "display": s.study_description or "Study"}]
    if s.reading_request_id:
        resource["basedOn"] = [{"identifier": {"system": "urn:huizhen:reading-request",
                                               "value": s.reading_request_id}}]
    observations = ecg_observations(ecg, status=version.status.value, subject=subject,
                                    performer=interpreter, issued=version.signed_at,
                                    effective=resource["effectiveDateTime"])
    if observations:
        # Contained, not separate resources: they are part of this signed version and have no
        # life (or id) of their own; `result` points at each.
        resource["contained"] = observations
        resource["result"] = [{"reference": f"#{o['id']}", "display": o["code"]["text"]}
                              for o in observations]
    if c.get(KEY_IMAGES):
        resource["media"] = [{"comment": k.get("caption") or f"key image {i + 1}",
                              "link": {"identifier": {"system": "urn:dicom:uid",
                                                      "value": f"urn:oid:{k['sop_uid']}"}}}
                             for i, k in enumerate(c[KEY_IMAGES])]
    return resource


def ecg_observations(ecg: dict[str, Any] | None, *, status: str, subject: dict[str, Any],
                     performer: dict[str, Any], issued: str,
                     effective: str | None = None) -> list[dict[str, Any]]:
    """The ECG template's measured numbers (null = not measured: left out) as FHIR Observations
    with their LOINC code and a UCUM quantity, in the template's order."""
    out: list[dict[str, Any]] = []
    for name in ECG_FIELDS:
        if name not in ECG_OBSERVATIONS or not ecg or ecg.get(name) is None:
            continue
        loinc, display, ucum, unit = ECG_OBSERVATIONS[name]
        out.append({
            "resourceType": "Observation",
            "id": f"ecg-{name.replace('_', '-')}",
            "status": status,
            "category": [{"coding": [_coding(OBSERVATION_CATEGORY, "procedure", "Procedure")]}],
            "code": {"coding": [_coding(LOINC, loinc, display)], "text": display},
            "subject": subject,
            **({"effectiveDateTime": effective} if effective else {}),
            "issued": issued,
            "performer": [performer],
            "valueQuantity": {"value": ecg[name], "unit": unit, "system": UCUM, "code": ucum},
        })
    return out
