"""PDF output of a Document: fpdf2 with Noto Sans CJK SC, so Chinese text is embedded (as a
subset of the font, with its ToUnicode map: the text can be searched and copied back out).

The font comes from Debian's `fonts-noto-cjk` (the Makefile installs it): an OpenType
*collection* (.ttc) holding JP, KR, SC, TC and HK faces; the SC face is found by name in the
collection, not by a fixed index, so a package that reorders its faces still works. A plain
`NotoSansCJKsc-*.otf` (Noto's own release) is used when that is what is installed.

Noto CJK has CFF (PostScript) outlines. fpdf2 embeds those as CIDFontType0 with an embedded
code→CID CMap that pdfium and Acrobat read but text extractors (pypdf, pdfminer) do not: the
text of such a PDF cannot be searched or copied reliably. So each document first gets its own
subset of the face (fontTools, ~0.3 s a face; cached per process and grown as documents use
new characters: `SubsetCache`), converted to TrueType outlines (cu2qu, quadratic within 1 font
unit), which fpdf2 embeds the standard way (CIDFontType2, Identity-H, ToUnicode, only the glyphs
the document uses): every reader gets the text back.

CPU-bound (~0.5–1 s a document): call `render_pdf` in the thread pool (`render_pdf_async`),
never on the event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import re
import shutil
import string
import tempfile
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont, newTable
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace as FontFace_
from PIL import Image

from server.documents.model import Document, DocumentError

FAMILY = "Noto Sans CJK SC"
_FONT_DIRS = (
    Path("/usr/share/fonts/opentype/noto"),  # Debian / Ubuntu fonts-noto-cjk
    Path("/usr/share/fonts/noto-cjk"),  # Arch noto-fonts-cjk
    Path("/usr/share/fonts/google-noto-cjk"),  # Fedora google-noto-sans-cjk-ttc-fonts
    Path("/usr/share/fonts/truetype/noto"),
)
_FILES = {
    "": ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansSC-Regular.otf"),
    "B": ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold.otf", "NotoSansSC-Bold.otf"),
}

MM_MARGIN = 16
_GREY = (90, 90, 90)
_RED = (170, 20, 20)


@dataclass(frozen=True)
class FontFace:
    path: Path
    index: int  # the face's number in a collection (0 for a plain font file)


def _face_index(path: Path) -> int | None:
    """The number of the Noto Sans CJK SC face in `path`, None when it holds none."""
    if path.suffix.lower() == ".ttc":
        collection = TTCollection(str(path), lazy=True)
        try:
            for i, font in enumerate(collection.fonts):
                if font["name"].getDebugName(1) == FAMILY:
                    return i
        finally:
            collection.close()
        return None
    font = TTFont(str(path), lazy=True)
    try:
        return 0 if font["name"].getDebugName(1) in (FAMILY, "Noto Sans SC") else None
    finally:
        font.close()


@lru_cache(maxsize=4)
def find_font(style: str = "") -> FontFace | None:
    """Where the SC face of `style` ("" regular, "B" bold) is installed, or None."""
    for directory in _FONT_DIRS:
        for name in _FILES[style]:
            path = directory / name
            if path.is_file():
                index = _face_index(path)
                if index is not None:
                    return FontFace(path, index)
    return None


def fonts() -> tuple[FontFace, FontFace]:
    regular = find_font("")
    if regular is None:
        raise DocumentError(
            "the Noto Sans CJK SC font is not installed (Debian: apt-get install fonts-noto-cjk)"
        )
    return regular, find_font("B") or regular


_ALWAYS = string.printable + "，。：；、（）—·×±°≥≤µ"  # page numbers, codes, URLs


def _doc_chars(doc: Document) -> str:
    texts = [doc.title, doc.institution, doc.subtitle, doc.footer, doc.watermark, _ALWAYS]
    texts += [x for kv in doc.meta for x in kv]
    for section in doc.sections:
        texts.append(section.heading)
        texts.extend(section.paragraphs)
        texts.extend(c for r in section.rows for c in r)
    texts.extend(i.caption for i in doc.images)
    texts.extend(doc.labels().values())
    if doc.verification is not None:
        texts += [doc.verification.code, doc.verification.url]
    return "".join(sorted(set("".join(texts))))


def truetype_subset(face: FontFace, chars: str, out: Path) -> None:
    """Write to `out` a TrueType font of `face` holding only `chars` (see the module doc)."""
    font = TTFont(str(face.path), fontNumber=face.index, lazy=True)
    try:
        options = subset.Options()
        options.layout_features = []
        options.notdef_outline = True
        options.hinting = False
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx", "DSIG"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        if "CFF " in font:
            _cff_to_glyf(font)
        font.save(str(out))
    finally:
        font.close()


def _cff_to_glyf(font: TTFont) -> None:
    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyph_set)
        glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
        glyf[name] = pen.glyph()
    font["glyf"] = glyf
    font["loca"] = newTable("loca")
    maxp = font["maxp"]
    maxp.tableVersion = 0x00010000
    for attr in ("maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs",
                 "maxInstructionDefs", "maxStackElements", "maxSizeOfInstructions",
                 "maxComponentElements", "maxPoints", "maxContours", "maxCompositePoints",
                 "maxCompositeContours", "maxComponentDepth"):
        setattr(maxp, attr, 0)
    maxp.maxZones = 1
    del font["CFF "]
    font["head"].indexToLocFormat = 0
    font["head"].glyphDataFormat = 0
    post = font["post"]
    post.formatType = 2.0
    post.extraNames = []
    post.mapping = {}
    post.glyphOrder = order
    font.sfntVersion = "\x00\x01\x00\x00"


class _Pdf(FPDF):
    def __init__(self, doc: Document, regular: Path, bold: Path) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc = doc
        self.add_font("cjk", "", str(regular))
        self.add_font("cjk", "B", str(bold))
        self.set_margins(MM_MARGIN, MM_MARGIN, MM_MARGIN)
        self.set_auto_page_break(True, margin=MM_MARGIN + 14)
        self.set_title(doc.title)
        if doc.institution:
            self.set_author(doc.institution)
        self.set_creator("Huizhen")
        self.set_lang("zh-CN" if doc.lang == "zh" else "en")

    def footer(self) -> None:
        labels = self.doc.labels()
        self.set_y(-(MM_MARGIN + 10))
        self.set_draw_color(*_GREY)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_font("cjk", "", 8)
        self.set_text_color(*_GREY)
        v = self.doc.verification
        if v is not None:
            self.cell(0, 4.5, f"{labels['verification']}: {v.code}    {labels['verify_at']}: "
                      f"{v.url}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        left = self.doc.footer
        page = labels["page"].format(n=self.page_no(), total="{nb}")
        self.cell(self.epw * 0.75, 4.5, left[:200])
        self.cell(0, 4.5, page, align="R")
        self.set_text_color(0, 0, 0)


# Han, kana, CJK punctuation and full-width forms: a line may break between any two of them.
_CJK = "\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_TOKENS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+|[^\\S\\n]+|\\n")
# Never at the start of a line (Chinese line-breaking rules: closing punctuation stays behind).
_NO_LINE_START = set("，。、；：！？）》」』】〕’”…—%,.;:!?)]}")


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """`text` broken into lines no wider than `width` in the current font: between any two
    CJK characters, at spaces between other words (a word wider than a line is cut), closing
    punctuation kept on the line before it. fpdf2's own wrapping breaks only at spaces, which
    leaves Chinese paragraphs ragged."""
    lines: list[str] = []
    line = ""
    for token in _TOKENS.findall(text):
        if token == "\n":
            lines.append(line.rstrip())
            line = ""
            continue
        if token.isspace():
            if line:
                line += token
            continue
        candidate = line + token
        if pdf.get_string_width(candidate) <= width or not line.strip():
            line = candidate
        elif token in _NO_LINE_START:
            line = candidate  # a little over the edge, as typesetters do
            continue
        else:
            lines.append(line.rstrip())
            line = token
        while pdf.get_string_width(line) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and pdf.get_string_width(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _para(pdf: FPDF, text: str, size: float = 10.5, style: str = "", h: float = 5.6) -> None:
    pdf.set_font("cjk", style, size)
    for line in wrap(pdf, text, pdf.epw):
        pdf.cell(0, h, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


#: A cached subset holds at most this many characters; past it, a document gets its own.
MAX_CACHED_CHARS = 12_000


class SubsetCache:
    """Per process, per face: one TrueType subset holding every character documents have
    used so far. A document whose characters it already holds reuses it (fpdf2 then embeds
    only the glyphs the document uses); one with new characters rebuilds it with the union.
    Reports repeat their vocabulary, so after the first few documents the ~0.4 s subsetting
    per face is skipped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._entries: dict[str, tuple[frozenset[str], Path]] = {}
        self._built = 0
        self.hits = 0
        self.builds = 0

    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="hz-pdf-fonts-"))
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def path(self, face: FontFace, style: str, chars: str) -> Path:
        wanted = frozenset(chars)
        key = f"{face.path}:{face.index}:{style}"
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and wanted <= entry[0] and entry[1].is_file():
                self.hits += 1
                return entry[1]
            union = wanted | entry[0] if entry is not None else wanted
            if len(union) > MAX_CACHED_CHARS:
                union = wanted
            self._built += 1
            path = self._directory() / f"{style or 'R'}-{self._built}.ttf"
            truetype_subset(face, "".join(sorted(union)), path)
            self.builds += 1
            self._entries[key] = (union, path)
            # A render in another thread may still read a recent one: only subsets more than
            # four builds old are removed.
            for old in self._directory().glob(f"{style or 'R'}-*.ttf"):
                number = int(old.stem.split("-")[1])
                if number < self._built - 4:
                    old.unlink(missing_ok=True)
            return path


SUBSETS = SubsetCache()


def _build(doc: Document) -> bytes:
    regular, bold = fonts()
    chars = _doc_chars(doc)
    pdf = _Pdf(doc, SUBSETS.path(regular, "", chars), SUBSETS.path(bold, "B", chars))
    _layout(pdf, doc)
    return bytes(pdf.output())


def _layout(pdf: FPDF, doc: Document) -> None:
    pdf.add_page()
    if doc.institution:
        pdf.set_text_color(*_GREY)
        _para(pdf, doc.institution, 10, "B")
        pdf.set_text_color(0, 0, 0)
    _para(pdf, doc.title, 17, "B", 9)
    if doc.subtitle:
        _para(pdf, doc.subtitle, 11)
    if doc.watermark:
        pdf.ln(1)
        pdf.set_text_color(*_RED)
        pdf.set_draw_color(*_RED)
        pdf.set_font("cjk", "B", 11)
        pdf.multi_cell(0, 7, doc.watermark, border=1, align="C",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
    pdf.set_draw_color(*_GREY)
    pdf.ln(2)
    if doc.meta:
        pdf.set_font("cjk", "", 9.5)
        with pdf.table(col_widths=(30, 70), first_row_as_headings=False,
                       borders_layout="HORIZONTAL_LINES", line_height=5.5) as table:
            for label, value in doc.meta:
                row = table.row()
                row.cell(label)
                row.cell(value)
        pdf.ln(3)
    for section in doc.sections:
        if section.heading:
            _para(pdf, section.heading, 12.5, "B", 7.5)
        for paragraph in section.paragraphs:
            _para(pdf, paragraph)
            pdf.ln(1)
        if section.rows:
            pdf.set_font("cjk", "", 9.5)
            with pdf.table(first_row_as_headings=section.header_row, line_height=5.5,
                           headings_style=FontFace_(emphasis="BOLD")) as table:
                for cells in section.rows:
                    row = table.row()
                    for cell in cells:
                        row.cell(cell)
        pdf.ln(2.5)
    if doc.images:
        _images(pdf, doc)


def _scaled_images(pdf: FPDF, doc: Document) -> None:
    """True-scale images (ECG tracings): each on a landscape A4 page of its own, placed at its
    width_mm × height_mm (the PDF's unit is the millimetre), so the grid prints at 1 mm."""
    for image in doc.images:
        if not image.scaled:
            continue
        pdf.add_page(orientation="L")
        if image.caption:
            _para(pdf, image.caption, 11, "B", 6.5)
        try:
            pdf.image(io.BytesIO(image.png), x=pdf.l_margin, y=pdf.get_y(),
                      w=image.width_mm, h=image.height_mm)
        except (OSError, ValueError, RuntimeError) as exc:
            raise DocumentError(f"an image could not be read ({type(exc).__name__})") from exc


def _images(pdf: FPDF, doc: Document) -> None:
    fitted = [i for i in doc.images if not i.scaled]
    if fitted:
        _fitted_images(pdf, doc, fitted)
    _scaled_images(pdf, doc)


def _fitted_images(pdf: FPDF, doc: Document, images: list) -> None:  # type: ignore[type-arg]
    gap = 6.0
    width = (pdf.epw - gap) / 2
    max_h = 75.0
    if pdf.get_y() + max_h + 20 > pdf.page_break_trigger:
        pdf.add_page()  # the heading stays with its first images
    _para(pdf, doc.labels()["images"], 12.5, "B", 7.5)
    for i in range(0, len(images), 2):
        pair = images[i:i + 2]
        if pdf.get_y() + max_h + 12 > pdf.page_break_trigger:
            pdf.add_page()
        top = pdf.get_y()
        bottom = top
        for j, image in enumerate(pair):
            x = pdf.l_margin + j * (width + gap)
            try:
                placed = _place_image(pdf, image.png, x, top, width, max_h)
            except (OSError, ValueError, RuntimeError) as exc:
                raise DocumentError(f"an image could not be read ({type(exc).__name__})") from exc
            y = top + placed
            if image.caption:
                pdf.set_xy(x, y + 1)
                pdf.set_font("cjk", "", 8.5)
                pdf.multi_cell(width, 4.5, image.caption, align="L",
                               new_x=XPos.LEFT, new_y=YPos.NEXT)
                y = pdf.get_y()
            bottom = max(bottom, y)
        pdf.set_xy(pdf.l_margin, bottom + 4)


def _place_image(pdf: FPDF, png: bytes, x: float, y: float, max_w: float, max_h: float) -> float:
    """Draw the PNG fitted into max_w × max_h at (x, y); returns the height used."""
    with Image.open(io.BytesIO(png)) as im:
        w_px, h_px = im.size
    if w_px <= 0 or h_px <= 0:
        raise ValueError("empty image")
    scale = min(max_w / w_px, max_h / h_px)
    w, h = w_px * scale, h_px * scale
    pdf.image(io.BytesIO(png), x=x + (max_w - w) / 2, y=y, w=w, h=h)
    return h


def render_pdf(doc: Document) -> bytes:
    """The PDF of `doc` (blocking: run it in the thread pool). DocumentError when it cannot."""
    doc.check()
    return _build(doc)


async def render_pdf_async(doc: Document, executor: Executor) -> bytes:
    """`render_pdf` in the application's thread pool (appkeys.EXECUTOR)."""
    return await asyncio.get_running_loop().run_in_executor(executor, render_pdf, doc)
