"""Write the study index from DICOM headers: idempotent upserts keyed by UIDs."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pydicom
from django.db import transaction

from spinefm.sequences import classify_sequence, plane_from_orientation

from .models import Instance, Series, Study
from .signals import study_indexed


def _s(ds: pydicom.Dataset, keyword: str, limit: int = 256) -> str:
    value = ds.get(keyword, "")
    return ("" if value is None else str(value))[:limit]


def _int(ds: pydicom.Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


@transaction.atomic
def index_study(datasets: list[pydicom.Dataset], source: str = "upload", orthanc_id: str = "") -> tuple[Study, bool]:
    """Upsert one study from its instances' headers; returns (study, created).

    Counts are recomputed from rows so repeated or partial deliveries converge.
    """
    study_uids = {str(ds.StudyInstanceUID) for ds in datasets}
    if len(study_uids) != 1:
        raise ValueError(f"index_study takes the instances of one study, got {len(study_uids)}")
    first = datasets[0]
    modalities = sorted({_s(ds, "Modality") for ds in datasets if _s(ds, "Modality")})
    defaults = {
        "patient_id": _s(first, "PatientID", 64),
        "patient_name": _s(first, "PatientName"),
        "patient_sex": _s(first, "PatientSex", 16),
        "patient_birth_date": _s(first, "PatientBirthDate", 8),
        "accession_number": _s(first, "AccessionNumber", 64),
        "study_date": _date(_s(first, "StudyDate")),
        "study_description": _s(first, "StudyDescription"),
        "body_part": _s(first, "BodyPartExamined", 64),
        "modalities": "\\".join(modalities)[:64],
    }
    study, created = Study.objects.select_for_update().get_or_create(
        study_instance_uid=study_uids.pop(), defaults={**defaults, "source": source})
    if not created:
        for key, value in defaults.items():
            setattr(study, key, value or getattr(study, key))
    if orthanc_id:
        study.orthanc_id = orthanc_id

    by_series: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in datasets:
        by_series[str(ds.SeriesInstanceUID)].append(ds)
    for series_uid, items in by_series.items():
        head = items[0]
        sequence, rule = classify_sequence(head)
        series, _ = Series.objects.update_or_create(
            series_instance_uid=series_uid,
            defaults={
                "study": study,
                "series_number": _int(head, "SeriesNumber"),
                "modality": _s(head, "Modality", 16),
                "series_description": _s(head, "SeriesDescription"),
                "manufacturer": _s(head, "Manufacturer", 128),
                "plane": plane_from_orientation(head.get("ImageOrientationPatient")),
                "sequence_type": sequence,
                "sequence_rule": rule,
            },
        )
        known = set(series.instances.values_list("sop_instance_uid", flat=True))
        Instance.objects.bulk_create(
            [
                Instance(
                    series=series,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    sop_class_uid=_s(ds, "SOPClassUID", 64),
                    instance_number=_int(ds, "InstanceNumber"),
                    rows=_int(ds, "Rows"),
                    columns=_int(ds, "Columns"),
                )
                for ds in items
                if str(ds.SOPInstanceUID) not in known
            ],
            ignore_conflicts=True,
        )
        series.num_instances = series.instances.count()
        series.save(update_fields=["num_instances"])
    study.num_series = study.series.count()
    study.num_instances = Instance.objects.filter(series__study=study).count()
    study.save()
    # Receivers run inside this transaction: an inference job row commits with the index or not at all.
    study_indexed.send(sender=Study, study=study, created=created)
    return study, created
