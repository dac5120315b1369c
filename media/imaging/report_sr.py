"""A signed report as a DICOM Enhanced SR (highdicom), to be stored into its study so that
another hospital's PACS receives the report with the images.

Content tree (TID 2000-like, Basic Diagnostic Imaging Report):

    CONTAINER (LN 18748-4 "Diagnostic imaging report" / LN 11488-4 "Consult note")
      CONTAINS TEXT (DCM 121071 Finding)          findings
      CONTAINS TEXT (DCM 121073 Impression)       impression / advice
      CONTAINS TEXT (DCM 121075 Recommendation)   recommendation / follow-up / referral
      CONTAINS IMAGE (DCM 121180 Key Images)      each key image of the study

The SR is complete, final and verified by the signer at the signing time; an amended version
names the SR of the version it supersedes in the Predecessor Documents Sequence. UIDs are
derived from the report id and version, so writing the same version twice gives the same
instance (ingest treats it as a duplicate). Pure (no I/O beyond the datasets given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import highdicom as hd
from highdicom.sr import (
    CodedConcept,
    ContainerContentItem,
    ImageContentItem,
    RelationshipTypeValues,
    TextContentItem,
)
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

READING_TITLE = CodedConcept("18748-4", "LN", "Diagnostic imaging report")
OPINION_TITLE = CodedConcept("11488-4", "LN", "Consult note")
KEY_IMAGES = CodedConcept("121180", "DCM", "Key Images")
SERIES_NUMBER = 9700
MAX_TEXT = 20_000


@dataclass(frozen=True)
class SrReport:
    """What goes into the SR (the caller maps its report version onto this)."""

    report_id: str
    version: int
    opinion: bool
    findings: str
    impression: str  # a reading report's impression, an opinion's advice
    recommendation: str  # recommendation, or follow-up (+ referral) for an opinion
    signer_name: str
    signed_at: str  # ISO 8601 UTC, "2026-12-02T01:23:45.678Z"
    institution: str
    department: str
    #: (SOP Class UID, SOP Instance UID, frame) of each key image, all in the study.
    key_images: tuple[tuple[str, str, int], ...] = ()
    supersedes: int | None = None


def sr_uids(report_id: str, version: int) -> tuple[str, str]:
    """(series, instance) UIDs of a report version's SR: stable across reruns."""
    series = generate_uid(entropy_srcs=["huizhen-report-sr-series", report_id])
    instance = generate_uid(entropy_srcs=["huizhen-report-sr", report_id, str(version)])
    return series, instance


def _text(name: CodedConcept, value: str) -> TextContentItem:
    return TextContentItem(name=name, value=value[:MAX_TEXT],
                           relationship_type=RelationshipTypeValues.CONTAINS)


# Type 2 attributes highdicom copies from the evidence; real files often lack some of them.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
          "StudyID", "AccessionNumber", "StudyDate", "StudyTime")


def _complete(ds: Dataset) -> Dataset:
    out = Dataset()
    for element in ds:
        if element.tag.group != 0x7FE0:  # never the pixels
            out.add(element)
    for keyword in _TYPE2:
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def _person_name(name: str) -> str:
    """A display name as a DICOM PN: "张医生" is one component, said so with a caret."""
    name = name.replace("=", " ")[:60]
    return name if "^" in name else name + "^"


def build_sr(report: SrReport, evidence: Sequence[Dataset]) -> hd.sr.EnhancedSR:
    """The Enhanced SR of `report`; `evidence`: at least one instance of the study (patient
    and study attributes are copied from it; key images must be among them when listed)."""
    if not evidence:
        raise ValueError("an SR needs at least one instance of its study")
    items = []
    if report.findings.strip():
        items.append(_text(codes.DCM.Finding, report.findings))
    if report.impression.strip():
        items.append(_text(codes.DCM.Impression, report.impression))
    if report.recommendation.strip():
        items.append(_text(codes.DCM.Recommendation, report.recommendation))
    for sop_class, sop_uid, frame in report.key_images:
        items.append(ImageContentItem(
            name=KEY_IMAGES, referenced_sop_class_uid=sop_class,
            referenced_sop_instance_uid=sop_uid,
            referenced_frame_numbers=[frame] if frame > 1 else None,
            relationship_type=RelationshipTypeValues.CONTAINS))
    root = ContainerContentItem(name=OPINION_TITLE if report.opinion else READING_TITLE,
                         template_id=None)
    root.ContentSequence = hd.sr.ContentSequence(items)
    series_uid, sop_uid = sr_uids(report.report_id, report.version)
    previous = None
    if report.supersedes:
        prev = Dataset()
        prev.StudyInstanceUID = evidence[0].StudyInstanceUID
        prev.SeriesInstanceUID = series_uid
        prev.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
        prev.SOPInstanceUID = sr_uids(report.report_id, report.supersedes)[1]
        previous = [prev]
    signed = datetime.strptime(report.signed_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    sr = hd.sr.EnhancedSR(
        evidence=[_complete(ds) for ds in evidence], content=root, series_instance_uid=series_uid,
        series_number=SERIES_NUMBER, sop_instance_uid=sop_uid,
        instance_number=report.version, manufacturer="Huizhen", is_complete=True,
        is_final=True, is_verified=True, institution_name=report.institution[:64],
        institutional_department_name=report.department[:64],
        verifying_observer_name=_person_name(report.signer_name),
        verifying_organization=report.institution[:64], previous_versions=previous,
        record_evidence=True)
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese text and names
    sr.VerificationFlag = "VERIFIED"
    sr.VerifyingObserverSequence[0].VerificationDateTime = signed.strftime("%Y%m%d%H%M%S.%f")
    sr.ContentDate = signed.strftime("%Y%m%d")
    sr.ContentTime = signed.strftime("%H%M%S.%f")
    sr.SeriesDescription = "Huizhen report"
    return sr
