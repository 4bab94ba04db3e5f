"""Numba-assisted causal attention with grouped-query heads, flash style: its memory grows linearly
with the sequence, not with its square.

The products stay BLAS matmuls (they are most of the work, and OpenBLAS beats any loop nest
Numba emits); Numba fuses everything between them: scale, causal mask, max, exp, sum and
normalise in one pass over each row of scores, and the softmax backward likewise.

* What the forward saves (``LseState``): each query row's log-sum-exp of its scaled scores, never the
  (T, S) probabilities P. The backward recomputes each block's P from it, P = exp(s * scale - lse),
  one row at a time, right after the block's product has made the scores s again. That costs one
  more product (Q K^T, again) per block, and saves writing and re-reading the whole of P and dS.
* Causal blocks. Queries are taken in blocks of ``BLOCK``; block [i0, i1) only needs keys up to
  offset + i1, so the products skip the masked upper triangle block by block. A block's scores (its
  rows against its visible keys) live in a scratch array of one thread, reused block after block:
  (rows of a block) x S per (batch, kv head) pair, linear in S. The backward goes through the blocks
  last to first: the last block sees every key, so its products write dK and dV, and the others'
  add into them.
* Grouped rows. Each KV head's G query heads are stacked as rows ordered (t, g): one product
  per KV head covers the whole group (larger, faster GEMMs), the group sums of dK and dV
  come out of the product itself, and a causal block of queries is one contiguous run of rows.
* Our own threads. The (batch, KV head) pairs are split into one slab per thread; each
  thread runs its slab's products on a single-threaded BLAS and its softmax rows right after
  each block's product, while the scores are still in cache (``_blas_threads``). That is one
  thread handoff per call instead of one per small BLAS product.

Layouts at the kernel boundary are the reference's (kernels/reference/attention.py): q (B, T, H, D),
k (B, S, KV, D), v (B, S, KV, Dv) (Dv != D in MLA). Dtypes other than float32/float64 and a negative
offset or scale return NotImplemented from the forward; the backward returns NotImplemented for a
saved state that is not an ``LseState`` (the reference's P, after the forward declined), so the
reference reads it, and never declines its own (kernels/contracts.py, SAVED_STATE).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._blas_threads import blas_single_thread, n_threads, run_parallel
from ._fast_math import row_dot, row_exp_sum, row_max
from ._layout import same_float

BLOCK = 64  # queries per causal block


class LseState:
    """What the Numba forward saves for its backward: ``lse`` (B, KV, T*G), the log-sum-exp of each
    query row's visible scaled scores (rows ordered (t, g), as the kernels group them), and the
    forward's ``offset``."""

    __slots__ = ("lse", "offset")

    def __init__(self, lse: np.ndarray, offset: int):
        self.lse, self.offset = lse, offset


@numba.njit(nogil=True, cache=True)
def _softmax_rows(s, n_rows, kend, row0, g, scale, offset, lse):  # pragma: no cover - compiled
    # s (M, R, S): raw scores q.k of M (batch, kv head) pairs for rows row0 .. row0 + n_rows - 1 (row
    # r of s is query (row0 + r) // g) against keys < kend. Overwritten with the causal softmax of
    # s * scale, 0 at masked keys; lse[m, row0 + r] gets the row's log-sum-exp.
    zero, one = s.dtype.type(0.0), s.dtype.type(1.0)
    for m in range(s.shape[0]):
        for r in range(n_rows):
            row = s[m, r]
            n = min(kend, (row0 + r) // g + offset + 1)  # keys 0..offset+i are visible
            # max(row) * scale is the max of the scaled row (scale > 0, rounding is monotonic),
            # so exp(row * scale - shift) matches the reference operation by operation.
            shift = row_max(row, n) * scale
            total = row_exp_sum(row, n, scale, shift)
            inv = one / total
            for j in range(n):
                row[j] *= inv
            for j in range(n, kend):
                row[j] = zero
            lse[m, row0 + r] = shift + math.log(total)


@numba.njit(nogil=True, cache=True)
def _softmax_backward_rows(s, dp, n_rows, kend, row0, g, scale, offset, lse):  # pragma: no cover - compiled
    # s, dp (M, R, S), rows as in _softmax_rows. s holds raw scores again: overwritten with
    # P = exp(s * scale - lse), the forward's probabilities. dp holds dL/dP: overwritten with
    # dL/d(raw scores) = P * (dP - rowsum(dP * P)) * scale. Both 0 at masked keys.
    zero = s.dtype.type(0.0)
    for m in range(s.shape[0]):
        for r in range(n_rows):
            prow, drow = s[m, r], dp[m, r]
            n = min(kend, (row0 + r) // g + offset + 1)
            row_exp_sum(prow, n, scale, lse[m, row0 + r])  # P in place (its sum, 1 to rounding, unused)
            dot = row_dot(drow, prow, n)
            for j in range(n):
                drow[j] = prow[j] * (drow[j] - dot) * scale
            for j in range(n, kend):
                prow[j] = zero
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
    """A (b, kv, ...) slab -> (b*kv, ...), a view (slabs are contiguous)."""
    return a.reshape(-1, *a.shape[2:])


def _scratch(slab: np.ndarray, rows: int, keys: int) -> np.ndarray:
    """One thread's block of scores: (b, kv, rows, keys) for a (b, kv, ...) slab."""
    return np.empty(slab.shape[:2] + (rows, keys), dtype=slab.dtype)


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, offset: int):
    if not same_float(q, k, v) or offset < 0 or not scale > 0:
        return NotImplemented
    b, t, h, _ = q.shape
    s, kv, dv = k.shape[1], k.shape[2], v.shape[3]
    g = h // kv
    qs = _grouped_rows(q, kv)                                  # (B, KV, T*G, D)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # (B, KV, S, D), (B, KV, S, Dv) views
    o = np.empty((b, kv, t * g, dv), dtype=q.dtype)            # rows (t, g)
    lse = np.empty((b, kv, t * g), dtype=q.dtype)
    scale, offset = q.dtype.type(scale), int(offset)

    def slab(task):  # one thread's share of the (batch, kv head) pairs
        bs, ks = task
        qsl, ktl, vtl, ol, lsl = qs[bs, ks], kt[bs, ks], vt[bs, ks], o[bs, ks], _matrices(lse[bs, ks])
        scores = _scratch(qsl, BLOCK * g, s)
        for i0, i1 in _blocks(t):
            rows, kend = slice(i0 * g, i1 * g), min(s, i1 + offset)  # the block's queries see keys < kend
            block = scores[:, :, :(i1 - i0) * g, :kend]
            np.matmul(qsl[:, :, rows], ktl[:, :, :kend].swapaxes(-1, -2), out=block)
            _softmax_rows(_matrices(scores), (i1 - i0) * g, kend, i0 * g, g, scale, offset, lsl)
            np.matmul(block, vtl[:, :, :kend], out=ol[:, :, rows])

    with blas_single_thread():
        run_parallel(slab, _slabs(b, kv))
    return _ungroup(o, t), LseState(lse, offset)


def attention_backward(g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, saved,
                       scale: float, offset: int | None = None):
    if not isinstance(saved, LseState):  # the reference's P: the forward declined, so the reference reads it
        return NotImplemented
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    grp = h // kv
    g = g.astype(q.dtype, copy=False)  # our own state: never decline (SAVED_STATE)
    qs, gs = _grouped_rows(q, kv), _grouped_rows(g, kv)         # (B, KV, T*G, D), (B, KV, T*G, Dv)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)   # (B, KV, S, D), (B, KV, S, Dv) views
    dqs = np.empty((b, kv, t * grp, d), dtype=q.dtype)
    dk = np.empty((b, s, kv, d), dtype=q.dtype)
    dv = np.empty((b, s, kv, v.shape[3]), dtype=q.dtype)
    dkt, dvt = dk.transpose(0, 2, 1, 3), dv.transpose(0, 2, 1, 3)   # (B, KV, S, D) views, written in place
    scale, offset = q.dtype.type(scale), saved.offset

    def slab(task):
        bs, ks = task
        qsl, gsl, ktl, vtl, dql, dkl, dvl = (a[bs, ks] for a in (qs, gs, kt, vt, dqs, dkt, dvt))
        lsl = _matrices(saved.lse[bs, ks])
        probs, dscores = _scratch(qsl, BLOCK * grp, s), _scratch(qsl, BLOCK * grp, s)
        dk_part, dv_part = np.empty(dkl.shape, q.dtype), np.empty(dvl.shape, q.dtype)  # one block's share
        for n, (i0, i1) in enumerate(reversed(_blocks(t))):
            rows, kend, n_rows = slice(i0 * grp, i1 * grp), min(s, i1 + offset), (i1 - i0) * grp
            p, ds = probs[:, :, :n_rows, :kend], dscores[:, :, :n_rows, :kend]
            np.matmul(qsl[:, :, rows], ktl[:, :, :kend].swapaxes(-1, -2), out=p)   # the scores, again
            np.matmul(gsl[:, :, rows], vtl[:, :, :kend].swapaxes(-1, -2), out=ds)  # dL/dP
            _softmax_backward_rows(_matrices(probs), _matrices(dscores), n_rows, kend, i0 * grp, grp, scale,
                                   offset, lsl)
            np.matmul(ds, ktl[:, :, :kend], out=dql[:, :, rows])
            # Summing over rows sums over the group too: dK = dS^T Q, dV = P^T dO per KV head.
            first = n == 0  # the last block: it sees every key any query sees
            dk_to, dv_to = (dkl, dvl) if first else (dk_part, dv_part)
            np.matmul(ds.swapaxes(-1, -2), qsl[:, :, rows], out=dk_to[:, :, :kend])
            np.matmul(p.swapaxes(-1, -2), gsl[:, :, rows], out=dv_to[:, :, :kend])
            if first:  # keys past offset + T - 1: no query sees them
                dkl[:, :, kend:] = 0
                dvl[:, :, kend:] = 0
            else:
                dkl[:, :, :kend] += dk_part[:, :, :kend]
                dvl[:, :, :kend] += dv_part[:, :, :kend]
        if t == 0:
            dkl[...] = 0
            dvl[...] = 0

    with blas_single_thread():
        run_parallel(slab, _slabs(b, kv))
    return _ungroup(dqs, t), dk, dv
