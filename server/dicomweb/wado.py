"""WADO-RS: retrieve instances, metadata, frames and bulk data (PS3.18 §10.4)."""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from aiohttp import web
from pydicom.uid import ExplicitVRLittleEndian

from media.imaging.image_model import ImageModel
from media.imaging.pixel_decoder import check_frame, decode_stored, stored_dtype
from server import appkeys
from server.dicomweb.multipart import MultipartWriter, accept_of, negotiate_multipart
from server.dicomweb.resources import (
    audit,
    authorized_instance,
    authorized_study,
    base_url,
    file_path,
    uid_param,
)
from server.errors import InvalidParameter, NotAcceptable, NotFound, PayloadTooLarge
from server.params import parse_hex8, parse_int
from server.store.study_index import InstanceRecord

PIXEL_DATA = "7FE00010"
_CHUNK = 256 * 1024
MAX_FRAMES_PER_REQUEST = 1000


# -- helpers that run in the thread pool ---------------------------------------------------------


@lru_cache(maxsize=4096)
def _metadata(path: str, instance_url: str) -> dict[str, Any]:
    """DICOM JSON of one instance with BulkDataURIs for large binary values (cached: files are
    immutable once stored)."""
    ds = pydicom.dcmread(path, defer_size=4096)

    def bulk_uri(elem: pydicom.DataElement) -> str:
        return f"{instance_url}/bulkdata/{elem.tag:08X}"

    data = ds.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=bulk_uri)
    if PIXEL_DATA in data:
        # Viewers fetch pixels per frame; PS3.18 lets the pixel BulkDataURI name the frames.
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        data[PIXEL_DATA] = {
            "vr": data[PIXEL_DATA].get("vr", "OW"),
            "BulkDataURI": f"{instance_url}/frames/{','.join(map(str, range(1, frames + 1)))}",
        }
    data["00020010"] = {"vr": "UI", "Value": [str(ds.file_meta.TransferSyntaxUID)]}
    _nested_bulk_uris(data, instance_url)
    return data


def _nested_bulk_uris(data: dict[str, Any], instance_url: str) -> None:
    """A bulk value inside a sequence item (an ECG's Waveform Data in each multiplex group) is
    named by its path: …/bulkdata/{sequence tag}/{item, from 1}/{tag}."""
    for tag, element in data.items():
        if element.get("vr") != "SQ":
            continue
        for number, item in enumerate(element.get("Value") or [], start=1):
            for inner, value in item.items():
                if isinstance(value, dict) and "BulkDataURI" in value:
                    value["BulkDataURI"] = f"{instance_url}/bulkdata/{tag}/{number}/{inner}"


def _read_chunks(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(_CHUNK)


def _transcode(path: Path, transfer_syntax: str) -> bytes:
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()  # pydicom's pixel plugins; sets Explicit VR Little Endian
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(transfer_syntax)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def _native_frame_bytes(model: ImageModel) -> int:
    """Bytes of one frame as Explicit VR Little Endian native pixels (what we send)."""
    return model.rows * model.columns * model.samples_per_pixel * (model.bits_allocated // 8)


def _streamable(model: ImageModel) -> bool:
    return (
        model.has_pixels
        and model.pixel is not None
        and model.bits_allocated in (8, 16, 32)
        and model.photometric_interpretation != "NONE"
    )


def _transcode_header(path: Path, model: ImageModel) -> bytes:
    """Everything of the Explicit VR Little Endian file up to the Pixel Data value (as pydicom's
    decompress would write it: color decoded to RGB, interleaved), then the element header."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if model.samples_per_pixel > 1:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    buf = io.BytesIO()
    # Explicit encoding arguments: save_as refuses to turn a big-endian file into little.
    pydicom.dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=False, little_endian=True)
    length = _native_frame_bytes(model) * model.frames
    vr = b"OB" if model.bits_allocated == 8 else b"OW"
    buf.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, vr, 0, length + (length & 1)))
    return buf.getvalue()


def _frame_le_bytes(path: Path, model: ImageModel, frame: int) -> bytes:
    arr = decode_stored(path, model, frame)
    return np.ascontiguousarray(arr, dtype=stored_dtype(model)).tobytes()


async def _transcoded_chunks(
    request: web.Request, path: Path, model: ImageModel
) -> AsyncIterator[bytes]:
    """An instance as Explicit VR Little Endian, one decoded frame in memory at a time."""
    loop = asyncio.get_running_loop()
    executor = request.app[appkeys.EXECUTOR]
    yield await loop.run_in_executor(executor, _transcode_header, path, model)
    for frame in range(1, model.frames + 1):
        yield await loop.run_in_executor(executor, _frame_le_bytes, path, model, frame)
    if (_native_frame_bytes(model) * model.frames) & 1:
        yield b"\0"


def check_response_size(request: web.Request, total: int) -> None:
    limit = request.app[appkeys.SETTINGS].max_response_bytes
    if total > limit:
        raise PayloadTooLarge(
            f"the response would hold {total // 2**20} MiB of decoded pixels, over the limit of "
            f"{limit // 2**20} MiB (HUIZHEN_MAX_RESPONSE_MB); ask for fewer frames or for the "
            "instance as stored (transfer-syntax=*)",
            limit_bytes=limit,
        )


def _bulk_value(path: Path, tag: int, within: tuple[int, int] | None = None) -> bytes:
    # Deferred: only the asked-for value is read into memory, not every large one.
    ds = pydicom.dcmread(path, defer_size=4096)
    if within is not None:
        seq_tag, number = within
        items = ds[seq_tag].value if seq_tag in ds else None
        if not isinstance(items, pydicom.Sequence) or not 1 <= number <= len(items):
            raise NotFound(f"the instance has no item {number} of {seq_tag:08X}")
        ds = items[number - 1]
    if tag not in ds:
        raise NotFound(f"the instance has no attribute {tag:08X}")
    value = ds[tag].value
    if not isinstance(value, bytes | bytearray):
        raise NotFound(f"attribute {tag:08X} is not bulk data")
    return bytes(value)


# -- handlers ------------------------------------------------------------------------------------


def _instance_url(request: web.Request, r: InstanceRecord) -> str:
    return f"{base_url(request)}/studies/{r.study_uid}/series/{r.series_uid}/instances/{r.sop_uid}"


async def _scope(request: web.Request) -> list[InstanceRecord]:
    """The instances a study/series/instance URL names, after the access check."""
    study = uid_param(request, "study")
    series = uid_param(request, "series") if "series" in request.match_info else None
    if "instance" in request.match_info:
        assert series is not None
        return [await authorized_instance(request, study, series, uid_param(request, "instance"))]
    found = await authorized_study(request, study)
    records = await request.app[appkeys.STORE].studies.instances(found.clinic, study, series)
    if not records:
        raise NotFound("no instances here")
    return records


async def _file_chunks(request: web.Request, path: Path) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    executor = request.app[appkeys.EXECUTOR]
    offset = 0
    while chunk := await loop.run_in_executor(executor, _read_chunks, path, offset):
        offset += len(chunk)
        yield chunk


async def retrieve(request: web.Request) -> web.StreamResponse:
    media = negotiate_multipart(accept_of(request), "application/dicom")
    wanted = media.params.get("transfer-syntax", ExplicitVRLittleEndian)
    records = await _scope(request)
    await audit(
        request,
        "wado.retrieve",
        study=records[0].study_uid,
        series=request.match_info.get("series"),
        instances=len(records),
    )
    plan: list[tuple[InstanceRecord, str, str]] = []
    for record in records:
        stored = (record.attrs.get("00083002", {}).get("Value") or [""])[0]
        ts = stored if wanted == "*" else wanted
        if ts not in (stored, ExplicitVRLittleEndian):
            raise NotAcceptable(
                f"transfer syntax {ts} is not available; ask for * (as stored, {stored}) "
                f"or {ExplicitVRLittleEndian}"
            )
        plan.append((record, stored, ts))
    loop = asyncio.get_running_loop()
    renderer = request.app[appkeys.RENDERER]
    # Decoded bytes are known from the models before anything is sent: refuse up front.
    models: dict[str, ImageModel] = {}
    for record, stored, ts in plan:
        if ts != stored:
            models[record.sop_uid] = await renderer.image_model(file_path(request, record))
    check_response_size(request, sum(
        _native_frame_bytes(m) * m.frames for m in models.values() if _streamable(m)
    ))
    writer = MultipartWriter(request, "application/dicom")
    for record, stored, ts in plan:
        path = file_path(request, record)
        if ts == stored:
            body: bytes | AsyncIterator[bytes] = _file_chunks(request, path)
        elif _streamable(model := models[record.sop_uid]):
            body = _transcoded_chunks(request, path, model)
        else:  # no pixels (SR, RT plan...) or 1-bit: small, re-encoded whole by pydicom
            body = await loop.run_in_executor(request.app[appkeys.EXECUTOR], _transcode, path, ts)
        await writer.part(
            body,
            content_type=f"application/dicom; transfer-syntax={ts}",
            location=_instance_url(request, record),
        )
    return await writer.finish()


async def metadata(request: web.Request) -> web.Response:
    records = await _scope(request)
    await audit(
        request,
        "wado.metadata",
        study=records[0].study_uid,
        series=request.match_info.get("series"),
        instances=len(records),
    )
    loop = asyncio.get_running_loop()
    executor = request.app[appkeys.EXECUTOR]
    payload = await asyncio.gather(
        *(
            loop.run_in_executor(
                executor, _metadata, str(file_path(request, r)), _instance_url(request, r)
            )
            for r in records
        )
    )
    return web.json_response(
        list(payload), content_type="application/dicom+json", headers={"Cache-Control": "no-store"}
    )


def _frame_list(value: str) -> list[int]:
    parts = [p.strip() for p in value.replace("%2C", ",").split(",")]
    if len(parts) > MAX_FRAMES_PER_REQUEST:
        raise InvalidParameter(f"at most {MAX_FRAMES_PER_REQUEST} frames per request")
    return [parse_int(p, "frame number", minimum=1, maximum=2**31 - 1) for p in parts]


async def frames(request: web.Request) -> web.StreamResponse:
    negotiate_multipart(accept_of(request), "application/octet-stream")
    numbers = _frame_list(request.match_info["frames"])
    (record,) = await _scope(request)
    renderer = request.app[appkeys.RENDERER]
    path = file_path(request, record)
    # Every number checked against the model before the body starts (a clean 404, not a cut
    # body), the total known up front; then one decoded frame in memory at a time.
    model = await renderer.image_model(path)
    for n in numbers:
        check_frame(model, n)
    check_response_size(request, len(numbers) * _native_frame_bytes(model))
    await audit(
        request,
        "wado.frames",
        study=record.study_uid,
        series=record.series_uid,
        instance=record.sop_uid,
        frames=",".join(map(str, numbers)),
    )
    writer = MultipartWriter(request, "application/octet-stream")
    for n in numbers:
        await writer.part(
            await renderer.frame_bytes(path, n),
            content_type=f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}",
            location=f"{_instance_url(request, record)}/frames/{n}",
        )
    return await writer.finish()


async def bulkdata(request: web.Request) -> web.StreamResponse:
    negotiate_multipart(accept_of(request), "application/octet-stream")
    tag = parse_hex8(request.match_info["tag"], "bulk data tag")
    within = None
    if "seq" in request.match_info:
        within = (parse_hex8(request.match_info["seq"], "sequence tag"),
                  parse_int(request.match_info["item"], "item number", minimum=1,
                            maximum=100_000))
    (record,) = await _scope(request)
    body = await asyncio.get_running_loop().run_in_executor(
        request.app[appkeys.EXECUTOR], _bulk_value, file_path(request, record), tag, within
    )
    await audit(
        request,
        "wado.bulkdata",
        study=record.study_uid,
        series=record.series_uid,
        instance=record.sop_uid,
        tag=f"{tag:08X}" if within is None else f"{within[0]:08X}/{within[1]}/{tag:08X}",
    )
    path = request.match_info["tag"] if within is None else "/".join(
        request.match_info[k] for k in ("seq", "item", "tag"))
    writer = MultipartWriter(request, "application/octet-stream")
    # The part names its BulkDataURI, as the metadata gave it (PS3.18 8.7: a part's location).
    await writer.part(body, location=f"{_instance_url(request, record)}/bulkdata/{path}")
    return await writer.finish()
