"""One AdamW step's reference kernel (the update rule is written out in minigrad/optim/adamw.py).
Written against ``xp`` only, so it runs on every backend; the spec kernels/cpu/adamw.py is held to."""

from __future__ import annotations

import math
from typing import Any


def adamw_step(xp: Any, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, lr: float,
               beta1: float, beta2: float, eps: float, wd: float, step: int) -> None:
    """One AdamW step for one parameter, updating ``param``, ``exp_avg``, ``exp_avg_sq`` in place.
    Scalars stay Python floats so NumPy/CuPy compute in the arrays' dtype (float32 stays float32)."""
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / bias_correction1
    if wd != 0.0:
        param *= 1.0 - lr * wd
    tmp = grad - exp_avg  # the one scratch buffer, reused below
    tmp *= 1.0 - beta1
    exp_avg += tmp
    xp.multiply(grad, grad, out=tmp)
    tmp *= 1.0 - beta2
    exp_avg_sq *= beta2
    exp_avg_sq += tmp
    xp.sqrt(exp_avg_sq, out=tmp)
    tmp /= bias_correction2_sqrt
    tmp += eps
    xp.divide(exp_avg, tmp, out=tmp)
    tmp *= step_size
    param -= tmp


def adamw_step_multi(xp: Any, params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, lr: float,
                     beta1: float, beta2: float, eps: float, wd: float, step: int, grad_scale: float = 1.0,
                     copies: list | None = None) -> None:
    """adamw_step on each parameter of the lists, each gradient read as grad * grad_scale in the parameter's
    dtype; with ``copies``, each new parameter value is also written, rounded, into its copy."""
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        g = g.astype(p.dtype, copy=False)
        if grad_scale != 1.0:
            g = g * grad_scale
        adamw_step(xp, p, g, m, v, lr, beta1, beta2, eps, wd, step)
        if copies is not None:
            copies[i][...] = p.astype(copies[i].dtype)
