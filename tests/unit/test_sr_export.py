"""SR TID 1500 and KOS export read back with highdicom and pydicom, the way OHIF reads them."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from media.imaging import measurements as m
from media.imaging import sr_export
from server.demo.phantom import ct_phantom_series


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def images() -> list[pydicom.Dataset]:
    return list(ct_phantom_series(slices=2, size=64, patient_id="HZ-SR"))


def _mark(ds, kind, points, text="", **measured) -> sr_export.Mark:
    spacing = m.spacing_from_dataset(ds)
    stored = ds.pixel_array
    from media.imaging.image_model import FrameTransform

    transform = FrameTransform(float(ds.RescaleSlope), float(ds.RescaleIntercept))
    result = m.measure(kind, points, spacing, rows=64, columns=64, stored=stored,
                       transform=transform, unit=m.modality_unit(ds))
    return sr_export.Mark(id=generate_uid()[-16:], sop_instance_uid=ds.SOPInstanceUID, frame=1,
                          kind=kind, points=points, text=text,
                          measurement=result.public() if result else None)


def _groups(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    measurements = [c for c in sr.ContentSequence
                    if c.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurements"]
    assert len(measurements) == 1
    return [g for g in measurements[0].ContentSequence
            if g.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group"]


def _item(group, meaning: str):
    return next(c for c in group.ContentSequence
                if c.ConceptNameCodeSequence[0].CodeMeaning == meaning)


def test_measurement_report_reads_back_as_ohif_expects(images) -> None:
    ct = images[0]
    marks = [
        _mark(ct, "length", [[10, 20], [50, 20]]),
        _mark(ct, "angle", [[10, 10], [20, 10], [20, 30]]),
        _mark(ct, "ellipse", [[16, 20], [48, 44]], text="肝 lesion"),
        _mark(images[1], "polygon", [[5, 5], [30, 5], [30, 25]]),
        _mark(ct, "arrow", [[3, 3], [9, 9]], text="look here"),
    ]
    sr = _roundtrip(sr_export.measurement_report(
        {d.SOPInstanceUID: d for d in images}, marks, observer="dr.li",
        series_uid=generate_uid(), sop_uid=generate_uid()))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.StudyInstanceUID == ct.StudyInstanceUID and sr.PatientID == "HZ-SR"
    assert sr.Modality == "SR"
    groups = _groups(sr)
    assert len(groups) == 5
    tools = [_item(g, "Tracking Identifier").TextValue for g in groups]
    assert tools == [f"Cornerstone3DTools@^0.1.0:{t}" for t in
                     ("Length", "Angle", "EllipticalROI", "PlanarFreehandROI", "ArrowAnnotate")]
    uids = [_item(g, "Tracking Unique Identifier").UID for g in groups]
    assert uids == [sr_export.tracking_uid(mk.id) for mk in marks] and len(set(uids)) == 5

    # Length: the first NUM holds the mm value and, inferred from, the SCOORD on the image.
    num = next(c for c in groups[0].ContentSequence if c.ValueType == "NUM")
    value = num.MeasuredValueSequence[0]
    assert float(value.NumericValue) == pytest.approx(40 * float(ct.PixelSpacing[1]), abs=1e-3)
    assert value.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    scoord = next(c for c in num.ContentSequence if c.ValueType == "SCOORD")
    assert scoord.RelationshipType == "INFERRED FROM" and scoord.GraphicType == "POLYLINE"
    assert [float(v) for v in scoord.GraphicData] == [10, 20, 50, 20]
    image = scoord.ContentSequence[0]
    assert image.ValueType == "IMAGE" and image.RelationshipType == "SELECTED FROM"
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID

    angle = next(c for c in groups[1].ContentSequence if c.ValueType == "NUM")
    assert float(angle.MeasuredValueSequence[0].NumericValue) == pytest.approx(90)

    # Ellipse: Area (mm2) over the 4 axis points, then HU statistics; the label as finding.
    nums = [c for c in groups[2].ContentSequence if c.ValueType == "NUM"]
    names = [n.ConceptNameCodeSequence[0].CodeMeaning for n in nums]
    assert names == ["Area", "Mean", "Standard Deviation", "Minimum", "Maximum"]
    assert nums[1].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == \
        "[hnsf'U]"
    assert float(nums[1].MeasuredValueSequence[0].NumericValue) == pytest.approx(
        marks[2].measurement["mean"], abs=1e-3)
    ellipse = next(c for c in nums[0].ContentSequence if c.ValueType == "SCOORD")
    assert ellipse.GraphicType == "ELLIPSE"
    assert [float(v) for v in ellipse.GraphicData] == [16, 32, 48, 32, 32, 20, 32, 44]
    finding = _item(groups[2], "Finding").ConceptCodeSequence[0]
    assert (finding.CodeValue, finding.CodingSchemeDesignator, finding.CodeMeaning) == (
        "CS3DTEXT", "99dcmjs", "肝 lesion")

    poly = next(c for c in groups[3].ContentSequence if c.ValueType == "NUM")
    line = next(c for c in poly.ContentSequence if c.ValueType == "SCOORD")
    points = np.asarray(line.GraphicData, dtype=float).reshape(-1, 2)
    assert points[0].tolist() == points[-1].tolist() == [5, 5]  # closed
    assert line.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
        images[1].SOPInstanceUID

    center = next(c for c in groups[4].ContentSequence if c.ValueType == "NUM")
    assert center.ConceptNameCodeSequence[0].CodeValue == "111010"
    assert len(center.MeasuredValueSequence) == 0
    point = next(c for c in center.ContentSequence if c.ValueType == "SCOORD")
    assert point.GraphicType == "POINT" and [float(v) for v in point.GraphicData] == [9, 9, 3, 3]

    # highdicom parses the measurements back (it cannot parse a NUM without a value, which
    # is how dcmjs and OHIF write an arrow, so the arrow is left out of this one).
    again = sr_export.measurement_report(
        {d.SOPInstanceUID: d for d in images}, marks[:4], observer="dr.li",
        series_uid=generate_uid(), sop_uid=generate_uid())
    parsed = hd.sr.ComprehensiveSR.from_dataset(_roundtrip(again))
    found = parsed.content.get_image_measurement_groups()
    assert {str(g.tracking_uid) for g in found} == set(uids[:4])
    length = next(g for g in found if str(g.tracking_uid) == uids[0])
    assert length.get_measurements()[0].value == pytest.approx(
        40 * float(ct.PixelSpacing[1]), abs=1e-3)
    assert length.get_measurements()[0].unit.value == "mm"


def test_key_object_selection_reads_back(images) -> None:
    kos = _roundtrip(sr_export.key_object_selection(
        images, observer="coord.liu", series_uid=generate_uid(), sop_uid=generate_uid(),
        description="MDT 病例 1"))
    assert kos.Modality == "KO" and kos.StudyInstanceUID == images[0].StudyInstanceUID
    parsed = hd.ko.KeyObjectSelectionDocument.from_dataset(kos)
    title = parsed.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == (
        "113000", "DCM", "Of Interest")
    referenced = {
        r.ReferencedSOPInstanceUID
        for item in kos.CurrentRequestedProcedureEvidenceSequence
        for series in item.ReferencedSeriesSequence
        for r in series.ReferencedSOPSequence
    }
    assert referenced == {d.SOPInstanceUID for d in images}
    in_content = [c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                  for c in kos.ContentSequence if c.ValueType == "IMAGE"]
    assert sorted(in_content) == sorted(d.SOPInstanceUID for d in images)


def test_empty_exports_refused(images) -> None:
    with pytest.raises(ValueError):
        sr_export.measurement_report({}, [], observer="x", series_uid=generate_uid(),
                                     sop_uid=generate_uid())
    with pytest.raises(ValueError):
        sr_export.key_object_selection([], observer="x", series_uid=generate_uid(),
                                       sop_uid=generate_uid())


@pytest.mark.parametrize("text, label", [
    ("a\\b", "a/b"), ("x\x00y\nz", "x y z"), ("😀" * 70, "😀" * 64), (" \t ", None)])
def test_free_text_is_one_lo_value(images, text, label) -> None:
    mark = sr_export.Mark(id="t1", sop_instance_uid=images[0].SOPInstanceUID, frame=1,
                          kind="arrow", points=[[1, 1], [5, 5]], text=text)
    sr = _roundtrip(sr_export.measurement_report(
        {images[0].SOPInstanceUID: images[0]}, [mark], observer="dr\\li",
        series_uid=generate_uid(), sop_uid=generate_uid()))
    group = _groups(sr)[0]
    findings = [c for c in group.ContentSequence
                if c.ConceptNameCodeSequence[0].CodeMeaning == "Finding"]
    if label is None:
        assert findings == []
    else:
        assert findings[0].ConceptCodeSequence[0].CodeMeaning == label
