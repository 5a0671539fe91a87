"""The three ingest paths, all idempotent: API upload, Orthanc's stable-study event, re-sync.

Upload order matters for "nothing half-stored": validate every file, then
store them one by one, streamed from disk (POST /instances, which names the
reason for a refusal); if Orthanc refuses one, or stops answering, delete what
this upload added and report it (400 naming the file and Orthanc's reason, or
503 for an outage), so the study is stored whole or not at all and the index
equals Orthanc. Only then is the index written (and a job queued).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import ProtectedError

from backend.errors import ServiceUnavailable

from .dicom_files import FileProblem, InvalidUpload, UploadedInstance
from .deidentify import maybe_deidentify
from .indexing import index_study
from .models import Instance, Study
from .orthanc.client import OrthancClient, get_client

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    study: Study
    created: bool
    instances_received: int
    instances_new: int


def store_upload(instances: list[UploadedInstance], client: OrthancClient | None = None) -> list[IngestReport]:
    """Store validated instances in Orthanc (all or nothing), then index each study."""
    instances = maybe_deidentify(instances)  # SPINEAGENT_DEIDENTIFY_ON_INGEST: before Orthanc or the index see them
    client = client or get_client()
    known = set(Instance.objects.filter(
        sop_instance_uid__in=[str(i.dataset.SOPInstanceUID) for i in instances]).values_list("sop_instance_uid", flat=True))
    _store_all_or_nothing(instances, client)

    by_study: dict[str, list[UploadedInstance]] = defaultdict(list)
    for instance in instances:
        by_study[str(instance.dataset.StudyInstanceUID)].append(instance)
    reports = []
    for study_uid, items in by_study.items():
        study, created = index_study([i.dataset for i in items], source="upload",
                                     orthanc_id=client.orthanc_study_id(study_uid))
        new = sum(1 for i in items if str(i.dataset.SOPInstanceUID) not in known)
        reports.append(IngestReport(study, created, len(items), new))
    return reports


def _store_all_or_nothing(instances: list[UploadedInstance], client: OrthancClient) -> None:
    added: list[str] = []
    try:
        for n, instance in enumerate(instances):
            stored = client.store_file(instance.path)
            if stored.refused:
                untried = len(instances) - n - 1
                raise InvalidUpload([FileProblem(instance.name, f"Orthanc refused it: {stored.refused}")] + (
                    [FileProblem("(upload)", f"{untried} later files were not tried")] if untried else []))
            if stored.added:
                added.append(stored.orthanc_id)
    except (InvalidUpload, ServiceUnavailable):
        _roll_back(added, client)
        raise


def _roll_back(orthanc_ids: list[str], client: OrthancClient) -> None:
    try:
        client.delete_orthanc_instances(orthanc_ids)
    except ServiceUnavailable:
        log.exception("could not roll back %d instances of a failed upload; `manage.py sync_orthanc` "
                      "indexes what Orthanc kept", len(orthanc_ids))


def index_from_orthanc(study_instance_uid: str, source: str = "orthanc",
                       client: OrthancClient | None = None) -> tuple[Study, bool]:
    """(Re)index a study Orthanc already holds, from its WADO-RS metadata."""
    client = client or get_client()
    datasets = client.study_metadata(study_instance_uid)
    if not datasets:
        raise LookupError(f"Orthanc has no instances for study {study_instance_uid}")
    return index_study(datasets, source=source, orthanc_id=client.orthanc_study_id(study_instance_uid))


def resync_from_orthanc(client: OrthancClient | None = None) -> dict[str, int]:
    """Bring the index in line with Orthanc: index every study, drop rows Orthanc no longer has."""
    client = client or get_client()
    uids = client.study_instance_uids()
    created = unreadable = 0
    for uid in uids:
        try:
            _, was_created = index_from_orthanc(uid, source="sync", client=client)
        except LookupError:
            # Orthanc lists the study but serves no DICOMweb metadata for it (seen for odd non-image objects
            # of real archives): one such study must not stop the others from being indexed.
            unreadable += 1
            log.warning("re-sync: Orthanc has study %s but no DICOMweb metadata for it; not indexed", uid)
            continue
        created += was_created
    removed = kept = 0
    for stale in Study.objects.exclude(study_instance_uid__in=uids):
        try:
            with transaction.atomic():
                stale.delete()
            removed += 1
        except ProtectedError:
            # Rows that others protect (a radiologist's report) outlive the images: keep, report it.
            kept += 1
            log.warning("study %s is gone from Orthanc but has protected records; index row kept", stale)
    return {"studies": len(uids), "created": created, "removed": removed, "kept_protected": kept,
            "unreadable": unreadable}
