"""Box supervision of the encoders' patch tokens during ``align`` (``--box-weight``).

The phantom (and any annotated) training studies carry finding boxes on key
slices. CLIP and the report-label loss only tell an encoder *that* a study has
a herniation somewhere; at 112 px a herniation covers a third of one 16-px
patch, and the nano encoders underfit such findings (their probes reach only
~0.6 AUROC on their own training studies, docs/models.md). Here a temporary
linear probe per stream classifies every patch token per condition: cells that
overlap a finding's box are positive, every patch of a slice where the finding
is known to be absent (a study without it, or a non-key slice of a study with
it) is negative, the rest is ignored. Positives and negatives are averaged
separately (a box is a few cells of 49), so neither swamps the other. The probe
is thrown away after the stage; the segmentation and diagnosis agents are
fitted later on the frozen tokens as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import slice_targets

IGNORE = -1.0


def cell_overlap_targets(labels: torch.Tensor, boxes: torch.Tensor, box_mask: torch.Tensor, side: int) -> torch.Tensor:
    """Slice targets of ``features.slice_targets`` -> patch targets (n, side*side, C): 1, 0 or IGNORE.

    A cell is positive when it overlaps the normalised box ``[x0, y0, x1, y1]``
    of that slice and condition (so a box smaller than a cell still marks the
    cells it touches); slices labelled 0 are all-negative; unknown slices and
    positive slices without a box are ignored. Row-major cells, as the ViT.
    """
    n, c = labels.shape
    edges = torch.arange(side + 1, dtype=torch.float32) / side
    lo, hi = edges[:-1], edges[1:]
    # (n, C, side) overlap along x and along y; a cell is inside when both overlap.
    ox = (lo < boxes[..., 2:3]) & (hi > boxes[..., 0:1])
    oy = (lo < boxes[..., 3:4]) & (hi > boxes[..., 1:2])
    inside = (oy.unsqueeze(-1) & ox.unsqueeze(-2)).reshape(n, c, side * side)
    out = torch.full((n, c, side * side), IGNORE)
    out[labels == 0] = 0.0
    out[box_mask] = inside[box_mask].float()
    return out.transpose(1, 2).contiguous()


def patch_side(model) -> int:
    """Cells per side of the encoders' patch grid (crop / patch size)."""
    return model.cfg.preprocess.crop // model.t1.patch_size


def series_patch_targets(case, series, conditions: tuple[str, ...], side: int) -> torch.Tensor:
    """All slices of one series: (n, side*side, C) patch targets."""
    return cell_overlap_targets(*slice_targets(case, series, conditions), side)


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE over positive cells plus mean BCE over negative cells (IGNORE excluded)."""
    logits, targets = logits.float(), targets.float()
    loss = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none")
    total = logits.sum() * 0.0
    for keep in (targets == 1, targets == 0):
        if keep.any():
            total = total + loss[keep].mean()
    return total


class PatchProbes(nn.Module):
    """One linear patch classifier per stream (T1 and T2 tokens live in different spaces)."""

    def __init__(self, dim: int, n_conditions: int, streams: tuple[str, ...] = ("t1", "t2")):
        super().__init__()
        self.probes = nn.ModuleDict({s: nn.Linear(dim, n_conditions) for s in streams})

    def loss(self, stream: str, patches: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """patches (S, N, D), targets (S, N, C) -> balanced BCE."""
        return balanced_bce(self.probes[stream](patches), targets)


# ------------------------------------------------------------ diagnostic: what did the patch probes learn?

@torch.no_grad()
def probe_report(model, probes: PatchProbes, cases) -> dict:
    """Mean over conditions of two AUROCs of the trained patch probes on ``cases``.

    ``patch``: every labelled patch (is this cell inside a finding's box); high
    values can come from anatomy alone (findings sit on discs and vertebrae).
    ``study``: the study's max patch score (mean of T1 and T2) against its
    label, i.e. whether the probe detects *that* a finding is there.
    """
    from .metrics import auroc, mean_defined

    conditions = model.cfg.conditions
    side = patch_side(model)
    cell_scores, cell_targets, study_scores, study_labels = [], [], [], []
    for case in cases:
        maxima = []
        for stream in ("t1", "t2"):
            series = case.first(stream)
            if series is None:
                continue
            tokens = model.encode_slices(stream, series.inputs(model.cfg.preprocess), patches=True)["patches"]
            logits = probes.probes[stream](tokens)                       # (n, P, C)
            cell_scores.append(logits.reshape(-1, len(conditions)))
            cell_targets.append(series_patch_targets(case, series, conditions, side).reshape(-1, len(conditions)))
            maxima.append(logits.amax(dim=(0, 1)))
        if maxima:
            study_scores.append(torch.stack(maxima).mean(0))
            study_labels.append(case.label_vector(conditions))

    def mean_auroc(scores, targets):
        return mean_defined(auroc(targets[targets[:, j] >= 0, j].numpy(), scores[targets[:, j] >= 0, j].numpy())
                            for j in range(targets.shape[1]))

    return {"patch_auroc": mean_auroc(torch.cat(cell_scores), torch.cat(cell_targets)),
            "study_auroc_from_max_patch": mean_auroc(torch.stack(study_scores), torch.stack(study_labels)),
            "n_cases": len(study_scores)}


def load_probes(align_dir: str, model) -> PatchProbes:
    """The patch probes an ``align --box-weight`` run left in its checkpoint."""
    state = torch.load(f"{align_dir}/checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    mine = {k[len("patch_probes."):]: v for k, v in state.items() if k.startswith("patch_probes.")}
    if not mine:
        raise SystemExit(f"{align_dir}/checkpoint.pt has no patch probes: was it trained with --box-weight?")
    probes = PatchProbes(model.t1.embed_dim, len(model.cfg.conditions))
    probes.load_state_dict(mine)
    return probes


def main(argv=None) -> int:
    """``python -m spinefm.train.box_supervision --align-dir W/align --n-cases 600 --splits val``"""
    import argparse
    import json

    from ..bundle import load_model_dir
    from .common import DEFAULT_CACHE, load_cases, set_threads

    p = argparse.ArgumentParser(description="AUROCs of an align run's patch probes (see probe_report)")
    p.add_argument("--align-dir", required=True)
    p.add_argument("--data", default="phantom", choices=["phantom", "random"])
    p.add_argument("--phantom-seed", type=int, default=0)
    p.add_argument("--n-cases", type=int, default=600)
    p.add_argument("--splits", default="val")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE)
    p.add_argument("--phantom-config", default='{"include_axial": false}')
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.no_progress = True
    set_threads(args.threads)
    model, _ = load_model_dir(args.align_dir)
    model.eval()
    report = probe_report(model, load_probes(args.align_dir, model), load_cases(args, model.cfg.preprocess))
    print(json.dumps({"splits": args.splits, **report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
