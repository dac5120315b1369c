"""Errors raised by the imaging package.

Every error carries a plain-language ``message`` so the server can map the class to an HTTP
status in one place and show the message to the user unchanged.
"""

from __future__ import annotations


def is_decoder_failure(exc: BaseException) -> bool:
    """What a decoder plugin may raise on hostile data: any Exception, and the panics of Rust
    plugins (pylibjpeg-rle), pyo3's PanicException, which is a BaseException that
    ``except Exception`` lets through (a 500). Not importable by name, so matched by it."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


class ImagingError(Exception):
    """Base class for every error the imaging package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDicomError(ImagingError):
    """Not a DICOM Part-10 file, truncated, or missing/inconsistent required attributes."""


class UnsupportedTransferSyntaxError(ImagingError):
    """The pixel data is encoded in a way the installed decoders cannot decode."""


class ImageTooLargeError(ImagingError):
    """Rows × Columns × Frames, or one frame's pixels or decoded bytes, exceed a limit."""


class InflatedTooLargeError(ImageTooLargeError):
    """A Deflated data set inflates beyond the upload limit (refused while inflating)."""


class FrameNotFoundError(ImagingError):
    """The requested (1-based) frame number does not exist in the instance."""


class InvalidWindowError(ImagingError):
    """A window (center/width/function) parameter is malformed or out of range."""


class InvalidViewportError(ImagingError):
    """A viewport size is malformed or not positive."""


class UnsupportedMediaTypeError(ImagingError):
    """The requested rendered media type is not one we can encode."""
