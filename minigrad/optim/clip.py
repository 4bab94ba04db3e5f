"""Gradient clipping by global norm, like torch.nn.utils.clip_grad_norm_."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..tensor import Tensor


def grad_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0) -> float:
    """The ``norm_type``-norm (2 or ``inf``) of the gradients of ``tensors`` taken together, as a Python
    float; tensors without a ``.grad`` are skipped (0.0 if none has one). Per-tensor reductions stay on
    the device and only the total crosses to the host; squares are summed in the gradient's dtype (float16
    and bfloat16 in float32) and totalled in float64."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if norm_type not in (2.0, math.inf):
        raise ValueError(f"grad_norm: norm_type must be 2.0 or inf, got {norm_type}")
    total = None
    for t in tensors:
        if t.grad is None:
            continue
        g, xp = t.grad.data, t.backend.xp
        if g.dtype.itemsize < 4:  # float16, bfloat16: squares summed in float32
            g = g.astype("float32")
        if norm_type == math.inf:
            part = xp.max(xp.abs(g)).astype("float64") if g.size else 0.0
            total = part if total is None else xp.maximum(total, part)
        else:
            part = xp.sum(xp.square(g)).astype("float64")
            total = part if total is None else total + part
    if total is None:
        return 0.0
    return float(total) if norm_type == math.inf else math.sqrt(float(total))


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``; return ``total_norm``,
    the ``norm_type``-norm of all gradients taken together (2 or ``inf``), as a Python float.

    A non-finite total norm (an inf or nan gradient) is returned as it is and the gradients are left
    alone: the caller checks ``math.isfinite`` and skips the step."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p for p in params if p.grad is not None]
    if float(norm_type) not in (2.0, math.inf):
        raise ValueError(f"clip_grad_norm_: norm_type must be 2.0 or inf, got {norm_type}")
    total_norm = grad_norm(grads, norm_type)
    if not grads or not math.isfinite(total_norm):
        return total_norm
    coef = max_norm / (total_norm + 1e-6)
    if coef < 1.0:
        for p in grads:
            if p._grad_owned:
                p.grad.data *= coef
            else:  # this gradient array may be shared with another tensor's: scale a copy
                p.grad.data = p.grad.data * coef
    return total_norm
