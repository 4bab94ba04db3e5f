"""AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient.

Per element, with t the step count (from 1) and the same operation order as torch.optim.AdamW:

    p  <- p * (1 - lr * wd)                                   decoupled weight decay
    m  <- m + (1 - beta1) * (g - m)                           first moment (a lerp towards g)
    v  <- v * beta2 + (1 - beta2) * g * g                     second moment
    p  <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The update is the kernel ``"adamw_step"``: its reference, written against ``xp`` only (it runs on
every backend), is kernels/reference/adamw.py, the spec the Numba kernel in kernels/cpu/adamw.py
is held to. A backend with its own ``"adamw_step_multi"`` (CUDA: one launch for all parameters instead
of one per parameter) gets each group's parameters in one call, the gradients' scale and the
low-precision copies of mixed precision included (see Optimizer.grad_scale and .copies).
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .optimizer import Optimizer, ParamsLike


class AdamW(Optimizer):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``, as in PyTorch.

    State per parameter: ``step`` (int), ``exp_avg``, ``exp_avg_sq`` (arrays like the parameter)."""

    def __init__(self, params: ParamsLike, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_adam_options(type(self).__name__, group["betas"], group["eps"], group["weight_decay"])

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        adamw_update(p, grad, state, group["lr"], beta1, beta2, group["eps"], group["weight_decay"])

    def _step_group(self, group: dict[str, Any]) -> None:
        todo = [p for p in group["params"] if p.grad is not None]
        if not todo or "adamw_step_multi" not in todo[0].backend.fast_kernels:
            return super()._step_group(group)
        buckets: dict[int, list[Tensor]] = {}  # by step count: one call per count (all equal, as a rule)
        for p in todo:
            if p.grad.shape != p.shape:
                raise ValueError(f"AdamW: a gradient of shape {p.grad.shape} for a parameter of shape {p.shape}")
            state = self.state.setdefault(self._index[id(p)], {})
            if "exp_avg" not in state:
                state.update(step=0, exp_avg=p.backend.xp.zeros_like(p.data),
                             exp_avg_sq=p.backend.xp.zeros_like(p.data))
            state["step"] += 1
            buckets.setdefault(state["step"], []).append(p)
        beta1, beta2 = group["betas"]
        for step, ps in buckets.items():
            states = [self.state[self._index[id(p)]] for p in ps]
            copies = [self.copies.get(self._index[id(p)]) for p in ps]
            ps[0].backend.kernel("adamw_step_multi")(
                [p.data for p in ps], [p.grad.data for p in ps], [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states], float(group["lr"]), float(beta1), float(beta2),
                float(group["eps"]), float(group["weight_decay"]), int(step), grad_scale=float(self.grad_scale),
                copies=[c.data for c in copies] if all(c is not None for c in copies) else None)
            for p, c in zip(ps, copies):
                if c is not None and any(x is None for x in copies):  # only some have copies: write them here
                    c.data[...] = p.data


def adamw_update(p: Tensor, grad: Any, state: dict[str, Any], lr: float, beta1: float, beta2: float,
                 eps: float, weight_decay: float) -> None:
    """One AdamW step on parameter ``p`` with its state dict (created on first use).
    Shared with optimizers that send some parameters to AdamW (MuonWithAdamW)."""
    xp = p.backend.xp
    if "exp_avg" not in state:
        state["step"] = 0
        state["exp_avg"] = xp.zeros_like(p.data)
        state["exp_avg_sq"] = xp.zeros_like(p.data)
    state["step"] += 1
    p.backend.kernel("adamw_step")(p.data, grad, state["exp_avg"], state["exp_avg_sq"],
                                   float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
                                   int(state["step"]))


def check_adam_options(owner: str, betas: Any, eps: float, weight_decay: float) -> None:
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{owner}: betas must be two numbers in [0, 1), got {betas}")
    if not eps >= 0.0:
        raise ValueError(f"{owner}: eps must be >= 0, got {eps}")
    if not weight_decay >= 0.0:
        raise ValueError(f"{owner}: weight_decay must be >= 0, got {weight_decay}")
