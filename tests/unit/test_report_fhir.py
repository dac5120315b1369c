"""The FHIR R4 DiagnosticReport's times and forms (issue #10 item 4): effectiveDateTime is the
clinically relevant time (the study's date), `issued` the signing time; a DICOM time without a
zone never becomes a FHIR time of day (FHIR requires the zone)."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from server.clinical.report_model import (
    Kind,
    Report,
    Status,
    Subject,
    Version,
    clean_content,
    iso_time,
)
from server.clinical.report_output import diagnostic_report, fhir_date

BEGUN_AT, SIGNED_AT = 1_790_000_000.0, 1_790_000_600.0


@pytest.mark.parametrize(("date", "time", "offset", "expected"), [
    ("20261120", "101500", None, "2026-11-20"),
    ("20261120", "101500.123456", "+0800", "2026-11-20T10:15:00+08:00"),
    ("20261120", "1015", "-0500", "2026-11-20T10:15:00-05:00"),
    ("20261120", None, "+0800", "2026-11-20"),
    ("20261120", "251500", "+0800", "2026-11-20"),  # not a time: the date stands alone
    ("20261120", "101500", "0800", "2026-11-20"),  # not an offset
    ("20260230", "101500", None, None),  # no such day
    ("2026-11-20", None, None, None),  # not a DA
    ("", None, None, None),
    (None, None, None, None),
    ("２０２６１１２０", None, None, None),  # Unicode digits are not DICOM digits
])
def test_fhir_date_from_dicom(date, time, offset, expected):
    assert fhir_date(date, time, offset) == expected


def _signed(kind: Kind, content: dict, subject: Subject) -> Report:
    draft = Version(report_id="r1", kind=kind, version=1, status=Status.PRELIMINARY,
                    subject=subject, author="exp", content=clean_content(kind, content),
                    created_at=BEGUN_AT)
    return Report(versions=(draft.sign("exp", "Dr Zhang", at=SIGNED_AT,
                                       code="0000-0000-0000"),))


def test_effective_is_the_study_date_and_issued_the_signing_time():
    subject = Subject("c1", "Clinic", "1.2.3", "Zhao^Liu", "P1", "radiology",
                      reading_request_id="w1")
    report = _signed(Kind.READING, {"impression": "Normal chest."}, subject)
    raw = diagnostic_report(report, report.versions[0], institution="County",
                            pdf_url="/api/reports/r1/pdf?version=1", effective="2026-11-20")
    parsed = DiagnosticReport.model_validate(raw)
    assert raw["effectiveDateTime"] == "2026-11-20"
    assert raw["issued"] == iso_time(SIGNED_AT)
    assert parsed.status == "final" and parsed.conclusion == "Normal chest."
    assert parsed.basedOn[0].identifier.value == "w1"
    # The service responsible is the institution; the reader who signed interprets.
    assert raw["performer"] == [{"type": "Organization", "display": "County"}]
    assert raw["resultsInterpreter"][0]["display"] == "Dr Zhang"
    assert raw["resultsInterpreter"][0]["identifier"]["value"] == "exp"
    pdf = [f for f in raw["presentedForm"] if f["contentType"] == "application/pdf"]
    assert pdf and pdf[0]["url"] == "/api/reports/r1/pdf?version=1"


def test_an_opinion_without_a_study_is_effective_when_it_was_begun():
    subject = Subject("c1", "Clinic", "", "Zhao^Liu", "P1", "cardiology", consult_id="k1")
    report = _signed(Kind.OPINION, {"findings": "x", "advice": "Refer."}, subject)
    raw = diagnostic_report(report, report.versions[0], institution="County", pdf_url="/x")
    DiagnosticReport.model_validate(raw)
    assert raw["effectiveDateTime"] == iso_time(BEGUN_AT) != raw["issued"]
    assert "imagingStudy" not in raw
