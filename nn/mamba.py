"""Mamba1's mixer (Gu & Dao, 2023), with transformers' ``MambaMixer`` parameter names, shapes and math.

    x, z  = in_proj(u)                      (B, T, D) each, D = mamba_expand * hidden
    x     = silu(conv1d(x))                 causal depthwise conv
    dt, B, C = x_proj(x)                    (B, T, dt_rank), (B, T, N), (B, T, N)
    delta = softplus(dt_proj(dt))           (B, T, D): a step size per channel
    y     = selective_scan(x, delta, A = -exp(A_log), B, C) + D * x
    out   = out_proj(y * silu(z))

With a layer cache and one new token the scan is the recurrence itself, one step (``selective_scan_simple``);
otherwise it is the selective-scan kernel, starting from the cached state if there is one.
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .cache import MambaCache
from .conv import CausalConv1d
from .layers import Linear
from .mamba_config import DT_FLOOR, DT_MAX, DT_MIN, MambaDims
from .module import Module, Parameter
from .ops import selective_scan, selective_scan_simple, softplus, swiglu


def inverse_softplus_dt(gen: mg.Generator, n: int, backend: Backend):
    """Step sizes dt log-uniform in [DT_MIN, DT_MAX] (floored at DT_FLOOR), returned as their inverse softplus
    dt + log(1 - exp(-dt)), so that softplus(bias) = dt at the start (transformers' and mamba_ssm's init)."""
    xp = backend.xp
    u = backend.asarray(gen.random((n,)))
    dt = xp.maximum(xp.exp(u * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)), DT_FLOOR)
    return (dt + xp.log(-xp.expm1(-dt))).astype(mg.float32)


def log_arange(n: int, backend: Backend, rows: int | None = None):
    """log(1), ..., log(n) (the S4D-real init of A_log: A = -1, ..., -n), repeated over ``rows`` rows if given."""
    xp = backend.xp
    a = xp.log(xp.arange(1, n + 1, dtype=mg.float32))
    return a if rows is None else xp.broadcast_to(a, (rows, n)).copy()


def uniform(gen: mg.Generator, shape: tuple, bound: float, backend: Backend):
    return backend.asarray(((2 * gen.random(shape) - 1) * bound).astype(mg.float32))


class MambaMixer(Module):
    def __init__(self, dims: MambaDims, layer_idx: int, backend: Backend):
        super().__init__()
        self.dims, self.layer_idx = dims, layer_idx
        h, d, n, r = dims.hidden, dims.d_inner, dims.d_state, dims.dt_rank
        self.in_proj = Linear(h, 2 * d, backend=backend)
        self.conv1d = CausalConv1d(d, dims.d_conv, backend)
        self.x_proj = Linear(d, r + 2 * n, backend=backend)
        self.dt_proj = Linear(r, d, bias=True, backend=backend)
        self.A_log = Parameter(mg.zeros(d, n, backend=backend))
        self.D = Parameter(mg.ones(d, backend=backend))
        self.out_proj = Linear(d, h, backend=backend)

    def reset_ssm_parameters(self, gen: mg.Generator) -> set[int]:
        """transformers' MambaMixer init for the SSM's own parameters; returns their ids (the model's generic
        init leaves them alone)."""
        d, n, k = self.dims.d_inner, self.dims.d_state, self.dims.d_conv
        be = self.D.backend
        self.A_log.data = log_arange(n, be, rows=d)
        self.D.data = be.xp.ones(d, dtype=mg.float32)
        self.dt_proj.weight.data = uniform(gen, self.dt_proj.weight.shape, self.dims.dt_rank ** -0.5, be)
        self.dt_proj.bias.data = inverse_softplus_dt(gen, d, be)
        self.conv1d.weight.data = uniform(gen, (d, 1, k), 1 / math.sqrt(k), be)   # kaiming_uniform(a=sqrt(5))
        self.conv1d.bias.data = be.xp.zeros(d, dtype=mg.float32)
        return {id(p) for p in (self.A_log, self.D, self.dt_proj.weight, self.dt_proj.bias, self.conv1d.weight,
                                self.conv1d.bias)}

    def new_cache(self, batch: int, dtype) -> MambaCache:
        d = self.dims
        return MambaCache(self.D.backend, dtype, conv=(batch, d.d_conv - 1, d.d_inner),
                          ssm=(batch, d.d_inner, d.d_state))

    def forward(self, u: Tensor, cache: MambaCache | None = None) -> Tensor:
        d, n, r = self.dims.d_inner, self.dims.d_state, self.dims.dt_rank
        x, z = mg.split(self.in_proj(u), [d, d], axis=-1)                 # (B, T, D) each
        x = self.conv1d(x, silu=True, cache=cache)
        dt, B, C = mg.split(self.x_proj(x), [r, n, n], axis=-1)
        delta = softplus(self.dt_proj(dt))                                # (B, T, D)
        A = -self.A_log.exp()                                             # (D, N)
        if cache is None:
            y, _ = selective_scan(x, delta, A, B, C)
        else:
            scan = selective_scan_simple if u.shape[1] == 1 else selective_scan
            y, last = scan(x, delta, A, B, C, h0=cache.get("ssm"))
            cache.set("ssm", last)
        y = y + x * self.D
        return self.out_proj(swiglu(z, y))                                # y * silu(z)
