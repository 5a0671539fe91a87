"""Multi-crop augmentation for MR slices, batched on torch tensors (CPU or GPU).

DINO's natural-image recipe (colour jitter, solarisation, arbitrary flips)
produces images no scanner makes. Here every augmentation mimics a real source
of variation between MR acquisitions:

* random resized crop + small in-plane rotation (field of view, positioning);
* left-right flip only for axial slices (the body is roughly mirror-symmetric
  left-right; flipping a sagittal slice would put the canal in front of the
  vertebral bodies, and nothing is ever flipped head-feet);
* smooth multiplicative bias field (coil sensitivity / B1 inhomogeneity);
* global gain and gamma (arbitrary MR intensity scale, window and contrast
  weighting differences between protocols);
* Gaussian blur (lower in-plane resolution, partial volume);
* Rician noise: magnitude of complex Gaussian noise, sqrt((s + n1)^2 + n2^2),
  so the background is not zero-mean noise but a Rayleigh floor.

Inputs are normalised 3-channel replicated grey slices: intensity operations
undo the normalisation (``mean``/``std``), work on the grey magnitude >= 0 and
normalise again. Every random draw comes from the ``torch.Generator`` passed
in, so a batch's crops are a function of (seed, step) and resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    global_size: int = 224
    local_size: int = 96
    n_local: int = 8
    global_scale: tuple[float, float] = (0.32, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.32)
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    rotation_deg: float = 10.0
    flip_p: float = 0.5  # applied to axial slices only
    bias_p: float = 0.5
    bias_strength: float = 0.3  # std of the log-field before scaling
    bias_grid: int = 4  # control points per side: low spatial frequency
    gain_range: tuple[float, float] = (0.8, 1.25)
    gamma_p: float = 0.8
    log_gamma: float = 0.3  # gamma in [e^-0.3, e^0.3] = [0.74, 1.35]
    blur_p: tuple[float, float, float] = (0.8, 0.1, 0.5)  # global 1, global 2, locals (DINO's asymmetry)
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # pixels at crop resolution
    noise_p: float = 0.5
    noise_sigma: tuple[float, float] = (0.0, 0.06)  # relative to the slice's 99th percentile
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _bernoulli(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


class MultiCropAugmentation:
    """``aug(x, generator, axial=None)`` -> dict(global_crops, local_crops).

    ``x``: (B, 3, H, W) or (3, H, W) float, normalised. Output crops are
    crop-major, as DINOv2 collates them: ``global_crops`` (2*B, 3, G, G) is
    [crop 1 of every image, crop 2 of every image]; ``local_crops``
    (n_local*B, 3, L, L). ``axial``: (B,) bool, which slices may be flipped.
    """

    def __init__(self, config: AugmentConfig | None = None):
        self.cfg = config or AugmentConfig()

    # -- intensity domain ------------------------------------------------
    def _to_grey(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.cfg.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.cfg.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x * std + mean).mean(dim=1, keepdim=True).clamp_min(0.0)

    def _from_grey(self, g: torch.Tensor, channels: int) -> torch.Tensor:
        mean = torch.tensor(self.cfg.mean, device=g.device, dtype=g.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.cfg.std, device=g.device, dtype=g.dtype).view(1, -1, 1, 1)
        return (g.expand(-1, channels, -1, -1) - mean[:, :channels]) / std[:, :channels]

    # -- geometry ----------------------------------------------------------
    def _crop(self, g: torch.Tensor, size: int, scale: tuple[float, float], axial: torch.Tensor, gen) -> torch.Tensor:
        """Random resized crop + rotation + optional LR flip as one affine ``grid_sample``."""
        b, dev, c = g.shape[0], g.device, self.cfg
        area = _uniform(b, *scale, gen, dev)
        log_r = _uniform(b, math.log(c.aspect[0]), math.log(c.aspect[1]), gen, dev)
        ratio = torch.exp(log_r)
        # half-extent of the crop in normalised coordinates ([-1, 1] spans the slice)
        sx = torch.sqrt(area * ratio).clamp(max=1.0)
        sy = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (1 - sx) * (2 * torch.rand(b, generator=gen, device=dev) - 1)
        cy = (1 - sy) * (2 * torch.rand(b, generator=gen, device=dev) - 1)
        angle = _uniform(b, -c.rotation_deg, c.rotation_deg, gen, dev) * math.pi / 180
        flip = _bernoulli(b, c.flip_p, gen, dev) & axial
        fx = torch.where(flip, -1.0, 1.0).to(g.dtype)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([sx * cos * fx, -sy * sin, cx], dim=-1),
                torch.stack([sx * sin * fx, sy * cos, cy], dim=-1),
            ],
            dim=1,
        ).to(g.dtype)
        grid = F.affine_grid(theta, (b, 1, size, size), align_corners=False)
        return F.grid_sample(g, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # -- MR intensity ------------------------------------------------------
    def _intensity(self, g: torch.Tensor, blur_p: float, gen) -> torch.Tensor:
        b, _, h, w = g.shape
        dev, c = g.device, self.cfg
        flat = g.flatten(1)  # kthvalue, not quantile: quantile refuses tensors over 2**24 elements
        ref = flat.kthvalue(max(1, int(0.99 * flat.shape[1])), dim=1).values.clamp_min(1e-3).view(b, 1, 1, 1)

        # bias field: smooth log-field from a coarse random grid, bicubic upsampled
        on = _bernoulli(b, c.bias_p, gen, dev).view(b, 1, 1, 1)
        coarse = torch.randn(b, 1, c.bias_grid, c.bias_grid, generator=gen, device=dev, dtype=g.dtype)
        strength = _uniform(b, 0.0, c.bias_strength, gen, dev).view(b, 1, 1, 1).to(g.dtype)
        field = torch.exp(strength * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True))
        g = torch.where(on, g * field, g)

        # gain (arbitrary scale) and gamma (contrast), gamma relative to the slice's reference level
        gain = _uniform(b, *c.gain_range, gen, dev).view(b, 1, 1, 1).to(g.dtype)
        on = _bernoulli(b, c.gamma_p, gen, dev).view(b, 1, 1, 1)
        gamma = torch.exp(_uniform(b, -c.log_gamma, c.log_gamma, gen, dev)).view(b, 1, 1, 1).to(g.dtype)
        g = torch.where(on, ref * (g / ref).clamp_min(0) ** gamma, g) * gain
        ref = ref * gain

        # Gaussian blur with a per-image sigma: depthwise conv, one kernel per image
        on = _bernoulli(b, blur_p, gen, dev)
        if bool(on.any()):
            sigma = _uniform(b, *c.blur_sigma, gen, dev)
            radius = max(1, int(math.ceil(3 * c.blur_sigma[1])))
            xs = torch.arange(-radius, radius + 1, device=dev, dtype=g.dtype)
            k = torch.exp(-0.5 * (xs.view(1, -1) / sigma.view(-1, 1).to(g.dtype)) ** 2)
            k = k / k.sum(dim=1, keepdim=True)
            k = torch.where(on.view(-1, 1), k, (xs == 0).to(g.dtype).expand_as(k))  # identity kernel if off
            y = g.view(1, b, h, w)
            y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(b, 1, 1, -1), groups=b)
            y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(b, 1, -1, 1), groups=b)
            g = y.view(b, 1, h, w)

        # Rician noise on the magnitude image
        on = _bernoulli(b, c.noise_p, gen, dev).view(b, 1, 1, 1)
        sigma = (_uniform(b, *c.noise_sigma, gen, dev).view(b, 1, 1, 1) * ref).to(g.dtype)
        n1 = torch.randn(g.shape, generator=gen, device=dev, dtype=g.dtype)
        n2 = torch.randn(g.shape, generator=gen, device=dev, dtype=g.dtype)
        noisy = torch.sqrt((g + sigma * n1) ** 2 + (sigma * n2) ** 2)
        return torch.where(on, noisy, g)

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, axial: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        single = x.dim() == 3
        if single:
            x = x.unsqueeze(0)
        b, ch = x.shape[0], x.shape[1]
        x = x.float()
        axial = torch.zeros(b, dtype=torch.bool, device=x.device) if axial is None else axial.to(x.device).bool()
        grey = self._to_grey(x)
        c = self.cfg
        globals_ = [
            self._from_grey(self._intensity(self._crop(grey, c.global_size, c.global_scale, axial, generator), p, generator), ch)
            for p in c.blur_p[:2]
        ]
        locals_ = [
            self._from_grey(self._intensity(self._crop(grey, c.local_size, c.local_scale, axial, generator), c.blur_p[2], generator), ch)
            for _ in range(c.n_local)
        ]
        out = {"global_crops": torch.cat(globals_)}
        out["local_crops"] = torch.cat(locals_) if locals_ else x.new_zeros(0, ch, c.local_size, c.local_size)
        return out
