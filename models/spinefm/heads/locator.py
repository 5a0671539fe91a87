"""Spine locator: where the intervertebral discs are on a sagittal slice, and which disc each one is.

Why this design (after SPINEPS / VERIDAH and TotalSpineSeg): labelling must not depend on
the field of view, so the network never sees "where in the image" a level usually is. It
works on a fixed physical grid (``mm`` per pixel, 2 mm: a 6 cm crop and a whole spine look
the same size per disc), fully convolutionally, and outputs per 4 mm cell

- a disc-centre heatmap (one channel): discs look locally alike, so detection is local, and
- per-disc level logits over ``DISC_CLASSES`` (C2-C3 ... L5-S1, plus S1-S2 for a mobile
  first sacral segment), read only at detected discs. They are sharp where the image shows a
  landmark in its receptive field (the dens above C2-C3, the sacrum below L5-S1, the
  cervicothoracic and thoracolumbar transitions, as TotalSpineSeg's landmark discs) and
  vague in between.

``spinefm.vertebrae`` then orders the detected discs along the spine and decodes the most
probable run of consecutive labels (a min-cost path as SPINEPS does over its per-vertebra
classifier), so a landmark anywhere in view names every disc by counting, and a view with
no landmark comes out "level uncertain" instead of a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..conditions import DISC_LEVELS

DISC_CLASSES: tuple[str, ...] = DISC_LEVELS + ("S1-S2",)
STRIDE = 2  # output cells per input pixel: 4 mm cells on the 2 mm grid
MULTIPLE = 16  # inputs are padded to a multiple of this (four 2x downsamplings)


@dataclass
class LocatorConfig:
    width: int = 16            # channels of the first stage (x2, x3, x4, x6 deeper)
    mm: float = 2.0            # input grid, millimetres per pixel
    n_slices: int = 3          # central sagittal slices averaged at inference
    heat_threshold: float = 0.3
    min_discs: int = 3         # a chain of at least this many discs confirms a spine
    confidence: float = 0.9    # decoded labels below this posterior are "level uncertain"
    # weight of each disc's label evidence in the decoded run: neighbouring discs see the same
    # context, so their evidence is not independent and multiplying it in full is overconfident
    evidence: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "LocatorConfig":
        return cls(**(d or {}))


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SpineLocator(nn.Module):
    def __init__(self, cfg: LocatorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or LocatorConfig()
        w = cfg.width
        self.stem = _block(1, w)                                            # 2 mm
        self.down1 = nn.Sequential(nn.MaxPool2d(2), _block(w, 2 * w), _block(2 * w, 2 * w))          # 4 mm
        self.down2 = nn.Sequential(nn.MaxPool2d(2), _block(2 * w, 3 * w), _block(3 * w, 3 * w))      # 8 mm
        self.down3 = nn.Sequential(nn.MaxPool2d(2), _block(3 * w, 4 * w), _block(4 * w, 4 * w))      # 16 mm
        self.down4 = nn.Sequential(nn.MaxPool2d(2), _block(4 * w, 6 * w), _block(6 * w, 6 * w, 2),
                                   _block(6 * w, 6 * w, 4))                                          # 32 mm
        self.up3 = _block(6 * w + 4 * w, 4 * w)
        self.up2 = _block(4 * w + 3 * w, 3 * w)
        self.up1 = _block(3 * w + 2 * w, 2 * w)
        self.heat = nn.Conv2d(2 * w, 1, 1)
        self.level = nn.Conv2d(2 * w, len(DISC_CLASSES), 1)
        self.register_buffer("fitted", torch.tensor(0.0))
        self.register_buffer("temperature", torch.tensor(1.0))  # of the level logits, fitted on held-out phantoms
        nn.init.constant_(self.heat.bias, -4.0)  # discs are rare cells

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item() > 0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B, 1, H, W) in [0, 1], H and W multiples of 16 -> logits at H/2 x W/2:
        {"heat": (B, 1, .., ..), "level": (B, len(DISC_CLASSES), .., ..)}."""
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.down2(s1)
        s3 = self.down3(s2)
        s4 = self.down4(s3)
        u3 = self.up3(torch.cat([F.interpolate(s4, size=s3.shape[-2:], mode="nearest"), s3], 1))
        u2 = self.up2(torch.cat([F.interpolate(u3, size=s2.shape[-2:], mode="nearest"), s2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=s1.shape[-2:], mode="nearest"), s1], 1))
        return {"heat": self.heat(u1), "level": self.level(u1)}


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Zero-pad the last two dims (bottom/right) up to a multiple; coordinates are unchanged."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple))
