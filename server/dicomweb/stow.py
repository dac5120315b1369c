"""STOW-RS: store instances (PS3.18 §10.5), per-instance outcome in the response."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from server import appkeys
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb import ecg
from server.dicomweb.multipart import parse_params
from server.dicomweb.resources import audit, base_url, uid_param
from server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from server.ingest import IngestResult, Spool, SpooledFile, UploadBudget

DICOM_JSON = "application/dicom+json"
#: Parts in one upload request (STOW-RS or the kiosk form); a thin-slice CT study is a few
#: thousand instances. Each part is a spool file and one validation, so this bounds the work.
MAX_PARTS = 10_000


def check_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"the upload is {request.content_length // 2**20} MiB, over the limit of "
            f"{limit // 2**20} MiB (HUIZHEN_MAX_UPLOAD_MB); nothing was stored"
        )


def check_wire(request: web.Request, limit: int) -> None:
    """Every byte of the body read so far (boundaries, part headers, preambles, the data of
    parts nobody keeps, after de-chunking) counts against the upload limit, not only what is
    spooled: a chunked request has no Content-Length to refuse up front."""
    if request.content.total_bytes > limit:
        raise PayloadTooLarge(
            f"the request body is larger than the limit of {limit // 2**20} MiB "
            "(HUIZHEN_MAX_UPLOAD_MB); nothing was stored",
            limit_bytes=limit,
        )


async def body_parts(request: web.Request, limit: int) -> AsyncIterator[BodyPartReader]:
    """The parts of a multipart request, at most MAX_PARTS, each counted against the limit;
    a malformed body (bad boundary, oversized or too many part headers) is a 400."""
    try:
        reader = await request.multipart()
        count = 0
        while True:
            part = await reader.next()
            check_wire(request, limit)
            if part is None:
                return
            count += 1
            if count > MAX_PARTS:
                raise PayloadTooLarge(f"a request may hold at most {MAX_PARTS} parts")
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            yield part
    except (HttpProcessingError, ValueError, KeyError, AssertionError) as exc:
        raise BadRequest(f"the multipart body is malformed: {exc}") from exc


async def part_chunks(
    part: BodyPartReader, request: web.Request, limit: int
) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(256 * 1024):
            check_wire(request, limit)
            yield chunk
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        raise BadRequest(f"the multipart body is malformed: {exc}") from exc


async def skip_part(part: BodyPartReader, request: web.Request, limit: int) -> None:
    """Read a part nobody keeps, still counting its bytes."""
    async for _ in part_chunks(part, request, limit):
        pass


async def _spool_request(
    request: web.Request, spool: Spool, budget: UploadBudget
) -> list[SpooledFile]:
    media, params = parse_params(request.headers.get("Content-Type", ""))
    if media == "application/dicom":
        # A chunked single-part body is counted by the spool budget as it is written.
        return [await spool.write_stream(request.content.iter_chunked(256 * 1024), "body", budget)]
    if media != "multipart/related" or params.get("type", "").lower() != "application/dicom":
        raise UnsupportedMediaType(
            'STOW-RS takes Content-Type: multipart/related; type="application/dicom"; '
            f"got {request.headers.get('Content-Type') or 'none'}"
        )
    if "boundary" not in params:
        raise BadRequest("the multipart Content-Type has no boundary parameter")
    files: list[SpooledFile] = []
    index = 0
    async for part in body_parts(request, budget.limit):
        index += 1
        part_type, _ = parse_params(part.headers.get("Content-Type", "application/dicom"))
        if part_type != "application/dicom":
            raise UnsupportedMediaType(
                f"part {index} is {part_type[:60]}; only application/dicom parts are accepted "
                "(metadata + bulk data STOW is not supported)"
            )
        chunks = part_chunks(part, request, budget.limit)
        files.append(await spool.write_stream(chunks, f"part {index}", budget))
    return files


def _response_body(request: web.Request, result: IngestResult) -> dict:
    body: dict = {}
    studies = {s.study_instance_uid for s in result.stored}
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base_url(request)}/studies/{studies.pop()}"]}
    if result.stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": {"vr": "UI", "Value": [s.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [s.sop_instance_uid]},
                    "00081190": {
                        "vr": "UR",
                        "Value": [
                            f"{base_url(request)}/studies/{s.study_instance_uid}/series/"
                            f"{s.series_instance_uid}/instances/{s.sop_instance_uid}"
                        ],
                    },
                    # A repeat of a stored instance is a success with no Warning Reason:
                    # PS3.18's three (0xB000 coercion, 0xB006 elements discarded, 0xB007 data
                    # set does not match the SOP Class) all say the stored object differs from
                    # the one sent, and a repeat changed nothing.
                }
                for s in result.stored
            ],
        }
    failed = [
        {
            **({"00081150": {"vr": "UI", "Value": [f.sop_class_uid]}} if f.sop_class_uid else {}),
            **(
                {"00081155": {"vr": "UI", "Value": [f.sop_instance_uid]}}
                if f.sop_instance_uid
                else {}
            ),
            "00081197": {"vr": "US", "Value": [f.failure_reason]},
            # Error Comment: what was wrong, in words a person at the clinic can act on.
            "00000902": {"vr": "LO", "Value": [f"{f.source}: {f.message}"[:64]]},
        }
        for f in result.failed
    ]
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    return body


async def store_instances(request: web.Request) -> web.Response:
    who = principal(request)
    clinic = access.upload_clinic(who)
    ingestor = request.app[appkeys.INGESTOR]
    check_length(request, ingestor.settings.max_upload_bytes)
    target_study = uid_param(request, "study") if "study" in request.match_info else None
    async with ingestor.spool() as (spool, budget):
        files = await _spool_request(request, spool, budget)
        if not files:
            raise BadRequest("the request holds no DICOM parts")
        result = await ingestor.ingest(clinic, files, study_uid=target_study)
    await audit(request, "stow.store", stored=len(result.stored), failed=len(result.failed),
                studies=result.study_uids())
    await ecg.after_ingest(request, who, clinic, result)
    body = _response_body(request, result)
    if not result.stored:
        status = 409
    elif result.failed:
        status = 202
    else:
        status = 200
    return web.json_response(body, status=status, content_type=DICOM_JSON)
