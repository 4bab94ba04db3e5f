"""DeepSeek's Multi-head Latent Attention (MLA), with transformers' DeepseekV3Attention names and math.

    q       = q_b_proj(rms_norm(q_a_proj(x)))  or q_proj(x)             (B, T, H, nope + rope)
    c, k_r  = kv_a_proj_with_mqa(x)                                      latent (B, T, kv_latent_dim), (B, T, rope)
    k_n, v  = kv_b_proj(rms_norm(c))                                     (B, S, H, nope), (B, S, H, v_dim)
    k       = [k_n, rope(k_r)] (k_r shared by every head),  q = [q_nope, rope(q_rope)]
    out     = o_proj(causal_attention(q, k, v, scale = 1 / sqrt(nope + rope)))

Keys and values come from the small latent ``c`` and one rotary key per position, so generation caches
only those two (``LatentCache``) and re-expands them with kv_b_proj: kv_latent_dim + d_rope numbers
per token and layer, against 2 * kv_heads * head_dim for grouped-query attention.

DeepSeek lays each rotary pair out as neighbours (x0, x1), (x2, x3), ... (transformers'
``rope_interleave``), while our rope kernel rotates the pairs (x_i, x_{i + d/2}). Taking the even
dimensions, then the odd ones, turns the first layout into the second; transformers does the same
(its output is in the split layout too), and q and k are permuted alike, so q . k is unchanged.
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .config import ModelConfig
from .layers import Linear, RMSNorm
from .module import Module
from .ops import apply_rope, causal_attention, linear_split

LATENT_NORM_EPS = 1e-6  # transformers' DeepseekV3RMSNorm default, used for q_a_layernorm and kv_a_layernorm


def deinterleave(x: Tensor) -> Tensor:
    """(..., d): the even dimensions, then the odd ones (DeepSeek's rotary pairs into the split layout)."""
    return mg.cat([x[..., 0::2], x[..., 1::2]], axis=-1)


class MLA(Module):
    """Multi-head Latent Attention: low-rank query and key/value projections, decoupled RoPE."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        self.layer_idx = layer_idx
        h, self.num_heads = cfg.hidden_size, cfg.num_heads
        self.nope, self.rope, self.v_dim = cfg.nope_head_dim, cfg.d_rope, cfg.v_head_dim
        self.latent, q_rank = cfg.kv_latent_dim, cfg.q_lora_rank
        q_width = self.num_heads * (self.nope + self.rope)
        if q_rank:
            self.q_a_proj = Linear(h, q_rank, backend=backend)
            self.q_a_layernorm = RMSNorm(q_rank, LATENT_NORM_EPS, backend=backend)
            self.q_b_proj = Linear(q_rank, q_width, backend=backend)
        else:
            self.q_proj = Linear(h, q_width, backend=backend)
        self.kv_a_proj_with_mqa = Linear(h, self.latent + self.rope, backend=backend)
        self.kv_a_layernorm = RMSNorm(self.latent, LATENT_NORM_EPS, backend=backend)
        self.kv_b_proj = Linear(self.latent, self.num_heads * (self.nope + self.v_dim), backend=backend)
        self.o_proj = Linear(self.num_heads * self.v_dim, h, backend=backend)
        self.scale = 1.0 / math.sqrt(self.nope + self.rope)

    def _query_and_latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q (B, T, H * (nope + rope)) and the compressed kv (B, T, latent + rope); the two projections of
        x are one product."""
        if "q_proj" in self._modules:
            return linear_split(x, (self.q_proj.weight, self.kv_a_proj_with_mqa.weight))
        q_small, kv = linear_split(x, (self.q_a_proj.weight, self.kv_a_proj_with_mqa.weight))
        return self.q_b_proj(self.q_a_layernorm(q_small)), kv

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache=None) -> Tensor:
        b, t, _ = x.shape
        heads, nope, rope = self.num_heads, self.nope, self.rope
        q, compressed = self._query_and_latent(x)
        q = q.reshape(b, t, heads, nope + rope)                                  # (B, T, H, nope + rope)
        latent = self.kv_a_layernorm(compressed[..., :self.latent])              # (B, T, latent)
        k_rot = compressed[..., self.latent:].reshape(b, t, 1, rope)             # (B, T, 1, rope): one for all heads
        offset = cache.length if cache is not None else 0
        q_rot = apply_rope(deinterleave(q[..., nope:]), cos, sin, offset)
        k_rot = apply_rope(deinterleave(k_rot), cos, sin, offset)
        if cache is not None:  # the latents and rotary keys of every position so far: (B, S, ...)
            latent, k_rot = cache.append(latent, k_rot)
        s = latent.shape[1]
        kv = self.kv_b_proj(latent).reshape(b, s, heads, nope + self.v_dim)     # (B, S, H, nope + v)
        k = mg.cat([kv[..., :nope], k_rot.expand(b, s, heads, rope)], axis=-1)  # (B, S, H, nope + rope)
        q = mg.cat([q[..., :nope], q_rot], axis=-1)
        out = causal_attention(q, k, kv[..., nope:], offset=offset, scale=self.scale)   # (B, T, H, v)
        return self.o_proj(out.reshape(b, t, heads * self.v_dim))

    def new_cache(self, batch: int, max_len: int, dtype) -> LatentCache:
        return LatentCache(batch, max_len, self.latent, self.rope, self.o_proj.weight.backend, dtype)

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, kv_latent={self.latent}, nope={self.nope}, rope={self.rope}, "
                f"v={self.v_dim}")


class LatentCache:
    """One MLA layer's generation cache, with the interface of ``nn.cache.AttentionCache``: the normed latent
    (B, S, kv_latent_dim) and the rotated shared key (B, S, 1, d_rope) of the positions so far,
    preallocated to ``max_len``; nothing per head."""

    def __init__(self, batch: int, max_len: int, latent_dim: int, rope_dim: int, backend, dtype):
        xp = backend.xp
        self.latent = xp.zeros((batch, max_len, latent_dim), dtype=dtype)
        self.k_rot = xp.zeros((batch, max_len, 1, rope_dim), dtype=dtype)
        self.backend, self.length, self.max_len = backend, 0, max_len

    @property
    def nbytes(self) -> int:
        return self.latent.nbytes + self.k_rot.nbytes

    def append(self, latent: Tensor, k_rot: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' latents and rotary keys; return those of every position so far."""
        end = self.length + latent.shape[1]
        if end > self.max_len:
            raise ValueError(f"KV cache is full ({self.max_len} positions)")
        self.latent[:, self.length:end] = latent.data
        self.k_rot[:, self.length:end] = k_rot.data
        self.length = end
        return (Tensor._from_array(self.latent[:, :end], self.backend),
                Tensor._from_array(self.k_rot[:, :end], self.backend))
