"""RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last axis. The reference kernels are
in kernels/reference/rms_norm.py, the Numba twins in kernels/cpu/rms_norm.py."""

from __future__ import annotations

from minigrad import Function, Tensor


class RMSNorm(Function):
    def forward(self, x, w, eps):
        y, self.rstd = self.backend.kernel("rms_norm_forward")(x, w, eps)
        self.x, self.w = x, w
        return y

    def backward(self, g):
        return self.backend.kernel("rms_norm_backward")(g, self.x, self.w, self.rstd)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"rms_norm: input's last dim {x.shape[-1]} != weight size {weight.shape[0]}")
    return RMSNorm.apply(x, weight, eps=eps)


def rms_norm_simple(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    return x * ((x * x).mean(axis=-1, keepdims=True) + eps).rsqrt() * weight
