"""Causal scaled dot-product attention with grouped-query heads.

Layout: q (B, T, H, D), k (B, S, KV, D), v (B, S, KV, Dv), out (B, T, H, Dv): the projections'
natural layout, so no transposes are needed around the op. Dv = D except in MLA, whose query/key
heads carry a rotary part that the value heads do not. H = KV * G: each group of G query heads
shares one key/value head. Query i sits at position ``offset + i`` and sees keys 0..offset+i
(``offset`` > 0 when a KV cache holds earlier positions). The reference kernels are in
kernels/reference/attention.py, the Numba twins in kernels/cpu/attention.py.
"""

from __future__ import annotations

import math

from kernels.reference.attention import causal_mask
from minigrad import Function, Tensor


class CausalAttention(Function):
    def forward(self, q, k, v, scale, offset):
        # saved: P for the reference kernel; each row's log-sum-exp for the Numba and CUDA ones (whose
        # backward recomputes P from it); only the backward of the same backend reads it (kernels/contracts.py)
        out, self.saved = self.backend.kernel("attention_forward")(q, k, v, scale, offset)
        self.q, self.k, self.v, self.scale, self.offset = q, k, v, scale, offset
        return out

    def backward(self, g):
        return self.backend.kernel("attention_backward")(g, self.q, self.k, self.v, self.saved, self.scale,
                                                         self.offset)


def _check(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"causal_attention: expected q (B,T,H,D), k (B,S,KV,D) and v (B,S,KV,Dv), got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[2] % k.shape[2] or q.shape[3] != k.shape[3] or q.shape[0] != k.shape[0]:
        raise ValueError(f"causal_attention: query heads {q.shape[2]} must be a multiple of kv heads "
                         f"{k.shape[2]} with equal batch and head_dim; got q {q.shape}, k {k.shape}")


def causal_attention(q: Tensor, k: Tensor, v: Tensor, offset: int = 0, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + causal mask) v, fused, for grouped-query heads."""
    _check(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return CausalAttention.apply(q, k, v, scale=scale, offset=offset)


def causal_attention_simple(q: Tensor, k: Tensor, v: Tensor, offset: int = 0,
                            scale: float | None = None) -> Tensor:
    """The same attention from primitive ops: autograd derives its backward."""
    _check(q, k, v)
    b, t, h, d = q.shape
    s, kvh, dv = k.shape[1], k.shape[2], v.shape[3]
    g = h // kvh
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    qh = q.transpose(1, 2).reshape(b, kvh, g, t, d)            # (B, KV, G, T, D)
    kh = k.transpose(1, 2).unsqueeze(2)                         # (B, KV, 1, S, D)
    vh = v.transpose(1, 2).unsqueeze(2)
    scores = (qh @ kh.transpose(-1, -2)) * scale                # (B, KV, G, T, S)
    mask = Tensor._from_array(causal_mask(q.backend.xp, t, s, offset), q.backend)
    probs = scores.masked_fill(mask, float("-inf")).softmax(axis=-1)
    out = probs @ vh                                            # (B, KV, G, T, Dv)
    return out.reshape(b, h, t, dv).transpose(1, 2)             # (B, T, H, Dv)
