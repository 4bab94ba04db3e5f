"""Numba RMSNorm, forward and backward: one pass per row instead of the reference's
several whole-array sweeps. Held to kernels/reference/rms_norm.py by tests/test_kernels_cpu.py.
float32 and float64 only; other dtypes return NotImplemented (the backend runs the reference)."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._fast_math import row_dot, row_dot3
from ._layout import same_float


@numba.njit(parallel=True, cache=True)
def _forward_rows(x, w, eps, y, rstd):  # pragma: no cover - compiled
    n, d = x.shape
    for i in numba.prange(n):
        mean_sq = row_dot(x[i], x[i], d) / d
        r = x.dtype.type(1.0 / math.sqrt(mean_sq + eps))
        rstd[i] = r
        for j in range(d):
            y[i, j] = x[i, j] * r * w[j]


@numba.njit(parallel=True, cache=True)
def _backward_rows(g, x, w, rstd, gx, gw_parts):  # pragma: no cover - compiled
    n, d = x.shape
    n_parts = gw_parts.shape[0]
    rows_per_part = (n + n_parts - 1) // n_parts
    for part in numba.prange(n_parts):
        acc = gw_parts[part]  # this part's share of dL/dw, in float64
        for i in range(part * rows_per_part, min(n, (part + 1) * rows_per_part)):
            r = rstd[i]
            # c = mean(g * w * xhat) with xhat = x * r: the projection onto xhat that backward removes
            c = row_dot3(g[i], w, x[i], d) * r / d
            c = x.dtype.type(c)
            for j in range(d):
                xhat = x[i, j] * r
                acc[j] += g[i, j] * xhat
                gx[i, j] = r * (g[i, j] * w[j] - xhat * c)


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])  # (..., D) -> (N, D); a view when the layout allows


def rms_norm_forward(x: np.ndarray, w: np.ndarray, eps: float):
    if not same_float(x) or x.size == 0:
        return NotImplemented
    x2 = _rows(x)
    y = np.empty(x2.shape, dtype=x.dtype)
    rstd = np.empty(x2.shape[0], dtype=x.dtype)
    _forward_rows(x2, w.astype(x.dtype, copy=False), float(eps), y, rstd)
    return y.reshape(x.shape), rstd.reshape(*x.shape[:-1], 1)


def rms_norm_backward(g: np.ndarray, x: np.ndarray, w: np.ndarray, rstd: np.ndarray):
    if not same_float(x, g, rstd) or x.size == 0:
        return NotImplemented
    x2, g2 = _rows(x), _rows(g)
    gx = np.empty(x2.shape, dtype=x.dtype)
    n_parts = max(1, min(numba.get_num_threads(), x2.shape[0]))
    gw_parts = np.zeros((n_parts, x2.shape[1]), dtype=np.float64)
    _backward_rows(g2, x2, w.astype(x.dtype, copy=False), rstd.reshape(-1), gx, gw_parts)
    return gx.reshape(x.shape), gw_parts.sum(axis=0).astype(w.dtype)
