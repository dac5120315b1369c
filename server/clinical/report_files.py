"""Reports at rest: every version is a JSON file beside the study's DICOM files, written and
fsync'd (file and directory) before the version is acknowledged. The files are the record;
Redis (server/store/reports.py) is an index `huizhen reindex` rebuilds from them.

    $HUIZHEN_DATA_DIR/dicom/{clinic}/{study_uid}/reports/{report_id}/v0001.json   signed, 0444
                                                                     draft.json   the open draft

A consult opinion without a study lives under `{clinic}/no-study/`. A signed version's file is
created with a hard link, which never replaces an existing file: of two concurrent signatures of
one version exactly one lands, and a signed file is never rewritten. Blocking: call from the
thread pool.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from server.clinical.report_model import ContentError, Report, Subject, Version

NO_STUDY = "no-study"
DRAFT = "draft.json"
DRAFT_LOCK = ".draft.lock"  # held while the draft file is compared and replaced
_CLINIC = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_REPORT = re.compile(r"^[0-9a-f]{16}$")
_VERSION_FILE = re.compile(r"^v(\d{4,6})\.json$")


class ReportFileError(Exception):
    """A report file that cannot be read (reindex reports it and goes on)."""


def report_dir(root: Path, subject: Subject, report_id: str) -> Path:
    if not _CLINIC.match(subject.clinic):
        raise ContentError("bad clinic id")
    if subject.study_uid and not _UID.match(subject.study_uid):
        raise ContentError("bad StudyInstanceUID")
    if not _REPORT.match(report_id):
        raise ContentError("bad report id")
    return root / subject.clinic / (subject.study_uid or NO_STUDY) / "reports" / report_id


def version_name(number: int) -> str:
    return f"v{number:04d}.json"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: Path) -> None:
    """mkdir -p, each new directory's entry fsync'd in its parent."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def _write_temp(directory: Path, data: bytes) -> Path:
    temp = directory / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def _encode(version: Version) -> bytes:
    return json.dumps(version.to_json(), ensure_ascii=False, indent=1).encode("utf-8")


def write_signed(root: Path, version: Version) -> bool:
    """Write a signed version durably. False: that version's file exists already (someone
    signed it first; the caller reads it back)."""
    assert version.signed
    directory = report_dir(root, version.subject, version.report_id)
    _makedirs(directory)
    temp = _write_temp(directory, _encode(version))
    try:
        os.chmod(temp, 0o444)
        os.link(temp, directory / version_name(version.version))
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(directory)
    return True


def write_draft(root: Path, draft: Version) -> bool:
    """Write the draft durably unless the file already holds a newer one. Two server
    processes that saved revisions 4 and 5 (the Redis compare-and-set orders them) may reach
    the file in either order: under an exclusive lock on the report directory, revision 4 finds
    5 there and is dropped, so the file never goes back. False: dropped."""
    assert not draft.signed
    directory = report_dir(root, draft.subject, draft.report_id)
    _makedirs(directory)
    fd = os.open(directory / DRAFT_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # in the thread pool: waiting here blocks no loop
        on_disk = _draft_order(directory / DRAFT)
        if on_disk is not None and on_disk >= (draft.version, draft.revision):
            return False
        temp = _write_temp(directory, _encode(draft))
        os.replace(temp, directory / DRAFT)
        fsync_dir(directory)
        return True
    finally:
        os.close(fd)  # releases the lock


def _draft_order(path: Path) -> tuple[int, int] | None:
    """(version, revision) of the draft file; None if there is none, or it is unreadable
    (then the new draft replaces it)."""
    try:
        data = json.loads(path.read_bytes())
        return int(data.get("version", 0)), int(data.get("revision", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def remove_draft(root: Path, subject: Subject, report_id: str) -> None:
    directory = report_dir(root, subject, report_id)
    try:
        (directory / DRAFT).unlink()
    except FileNotFoundError:
        return
    fsync_dir(directory)


def read_version_file(path: Path) -> Version:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        return Version.from_json(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ValueError) as exc:
        raise ReportFileError(f"{path}: {type(exc).__name__}: {exc}") from exc


def read_signed(root: Path, subject: Subject, report_id: str, number: int) -> Version:
    return read_version_file(report_dir(root, subject, report_id) / version_name(number))


def read_dir(directory: Path) -> Report:
    """A report from its directory: every signed version, oldest first, and the draft."""
    versions: list[Version] = []
    draft = None
    for entry in sorted(directory.iterdir()):
        match = _VERSION_FILE.match(entry.name)
        if match:
            v = read_version_file(entry)
            if v.version != int(match.group(1)) or not v.signed or v.report_id != directory.name:
                raise ReportFileError(f"{entry}: its content does not match its name")
            versions.append(v)
        elif entry.name == DRAFT:
            draft = read_version_file(entry)
    if draft is not None and (draft.signed or (versions and draft.version <= versions[-1].version)):
        draft = None  # a draft left behind by a crash after its version was signed
    if not versions and draft is None:
        raise ReportFileError(f"{directory}: no report files")
    return Report(tuple(versions), draft)


def walk(root: Path) -> Iterator[Path]:
    """Every report directory under the DICOM root."""
    if not root.is_dir():
        return
    for clinic in sorted(p for p in root.iterdir() if p.is_dir()):
        for study in sorted(p for p in clinic.iterdir() if p.is_dir()):
            reports = study / "reports"
            if reports.is_dir():
                for d in sorted(reports.iterdir()):
                    if d.is_dir() and _REPORT.match(d.name):
                        yield d
