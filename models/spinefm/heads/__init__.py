"""Agents as heads on the shared embeddings: diagnosis and segmentation (retrieval needs no weights)."""

from .diagnosis import DiagnosisHead, masked_bce
from .segmentation import SegmentationHead, StreamSegmentation, segmentation_loss

__all__ = ["DiagnosisHead", "masked_bce", "SegmentationHead", "StreamSegmentation", "segmentation_loss"]
