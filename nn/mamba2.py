"""Mamba2's mixer (Dao & Gu, 2024), with transformers' ``Mamba2Mixer`` parameter names, shapes and math.

    z, xBC, dt = in_proj(u)                 (B, T, D), (B, T, D + 2 G N), (B, T, H); D = H * P
    x, B, C    = silu(conv1d(xBC))          x (B, T, H, P); B, C (B, T, G, N): G groups of heads share them
    dt         = softplus(dt + dt_bias)     one step size per head
    y          = ssd(x * dt, a = dt * A, B, C) + D * x,   A = -exp(A_log), one scalar per head
    out        = out_proj(rms_norm_per_group(y * silu(z)) * norm.weight)

The SSD runs in chunks of ``mamba2_chunk_size`` (any length: the last chunk is padded). With a layer cache
and one new token it is the recurrence itself, one step (``ssd_simple``); otherwise the chunked kernel,
starting from the cached state if there is one.
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .cache import MambaCache
from .conv import CausalConv1d
from .layers import Linear
from .mamba import inverse_softplus_dt, log_arange, uniform
from .mamba_config import MambaDims
from .module import Module, Parameter
from .ops import rms_norm, softplus, ssd, ssd_simple, swiglu


class GatedRMSNorm(Module):
    """transformers' ``MambaRMSNormGated`` (norm after the gate): y * silu(z), RMS-normalised within each
    group of ``group_size`` channels, times ``weight``."""

    def __init__(self, dim: int, group_size: int, eps: float, backend: Backend):
        super().__init__()
        self.dim, self.group_size, self.eps = dim, group_size, eps
        self.weight = Parameter(mg.ones(dim, backend=backend))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        gated = swiglu(z, y)                                              # y * silu(z)
        if self.group_size == self.dim:
            return rms_norm(gated, self.weight, self.eps)
        lead, gs = gated.shape[:-1], self.group_size
        ones = mg.ones(gs, dtype=gated.dtype, backend=gated.backend)
        normed = rms_norm(gated.reshape(*lead, self.dim // gs, gs), ones, self.eps)   # (..., G, group)
        return normed.reshape(*lead, self.dim) * self.weight

    def extra_repr(self) -> str:
        return f"{self.dim}, group_size={self.group_size}, eps={self.eps}"


def scan(x: Tensor, a: Tensor, B: Tensor, C: Tensor, chunk: int, cache: MambaCache | None, h0=None) -> Tensor:
    """The SSD of a Mamba2/3 layer: the chunked kernel, or with a cache, from its state (one new token: the
    recurrence itself); the cache then keeps the last state. ``h0`` overrides the cached start state."""
    if cache is None:
        return ssd(x, a, B, C, chunk)[0]
    h0 = cache.get("ssm") if h0 is None else h0
    y, last = ssd_simple(x, a, B, C, h0) if x.shape[1] == 1 else ssd(x, a, B, C, chunk, h0)
    cache.set("ssm", last)
    return y


def reset_heads(mixer, gen: mg.Generator) -> set[int]:
    """transformers' Mamba2Mixer init for the per-head SSM parameters and the conv; returns their ids."""
    be, h = mixer.D.backend, mixer.dims.num_heads
    mixer.A_log.data = log_arange(h, be)                                  # A = -1, ..., -H
    mixer.D.data = be.xp.ones(h, dtype=mg.float32)
    mixer.dt_bias.data = inverse_softplus_dt(gen, h, be)
    own = [mixer.A_log, mixer.D, mixer.dt_bias]
    if mixer.conv1d is not None:
        c, k = mixer.conv1d.channels, mixer.conv1d.kernel
        mixer.conv1d.weight.data = uniform(gen, (c, 1, k), 1 / math.sqrt(k), be)
        mixer.conv1d.bias.data = be.xp.zeros(c, dtype=mg.float32)
        own += [mixer.conv1d.weight, mixer.conv1d.bias]
    return {id(p) for p in own}


class Mamba2Mixer(Module):
    def __init__(self, dims: MambaDims, layer_idx: int, backend: Backend, eps: float = 1e-5):
        super().__init__()
        self.dims, self.layer_idx = dims, layer_idx
        d, n, h, g = dims.d_inner, dims.d_state, dims.num_heads, dims.n_groups
        self.conv_dim = d + 2 * g * n
        self.in_proj = Linear(dims.hidden, d + self.conv_dim + h, backend=backend)
        self.conv1d = CausalConv1d(self.conv_dim, dims.d_conv, backend)
        self.dt_bias = Parameter(mg.zeros(h, backend=backend))
        self.A_log = Parameter(mg.zeros(h, backend=backend))
        self.D = Parameter(mg.ones(h, backend=backend))
        self.norm = GatedRMSNorm(d, d // g, eps, backend)
        self.out_proj = Linear(d, dims.hidden, backend=backend)

    def reset_ssm_parameters(self, gen: mg.Generator) -> set[int]:
        return reset_heads(self, gen)

    def new_cache(self, batch: int, dtype) -> MambaCache:
        d = self.dims
        return MambaCache(self.D.backend, dtype, conv=(batch, d.d_conv - 1, self.conv_dim),
                          ssm=(batch, d.num_heads, d.head_dim, d.d_state))

    def forward(self, u: Tensor, cache: MambaCache | None = None) -> Tensor:
        b, t, _ = u.shape
        d, n, h, p, g = self.dims.d_inner, self.dims.d_state, self.dims.num_heads, self.dims.head_dim, \
            self.dims.n_groups
        z, xBC, dt = mg.split(self.in_proj(u), [d, self.conv_dim, h], axis=-1)
        xBC = self.conv1d(xBC, silu=True, cache=cache)
        x, B, C = mg.split(xBC, [d, g * n, g * n], axis=-1)
        dt = softplus(dt + self.dt_bias)                                  # (B, T, H)
        A = -self.A_log.exp()                                             # (H,)
        x = x.reshape(b, t, 1, h, p)                                      # (B, T, R=1, H, P)
        y = scan(x * dt.reshape(b, t, 1, h, 1), dt * A, B.reshape(b, t, 1, g, n), C.reshape(b, t, 1, g, n),
                 self.dims.chunk, cache)
        y = (y + x * self.D.reshape(h, 1)).reshape(b, t, d)
        return self.out_proj(self.norm(y, z))
