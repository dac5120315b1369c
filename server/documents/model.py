"""The printable document: one model for every paper Huizhen hands out (reading reports,
consult opinions, MDT summaries). `render_pdf` (server/documents/pdf.py) makes the PDF,
`Document.to_json()` feeds the one printable page (client_web/print.html).

A document carries only display text: its producer decides what each audience may see (a clinic
never gets another clinic's patient) and localises its own labels; the few labels of the frame
itself (page numbers, verification) come from `LABELS` by `lang`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

LANGS = ("en", "zh")

# Bounds: a document is built by the server from stored records, but those records came from
# users; these keep one PDF's cost bounded whatever they wrote.
MAX_TEXT_CHARS = 200_000  # every string of the document together
MAX_SECTIONS = 100
MAX_ROWS = 500
MAX_IMAGES = 24
MAX_IMAGE_BYTES = 8 * 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "page": "Page {n} of {total}",
        "verification": "Verification code",
        "verify_at": "Verify at",
        "images": "Key images",
    },
    "zh": {
        "page": "第 {n} 页，共 {total} 页",
        "verification": "验证码",
        "verify_at": "验证网址",
        "images": "关键图像",
    },
}


class DocumentError(ValueError):
    """A document that cannot be produced (over a bound, an image that is no PNG, no font)."""


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    #: Table rows; with `header_row` the first one is the header.
    rows: tuple[tuple[str, ...], ...] = ()
    header_row: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"heading": self.heading, "paragraphs": list(self.paragraphs),
                "rows": [list(r) for r in self.rows], "header_row": self.header_row}


@dataclass(frozen=True)
class DocImage:
    png: bytes
    caption: str = ""
    #: Where the printable page loads it from (an API path the reader may fetch); without it
    #: `to_json` inlines the PNG as a data: URL.
    src: str = ""
    #: A true-scale image (an ECG tracing, media/ecg/tracing.py): placed at exactly this size
    #: in millimetres, on a landscape page of its own in the PDF; 0 for a fitted image.
    width_mm: float = 0.0
    height_mm: float = 0.0

    @property
    def scaled(self) -> bool:
        return self.width_mm > 0 and self.height_mm > 0

    def to_json(self) -> dict[str, Any]:
        src = self.src or "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
        out: dict[str, Any] = {"src": src, "caption": self.caption}
        if self.scaled:
            out["width_mm"], out["height_mm"] = self.width_mm, self.height_mm
        return out


@dataclass(frozen=True)
class Verification:
    code: str
    url: str  # absolute (HUIZHEN_PUBLIC_URL) or path-absolute, e.g. /verify/ABCD-EFGH-JKLM

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "url": self.url}


@dataclass(frozen=True)
class Document:
    title: str
    institution: str = ""
    subtitle: str = ""
    #: Key/value lines under the title (patient, study, signer, time...), in order.
    meta: tuple[tuple[str, str], ...] = ()
    sections: tuple[Section, ...] = ()
    images: tuple[DocImage, ...] = ()
    verification: Verification | None = None
    footer: str = ""
    lang: str = "en"
    #: A banner across the top (e.g. "SUPERSEDED by version 3"), empty for none.
    watermark: str = field(default="")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise DocumentError when the document is over a bound."""
        if self.lang not in LANGS:
            raise DocumentError(f"lang must be one of {', '.join(LANGS)}")
        if len(self.sections) > MAX_SECTIONS:
            raise DocumentError(f"at most {MAX_SECTIONS} sections")
        if len(self.images) > MAX_IMAGES:
            raise DocumentError(f"at most {MAX_IMAGES} images")
        rows = sum(len(s.rows) for s in self.sections)
        if rows > MAX_ROWS:
            raise DocumentError(f"at most {MAX_ROWS} table rows")
        for image in self.images:
            if len(image.png) > MAX_IMAGE_BYTES:
                raise DocumentError(f"an image is over {MAX_IMAGE_BYTES // 2**20} MiB")
            if not image.png.startswith(PNG_SIGNATURE):
                raise DocumentError("document images must be PNG")
            if image.scaled and (image.width_mm > 265 or image.height_mm > 160):
                raise DocumentError("a true-scale image is over 265 × 160 mm")
        if self.text_chars() > MAX_TEXT_CHARS:
            raise DocumentError(f"the document's text is over {MAX_TEXT_CHARS} characters")

    def text_chars(self) -> int:
        texts = [self.title, self.institution, self.subtitle, self.footer, self.watermark]
        texts += [x for kv in self.meta for x in kv]
        for s in self.sections:
            texts.append(s.heading)
            texts.extend(s.paragraphs)
            texts.extend(c for r in s.rows for c in r)
        texts.extend(i.caption for i in self.images)
        return sum(len(t) for t in texts)

    def labels(self) -> dict[str, str]:
        return LABELS[self.lang]

    def to_json(self) -> dict[str, Any]:
        """What client_web/print.html renders: every field, images as URLs."""
        return {
            "title": self.title,
            "institution": self.institution,
            "subtitle": self.subtitle,
            "meta": [{"label": k, "value": v} for k, v in self.meta],
            "sections": [s.to_json() for s in self.sections],
            "images": [i.to_json() for i in self.images],
            "verification": self.verification.to_json() if self.verification else None,
            "footer": self.footer,
            "lang": self.lang,
            "watermark": self.watermark,
            "labels": {k: v for k, v in self.labels().items() if k != "page"},
        }
