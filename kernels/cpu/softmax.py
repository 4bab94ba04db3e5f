"""Threaded Numba twins of softmax and log_softmax over the last axis, forward and backward
(``kernels/reference/softmax.py``): one task per row, each row in two or three passes of the
vectorizing helpers of ``_fast_math`` (its max, its exp-sum, the scaling), where NumPy makes five
whole-array passes and four temporaries on one core. Below ``THREADED_MIN`` elements one thread runs
the same row functions, so a small softmax is one compiled call instead of NumPy's five.

Handled: float32 or float64 C-contiguous input with a last axis of at least one element. Anything
else returns NotImplemented and the reference runs.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, fast_log, row_dot, row_exp_sum, row_max, row_sum, row_sum_exp
from ._layout import FLOATS, dense

THREADED_MIN = 1 << 15  # elements: below, one thread (waking the others costs more than the rows)

# Each kernel is a row function and two drivers over the rows: threaded (prange) and one-thread (range).
# The drivers are written out: a closure or a function-typed argument would defeat Numba's cache.


@numba.njit(inline="always", cache=True, error_model="numpy")
def _softmax_row(xr, yr):  # pragma: no cover - compiled
    c = xr.shape[0]
    one = xr.dtype.type(1.0)
    m = row_max(xr, c)  # a NaN in the row makes every exp NaN below, as in the reference
    yr[:] = xr  # then exp and its sum in one pass, in place (~20% faster than exp, then a sum)
    inv = one / row_exp_sum(yr, c, one, m)
    for j in range(c):
        yr[j] *= inv


@numba.njit(inline="always", cache=True, error_model="numpy")
def _softmax_backward_row(gr, yr, dr):  # pragma: no cover - compiled
    s = row_dot(gr, yr, gr.shape[0])
    for j in range(gr.shape[0]):
        dr[j] = yr[j] * (gr[j] - s)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _log_softmax_row(xr, yr):  # pragma: no cover - compiled
    c = xr.shape[0]
    m = row_max(xr, c)
    lse = fast_log(row_sum_exp(xr, c, m))
    for j in range(c):
        yr[j] = (xr[j] - m) - lse


@numba.njit(inline="always", cache=True, error_model="numpy")
def _log_softmax_backward_row(gr, yr, dr):  # pragma: no cover - compiled
    s = row_sum(gr, gr.shape[0])
    for j in range(gr.shape[0]):
        dr[j] = gr[j] - fast_exp(yr[j]) * s


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _softmax_rows(x, y):  # pragma: no cover - compiled
    for r in numba.prange(x.shape[0]):
        _softmax_row(x[r], y[r])


@numba.njit(cache=True, error_model="numpy")
def _softmax_rows_1(x, y):  # pragma: no cover - compiled
    for r in range(x.shape[0]):
        _softmax_row(x[r], y[r])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _softmax_backward_rows(g, y, dx):  # pragma: no cover - compiled
    for r in numba.prange(g.shape[0]):
        _softmax_backward_row(g[r], y[r], dx[r])


@numba.njit(cache=True, error_model="numpy")
def _softmax_backward_rows_1(g, y, dx):  # pragma: no cover - compiled
    for r in range(g.shape[0]):
        _softmax_backward_row(g[r], y[r], dx[r])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_rows(x, y):  # pragma: no cover - compiled
    for r in numba.prange(x.shape[0]):
        _log_softmax_row(x[r], y[r])


@numba.njit(cache=True, error_model="numpy")
def _log_softmax_rows_1(x, y):  # pragma: no cover - compiled
    for r in range(x.shape[0]):
        _log_softmax_row(x[r], y[r])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_backward_rows(g, y, dx):  # pragma: no cover - compiled
    for r in numba.prange(g.shape[0]):
        _log_softmax_backward_row(g[r], y[r], dx[r])


@numba.njit(cache=True, error_model="numpy")
def _log_softmax_backward_rows_1(g, y, dx):  # pragma: no cover - compiled
    for r in range(g.shape[0]):
        _log_softmax_backward_row(g[r], y[r], dx[r])


# The wrappers below run on every softmax of the numba backend, tiny ones too (Backend.row_kernel_min_size
# is 0 there), so their checks are written out for speed: a tiny softmax costs about three of NumPy's calls.


def _forward(threaded, one_thread, x: np.ndarray):
    if not (x.dtype in FLOATS and x.flags.c_contiguous and x.ndim and x.size):
        return NotImplemented
    rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])  # (rows, C), a view
    y = np.empty(rows.shape, x.dtype)
    (threaded if x.size >= THREADED_MIN else one_thread)(rows, y)
    return y if x.ndim == 2 else y.reshape(x.shape)


def _backward(threaded, one_thread, g: np.ndarray, y: np.ndarray):
    if not g.flags.c_contiguous and g.shape == y.shape:  # a broadcast gradient, written out whole
        g = dense(g)
        if g is None:
            return NotImplemented
    if not (g.dtype in FLOATS and y.dtype == g.dtype and y.shape == g.shape and g.ndim and g.size
            and g.flags.c_contiguous and y.flags.c_contiguous):
        return NotImplemented
    shape = (-1, g.shape[-1])  # (rows, C) views
    dx = np.empty(g.shape, g.dtype)
    (threaded if g.size >= THREADED_MIN else one_thread)(g.reshape(shape), y.reshape(shape), dx.reshape(shape))
    return dx


def softmax_forward(x):
    return _forward(_softmax_rows, _softmax_rows_1, x)


def softmax_backward(g, y):
    return _backward(_softmax_backward_rows, _softmax_backward_rows_1, g, y)


def log_softmax_forward(x):
    return _forward(_log_softmax_rows, _log_softmax_rows_1, x)


def log_softmax_backward(g, y):
    return _backward(_log_softmax_backward_rows, _log_softmax_backward_rows_1, g, y)


NAMES = ("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward")
