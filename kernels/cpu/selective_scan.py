"""Numba selective scan (Mamba1), forward and a hand-written backward that runs the recurrence in reverse.
Held to kernels/reference/selective_scan.py by tests/test_kernels_mamba.py.

Work is split into (batch row, block of W channels) tasks over the threads. A task keeps its block's
state h (N, W) in cache and walks the sequence once; the loops over the W channels are the inner ones, so
exp(delta A) (the vectorizable ``fast_exp``) and the state update run W lanes wide. The forward stores the
state at the start of every ``chunk`` steps (as the reference does); the backward recomputes one chunk's
states and decays from there into a (chunk, N, W) buffer, then walks the chunk backwards. So the scan costs
2 exp() per (step, channel, state entry) in all, forward plus backward: the floor bench/scan.py measures
against.

B and C are shared by the channels, so their gradients are sums over all channel blocks: each block writes
its own partial sums and they are added up afterwards (no two threads write one element).
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, row_dot

W = 64  # channels per task. The lane loops run exactly W times (the last block is zero-padded), so LLVM
#        vectorizes them without a remainder loop; a task's chunk buffers stay within L2.


@numba.njit(parallel=True, cache=True)
def _forward(u, delta, At, B, C, h0, has_h0, chunk, y, last, starts):  # pragma: no cover - compiled
    # At: A transposed and zero-padded to (N, blocks * W)
    bt, t_len, d = u.shape
    n = At.shape[0]
    nb = (d + W - 1) // W
    for task in numba.prange(bt * nb):
        b, d0 = task // nb, (task % nb) * W
        w = min(W, d - d0)
        h = np.zeros((n, W), dtype=u.dtype)
        if has_h0:
            for k in range(n):
                for j in range(w):
                    h[k, j] = h0[b, d0 + j, k]
        dl, du, acc = np.zeros(W, dtype=u.dtype), np.zeros(W, dtype=u.dtype), np.empty(W, dtype=u.dtype)
        for t in range(t_len):
            if t % chunk == 0:
                for k in range(n):
                    for j in range(w):
                        starts[b, t // chunk, d0 + j, k] = h[k, j]
            dsrc, usrc = delta[b, t, d0:d0 + w], u[b, t, d0:d0 + w]
            for j in range(w):
                dl[j] = dsrc[j]
                du[j] = dsrc[j] * usrc[j]
            for j in range(W):
                acc[j] = 0.0
            for k in range(n):
                bk, ck = B[b, t, k], C[b, t, k]
                a, hk = At[k, d0:d0 + W], h[k]
                for j in range(W):
                    hk[j] = fast_exp(dl[j] * a[j]) * hk[j] + du[j] * bk
                    acc[j] += hk[j] * ck
            y[b, t, d0:d0 + w] = acc[:w]
        for k in range(n):
            for j in range(w):
                last[b, d0 + j, k] = h[k, j]


@numba.njit(nogil=True, cache=True)
def _recompute_chunk(u, delta, At, B, starts, b, c, d0, w, t0, t1, hs, decay, dls, dus, us
                     ):  # pragma: no cover - compiled
    # hs[i] = h before step t0 + i (i = 0 .. L), decay[i] = exp(delta A) of step t0 + i, both (., N, W);
    # dls, dus, us: that step's delta, delta * u and u (W,)
    n = At.shape[0]
    for k in range(n):
        for j in range(w):
            hs[0, k, j] = starts[b, c, d0 + j, k]
    for i in range(t1 - t0):
        t = t0 + i
        dsrc, usrc = delta[b, t, d0:d0 + w], u[b, t, d0:d0 + w]
        dl, du, uu = dls[i], dus[i], us[i]
        for j in range(w):
            dl[j] = dsrc[j]
            uu[j] = usrc[j]
            du[j] = dsrc[j] * usrc[j]
        for k in range(n):
            bk = B[b, t, k]
            a, e, hp, hn = At[k, d0:d0 + W], decay[i, k], hs[i, k], hs[i + 1, k]
            for j in range(W):
                e[j] = fast_exp(dl[j] * a[j])
                hn[j] = e[j] * hp[j] + du[j] * bk


@numba.njit(parallel=True, cache=True)
def _backward(g, u, delta, At, B, C, starts, chunk, du_out, ddelta, dAt_parts, dB_parts, dC_parts
              ):  # pragma: no cover - compiled
    bt, t_len, d = u.shape
    n = At.shape[0]
    nb = (d + W - 1) // W
    nc = starts.shape[1]
    for task in numba.prange(bt * nb):
        b, blk = task // nb, task % nb
        d0 = blk * W
        w = min(W, d - d0)
        hs = np.zeros((chunk + 1, n, W), dtype=u.dtype)
        decay = np.zeros((chunk, n, W), dtype=u.dtype)
        dls, dus, us = np.zeros((chunk, W), dtype=u.dtype), np.zeros((chunk, W), dtype=u.dtype), \
            np.zeros((chunk, W), dtype=u.dtype)
        dh, dA = np.zeros((n, W), dtype=u.dtype), np.zeros((n, W), dtype=u.dtype)
        gr = np.zeros(W, dtype=u.dtype)
        s_dh_b, s_dda, tmp = np.empty(W, dtype=u.dtype), np.empty(W, dtype=u.dtype), np.empty(W, dtype=u.dtype)
        for c in range(nc - 1, -1, -1):
            t0, t1 = c * chunk, min(t_len, (c + 1) * chunk)
            _recompute_chunk(u, delta, At, B, starts, b, c, d0, w, t0, t1, hs, decay, dls, dus, us)
            for i in range(t1 - t0 - 1, -1, -1):
                t = t0 + i
                gsrc = g[b, t, d0:d0 + w]
                for j in range(w):
                    gr[j] = gsrc[j]
                dl, du, uu = dls[i], dus[i], us[i]
                for j in range(W):
                    s_dh_b[j] = 0.0
                    s_dda[j] = 0.0
                for k in range(n):
                    ck, bk = C[b, t, k], B[b, t, k]
                    dhk, hk, hp, e, a, dak = dh[k], hs[i + 1, k], hs[i, k], decay[i, k], At[k, d0:d0 + W], dA[k]
                    dC_parts[blk, b, t, k] = row_dot(gr, hk, W)         # dL/dC_t sums g h over the channels
                    for j in range(W):
                        dhk[j] += gr[j] * ck
                    dB_parts[blk, b, t, k] = row_dot(dhk, du, W)
                    for j in range(W):
                        s_dh_b[j] += dhk[j] * bk
                        tmp[j] = dhk[j] * hp[j] * e[j]                  # dL/d(delta A) of this entry
                        s_dda[j] += tmp[j] * a[j]
                        dak[j] += tmp[j] * dl[j]
                        dhk[j] *= e[j]                                  # carried back to step t - 1
                for j in range(w):
                    du_out[b, t, d0 + j] = s_dh_b[j] * dl[j]
                    ddelta[b, t, d0 + j] = s_dda[j] + s_dh_b[j] * uu[j]
        for k in range(n):
            for j in range(w):
                dAt_parts[b, k, d0 + j] = dA[k, j]


def _padded_At(A: np.ndarray) -> np.ndarray:
    """A (D, N) as (N, ceil(D / W) * W), zeros in the padding (their lanes compute and are dropped)."""
    d, n = A.shape
    At = np.zeros((n, -(-d // W) * W), dtype=A.dtype)
    At[:, :d] = A.T
    return At


def _supported(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def selective_scan_forward(u, delta, A, B, C, h0, chunk):
    if not _supported(u, delta, A, B, C) or (h0 is not None and h0.dtype != u.dtype):
        return NotImplemented
    bt, t, d = u.shape
    n = A.shape[1]
    y = np.empty((bt, t, d), dtype=u.dtype)
    last = np.empty((bt, d, n), dtype=u.dtype)
    starts = np.empty((bt, -(-t // chunk), d, n), dtype=u.dtype)
    has_h0 = h0 is not None
    h0 = np.ascontiguousarray(h0) if has_h0 else np.zeros((1, 1, 1), dtype=u.dtype)
    _forward(np.ascontiguousarray(u), np.ascontiguousarray(delta), _padded_At(A), np.ascontiguousarray(B),
             np.ascontiguousarray(C), h0, has_h0, int(chunk), y, last, starts)
    return y, last, starts


def selective_scan_backward(g, u, delta, A, B, C, starts, chunk):
    if not _supported(g, u, delta, A, B, C, starts):
        return NotImplemented
    bt, t, d = u.shape
    n = A.shape[1]
    nb = -(-d // W)
    du = np.empty((bt, t, d), dtype=u.dtype)
    ddelta = np.empty((bt, t, d), dtype=u.dtype)
    dAt_parts = np.empty((bt, n, d), dtype=u.dtype)
    dB_parts = np.empty((nb, bt, t, n), dtype=u.dtype)
    dC_parts = np.empty((nb, bt, t, n), dtype=u.dtype)
    _backward(np.ascontiguousarray(g), np.ascontiguousarray(u), np.ascontiguousarray(delta),
              _padded_At(A), np.ascontiguousarray(B), np.ascontiguousarray(C),
              np.ascontiguousarray(starts), int(chunk), du, ddelta, dAt_parts, dB_parts, dC_parts)
    return du, ddelta, dAt_parts.sum(axis=0).T.copy(), dB_parts.sum(axis=0), dC_parts.sum(axis=0)
