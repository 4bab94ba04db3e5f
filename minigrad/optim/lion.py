"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"): the update is the
*sign* of an interpolation between momentum and gradient, so every element moves by exactly lr.

    u <- sign(beta1 * m + (1 - beta1) * g)
    p <- p - lr * (u + wd * p)
    m <- beta2 * m + (1 - beta2) * g

Because |u| = 1 everywhere, Lion wants an lr 3-10x smaller than AdamW's and a wd that much larger.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer, ParamsLike


class Lion(Optimizer):
    """``Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)``. State: ``exp_avg`` (the momentum)."""

    def __init__(self, params: ParamsLike, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= b <= 1.0 for b in betas):
            raise ValueError(f"Lion: betas must be two numbers in [0, 1], got {betas}")
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"Lion: weight_decay must be >= 0, got {group['weight_decay']}")

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = p.backend.xp
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(p.data)
        m = state["exp_avg"]
        update = xp.sign(m * beta1 + grad * (1.0 - beta1))
        if wd != 0.0:
            update += p.data * wd
        update *= lr
        p.data -= update
        m *= beta2
        m += grad * (1.0 - beta2)
