"""Agents as heads on the shared embeddings: diagnosis, segmentation, level (retrieval needs no weights)."""

from .diagnosis import DiagnosisHead, masked_bce
from .level import LEVELS, LevelHead
from .segmentation import SegmentationHead, StreamSegmentation, segmentation_loss

__all__ = ["DiagnosisHead", "masked_bce", "LevelHead", "LEVELS", "SegmentationHead", "StreamSegmentation", "segmentation_loss"]
