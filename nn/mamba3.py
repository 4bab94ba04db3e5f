"""Mamba3's mixer: the Mamba-3 paper's changes on top of the Mamba2 mixer (Lahoti et al., "Mamba-3: Improved
Sequence Modeling using State Space Principles", ICLR 2026), each behind a key; with all of them off
(``mamba3_trapezoidal``, ``mamba3_complex_rope``, ``mamba3_bc_norm`` false, ``mamba3_mimo_rank`` 0,
``mamba3_use_conv`` true) it computes exactly what ``Mamba2Mixer`` computes, with the same parameters.

Per head, with alpha_t = exp(dt_t A) and x_t the head's input (P channels):

* Exponential-trapezoidal discretization (``mamba3_trapezoidal``). Mamba1/2's update
  h_t = alpha_t h_{t-1} + dt_t B_t x_t^T is the exponential-Euler rule; the trapezoidal rule averages the
  input term over both ends of the step, with a data-dependent weight lambda_t = sigmoid(proj):

      h_t = alpha_t h_{t-1} + (1 - lambda_t) dt_t alpha_t B_{t-1} x_{t-1}^T + lambda_t dt_t B_t x_t^T

  (lambda = 1 is Euler). In the chunked form, step s's input then enters with the weight
  lambda_s dt_s + (1 - lambda_{s+1}) dt_{s+1} (its own term plus the next step's look-back term, both decayed
  from step s on), and at the step itself the look-back part must not be counted yet: y_s loses
  (1 - lambda_{s+1}) dt_{s+1} (C_s . B_s) x_s. The SSD kernel is unchanged.
* Complex-valued state as a data-dependent rotation (``mamba3_complex_rope``). A complex diagonal A = -a + i w
  turns the state by dt_t w_t each step; that equals rotating B_t and C_t by the accumulated angle
  phi_t = sum_{s<=t} dt_s w_s (the rotations cancel to phi_t - phi_s in C_t . B_s, as RoPE's do). Here
  w_t = pi tanh(proj), N/4 angles shared by the heads (each head its own dt), rotating the first N/2 state
  entries in adjacent pairs (mamba_ssm's rope_fraction 0.5).
* B/C normalisation (``mamba3_bc_norm``): RMSNorm over N on B and C, plus a learned per-head bias (init 1).
* MIMO (``mamba3_mimo_rank`` R > 0): B and C have R columns per step; the head input x is lifted to R inputs
  x^r = mimo_x[r] * x, the state takes sum_r B^r (x^r)^T, each C^r reads an output, and they are mixed back with
  mimo_o: y = sum_r mimo_o[r] * (H C^r + D x^r). Decode still moves one (P, N) state per head.
* ``mamba3_use_conv`` keeps Mamba2's short causal conv (with its SiLU) over x, B, C; off, they enter unconvolved.

Where this differs from mamba_ssm's ``Mamba3`` module (the paper's code): A stays Mamba2's data-independent
-exp(A_log) per head (theirs is data-dependent, -softplus(proj)), and the output keeps Mamba2's gated RMSNorm
(theirs is y * silu(z) by default), both so that the features-off model is Mamba2 exactly; MIMO gates once
after mixing the ranks (theirs gates each rank with its own mimo_z).

Where Oxidizr's reading differs (from its README and example configs, all we have of it): it presents the
trapezoidal rule as *replacing* the short conv (its configs set ``mamba3_use_conv: false`` beside it); here the
two are independent keys, and the conv's default is off as in the paper. It calls the rotation "complex-valued
RoPE"; the angles here are data-dependent (from the input and dt), not RoPE's fixed position frequencies.
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .cache import MambaCache
from .conv import CausalConv1d
from .layers import Linear, RMSNorm
from .mamba2 import GatedRMSNorm, reset_heads, scan
from .mamba_config import MambaDims
from .module import Module, Parameter
from .ops import cos_sin, cumsum, rms_norm, softplus


def _to_heads(v: Tensor, heads: int) -> Tensor:
    """(B, T, R, G, N) -> (B, T, R, H, N): each group's B or C for each of its heads."""
    b, t, r, g, n = v.shape
    return v if g == heads else v.unsqueeze(4).expand(b, t, r, g, heads // g, n).reshape(b, t, r, heads, n)


def _rotate_pairs(v: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate entries (2j, 2j+1) of the last axis by angle j, for the first 2 * n_angles entries.
    v (B, T, R, H, N); cos, sin (B, T, 1, H, A)."""
    a2 = 2 * cos.shape[-1]
    pairs = v[..., :a2].reshape(*v.shape[:-1], a2 // 2, 2)
    v0, v1 = pairs[..., 0], pairs[..., 1]
    turned = mg.stack([v0 * cos - v1 * sin, v0 * sin + v1 * cos], axis=-1).reshape(*v.shape[:-1], a2)
    return turned if a2 == v.shape[-1] else mg.cat([turned, v[..., a2:]], axis=-1)


class Mamba3Mixer(Module):
    def __init__(self, dims: MambaDims, layer_idx: int, backend: Backend, eps: float = 1e-5):
        super().__init__()
        self.dims, self.layer_idx, self.eps = dims, layer_idx, eps
        d, n, h, g, r, p = dims.d_inner, dims.d_state, dims.num_heads, dims.n_groups, dims.ranks, dims.head_dim
        self.xbc_dim = d + 2 * g * n * r
        # [z | x B C | dt] as Mamba2, then lambda (H) and the rotation angles (N/4) when switched on
        extra = (h if dims.trapezoidal else 0) + dims.num_angles
        self.in_proj = Linear(dims.hidden, d + self.xbc_dim + h + extra, backend=backend)
        self.conv1d = CausalConv1d(self.xbc_dim, dims.d_conv, backend) if dims.use_conv else None
        self.dt_bias = Parameter(mg.zeros(h, backend=backend))
        self.A_log = Parameter(mg.zeros(h, backend=backend))
        self.D = Parameter(mg.ones(h, backend=backend))
        if dims.bc_norm:
            self.B_norm = RMSNorm(n, eps, backend=backend)
            self.C_norm = RMSNorm(n, eps, backend=backend)
            self.B_bias = Parameter(mg.ones(h, r, n, backend=backend))
            self.C_bias = Parameter(mg.ones(h, r, n, backend=backend))
        if dims.mimo_rank:
            self.mimo_x = Parameter(mg.full((h, r, p), 1.0 / r, backend=backend))
            self.mimo_o = Parameter(mg.full((h, r, p), 1.0 / r, backend=backend))
        self.norm = GatedRMSNorm(d, d // g, eps, backend)
        self.out_proj = Linear(d, dims.hidden, backend=backend)

    def reset_ssm_parameters(self, gen: mg.Generator) -> set[int]:
        """Mamba2's init for A_log, D, dt_bias and the conv; biases 1 and MIMO weights 1/R (mamba_ssm's)."""
        own = reset_heads(self, gen)
        for name in ("B_bias", "C_bias", "mimo_x", "mimo_o"):
            p = getattr(self, name, None)
            if p is not None:
                value = 1.0 if name.endswith("bias") else 1.0 / self.dims.ranks
                p.data = p.backend.xp.full(p.shape, value, dtype=p.dtype)
                own.add(id(p))
        return own

    def new_cache(self, batch: int, dtype) -> MambaCache:
        d = self.dims
        shapes = {"ssm": (batch, d.num_heads, d.head_dim, d.d_state)}
        if d.use_conv:
            shapes["conv"] = (batch, d.d_conv - 1, self.xbc_dim)
        if d.trapezoidal:  # the previous step's (rotated) B and input, for the look-back term
            shapes["prev_k"] = (batch, d.ranks, d.num_heads, d.d_state)
            shapes["prev_v"] = (batch, d.ranks, d.num_heads, d.head_dim)
        if d.complex_rope:
            shapes["angle"] = (batch, d.num_heads, d.num_angles)
        return MambaCache(self.D.backend, dtype, **shapes)

    def _bc(self, B: Tensor, C: Tensor, dt: Tensor, theta: Tensor | None, cache) -> tuple[Tensor, Tensor]:
        """B and C as the SSD takes them: normalised, biased and rotated as switched on; (B, T, R, G or H, N)."""
        d = self.dims
        if d.bc_norm:
            B = _to_heads(rms_norm(B, self.B_norm.weight, self.eps), d.num_heads) + self.B_bias.transpose(0, 1)
            C = _to_heads(rms_norm(C, self.C_norm.weight, self.eps), d.num_heads) + self.C_bias.transpose(0, 1)
        if theta is None:
            return B, C
        b, t, h = dt.shape
        step = dt.unsqueeze(-1) * (theta.tanh() * math.pi).unsqueeze(2)   # (B, T, H, A): dt_t w_t
        phi = cumsum(step, axis=1)
        if cache is not None:
            phi = phi + cache.get("angle").unsqueeze(1)
            cache.set("angle", phi[:, -1])
        cos, sin = (c.unsqueeze(2) for c in cos_sin(phi))                # (B, T, 1, H, A)
        return _rotate_pairs(_to_heads(B, h), cos, sin), _rotate_pairs(_to_heads(C, h), cos, sin)

    def forward(self, u: Tensor, cache: MambaCache | None = None) -> Tensor:
        b, t, _ = u.shape
        dm = self.dims
        d, n, h, p, g, r = dm.d_inner, dm.d_state, dm.num_heads, dm.head_dim, dm.n_groups, dm.ranks
        sizes = [d, self.xbc_dim, h] + ([h] if dm.trapezoidal else []) + ([dm.num_angles] if dm.complex_rope else [])
        z, xBC, dt, *rest = mg.split(self.in_proj(u), sizes, axis=-1)
        lam = rest.pop(0) if dm.trapezoidal else None
        theta = rest.pop(0) if dm.complex_rope else None
        if self.conv1d is not None:
            xBC = self.conv1d(xBC, silu=True, cache=cache)
        x, B, C = mg.split(xBC, [d, g * n * r, g * n * r], axis=-1)
        dt = softplus(dt + self.dt_bias)                                  # (B, T, H)
        A = -self.A_log.exp()
        B, C = self._bc(B.reshape(b, t, r, g, n), C.reshape(b, t, r, g, n), dt, theta, cache)
        v = x.reshape(b, t, 1, h, p)                                      # (B, T, R, H, P)
        if dm.mimo_rank:
            v = v * self.mimo_x.transpose(0, 1)
        y = self._ssm(v, dt, dt * A, B, C, lam, cache)
        y = y + v * self.D.reshape(h, 1)
        y = (y * self.mimo_o.transpose(0, 1)).sum(axis=2) if dm.mimo_rank else y
        return self.out_proj(self.norm(y.reshape(b, t, d), z))

    def _ssm(self, v, dt, a, B, C, lam, cache) -> Tensor:
        """The SSD with the trapezoidal weights when switched on (see the module docstring)."""
        b, t, r, h, _ = v.shape
        if lam is None:
            return scan(v * dt.reshape(b, t, 1, h, 1), a, B, C, self.dims.chunk, cache)
        lam = lam.sigmoid()
        look_back = (1 - lam) * dt                                        # (1 - lambda_t) dt_t
        nxt = mg.cat([look_back[:, 1:], mg.zeros(b, 1, h, dtype=dt.dtype, backend=dt.backend)], axis=1)
        weight = lam * dt + nxt                                           # what step s's input gets
        h0 = None
        if cache is not None:  # the look-back term of the first new step uses the cached last step
            inflow = (cache.get("prev_v").unsqueeze(-1) * cache.get("prev_k").unsqueeze(-2)).sum(axis=1)
            h0 = cache.get("ssm") + look_back[:, 0].reshape(b, h, 1, 1) * inflow
            cache.set("prev_k", _to_heads(B, h)[:, -1])
            cache.set("prev_v", v[:, -1])
        y = scan(v * weight.reshape(b, t, 1, h, 1), a, B, C, self.dims.chunk, cache, h0=h0)
        # y_s must not count step s's own look-back share yet: subtract nxt_s (C_s . B_s) x_s, summed over ranks
        Bh, Ch = _to_heads(B, h).permute(0, 1, 3, 4, 2), _to_heads(C, h).permute(0, 1, 3, 2, 4)
        own = (Ch @ Bh) @ v.permute(0, 1, 3, 2, 4)                        # (B, T, H, R, P)
        return y - nxt.reshape(b, t, 1, h, 1) * own.permute(0, 1, 3, 2, 4)
