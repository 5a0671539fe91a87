"""Reading uploaded DICOM files and zips, with a precise reason for every rejection.

An upload is validated whole before anything is stored: one bad file rejects
the upload (HTTP 400 naming the file and the reason), so nothing is half-stored.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Iterable

import pydicom
from pydicom.errors import InvalidDicomError

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: an index, not an image


@dataclass
class UploadedInstance:
    name: str
    data: bytes
    dataset: pydicom.Dataset  # header only (pixel data dropped after validation)


@dataclass
class FileProblem:
    file: str
    reason: str

    def as_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


class InvalidUpload(ValueError):
    def __init__(self, problems: list[FileProblem]):
        super().__init__("; ".join(f"{p.file}: {p.reason}" for p in problems))
        self.problems = problems


def expand_upload(name: str, data: bytes) -> Iterable[tuple[str, bytes]]:
    """A plain file yields itself; a zip yields its members (folders and macOS junk skipped)."""
    if data[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in members:
                base = member.filename.rsplit("/", 1)[-1]
                if member.filename.startswith("__MACOSX/") or base.startswith("."):
                    continue
                yield f"{name}/{member.filename}", archive.read(member)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise InvalidUpload([FileProblem(name, f"corrupt zip archive ({exc})")]) from exc
        return
    yield name, data


def _expected_pixel_bytes(ds: pydicom.Dataset) -> int | None:
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * (int(ds.BitsAllocated) // 8) * frames
    except (AttributeError, TypeError, ValueError):
        return None


def read_instance(name: str, data: bytes) -> UploadedInstance | None:
    """Parse and check one Part-10 file. Returns None for a DICOMDIR; raises InvalidUpload otherwise."""
    if len(data) < 132:
        raise InvalidUpload([FileProblem(name, f"too short to be a DICOM file ({len(data)} bytes)")])
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise InvalidUpload([FileProblem(name, "not a DICOM Part-10 file (no 'DICM' preamble)")]) from None
    except Exception as exc:  # pydicom raises many kinds on truncated data
        raise InvalidUpload([FileProblem(name, f"unreadable DICOM ({exc.__class__.__name__}: {exc})")]) from None
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        return None
    missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "")).strip()]
    if missing:
        raise InvalidUpload([FileProblem(name, f"missing {', '.join(missing)}")])
    if "PixelData" in ds:
        pixel_data = ds.PixelData
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            expected = _expected_pixel_bytes(ds)
            if expected is not None and len(pixel_data) < expected:
                raise InvalidUpload([FileProblem(
                    name, f"truncated pixel data ({len(pixel_data)} of {expected} bytes)")])
        del ds.PixelData
    return UploadedInstance(name=name, data=data, dataset=ds)


def read_upload(files: Iterable[tuple[str, bytes]]) -> list[UploadedInstance]:
    """Expand zips and validate every file; collects all problems before failing."""
    instances: list[UploadedInstance] = []
    problems: list[FileProblem] = []
    for name, data in files:
        try:
            for member_name, member_data in expand_upload(name, data):
                try:
                    instance = read_instance(member_name, member_data)
                except InvalidUpload as exc:
                    problems.extend(exc.problems)
                    continue
                if instance is not None:
                    instances.append(instance)
        except InvalidUpload as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidUpload(problems)
    if not instances:
        raise InvalidUpload([FileProblem("(upload)", "no DICOM instances found")])
    return instances
