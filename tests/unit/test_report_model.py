"""Reports as data: the canonical form that is signed, signatures, verification codes, content
rules, and the files (fsync'd, signed ones never rewritten, read back whole)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.clinical import report_files
from server.clinical.report_model import (
    CODE_ALPHABET,
    ContentError,
    Kind,
    Report,
    Status,
    Subject,
    Version,
    canonical_json,
    clean_content,
    empty_content,
    iso_time,
    missing_for_signing,
    new_code,
    normalize_code,
)

SUBJECT = Subject("qingshui", "青水", "1.2.840.1", "张三", "QS-1", "radiology",
                  reading_request_id="req1")


def _draft(**changes) -> Version:
    content = {**empty_content(Kind.READING), "findings": "结节", "impression": "肺结节"}
    fields = dict(report_id="0123456789abcdef", kind=Kind.READING, version=1,
                  status=Status.PRELIMINARY, subject=SUBJECT, author="exp.zhang",
                  content=content, created_at=1.5)
    fields.update(changes)
    return Version(**fields)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", True, None], "c": "\n\"x\""}) == (
        '{"a":["é",true,null],"b":1,"c":"\\n\\"x\\""}'.encode())
    with pytest.raises(ContentError):
        canonical_json({"a": 1.5})


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=20))
def test_canonical_json_round_trips_and_is_stable(value) -> None:
    try:
        out = canonical_json(value)
    except (ContentError, UnicodeEncodeError):
        return  # lone surrogates cannot be UTF-8 (clean_text refuses them earlier)
    assert json.loads(out) == value
    assert canonical_json(json.loads(out)) == out


def test_signature_covers_content_signer_and_time() -> None:
    signed = _draft().sign("exp.zhang", "张医生", at=1764637425.1234, code="ABCD-EFGH-JKMN")
    assert signed.status is Status.FINAL and signed.signed_at == "2025-12-02T01:03:45.123Z"
    assert signed.signature == hashlib.sha256(canonical_json(signed.signed_payload())).hexdigest()
    assert signed.intact()
    for change in ({"content": {**signed.content, "impression": "正常"}},
                   {"signer": "exp.li"}, {"signed_at": "2025-12-02T01:03:46.123Z"},
                   {"version": 2}, {"verification_code": "ABCD-EFGH-JKMP"},
                   {"subject": dataclasses.replace(SUBJECT, patient_name="李四")}):
        assert not dataclasses.replace(signed, **change).intact(), change
    # The stored form reads back to the same, still intact.
    again = Version.from_json(json.loads(json.dumps(signed.to_json())))
    assert again == signed and again.intact()


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1.9996) == "1970-01-01T00:00:02.000Z"


def test_codes() -> None:
    code = new_code()
    assert len(code) == 14 and code.count("-") == 2
    assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert normalize_code(code.lower().replace("-", " ")) == code
    assert normalize_code("oooo-iiii-llll") == "0000-1111-1111"
    for bad in ("", "ABCD-EFGH", "ABCD-EFGH-JKLU", "x" * 100, "ABCD-EFGH-JKL€"):
        assert normalize_code(bad) is None


@given(st.text(max_size=60))
def test_normalize_code_never_fails(text) -> None:
    out = normalize_code(text)
    assert out is None or normalize_code(out) == out


def test_content_rules() -> None:
    content = clean_content(Kind.OPINION, {"advice": "转诊", "refer": True})
    assert content == {"findings": "", "advice": "转诊", "follow_up": "", "refer": True,
                       "key_images": []}
    for bad in ({"impression": "x"}, {"refer": "yes"}, {"advice": 3},
                {"advice": "x" * 20_001}, {"advice": "\ud800"}, {"advice": "a\x00b"},
                {"key_images": [{"series_uid": "1.2", "sop_uid": "x"}]},
                {"key_images": [{"series_uid": "1.2", "sop_uid": "1.3", "center": 40}]},
                {"key_images": [{"series_uid": "1.2", "sop_uid": "1.3"}] * 9}):
        with pytest.raises(ContentError):
            clean_content(Kind.OPINION, bad)
    assert missing_for_signing(Kind.READING, empty_content(Kind.READING)) == [
        "findings", "impression"]
    images = clean_content(Kind.READING, {"key_images": [
        {"series_uid": "1.2", "sop_uid": "1.3", "center": -600, "width": 1500}]})
    assert images["key_images"][0]["frame"] == 1


def test_report_versions() -> None:
    v1 = _draft().sign("exp.zhang", "张", code="AAAA-BBBB-CCCC")
    v2 = _draft(version=2, supersedes=1, target=Status.AMENDED, reason="更正").sign(
        "exp.zhang", "张", code="AAAA-BBBB-CCCD")
    report = Report((v1, v2))
    assert report.status is Status.AMENDED and report.current == v2
    assert report.superseded_by(1) == 2 and report.superseded_by(2) is None
    public = report.public(with_draft=False)
    assert [v["superseded_by"] for v in public["versions"]] == [2, None]


def test_files_are_durable_and_signed_ones_immutable(tmp_path) -> None:
    draft = _draft()
    report_files.write_draft(tmp_path, draft)
    directory = report_files.report_dir(tmp_path, SUBJECT, draft.report_id)
    assert (directory / "draft.json").is_file()
    signed = draft.sign("exp.zhang", "张")
    assert report_files.write_signed(tmp_path, signed) is True
    # A second signature of version 1 never replaces the file.
    other = _draft(content={**draft.content, "impression": "x"}).sign("exp.li", "李")
    assert report_files.write_signed(tmp_path, other) is False
    assert report_files.read_signed(tmp_path, SUBJECT, draft.report_id, 1) == signed
    # A draft left behind by a crash after the signature is ignored on reading back.
    report = report_files.read_dir(directory)
    assert report.versions == (signed,) and report.draft is None
    assert [p.name for p in report_files.walk(tmp_path)] == [draft.report_id]
    assert not list(directory.glob(".tmp-*"))
    with pytest.raises(ContentError):
        report_files.report_dir(tmp_path, dataclasses.replace(SUBJECT, clinic="../x"), "a" * 16)


def test_a_damaged_file_is_reported(tmp_path) -> None:
    signed = _draft().sign("exp.zhang", "张")
    report_files.write_signed(tmp_path, signed)
    directory = report_files.report_dir(tmp_path, SUBJECT, signed.report_id)
    (directory / "v0002.json").write_text("{not json")
    with pytest.raises(report_files.ReportFileError):
        report_files.read_dir(directory)
