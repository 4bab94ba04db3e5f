"""Numba causal depthwise conv1d (channels-last), with the SiLU fused: one pass over the rows instead of
the reference's K shifted whole-array sweeps. Held to kernels/reference/causal_conv1d.py by
tests/test_kernels_mamba.py. The input is usually a column block of the in-projection's output; it
arrives as a flat buffer plus a row stride (``_layout``) so the channel loops vectorize.

The SiLU is v / (1 + exp(-v)) with the vectorizable exp; the reference's v (1 + tanh(v / 2)) / 2 is the
same function, to a few ulp.
"""

from __future__ import annotations

import numba
import numpy as np

from ._blas_threads import n_threads
from ._fast_math import fast_exp
from ._layout import as_rows


@numba.njit(nogil=True, cache=True)
def _conv_row(xf, ldx, i0, t, wt, bias, out):  # pragma: no cover - compiled
    # out = bias + sum_k wt[k] * x[row i0 + t - K + 1 + k] (rows before i0, the batch row's start, are zeros)
    k, c = wt.shape
    for j in range(c):
        out[j] = bias[j]
    for kk in range(k):
        tt = t - k + 1 + kk
        if tt >= 0:
            r = (i0 + tt) * ldx
            xr, w = xf[r:r + c], wt[kk]
            for j in range(c):
                out[j] += w[j] * xr[j]


@numba.njit(parallel=True, cache=True)
def _forward(xf, ldx, bsz, t_len, wt, bias, silu, y):  # pragma: no cover - compiled
    one = y.dtype.type(1.0)
    for i in numba.prange(bsz * t_len):
        b = i // t_len
        yr = y[i]
        _conv_row(xf, ldx, b * t_len, i - b * t_len, wt, bias, yr)
        if silu:
            for j in range(yr.shape[0]):
                v = yr[j]
                yr[j] = v / (one + fast_exp(-v))


@numba.njit(parallel=True, cache=True)
def _dpre(xf, ldx, gf, ldg, bsz, t_len, wt, bias, silu, gp):  # pragma: no cover - compiled
    # gp = dL/d(pre-activation): g itself, or g * silu'(pre) with pre recomputed
    one = gp.dtype.type(1.0)
    c = wt.shape[1]
    for i in numba.prange(bsz * t_len):
        b = i // t_len
        gr, out = gf[i * ldg:i * ldg + c], gp[i]
        if silu:
            _conv_row(xf, ldx, b * t_len, i - b * t_len, wt, bias, out)
            for j in range(c):
                s = one / (one + fast_exp(-out[j]))
                out[j] = gr[j] * (s * (one + out[j] * (one - s)))
        else:
            for j in range(c):
                out[j] = gr[j]


@numba.njit(parallel=True, cache=True)
def _backward(xf, ldx, gp, bsz, t_len, wt, dx, dw_parts, db_parts):  # pragma: no cover - compiled
    k, c = wt.shape
    n = bsz * t_len
    parts = dw_parts.shape[0]
    per = (n + parts - 1) // parts
    for part in numba.prange(parts):
        dw, db = dw_parts[part], db_parts[part]   # this part's share of dL/dw, dL/dbias (float64)
        for i in range(part * per, min(n, (part + 1) * per)):
            b = i // t_len
            t = i - b * t_len
            dxr = dx[i]
            for j in range(c):
                dxr[j] = 0.0
            for kk in range(k):
                # y[t'] takes w[kk] x[t' - K + 1 + kk]: x[t] feeds y[t + K - 1 - kk], and w[kk] pairs g[t]
                # with x[t - K + 1 + kk]
                tt = t + k - 1 - kk
                if tt < t_len:
                    g_r, w = gp[b * t_len + tt], wt[kk]
                    for j in range(c):
                        dxr[j] += w[j] * g_r[j]
                ts = t - k + 1 + kk
                if ts >= 0:
                    r = (b * t_len + ts) * ldx
                    xr, gr, acc = xf[r:r + c], gp[i], dw[kk]
                    for j in range(c):
                        acc[j] += gr[j] * xr[j]
            gr = gp[i]
            for j in range(c):
                db[j] += gr[j]


def _rows(x: np.ndarray):
    """(flat, ld) of x (B, T, C)'s rows, or None if they are not evenly spaced contiguous runs."""
    return as_rows(x, x.shape[2]) if x.ndim == 3 and x.size else None


def _supported(x, w):
    return x.dtype in (np.float32, np.float64) and w.dtype == x.dtype and x.ndim == 3 and x.size


def causal_conv1d_forward(x, w, bias, silu):
    rows = _rows(x) if _supported(x, w) else None
    if rows is None:
        return NotImplemented
    bsz, t, c = x.shape
    b = np.zeros(c, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    y = np.empty((bsz * t, c), dtype=x.dtype)
    _forward(rows[0], rows[1], bsz, t, np.ascontiguousarray(w.T), b, bool(silu), y)
    return y.reshape(x.shape)


def causal_conv1d_backward(g, x, w, bias, silu):
    rows, grows = (_rows(x), _rows(g)) if _supported(x, w) and g.dtype == x.dtype else (None, None)
    if rows is None or grows is None:
        return NotImplemented
    bsz, t, c = x.shape
    wt = np.ascontiguousarray(w.T)                                        # (K, C)
    b = np.zeros(c, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    gp = np.empty((bsz * t, c), dtype=x.dtype)
    _dpre(rows[0], rows[1], grows[0], grows[1], bsz, t, wt, b, bool(silu), gp)
    dx = np.empty((bsz * t, c), dtype=x.dtype)
    parts = max(1, min(n_threads(), bsz * t))
    dw_parts = np.zeros((parts, w.shape[1], c))
    db_parts = np.zeros((parts, c))
    _backward(rows[0], rows[1], gp, bsz, t, wt, dx, dw_parts, db_parts)
    dw = dw_parts.sum(axis=0).T.astype(w.dtype)
    db = None if bias is None else db_parts.sum(axis=0).astype(x.dtype)
    return dx.reshape(x.shape), dw, db
