"""Reading uploaded DICOM files and zips, with a precise reason for every rejection.

An upload is validated whole before anything is stored: one bad file rejects
the upload (HTTP 400 naming the file and the reason), so nothing is half-stored.

Nothing is held in memory whole: every upload and every zip member is streamed
into an ``UploadWorkspace`` (a temporary directory), with caps on the number of
files, the size of one file and the total expanded size (``UploadLimits``), so
a zip bomb is refused after at most the cap's worth of bytes, never expanded in
RAM. Member paths in a zip only name the file in messages; what is written to
disk is numbered, so ``../`` in a member name goes nowhere.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import pydicom
from django.conf import settings
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from backend.errors import DomainError, Invalid

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: an index, not an image
PIXEL_DATA = 0x7FE00010
CHUNK = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class UploadedInstance:
    name: str
    path: Path  # the Part-10 file in the upload's workspace
    dataset: pydicom.Dataset  # header only (pixel data dropped after validation)


@dataclass
class FileProblem:
    file: str
    reason: str

    def as_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


class InvalidUpload(Invalid):
    """Files refused, nothing stored (HTTP 400): the answer names each file and why. STOW-RS answers the same
    problems in DICOM JSON instead (dicomweb/stow.py)."""

    code = "invalid_dicom"

    def __init__(self, problems: list[FileProblem]):
        super().__init__("nothing was stored", files=[p.as_dict() for p in problems])
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(f"{p.file}: {p.reason}" for p in self.problems)


class UploadTooLarge(InvalidUpload):
    """A cap on files, file size or expanded size was reached (HTTP 413)."""

    code, status = "too_large", 413


class RequestTooLarge(DomainError):
    """The request as a whole is over the upload cap (HTTP 413), refused before its files are read."""

    code, status = "too_large", 413


@dataclass(frozen=True)
class UploadLimits:
    max_files: int
    max_file_bytes: int
    max_expanded_bytes: int

    @classmethod
    def from_settings(cls) -> "UploadLimits":
        return cls(settings.SPINEAGENT_UPLOAD_MAX_FILES, settings.SPINEAGENT_UPLOAD_MAX_FILE_BYTES,
                   settings.SPINEAGENT_UPLOAD_MAX_EXPANDED_BYTES)


class UploadWorkspace:
    """A temporary directory for one upload's files, removed when the upload is done (``with``)."""

    def __init__(self, limits: UploadLimits | None = None):
        self.limits = limits or UploadLimits.from_settings()
        self.root = Path(tempfile.mkdtemp(prefix="spineagent-upload-"))
        self.files = 0
        self.expanded = 0

    def __enter__(self) -> "UploadWorkspace":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def new_file(self, name: str) -> "CappedFile":
        """A new numbered file to write ``name`` into; the caps are enforced as bytes arrive."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise UploadTooLarge([FileProblem(name, f"more than {self.limits.max_files} files in one upload")])
        return CappedFile(self, name, self.root / f"{self.files:07d}.dcm")

    def write(self, name: str, source: BinaryIO) -> Path:
        """Stream ``source`` into a new numbered file."""
        with self.new_file(name) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return out.path


class CappedFile:
    """One file of a workspace, open for writing, counting its bytes against the workspace's caps."""

    def __init__(self, workspace: UploadWorkspace, name: str, path: Path):
        self.workspace, self.name, self.path, self.written = workspace, name, path, 0
        self._out = open(path, "wb")

    def write(self, chunk: bytes) -> None:
        limits = self.workspace.limits
        self.written += len(chunk)
        self.workspace.expanded += len(chunk)
        if self.written > limits.max_file_bytes:
            raise UploadTooLarge([FileProblem(self.name, f"larger than {limits.max_file_bytes} bytes")])
        if self.workspace.expanded > limits.max_expanded_bytes:
            raise UploadTooLarge([FileProblem(
                self.name, f"the upload expands to more than {limits.max_expanded_bytes} bytes")])
        self._out.write(chunk)

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> "CappedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_zip(source: BinaryIO) -> bool:
    head = source.read(4)
    source.seek(0)
    return head == ZIP_MAGIC


def expand_upload(name: str, source: BinaryIO, workspace: UploadWorkspace) -> Iterable[tuple[str, Path]]:
    """A plain file yields itself; a zip yields its members (folders and macOS junk skipped), each on disk."""
    if not _is_zip(source):
        yield name, workspace.write(name, source)
        return
    try:
        with zipfile.ZipFile(source) as archive:
            for member in archive.infolist():
                base = member.filename.rsplit("/", 1)[-1]
                if member.is_dir() or member.filename.startswith("__MACOSX/") or base.startswith("."):
                    continue
                member_name = f"{name}/{member.filename}"
                if member.file_size > workspace.limits.max_file_bytes:  # declared; the copy checks the truth
                    raise UploadTooLarge([FileProblem(
                        member_name, f"larger than {workspace.limits.max_file_bytes} bytes")])
                with archive.open(member) as data:
                    yield member_name, workspace.write(member_name, data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError, OSError) as exc:
        raise InvalidUpload([FileProblem(name, f"corrupt zip archive, or one we cannot read ({exc})")]) from exc


def uid_problem(keyword: str, value: str) -> str | None:
    """Why a UID is not conformant (PS3.5 9.1: digits and dots, no empty or zero-led component, <= 64)."""
    if not UID(value).is_valid:
        return (f"{keyword} {value[:80]!r} is not a valid DICOM UID (digits and dots, no leading zeros, "
                "at most 64 characters)")
    return None


def _pixel_problem(ds: pydicom.Dataset, path: Path) -> str | None:
    """Truncated pixel data: fewer bytes than the header's geometry and photometric interpretation need."""
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    file_size = path.stat().st_size
    if raw is None:
        return None
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    if length is None or tell is None:
        return None
    syntax = ds.file_meta.get("TransferSyntaxUID", UID("1.2.840.10008.1.2"))
    deflated = syntax.is_deflated  # positions are in the inflated stream, not in the file
    if length == 0xFFFFFFFF:  # encapsulated (compressed): the fragments must at least start in the file
        return None if deflated or tell < file_size else "truncated pixel data (no encapsulated fragments)"
    if not deflated and tell + length > file_size:
        return f"truncated pixel data ({file_size - tell} of {length} bytes)"
    if not syntax.is_compressed:
        try:
            expected = get_expected_length(ds, unit="bytes")
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if length < expected:
            return f"truncated pixel data ({length} of {expected} bytes for {ds.get('PhotometricInterpretation', '?')})"
    return None


def read_instance(name: str, path: Path) -> UploadedInstance | None:
    """Parse and check one Part-10 file. Returns None for a DICOMDIR; raises InvalidUpload otherwise."""
    size = path.stat().st_size
    if size < 132:
        raise InvalidUpload([FileProblem(name, f"too short to be a DICOM file ({size} bytes)")])
    try:
        ds = pydicom.dcmread(path, force=False, defer_size=4096)
        if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
            return None
        missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "")).strip()]
        if missing:
            raise InvalidUpload([FileProblem(name, f"missing {', '.join(missing)}")])
        bad = [p for k in REQUIRED_UIDS if (p := uid_problem(k, str(ds.get(k))))]
        if bad:
            raise InvalidUpload([FileProblem(name, "; ".join(bad))])
        if problem := _pixel_problem(ds, path):
            raise InvalidUpload([FileProblem(name, problem)])
    except InvalidDicomError:
        raise InvalidUpload([FileProblem(name, "not a DICOM Part-10 file (no 'DICM' preamble)")]) from None
    except InvalidUpload:
        raise
    except Exception as exc:  # pydicom raises many kinds on truncated or garbled data
        raise InvalidUpload([FileProblem(name, f"unreadable DICOM ({exc.__class__.__name__}: {exc})")]) from None
    if PIXEL_DATA in ds:
        del ds[PIXEL_DATA]
    return UploadedInstance(name=name, path=path, dataset=ds)


def read_upload(sources: Iterable[tuple[str, BinaryIO | bytes]], workspace: UploadWorkspace) -> list[UploadedInstance]:
    """Stream every upload (zips expanded) into ``workspace`` and validate each file; collects all problems
    before failing. A cap reached stops at once (UploadTooLarge)."""
    def files():
        for name, source in sources:
            source = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
            try:
                yield from expand_upload(name, source, workspace)
            except UploadTooLarge:
                raise
            except InvalidUpload as exc:
                problems.extend(exc.problems)

    problems: list[FileProblem] = []
    return validate_files(files(), problems)


def validate_files(files: Iterable[tuple[str, Path]], problems: list[FileProblem] | None = None) -> list[UploadedInstance]:
    """Check every (name, path) already on disk; all problems (with those passed in) or the instances."""
    problems = problems if problems is not None else []
    instances: list[UploadedInstance] = []
    for name, path in files:
        try:
            instance = read_instance(name, path)
        except InvalidUpload as exc:
            problems.extend(exc.problems)
            continue
        if instance is not None:
            instances.append(instance)
    if problems:
        raise InvalidUpload(problems)
    if not instances:
        raise InvalidUpload([FileProblem("(upload)", "no DICOM instances found")])
    return instances
