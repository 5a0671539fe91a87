"""A study as the model sees it: series of pydicom datasets, typed and ordered.

Built by the backend from DICOMweb (or by tests from files); the model library
never talks to Orthanc itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .sequences import classify_sequence, plane_from_orientation


@dataclass
class SeriesInput:
    series_instance_uid: str
    datasets: list  # pydicom.Dataset, ordered along the slice normal
    sequence: str = "OTHER"
    sequence_rule: str = ""
    plane: str = "oblique"
    description: str = ""


@dataclass
class StudyInput:
    study_instance_uid: str
    series: list[SeriesInput] = field(default_factory=list)
    modality: str = "MR"

    @classmethod
    def from_datasets(cls, datasets: Iterable) -> "StudyInput":
        """Group instances by series, classify each series, order slices by position."""
        by_series: dict[str, list] = defaultdict(list)
        study_uids = set()
        modalities = set()
        for ds in datasets:
            by_series[str(ds.SeriesInstanceUID)].append(ds)
            study_uids.add(str(ds.StudyInstanceUID))
            modalities.add(str(ds.get("Modality", "")))
        if len(study_uids) != 1:
            raise ValueError(f"expected instances of one study, got {len(study_uids)} study UIDs")
        series = [_series_input(uid, items) for uid, items in by_series.items()]
        series.sort(key=lambda s: (int(s.datasets[0].get("SeriesNumber", 0) or 0), s.series_instance_uid))
        modality = "MR" if modalities == {"MR"} else ",".join(sorted(modalities))
        return cls(study_uids.pop(), series, modality)


def slice_position(ds) -> float:
    """Position of a slice along its normal (falls back to InstanceNumber)."""
    orientation = ds.get("ImageOrientationPatient")
    position = ds.get("ImagePositionPatient")
    if orientation is not None and position is not None and len(orientation) == 6:
        r = [float(v) for v in orientation[:3]]
        c = [float(v) for v in orientation[3:]]
        n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
        return sum(float(p) * k for p, k in zip(position, n))
    return float(ds.get("InstanceNumber", 0) or 0)


def _series_input(uid: str, datasets: list) -> SeriesInput:
    datasets = sorted(datasets, key=slice_position)
    first = datasets[0]
    sequence, rule = classify_sequence(first)
    return SeriesInput(
        series_instance_uid=uid,
        datasets=datasets,
        sequence=sequence,
        sequence_rule=rule,
        plane=plane_from_orientation(first.get("ImageOrientationPatient")),
        description=str(first.get("SeriesDescription", "")),
    )
