"""The DICOMweb grammar the gateway serves: the one rule for which paths reach Orthanc.

A path is split on ``/`` after the server decoded it and must spell one of the
QIDO-RS / WADO-RS resources below, segment by segment: UIDs are digits and dots
(at most 64 characters, no empty component), frame lists are comma-separated
numbers, bulk data is Orthanc's ``bulk/<tag>[/<item>/<tag>...]``. Anything else
(``.`` or ``..`` segments, empty segments, ``%``, backslashes, Orthanc's own REST
routes, ``/dicom-web/servers``) matches nothing and is refused before any
request leaves. The upstream path is rebuilt from the parsed segments, so what
Orthanc receives is exactly what was checked.

The parse also names the study, series and instance a request touches, which
is what the audit log records for every image read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UID = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")
MAX_UID_LENGTH = 64
FRAMES = re.compile(r"^[1-9][0-9]{0,5}(?:,[1-9][0-9]{0,5}){0,999}$")
TAG = re.compile(r"^[0-9a-fA-F]{8}$")
ITEM = re.compile(r"^[0-9]{1,6}$")
RENDITIONS = ("rendered", "thumbnail")
SEARCHES = ("studies", "series", "instances")  # QIDO-RS at the root
# Encoded characters that must never be in a raw request target (encoded slash, backslash, dot, percent).
ENCODED_SEPARATORS = re.compile(r"%(?:2f|5c|2e|25)", re.IGNORECASE)


@dataclass(frozen=True)
class ImagePath:
    """A parsed DICOMweb resource: what it is and which UIDs it names."""

    resource: str  # e.g. "search", "study", "series/metadata", "instance/frames/rendered", "instance/bulk"
    segments: tuple[str, ...]
    study: str | None = None
    series: str | None = None
    instance: str | None = None

    @property
    def upstream(self) -> str:
        return "/".join(self.segments)


def _uid(value: str) -> bool:
    return len(value) <= MAX_UID_LENGTH and bool(UID.match(value))


def _bulk_path(rest: list[str]) -> bool:
    """``<tag>`` or ``<sequence tag>/<item>/<tag>`` ...: Orthanc's BulkDataURI below an instance."""
    if not rest or len(rest) % 2 == 0:
        return False
    return all((TAG if i % 2 == 0 else ITEM).match(part) for i, part in enumerate(rest))


def _below_instance(rest: list[str]) -> str | None:
    """The resource name below .../instances/<uid>, or None."""
    if not rest:
        return "instance"
    head, tail = rest[0], rest[1:]
    if head in ("metadata", *RENDITIONS) and not tail:
        return f"instance/{head}"
    if head == "frames" and tail and FRAMES.match(tail[0]):
        if len(tail) == 1:
            return "instance/frames"
        if len(tail) == 2 and tail[1] in RENDITIONS:
            return f"instance/frames/{tail[1]}"
        return None
    if head == "bulk" and _bulk_path(tail):
        return "instance/bulk"
    return None


def parse(path: str) -> ImagePath | None:
    """The resource ``path`` (the part after /dicom-web/) names, or None if it is not one we serve."""
    if not path or len(path) > 2048:
        return None
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    segments = tuple(parts)
    if len(parts) == 1:
        return ImagePath("search", segments) if parts[0] in SEARCHES else None
    if parts[0] != "studies" or not _uid(parts[1]):
        return None
    study, rest = parts[1], parts[2:]
    if not rest:
        return ImagePath("study", segments, study)
    if len(rest) == 1 and rest[0] in ("metadata", *RENDITIONS, "series", "instances"):
        return ImagePath(f"study/{rest[0]}", segments, study)
    if rest[0] != "series" or len(rest) < 2 or not _uid(rest[1]):
        return None
    series, rest = rest[1], rest[2:]
    if not rest:
        return ImagePath("series", segments, study, series)
    if len(rest) == 1 and rest[0] in ("metadata", *RENDITIONS, "instances"):
        return ImagePath(f"series/{rest[0]}", segments, study, series)
    if rest[0] != "instances" or len(rest) < 2 or not _uid(rest[1]):
        return None
    resource = _below_instance(rest[2:])
    return ImagePath(resource, segments, study, series, rest[1]) if resource else None


def raw_target_is_clean(raw_uri: str | None) -> bool:
    """False when the undecoded request target hides a separator (``%2f``, ``%5c``, ``%2e``, ``%25``).

    The WSGI server decodes the path before Django sees it, so ``..%2f`` and ``%2e%2e/`` reach ``parse``
    as ``../`` (and are refused there); this check refuses them even where the decoded form would parse,
    whenever the server hands us the raw target (gunicorn's RAW_URI, REQUEST_URI).
    """
    if not raw_uri:
        return True
    return not ENCODED_SEPARATORS.search(raw_uri.split("?", 1)[0])
