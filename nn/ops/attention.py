"""Causal scaled dot-product attention with grouped-query heads.

Layout: q (B, T, H, D), k (B, S, KV, D), v (B, S, KV, Dv), out (B, T, H, Dv): the projections'
natural layout, so no transposes are needed around the op. Dv = D except in MLA, whose query/key
heads carry a rotary part that the value heads do not. H = KV * G: each group of G query heads
shares one key/value head. Query i sits at position ``offset + i`` and sees keys 0..offset+i
(``offset`` > 0 when a KV cache holds earlier positions).
"""

from __future__ import annotations

import math

from minigrad import Function, Tensor
from minigrad.backend import register_reference


def _causal_mask(xp, t, s, offset):
    """True where query i may NOT look at key j (j > offset + i): (T, S)."""
    return xp.arange(s)[None, :] > (xp.arange(t)[:, None] + offset)


def _split_heads(q, k, v):
    b, t, h, d = q.shape
    kv = k.shape[2]
    g = h // kv
    qh = q.transpose(0, 2, 1, 3).reshape(b, kv, g, t, d)   # (B, KV, G, T, D)
    kh = k.transpose(0, 2, 1, 3)[:, :, None]               # (B, KV, 1, S, D)
    vh = v.transpose(0, 2, 1, 3)[:, :, None]               # (B, KV, 1, S, D)
    return qh, kh, vh


@register_reference("attention_forward")
def attention_forward(xp, q, k, v, scale, offset):
    """Returns out (B, T, H, Dv) and the probabilities P (B, KV, G, T, S) that backward needs."""
    b, t, h, _ = q.shape
    s, dv = k.shape[1], v.shape[3]
    qh, kh, vh = _split_heads(q, k, v)
    scores = (qh @ kh.swapaxes(-1, -2)) * scale            # (B, KV, G, T, S)
    scores = xp.where(_causal_mask(xp, t, s, offset), xp.asarray(-xp.inf, dtype=q.dtype), scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = xp.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    o = p @ vh                                             # (B, KV, G, T, Dv)
    out = o.reshape(b, h, t, dv).transpose(0, 2, 1, 3)     # (B, T, H, Dv)
    return out, p


@register_reference("attention_backward")
def attention_backward(xp, g, q, k, v, p, scale, offset=0):
    """Given dL/dout (B, T, H, Dv) and saved P, return dL/dq, dL/dk, dL/dv in their layouts.
    ``offset`` is the forward's; the mask is already in P (zero where masked), so only fast
    kernels use it, to skip the masked entries."""
    b, t, h, d = q.shape
    kvh = k.shape[2]
    qh, kh, vh = _split_heads(q, k, v)
    gh = g.transpose(0, 2, 1, 3).reshape(b, kvh, h // kvh, t, v.shape[3])   # (B, KV, G, T, Dv)
    dv = (p.swapaxes(-1, -2) @ gh).sum(axis=2)             # (B, KV, S, Dv): sum over the group
    dp = gh @ vh.swapaxes(-1, -2)                          # (B, KV, G, T, S)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * scale   # softmax backward
    dq = ds @ kh                                           # (B, KV, G, T, D)
    dk = (ds.swapaxes(-1, -2) @ qh).sum(axis=2)            # (B, KV, S, D)
    dq = dq.reshape(b, h, t, d).transpose(0, 2, 1, 3)
    return dq, dk.transpose(0, 2, 1, 3), dv.transpose(0, 2, 1, 3)


class CausalAttention(Function):
    def forward(self, q, k, v, scale, offset):
        out, self.p = self.backend.kernel("attention_forward")(self.xp, q, k, v, scale, offset)
        self.q, self.k, self.v, self.scale, self.offset = q, k, v, scale, offset
        return out

    def backward(self, g):
        return self.backend.kernel("attention_backward")(self.xp, g, self.q, self.k, self.v, self.p,
                                                         self.scale, self.offset)


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
    mask = Tensor._from_array(_causal_mask(q.backend.xp, t, s, offset), q.backend)
    probs = scores.masked_fill(mask, float("-inf")).softmax(axis=-1)
    out = probs @ vh                                            # (B, KV, G, T, Dv)
    return out.reshape(b, h, t, dv).transpose(1, 2)             # (B, T, H, Dv)
