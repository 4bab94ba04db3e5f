"""Numba-assisted causal attention with grouped-query heads.

The products stay BLAS matmuls (they are most of the work, and OpenBLAS beats any loop nest
Numba emits); Numba fuses everything between them: scale, causal mask, max, exp, sum and
normalise in one pass over each row of scores, and the softmax backward likewise.

Two things make it cheaper than the reference:

* Causal blocks. Queries are taken in blocks of ``BLOCK``; block [i0, i1) only needs keys
  up to offset + i1, so the products skip the masked upper triangle block by block (about
  half the work for long sequences). For dK and dV, key block [j0, j1) only needs the queries
  from j0 - offset on.
* Grouped rows. Each KV head's G query heads are stacked as rows ordered (t, g): one product
  per KV head covers the whole group (larger, faster GEMMs), the group sums of dK and dV
  come out of the product itself, and a causal block of queries is one contiguous run of rows.

Layouts at the kernel boundary are the reference's (``nn.ops.attention``): q (B, T, H, D),
k and v (B, S, KV, D); P is returned as a (B, KV, G, T, S) view of the (B, KV, T, G, S)
array the backward kernel works on.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from minigrad.backend import get_backend, register_kernel

from ._fast_math import row_dot, row_exp_sum, row_max

BLOCK = 64  # queries (and keys) per causal block


@numba.njit(parallel=True, cache=True)
def _softmax_rows(s, t, g, scale, offset):  # pragma: no cover - compiled
    # s (R, S): raw scores q.k, one row per (batch, kv head, query t, group member g), rows
    # ordered so that row r holds query (r // g) % t. Overwritten with the causal softmax of
    # s * scale; entries of masked keys (j > offset + query) become 0 and are never read.
    n_rows, n_keys = s.shape
    zero = s.dtype.type(0.0)
    for r in numba.prange(n_rows):
        row = s[r]
        n = min(n_keys, (r // g) % t + offset + 1)  # keys 0..offset+i are visible
        # max(row) * scale is the max of the scaled row (scale > 0, rounding is monotonic), so
        # exp(row * scale - shift) matches the reference's scale-then-subtract operation by operation.
        shift = row_max(row, n) * scale
        inv = s.dtype.type(1.0) / row_exp_sum(row, n, scale, shift)
        for j in range(n):
            row[j] *= inv
        for j in range(n, n_keys):
            row[j] = zero


@numba.njit(parallel=True, cache=True)
def _softmax_backward_rows(dp, p, t, g, scale, offset):  # pragma: no cover - compiled
    # dp (R, S) = dL/dP (only visible entries are read), overwritten with
    # dL/d(raw scores) = P * (dP - rowsum(dP * P)) * scale, zero where masked.
    n_rows, n_keys = dp.shape
    zero = dp.dtype.type(0.0)
    for r in numba.prange(n_rows):
        drow = dp[r]
        prow = p[r]
        n = min(n_keys, (r // g) % t + offset + 1)
        dot = row_dot(drow, prow, n)
        for j in range(n):
            drow[j] = prow[j] * (drow[j] - dot) * scale
        for j in range(n, n_keys):
            drow[j] = zero


def _grouped_rows(x: np.ndarray, kv: int) -> np.ndarray:
    """(B, T, H, D) -> (B, KV, T*G, D) contiguous, rows ordered (t, g): a KV head's queries."""
    b, t, h, d = x.shape
    g = h // kv
    return np.ascontiguousarray(x.reshape(b, t, kv, g, d).transpose(0, 2, 1, 3, 4)).reshape(b, kv, t * g, d)


def _ungroup(x: np.ndarray, t: int) -> np.ndarray:
    """(B, KV, T*G, D) -> (B, T, H, D) contiguous: the inverse of _grouped_rows."""
    b, kv, tg, d = x.shape
    g = tg // t
    return np.ascontiguousarray(x.reshape(b, kv, t, g, d).transpose(0, 2, 1, 3, 4)).reshape(b, t, kv * g, d)


def _blocks(n: int):
    return [(i0, min(n, i0 + BLOCK)) for i0 in range(0, n, BLOCK)]


def _supported(*arrays: np.ndarray) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _reference(name: str):
    return get_backend("numpy").reference(name)


@register_kernel("attention_forward", "numba")
def attention_forward(xp: Any, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, offset: int):
    if not _supported(q, k, v) or offset < 0 or not scale > 0:
        return _reference("attention_forward")(xp, q, k, v, scale, offset)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    g = h // kv
    qs = _grouped_rows(q, kv)                                  # (B, KV, T*G, D)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # (B, KV, S, D) views
    p = np.empty((b, kv, t * g, s), dtype=q.dtype)             # rows (t, g)
    o = np.empty((b, kv, t * g, d), dtype=q.dtype)
    for i0, i1 in _blocks(t):
        rows, kend = slice(i0 * g, i1 * g), min(s, i1 + offset)  # the block's queries see keys < kend
        np.matmul(qs[:, :, rows], kt[:, :, :kend].swapaxes(-1, -2), out=p[:, :, rows, :kend])
    _softmax_rows(p.reshape(-1, s), t, g, q.dtype.type(scale), int(offset))
    for i0, i1 in _blocks(t):
        rows, kend = slice(i0 * g, i1 * g), min(s, i1 + offset)
        np.matmul(p[:, :, rows, :kend], vt[:, :, :kend], out=o[:, :, rows])
    # P in the reference's (B, KV, G, T, S) order, as a view; backward transposes it back.
    return _ungroup(o, t), p.reshape(b, kv, t, g, s).transpose(0, 1, 3, 2, 4)


@register_kernel("attention_backward", "numba")
def attention_backward(xp: Any, g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, p: np.ndarray,
                       scale: float, offset: int | None = None):
    if not _supported(g, q, k, v, p) or offset is None or offset < 0:
        return _reference("attention_backward")(xp, g, q, k, v, p, scale, offset)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    grp = h // kv
    p = np.ascontiguousarray(p.transpose(0, 1, 3, 2, 4)).reshape(b, kv, t * grp, s)  # free for our own P
    qs, gs = _grouped_rows(q, kv), _grouped_rows(g, kv)         # (B, KV, T*G, D)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)   # (B, KV, S, D) views
    ds = np.empty((b, kv, t * grp, s), dtype=q.dtype)
    dqs = np.empty((b, kv, t * grp, d), dtype=q.dtype)
    for i0, i1 in _blocks(t):
        rows, kend = slice(i0 * grp, i1 * grp), min(s, i1 + offset)
        np.matmul(gs[:, :, rows], vt[:, :, :kend].swapaxes(-1, -2), out=ds[:, :, rows, :kend])   # dL/dP
    _softmax_backward_rows(ds.reshape(-1, s), p.reshape(-1, s), t, grp, q.dtype.type(scale), int(offset))
    for i0, i1 in _blocks(t):
        rows, kend = slice(i0 * grp, i1 * grp), min(s, i1 + offset)
        np.matmul(ds[:, :, rows, :kend], kt[:, :, :kend], out=dqs[:, :, rows])
    dk = np.empty((b, s, kv, d), dtype=q.dtype)
    dv = np.empty((b, s, kv, d), dtype=q.dtype)
    dkt, dvt = dk.transpose(0, 2, 1, 3), dv.transpose(0, 2, 1, 3)   # (B, KV, S, D) views, written in place
    for j0, j1 in _blocks(s):
        r0 = max(0, j0 - offset) * grp  # first row whose query sees key j0
        if r0 >= t * grp:  # keys past offset + T - 1: no query sees them
            dkt[:, :, j0:j1] = 0
            dvt[:, :, j0:j1] = 0
            continue
        # Summing over rows sums over the group too: dK = dS^T Q, dV = P^T dO per KV head.
        np.matmul(ds[:, :, r0:, j0:j1].swapaxes(-1, -2), qs[:, :, r0:], out=dkt[:, :, j0:j1])
        np.matmul(p[:, :, r0:, j0:j1].swapaxes(-1, -2), gs[:, :, r0:], out=dvt[:, :, j0:j1])
    return _ungroup(dqs, t), dk, dv
