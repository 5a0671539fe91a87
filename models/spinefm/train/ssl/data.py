"""Slice datasets for pretraining: in-memory tensors, a directory of tensor files, phantom studies.

Items are ``(slice, axial)``: a normalised (3, H, W) float tensor and whether
the slice is axial (the only plane where a left-right flip is anatomically
plausible; see ``augment``).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...preprocess import PreprocessConfig, normalize, prepare_volume

T1_GROUP = ("T1",)
T2_GROUP = ("T2", "STIR", "DIXON")  # the paper's T2 encoder also sees STIR and Dixon
SEQUENCE_GROUPS = {"t1": T1_GROUP, "t2": T2_GROUP}


def preprocess_series(pixels, size: int) -> torch.Tensor:
    """Raw series (n, H, W) -> (n, 3, size, size) normalised, exactly as at inference.

    Uses ``spinefm.preprocess`` (foreground percentile window, resize, centre
    crop, ImageNet normalisation) with ``resize = crop = size``.
    """
    cfg = PreprocessConfig(resize=size, crop=size)
    return normalize(prepare_volume(np.asarray(pixels, dtype=np.float32), cfg).pixels, cfg).contiguous()


def _as_slices(x, size: int | None) -> torch.Tensor:
    """Tensor-like (n, 3, H, W) | (n, 1, H, W) | (n, H, W) -> float (n, 3, H', W').

    Float input is taken as already normalised; integer input as raw magnitude (windowed here)."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if not t.is_floating_point():
        raw = t[:, 0] if t.dim() == 4 else t
        return preprocess_series(raw.numpy(), size or min(raw.shape[-2:]))
    t = t.float()
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    if size is not None and tuple(t.shape[-2:]) != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.contiguous()


class SliceTensorDataset(Dataset):
    """Wraps an (N, 3, H, W) tensor (or any dataset of such slices) plus per-slice axial flags."""

    def __init__(self, slices, axial=None):
        self.slices = slices
        n = len(slices)
        self.axial = torch.zeros(n, dtype=torch.bool) if axial is None else torch.as_tensor(axial, dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int):
        item = self.slices[i]
        if isinstance(item, (tuple, list)):  # a user dataset that already returns (x, ...)
            item = item[0]
        return torch.as_tensor(item).float(), self.axial[i]


class SliceFileDataset(Dataset):
    """A directory (searched recursively) of ``.pt`` / ``.npy`` / ``.npz`` files of slices.

    Each file holds an (n, 3, H, W) or (n, H, W) array: a bare tensor/array, or a
    dict / npz with key ``slices`` (else the first array) and optional ``axial``
    (n,) bool. Float arrays are taken as normalised, integer ones as raw
    magnitudes and windowed here. ``.pt`` (saved by ``torch.save``) and ``.npy``
    files are memory-mapped, so shuffled access is cheap; ``.npz`` files must be
    decompressed whole and are kept in a small LRU cache (fine for small corpora).
    """

    SUFFIXES = (".pt", ".npy", ".npz")

    def __init__(self, root: Path, size: int | None = None, cache_files: int = 8):
        self.files = sorted(p for p in Path(root).rglob("*") if p.suffix in self.SUFFIXES)
        if not self.files:
            raise FileNotFoundError(f"no .pt/.npy/.npz slice files under {root}")
        self.size, self.cache_files = size, cache_files
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self.offsets = [0]
        for p in self.files:
            self.offsets.append(self.offsets[-1] + len(self._load(p)[0]))

    @staticmethod
    def _load(path: Path):
        if path.suffix == ".pt":
            obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            if isinstance(obj, dict):
                return obj["slices"], obj.get("axial")
            return obj, None
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r"), None
        with np.load(path) as z:
            key = "slices" if "slices" in z.files else z.files[0]
            return z[key], (z["axial"] if "axial" in z.files else None)

    def _file(self, f: int) -> tuple:
        if f in self._cache:
            self._cache.move_to_end(f)
        else:
            self._cache[f] = self._load(self.files[f])
            while len(self._cache) > self.cache_files:
                self._cache.popitem(last=False)
        return self._cache[f]

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, i: int):
        f = bisect.bisect_right(self.offsets, i) - 1
        slices, axial = self._file(f)
        j = i - self.offsets[f]
        x = _as_slices(np.array(slices[j : j + 1]) if isinstance(slices, np.ndarray) else slices[j : j + 1], self.size)[0]
        a = bool(axial[j]) if axial is not None else False
        return x, torch.tensor(a)


def phantom_dataset(n_studies: int, seed: int, group: str, size: int) -> SliceTensorDataset:
    """Slices of ``spine_phantom`` studies for one encoder: ``t1`` or ``t2`` (T2 + STIR + Dixon)."""
    import spine_phantom

    sequences = SEQUENCE_GROUPS[group]
    slices, axial = [], []
    for index in range(n_studies):
        study = spine_phantom.generate_study(seed, index)
        for series in study.series:
            if str(series.sequence).upper() not in sequences:
                continue
            x = preprocess_series(series.pixels, size)
            plane = str(getattr(series, "plane", "") or getattr(series, "orientation", "")).lower()
            slices.append(x)
            axial += [plane.startswith("ax")] * len(x)
    if not slices:
        raise ValueError(f"no {group} slices in {n_studies} phantom studies (seed {seed})")
    return SliceTensorDataset(torch.cat(slices), torch.tensor(axial))


def dataset_slices(path, group: str, size: int, splits=("train",)) -> SliceTensorDataset:
    """Slices of a ``spinefm dataset build`` directory for one encoder (``t1``, or ``t2``: T2 + STIR + Dixon),
    from its cached crops (already windowed as at inference), resized to ``size``."""
    import torch.nn.functional as F

    from ...dataset import Dataset as SpineDataset
    from ...preprocess import normalize

    ds = SpineDataset(path)
    sequences = SEQUENCE_GROUPS[group]
    slices = []
    for case in ds.cases(set(splits)):
        for series in case.series:
            if str(series.sequence).upper() not in sequences:
                continue
            x = torch.as_tensor(series.pixels).float()[:, None] / 255.0
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            slices.append(normalize(x[:, 0].clamp(0, 1), ds.preprocess).contiguous())
    if not slices:
        raise ValueError(f"no {group} slices in the {'/'.join(splits)} split(s) of {path}")
    return SliceTensorDataset(torch.cat(slices))
