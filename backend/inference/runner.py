"""Run one job: fetch the study over DICOMweb (as stored, decoded here: fetch.py), check it is a spine MR,
call the model."""

from __future__ import annotations

import time

from backend.studies.orthanc.client import OrthancClient, get_client
from spinefm.results import UnsupportedStudy
from spinefm.sequences import OTHER, plane_from_orientation, sequence_type
from spinefm.study import StudyInput

from . import fetch, jobs
from .analyzers import load_analyzer
from .models import InferenceJob

SPINE_BODY_PARTS = ("SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "NECK", "BACK", "COCCYX", "SACRUM", "")
READ_PLANES = ("sagittal", "axial")


def usable_series(headers: list) -> dict[str, object]:
    """Series worth fetching pixels for: MR, a known sequence type, sagittal or axial."""
    chosen: dict[str, object] = {}
    for ds in headers:
        uid = str(ds.SeriesInstanceUID)
        if uid in chosen:
            continue
        if (str(ds.get("Modality", "")) == "MR" and sequence_type(ds) != OTHER
                and plane_from_orientation(ds.get("ImageOrientationPatient")) in READ_PLANES):
            chosen[uid] = ds
    return chosen


def check_supported(headers: list) -> None:
    modalities = sorted({str(ds.get("Modality", "")) for ds in headers} - {"SR", "SEG", "PR", "KO"})
    if modalities != ["MR"]:
        raise UnsupportedStudy(f"modality {', '.join(modalities) or 'unknown'} is not MR; SpineAgent reads spine MRI")
    parts = {str(ds.get("BodyPartExamined", "")).upper().replace(" ", "") for ds in headers}
    if not parts & set(SPINE_BODY_PARTS):
        raise UnsupportedStudy(f"body part {', '.join(sorted(parts))} is not spine")
    if not usable_series(headers):
        raise UnsupportedStudy("no sagittal or axial T1, T2, STIR or Dixon series in this study")


def run(job: InferenceJob, client: OrthancClient | None = None) -> tuple[dict, dict]:
    """Returns (result as dict, timings). Raises UnsupportedStudy / ServiceUnavailable."""
    client = client or get_client()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    jobs.set_stage(job, "reading headers", 5)
    headers = client.study_metadata(job.study.study_instance_uid)
    check_supported(headers)
    if job.model_version is None:
        raise RuntimeError("no active model version: register and promote one (manage.py register_model)")

    jobs.set_stage(job, "fetching images", 15)
    datasets, skipped = fetch.fetch_readable(client, job.study.study_instance_uid, usable_series(headers))
    timings["fetch_s"] = time.perf_counter() - t0

    jobs.set_stage(job, "loading model", 40)
    t1 = time.perf_counter()
    analyzer = load_analyzer(job.model_version.path, job.model_version.manifest_sha256)
    timings["load_s"] = time.perf_counter() - t1

    jobs.set_stage(job, "analysing", 55)
    t2 = time.perf_counter()
    result = analyzer.analyze(StudyInput.from_datasets(datasets))
    timings["analyze_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    data = result.to_dict()
    data["series_skipped"] = skipped  # wanted but unreadable: the reader sees what the draft did not read
    return data, timings
