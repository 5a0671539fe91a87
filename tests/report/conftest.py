"""Shared fixtures: a hand-made AnalysisResult (no phantom, no encoder needed)."""
import torch

torch.set_num_threads(1)  # shared cores: oversubscribed OpenMP threads are ~15x slower

import pytest

from spinefm.results import AnalysisResult, Box, ConditionPrediction, KeySlice, SeriesUsed, SimilarCase


def make_result(similar: str = "FINDINGS:\nL4-L5: Disc herniation.\n\nIMPRESSION:\n1. Disc herniation at L4-L5.") -> AnalysisResult:
    return AnalysisResult(
        "spinefm", "test", True,
        conditions=[ConditionPrediction("canal", 0.86, True, "L4-L5"),
                    ConditionPrediction("herniation", 0.55, True, "L4-L5"),
                    ConditionPrediction("fracture", 0.93, True, "L1"),
                    ConditionPrediction("neuroforaminal", 0.44, False, "L5-S1"),
                    ConditionPrediction("cyst", 0.05, False, None),
                    ConditionPrediction("compression", 0.02, False, None)],
        key_slices=[KeySlice("canal", "1.2.3", "1.2.3.4", 7, 0.9)],
        boxes=[Box("canal", "1.2.3", "1.2.3.4", [10.0, 20.0, 40.0, 50.0], 0.8, "L4-L5")],
        similar_cases=[SimilarCase("case-9", 0.91, similar), SimilarCase("case-3", 0.5, "other")],
        series=[SeriesUsed("1.2.3", "T2", "sagittal", "t2", 15),
                SeriesUsed("1.2.4", "T1", "sagittal", "t1", 15)],
        region="lumbar", regions=["lumbar"], region_source="dicom",
    )


@pytest.fixture
def result() -> AnalysisResult:
    return make_result()
