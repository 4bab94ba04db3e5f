"""Numba-assisted causal attention with grouped-query heads.

The four products per direction stay BLAS matmuls (they are most of the work, and OpenBLAS
beats any loop nest Numba can emit); Numba fuses everything between them: scale, causal
mask, max, exp, sum and normalise in one pass over each row of scores, and the softmax
backward likewise. Masked entries (key j > offset + i) are never exponentiated.

Layouts are the reference's (``nn.ops.attention``): q (B, T, H, D), k and v (B, S, KV, D),
P (B, KV, G, T, S). The matmuls read q, k, v and write out/dq/dk/dv through strided views,
so nothing is transposed into a copy except the stacked operands of the GQA sums.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from minigrad.backend import get_backend, register_kernel

from ._fast_math import fast_exp, row_dot, row_max, row_sum


@numba.njit(parallel=True, cache=True)
def _softmax_rows(s, scale, offset):  # pragma: no cover - compiled
    # s (R, T, S) raw scores q.k, overwritten with the causal softmax of s * scale.
    r_, t, n_keys = s.shape
    zero = s.dtype.type(0.0)
    for rt in numba.prange(r_ * t):
        r = rt // t
        i = rt - r * t
        row = s[r, i]
        n = min(n_keys, i + offset + 1)  # keys 0..offset+i are visible
        for j in range(n):
            row[j] = row[j] * scale
        m = row_max(row, n)
        for j in range(n):
            row[j] = fast_exp(row[j] - m)
        inv = s.dtype.type(1.0) / row_sum(row, n)
        for j in range(n):
            row[j] *= inv
        for j in range(n, n_keys):
            row[j] = zero


@numba.njit(parallel=True, cache=True)
def _softmax_backward_rows(dp, p, scale, offset):  # pragma: no cover - compiled
    # dp (R, T, S) = dL/dP, overwritten with dL/d(raw scores) = P * (dP - rowsum(dP * P)) * scale.
    r_, t, n_keys = dp.shape
    zero = dp.dtype.type(0.0)
    for rt in numba.prange(r_ * t):
        r = rt // t
        i = rt - r * t
        drow = dp[r, i]
        prow = p[r, i]
        n = min(n_keys, i + offset + 1)
        dot = row_dot(drow, prow, n)
        for j in range(n):
            drow[j] = prow[j] * (drow[j] - dot) * scale
        for j in range(n, n_keys):
            drow[j] = zero


def _heads(x: np.ndarray, kv: int) -> np.ndarray:
    """(B, T, H, D) -> (B, KV, G, T, D), a strided view (no copy)."""
    b, t, h, d = x.shape
    return x.reshape(b, t, kv, h // kv, d).transpose(0, 2, 3, 1, 4)


def _stacked(x: np.ndarray, kv: int) -> np.ndarray:
    """(B, T, H, D) -> (B, KV, G*T, D) contiguous: each KV head's G query heads as one block of rows."""
    b, t, h, d = x.shape
    return np.ascontiguousarray(_heads(x, kv)).reshape(b, kv, (h // kv) * t, d)


def _supported(*arrays: np.ndarray) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


@register_kernel("attention_forward", "numba")
def attention_forward(xp: Any, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, offset: int):
    if not _supported(q, k, v) or offset < 0:
        return get_backend("numpy").reference("attention_forward")(xp, q, k, v, scale, offset)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    kh = k.transpose(0, 2, 1, 3)[:, :, None]                  # (B, KV, 1, S, D)
    vh = v.transpose(0, 2, 1, 3)[:, :, None]
    p = np.matmul(_heads(q, kv), kh.swapaxes(-1, -2))         # (B, KV, G, T, S) raw scores
    _softmax_rows(p.reshape(-1, t, s), q.dtype.type(scale), int(offset))
    out = np.empty((b, t, h, d), dtype=q.dtype)
    np.matmul(p, vh, out=_heads(out, kv))                     # written in place through the view
    return out, p


@register_kernel("attention_backward", "numba")
def attention_backward(xp: Any, g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, p: np.ndarray,
                       scale: float, offset: int | None = None):
    if not _supported(g, q, k, v, p) or offset is None or offset < 0:
        return get_backend("numpy").reference("attention_backward")(xp, g, q, k, v, p, scale, offset)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    grp = h // kv
    kh = k.transpose(0, 2, 1, 3)[:, :, None]                  # (B, KV, 1, S, D)
    vh = v.transpose(0, 2, 1, 3)[:, :, None]
    ds = np.matmul(_heads(g, kv), vh.swapaxes(-1, -2))        # dL/dP (B, KV, G, T, S)
    _softmax_backward_rows(ds.reshape(-1, t, s), p.reshape(-1, t, s), q.dtype.type(scale), int(offset))
    dq = np.empty((b, t, h, d), dtype=q.dtype)
    np.matmul(ds, kh, out=_heads(dq, kv))
    dk = np.empty((b, s, kv, d), dtype=q.dtype)
    dv = np.empty((b, s, kv, d), dtype=q.dtype)
    # dK = sum over the group of dS_g^T Q_g: stacking the group's rows makes the sum one product.
    p_rows = p.reshape(b, kv, grp * t, s)                     # (B, KV, G*T, S), a view
    ds_rows = ds.reshape(b, kv, grp * t, s)
    q_rows = _stacked(q, kv) if grp > 1 else _heads(q, kv)[:, :, 0]
    g_rows = _stacked(g, kv) if grp > 1 else _heads(g, kv)[:, :, 0]
    np.matmul(ds_rows.swapaxes(-1, -2), q_rows, out=dk.transpose(0, 2, 1, 3))
    np.matmul(p_rows.swapaxes(-1, -2), g_rows, out=dv.transpose(0, 2, 1, 3))
    return dq, dk, dv
