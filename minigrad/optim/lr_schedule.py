"""Learning-rate schedules as plain functions of the step (no scheduler objects to checkpoint).

Every schedule starts with a linear warmup from ~0 to ``base_lr`` over ``warmup_steps`` steps
(step 0 gets ``base_lr / warmup_steps``, step ``warmup_steps - 1`` gets ``base_lr``), then:

* ``"cosine"``: half a cosine from ``base_lr`` down to ``min_lr`` at ``total_steps``;
* ``"wsd"`` (warmup-stable-decay): ``base_lr`` until the last ``decay_frac`` of the steps, then a
  straight line down to ``min_lr`` at ``total_steps``;
* ``"constant"``: ``base_lr``.

Steps at or past ``total_steps`` get ``min_lr`` (cosine, wsd).
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULES = ("cosine", "wsd", "constant")


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine",
          min_lr: float = 0.0, decay_frac: float = 0.2) -> float:
    """The learning rate for (0-based) ``step``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_at: schedule must be one of {SCHEDULES}, got {schedule!r}")
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError(f"lr_at: warmup_steps and total_steps must be >= 0, got {warmup_steps}, {total_steps}")
    if not 0.0 <= decay_frac <= 1.0:
        raise ValueError(f"lr_at: decay_frac must be in [0, 1], got {decay_frac}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if step >= total_steps:
        return min_lr
    if schedule == "cosine":
        span = total_steps - warmup_steps
        progress = (step - warmup_steps) / span  # in [0, 1)
        return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    # wsd: the decay phase is the last decay_frac of all steps (never starting inside the warmup)
    decay_start = max(warmup_steps, total_steps - int(round(decay_frac * total_steps)))
    if step < decay_start:
        return base_lr
    progress = (step - decay_start) / (total_steps - decay_start)  # in [0, 1)
    return base_lr + (min_lr - base_lr) * progress


def set_lr(optimizer: Any, step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine",
           min_lr_ratio: float = 0.0, decay_frac: float = 0.2) -> float:
    """Write ``lr_at(step, ...)`` into every param group, each scaled from its own ``"initial_lr"``
    (so Muon and AdamW groups with different base rates follow the same curve). Returns the first
    group's new rate (the one a training log shows: its base is the configured learning rate)."""
    for group in optimizer.param_groups:
        base = group["initial_lr"]
        group["lr"] = lr_at(step, base, warmup_steps, total_steps, schedule, base * min_lr_ratio, decay_frac)
    return optimizer.param_groups[0]["lr"]
