"""POST /api/uploads: the kiosk's plain form upload (DICOM files, a folder, or a zip of them)."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb import ecg
from server.dicomweb.resources import audit
from server.dicomweb.stow import body_parts, check_length, part_chunks, skip_part
from server.errors import BadRequest, UnsupportedMediaType
from server.ingest import SpooledFile

FIELD = "files"


async def upload(request: web.Request) -> web.Response:
    clinic = access.upload_clinic(principal(request))
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            f"uploads are multipart/form-data with a '{FIELD}' field; got "
            f"{request.content_type or 'no Content-Type'}"
        )
    ingestor = request.app[appkeys.INGESTOR]
    check_length(request, ingestor.settings.max_upload_bytes)
    async with ingestor.spool() as (spool, budget):
        received: list[SpooledFile] = []
        async for part in body_parts(request, budget.limit):
            if part.name != FIELD:
                await skip_part(part, request, budget.limit)
                continue
            name = (part.filename or f"file {len(received) + 1}")[:255]
            chunks = part_chunks(part, request, budget.limit)
            received.append(await spool.write_stream(chunks, name, budget))
        if not received:
            raise BadRequest(f"no files: send them in the form field '{FIELD}'")
        files = await ingestor.expand_archives(spool, received, budget)
        if not files:  # only empty archives (or ones holding folders alone)
            raise BadRequest("no files: the archive holds no files to store")
        result = await ingestor.ingest(clinic, files)
    await audit(request, "upload.store", stored=len(result.stored), failed=len(result.failed),
                studies=result.study_uids())
    await ecg.after_ingest(request, principal(request), clinic, result)
    body = {
        "stored": [
            {
                "file": s.source,
                "sop_instance_uid": s.sop_instance_uid,
                "study_instance_uid": s.study_instance_uid,
                "series_instance_uid": s.series_instance_uid,
                "duplicate": s.duplicate,
            }
            for s in result.stored
        ],
        "failed": [
            {"file": f.source, "error": {"code": f.code, "message": f.message}}
            for f in result.failed
        ],
    }
    if not result.stored and result.failed:
        body["error"] = {
            "code": "nothing_stored",
            "message": f"none of the {len(result.failed)} file(s) could be stored; see 'failed'",
        }
        return web.json_response(body, status=400)
    return web.json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/uploads", upload)
