"""Fast chunked SSD (Mamba2 / Mamba3), forward and a hand-written backward that runs the chunk-to-chunk
recurrence in reverse. Held to kernels/reference/ssd.py by tests/test_kernels_mamba.py.

The work is small matrix products, (Q R) x N x (Q R) and alike per (batch, chunk, head), so they stay BLAS
products (OpenBLAS beats any loop nest Numba emits); Numba fuses everything between them in one pass each:
the causal decay mask from the step sizes (exp of directly summed segments), the masked form M = (C B^T) * L,
the chunk-end weights, the final combination and the layout changes. Three things make it cheaper than the
reference:

* C B^T is formed once per group of heads, not once per head (Mamba2's one group serves all its heads), and
  in the backward the heads' gradients of it are summed before the products with B and C;
* the decay mask is built in place from running sums (no (Q, Q) cumulative sums over a strided axis, no
  full-square exp);
* our own threads: the batch rows are split into one slab per thread, and each thread runs its slab's
  products on a single-threaded BLAS (``_blas_threads``), one thread handoff per call instead of one per
  small product.

Nothing of size (Q, Q) per chunk is kept from the forward: the backward rebuilds the mask and C B^T from the
inputs and the saved chunk-start states.
"""

from __future__ import annotations

import numba
import numpy as np

from ._blas_threads import blas_single_thread, n_threads, run_parallel
from ._fast_math import fast_exp, row_dot

# ---- Numba passes between the products ---------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _to_chunks(v, q, out):  # pragma: no cover - compiled
    # v (b, T, R, K, D) -> out (b, nc, K, Q*R, D), rows (step, rank), zero past the end
    b_, t_len, r, k_, d = v.shape
    nc = out.shape[1]
    for b in range(b_):
        for c in range(nc):
            for k in range(k_):
                for l in range(q):
                    t = c * q + l
                    for ri in range(r):
                        row = out[b, c, k, l * r + ri]
                        if t < t_len:
                            src = v[b, t, ri, k]
                            for j in range(d):
                                row[j] = src[j]
                        else:
                            for j in range(d):
                                row[j] = 0.0


@numba.njit(nogil=True, cache=True)
def _from_chunks(v, t_len, out):  # pragma: no cover - compiled
    # v (b, nc, K, Q*R, D) -> out (b, T, R, K, D): the inverse of _to_chunks, dropping the padding
    b_, nc, k_, qr, d = v.shape
    r = out.shape[2]
    q = qr // r
    for b in range(b_):
        for t in range(t_len):
            c, l = t // q, t % q
            for ri in range(r):
                for k in range(k_):
                    src, dst = v[b, c, k, l * r + ri], out[b, t, ri, k]
                    for j in range(d):
                        dst[j] = src[j]


@numba.njit(nogil=True, cache=True)
def _decays(a, q, L, E):  # pragma: no cover - compiled
    # L[b, c, h, l, s] = exp(a_{s+1} + .. + a_l) for s <= l (else 0); E[b, c, h, l] = exp(a_0 + .. + a_l)
    b_, t_len, h_ = a.shape
    nc = L.shape[1]
    zero = a.dtype.type(0.0)
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                Lm, e = L[b, c, h], E[b, c, h]
                cum = zero
                for l in range(q):
                    t = c * q + l
                    step = a[b, t, h] if t < t_len else zero
                    cum += step
                    e[l] = fast_exp(cum)
                    row, prev = Lm[l], Lm[l - 1]
                    if l == 0:
                        row[0] = zero
                    else:
                        for s in range(l):  # seg[l, s] = seg[l-1, s] + a_l, summed, not differenced
                            row[s] = prev[s] + step
                        row[l] = zero
                for l in range(q - 1, -1, -1):  # exp in place (rows hold sums until here), zero above
                    row = Lm[l]
                    for s in range(l + 1):
                        row[s] = fast_exp(row[s])
                    for s in range(l + 1, q):
                        row[s] = zero


@numba.njit(nogil=True, cache=True)
def _masked(CB, L, r, M):  # pragma: no cover - compiled
    # M[b, c, h] = CB[b, c, group(h)] * L[b, c, h] with L read per step (rows and columns are (step, rank))
    b_, nc, h_, qr, _ = M.shape
    rep = h_ // CB.shape[2]
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                cb, lm, m = CB[b, c, h // rep], L[b, c, h], M[b, c, h]
                for i in range(qr):
                    lrow, crow, mrow = lm[i // r], cb[i], m[i]
                    if r == 1:  # the common case, vectorized (j // r would stop that)
                        for j in range(qr):
                            mrow[j] = crow[j] * lrow[j]
                    else:
                        for j in range(qr):
                            mrow[j] = crow[j] * lrow[j // r]


@numba.njit(nogil=True, cache=True)
def _row_scaled(X, L, r, out):  # pragma: no cover - compiled
    # out[b, c, h, (s, r)] = X[...] * W_s, W_s = L[b, c, h, Q-1, s]: the weight of step s in the chunk's end state
    b_, nc, h_, qr, d = X.shape
    q = qr // r
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                w = L[b, c, h, q - 1]
                for i in range(qr):
                    ws, src, dst = w[i // r], X[b, c, h, i], out[b, c, h, i]
                    for j in range(d):
                        dst[j] = src[j] * ws


@numba.njit(nogil=True, cache=True)
def _combine(Y, Yoff, E, r, t_len, y):  # pragma: no cover - compiled
    # y[b, t, r, h] = Y + E_l * Yoff (intra-chunk + what the start state says), back in (b, T, R, H, P)
    b_, nc, h_, qr, p = Y.shape
    q = qr // r
    for b in range(b_):
        for t in range(t_len):
            c, l = t // q, t % q
            for ri in range(r):
                i = l * r + ri
                for h in range(h_):
                    e, src, off, dst = E[b, c, h, l], Y[b, c, h, i], Yoff[b, c, h, i], y[b, t, ri, h]
                    for j in range(p):
                        dst[j] = src[j] + e * off[j]


@numba.njit(nogil=True, cache=True)
def _states(S, decay, h0, has_h0, starts, last):  # pragma: no cover - compiled
    # starts[:, c] = state before chunk c; state_{c+1} = decay_c state_c + S_c
    b_, nc, h_, p, n = S.shape
    for b in range(b_):
        for h in range(h_):
            st = np.zeros((p, n), dtype=S.dtype)
            if has_h0:
                st[:, :] = h0[b, h]
            for c in range(nc):
                starts[b, c, h] = st
                dc, s = decay[b, c, h], S[b, c, h]
                for i in range(p):
                    for k in range(n):
                        st[i, k] = dc * st[i, k] + s[i, k]
            last[b, h] = st


# ---- the forward -------------------------------------------------------------------------------------

def _group_view(v, g):
    """(b, nc, H, m, k) -> (b, nc, G, H/G, m, k): heads by group, for products broadcast over a group's B or C."""
    b, nc, h, m, k = v.shape
    return v.reshape(b, nc, g, h // g, m, k)


def _chunked(x, a, B, C, q):
    """The slab's inputs in chunk layout, its decays, and C B^T per group."""
    b, t, r, h, p = x.shape
    g, n = B.shape[3], B.shape[4]
    nc = -(-t // q)
    Xc = np.empty((b, nc, h, q * r, p), dtype=x.dtype)
    Bc = np.empty((b, nc, g, q * r, n), dtype=x.dtype)
    Cc = np.empty((b, nc, g, q * r, n), dtype=x.dtype)
    for v, out in ((x, Xc), (B, Bc), (C, Cc)):
        _to_chunks(v, q, out)
    L = np.empty((b, nc, h, q, q), dtype=x.dtype)
    E = np.empty((b, nc, h, q), dtype=x.dtype)
    _decays(a, q, L, E)
    return Xc, Bc, Cc, L, E, Cc @ Bc.swapaxes(-1, -2)                       # CB (b, nc, G, QR, QR)


def _forward_slab(x, a, B, C, q, h0, y, last, starts):
    b, t, r, h, p = x.shape
    g = B.shape[3]
    Xc, Bc, Cc, L, E, CB = _chunked(x, a, B, C, q)
    M = np.empty(Xc.shape[:3] + (q * r, q * r), dtype=x.dtype)
    _masked(CB, L, r, M)
    Y = M @ Xc                                                              # within each chunk
    Xw = np.empty_like(Xc)
    _row_scaled(Xc, L, r, Xw)
    S = (_group_view(Xw, g).swapaxes(-1, -2) @ Bc[:, :, :, None]).reshape(Xc.shape[:3] + (p, B.shape[4]))
    _states(S, np.ascontiguousarray(E[..., -1]), h0 if h0 is not None else S[:, 0], h0 is not None, starts, last)
    Yoff = (Cc[:, :, :, None] @ _group_view(starts, g).swapaxes(-1, -2)).reshape(Y.shape)
    _combine(Y, Yoff, E, r, t, y)


def _slabs(bt: int) -> list[slice]:
    parts = max(1, min(n_threads(), bt))
    edges = [round(i * bt / parts) for i in range(parts + 1)]
    return [slice(edges[i], edges[i + 1]) for i in range(parts)]


def _supported(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _c(a):
    return np.ascontiguousarray(a)


def ssd_forward(x, a, B, C, chunk, h0):
    if not _supported(x, a, B, C) or (h0 is not None and h0.dtype != x.dtype):
        return NotImplemented
    x, a, B, C = _c(x), _c(a), _c(B), _c(C)
    h0 = None if h0 is None else _c(h0)
    bt, t, r, h, p = x.shape
    n = B.shape[-1]
    y = np.empty(x.shape, dtype=x.dtype)
    last = np.empty((bt, h, p, n), dtype=x.dtype)
    starts = np.empty((bt, -(-t // chunk), h, p, n), dtype=x.dtype)

    def slab(s):
        _forward_slab(x[s], a[s], B[s], C[s], int(chunk), None if h0 is None else h0[s], y[s], last[s], starts[s])

    with blas_single_thread():
        run_parallel(slab, _slabs(bt))
    return y, last, starts


# ---- the backward ------------------------------------------------------------------------------------

@numba.njit(nogil=True, cache=True)
def _rows_scaled_by(X, w, r):  # pragma: no cover - compiled
    # X[b, c, h, (l, r)] *= w[b, c, h, l], in place
    b_, nc, h_, qr, d = X.shape
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                for i in range(qr):
                    f, row = w[b, c, h, i // r], X[b, c, h, i]
                    for j in range(d):
                        row[j] *= f


@numba.njit(nogil=True, cache=True)
def _step_dots(U, V, r, rep, out):  # pragma: no cover - compiled
    # out[b, c, h, l] = sum over the ranks of step l of U[b, c, h, row] . V[b, c, h // rep, row]
    b_, nc, h_, qr, d = U.shape
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                o = out[b, c, h]
                o[:] = 0.0
                for i in range(qr):
                    o[i // r] += row_dot(U[b, c, h, i], V[b, c, h // rep, i], d)


@numba.njit(nogil=True, cache=True)
def _states_backward(dH, decay, starts, dS, ddecay):  # pragma: no cover - compiled
    # state_{c+1} = decay_c state_c + S_c, in reverse: dS_c = dL/d(state_{c+1}), carried back through decay
    b_, nc, h_, p, n = dH.shape
    for b in range(b_):
        for h in range(h_):
            nxt = np.zeros((p, n), dtype=dH.dtype)
            for c in range(nc - 1, -1, -1):
                dS[b, c, h] = nxt
                dc, st, dh = decay[b, c, h], starts[b, c, h], dH[b, c, h]
                acc = dH.dtype.type(0.0)
                for i in range(p):
                    for k in range(n):
                        acc += nxt[i, k] * st[i, k]
                        nxt[i, k] = dh[i, k] + dc * nxt[i, k]
                ddecay[b, c, h] = acc * dc


@numba.njit(nogil=True, cache=True)
def _mask_grads(dM, M, L, r, rep, dseg, dCB):  # pragma: no cover - compiled
    # dseg[b, c, h, l, s] = sum over ranks of dM * M (M = CB * L, so dL/dseg = dL/dM * M);
    # dCB[b, c, g] = sum over the group's heads of dM * L
    b_, nc, h_, qr, _ = dM.shape
    for b in range(b_):
        for c in range(nc):
            for gg in range(dCB.shape[2]):
                dCB[b, c, gg] = 0.0
            for h in range(h_):
                ds, lm, dcb = dseg[b, c, h], L[b, c, h], dCB[b, c, h // rep]
                ds[:, :] = 0.0
                for i in range(qr):
                    l = i // r
                    dmr, mr, dcr, lrow, drow = dM[b, c, h, i], M[b, c, h, i], dcb[i], lm[l], ds[l]
                    if r == 1:  # the common case, vectorized
                        for j in range(l + 1):
                            dcr[j] += dmr[j] * lrow[j]
                            drow[j] += dmr[j] * mr[j]
                    else:
                        for j in range((l + 1) * r):
                            dcr[j] += dmr[j] * lrow[j // r]
                            drow[j // r] += dmr[j] * mr[j]


@numba.njit(nogil=True, cache=True)
def _decay_grads(dseg, dW, L, dE, ddecay, t_len, da):  # pragma: no cover - compiled
    # seg[l, s] sums a_i over s < i <= l; W_s = L[Q-1, s]; E_l sums i <= l; the chunk decay sums every i
    b_, nc, h_, q, _ = dseg.shape
    acc = np.empty(q, dtype=dseg.dtype)
    for b in range(b_):
        for c in range(nc):
            for h in range(h_):
                ds = dseg[b, c, h]
                for s in range(q):
                    ds[q - 1, s] += dW[b, c, h, s] * L[b, c, h, q - 1, s]
                acc[:] = 0.0
                for l in range(q):
                    run = dseg.dtype.type(0.0)
                    for i in range(l + 1):
                        acc[i] += run
                        run += ds[l, i]
                tail = dseg.dtype.type(0.0)
                for i in range(q - 1, -1, -1):
                    tail += dE[b, c, h, i]
                    t = c * q + i
                    if t < t_len:
                        da[b, t, h] = acc[i] + tail + ddecay[b, c, h]


def _per_group(v, g):
    """(b, nc, H, m, k) -> (b, nc, G, m, k): the sum over each group's heads."""
    return _group_view(v, g).sum(axis=3) if v.shape[2] != g else v


def _backward_slab(gy, x, a, B, C, q, starts, dx, da, dB, dC):
    b, t, r, h, p = x.shape
    grp = B.shape[3]
    rep = h // grp
    Xc, Bc, Cc, L, E, CB = _chunked(x, a, B, C, q)
    Gc = np.empty_like(Xc)
    _to_chunks(gy, q, Gc)
    M = np.empty(Xc.shape[:3] + (q * r, q * r), dtype=x.dtype)
    _masked(CB, L, r, M)
    # y += E_l C_l H_start
    GE = Gc.copy()
    _rows_scaled_by(GE, E, r)
    dC_h = GE @ starts                                                      # (b, nc, H, QR, N)
    dH = (_group_view(GE, grp).swapaxes(-1, -2) @ Cc[:, :, :, None]).reshape(starts.shape)
    dE = np.empty(E.shape, dtype=x.dtype)
    _step_dots(dC_h, Cc, r, rep, dE)                                        # (G E) . (C H^T) = (G E H) . C
    # the chunk-to-chunk recurrence, in reverse
    dS = np.empty_like(dH)
    ddecay = np.empty(E.shape[:3], dtype=x.dtype)
    _states_backward(dH, np.ascontiguousarray(E[..., -1]), starts, dS, ddecay)
    # the chunk's end state took (x W)^T B
    xdS = Xc @ dS                                                           # (b, nc, H, QR, N)
    dW = np.empty(E.shape, dtype=x.dtype)
    _step_dots(xdS, Bc, r, rep, dW)
    W = np.ascontiguousarray(L[..., -1, :])
    _rows_scaled_by(xdS, W, r)                                              # now dB per head
    dX = (Bc[:, :, :, None] @ _group_view(dS, grp).swapaxes(-1, -2)).reshape(Xc.shape)
    _rows_scaled_by(dX, W, r)
    # y = M x within the chunk, M = (C B^T) * L
    dX += M.swapaxes(-1, -2) @ Gc
    dM = Gc @ Xc.swapaxes(-1, -2)
    dseg = np.empty(L.shape, dtype=x.dtype)
    dCB = np.empty(CB.shape, dtype=x.dtype)
    _mask_grads(dM, M, L, r, rep, dseg, dCB)
    dC_g = dCB @ Bc + _per_group(dC_h, grp)
    dB_g = dCB.swapaxes(-1, -2) @ Cc + _per_group(xdS, grp)
    _decay_grads(dseg, dW, L, dE, ddecay, t, da)
    _from_chunks(dX, t, dx)
    _from_chunks(np.ascontiguousarray(dB_g), t, dB)
    _from_chunks(np.ascontiguousarray(dC_g), t, dC)


def ssd_backward(g, x, a, B, C, chunk, starts):
    if not _supported(g, x, a, B, C, starts):
        return NotImplemented
    g, x, a, B, C, starts = _c(g), _c(x), _c(a), _c(B), _c(C), _c(starts)
    dx, da = np.empty(x.shape, dtype=x.dtype), np.empty(a.shape, dtype=x.dtype)
    dB, dC = np.empty(B.shape, dtype=x.dtype), np.empty(C.shape, dtype=x.dtype)

    def slab(s):
        _backward_slab(g[s], x[s], a[s], B[s], C[s], int(chunk), starts[s], dx[s], da[s], dB[s], dC[s])

    with blas_single_thread():
        run_parallel(slab, _slabs(x.shape[0]))
    return dx, da, dB, dC
