"""DICOM slices -> model input tensors, with the geometry to map boxes back.

MR has no Hounsfield scale: after the rescale slope/intercept, intensities are
arbitrary and scanner dependent (12-bit, long tails from fat and vessels), so
each series is windowed at robust percentiles of its own volume before the
DINO-style resize / centre-crop / 3-channel / ImageNet normalisation the
encoders were trained with. ``Geometry`` keeps the resize and crop so a box
predicted in normalised crop coordinates lands on the original pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PreprocessConfig:
    resize: int = 256          # shorter side after resizing
    crop: int = 224            # centre crop (the encoders' input size)
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    max_slices: int = 64       # per series, uniformly subsampled beyond this (training only)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessConfig":
        data = dict(data)
        for key in ("mean", "std"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class Geometry:
    """Original (height, width) -> resized by ``scale`` -> cropped at (top, left) to crop x crop."""

    height: int
    width: int
    scale: float
    top: int
    left: int
    crop: int

    def to_normalized(self, box: list[float]) -> list[float]:
        """Pixel box [x0, y0, x1, y1] of the original image -> [0, 1] coordinates of the crop."""
        x0, y0, x1, y1 = box
        f = lambda v, off: (v * self.scale - off) / self.crop  # noqa: E731
        return [min(max(f(x0, self.left), 0.0), 1.0), min(max(f(y0, self.top), 0.0), 1.0),
                min(max(f(x1, self.left), 0.0), 1.0), min(max(f(y1, self.top), 0.0), 1.0)]

    def to_pixels(self, box: list[float]) -> list[float]:
        """[0, 1] crop coordinates -> pixel box of the original image, clipped to it."""
        x0, y0, x1, y1 = (float(v) for v in box)
        g = lambda v, off: (v * self.crop + off) / self.scale  # noqa: E731
        xs = sorted((g(x0, self.left), g(x1, self.left)))
        ys = sorted((g(y0, self.top), g(y1, self.top)))
        return [min(max(xs[0], 0.0), self.width), min(max(ys[0], 0.0), self.height),
                min(max(xs[1], 0.0), self.width), min(max(ys[1], 0.0), self.height)]

    def to_dict(self) -> dict:
        return asdict(self)


def pixels_from_dataset(ds) -> np.ndarray:
    """Stored values -> modality values via RescaleSlope/RescaleIntercept (float32, H x W)."""
    pixels = ds.pixel_array.astype(np.float32)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):  # colour secondary capture: take luminance
        pixels = pixels[..., :3].mean(-1)
    return pixels * slope + intercept


def volume_from_datasets(datasets: list) -> np.ndarray:
    """A series' slices -> (n, H, W) float32; slices of another size are resized to the first's."""
    slices = [pixels_from_dataset(ds) for ds in datasets]
    h, w = slices[0].shape[-2:]
    out = []
    for s in slices:
        if s.shape != (h, w):
            t = torch.from_numpy(s)[None, None]
            s = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        out.append(s)
    return np.stack(out)


def window(volume: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Robust per-series windowing to [0, 1] at the given percentiles of non-background voxels."""
    v = np.asarray(volume, dtype=np.float32)
    fg = v[v > v.min()] if np.any(v > v.min()) else v.reshape(-1)
    lo, hi = np.percentile(fg, [low, high])
    if hi - lo < 1e-6:
        return np.zeros_like(v)
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def geometry_for(height: int, width: int, cfg: PreprocessConfig) -> Geometry:
    scale = cfg.resize / min(height, width)
    nh, nw = max(cfg.crop, round(height * scale)), max(cfg.crop, round(width * scale))
    return Geometry(height, width, scale, (nh - cfg.crop) // 2, (nw - cfg.crop) // 2, cfg.crop)


def resize_crop(volume: np.ndarray | torch.Tensor, cfg: PreprocessConfig) -> tuple[torch.Tensor, Geometry]:
    """(n, H, W) in [0, 1] -> (n, crop, crop): resize the shorter side, then centre-crop."""
    x = torch.as_tensor(np.asarray(volume, dtype=np.float32))[:, None]
    geo = geometry_for(x.shape[-2], x.shape[-1], cfg)
    nh, nw = max(cfg.crop, round(geo.height * geo.scale)), max(cfg.crop, round(geo.width * geo.scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    x = x[:, 0, geo.top: geo.top + cfg.crop, geo.left: geo.left + cfg.crop]
    return x.clamp_(0.0, 1.0), geo


def normalize(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """(n, S, S) in [0, 1] -> (n, 3, S, S): grey replicated to 3 channels, mean/std normalised."""
    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float().unsqueeze(1).expand(-1, 3, -1, -1) - mean) / std


def uint8_to_input(x: np.ndarray | torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Cached uint8 crops (n, S, S) -> normalised float input (n, 3, S, S)."""
    return normalize(torch.as_tensor(np.asarray(x)).float() / 255.0, cfg)


@dataclass
class PreparedSeries:
    """A series ready for an encoder: windowed crops in [0, 1] and how they were made."""

    pixels: torch.Tensor  # (n, S, S) float in [0, 1]
    geometry: Geometry
    sop_instance_uids: list[str] = field(default_factory=list)

    def as_uint8(self) -> np.ndarray:
        return (self.pixels * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def prepare_volume(volume: np.ndarray, cfg: PreprocessConfig, sop_instance_uids: list[str] | None = None) -> PreparedSeries:
    windowed = window(volume, cfg.low_percentile, cfg.high_percentile)
    pixels, geo = resize_crop(windowed, cfg)
    return PreparedSeries(pixels, geo, list(sop_instance_uids or []))


def prepare_series(datasets: list, cfg: PreprocessConfig) -> PreparedSeries:
    """pydicom datasets of one series (ordered) -> PreparedSeries."""
    uids = [str(ds.get("SOPInstanceUID", "")) for ds in datasets]
    return prepare_volume(volume_from_datasets(datasets), cfg, uids)
