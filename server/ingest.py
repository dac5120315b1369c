"""Ingest: the one way DICOM enters Huizhen (STOW-RS and the kiosk upload both come here).

A request is first spooled to temp files under a byte budget (HUIZHEN_MAX_UPLOAD_MB), so an
oversized request is refused before anything is stored. Each file is then validated in the thread
pool, moved into place atomically (rename within one file system) and indexed. A file that fails
validation leaves nothing behind; the others of the same request are still stored, and each
outcome is reported per instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import lzma
import os
import shutil
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset

from media.ecg.index import ecg_index
from media.imaging.errors import (
    ImageTooLargeError,
    ImagingError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
)
from media.imaging.image_model import ImageModel
from media.imaging.model_sidecar import remove_sidecar, write_sidecar
from media.imaging.validation import Limits, ValidatedFile, validate_file
from server.config import Settings
from server.dicomweb.attributes import entry_from_dataset, is_uid
from server.errors import InvalidArchive, PayloadTooLarge, UnsupportedArchive
from server.log import event
from server.store import Store
from server.store.study_index import IndexEntry

log = logging.getLogger(__name__)

# PS3.4 Annex B / PS3.18 Failure Reason codes.
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_TRANSFER_SYNTAX = 0xC122
FAILURE_OUT_OF_RESOURCES = 0xA700
FAILURE_PROCESSING = 0x0110

MAX_ZIP_ENTRIES = 20_000
_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
#: What reading a damaged member can raise, by compression method (none of it is our fault).
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, OSError, ValueError)
_SKIPPED_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db"}
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class SpooledFile:
    path: Path
    source: str  # what the client called it: form file name, zip member or "part N"
    #: Why it is refused without being parsed (a zip inside a zip), else None.
    refused: str | None = None


@dataclass(frozen=True)
class StoredInstance:
    source: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    duplicate: bool


@dataclass(frozen=True)
class FailedInstance:
    source: str
    code: str
    message: str
    failure_reason: int
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass
class IngestResult:
    stored: list[StoredInstance] = field(default_factory=list)
    failed: list[FailedInstance] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def study_uids(self) -> str:
        """The StudyInstanceUIDs stored, comma-separated in order (for the audit record)."""
        return ",".join(dict.fromkeys(s.study_instance_uid for s in self.stored))


class UploadBudget:
    """Counts the bytes of one request against the upload limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"the upload is larger than the limit of {self.limit // 2**20} MiB "
                "(HUIZHEN_MAX_UPLOAD_MB); nothing was stored",
                limit_bytes=self.limit,
            )


class Spool:
    """A private temp directory for one request; whatever was not moved into place is deleted."""

    def __init__(self, root: Path) -> None:
        # The pid in the name tells a crashed process's leftovers from a live sibling's.
        self.dir = root / f"upload-{os.getpid()}-{uuid.uuid4().hex}"
        self.dir.mkdir(parents=True)
        self.files: list[SpooledFile] = []

    def new_path(self) -> Path:
        return self.dir / f"{len(self.files):06d}-{uuid.uuid4().hex[:8]}"

    async def write_stream(
        self, chunks: AsyncIterator[bytes], source: str, budget: UploadBudget
    ) -> SpooledFile:
        path = self.new_path()
        # Small chunk writes to a local temp file; the budget caps the total.
        with path.open("wb") as fh:
            async for chunk in chunks:
                budget.take(len(chunk))
                fh.write(chunk)
        spooled = SpooledFile(path, source)
        self.files.append(spooled)
        return spooled

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_stale_spools(root: Path) -> int:
    """Delete spool directories left by a process that died mid-upload (a crash, a kill -9):
    those of no live process. Returns how many were removed."""
    removed = 0
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not entry.name.startswith("upload-"):
            continue
        pid_text = entry.name.split("-")[1]
        # Names without a pid come from before pids were recorded: nobody owns them now.
        if (pid_text.isascii() and pid_text.isdigit() and len(pid_text) <= 7
                and _alive(int(pid_text))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def expand_zip(spool: Spool, archive: SpooledFile, budget: UploadBudget) -> list[SpooledFile]:
    """Extract a zip's files into the spool (thread pool). Guards against zip bombs by counting
    the bytes actually inflated, not the sizes the archive claims."""
    out: list[SpooledFile] = []
    try:
        zf = zipfile.ZipFile(archive.path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidArchive(f"{archive.source} is not a readable zip archive ({exc})") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_ENTRIES:
            raise PayloadTooLarge(f"the zip holds more than {MAX_ZIP_ENTRIES} files")
        for member in members:
            # Decided from the directory before a byte is inflated.
            if member.flag_bits & 0x1:
                raise InvalidArchive(
                    f"{archive.source} is encrypted ({member.filename[:80]}); upload an archive "
                    "without a password"
                )
            if member.compress_type not in _ZIP_METHODS:
                raise UnsupportedArchive(
                    f"{archive.source} uses compression method {member.compress_type} for "
                    f"{member.filename[:80]}; re-create it with "
                    f"{', '.join(_ZIP_METHODS.values())}"
                )
        for member in members:
            name = member.filename
            base = name.rsplit("/", 1)[-1]
            if name.startswith("__MACOSX/") or base in _SKIPPED_NAMES or base.startswith("._"):
                continue
            path = spool.new_path()
            try:
                with zf.open(member) as src, path.open("wb") as dst:
                    while chunk := src.read(_CHUNK):
                        # Bytes actually inflated, not the sizes the archive claims.
                        budget.take(len(chunk))
                        dst.write(chunk)
            except _ZIP_READ_ERRORS as exc:
                raise InvalidArchive(
                    f"{archive.source}: {name[:80]} cannot be extracted ({exc})"
                ) from exc
            except (RuntimeError, NotImplementedError) as exc:  # zipfile's own refusals
                raise UnsupportedArchive(
                    f"{archive.source}: {name[:80]} cannot be extracted ({exc})"
                ) from exc
            refused = None
            if is_zip(path):
                # One level only: an archive inside an archive is a choice we do not guess at.
                refused = "a zip inside a zip is not expanded; upload the inner archive itself"
            spooled = SpooledFile(path, f"{archive.source}:{name}", refused)
            spool.files.append(spooled)
            out.append(spooled)
    archive.path.unlink(missing_ok=True)
    return out


def is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    # A DICOM file has 'DICM' at 128; a zip starts with PK\x03\x04 (or is an empty archive).
    return head[128:132] != b"DICM" and head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


class Ingestor:
    def __init__(self, settings: Settings, store: Store, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.spool_root = settings.data_dir / "tmp"
        if removed := remove_stale_spools(self.spool_root):
            event(log, "stale_spools_removed", logging.WARNING, count=removed)

    @asynccontextmanager
    async def spool(self) -> AsyncIterator[tuple[Spool, UploadBudget]]:
        spool = Spool(self.spool_root)
        try:
            yield spool, UploadBudget(self.settings.max_upload_bytes)
        finally:
            await asyncio.get_running_loop().run_in_executor(self.executor, spool.cleanup)

    async def expand_archives(
        self, spool: Spool, files: list[SpooledFile], budget: UploadBudget
    ) -> list[SpooledFile]:
        loop = asyncio.get_running_loop()
        out: list[SpooledFile] = []
        for f in files:
            if await loop.run_in_executor(self.executor, is_zip, f.path):
                out.extend(await loop.run_in_executor(self.executor, expand_zip, spool, f, budget))
            else:
                out.append(f)
        return out

    async def ingest(
        self, clinic: str, files: list[SpooledFile], *, study_uid: str | None = None
    ) -> IngestResult:
        """Store each file for `clinic`; with `study_uid`, instances of other studies are refused
        (STOW-RS to /studies/{study})."""
        result = IngestResult()
        for f in files:
            outcome = await self._ingest_one(clinic, f, study_uid)
            if isinstance(outcome, StoredInstance):
                result.stored.append(outcome)
            else:
                result.failed.append(outcome)
        event(
            log, "ingest_done", clinic=clinic, stored=len(result.stored), failed=len(result.failed)
        )
        return result

    async def store_datasets(
        self, clinic: str, datasets: list[Dataset], *, study_uid: str | None = None
    ) -> IngestResult:
        """Store datasets the server made itself (a report's SR, an annotation export) through
        the same path as an upload: saved to the spool, validated, placed, indexed."""
        loop = asyncio.get_running_loop()
        async with self.spool() as (spool, _budget):
            files = []
            for ds in datasets:
                path = spool.new_path()
                await loop.run_in_executor(self.executor, _save_dataset, ds, path)
                files.append(SpooledFile(path, f"generated {ds.SOPInstanceUID}"))
            return await self.ingest(clinic, files, study_uid=study_uid)

    async def _ingest_one(
        self, clinic: str, f: SpooledFile, study_uid: str | None
    ) -> StoredInstance | FailedInstance:
        loop = asyncio.get_running_loop()
        if f.refused is not None:
            return FailedInstance(f.source, "nested_archive", f.refused, FAILURE_CANNOT_UNDERSTAND)
        try:
            valid, entry = await loop.run_in_executor(self.executor, self._parse, f.path, clinic)
        except ImagingError as exc:
            return FailedInstance(f.source, _imaging_code(exc), exc.message, _imaging_reason(exc))
        ds = valid.dataset
        sop_class = str(ds.SOPClassUID)
        if study_uid is not None and entry.study_uid != study_uid:
            return FailedInstance(
                f.source,
                "wrong_study",
                "the instance belongs to another study than the URL names",
                FAILURE_PROCESSING,
                sop_class,
                entry.sop_uid,
            )
        if await self.store.studies.has_instance(clinic, entry.study_uid, entry.sop_uid):
            return _stored(f, sop_class, entry, duplicate=True)
        final = self.settings.dicom_dir / entry.path
        placed = False
        try:
            # valid.path: the upload, or its inflated copy (in the spool) for a Deflated one.
            placed = await loop.run_in_executor(
                self.executor, _place, valid.path, final, valid.model)
            if not placed:
                # Another upload of this SOP Instance UID placed its file first: that file is
                # the instance (first stored wins), indexed from its own bytes.
                await self._index_existing(clinic, final, entry)
                return _stored(f, sop_class, entry, duplicate=True)
            # Ours is the file; a racing loser may already have indexed it from these bytes.
            await self.store.studies.add(entry)
        except BaseException:
            # Index unreachable: do not leave an unindexed file behind.
            if placed:
                await loop.run_in_executor(self.executor, _remove_quietly, final)
            raise
        event(log, "instance_stored", logging.DEBUG, clinic=clinic, study=entry.study_uid,
              sop=entry.sop_uid)
        return _stored(f, sop_class, entry, duplicate=False)

    def limits(self) -> Limits:
        return Limits(
            max_pixels=self.settings.max_image_pixels,
            max_frame_pixels=self.settings.max_frame_pixels,
            max_inflated_bytes=self.settings.max_upload_bytes,
        )

    def _parse(self, path: Path, clinic: str) -> tuple[ValidatedFile, IndexEntry]:
        """The one parse of an upload (thread pool): validated, modelled, index entry made."""
        valid = validate_file(path, self.limits())
        ds: Dataset = valid.dataset
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if not is_uid(str(ds.get(keyword, ""))):
                raise InvalidDicomError(f"{keyword} is missing or not a valid UID")
        entry = entry_from_dataset(ds, clinic)
        # An ECG is decoded and pre-screened here, in the thread pool, once: the index keeps
        # its summary and screening result (a worklist orders by it).
        ecg = ecg_index(ds)
        if ecg is not None:
            entry = dataclasses.replace(entry, ecg=ecg)
        return valid, entry

    async def _index_existing(self, clinic: str, final: Path, ours: IndexEntry) -> None:
        """Index the file already at `final` unless it is (the winner of a concurrent upload
        indexes it itself; a file left by a crash between placing and indexing is indexed
        here, from its own bytes — never from ours, which may differ)."""
        if await self.store.studies.has_instance(clinic, ours.study_uid, ours.sop_uid):
            return
        loop = asyncio.get_running_loop()
        try:
            valid, entry = await loop.run_in_executor(self.executor, self._parse, final, clinic)
        except (ImagingError, FileNotFoundError):
            return  # being replaced or unreadable: `huizhen reindex` decides from the files
        if valid.path != final:  # its inflated copy: only the index entry was wanted
            await loop.run_in_executor(self.executor, _remove_quietly_file, valid.path)
        await self.store.studies.add(entry)

    async def reindex(self) -> tuple[int, int]:
        """Rebuild the index from the files (`huizhen reindex`). Returns (indexed, unreadable)."""
        await self.store.studies.clear()
        loop = asyncio.get_running_loop()
        indexed = bad = 0
        for clinic, path in _walk(self.settings.dicom_dir):
            try:
                valid, entry = await loop.run_in_executor(self.executor, self._parse, path, clinic)
            except ImagingError as exc:
                bad += 1
                event(log, "reindex_unreadable", logging.WARNING, path=path, error=exc.message)
                continue
            if entry.path != str(path.relative_to(self.settings.dicom_dir)):
                bad += 1
                event(log, "reindex_misplaced", logging.WARNING, path=path, expected=entry.path)
                continue
            if valid.path != path:  # a Deflated file stored before ingest inflated them
                await loop.run_in_executor(self.executor, _remove_quietly_file, valid.path)
                await loop.run_in_executor(self.executor, _keep_model, path, None)
            else:
                await loop.run_in_executor(self.executor, _keep_model, path, valid.model)
            await self.store.studies.add(entry)
            indexed += 1
        return indexed, bad


def _save_dataset(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for clinic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(clinic_dir.rglob("*.dcm")):
            yield clinic_dir.name, path


def _place(temp: Path, final: Path, model: ImageModel | None = None) -> bool:
    """Put the file in place unless an instance of that path is already there (False).

    A hard link never replaces an existing file, so of two concurrent uploads of one SOP
    Instance UID with different bytes exactly one file lands and stays, whole (the link is
    atomic and the spool file was complete); the loser's spool file is deleted with its spool.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(temp, final)
    except FileExistsError:
        return False
    temp.unlink()
    _keep_model(final, model)
    return True


def _keep_model(path: Path, model: ImageModel | None) -> None:
    """The renderer's model beside the file: a first view then skips the header parse."""
    try:
        write_sidecar(path, model)
    except (ImagingError, OSError) as exc:
        # Only a speed-up: without it the renderer parses the header itself.
        event(log, "model_sidecar_failed", logging.WARNING, path=path,
              error=getattr(exc, "message", str(exc)))


def _remove_quietly_file(path: Path) -> None:
    path.unlink(missing_ok=True)


def _remove_quietly(path: Path) -> None:
    remove_sidecar(path)
    with suppress(FileNotFoundError):
        path.unlink()


def _stored(
    f: SpooledFile, sop_class: str, entry: IndexEntry, *, duplicate: bool
) -> StoredInstance:
    return StoredInstance(
        f.source, sop_class, entry.sop_uid, entry.study_uid, entry.series_uid, duplicate
    )


def _imaging_code(exc: ImagingError) -> str:
    if isinstance(exc, UnsupportedTransferSyntaxError):
        return "unsupported_transfer_syntax"
    if isinstance(exc, ImageTooLargeError):
        return "image_too_large"
    return "invalid_dicom"


def _imaging_reason(exc: ImagingError) -> int:
    if isinstance(exc, UnsupportedTransferSyntaxError):
        return FAILURE_TRANSFER_SYNTAX
    if isinstance(exc, ImageTooLargeError):
        return FAILURE_OUT_OF_RESOURCES
    return FAILURE_CANNOT_UNDERSTAND
