"""Which DICOM attributes the index keeps at each QIDO-RS level, and how an instance becomes an
index entry (PS3.18 §10.6 required matching and return attributes)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.tag import Tag

from server.store.study_index import DicomJson, IndexEntry

STUDY_TAGS = (
    "00080005",
    "00080020",
    "00080030",
    "00080050",
    "00080090",
    "00081030",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    "00101010",
    "0020000D",
    "00200010",
)
SERIES_TAGS = (
    "00080021",
    "00080031",
    "00080060",
    "0008103E",
    "00180015",
    "0020000E",
    "00200011",
    "00200052",
)
INSTANCE_TAGS = (
    "00080016",
    "00080018",
    "00080008",
    "00200013",
    "00200032",
    "00200037",
    "00201041",
    "00280002",
    "00280004",
    "00280008",
    "00280010",
    "00280011",
    "00280030",
    "00280100",
    "00280101",
    "00280103",
    "00281050",
    "00281051",
    "00281052",
    "00281053",
    "00281055",
    "00180050",
)

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and bool(_UID_RE.match(value))


def tag_of(name: str) -> str | None:
    """'PatientID' or '00100020' -> '00100020'; None when neither."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return name.upper()
    tag = tag_for_keyword(name)
    return f"{tag:08X}" if tag is not None else None


def vr_of(tag: str) -> str:
    try:
        return dictionary_VR(Tag(int(tag, 16)))
    except KeyError:
        return "UN"


def to_json(ds: Dataset, tags: tuple[str, ...]) -> DicomJson:
    out: DicomJson = {}
    for tag in tags:
        elem = ds.get(Tag(int(tag, 16)))
        if elem is None:
            continue
        out[tag] = elem.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=4096)
    return out


def first_value(attrs: DicomJson, tag: str, default: Any = None) -> Any:
    values = attrs.get(tag, {}).get("Value")
    return values[0] if values else default


def sort_key(ds: Dataset) -> float:
    """Position along the slice normal (IPP · (row × col)); instance number when unknown."""
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=float)
        if iop.shape == (6,) and ipp.shape == (3,):
            normal = np.cross(iop[:3], iop[3:])
            if np.linalg.norm(normal) > 0.5:
                return float(np.dot(ipp, normal))
    except (AttributeError, TypeError, ValueError):
        pass
    try:
        return float(ds.InstanceNumber)
    except (AttributeError, TypeError, ValueError):
        return 0.0


def study_date_key(ds: Dataset) -> float:
    date = re.sub(r"\D", "", str(ds.get("StudyDate", "") or ""))[:8].ljust(8, "0")
    time = re.sub(r"\D", "", str(ds.get("StudyTime", "") or "").split(".")[0])[:6].ljust(6, "0")
    return float(date + time)


def relative_path(clinic: str, study: str, series: str, sop: str) -> str:
    """Where an instance lives under the DICOM dir; the owning clinic is part of the path so the
    index (ownership included) can be rebuilt from the files alone."""
    return str(PurePosixPath(clinic, study, series, f"{sop}.dcm"))


def entry_from_dataset(ds: Dataset, clinic: str) -> IndexEntry:
    study, series, sop = (
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
    )
    instance_attrs = to_json(ds, INSTANCE_TAGS)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        instance_attrs["00083002"] = {"vr": "UI", "Value": [str(ts)]}
    return IndexEntry(
        clinic=clinic,
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        path=relative_path(clinic, study, series, sop),
        sort_key=sort_key(ds),
        study_date_key=study_date_key(ds),
        study_attrs=to_json(ds, STUDY_TAGS),
        series_attrs=to_json(ds, SERIES_TAGS),
        instance_attrs=instance_attrs,
    )
