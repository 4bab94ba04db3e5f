"""Threaded Numba twins of the reductions (``kernels/reference/reduce.py``): sum and max over all
axes, over trailing axes (each row of the reshaped (rows, cols) array) or over leading axes (each
column: a bias gradient's sum over the batch).

NumPy reduces on one core, and its max checks every element for NaN on the way. Here rows (or
blocks of rows) go to the threads and each row is reduced by the multi-accumulator helpers of
``_fast_math``, which split into SIMD lanes. A float32 sum adds in float32 within blocks of
``SUM_BLOCK`` elements (each SIMD lane then holds a few hundred terms) and adds the blocks in
float64, so its error stays near NumPy's pairwise sum. A max is NaN where its slice holds a NaN.

Handled: float32 or float64 C-contiguous input, a full, trailing or leading set of axes. Anything
else (middle axes, other dtypes, empty input) returns NotImplemented and NumPy runs it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._fast_math import row_max_nan, row_sum
from ._layout import same_float

SUM_BLOCK = 4096
ROW_BLOCK = 1 << 14  # elements per parallel task for a full reduction


@numba.njit(cache=True, error_model="numpy")
def _sum_blocked(x):  # pragma: no cover - compiled
    """x.sum() of a 1-D array: float32 (or float64) lanes within blocks, the blocks added in float64."""
    n = x.size
    total = 0.0
    for lo in range(0, n, SUM_BLOCK):
        hi = min(n, lo + SUM_BLOCK)
        total += np.float64(row_sum(x[lo:hi], hi - lo))
    return total


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _sum_rows(a, out):  # pragma: no cover - compiled
    for r in numba.prange(a.shape[0]):
        out[r] = _sum_blocked(a[r])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _sum_all(x):  # pragma: no cover - compiled
    nb = (x.size + ROW_BLOCK - 1) // ROW_BLOCK
    parts = np.empty(nb, np.float64)
    for b in numba.prange(nb):
        parts[b] = _sum_blocked(x[b * ROW_BLOCK:min(x.size, b * ROW_BLOCK + ROW_BLOCK)])
    return parts.sum()


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _sum_columns(a, out, tasks):  # pragma: no cover - compiled
    """out[j] = sum_r a[r, j]: each thread adds its share of the rows into a float64 partial row
    (the inner loop runs along the contiguous columns and vectorizes), then the partials are added."""
    n_rows, m = a.shape
    parts = np.zeros((tasks, m), np.float64)
    for t in numba.prange(tasks):
        p = parts[t]
        for r in range(t * n_rows // tasks, (t + 1) * n_rows // tasks):
            x = a[r]
            for j in range(m):
                p[j] += x[j]
    for j in range(m):
        s = 0.0
        for t in range(tasks):
            s += parts[t, j]
        out[j] = s


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _max_rows(a, out):  # pragma: no cover - compiled
    for r in numba.prange(a.shape[0]):
        out[r] = row_max_nan(a[r], a.shape[1])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _max_all(x):  # pragma: no cover - compiled
    nb = (x.size + ROW_BLOCK - 1) // ROW_BLOCK
    parts = np.empty(nb, x.dtype)
    for b in numba.prange(nb):
        lo = b * ROW_BLOCK
        parts[b] = row_max_nan(x[lo:min(x.size, lo + ROW_BLOCK)], min(x.size, lo + ROW_BLOCK) - lo)
    return row_max_nan(parts, nb)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _max_columns(a, out, tasks):  # pragma: no cover - compiled
    n_rows, m = a.shape
    parts = np.empty((tasks, m), a.dtype)
    for t in numba.prange(tasks):
        p = parts[t]
        r0 = t * n_rows // tasks
        p[:] = a[r0]
        for r in range(r0 + 1, (t + 1) * n_rows // tasks):
            x = a[r]
            for j in range(m):
                v = x[j]
                if v > p[j] or v != v:  # a NaN wins, as in NumPy
                    p[j] = v
    for j in range(m):
        v = parts[0, j]
        for t in range(1, tasks):
            w = parts[t, j]
            if w > v or w != w:
                v = w
        out[j] = v


def _tasks(rows: int) -> int:
    """How many row ranges a column reduction splits into: two per thread, each with a partial row."""
    return min(rows, 2 * numba.get_num_threads())


def _split(a: np.ndarray, axes: tuple):
    """(kind, rows, cols) for a reduction over ``axes``: "all", "rows" (trailing axes: each row of
    a.reshape(rows, cols) reduces to one value) or "columns" (leading axes); None when it is neither.
    The axes are sorted and distinct (the contract), so k of them are the last k exactly when the first
    is ndim - k, and the first k when the last is k - 1. (Each line here costs: right after a pass over
    a large array, Python runs from cold caches.)"""
    nd, k = a.ndim, len(axes)
    if not k or not a.size or not a.flags.c_contiguous or not same_float(a):
        return None
    if k == nd:
        return "all", 1, a.size
    if axes[0] == nd - k:
        cols = math.prod(a.shape[nd - k:])  # (np.prod: ~4 us)
        return "rows", a.size // cols, cols
    if axes[-1] == k - 1:
        rows = math.prod(a.shape[:k])
        return "columns", rows, a.size // rows
    return None


def _out_shape(a: np.ndarray, kind: str, k: int, keepdims: bool) -> tuple:
    """The result's shape, as NumPy gives it, for a reduction of ``kind`` over k axes."""
    nd = a.ndim
    if kind == "all":
        return (1,) * nd if keepdims else ()
    if kind == "rows":
        return a.shape[:nd - k] + (1,) * k if keepdims else a.shape[:nd - k]
    return (1,) * k + a.shape[k:] if keepdims else a.shape[k:]


def _reduce(loops: tuple, a: np.ndarray, axes: tuple, keepdims: bool):
    """Run one reduction's (whole array, rows, columns) loops on a, in the shape NumPy would give."""
    split = _split(a, axes)
    if split is None:
        return NotImplemented
    kind, rows, cols = split
    whole, by_rows, by_columns = loops
    if kind == "all":
        out = np.asarray(whole(a.reshape(-1)), dtype=a.dtype)
    elif kind == "rows":
        out = np.empty(rows, a.dtype)
        by_rows(a.reshape(rows, cols), out)
    else:
        out = np.empty(cols, a.dtype)
        by_columns(a.reshape(rows, cols), out, _tasks(rows))
    return out.reshape(_out_shape(a, kind, len(axes), keepdims))


def sum(a, axes, keepdims=False):  # noqa: A001 - the op's name
    return _reduce((_sum_all, _sum_rows, _sum_columns), a, axes, keepdims)


def max(a, axes, keepdims=False):  # noqa: A001 - the op's name
    return _reduce((_max_all, _max_rows, _max_columns), a, axes, keepdims)
