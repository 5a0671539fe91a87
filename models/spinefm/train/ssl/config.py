"""Pretraining hyperparameters: one dataclass, two presets.

``SSLConfig()`` is the CPU/tiny default used by tests and the demo bundle;
``SSLConfig.full_scale()`` follows DINOv2's defaults and the SpineAgent
release (ViT-L/16, 224/96 crops, 150 + 60 epochs at 1,250 iterations,
batch 400, Gram anchoring weight 2.0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .augment import AugmentConfig


@dataclass
class SSLConfig:
    # model
    vit_size: str = "nano"
    img_size: int = 64  # global crop size; also the ViT's position-embedding grid
    patch_size: int = 16
    num_registers: int = 4
    drop_path: float = 0.0
    head_prototypes: int = 1024
    head_hidden: int = 256
    head_bottleneck: int = 64
    head_layers: int = 3
    ibot_separate_head: bool = True  # DINOv3 (DINOv2 default shares the head)
    # losses
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.1
    gram_weight: float = 2.0
    gram_update_every: int = 0  # 0: keep the first Gram teacher snapshot for the whole phase
    gram_teacher_scale: float = 1.0  # >1: Gram teacher on upsampled crops, features resized back (DINOv3)
    centering: str = "centering"  # or "sinkhorn_knopp"
    center_momentum: float = 0.9
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_steps: int = 10
    # masking (iBOT)
    mask_ratio: tuple[float, float] = (0.1, 0.5)
    mask_probability: float = 0.5
    # crops
    local_size: int = 32
    n_local: int = 4
    slice_size: int = 72  # stored slice side before cropping (256 at full scale)
    # optimisation
    steps: int = 100  # phase 1 (DINO + iBOT + KoLeo)
    gram_steps: int = 0  # phase 2 (adds Gram anchoring), after ``steps``
    batch_size: int = 16  # per rank
    base_lr: float = 4e-3  # at a global batch of 1024, scaled by ``lr_scaling``
    lr_scaling: str = "sqrt_wrt_1024"
    min_lr: float = 1e-6
    warmup_steps: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.2
    momentum_teacher: float = 0.992
    final_momentum_teacher: float = 1.0
    clip_grad: float = 3.0
    freeze_last_layer_steps: int = 0
    layerwise_decay: float = 1.0
    patch_embed_lr_mult: float = 0.2
    adamw_betas: tuple[float, float] = (0.9, 0.999)
    # bookkeeping
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 50
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def total_steps(self) -> int:
        return self.steps + self.gram_steps

    @classmethod
    def full_scale(cls, **overrides) -> "SSLConfig":
        """ViT-L/16 DINOv2/DINOv3-style recipe; 1,250 iterations per epoch at global batch 400."""
        it = 1250
        cfg = dict(
            vit_size="large", img_size=224, local_size=96, n_local=8, slice_size=256, drop_path=0.3,
            head_prototypes=65536, head_hidden=2048, head_bottleneck=256, centering="sinkhorn_knopp",
            warmup_teacher_temp_steps=30 * it, steps=150 * it, gram_steps=60 * it, batch_size=50,
            warmup_steps=10 * it, freeze_last_layer_steps=1 * it, layerwise_decay=0.9,
            gram_update_every=10_000, gram_teacher_scale=2.0, checkpoint_every=it, log_every=10,
        )
        cfg.update(overrides)
        return cls(**cfg)

    def augment_config(self) -> AugmentConfig:
        aug = AugmentConfig(**asdict(self.augment))
        aug.global_size, aug.local_size, aug.n_local = self.img_size, self.local_size, self.n_local
        return aug

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SSLConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if isinstance(d.get("augment"), dict):
            aug = {k: tuple(v) if isinstance(v, list) else v for k, v in d["augment"].items()}
            d["augment"] = AugmentConfig(**aug)
        for k in ("mask_ratio", "adamw_betas"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)
