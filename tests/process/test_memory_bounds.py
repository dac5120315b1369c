"""Peak memory of a real server process (VmHWM) for the inputs that used to blow it up.

Figures (issue #7): a 600 MB-inflated Deflated-syntax file of ~600 KB is refused (4xx) and the
server's peak grows < 150 MB; rendering the largest frame the default limits admit grows the
peak < 4x that frame's decoded size.
"""

from __future__ import annotations

import io
import json
import logging
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

from server.config import Settings
from tests.process.conftest import MiB, ServerProcess

log = logging.getLogger(__name__)
STOW = "/dicomweb/studies"
DICOM = {"Content-Type": "application/dicom", "Accept": "application/dicom+json"}


def _header(rows: int, columns: int, frames: int, syntax: str) -> tuple[FileMetaDataset, Dataset]:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P-MEM"
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return meta, ds


def deflate_bomb(path: Path, inflated_bytes: int) -> None:
    """A Deflated Explicit VR Little Endian file whose data set inflates to `inflated_bytes`
    (zeros deflate ~1000:1), written without ever holding the inflated data."""
    frame = 4096 * 4096 * 2
    frames = inflated_bytes // frame + 1
    meta, ds = _header(4096, 4096, frames, DeflatedExplicitVRLittleEndian)
    head = io.BytesIO()
    encoded = DicomFileLike(head)
    encoded.is_implicit_VR, encoded.is_little_endian = False, True
    write_dataset(encoded, ds)
    pixel_length = frames * frame
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_length.to_bytes(4, "little")
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(8 * MiB)
    with path.open("wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(out), meta, enforce_standard=True)
        out.write(deflater.compress(head.getvalue() + element))
        left = pixel_length
        while left:
            n = min(left, len(zeros))
            out.write(deflater.compress(zeros[:n]))
            left -= n
        out.write(deflater.flush())


def largest_frame_file(path: Path, pixels: int) -> tuple[int, int, np.ndarray]:
    """A native 16-bit frame of exactly `pixels` pixels (the frame limit): a gradient plus
    noise, so it is neither trivial to encode nor a lookup table of one value."""
    columns = 8000
    rows = pixels // columns
    assert rows * columns == pixels
    meta, ds = _header(rows, columns, 1, ExplicitVRLittleEndian)
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    rng = np.random.default_rng(7)
    values = (np.arange(columns, dtype=np.uint16) % 4096)[None, :] + rng.integers(
        0, 64, size=(rows, columns), dtype=np.uint16
    )
    ds.PixelData = values.tobytes()
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return rows, columns, values[::500, ::500].copy()


def test_a_deflate_bomb_is_refused_and_peak_memory_stays_flat(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.dcm"
    deflate_bomb(bomb, 600 * 10**6)
    body = bomb.read_bytes()
    assert len(body) < 700 * 1024  # ~600 KB on the wire
    before = server_process.reset_peak()
    status, _, answer = server_process.request("POST", STOW, body, DICOM)
    growth = server_process.peak() - before
    log.warning("deflate bomb: %d bytes on the wire, peak growth %.1f MiB", len(body),
                growth / MiB)
    assert 400 <= status < 500, answer[:500]
    failed = json.loads(answer)["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xA700]  # out of resources
    assert "inflates to more than" in failed[0]["00000902"]["Value"][0]
    assert growth < 150 * MiB, f"peak grew {growth / MiB:.0f} MiB"
    spool = server_process.data_dir / "tmp"
    assert list(spool.rglob("*")) == []  # neither the upload nor its partial inflation is left
    assert list((server_process.data_dir / "dicom").rglob("*.dcm")) == []


def test_rendering_the_largest_admitted_frame_stays_under_4x_its_size(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    limit = Settings().max_frame_pixels  # the default the server runs with
    path = tmp_path / "largest.dcm"
    rows, columns, sample = largest_frame_file(path, limit)
    decoded = rows * columns * 2
    before = server_process.reset_peak()
    status, _, answer = server_process.request("POST", STOW, path.read_bytes(), DICOM)
    ingest_growth = server_process.peak() - before
    assert status == 200, answer[:500]
    url = json.loads(answer)["00081199"]["Value"][0]["00081190"]["Value"][0]
    path = url.split("://", 1)[1].split("/", 1)[1] if "://" in url else url
    rendered = "/" + path.lstrip("/") + "/frames/1/rendered"
    before = server_process.reset_peak()
    status, _, jpeg = server_process.request(
        "GET", rendered + "?window=2048,4096,linear-exact&quality=80", None,
        {"Accept": "image/png"}, timeout=300,
    )
    growth = server_process.peak() - before
    log.warning("largest frame %dx%d (%.0f MiB decoded): ingest peak growth %.1f MiB, "
                "render peak growth %.1f MiB", rows, columns, decoded / MiB,
                ingest_growth / MiB, growth / MiB)
    assert status == 200, jpeg[:500]
    image = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert image.shape == (rows, columns)
    # PS3.3 C.11.2.1.3.2 LINEAR_EXACT, c=2048, w=4096, sampled: the body is the frame.
    expected = np.clip((sample.astype(float) - 2048) / 4096 + 0.5, 0, 1) * 255
    assert np.abs(image[::500, ::500].astype(float) - expected).max() <= 1.0
    assert growth < 4 * decoded, f"peak grew {growth / MiB:.0f} MiB for {decoded / MiB:.0f} MiB"
    assert ingest_growth < decoded, f"ingest peak grew {ingest_growth / MiB:.0f} MiB"
