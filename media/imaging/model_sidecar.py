"""A file's `ImageModel`, kept beside it (`<file>.model.json`) so a first view skips the DICOM
header parse — about 2 ms of pydicom work, most of a cold render.

Derived data only: written at ingest and by reindex, ignored when missing, unreadable or of
another format version (the renderer then parses the header as before). Stored files never
change, so a sidecar written after its file cannot go stale.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import UID

from media.imaging.image_model import (
    FrameTransform,
    ImageModel,
    LookupTable,
    PixelLocation,
    read_image_model,
)
from media.imaging.window import Window

FORMAT = 1
SUFFIX = ".model.json"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(path) + SUFFIX)


def _array(a: np.ndarray) -> dict[str, Any]:
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}


def _from_array(d: dict[str, Any]) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(d["data"]), dtype=np.dtype(d["dtype"]))
    return a.reshape(d["shape"])  # frombuffer over bytes is read-only, as the model expects


def _table(t: LookupTable | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"first_mapped": t.first_mapped, "bits": t.bits, "digest": t.digest,
            "data": _array(t.data)}


def _from_table(d: dict[str, Any] | None) -> LookupTable | None:
    if d is None:
        return None
    return LookupTable(d["first_mapped"], _from_array(d["data"]), d["bits"], d["digest"])


def _options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    if "extended_offsets" in out:
        out["extended_offsets"] = [list(map(int, x)) for x in out["extended_offsets"]]
    return out


def _from_options(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if "transfer_syntax_uid" in out:
        out["transfer_syntax_uid"] = UID(out["transfer_syntax_uid"])
    if "extended_offsets" in out:
        out["extended_offsets"] = tuple(out["extended_offsets"])
    return out


def dumps(model: ImageModel) -> bytes:
    px = model.pixel
    data = {
        "format": FORMAT,
        "sop_class_uid": model.sop_class_uid,
        "sop_instance_uid": model.sop_instance_uid,
        "has_pixels": model.has_pixels,
        "rows": model.rows, "columns": model.columns, "frames": model.frames,
        "samples_per_pixel": model.samples_per_pixel,
        "photometric_interpretation": model.photometric_interpretation,
        "planar_configuration": model.planar_configuration,
        "bits_allocated": model.bits_allocated, "bits_stored": model.bits_stored,
        "pixel_representation": model.pixel_representation,
        "presentation_lut_shape": model.presentation_lut_shape,
        "transforms": [
            {
                "rescale_slope": t.rescale_slope, "rescale_intercept": t.rescale_intercept,
                "modality_lut": _table(t.modality_lut),
                "windows": [[w.center, w.width, w.function] for w in t.windows],
                "window_explanations": list(t.window_explanations),
                "voi_lut": _table(t.voi_lut),
            }
            for t in model.transforms
        ],
        "palette": _array(model.palette) if model.palette is not None else None,
        "pixel": None if px is None else {
            "transfer_syntax_uid": px.transfer_syntax_uid, "offset": px.offset,
            "length": px.length, "encapsulated": px.encapsulated,
            "decode_options": _options(px.decode_options),
        },
    }
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> ImageModel | None:
    """The model, or None for anything that is not a sidecar of this format."""
    try:
        d = json.loads(raw)
        if d.get("format") != FORMAT:
            return None
        px = d["pixel"]
        return ImageModel(
            sop_class_uid=d["sop_class_uid"], sop_instance_uid=d["sop_instance_uid"],
            has_pixels=d["has_pixels"], rows=d["rows"], columns=d["columns"],
            frames=d["frames"], samples_per_pixel=d["samples_per_pixel"],
            photometric_interpretation=d["photometric_interpretation"],
            planar_configuration=d["planar_configuration"],
            bits_allocated=d["bits_allocated"], bits_stored=d["bits_stored"],
            pixel_representation=d["pixel_representation"],
            presentation_lut_shape=d["presentation_lut_shape"],
            transforms=tuple(
                FrameTransform(
                    rescale_slope=t["rescale_slope"], rescale_intercept=t["rescale_intercept"],
                    modality_lut=_from_table(t["modality_lut"]),
                    windows=tuple(Window(*w) for w in t["windows"]),
                    window_explanations=tuple(t["window_explanations"]),
                    voi_lut=_from_table(t["voi_lut"]),
                )
                for t in d["transforms"]
            ),
            palette=_from_array(d["palette"]) if d["palette"] is not None else None,
            pixel=None if px is None else PixelLocation(
                transfer_syntax_uid=px["transfer_syntax_uid"], offset=px["offset"],
                length=px["length"], encapsulated=px["encapsulated"],
                decode_options=_from_options(px["decode_options"]),
            ),
        )
    except (ValueError, KeyError, TypeError):
        return None


def write_sidecar(path: str | os.PathLike[str], model: ImageModel | None = None) -> None:
    """Keep the model beside the file (atomically); without `model`, parse the header for it
    (ingest passes the one validation built, so an upload is parsed once)."""
    target = sidecar_path(path)
    temp = target.with_name(target.name + ".tmp")
    temp.write_bytes(dumps(model if model is not None else read_image_model(path)))
    os.replace(temp, target)


def read_sidecar(path: str | os.PathLike[str]) -> ImageModel | None:
    try:
        return loads(sidecar_path(path).read_bytes())
    except OSError:
        return None


def remove_sidecar(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        sidecar_path(path).unlink()
