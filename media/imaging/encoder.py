"""Encode an 8-bit grayscale or RGB image as JPEG, PNG, GIF or WebP."""

from __future__ import annotations

import io

import numpy as np
import simplejpeg
from PIL import Image

from media.imaging.errors import UnsupportedMediaTypeError

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
#: PS3.18 8.7.4 requires GIF (with JPEG and PNG) for a single-frame rendered image.
GIF = "image/gif"
SUPPORTED_MEDIA_TYPES: tuple[str, ...] = (JPEG, PNG, GIF, WEBP)


def normalize_media_type(media_type: str) -> str:
    """Lower-case, parameter-free media type, or UnsupportedMediaTypeError."""
    base = str(media_type).split(";", 1)[0].strip().lower()
    if base not in SUPPORTED_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"cannot render as {media_type!r}; supported: {', '.join(SUPPORTED_MEDIA_TYPES)}"
        )
    return base


def jpeg_subsampling(image: np.ndarray, quality: int) -> str:
    # Colour at high quality keeps full-resolution chroma (ultrasound/pathology text, thin lines).
    return "444" if image.ndim == 2 or quality >= 90 else "420"


def jpeg_mcu(image: np.ndarray, quality: int) -> tuple[int, int]:
    """(width, height) of one MCU for the settings `encode_jpeg` uses (T.81 A.2)."""
    return (16, 16) if jpeg_subsampling(image, quality) == "420" else (8, 8)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG of a uint8 (rows, cols) or (rows, cols, 3) array; quality 1..100."""
    gray = image.ndim == 2
    # libjpeg-turbo via simplejpeg is several times faster than Pillow's encoder.
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(image[..., None] if gray else image),
        quality=quality,
        colorspace="GRAY" if gray else "RGB",
        colorsubsampling=jpeg_subsampling(image, quality),
    )


def encode(image: np.ndarray, media_type: str, quality: int) -> bytes:
    """`image` is uint8 (rows, cols) grayscale or (rows, cols, 3) RGB; quality is 1..100."""
    media_type = normalize_media_type(media_type)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or RGB uint8 image, got {image.dtype} {image.shape}")
    quality = min(100, max(1, int(quality)))
    if media_type == JPEG:
        return encode_jpeg(image, quality)
    picture = Image.fromarray(image, mode="L" if image.ndim == 2 else "RGB")
    buffer = io.BytesIO()
    if media_type == PNG:
        # Level 1: most of the size win of zlib at a fraction of level 6's time.
        picture.save(buffer, format="PNG", compress_level=1)
    elif media_type == GIF:
        # 256 entries: a grayscale frame keeps every level exactly; colour is quantised.
        if picture.mode == "RGB":
            picture = picture.quantize(256)
        picture.save(buffer, format="GIF")
    else:
        # method 2 of 0..6 trades a little size for speed; WebP is lossy here like JPEG.
        picture.save(buffer, format="WEBP", quality=quality, method=2)
    return buffer.getvalue()
