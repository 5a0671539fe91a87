"""Self-supervised pretraining of the SpineFM encoders (DINOv2/DINOv3 recipe).

DINO [CLS] self-distillation + iBOT masked patch prediction + KoLeo, with
an EMA teacher, multi-crop MR-specific augmentations, then an optional Gram
anchoring phase. ``pretrain_encoder`` trains a ``VisionTransformer`` in place;
``train.add_arguments`` / ``train.run`` are the CLI.
"""

from .augment import AugmentConfig, MultiCropAugmentation
from .checkpoint import export_encoder, load_encoder
from .config import SSLConfig
from .heads import DINOHead
from .losses import DINOLoss, GramLoss, KoLeoLoss, iBOTPatchLoss
from .masking import MaskingGenerator, sample_masks
from .meta_arch import SSLMetaArch
from .pretrain import pretrain_encoder
from .trainer import Trainer

__all__ = [
    "AugmentConfig", "DINOHead", "DINOLoss", "GramLoss", "KoLeoLoss", "MaskingGenerator", "MultiCropAugmentation",
    "SSLConfig", "SSLMetaArch", "Trainer", "export_encoder", "iBOTPatchLoss", "load_encoder", "pretrain_encoder",
    "sample_masks",
]
