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
* Our own threads. The (batch, KV head) pairs are split into one slab per thread; each
  thread runs its slab's products on a single-threaded BLAS and its softmax rows right after
  each block's product, while the scores are still in cache (``_blas_threads``). That is one
  thread handoff per call instead of one per small BLAS product.

Layouts at the kernel boundary are the reference's (kernels/reference/attention.py): q (B, T, H, D),
k (B, S, KV, D), v (B, S, KV, Dv) (Dv != D in MLA); P is returned as a (B, KV, G, T, S) view of
the (B, KV, T, G, S) array the backward kernel works on. Dtypes other than float32/float64, a
negative offset or scale, and a backward without the forward's offset return NotImplemented.
"""

from __future__ import annotations

import numba
import numpy as np

from ._blas_threads import blas_single_thread, n_threads, run_parallel
from ._fast_math import row_dot, row_exp_sum, row_max
from ._layout import same_float

BLOCK = 64  # queries (and keys) per causal block


@numba.njit(nogil=True, cache=True)
def _softmax_rows(s, r0, r1, g, scale, offset):  # pragma: no cover - compiled
    # s (M, T*G, S): raw scores q.k of M (batch, kv head) pairs, rows ordered (t, g) so that
    # row r holds query r // g. Rows r0..r1-1 of each are overwritten with the causal softmax
    # of s * scale; entries of masked keys (j > offset + query) become 0.
    m_, _, n_keys = s.shape
    zero = s.dtype.type(0.0)
    for m in range(m_):
        for r in range(r0, r1):
            row = s[m, r]
            n = min(n_keys, r // g + offset + 1)  # keys 0..offset+i are visible
            # max(row) * scale is the max of the scaled row (scale > 0, rounding is monotonic),
            # so exp(row * scale - shift) matches the reference operation by operation.
            shift = row_max(row, n) * scale
            inv = s.dtype.type(1.0) / row_exp_sum(row, n, scale, shift)
            for j in range(n):
                row[j] *= inv
            for j in range(n, n_keys):
                row[j] = zero


@numba.njit(nogil=True, cache=True)
def _softmax_backward_rows(dp, p, r0, r1, g, scale, offset):  # pragma: no cover - compiled
    # dp, p (M, T*G, S). Rows r0..r1-1 of dp = dL/dP (visible entries) are overwritten with
    # dL/d(raw scores) = P * (dP - rowsum(dP * P)) * scale, zero where masked.
    m_, _, n_keys = dp.shape
    zero = dp.dtype.type(0.0)
    for m in range(m_):
        for r in range(r0, r1):
            drow = dp[m, r]
            prow = p[m, r]
            n = min(n_keys, r // g + offset + 1)
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


def _slabs(b: int, kv: int) -> list[tuple[slice, slice]]:
    """Split the (batch, kv head) grid into about one contiguous slab per thread."""
    n = n_threads()
    if b >= n or b * kv == 1:
        bounds = [b * i // n for i in range(n + 1)]
        return [(slice(lo, hi), slice(None)) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
    per = -(-n // b)  # kv chunks per batch row
    bounds = [kv * i // per for i in range(per + 1)]
    return [(slice(i, i + 1), slice(lo, hi)) for i in range(b) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _matrices(a: np.ndarray) -> np.ndarray:
    """A (b, kv, R, C) slab -> (b*kv, R, C), a view (slabs are contiguous)."""
    return a.reshape(-1, *a.shape[2:])


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, offset: int):
    if not same_float(q, k, v) or offset < 0 or not scale > 0:
        return NotImplemented
    b, t, h, _ = q.shape
    s, kv, dv = k.shape[1], k.shape[2], v.shape[3]
    g = h // kv
    qs = _grouped_rows(q, kv)                                  # (B, KV, T*G, D)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # (B, KV, S, D), (B, KV, S, Dv) views
    p = np.empty((b, kv, t * g, s), dtype=q.dtype)             # rows (t, g)
    o = np.empty((b, kv, t * g, dv), dtype=q.dtype)
    scale, offset = q.dtype.type(scale), int(offset)

    def slab(task):  # one thread's share of the (batch, kv head) pairs
        bs, ks = task
        qsl, ktl, vtl, pl, ol = qs[bs, ks], kt[bs, ks], vt[bs, ks], p[bs, ks], o[bs, ks]
        for i0, i1 in _blocks(t):
            rows, kend = slice(i0 * g, i1 * g), min(s, i1 + offset)  # the block's queries see keys < kend
            np.matmul(qsl[:, :, rows], ktl[:, :, :kend].swapaxes(-1, -2), out=pl[:, :, rows, :kend])
            _softmax_rows(_matrices(pl), i0 * g, i1 * g, g, scale, offset)
            np.matmul(pl[:, :, rows, :kend], vtl[:, :, :kend], out=ol[:, :, rows])

    with blas_single_thread():
        run_parallel(slab, _slabs(b, kv))
    # P in the reference's (B, KV, G, T, S) order, as a view; backward transposes it back.
    return _ungroup(o, t), p.reshape(b, kv, t, g, s).transpose(0, 1, 3, 2, 4)


def attention_backward(g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, saved: np.ndarray,
                       scale: float, offset: int | None = None):
    p = saved  # P, as the forward saved it
    if not same_float(g, q, k, v, p) or offset is None or offset < 0:
        return NotImplemented
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    grp = h // kv
    p = np.ascontiguousarray(p.transpose(0, 1, 3, 2, 4)).reshape(b, kv, t * grp, s)  # free for our own P
    qs, gs = _grouped_rows(q, kv), _grouped_rows(g, kv)         # (B, KV, T*G, D), (B, KV, T*G, Dv)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)   # (B, KV, S, D), (B, KV, S, Dv) views
    ds = np.empty((b, kv, t * grp, s), dtype=q.dtype)
    dqs = np.empty((b, kv, t * grp, d), dtype=q.dtype)
    dk = np.empty((b, s, kv, d), dtype=q.dtype)
    dv = np.empty((b, s, kv, v.shape[3]), dtype=q.dtype)
    dkt, dvt = dk.transpose(0, 2, 1, 3), dv.transpose(0, 2, 1, 3)   # (B, KV, S, D) views, written in place
    scale, offset = q.dtype.type(scale), int(offset)

    def slab(task):
        bs, ks = task
        qsl, gsl, ktl, vtl, pl, dsl, dql = qs[bs, ks], gs[bs, ks], kt[bs, ks], vt[bs, ks], p[bs, ks], ds[bs, ks], \
            dqs[bs, ks]
        for i0, i1 in _blocks(t):
            rows, kend = slice(i0 * grp, i1 * grp), min(s, i1 + offset)
            np.matmul(gsl[:, :, rows], vtl[:, :, :kend].swapaxes(-1, -2), out=dsl[:, :, rows, :kend])  # dL/dP
            _softmax_backward_rows(_matrices(dsl), _matrices(pl), i0 * grp, i1 * grp, grp, scale, offset)
            np.matmul(dsl[:, :, rows, :kend], ktl[:, :, :kend], out=dql[:, :, rows])
        for j0, j1 in _blocks(s):
            r0 = max(0, j0 - offset) * grp  # first row whose query sees key j0
            if r0 >= t * grp:  # keys past offset + T - 1: no query sees them
                dkt[bs, ks, j0:j1] = 0
                dvt[bs, ks, j0:j1] = 0
                continue
            # Summing over rows sums over the group too: dK = dS^T Q, dV = P^T dO per KV head.
            np.matmul(dsl[:, :, r0:, j0:j1].swapaxes(-1, -2), qsl[:, :, r0:], out=dkt[bs, ks, j0:j1])
            np.matmul(pl[:, :, r0:, j0:j1].swapaxes(-1, -2), gsl[:, :, r0:], out=dvt[bs, ks, j0:j1])

    with blas_single_thread():
        run_parallel(slab, _slabs(b, kv))
    return _ungroup(dqs, t), dk, dv
