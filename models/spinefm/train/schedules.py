"""Step-indexed schedules of every training loop in spinefm: lr, weight decay, teacher momentum and temperature.

Pure functions of the step so a resumed run gets exactly the values it would
have had without the interruption (nothing stateful to checkpoint). The
stages (align, synth, the locator) take ``cosine_lr``, SSL pretraining
``cosine``/``linear_warmup``, the report agent ``warmup_cosine_factor``; the
three warmup conventions differ in their first steps, and each loop keeps its own.
"""

from __future__ import annotations

import math


def cosine(step: int, total: int, start: float, end: float, warmup: int = 0, warmup_start: float = 0.0) -> float:
    """Linear warmup from ``warmup_start`` to ``start`` over ``warmup`` steps, then cosine to ``end`` at ``total``."""
    if warmup > 0 and step < warmup:
        return warmup_start + (start - warmup_start) * step / warmup
    span = max(1, total - warmup)
    t = min(1.0, max(0.0, (step - warmup) / span))
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t))


def cosine_lr(step: int, total: int, warmup: int, base: float, final: float = 1e-6) -> float:
    """The stages' lr: linear warmup to ``base`` reached at step ``warmup - 1``, then cosine to ``final`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))


def stage_warmup(total: int) -> int:
    """Warmup steps of a stage's ``cosine_lr``: the first twentieth of the run, at least one step."""
    return max(1, total // 20)


def warmup_cosine_factor(step: int, total: int, warmup: int) -> float:
    """The report agent's lr multiplier (``LambdaLR``): linear warmup times a cosine decay to zero at ``total``."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))


def linear_warmup(step: int, warmup: int, start: float, end: float) -> float:
    """Linear ramp from ``start`` to ``end`` over ``warmup`` steps, then constant (teacher temperature)."""
    if warmup <= 0 or step >= warmup:
        return end
    return start + (end - start) * step / warmup


def scaled_lr(base_lr: float, total_batch: int, rule: str = "sqrt_wrt_1024") -> float:
    """DINOv2's learning-rate scaling with the global batch size."""
    if rule == "sqrt_wrt_1024":
        return base_lr * math.sqrt(total_batch / 1024)
    if rule == "linear_wrt_256":
        return base_lr * total_batch / 256
    if rule == "none":
        return base_lr
    raise ValueError(f"unknown lr scaling rule {rule!r}")


def capped_momentum(momentum: float, total_steps: int) -> float:
    """Teacher EMA momentum for a run of ``total_steps``.

    DINO's 0.992 assumes ~1e5 steps; in a short run the teacher would hardly
    move. Cap it so the EMA horizon 1/(1-m) is at most a third of the run
    (0.9 for 30 steps, 0.99 for 300, unchanged from 375 steps on).
    """
    return min(momentum, 1.0 - 3.0 / max(total_steps, 4))
