"""Annotations as DICOM: a Measurement Report (SR TID 1500) and a Key Object Selection document.

Built with highdicom from the referenced images' headers; no I/O here (the caller reads the
headers and stores the result, both in the thread pool).

The measurement groups are written the way OHIF's cornerstone-dicom-sr extension (through the
Cornerstone3D SR adapters over dcmjs) reads them back as editable measurements:
- each annotation is one TID 1501 Measurement Group with a Tracking Identifier (TEXT
  ``Cornerstone3DTools@^0.1.0:<ToolType>``, which selects the tool) and a Tracking Unique
  Identifier (UIDREF, stable per annotation: exporting again keeps the identity);
- the group's first NUM carries the value and, INFERRED FROM, the SCOORD in image pixel
  coordinates, which is SELECTED FROM the IMAGE (SOP Class/Instance, frame);
- Length: NUM Length (SCT 410668003, mm) over a POLYLINE of 2 points; Angle: NUM Angle over a
  POLYLINE of 3 points (vertex in the middle); ellipse: NUM Area (SCT 42798000, mm2) over an
  ELLIPSE of 4 points (major axis, then minor), then Mean / Standard Deviation / Minimum /
  Maximum in modality units; polygon (PlanarFreehandROI): Area over a closed POLYLINE;
  arrow and text (ArrowAnnotate): NUM Center (DCM 111010, no value) over a POINT, the text as
  the Finding (99dcmjs CS3DTEXT, the meaning is the label; 64 characters at most).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from media.imaging.measurements import Ellipse

CORNERSTONE_3D_TAG = "Cornerstone3DTools@^0.1.0"
TOOL_TYPES = {
    "length": "Length", "angle": "Angle", "ellipse": "EllipticalROI",
    "polygon": "PlanarFreehandROI", "arrow": "ArrowAnnotate", "text": "ArrowAnnotate",
}
#: The free-text finding dcmjs writes today (its older CORNERSTONEFREETEXT / CORNERSTONEJS is
#: 19 characters, over the 16 of a Code Value (SH); current readers accept both).
FREE_TEXT = Code("CS3DTEXT", "99dcmjs", "")
ANGLE = Code("4000022", "99PDL-rad", "Angle")  # the concept dcmjs writes and OHIF reads
MM = Code("mm", "UCUM", "millimeter")
MM2 = Code("mm2", "UCUM", "square millimeter")
PIXELS = Code("{pixels}", "UCUM", "pixels")
PIXELS2 = Code("{pixels2}", "UCUM", "square pixels")
DEGREES = Code("deg", "UCUM", "degree")
HU = Code("[hnsf'U]", "UCUM", "Hounsfield unit")
NO_UNITS = Code("1", "UCUM", "no units")
#: Namespace of the Tracking Unique Identifiers (uuid5 of the annotation id, as 2.25.<int>).
TRACKING_NAMESPACE = uuid.UUID("5b0f8d4e-2c1a-4f7e-9a51-6d3e2b7c9f10")
MANUFACTURER = "Huizhen"
#: Code Meaning is LO: 64 characters.
MAX_MEANING = 64


@dataclass(frozen=True)
class Mark:
    """One annotation to export (the store's annotation, plain)."""

    id: str
    sop_instance_uid: str
    frame: int
    kind: str
    points: list[list[float]]
    text: str = ""
    measurement: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def tracking_uid(annotation_id: str) -> str:
    return f"2.25.{uuid.uuid5(TRACKING_NAMESPACE, annotation_id).int}"


def _unit(name: str) -> Code:
    return {"HU": HU, "": NO_UNITS}.get(name, Code(name[:16], "UCUM", name[:MAX_MEANING]))


def _frames(image: Dataset, frame: int) -> list[int] | None:
    return [frame] if int(image.get("NumberOfFrames") or 1) > 1 else None


def _coordinates(kind: str, points: list[list[float]], image: Dataset, frame: int
                 ) -> hd.sr.CoordinatesForMeasurement:
    if kind == "ellipse":
        graphic_type, data = hd.sr.GraphicTypeValues.ELLIPSE, Ellipse.from_points(points
                                                                                  ).axis_points()
    elif kind == "polygon":
        graphic_type, data = hd.sr.GraphicTypeValues.POLYLINE, [*points, points[0]]
    elif kind in ("arrow", "text"):
        # ArrowAnnotate stores the head first, then the tail (one point for a text label).
        graphic_type, data = hd.sr.GraphicTypeValues.POINT, list(reversed(points))[:2]
    else:
        graphic_type, data = hd.sr.GraphicTypeValues.POLYLINE, points
    array = np.asarray(data, dtype=np.float64)
    if graphic_type is hd.sr.GraphicTypeValues.POINT and len(array) > 1:
        # highdicom's POINT takes exactly one coordinate; dcmjs writes the arrow's second one
        # into the same GraphicData, so do the same after construction.
        item = hd.sr.CoordinatesForMeasurement(
            graphic_type, array[:1], hd.sr.SourceImageForRegion(
                image.SOPClassUID, image.SOPInstanceUID, _frames(image, frame)))
        item.GraphicData = [float(v) for v in array.reshape(-1)]
        return item
    return hd.sr.CoordinatesForMeasurement(
        graphic_type, array, hd.sr.SourceImageForRegion(
            image.SOPClassUID, image.SOPInstanceUID, _frames(image, frame)))


def _measurements(mark: Mark, image: Dataset) -> list[hd.sr.Measurement | Dataset]:
    m = dict(mark.measurement or {})
    coords = [_coordinates(mark.kind, mark.points, image, mark.frame)]
    out: list[hd.sr.Measurement | Dataset] = []
    if mark.kind == "length":
        value, unit = (m["length_mm"], MM) if m.get("length_mm") is not None else (
            m["length_px"], PIXELS)
        out.append(hd.sr.Measurement(codes.SCT.Length, float(value), unit,
                                     referenced_coordinates=coords))
    elif mark.kind == "angle":
        out.append(hd.sr.Measurement(ANGLE, float(m["angle_deg"]), DEGREES,
                                     referenced_coordinates=coords))
    elif mark.kind in ("ellipse", "polygon"):
        value, unit = (m["area_mm2"], MM2) if m.get("area_mm2") is not None else (
            m["area_px2"], PIXELS2)
        out.append(hd.sr.Measurement(codes.SCT.Area, float(value), unit,
                                     referenced_coordinates=coords))
        stats = (("mean", codes.SCT.Mean), ("sd", codes.DCM.StandardDeviation),
                 ("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum))
        for name, concept in stats:
            if m.get(name) is not None:
                out.append(hd.sr.Measurement(concept, float(m[name]), _unit(m.get("unit", ""))))
    else:
        # No value: the Measured Value Sequence is emptied (Type 2) once the document is built
        # (highdicom insists on a value while building), as dcmjs writes a Point.
        out.append(hd.sr.Measurement(codes.DCM.Center, 0.0, NO_UNITS,
                                     referenced_coordinates=coords))
    return out


def _lo(text: str, limit: int = MAX_MEANING) -> str:
    """A text as one LO value: no backslash (the value delimiter), no control characters."""
    clean = "".join(" " if ord(ch) < 0x20 or ch == "\x7f" else ch for ch in text)
    return clean.replace("\\", "/").strip()[:limit].strip()


def _group(mark: Mark, image: Dataset) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    finding = None
    label = _lo(mark.text)
    if label:
        finding = CodedConcept(FREE_TEXT.value, FREE_TEXT.scheme_designator, label)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=tracking_uid(mark.id),
            identifier=f"{CORNERSTONE_3D_TAG}:{TOOL_TYPES[mark.kind]}"),
        finding_type=finding,
        measurements=_measurements(mark, image),
    )


def _observer(name: str) -> hd.sr.ObserverContext:
    # A username is one name component: the trailing caret says so (PS3.5 6.2.1.2).
    person = _lo(name.replace("^", " "), 63) or "unknown"
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=f"{person}^"))


def measurement_report(
    images: Mapping[str, Dataset], marks: Sequence[Mark], *, observer: str,
    series_uid: str, sop_uid: str, series_number: int = 9001, instance_number: int = 1,
    institution: str | None = None,
) -> Dataset:
    """A Comprehensive SR holding TID 1500 with one group per mark. `images` maps each
    referenced SOP Instance UID to its header (one study)."""
    if not marks:
        raise ValueError("no annotations to export")
    groups = [_group(mark, images[mark.sop_instance_uid]) for mark in marks]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=_observer(observer)),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    evidence = list(images.values())
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=sop_uid, instance_number=instance_number,
        manufacturer=MANUFACTURER, institution_name=institution, is_complete=True,
        series_description="Measurements (Huizhen)",
    )
    sr.SpecificCharacterSet = "ISO_IR 192"  # texts may be Chinese
    _empty_centers(sr)
    return sr


def _empty_centers(item: Dataset) -> None:
    """Arrow and text marks carry a NUM Center without a value (see _measurements)."""
    for child in item.get("ContentSequence", []):
        if child.get("ValueType") == "NUM" and \
                child.ConceptNameCodeSequence[0].CodeValue == codes.DCM.Center.value:
            child.MeasuredValueSequence = []
        _empty_centers(child)


def key_object_selection(
    images: Sequence[Dataset], *, observer: str, series_uid: str, sop_uid: str,
    description: str = "", series_number: int = 9002, instance_number: int = 1,
    title: Code = codes.DCM.OfInterest,
) -> Dataset:
    """A Key Object Selection document referencing `images` (key images of one study).
    Its title is (113000, DCM, "Of Interest"), the key image note of IHE KIN that PACS and
    viewers list as key images; "For Conference" would hide them from most of them."""
    if not images:
        raise ValueError("no key images to export")
    content = hd.ko.KeyObjectSelection(
        document_title=title, referenced_objects=list(images),
        observer_person_context=_observer(observer),
        description=description[:1024] or None,
    )
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=list(images), content=content, series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=sop_uid,
        instance_number=instance_number, manufacturer=MANUFACTURER,
        series_description="Key images (Huizhen)",
    )
    kos.SpecificCharacterSet = "ISO_IR 192"
    return kos
