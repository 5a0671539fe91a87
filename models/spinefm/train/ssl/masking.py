"""Block-wise random masking for iBOT (BEiT's generator, as used by DINOv2).

Masking contiguous rectangles rather than scattered patches makes the
prediction task non-trivial (a lone masked patch is easy to interpolate from
its neighbours). A fraction ``probability`` of the images in a batch is masked;
their mask ratios are spread evenly over ``ratio_range`` so every batch covers
the range. Here the block sampler is topped up with single patches so each
image gets exactly its target count (the reference can fall short).
"""

from __future__ import annotations

import math
import random

import torch


class MaskingGenerator:
    def __init__(
        self,
        grid: tuple[int, int],
        min_num_patches: int = 4,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ):
        self.height, self.width = grid
        self.num_patches = self.height * self.width
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches or self.num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))

    def _place_block(self, mask: torch.Tensor, max_patches: int, rng: random.Random) -> int:
        """Try to mask one rectangle of at most ``max_patches`` new patches; returns how many were added."""
        for _ in range(10):
            lo = min(self.min_num_patches, max_patches)
            target = rng.uniform(lo, max_patches)
            aspect = math.exp(rng.uniform(*self.log_aspect))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if 0 < h <= self.height and 0 < w <= self.width:
                top = rng.randint(0, self.height - h)
                left = rng.randint(0, self.width - w)
                block = mask[top : top + h, left : left + w]
                added = h * w - int(block.sum())
                if 0 < added <= max_patches:
                    block.fill_(True)
                    return added
        return 0

    def __call__(self, num_masking_patches: int, rng: random.Random) -> torch.Tensor:
        """(H, W) bool mask with exactly ``num_masking_patches`` True."""
        n = max(0, min(num_masking_patches, self.num_patches))
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)
        count = 0
        while count < n:
            added = self._place_block(mask, min(n - count, self.max_num_patches), rng)
            if added == 0:
                break
            count += added
        if count < n:  # top up with single patches so the ratio is exact
            free = (~mask).flatten().nonzero().flatten().tolist()
            for idx in rng.sample(free, n - count):
                mask.view(-1)[idx] = True
        return mask


def sample_masks(
    batch_size: int,
    grid: tuple[int, int],
    ratio_range: tuple[float, float] = (0.1, 0.5),
    probability: float = 0.5,
    rng: random.Random | None = None,
    generator: MaskingGenerator | None = None,
) -> torch.Tensor:
    """(B, N) bool masks for a batch of global crops (DINOv2's collate logic)."""
    rng = rng or random.Random()
    gen = generator or MaskingGenerator(grid, max_num_patches=max(1, grid[0] * grid[1] // 2))
    n_patches = grid[0] * grid[1]
    n_masked_images = int(batch_size * probability)
    lo, hi = ratio_range
    edges = [lo + (hi - lo) * i / max(n_masked_images, 1) for i in range(n_masked_images + 1)]
    masks = []
    for i in range(n_masked_images):
        ratio = rng.uniform(edges[i], edges[i + 1])
        masks.append(gen(int(n_patches * ratio), rng).flatten())
    for _ in range(batch_size - n_masked_images):
        masks.append(torch.zeros(n_patches, dtype=torch.bool))
    order = list(range(batch_size))
    rng.shuffle(order)
    return torch.stack([masks[i] for i in order]) if masks else torch.zeros(0, n_patches, dtype=torch.bool)
