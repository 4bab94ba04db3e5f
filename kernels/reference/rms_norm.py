"""RMSNorm's reference kernels: y = x / sqrt(mean(x^2) + eps) * w over the last axis.
The spec that kernels/cpu/rms_norm.py is held to; used by ``nn.ops.rms_norm``."""

from __future__ import annotations


def rms_norm_forward(xp, x, w, eps):
    """x (..., D), w (D,) -> y (..., D), rstd (..., 1)."""
    rstd = 1.0 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return x * rstd * w, rstd.astype(x.dtype, copy=False)


def rms_norm_backward(xp, g, x, w, rstd):
    """Given dL/dy, return dL/dx (..., D) and dL/dw (D,)."""
    xhat = x * rstd
    gw = (g * xhat).reshape(-1, x.shape[-1]).sum(axis=0)
    gxhat = g * w
    # d xhat/dx projects out the component along xhat: rstd * (gxhat - xhat * mean(gxhat * xhat))
    gx = rstd * (gxhat - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    return gx, gw
