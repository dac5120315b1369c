"""ECG waveforms for the viewer: the compact samples and the index summary of one instance.

Authorised exactly as any instance (resources.authorized_instance: own clinic or a grant,
server/auth/access.py decides) and audited. The compact body (media/ecg/compact.py) is made in
the thread pool, cached per file (stored files never change) and sent gzip-compressed when the
client accepts it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections import OrderedDict
from pathlib import Path
from threading import Lock

import pydicom
from aiohttp import web
from redis.exceptions import RedisError

from media.ecg import compact, waveform
from server import appkeys
from server.auth.principal import Principal
from server.clinical import ecg_reading
from server.dicomweb.multipart import negotiate
from server.dicomweb.resources import audit, authorized_instance, file_path, uid_param
from server.errors import InvalidParameter, NotFound, PayloadTooLarge
from server.ingest import IngestResult
from server.log import event
from server.realtime import outbound as out
from server.store import keys

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/vnd.huizhen.ecg"
_CACHE_ENTRIES = 64
#: Bytes the cache holds at most (identity + gzip bodies): a 10-minute recording's body is
#: 7 MB, so an entry count alone would let 64 of them pin half a gigabyte.
_CACHE_BYTES = 48 * 2**20
_cache: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
_cache_lock = Lock()


def _too_many_samples(total: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the ECG holds {total:,} samples, more than the {compact.MAX_SAMPLES:,} the viewer "
        "format carries; read it through WADO-RS bulk data (the metadata's BulkDataURI)"
    )


def _compact(path: Path, extra: dict[str, object]) -> tuple[bytes, bytes]:
    """(identity, gzip) bodies of a stored ECG (thread pool)."""
    key = str(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    ds = pydicom.dcmread(path)
    if not waveform.is_ecg(ds):
        raise NotFound("the instance is not an ECG waveform")
    waveform.check_waveform(ds)  # checked at ingest; cheap, and the file is what we send
    groups = waveform.decode(ds)
    total = sum(g.samples * len(g.channels) for g in groups)
    if total > compact.MAX_SAMPLES:
        raise _too_many_samples(total)
    body = compact.encode(groups, extra)
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    with _cache_lock:
        _cache[key] = (body, packed)
        held = sum(len(a) + len(b) for a, b in _cache.values())
        while len(_cache) > 1 and (len(_cache) > _CACHE_ENTRIES or held > _CACHE_BYTES):
            _, (a, b) = _cache.popitem(last=False)
            held -= len(a) + len(b)
    return body, packed


async def _record(request: web.Request, offered: str):  # type: ignore[no-untyped-def]
    # Malformed requests are refused the same whoever asks and whatever exists (no oracle).
    if request.query:
        raise InvalidParameter(
            f"unknown parameter {next(iter(request.query))[:40]!r}; this resource takes none")
    negotiate(request.headers.get("Accept"), (offered,))
    record = await authorized_instance(
        request, uid_param(request, "study"), uid_param(request, "series"),
        uid_param(request, "instance"))
    if record.ecg is None:
        raise NotFound("the instance is not an ECG waveform")
    return record


async def samples(request: web.Request) -> web.Response:
    """GET …/instances/{instance}/ecg: the compact waveform (all multiplex groups)."""
    record = await _record(request, MEDIA_TYPE)
    # The index knows the size: a long (ambulatory) recording is refused before its file is read.
    total = sum(int(g.get("samples", 0)) * int(g.get("channels", 0))
                for g in record.ecg.get("groups") or [])
    if total > compact.MAX_SAMPLES:
        raise _too_many_samples(total)
    extra = {"summary": {k: v for k, v in record.ecg.items() if k != "screening"},
             "screening": record.ecg.get("screening")}
    body, packed = await asyncio.get_running_loop().run_in_executor(
        request.app[appkeys.EXECUTOR], _compact, file_path(request, record), extra)
    await audit(request, "ecg.samples", study=record.study_uid, series=record.series_uid,
                instance=record.sop_uid)
    headers = {"Cache-Control": "private, no-store", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=packed, content_type=MEDIA_TYPE, headers=headers)
    return web.Response(body=body, content_type=MEDIA_TYPE, headers=headers)


async def summary(request: web.Request) -> web.Response:
    """GET …/instances/{instance}/ecg/summary: acquisition, device, rate, duration, the device's
    measurements and statements, and the pre-screening result (from the index)."""
    record = await _record(request, "application/json")
    await audit(request, "ecg.summary", study=record.study_uid, series=record.series_uid,
                instance=record.sop_uid)
    return web.json_response(
        {"study_uid": record.study_uid, "series_uid": record.series_uid,
         "sop_instance_uid": record.sop_uid, **(record.ecg or {})},
        headers={"Cache-Control": "no-store"})


async def after_ingest(request: web.Request, who: Principal, clinic: str,
                       result: IngestResult) -> None:
    """New ECGs of an upload: told to the clinic's open pages (`ecg.stored`: a kiosk in a call
    lists them at once to send into it) and put onto the ECG readers' worklist
    (server/clinical/ecg_reading.py)."""
    stored = [s for s in result.stored
              if not s.duplicate and s.sop_class_uid in waveform.ECG_SOP_CLASSES]
    if not stored:
        return
    new = [(s.study_instance_uid, s.sop_instance_uid) for s in stored]
    realtime = request.app.get(appkeys.REALTIME)
    if realtime is not None:
        message = out.EcgStored(clinic=clinic, instances=[
            {"study_uid": s.study_instance_uid, "series_uid": s.series_instance_uid,
             "sop_instance_uid": s.sop_instance_uid} for s in stored])
        try:
            await realtime.hub.publish(keys.channel_clinic(clinic), message)
        except RedisError as exc:
            # The upload is stored and answered regardless; a page's list is only late (it
            # reloads it when the call starts again).
            event(log, "ecg_stored_publish_failed", logging.WARNING, clinic=clinic,
                  error=type(exc).__name__)
    await ecg_reading.request_readings(
        request.app[appkeys.STORE], request.app[appkeys.WORKLIST],
        getattr(realtime, "notifier", None), who, clinic, new)
