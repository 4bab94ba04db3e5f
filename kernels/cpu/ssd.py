"""Numba chunked SSD (Mamba2 / Mamba3), forward and a hand-written backward that runs the chunk-to-chunk
recurrence in reverse. Held to kernels/reference/ssd.py by tests/test_kernels_mamba.py.

One task per (batch row, head), split over the threads. A task holds its head's (P, N) state and walks
the chunks: inside a chunk it forms the causal quadratic form row by row (dot products over N, then
multiply-adds over P, skipping the masked upper triangle the reference multiplies by zero), adds what the
chunk's start state contributes, and moves the state on. Nothing of size (Q, Q) per chunk survives the
chunk: the backward recomputes the decays and C.B products from the inputs and the saved chunk-start states.

Inner loops run over P or N contiguously (multiply-adds vectorize as they are; the dot products use the
reassociating ``row_dot``). B and C of a group are read by each of its heads; their gradients are written
per head and summed over each group's heads afterwards, so no two threads write one element.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, row_dot


@numba.njit(nogil=True, cache=True)
def _decays(a, b, hh, t0, ln, E, L):  # pragma: no cover - compiled
    # E[l] = exp(a_0 + .. + a_l); L[l, s] = exp(a_{s+1} + .. + a_l) for s <= l (summed directly, not differenced)
    cum = a.dtype.type(0.0)
    for l in range(ln):
        cum += a[b, t0 + l, hh]
        E[l] = fast_exp(cum)
    for s in range(ln):
        acc = a.dtype.type(0.0)
        L[s, s] = 0.0
        for l in range(s + 1, ln):
            acc += a[b, t0 + l, hh]
            L[l, s] = acc
    for l in range(ln):
        row = L[l]
        for s in range(l + 1):
            row[s] = fast_exp(row[s])


@numba.njit(parallel=True, cache=True)
def _forward(x, a, B, C, h0, has_h0, q, y, last, starts):  # pragma: no cover - compiled
    bt, t_len, r, h, p = x.shape
    g, n = B.shape[3], B.shape[4]
    rep = h // g
    nc = starts.shape[1]
    for task in numba.prange(bt * h):
        b, hh = task // h, task % h
        gg = hh // rep
        S = np.zeros((p, n), dtype=x.dtype)
        if has_h0:
            S[:, :] = h0[b, hh]
        E = np.empty(q, dtype=x.dtype)
        L = np.zeros((q, q), dtype=x.dtype)
        for c in range(nc):
            t0 = c * q
            ln = min(q, t_len - t0)
            starts[b, c, hh] = S
            _decays(a, b, hh, t0, ln, E, L)
            for l in range(ln):
                for ri in range(r):
                    yr, ci = y[b, t0 + l, ri, hh], C[b, t0 + l, ri, gg]
                    el = E[l]
                    for pp in range(p):                                 # what the start state says
                        yr[pp] = el * row_dot(S[pp], ci, n)
                    for s in range(l + 1):                              # the causal quadratic form
                        ls = L[l, s]
                        for rj in range(r):
                            coef = row_dot(ci, B[b, t0 + s, rj, gg], n) * ls
                            xr = x[b, t0 + s, rj, hh]
                            for pp in range(p):
                                yr[pp] += coef * xr[pp]
            decay = E[ln - 1]
            for pp in range(p):
                for k in range(n):
                    S[pp, k] *= decay
            for s in range(ln):
                ws = L[ln - 1, s]
                for rj in range(r):
                    xr, br = x[b, t0 + s, rj, hh], B[b, t0 + s, rj, gg]
                    for pp in range(p):
                        f = ws * xr[pp]
                        srow = S[pp]
                        for k in range(n):
                            srow[k] += f * br[k]
        last[b, hh] = S


@numba.njit(nogil=True, cache=True)
def _decay_grads(dseg, dE, ddecay, ln, da):  # pragma: no cover - compiled
    # seg[l, s] sums a_i over s < i <= l; E_l over i <= l; the chunk decay over all i
    for i in range(ln):
        da[i] = 0.0
    for l in range(ln):
        run = dseg.dtype.type(0.0)
        for i in range(l + 1):
            da[i] += run
            run += dseg[l, i]
    acc = dE.dtype.type(0.0)
    for i in range(ln - 1, -1, -1):
        acc += dE[i]
        da[i] += acc + ddecay


@numba.njit(nogil=True, cache=True)
def _state_grads(x, B, dS, L, b, hh, gg, t0, ln, dx, dBh, dW):  # pragma: no cover - compiled
    # The chunk's end state takes sum_s W_s x_s B_s^T (W_s = L[ln-1, s]); dS is dL/d(end state).
    r, p, n = x.shape[2], x.shape[4], B.shape[4]
    v = np.empty(p, dtype=x.dtype)
    for s in range(ln):
        ws = L[ln - 1, s]
        dW[s] = 0.0
        for rj in range(r):
            xr, br = x[b, t0 + s, rj, hh], B[b, t0 + s, rj, gg]
            dxr, dbr = dx[b, t0 + s, rj, hh], dBh[b, t0 + s, rj, hh]
            for pp in range(p):
                v[pp] = row_dot(dS[pp], br, n)
            for pp in range(p):
                dxr[pp] = ws * v[pp]
            dW[s] += row_dot(xr, v, p)
            for k in range(n):
                dbr[k] = 0.0
            for pp in range(p):
                f = ws * xr[pp]
                dsr = dS[pp]
                for k in range(n):
                    dbr[k] += f * dsr[k]


@numba.njit(parallel=True, cache=True)
def _backward(g, x, a, B, C, q, starts, dx, da, dBh, dCh):  # pragma: no cover - compiled
    bt, t_len, r, h, p = x.shape
    g_, n = B.shape[3], B.shape[4]
    rep = h // g_
    nc = starts.shape[1]
    for task in numba.prange(bt * h):
        b, hh = task // h, task % h
        gg = hh // rep
        dS = np.zeros((p, n), dtype=x.dtype)       # dL/d(state at the end of the chunk being done)
        dH = np.empty((p, n), dtype=x.dtype)
        yoff = np.empty(p, dtype=x.dtype)
        E = np.empty(q, dtype=x.dtype)
        L = np.zeros((q, q), dtype=x.dtype)
        dseg = np.zeros((q, q), dtype=x.dtype)
        dE = np.empty(q, dtype=x.dtype)
        dW = np.empty(q, dtype=x.dtype)
        dac = np.empty(q, dtype=x.dtype)
        for c in range(nc - 1, -1, -1):
            t0 = c * q
            ln = min(q, t_len - t0)
            S = starts[b, c, hh]
            _decays(a, b, hh, t0, ln, E, L)
            decay = E[ln - 1]
            ddecay = x.dtype.type(0.0)
            for pp in range(p):
                ddecay += row_dot(dS[pp], S[pp], n)
            ddecay *= decay
            _state_grads(x, B, dS, L, b, hh, gg, t0, ln, dx, dBh, dW)
            dH[:, :] = 0.0
            for l in range(ln):
                dE[l] = 0.0
                for s in range(l + 1):
                    dseg[l, s] = 0.0
                el = E[l]
                for ri in range(r):
                    gi, ci, dci = g[b, t0 + l, ri, hh], C[b, t0 + l, ri, gg], dCh[b, t0 + l, ri, hh]
                    for pp in range(p):                                 # y_i += E_l S c_i
                        yoff[pp] = row_dot(S[pp], ci, n)
                    dE[l] += el * row_dot(gi, yoff, p)
                    for k in range(n):
                        dci[k] = 0.0
                    for pp in range(p):
                        f = el * gi[pp]
                        sr, dhr = S[pp], dH[pp]
                        for k in range(n):
                            dci[k] += f * sr[k]
                            dhr[k] += f * ci[k]
                    for s in range(l + 1):                              # y_i += sum_j (c_i . b_j) L x_j
                        ls = L[l, s]
                        for rj in range(r):
                            bj, xj = B[b, t0 + s, rj, gg], x[b, t0 + s, rj, hh]
                            dxj, dbj = dx[b, t0 + s, rj, hh], dBh[b, t0 + s, rj, hh]
                            m = row_dot(ci, bj, n) * ls
                            dm = row_dot(gi, xj, p)
                            for pp in range(p):
                                dxj[pp] += m * gi[pp]
                            dcb = dm * ls
                            for k in range(n):
                                dci[k] += dcb * bj[k]
                                dbj[k] += dcb * ci[k]
                            dseg[l, s] += dm * m
            for s in range(ln):
                dseg[ln - 1, s] += dW[s] * L[ln - 1, s]
            _decay_grads(dseg, dE, ddecay, ln, dac)
            for i in range(ln):
                da[b, t0 + i, hh] = dac[i]
            for pp in range(p):                                         # back to the previous chunk's end
                for k in range(n):
                    dS[pp, k] = dH[pp, k] + decay * dS[pp, k]


def _supported(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _c(a):
    return np.ascontiguousarray(a)


def ssd_forward(x, a, B, C, chunk, h0):
    if not _supported(x, a, B, C) or (h0 is not None and h0.dtype != x.dtype):
        return NotImplemented
    bt, t, r, h, p = x.shape
    n = B.shape[-1]
    y = np.empty(x.shape, dtype=x.dtype)
    last = np.empty((bt, h, p, n), dtype=x.dtype)
    starts = np.empty((bt, -(-t // chunk), h, p, n), dtype=x.dtype)
    has_h0 = h0 is not None
    h0 = _c(h0) if has_h0 else np.zeros((1, 1, 1, 1), dtype=x.dtype)
    _forward(_c(x), _c(a), _c(B), _c(C), h0, has_h0, int(chunk), y, last, starts)
    return y, last, starts


def ssd_backward(g, x, a, B, C, chunk, starts):
    if not _supported(g, x, a, B, C, starts):
        return NotImplemented
    bt, t, r, h, p = x.shape
    grp, n = B.shape[3], B.shape[4]
    dx = np.empty(x.shape, dtype=x.dtype)
    da = np.empty(a.shape, dtype=x.dtype)
    dBh = np.empty((bt, t, r, h, n), dtype=x.dtype)
    dCh = np.empty((bt, t, r, h, n), dtype=x.dtype)
    _backward(_c(g), _c(x), _c(a), _c(B), _c(C), int(chunk), _c(starts), dx, da, dBh, dCh)
    if grp != h:  # each group's B and C served h / G heads
        dBh = dBh.reshape(bt, t, r, grp, h // grp, n).sum(axis=4)
        dCh = dCh.reshape(bt, t, r, grp, h // grp, n).sum(axis=4)
    return dx, da, dBh, dCh
