"""Numba Mixture-of-Experts dispatch and combine, forward and backward: the twins of
kernels/reference/moe_dispatch.py. Every loop runs over rows that no other thread writes (buffer
rows for the gather, tokens for the rest), so there are no atomics and the results are the same
on any number of threads."""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import row_dot


@numba.njit(parallel=True, cache=True)
def _gather_rows(x, order, k, out):  # pragma: no cover - compiled
    h = x.shape[1]
    for m in numba.prange(order.size):
        src = x[order[m] // k]
        dst = out[m]
        for c in range(h):
            dst[c] = src[c]


@numba.njit(parallel=True, cache=True)
def _sum_slots(rows, slot_row, weights, use_weights, out):  # pragma: no cover - compiled
    # out[n] = sum over kept slots j of (weights[n, j] *) rows[slot_row[n, j]], j in order
    n, k = slot_row.shape
    h = rows.shape[1]
    for i in numba.prange(n):
        acc = out[i]
        for c in range(h):
            acc[c] = 0.0
        for j in range(k):
            r = slot_row[i, j]
            if r < 0:
                continue
            src = rows[r]
            if use_weights:
                w = weights[i, j]
                for c in range(h):
                    acc[c] += w * src[c]
            else:
                for c in range(h):
                    acc[c] += src[c]


@numba.njit(parallel=True, cache=True)
def _combine_backward_rows(g, ys, slot_row, weights, dys, dweights):  # pragma: no cover - compiled
    n, k = slot_row.shape
    h = ys.shape[1]
    for i in numba.prange(n):
        gi = g[i]
        for j in range(k):
            r = slot_row[i, j]
            if r < 0:
                dweights[i, j] = 0.0
                continue
            w = weights[i, j]
            dst = dys[r]
            for c in range(h):
                dst[c] = w * gi[c]
            dweights[i, j] = row_dot(ys[r], gi, h)


def _floats(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt and a.ndim == 2 for a in arrays)


def _rows_of(slot_row):
    return np.ascontiguousarray(slot_row, dtype=np.int64)


def moe_gather(x: np.ndarray, order: np.ndarray, k: int):
    if not _floats(x):
        return NotImplemented
    out = np.empty((order.size, x.shape[1]), dtype=x.dtype)
    _gather_rows(np.ascontiguousarray(x), np.ascontiguousarray(order, dtype=np.int64), k, out)
    return out


def moe_gather_backward(dxs: np.ndarray, slot_row: np.ndarray):
    if not _floats(dxs):
        return NotImplemented
    out = np.empty((slot_row.shape[0], dxs.shape[1]), dtype=dxs.dtype)
    unused = np.empty((1, 1), dtype=dxs.dtype)
    _sum_slots(np.ascontiguousarray(dxs), _rows_of(slot_row), unused, False, out)
    return out


def moe_combine(ys: np.ndarray, slot_row: np.ndarray, weights: np.ndarray):
    if not _floats(ys, weights):
        return NotImplemented
    out = np.empty((slot_row.shape[0], ys.shape[1]), dtype=ys.dtype)
    _sum_slots(np.ascontiguousarray(ys), _rows_of(slot_row), np.ascontiguousarray(weights), True, out)
    return out


def moe_combine_backward(g: np.ndarray, ys: np.ndarray, slot_row: np.ndarray, weights: np.ndarray):
    if not _floats(g, ys, weights):
        return NotImplemented
    dys = np.empty_like(ys)
    dweights = np.empty(slot_row.shape, dtype=ys.dtype)
    _combine_backward_rows(np.ascontiguousarray(g), np.ascontiguousarray(ys), _rows_of(slot_row),
                           np.ascontiguousarray(weights), dys, dweights)
    return dys, dweights
