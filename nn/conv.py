"""The Mamba blocks' causal depthwise convolution, as a layer with transformers' parameter shapes."""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .layers import uniform_parameter
from .module import Module
from .ops import causal_conv1d


class CausalConv1d(Module):
    """One filter of ``kernel`` taps per channel over (B, T, C), causal. ``weight`` (C, 1, K) and ``bias`` (C,)
    as torch.nn.Conv1d(C, C, K, groups=C) stores them; initialised as it is (uniform +-1/sqrt(K))."""

    def __init__(self, channels: int, kernel: int, backend: Backend, bias: bool = True):
        super().__init__()
        self.channels, self.kernel = channels, kernel
        bound = 1.0 / math.sqrt(kernel)
        self.weight = uniform_parameter((channels, 1, kernel), bound, backend)
        self.bias = uniform_parameter((channels,), bound, backend) if bias else None

    def forward(self, x: Tensor, silu: bool = True, cache=None) -> Tensor:
        """(B, T, C) -> (B, T, C). With a layer ``cache`` (inference), the conv continues from the inputs
        it saw before (its ``conv`` state holds the last K-1) and keeps the new last K-1."""
        w = self.weight.reshape(self.channels, self.kernel)                # (C, K)
        keep = self.kernel - 1
        if cache is None or keep == 0:
            return causal_conv1d(x, w, self.bias, silu)
        full = mg.cat([cache.get("conv"), x], axis=1)                      # (B, K-1+T, C)
        cache.set("conv", full[:, -keep:])
        return causal_conv1d(full, w, self.bias, silu)[:, keep:]

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel={self.kernel}, bias={self.bias is not None}"
