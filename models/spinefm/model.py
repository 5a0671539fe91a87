"""SpineFM: the two encoders, the CLIP branches, the synthesizer and the agent heads in one module.

One ``nn.Module`` so a bundle is one state dict per part and ``analyze`` has a
single object to call. Streams: "t1" and "t2" run their own encoder,
"synthesizer" runs the layer-wise fusion of both (other sequences).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .clip import ClipConfig, SeriesBranch, TriModalCLIP, case_embedding
from .conditions import CONDITION_KEYS
from .heads.diagnosis import DiagnosisHead
from .heads.level import LevelHead
from .heads.locator import LocatorConfig, SpineLocator
from .heads.segmentation import StreamSegmentation
from .preprocess import PreprocessConfig
from .synthesizer import LayerwiseSynthesizer
from .text import TextConfig
from .vit import ViTConfig, VisionTransformer

STREAMS = ("t1", "t2", "synthesizer")


@dataclass
class SpineFMConfig:
    vit: ViTConfig = field(default_factory=ViTConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    conditions: tuple[str, ...] = CONDITION_KEYS
    synth_gate: str = "scalar"   # "scalar" (paper) or "input" (ablation)
    locator: LocatorConfig = field(default_factory=LocatorConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conditions"] = list(self.conditions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SpineFMConfig":
        return cls(vit=ViTConfig(**d.get("vit", {})), clip=ClipConfig(**d.get("clip", {})),
                   text=TextConfig(**d.get("text", {})),
                   preprocess=PreprocessConfig.from_dict(d.get("preprocess", {})),
                   conditions=tuple(d.get("conditions", CONDITION_KEYS)),
                   synth_gate=d.get("synth_gate", "scalar"),
                   locator=LocatorConfig.from_dict(d.get("locator")))


def nano_config(img_size: int = 112, conditions: tuple[str, ...] = CONDITION_KEYS, text_dim: int = 384,
                proj_dim: int = 128, depth: int = 4, hidden: int = 64) -> SpineFMConfig:
    """The CPU configuration (tests and the default phantom bundle)."""
    return SpineFMConfig(
        vit=ViTConfig(size="nano", img_size=img_size, depth=depth),
        clip=ClipConfig(hidden=hidden, proj_dim=proj_dim, text_dim=text_dim),
        preprocess=PreprocessConfig(resize=img_size, crop=img_size, max_slices=16),
        conditions=tuple(conditions),
    )


class SpineFM(nn.Module):
    def __init__(self, cfg: SpineFMConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SpineFMConfig()
        self.t1 = VisionTransformer(copy.deepcopy(cfg.vit))
        self.t2 = VisionTransformer(copy.deepcopy(cfg.vit))
        dim = self.t1.embed_dim
        self.clip = TriModalCLIP(dim, dim, cfg.clip)
        # Encoders are frozen (synthesizer.freeze_encoders) only while the synthesizer trains.
        self.synthesizer = LayerwiseSynthesizer(self.t1, self.t2, gate=cfg.synth_gate, freeze=False)
        self.synth_branch = SeriesBranch(dim, cfg.clip)
        self.diagnosis = DiagnosisHead(cfg.clip.proj_dim, cfg.conditions)
        self.segmentation = StreamSegmentation(dim, cfg.conditions)
        self.level = LevelHead(cfg.clip.proj_dim, cfg.conditions)
        # discs and their levels on the images (spinefm.vertebrae); fitted by the ``locator`` stage
        self.locator = SpineLocator(cfg.locator)

    # -- parts, for bundle files and for freezing per stage
    def parts(self) -> dict[str, nn.Module]:
        synth = nn.ModuleDict({"logits": _ParamHolder(self.synthesizer), "branch": self.synth_branch})
        return {"encoders": nn.ModuleDict({"t1": self.t1, "t2": self.t2}), "clip": self.clip,
                "synthesizer": synth, "diagnosis": self.diagnosis, "segmentation": self.segmentation,
                "level": self.level, "locator": self.locator}

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.detach().contiguous() for k, v in part.state_dict().items()} for name, part in self.parts().items()}

    # -- encoding
    def encoder(self, stream: str) -> nn.Module:
        return {"t1": self.t1, "t2": self.t2, "synthesizer": self.synthesizer}[stream]

    def branch(self, stream: str) -> SeriesBranch:
        return {"t1": self.clip.t1, "t2": self.clip.t2, "synthesizer": self.synth_branch}[stream]

    def encode_slices(self, stream: str, x: torch.Tensor, batch_size: int = 64,
                      patches: bool = False) -> dict[str, torch.Tensor]:
        """(n, 3, S, S) -> {"cls": (n, D)[, "patches": (n, N, D)]}, in chunks."""
        enc = self.encoder(stream)
        cls, pat = [], []
        for i in range(0, x.shape[0], batch_size):
            f = enc.forward_features(x[i: i + batch_size])
            cls.append(f["cls"])
            if patches:
                pat.append(f["patches"])
        out = {"cls": torch.cat(cls)}
        if patches:
            out["patches"] = torch.cat(pat)
        return out

    def series_embedding(self, stream: str, slices: torch.Tensor, mask: torch.Tensor | None = None):
        """Slice embeddings (B, N, D) -> normalised projection (B, P) and slice attention (B, N)."""
        return self.branch(stream)(slices, mask)

    @staticmethod
    def case_embedding(t1: torch.Tensor | None, t2: torch.Tensor | None) -> torch.Tensor:
        return case_embedding(t1, t2)

    def encode_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(text_features)


class _ParamHolder(nn.Module):
    """Exposes the synthesizer's own parameters (not the encoders it wraps) as one state dict."""

    def __init__(self, synth: LayerwiseSynthesizer):
        super().__init__()
        self.logits = synth.logits
        self.gate_net = synth.gate_net
