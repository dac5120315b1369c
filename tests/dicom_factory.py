"""Small, real DICOM files for tests (written with pydicom, read back by the server)."""

from __future__ import annotations

import io
import struct
import uuid

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    z: float = 0.0,
    instance_number: int = 1,
    rows: int = 32,
    columns: int = 32,
    patient_id: str = "P-0001",
    patient_name: str = "Zhang^San",
    study_date: str = "20261120",
    modality: str = "CT",
    accession: str = "A1",
    description: str = "CT Chest",
    seed: int = 0,
) -> Dataset:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(-1000, 1500, size=(rows, columns), dtype=np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.StudyDescription = description
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = pixels.tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def ct_bytes(**kwargs) -> bytes:
    return to_bytes(ct_dataset(**kwargs))


def multipart_related(
    parts: list[bytes], part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'


async def read_multipart(response) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) of each part of a multipart response, read with aiohttp's own
    MultipartReader (an independent parser, not a mirror of the server's writer)."""
    import aiohttp

    reader = aiohttp.MultipartReader.from_response(response)
    parts = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        headers = {k.lower(): v for k, v in part.headers.items()}
        parts.append((headers, bytes(await part.read())))
    return parts


_ITEM = b"\xfe\xff\x00\xe0"
_CONTENT_SEQUENCE = b"\x40\x00\x30\xa7SQ\0\0"  # (0040,A730), explicit VR little endian


def nested_items(outer: int, depth: int = 1) -> bytes:
    """A defined-length Content Sequence element of `outer` items, each holding a chain of
    `depth` defined-length sequences of one empty item: outer x (depth + 1) items in all."""
    inner = _ITEM + b"\0\0\0\0"
    for _ in range(depth):
        element = _CONTENT_SEQUENCE + struct.pack("<I", len(inner)) + inner
        inner = _ITEM + struct.pack("<I", len(element)) + element
    value = inner * outer
    return _CONTENT_SEQUENCE + struct.pack("<I", len(value)) + value


def with_nested_items(outer: int, depth: int = 1) -> bytes:
    """A small CT (explicit VR little endian) with nested_items() spliced in before its
    Pixel Data, where (0040,A730) belongs in tag order."""
    data = ct_bytes(rows=4, columns=4)
    at = data.rindex(b"\xe0\x7f\x10\x00")
    return data[:at] + nested_items(outer, depth) + data[at:]
