"""Fetching the series a job reads, in their stored transfer syntax, and decoding them here.

Archives hold MR as JPEG 2000, JPEG-LS, JPEG lossless or RLE as often as uncompressed; Orthanc 1.10 cannot
transcode all of them, so the worker never asks it to: each instance comes as stored and pydicom (with the
pylibjpeg decoders) decodes it. A series Orthanc will not deliver, or whose pixels cannot be decoded, is
left out with its reason; a study with no readable series is unsupported with every reason. Only an outage
of Orthanc itself (ServiceUnavailable) reaches the task, which retries it.
"""

from __future__ import annotations

import logging

from backend.studies.orthanc.client import OrthancClient, OrthancRefused
from spinefm.results import UnsupportedStudy

log = logging.getLogger(__name__)


def series_label(header) -> str:
    number = header.get("SeriesNumber", "")
    description = str(header.get("SeriesDescription", "") or "").strip()
    return f"series {number or '?'}" + (f" '{description}'" if description else "")


def _decode(datasets: list) -> None:
    """Decode every frame now: pydicom keeps the array on the dataset, so the model reads it for free."""
    for ds in datasets:
        if "PixelData" in ds:
            ds.pixel_array  # noqa: B018  (decoded and cached)


def fetch_readable(client: OrthancClient, study_uid: str, wanted: dict) -> tuple[list, list[str]]:
    """(instances of every readable wanted series, the reasons the others were left out)."""
    datasets, skipped = [], []
    for series_uid, header in wanted.items():
        label = series_label(header)
        try:
            items = client.retrieve_series(study_uid, series_uid)
        except OrthancRefused as exc:
            skipped.append(f"{label}: {exc}")
            continue
        try:
            _decode(items)
        except Exception as exc:  # pydicom and its plugins raise many kinds on data they cannot decode
            syntax = items[0].file_meta.get("TransferSyntaxUID") if items and hasattr(items[0], "file_meta") else None
            name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
            log.warning("%s of study %s could not be decoded", label, study_uid, exc_info=True)
            skipped.append(f"{label}: pixels could not be decoded ({name}: {exc.__class__.__name__})")
            continue
        datasets.extend(items)
    if not datasets:
        raise UnsupportedStudy("no series could be read: " + "; ".join(skipped or ["none was wanted"]))
    return datasets, skipped
