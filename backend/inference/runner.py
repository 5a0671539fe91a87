"""Run one job: check the headers are a spine MR, fetch the series the bundle reads over DICOMweb (the model
library's one rule, spinefm.intake.series_to_fetch; as stored, decoded here: fetch.py), call the model."""

from __future__ import annotations

import time

from backend.studies.orthanc.client import OrthancClient, get_client
from spinefm import intake
from spinefm.results import UnsupportedStudy
from spinefm.study import StudyInput

from . import fetch, jobs
from .analyzers import attach_site_index, load_analyzer
from .models import InferenceJob

def check_supported(headers: list) -> None:
    """UnsupportedStudy (with the reason) unless the headers can be a spine MR (spinefm.intake.check_supported);
    a study whose tags name no body part passes here and is checked on its images by analyze."""
    intake.check_supported(headers)


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
    datasets, skipped = fetch.fetch_readable(client, job.study.study_instance_uid, intake.series_to_fetch(headers))
    timings["fetch_s"] = time.perf_counter() - t0

    jobs.set_stage(job, "loading model", 40)
    t1 = time.perf_counter()
    analyzer = load_analyzer(job.model_version.path, job.model_version.manifest_sha256)
    attach_site_index(analyzer)
    timings["load_s"] = time.perf_counter() - t1

    jobs.set_stage(job, "analysing", 55)
    t2 = time.perf_counter()
    result = analyzer.analyze(StudyInput.from_datasets(datasets))
    timings["analyze_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    result.series_skipped = skipped  # wanted but unreadable: the reader sees what the draft did not read
    return result.to_dict(), timings
