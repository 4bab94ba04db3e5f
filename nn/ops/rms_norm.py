"""RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last axis."""

from __future__ import annotations

from minigrad import Function, Tensor
from minigrad.backend import register_reference


@register_reference("rms_norm_forward")
def rms_norm_forward(xp, x, w, eps):
    """x (..., D), w (D,) -> y (..., D), rstd (..., 1)."""
    rstd = 1.0 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return x * rstd * w, rstd.astype(x.dtype, copy=False)


@register_reference("rms_norm_backward")
def rms_norm_backward(xp, g, x, w, rstd):
    """Given dL/dy, return dL/dx (..., D) and dL/dw (D,)."""
    xhat = x * rstd
    gw = (g * xhat).reshape(-1, x.shape[-1]).sum(axis=0)
    gxhat = g * w
    # d xhat/dx projects out the component along xhat: rstd * (gxhat - xhat * mean(gxhat * xhat))
    gx = rstd * (gxhat - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    return gx, gw


class RMSNorm(Function):
    def forward(self, x, w, eps):
        y, self.rstd = self.backend.kernel("rms_norm_forward")(self.xp, x, w, eps)
        self.x, self.w = x, w
        return y

    def backward(self, g):
        return self.backend.kernel("rms_norm_backward")(self.xp, g, self.x, self.w, self.rstd)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"rms_norm: input's last dim {x.shape[-1]} != weight size {weight.shape[0]}")
    return RMSNorm.apply(x, weight, eps=eps)


def rms_norm_simple(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    return x * ((x * x).mean(axis=-1, keepdims=True) + eps).rsqrt() * weight
