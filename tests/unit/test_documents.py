"""The printable-document module: Chinese text embedded and read back, images embedded, the
verification footer, bounds, Chinese line breaking."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from fontTools.ttLib import TTCollection
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader

from server.documents import (
    DocImage,
    Document,
    DocumentError,
    Section,
    Verification,
    find_font,
    render_pdf,
    render_pdf_async,
)
from server.documents.pdf import FAMILY, _Pdf, fonts, truetype_subset, wrap


def _png(w: int = 64, h: int = 48, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), value).save(buf, "PNG")
    return buf.getvalue()


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "".join("".join(p.extract_text().split()) for p in reader.pages)


# 300 distinct Han characters: glyph codes above 255, where a one-byte reading would garble.
MANY_HAN = "".join(chr(0x4E00 + i * 37) for i in range(300))


def _doc(**changes) -> Document:
    fields = dict(
        title="影像诊断报告",
        institution="青水县医学影像中心",
        subtitle="CT 胸部平扫 Chest CT",
        meta=(("患者", "张三"), ("签名医生", "李明"), ("签名时间", "2026-12-02 09:30 UTC")),
        sections=(
            Section("所见", ("右肺上叶见一结节，大小约 12 mm × 10 mm，边界清楚。",)),
            Section("印象", ("右肺上叶结节，建议三个月后复查。",),
                    rows=(("测量", "值"), ("长径", "12 mm")), header_row=True),
        ),
        images=(DocImage(_png(), "图 1 肺窗"), DocImage(_png(80, 80, 200), "图 2")),
        verification=Verification("ABCD-EFGH-JKLM", "https://pacs.example.org/verify/ABCD-EFGH-JKLM"),
        footer="惠诊 Huizhen",
        lang="zh",
    )
    fields.update(changes)
    return Document(**fields)


def test_the_sc_face_is_found_by_name_in_the_collection() -> None:
    face = find_font("")
    assert face is not None, "fonts-noto-cjk is not installed (make test installs it)"
    if face.path.suffix == ".ttc":
        collection = TTCollection(str(face.path), lazy=True)
        assert collection.fonts[face.index]["name"].getDebugName(1) == FAMILY
        collection.close()


def test_chinese_text_is_embedded_and_reads_back() -> None:
    pdf = render_pdf(_doc())
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    for expected in ("青水县医学影像中心", "影像诊断报告", "CT胸部平扫ChestCT", "患者", "张三",
                     "签名医生李明", "右肺上叶见一结节，大小约12mm×10mm，边界清楚。",
                     "右肺上叶结节，建议三个月后复查。", "长径12mm", "关键图像", "图1肺窗",
                     "验证码:ABCD-EFGH-JKLM", "https://pacs.example.org/verify/ABCD-EFGH-JKLM",
                     "第1页，共1页", "惠诊Huizhen"):
        assert expected in text, expected


def test_the_font_is_an_embedded_truetype_subset() -> None:
    reader = PdfReader(io.BytesIO(render_pdf(_doc())))
    fonts_seen = reader.pages[0]["/Resources"]["/Font"]
    assert fonts_seen
    for ref in fonts_seen.values():
        font = ref.get_object()
        assert font["/Subtype"] == "/Type0"
        assert font["/Encoding"] == "/Identity-H"
        descendant = font["/DescendantFonts"][0].get_object()
        assert descendant["/Subtype"] == "/CIDFontType2"
        assert "/FontFile2" in descendant["/FontDescriptor"].get_object()  # embedded
        assert "NotoSansCJKSC" in str(font["/BaseFont"])


def test_many_distinct_characters_read_back() -> None:
    doc = _doc(sections=(Section("文字", (MANY_HAN,)),), images=())
    assert MANY_HAN in _text(render_pdf(doc))


def test_images_are_embedded() -> None:
    reader = PdfReader(io.BytesIO(render_pdf(_doc())))
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 2
    assert {im.image.size for im in images} == {(64, 48), (80, 80)}


def test_english_document_and_watermark() -> None:
    doc = _doc(lang="en", title="Imaging report", watermark="SUPERSEDED by version 2",
               sections=(Section("Findings", ("A 12 mm nodule in the right upper lobe.",)),))
    text = _text(render_pdf(doc))
    assert "SUPERSEDEDbyversion2" in text
    assert "Verificationcode:ABCD-EFGH-JKLM" in text
    assert "Page1of1" in text


def test_long_documents_flow_onto_pages_with_the_footer_on_each() -> None:
    doc = _doc(sections=tuple(Section(f"第 {i} 节", ("一段很长的文字。" * 40,))
                              for i in range(12)), images=())
    reader = PdfReader(io.BytesIO(render_pdf(doc)))
    pages = len(reader.pages)
    assert pages >= 3
    for n, page in enumerate(reader.pages, 1):
        flat = "".join(page.extract_text().split())
        assert f"第{n}页，共{pages}页" in flat
        assert "ABCD-EFGH-JKLM" in flat


@pytest.mark.parametrize("change, problem", [
    ({"images": (DocImage(b"GIF89a....", "x"),)}, "PNG"),
    ({"images": tuple(DocImage(_png(), "") for _ in range(25))}, "images"),
    ({"lang": "fr"}, "lang"),
    ({"sections": (Section("x", ("字" * 200_001,)),)}, "characters"),
    ({"sections": (Section("x", rows=tuple(("a",) for _ in range(501))),)}, "rows"),
])
def test_bounds(change, problem) -> None:
    with pytest.raises(DocumentError, match=problem):
        _doc(**change)


def test_a_corrupt_png_is_a_document_error() -> None:
    bad = DocImage(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "broken")
    with pytest.raises(DocumentError):
        render_pdf(_doc(images=(bad,)))


def test_to_json_is_the_printable_page_model() -> None:
    data = _doc(images=(DocImage(_png(), "a"), DocImage(_png(), "b", src="/api/x.png"))).to_json()
    assert data["title"] == "影像诊断报告"
    assert data["meta"][0] == {"label": "患者", "value": "张三"}
    assert data["sections"][1]["rows"][1] == ["长径", "12 mm"]
    assert data["images"][0]["src"].startswith("data:image/png;base64,iVBOR")
    assert data["images"][1] == {"src": "/api/x.png", "caption": "b"}
    assert data["verification"]["code"] == "ABCD-EFGH-JKLM"
    assert data["labels"]["verification"] == "验证码"


async def test_render_in_the_thread_pool() -> None:
    with ThreadPoolExecutor(2) as pool:
        pdfs = await asyncio.gather(*(render_pdf_async(_doc(images=()), pool) for _ in range(2)))
    assert all(p.startswith(b"%PDF-") for p in pdfs)


@pytest.fixture(scope="module")
def measuring_pdf(tmp_path_factory):
    regular, _ = fonts()
    path = tmp_path_factory.mktemp("font") / "f.ttf"
    truetype_subset(regular, "".join(chr(c) for c in range(0x20, 0x7F)) + "右肺上叶见一结节，。：",
                    path)
    pdf = _Pdf(_doc(), path, path)
    pdf.add_page()
    pdf.set_font("cjk", "", 10.5)
    return pdf


_TEXTS = st.text(alphabet=st.sampled_from(list("右肺上叶见一结节，。：ab cdefg12 ")), max_size=300)


@settings(max_examples=60, deadline=None)
@given(text=_TEXTS, width=st.floats(min_value=8, max_value=180))
def test_wrap_keeps_every_character_and_the_width(measuring_pdf, text, width) -> None:
    lines = wrap(measuring_pdf, text, width)
    assert "".join("".join(lines).split()) == "".join(text.split())
    for line in lines:
        too_wide = measuring_pdf.get_string_width(line) > width
        # Only a closing punctuation mark may hang over the edge (or a line of one character).
        assert not too_wide or len(line) == 1 or line[-1] in "，。：" or line.endswith(
            tuple("，。：")), (line, width)


def test_the_font_subset_is_reused_and_grows() -> None:
    from server.documents.pdf import SUBSETS

    render_pdf(_doc(images=()))
    hits, builds = SUBSETS.hits, SUBSETS.builds
    render_pdf(_doc(images=(), title="影像诊断报告"))  # nothing new: both faces reused
    assert (SUBSETS.hits, SUBSETS.builds) == (hits + 2, builds)
    grown = render_pdf(_doc(images=(), title="鼻咽癌随访"))  # new characters: rebuilt
    assert SUBSETS.builds == builds + 2
    assert "鼻咽癌随访" in _text(grown)
    assert "影像诊断报告" in _text(render_pdf(_doc(images=())))  # the union still holds it
