"""Threaded Numba twins of softmax and log_softmax over the last axis, forward and backward
(``kernels/reference/softmax.py``): one task per row, each row in two or three passes of the
vectorizing helpers of ``_fast_math`` (its max, its exp-sum, the scaling), where NumPy makes five
whole-array passes and four temporaries on one core.

Handled: float32 or float64 C-contiguous input with a last axis of at least one element. Anything
else returns NotImplemented and the reference runs.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, fast_log, row_dot, row_exp_sum, row_max, row_sum, row_sum_exp
from ._layout import same_float


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _softmax_rows(x, y):  # pragma: no cover - compiled
    n_rows, c = x.shape
    one = x.dtype.type(1.0)
    for r in numba.prange(n_rows):
        xr, yr = x[r], y[r]
        m = row_max(xr, c)  # a NaN in the row makes every exp NaN below, as in the reference
        yr[:] = xr  # then exp and its sum in one pass, in place (~20% faster than exp, then a sum)
        inv = one / row_exp_sum(yr, c, one, m)
        for j in range(c):
            yr[j] *= inv


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _softmax_backward_rows(g, y, dx):  # pragma: no cover - compiled
    for r in numba.prange(g.shape[0]):
        gr, yr, dr = g[r], y[r], dx[r]
        s = row_dot(gr, yr, g.shape[1])
        for j in range(g.shape[1]):
            dr[j] = yr[j] * (gr[j] - s)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_rows(x, y):  # pragma: no cover - compiled
    n_rows, c = x.shape
    for r in numba.prange(n_rows):
        xr, yr = x[r], y[r]
        m = row_max(xr, c)
        lse = fast_log(row_sum_exp(xr, c, m))
        for j in range(c):
            yr[j] = (xr[j] - m) - lse


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_backward_rows(g, y, dx):  # pragma: no cover - compiled
    for r in numba.prange(g.shape[0]):
        gr, yr, dr = g[r], y[r], dx[r]
        s = row_sum(gr, g.shape[1])
        for j in range(g.shape[1]):
            dr[j] = gr[j] - fast_exp(yr[j]) * s


def _rows(*arrays: np.ndarray):
    """Each array as (rows, C) views, or None when the kernels do not handle them."""
    a = arrays[0]
    if (not same_float(*arrays) or a.ndim == 0 or a.size == 0
            or any(x.shape != a.shape or not x.flags.c_contiguous for x in arrays)):
        return None
    return [x.reshape(-1, a.shape[-1]) for x in arrays]


def _forward(kernel, x: np.ndarray):
    rows = _rows(x)
    if rows is None:
        return NotImplemented
    y = np.empty(x.shape, x.dtype)
    kernel(rows[0], y.reshape(rows[0].shape))
    return y


def _backward(kernel, g: np.ndarray, y: np.ndarray):
    rows = _rows(g, y)
    if rows is None:
        return NotImplemented
    dx = np.empty(g.shape, g.dtype)
    kernel(rows[0], rows[1], dx.reshape(rows[0].shape))
    return dx


def softmax_forward(x):
    return _forward(_softmax_rows, x)


def softmax_backward(g, y):
    return _backward(_softmax_backward_rows, g, y)


def log_softmax_forward(x):
    return _forward(_log_softmax_rows, x)


def log_softmax_backward(g, y):
    return _backward(_log_softmax_backward_rows, g, y)


NAMES = ("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward")
