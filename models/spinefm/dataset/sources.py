"""Where studies come from: a DICOM folder, a DICOMweb server (Orthanc or any other), or the phantom generator.

Each source yields :class:`StudySource` items: a key, header facts known before any pixel
is read, and ``load()`` returning the study's pydicom datasets (plus, for phantoms, the
truth the generator knows). Every study then goes through the same path as inference
(``spinefm.dataset.build.study_record``), so a phantom is not a special case.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class StudySource:
    key: str                      # unique within the build: StudyInstanceUID, or phantom-<seed>-<index>
    source: str                   # which source, for the error report and the dataset record
    study_instance_uid: str
    load: Callable[[], tuple[list, dict]] = field(repr=False)   # -> (datasets, truth or {})
    accession: str = ""
    patient_id: str = ""
    case_id: str = ""             # default: the StudyInstanceUID


# ---------------------------------------------------------------- DICOM folder

def _header(path: Path):
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "AccessionNumber", "PatientID", "Modality"])


def scan_folder(root: str | Path, progress: bool = False) -> tuple[list[StudySource], list[dict]]:
    """Every file under ``root`` (any nesting, any name); DICOM files grouped by StudyInstanceUID.
    Returns the studies and one error per file that is not readable DICOM of a study."""
    import pydicom

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    files = sorted(Path(d) / f for d, _, names in os.walk(root) for f in names)
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc="reading headers", leave=False)
    label = f"dicom:{root}"
    paths, facts, errors = defaultdict(list), {}, []
    for path in files:
        if path.name.upper() == "DICOMDIR" or path.name.startswith("."):
            continue
        try:
            ds = _header(path)
            uid = str(ds.get("StudyInstanceUID", "") or "")
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, AttributeError, EOFError) as exc:
            if path.suffix.lower() in (".csv", ".json", ".jsonl", ".txt", ".md"):
                continue  # tables next to the images are not images
            errors.append({"key": str(path), "source": label, "error": f"unreadable file: {type(exc).__name__}: {exc}"})
            continue
        if not uid:
            errors.append({"key": str(path), "source": label, "error": "DICOM file without a StudyInstanceUID"})
            continue
        paths[uid].append(path)
        facts.setdefault(uid, (str(ds.get("AccessionNumber", "") or ""), str(ds.get("PatientID", "") or "")))

    def loader(items: list[Path]):
        return lambda: ([pydicom.dcmread(p) for p in items], {})

    studies = [StudySource(uid, label, uid, loader(p), *facts[uid]) for uid, p in paths.items()]
    return studies, errors


# ---------------------------------------------------------------- DICOMweb (QIDO-RS + WADO-RS)

def dicomweb_client(url: str, username: str | None = None, password: str | None = None, token: str | None = None,
                    timeout: float = 60.0):
    """A dicomweb_client.DICOMwebClient with HTTP basic auth or a bearer token (e.g. Orthanc's /dicom-web)."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    if username:
        session.auth = (username, password or "")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return DICOMwebClient(url.rstrip("/"), session=session, timeout=timeout)


def _value(attrs: dict, tag: str) -> str:
    v = (attrs.get(tag) or {}).get("Value") or [""]
    return str(v[0].get("Alphabetic", "") if isinstance(v[0], dict) else v[0])


def dicomweb_studies(client, label: str, study_uids: list[str] | None = None,
                     filters: dict | None = None, page: int = 100) -> list[StudySource]:
    """Studies found by QIDO-RS (MR by default, or exactly ``study_uids``); ``load`` reads the series
    headers with WADO-RS metadata, keeps the series inference would fetch (spinefm.intake) and retrieves only those."""
    from ..intake import series_to_fetch

    found = []
    if study_uids:
        for uid in study_uids:
            found += client.search_for_studies(search_filters={"StudyInstanceUID": uid})
    else:
        offset = 0
        while True:
            got = client.search_for_studies(search_filters=filters or {"ModalitiesInStudy": "MR"},
                                            offset=offset, limit=page)
            found += got
            if len(got) < page:
                break
            offset += page

    def loader(uid: str):
        def load():
            import pydicom

            heads = []
            for series in client.search_for_series(study_instance_uid=uid):
                series_uid = _value(series, "0020000E")
                meta = client.retrieve_series_metadata(study_instance_uid=uid, series_instance_uid=series_uid)
                if meta:
                    heads.append(pydicom.Dataset.from_json(meta[0], bulk_data_uri_handler=lambda tag, vr, uri: None))
            datasets = []
            for series_uid in series_to_fetch(heads) if heads else []:
                datasets += client.retrieve_series(study_instance_uid=uid, series_instance_uid=series_uid)
            return datasets or heads, {}
        return load

    out = []
    for attrs in found:
        uid = _value(attrs, "0020000D")
        if uid:
            out.append(StudySource(uid, label, uid, loader(uid), _value(attrs, "00080050"), _value(attrs, "00100020")))
    return out


# ---------------------------------------------------------------- phantoms

def phantom_studies(seed: int, indices, config: dict | None = None) -> list[StudySource]:
    """spine_phantom studies as a source: their DICOM datasets, and truth (report, labels, boxes, split)."""
    import spine_phantom
    from spine_phantom.ids import patient_id

    label = f"phantom:seed={seed}"

    def loader(index: int):
        def load():
            cfg = spine_phantom.PhantomConfig(**config) if config else None
            study = spine_phantom.generate_study(seed, index, config=cfg)
            truth = dict(study.truth)
            truth["split"] = spine_phantom.split_of(seed, index)
            return [ds for s in study.series for ds in s.datasets()], truth
        return load

    return [StudySource(f"phantom-{seed}-{i}", label, "", loader(i), "", patient_id(seed, i), f"phantom-{seed}-{i}")
            for i in indices]
