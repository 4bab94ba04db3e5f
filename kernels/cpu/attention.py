"""Numba-assisted causal attention with grouped-query heads, flash style: its memory grows linearly
with the sequence, not with its square.

The products stay BLAS matmuls (they are most of the work, and OpenBLAS beats any loop nest
Numba emits), called from the compiled loops (``_gemm.gemm``, cblas on the operands where they lie:
K, V, dK and dV in their (B, S, KV, D) layout, no copies); Numba fuses everything between them:
scale, causal mask, max, exp, sum and normalise in one pass over each row of scores, and the
softmax backward likewise.

* What the forward saves (``LseState``): each query row's log-sum-exp of its scaled scores, never the
  (T, S) probabilities P. The backward recomputes each block's P from it, P = exp(s * scale - lse),
  one row at a time, right after the block's product has made the scores s again. That costs one
  more product (Q K^T, again) per block, and saves writing and re-reading the whole of P and dS.
* Causal blocks. Queries are taken in blocks of ``BLOCK``; block [i0, i1) only needs keys up to
  offset + i1, so the products skip the masked upper triangle block by block, and within a block
  by sub-blocks of ``SUB`` queries (the products go in pieces, see ``_rows_by_keys``). A block's scores (its
  rows against its visible keys) live in a scratch array of one thread, reused block after block:
  (rows of a block) x S per (batch, kv head) pair, linear in S. The backward goes through the blocks
  last to first: the last block sees every key, so its products write dK and dV, and the others'
  add into them (gemm's beta = 1: no partial sums to add afterwards).
* Grouped rows. Each KV head's G query heads are stacked as rows ordered (t, g): one product
  per KV head covers the whole group (larger, faster GEMMs), the group sums of dK and dV
  come out of the product itself, and a causal block of queries is one contiguous run of rows.
* Our own threads. The (batch, KV head) pairs are split into one contiguous run per thread; each
  thread runs its pairs' products on a single-threaded BLAS and its softmax rows right after
  each block's product, while the scores are still in cache (``_blas_threads``). That is one
  thread handoff per call instead of one per small BLAS product, and, the block loop being compiled,
  no NumPy call (operand checks, views, a fresh array) per product either.

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
from ._fast_math import row_exp_dot, row_exp_sum, row_max
from ._gemm import blas_for, gemm
from ._layout import same_float

BLOCK = 64  # queries per causal block
SUB = 32    # queries per sub-block
STEP = 64   # the exp loops' vector step (16 float32 lanes, 4 at a time); rows of scores are padded to it


class LseState:
    """What the Numba forward saves for its backward: ``lse`` (B, KV, T*G), the log-sum-exp of each
    query row's visible scaled scores (rows ordered (t, g), as the kernels group them), and the
    forward's ``offset``."""

    __slots__ = ("lse", "offset")

    def __init__(self, lse: np.ndarray, offset: int):
        self.lse, self.offset = lse, offset


@numba.njit(nogil=True, cache=True)
def _padded(row, other, n, fill, other_fill):  # pragma: no cover - compiled
    # Fills row[n:m], other[n:m] with fill, other_fill, m = n rounded up to the scratch's STEP (the
    # row's length is a multiple of it), and returns m. The exp loops then run over m entries: every
    # trip a whole vector step, no scalar remainder (scalar exps cost ~7 ns each, a whole vector's
    # worth). fill -inf makes the exps 0, adding nothing to the row's sum.
    m = -(-n // STEP) * STEP
    for j in range(n, m):
        row[j] = fill
        other[j] = other_fill
    return m


@numba.njit(nogil=True, cache=True)
def _softmax_rows(s, n_rows, kend, row0, g, scale, offset, lse):  # pragma: no cover - compiled
    # s (R, S'): raw scores q.k of one (batch, kv head) pair's rows row0 .. row0 + n_rows - 1 (row r of s
    # is query (row0 + r) // g) against keys < kend. Overwritten with the causal softmax of s * scale,
    # 0 at masked keys; lse[row0 + r] gets the row's log-sum-exp.
    zero, one, ninf = s.dtype.type(0.0), s.dtype.type(1.0), s.dtype.type(-np.inf)
    for r in range(n_rows):
        row = s[r]
        n = min(kend, (row0 + r) // g + offset + 1)  # keys 0..offset+i are visible
        # max(row) * scale is the max of the scaled row (scale > 0, rounding is monotonic),
        # so exp(row * scale - shift) matches the reference operation by operation.
        shift = row_max(row, n) * scale
        m = _padded(row, row, n, ninf, ninf)
        total = row_exp_sum(row, m, scale, shift)
        inv = one / total
        for j in range(m):
            row[j] *= inv
        for j in range(m, kend):
            row[j] = zero
        lse[row0 + r] = shift + math.log(total)


@numba.njit(nogil=True, cache=True)
def _softmax_backward_rows(s, dp, n_rows, kend, row0, g, scale, offset, lse):  # pragma: no cover - compiled
    # s, dp (R, S'), rows as in _softmax_rows. s holds raw scores again: overwritten with
    # P = exp(s * scale - lse), the forward's probabilities. dp holds dL/dP: overwritten with
    # dL/d(raw scores) = P * (dP - rowsum(dP * P)) * scale. Both 0 at masked keys.
    zero, ninf = s.dtype.type(0.0), s.dtype.type(-np.inf)
    for r in range(n_rows):
        prow, drow = s[r], dp[r]
        m = _padded(prow, drow, min(kend, (row0 + r) // g + offset + 1), ninf, zero)  # P 0, dP 0 when masked
        dot = row_exp_dot(prow, drow, m, scale, lse[row0 + r])  # P in place, and rowsum(dP * P)
        for j in range(m):
            drow[j] = prow[j] * (drow[j] - dot) * scale
        for j in range(m, kend):
            prow[j] = zero
            drow[j] = zero


def _grouped_rows(x: np.ndarray, kv: int) -> np.ndarray:
    """(B, T, H, D) -> (B*KV, T*G, D) contiguous, rows ordered (t, g): a KV head's queries."""
    b, t, h, d = x.shape
    g = h // kv
    return np.ascontiguousarray(x.reshape(b, t, kv, g, d).transpose(0, 2, 1, 3, 4)).reshape(b * kv, t * g, d)


def _ungroup(x: np.ndarray, b: int, t: int, h: int) -> np.ndarray:
    """(B*KV, T*G, D) -> (B, T, H, D) contiguous: the inverse of _grouped_rows."""
    kv, d = x.shape[0] // b, x.shape[2]
    return np.ascontiguousarray(x.reshape(b, kv, t, h // kv, d).transpose(0, 2, 1, 3, 4)).reshape(b, t, h, d)


# The products of a block of queries [i0, i1), in pieces: piece a is the rows of sub-block a and the
# later ones against keys [lo, ka), the keys that sub-block a's last query sees and the one before it
# does not (ka = offset + its end). So only the diagonal's masked corners beyond a sub-block are left
# out of the products, not the whole masked triangle of a BLOCK-long diagonal tile (at seq 256, 1/10
# of the work). Rows are grouped (t, g): a block's rows from query a0 on are one run, from a0 * g.

@numba.njit(nogil=True, cache=True)
def _rows_by_keys(blas, x, w, wo, ldw, out, ld, i0, i1, g, s, offset):  # pragma: no cover - compiled
    # out[r - i0 * g, j] = x[r] . w[j] for rows r of the block and keys j < kend, by pieces (x (T*G, D) a pair's
    # grouped rows; w rows of D at wo + j * ldw in a flat array); entries left out of the pieces not written.
    d, lo = x.shape[1], 0
    for a0 in range(i0, i1, SUB):
        ka = min(s, min(i1, a0 + SUB) + offset)
        if ka > lo:  # else no key is new to the sub-block (offset + its end is past the last key)
            gemm(blas, 0, 1, (i1 - a0) * g, ka - lo, d, x, a0 * g * d, d, w, wo + lo * ldw, ldw, 0.0, out,
                 (a0 - i0) * g * ld + lo, ld)
        lo = max(lo, ka)


@numba.njit(nogil=True, cache=True)
def _rows_times(blas, a, ld, w, wo, ldw, out, i0, i1, g, s, offset):  # pragma: no cover - compiled
    # out[r] = sum over keys j of a[r - i0 * g, j] w[j], the block's rows of out (T*G, Dw), by pieces.
    dw, lo = out.shape[1], 0
    for a0 in range(i0, i1, SUB):
        ka = min(s, min(i1, a0 + SUB) + offset)
        if ka > lo:  # else no key is new to the sub-block (offset + its end is past the last key)
            gemm(blas, 0, 0, (i1 - a0) * g, dw, ka - lo, a, (a0 - i0) * g * ld + lo, ld, w, wo + lo * ldw, ldw,
                 0.0 if lo == 0 else 1.0, out, a0 * g * dw, dw)
        lo = max(lo, ka)


@numba.njit(nogil=True, cache=True)
def _keys_times(blas, a, ld, x, out, oo, ldo, beta, i0, i1, g, s, offset):  # pragma: no cover - compiled
    # out[j] = beta * out[j] + sum over the block's rows r of a[r - i0 * g, j] x[r], for keys j < kend, by
    # pieces (out rows at oo + j * ldo in a flat array). Summing over rows sums over the group too.
    dx, lo = x.shape[1], 0
    for a0 in range(i0, i1, SUB):
        ka = min(s, min(i1, a0 + SUB) + offset)
        if ka > lo:  # else no key is new to the sub-block (offset + its end is past the last key)
            gemm(blas, 1, 0, ka - lo, dx, (i1 - a0) * g, a, (a0 - i0) * g * ld + lo, ld, x, a0 * g * dx, dx, beta, out,
                 oo + lo * ldo, ldo)
        lo = max(lo, ka)


@numba.njit(nogil=True, cache=True)
def _forward_pairs(blas, qs, kf, vf, o, lse, p0, p1, kv, s, g, scale, offset):  # pragma: no cover - compiled
    # Pairs p0 .. p1-1 of the (batch, kv head) grid, p = batch * KV + head. qs (M, T*G, D), o (M, T*G, Dv)
    # and lse (M, T*G) are grouped rows; kf, vf the flat (B, S, KV, D), (B, S, KV, Dv) inputs, read in place.
    tg, d, dv = qs.shape[1], qs.shape[2], o.shape[2]
    t = tg // g
    ld = -(-s // STEP) * STEP  # the scratch's row stride
    scores = np.empty((BLOCK * g, ld), dtype=qs.dtype)
    for p in range(p0, p1):
        ko, vo = ((p // kv) * s * kv + p % kv) * d, ((p // kv) * s * kv + p % kv) * dv  # K[0], V[0] of the pair
        for i0 in range(0, t, BLOCK):
            i1 = min(t, i0 + BLOCK)
            _rows_by_keys(blas, qs[p], kf, ko, kv * d, scores, ld, i0, i1, g, s, offset)
            _softmax_rows(scores, (i1 - i0) * g, min(s, i1 + offset), i0 * g, g, scale, offset, lse[p])
            _rows_times(blas, scores, ld, vf, vo, kv * dv, o[p], i0, i1, g, s, offset)


@numba.njit(nogil=True, cache=True)
def _backward_pairs(blas, qs, gs, kf, vf, dqs, dkf, dvf, lse, p0, p1, kv, s, g, scale,
                    offset):  # pragma: no cover - compiled
    # Layouts as in _forward_pairs; gs (M, T*G, Dv) is dL/dout, dqs (M, T*G, D) gets dL/dq, and the flat
    # dkf, dvf, laid out like kf, vf, get dL/dk, dL/dv. Blocks go last to first: the last sees every key
    # any query sees, so its products write dK and dV (beta 0), and the others add into them (beta 1).
    tg, d, dv = qs.shape[1], qs.shape[2], gs.shape[2]
    t = tg // g
    ld = -(-s // STEP) * STEP
    probs, dscores = np.empty((BLOCK * g, ld), dtype=qs.dtype), np.empty((BLOCK * g, ld), dtype=qs.dtype)
    n_blocks = (t + BLOCK - 1) // BLOCK
    for p in range(p0, p1):
        ko, vo = ((p // kv) * s * kv + p % kv) * d, ((p // kv) * s * kv + p % kv) * dv
        for n in range(n_blocks):
            i0 = (n_blocks - 1 - n) * BLOCK
            i1 = min(t, i0 + BLOCK)
            _rows_by_keys(blas, qs[p], kf, ko, kv * d, probs, ld, i0, i1, g, s, offset)      # the scores, again
            _rows_by_keys(blas, gs[p], vf, vo, kv * dv, dscores, ld, i0, i1, g, s, offset)   # dL/dP
            _softmax_backward_rows(probs, dscores, (i1 - i0) * g, min(s, i1 + offset), i0 * g, g, scale, offset,
                                   lse[p])
            _rows_times(blas, dscores, ld, kf, ko, kv * d, dqs[p], i0, i1, g, s, offset)           # dQ = dS K
            beta = 0.0 if n == 0 else 1.0
            _keys_times(blas, dscores, ld, qs[p], dkf, ko, kv * d, beta, i0, i1, g, s, offset)    # dK = dS^T Q
            _keys_times(blas, probs, ld, gs[p], dvf, vo, kv * dv, beta, i0, i1, g, s, offset)     # dV = P^T dO
        first_unseen = min(s, t + offset) if t > 0 else 0  # keys from here on: no query sees them
        for j in range(first_unseen, s):
            dkf[ko + j * kv * d:ko + j * kv * d + d] = 0.0
            dvf[vo + j * kv * dv:vo + j * kv * dv + dv] = 0.0


def _pairs(m: int) -> list[tuple[int, int]]:
    """Split the m (batch, kv head) pairs into about one contiguous run per thread."""
    n = max(1, min(n_threads(), m))
    bounds = [m * i // n for i in range(n + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, offset: int):
    if not same_float(q, k, v) or offset < 0 or not scale > 0:
        return NotImplemented
    b, t, h, _ = q.shape
    s, kv, dv = k.shape[1], k.shape[2], v.shape[3]
    g = h // kv
    qs = _grouped_rows(q, kv)                                           # (B*KV, T*G, D)
    kf, vf = np.ascontiguousarray(k).reshape(-1), np.ascontiguousarray(v).reshape(-1)
    o = np.empty((b * kv, t * g, dv), dtype=q.dtype)                    # rows (t, g)
    lse = np.empty((b, kv, t * g), dtype=q.dtype)
    scale, offset = q.dtype.type(scale), int(offset)
    args = (blas_for(q.dtype), qs, kf, vf, o, lse.reshape(b * kv, t * g))
    with blas_single_thread():
        run_parallel(lambda r: _forward_pairs(*args, r[0], r[1], kv, s, g, scale, offset), _pairs(b * kv))
    return _ungroup(o, b, t, h), LseState(lse, offset)


def attention_backward(g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, saved,
                       scale: float, offset: int | None = None):
    if not isinstance(saved, LseState):  # the reference's P: the forward declined, so the reference reads it
        return NotImplemented
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    grp = h // kv
    g = g.astype(q.dtype, copy=False)  # our own state: never decline (SAVED_STATE)
    qs, gs = _grouped_rows(q, kv), _grouped_rows(g, kv)                 # (B*KV, T*G, D), (B*KV, T*G, Dv)
    kf, vf = np.ascontiguousarray(k).reshape(-1), np.ascontiguousarray(v).reshape(-1)
    dqs = np.empty((b * kv, t * grp, d), dtype=q.dtype)
    dk, dv = np.empty((b, s, kv, d), dtype=q.dtype), np.empty((b, s, kv, v.shape[3]), dtype=q.dtype)
    args = (blas_for(q.dtype), qs, gs, kf, vf, dqs, dk.reshape(-1), dv.reshape(-1),
            saved.lse.reshape(b * kv, t * grp))
    scale, offset = q.dtype.type(scale), saved.offset
    with blas_single_thread():
        run_parallel(lambda r: _backward_pairs(*args, r[0], r[1], kv, s, grp, scale, offset), _pairs(b * kv))
    return _ungroup(dqs, b, t, h), dk, dv
