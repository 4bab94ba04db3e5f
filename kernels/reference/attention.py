"""Causal grouped-query attention's reference kernels. The spec that kernels/cpu/attention.py
is held to; used by ``nn.ops.causal_attention``.

Layout: q (B, T, H, D), k (B, S, KV, D), v (B, S, KV, Dv), out (B, T, H, Dv); Dv = D except in
MLA, whose query/key heads carry a rotary part the value heads do not. H = KV * G: each group of G
query heads shares one key/value head. Query i sits at position ``offset + i`` and sees keys
0..offset+i (``offset`` > 0 when a KV cache holds earlier positions).
"""

from __future__ import annotations


def causal_mask(xp, t, s, offset):
    """True where query i may NOT look at key j (j > offset + i): (T, S)."""
    return xp.arange(s)[None, :] > (xp.arange(t)[:, None] + offset)


def _split_heads(q, k, v):
    b, t, h, d = q.shape
    kv = k.shape[2]
    g = h // kv
    qh = q.transpose(0, 2, 1, 3).reshape(b, kv, g, t, d)   # (B, KV, G, T, D)
    kh = k.transpose(0, 2, 1, 3)[:, :, None]               # (B, KV, 1, S, D)
    vh = v.transpose(0, 2, 1, 3)[:, :, None]               # (B, KV, 1, S, Dv)
    return qh, kh, vh


def attention_forward(xp, q, k, v, scale, offset):
    """Returns out (B, T, H, Dv) and what backward reads: the probabilities P (B, KV, G, T, S)."""
    b, t, h, _ = q.shape
    s, dv = k.shape[1], v.shape[3]
    qh, kh, vh = _split_heads(q, k, v)
    scores = (qh @ kh.swapaxes(-1, -2)) * scale            # (B, KV, G, T, S)
    scores = xp.where(causal_mask(xp, t, s, offset), xp.asarray(-xp.inf, dtype=q.dtype), scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = xp.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    o = p @ vh                                             # (B, KV, G, T, Dv)
    out = o.reshape(b, h, t, dv).transpose(0, 2, 1, 3)     # (B, T, H, Dv)
    return out, p


def attention_backward(xp, g, q, k, v, saved, scale, offset=0):
    """Given dL/dout (B, T, H, Dv) and the forward's saved P, return dL/dq, dL/dk, dL/dv in their layouts.
    ``offset`` is the forward's; the mask is already in P (zero where masked), so only fast
    kernels use it, to skip the masked entries."""
    p = saved  # the reference saves P (B, KV, G, T, S); fast kernels may save their own state
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
