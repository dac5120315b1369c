"""Every error the API can answer, and the one place where exceptions become HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from media.imaging import errors as imaging
from server.log import event

log = logging.getLogger(__name__)


class HuizhenError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class ConfigurationError(HuizhenError):
    code = "configuration_error"
    status = 500


class BadRequest(HuizhenError):
    code = "bad_request"


class InvalidParameter(HuizhenError):
    code = "invalid_parameter"


class InvalidMessage(HuizhenError):
    code = "invalid_message"


class Unauthenticated(HuizhenError):
    status = 401
    code = "unauthenticated"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"


class TokenExpired(Unauthenticated):
    code = "token_expired"


class SessionEnded(Unauthenticated):
    code = "session_ended"


class Forbidden(HuizhenError):
    status = 403
    code = "forbidden"


class NotFound(HuizhenError):
    status = 404
    code = "not_found"


class NotAcceptable(HuizhenError):
    status = 406
    code = "not_acceptable"


class Conflict(HuizhenError):
    status = 409
    code = "conflict"


class StaleView(Conflict):
    """view.update whose base_version is not the room's current view version (another update
    landed first): `details` carry the current version and state to rebase on."""

    code = "stale_view"


class NoExpertOnline(Conflict):
    """consult.start for a department with nobody online (the page offers another department
    or leaving a request)."""

    code = "no_expert_online"


class PatientMismatch(Conflict):
    """The attached study is another patient's; consult.start needs confirm_patient_mismatch."""

    code = "patient_mismatch"


class ClaimConflict(Conflict):
    """A reading request someone else claimed first, or no longer waiting to be read."""

    code = "claim_conflict"


class NotClaimHolder(Conflict):
    """The claim token is not the request's current one (released, lapsed or reassigned)."""

    code = "not_claim_holder"


class ReadBackMismatch(Conflict):
    """A critical alert's acknowledgement whose read-back does not repeat the finding."""

    code = "read_back_mismatch"


class PayloadTooLarge(HuizhenError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(HuizhenError):
    status = 429
    code = "too_many_requests"


class UnsupportedMediaType(HuizhenError):
    status = 415
    code = "unsupported_media_type"


class InvalidDicom(HuizhenError):
    status = 400
    code = "invalid_dicom"


class InvalidArchive(HuizhenError):
    """A zip that cannot be read: corrupt, truncated, encrypted."""

    status = 400
    code = "invalid_archive"


class UnsupportedArchive(HuizhenError):
    """A zip feature we do not read (a compression method other than stored/deflate/bzip2/lzma)."""

    status = 415
    code = "unsupported_archive"


class ServiceUnavailable(HuizhenError):
    status = 503
    code = "service_unavailable"


# media/ knows nothing of HTTP; this table is where its exceptions get a status and a code.
_IMAGING: dict[type[imaging.ImagingError], tuple[int, str]] = {
    imaging.InvalidDicomError: (400, "invalid_dicom"),
    imaging.UnsupportedTransferSyntaxError: (415, "unsupported_transfer_syntax"),
    imaging.ImageTooLargeError: (413, "image_too_large"),
    imaging.FrameNotFoundError: (404, "frame_not_found"),
    imaging.InvalidWindowError: (400, "invalid_window"),
    imaging.InvalidViewportError: (400, "invalid_viewport"),
    imaging.UnsupportedMediaTypeError: (406, "not_acceptable"),
}


def from_imaging(exc: imaging.ImagingError) -> HuizhenError:
    status, code = 400, "imaging_error"
    for cls in type(exc).__mro__:
        if cls in _IMAGING:
            status, code = _IMAGING[cls]
            break
    err = HuizhenError(getattr(exc, "message", str(exc)))
    err.status, err.code = status, code
    return err


# Seconds a client should wait while Redis is unreachable (a supervised restart takes ~1 s).
RETRY_AFTER_S = 2


def unavailable() -> web.Response:
    """503 while the database is unreachable, with Retry-After (RFC 9110 §10.2.3)."""
    return web.json_response(
        {"error": {"code": "service_unavailable",
                   "message": "the database is unreachable for a moment; retry shortly"}},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def json_error(err: HuizhenError) -> web.Response:
    response = web.json_response(err.body(), status=err.status)
    if isinstance(err.details.get("retry_after_s"), int):  # 429 lockouts say how long
        response.headers["Retry-After"] = str(err.details["retry_after_s"])
    elif err.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def unparsable_request(exc: HttpProcessingError) -> web.Response:
    """The answer to a request aiohttp's parser refused (a request line or header over 8 KiB,
    a byte HTTP forbids): a JSON 400 that names the kind of fault, never the client's bytes."""
    status = exc.code if 400 <= exc.code < 500 else 400
    err = BadRequest(f"the request could not be read as HTTP ({type(exc).__name__})")
    return web.json_response(err.body(), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except HuizhenError as err:
        return json_error(err)
    except imaging.ImagingError as exc:
        return json_error(from_imaging(exc))
    except FileNotFoundError as exc:
        # The index names a file that is gone: an operator problem, reported, not a crash.
        event(log, "instance_file_missing", logging.ERROR, path=exc.filename)
        return json_error(NotFound("the file of this instance is missing on the server"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status, "http_error"
        )
        message = exc.reason
        if exc.status == 413:
            message = "the request body is over the upload limit (HUIZHEN_MAX_UPLOAD_MB)"
        return web.json_response({"error": {"code": code, "message": message}}, status=exc.status)
    except HttpProcessingError as exc:
        # aiohttp's parsers raise these for a malformed body read in a handler (a multipart
        # part header, a chunk): the client's fault, said without echoing its bytes.
        event(log, "malformed_body", path=request.path, error=type(exc).__name__)
        return json_error(BadRequest(f"malformed request body ({type(exc).__name__})"))
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Redis is down or restarting (the embedded one is supervised; redis-py reconnects by
        # itself): a pause, not a fault of the request.
        event(log, "redis_unavailable", logging.WARNING, path=request.path,
              error=type(exc).__name__)
        return unavailable()
    except Exception:
        event(log, "request_failed", logging.ERROR, method=request.method, path=request.path)
        log.exception("unhandled_error")
        return web.json_response(
            {"error": {"code": "internal_error", "message": "internal server error"}}, status=500
        )
