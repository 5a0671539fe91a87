"""STOW-RS at ``POST /dicom-web/studies[/<uid>]``: the standard way in, with the upload API's rules.

The multipart/related body is split into its parts while it streams in, each part written to the upload's
workspace with the same caps as ``POST /api/studies/upload``; the files are then validated and stored by the
same code (``studies.dicom_files``, ``studies.ingest``): all or nothing, Orthanc's refusal named, the index
equal to Orthanc. The answer is a PS3.18 store response in DICOM JSON: 200 with the ReferencedSOPSequence
when everything was stored; 409 with the FailedSOPSequence when nothing was (each problem also in a
``Warning: 299`` header, which DICOMweb clients show); 413 for a cap; 415 for another content type.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator

import pydicom

from backend.errors import DomainError
from backend.studies.dicom_files import CHUNK, FileProblem, InvalidUpload, UploadWorkspace

BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
PART_TYPE = re.compile(r'type="?application/dicom"?', re.IGNORECASE)
PROCESSING_FAILURE = 0x0110  # FailureReason (0008,1197), PS3.4 Annex GG
REFUSED_BY_UID = 0xC000  # "Cannot understand" (our validation refused the instance)
MAX_PREAMBLE = 64 * 1024  # bytes before the first part (or between parts' headers) held in memory at most


class UnsupportedMedia(DomainError):
    """Not multipart/related; type="application/dicom" with a boundary (HTTP 415)."""

    code, status = "unsupported_media_type", 415


class LengthRequired(DomainError):
    """A chunked body the WSGI server hands over undecoded (HTTP 411)."""

    code, status = "length_required", 411


def body_stream(django_request):
    """The request body as a stream. Django reads ``Content-Length`` bytes; a chunked body (DICOMweb clients
    chunk large stores) has none, so it is read from the WSGI input when the server decoded it and marks its
    end (gunicorn: ``wsgi.input_terminated``; nginx in front sends a Content-Length anyway)."""
    meta = django_request.META
    if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return django_request
    if meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"]
    raise LengthRequired("this server cannot read a chunked body: send Content-Length")


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/related") or not PART_TYPE.search(content_type):
        raise UnsupportedMedia('send multipart/related; type="application/dicom" (Part-10 instances)')
    match = BOUNDARY.search(content_type)
    if not match:
        raise UnsupportedMedia("the multipart/related content type has no boundary")
    return match.group(1).encode("latin-1")


def split_parts(stream: BinaryIO, boundary: bytes, workspace: UploadWorkspace) -> Iterator[tuple[str, object]]:
    """(name, path) of each part's body, written to ``workspace`` as the body streams in (never whole in memory)."""
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # the first delimiter has no CRLF before it
    out = None
    n = 0
    while True:
        chunk = stream.read(CHUNK)
        buffer += chunk
        while True:
            at = buffer.find(delimiter)
            if at < 0:
                break
            if out is not None:  # the end of a part's body
                out.write(buffer[:at])
                out.close()
                yield out.name, out.path
                out = None
            rest = buffer[at + len(delimiter):]
            if rest.startswith(b"--"):
                return  # the close delimiter
            headers_end = rest.find(b"\r\n\r\n")
            if headers_end < 0:
                buffer = buffer[at:]
                break
            n += 1
            out = workspace.new_file(f"part {n}")
            buffer = rest[headers_end + 4:]
        if not chunk:
            if out is not None:
                out.close()
            raise InvalidUpload([FileProblem("(request)", "the multipart body ends without its close delimiter")])
        if out is None and len(buffer) > MAX_PREAMBLE:
            raise InvalidUpload([FileProblem("(request)", "no multipart part starts where the boundary says")])
        if out is not None and len(buffer) > len(delimiter):  # keep a tail that could start a delimiter
            keep = len(delimiter)
            out.write(buffer[:-keep])
            buffer = buffer[-keep:]


def _uids(path) -> tuple[str, str] | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    except Exception:
        return None


def stored_response(reports, base_url: str) -> dict:
    """DICOM JSON of a STOW-RS answer for everything stored."""
    referenced = []
    for report in reports:
        study = report.study
        for series in study.series.prefetch_related("instances"):
            for instance in series.instances.all():
                referenced.append({
                    "00081150": {"vr": "UI", "Value": [instance.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [instance.sop_instance_uid]},
                    "00081190": {"vr": "UR", "Value": [
                        f"{base_url}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
                        f"/instances/{instance.sop_instance_uid}"]},
                })
    body = {"00081199": {"vr": "SQ", "Value": referenced}}
    if len(reports) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base_url}/studies/{reports[0].study.study_instance_uid}"]}
    return body


def failed_response(problems: list[FileProblem], paths: dict[str, object]) -> dict:
    """DICOM JSON FailedSOPSequence for every part we could identify (nothing was stored)."""
    failed = []
    for problem in problems:
        path = paths.get(problem.file.split("/")[0])
        uids = _uids(path) if path is not None else None
        if uids:
            failed.append({"00081150": {"vr": "UI", "Value": [uids[0]]},
                           "00081155": {"vr": "UI", "Value": [uids[1]]},
                           "00081197": {"vr": "US", "Value": [
                               PROCESSING_FAILURE if "Orthanc refused" in problem.reason else REFUSED_BY_UID]}})
    return {"00081198": {"vr": "SQ", "Value": failed}}


def warning_headers(problems: list[FileProblem]) -> list[str]:
    """``Warning: 299`` values (PS3.18 8.6.2): one per problem, quotes and line breaks removed."""
    return [f'299 SpineAgent "{p.file}: {p.reason}"'.replace("\r", " ").replace("\n", " ")[:500]
            for p in problems[:20]]
