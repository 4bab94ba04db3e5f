"""The causal depthwise convolution of the Mamba blocks (channels-last), with an optional SiLU.
Kernels: ``causal_conv1d_forward`` / ``causal_conv1d_backward`` (kernels/reference/causal_conv1d.py)."""

from __future__ import annotations

import minigrad as mg
from minigrad import Function, Tensor


class CausalConv1d(Function):
    def forward(self, x, w, bias=None, silu=False):
        self.x, self.w, self.bias, self.silu = x, w, bias, silu
        return self.backend.kernel("causal_conv1d_forward")(x, w, bias, silu)

    def backward(self, g):
        dx, dw, db = self.backend.kernel("causal_conv1d_backward")(g, self.x, self.w, self.bias, self.silu)
        return (dx, dw) if self.bias is None else (dx, dw, db)


def _check(x: Tensor, w: Tensor, bias: Tensor | None) -> None:
    if x.ndim != 3 or w.ndim != 2 or x.shape[2] != w.shape[0] or (bias is not None and bias.shape != w.shape[:1]):
        raise ValueError(f"causal_conv1d: expected x (B, T, C), w (C, K), bias (C,); got x {x.shape}, "
                         f"w {w.shape}, bias {None if bias is None else bias.shape}")


def causal_conv1d(x: Tensor, w: Tensor, bias: Tensor | None = None, silu: bool = False) -> Tensor:
    """y[:, t] = bias + sum_k w[:, k] * x[:, t - K + 1 + k] (zeros before the start), then SiLU if ``silu``."""
    _check(x, w, bias)
    inputs = (x, w) if bias is None else (x, w, bias)
    return CausalConv1d.apply(*inputs, silu=silu)


def causal_conv1d_simple(x: Tensor, w: Tensor, bias: Tensor | None = None, silu: bool = False) -> Tensor:
    """The same from primitive ops: K shifted copies of x, weighted and summed."""
    _check(x, w, bias)
    b, t, c = x.shape
    k = w.shape[1]
    xpad = mg.cat([mg.zeros(b, k - 1, c, dtype=x.dtype, backend=x.backend), x], axis=1)   # (B, T+K-1, C)
    y = sum(xpad[:, j:j + t] * w[:, j] for j in range(k))
    if bias is not None:
        y = y + bias
    return y.silu() if silu else y
