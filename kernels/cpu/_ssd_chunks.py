"""The compiled body of kernels/cpu/ssd.py: one task (a range of batch rows and heads) of the chunked SSD,
forward or backward, walking the chunks in order (the state is carried from one to the next) and, in
each, the heads. Every product is a ``_gemm.gemm`` call on the operands where they lie: a head's (step,
rank) rows of x, y, dx, g are a strided block of those arrays (row stride H P), a group's rows of B, C,
dB, dC likewise (row stride G N), and each product adds into its destination, so nothing is copied into
a chunk layout and nothing is added up afterwards. What lies between the products works on one head's
(Q R) x (Q R) matrices at a time, while they are in cache.

Three things cut the multiply-adds:

* C B^T (and, in the backward, the heads' summed gradient of it) is formed once per group, not per head;
* the causal products (M x, M^T g, g x^T, the mask's C B^T and its gradients) skip the masked upper
  triangle's blocks: each is split into up to four row blocks (of 8 steps or more), one product each,
  10/16 of the square (on our OpenBLAS, 16 x 64 products still run at full speed, and the g x^T and C B^T
  ones, which read their second operand transposed, ran ~1.6x faster split in four than in two);
* nothing is recomputed that a later product can take from an earlier one.

Shapes: x, g, y, dx (Bt, T, R, H, P); a, da (Bt, T, H); B, C, dB, dC (Bt, T, R, G, N); starts (Bt, nc, H,
P, N); a chunk has ``steps`` <= Q steps, so m = steps R rows.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, row_dot, row_sum
from ._gemm import gemm

_BLOCK_STEPS = 8  # a causal product is split into row blocks of at least this many steps, at most 4


@numba.njit(nogil=True, cache=True)
def _blocks(steps):  # pragma: no cover - compiled
    return max(1, min(4, steps // _BLOCK_STEPS))


@numba.njit(nogil=True, cache=True)
def _edge(steps, r, k, nb):  # pragma: no cover - compiled
    # the first (step, rank) row of block k of nb (k = nb: the end)
    return (steps * k // nb) * r


@numba.njit(nogil=True, cache=True)
def _width(steps, r, i):  # pragma: no cover - compiled
    # how far row i of a causal matrix is read (and so written): to the end of its row block
    nb = _blocks(steps)
    k = 1
    while _edge(steps, r, k, nb) <= i:
        k += 1
    return _edge(steps, r, k, nb)


@numba.njit(nogil=True, cache=True)
def causal_mm(blas, trans, steps, r, A, X, xo, ldx, ncol, beta, Y, yo, ldy):  # pragma: no cover - compiled
    # Y = A X (or A^T X) + beta Y for A (m x m, row stride m_max) zero above its step diagonal, one product
    # per row block of Y, each skipping the zero blocks (4 blocks: 10/16 of the square; the products stay
    # large enough for the BLAS to run at speed)
    m, lda, nb = steps * r, A.shape[1], _blocks(steps)
    for k in range(nb):
        r0, r1 = _edge(steps, r, k, nb), _edge(steps, r, k + 1, nb)
        if not trans:
            gemm(blas, 0, 0, r1 - r0, ncol, r1, A, r0 * lda, lda, X, xo, ldx, beta, Y, yo + r0 * ldy, ldy)
        else:
            gemm(blas, 1, 0, r1 - r0, ncol, m - r0, A, r0 * lda + r0, lda, X, xo + r0 * ldx, ldx, beta, Y,
                 yo + r0 * ldy, ldy)


@numba.njit(nogil=True, cache=True)
def lower_mm(blas, steps, r, U, uo, ldu, V, vo, ldv, k, Z):  # pragma: no cover - compiled
    # Z = U V^T (m x m) where it is on or below the step diagonal; right of each row block, not written
    ldz, nb = Z.shape[1], _blocks(steps)
    for b in range(nb):
        r0, r1 = _edge(steps, r, b, nb), _edge(steps, r, b + 1, nb)
        gemm(blas, 0, 1, r1 - r0, r1, k, U, uo + r0 * ldu, ldu, V, vo, ldv, 0.0, Z, r0 * ldz, ldz)


@numba.njit(nogil=True, cache=True)
def decays(a, b, t0, h, steps, run, L, E, W):  # pragma: no cover - compiled
    # L[l, s] = exp(a_{s+1} + .. + a_l) for s <= l, E[l] = exp(a_0 + .. + a_l), W[s] = L[steps-1, s]. The
    # segments are summed directly (run[s] holds row l's), not differenced from cumulative sums, which
    # loses digits when they are large; the reference sums them in the same order.
    cum = a.dtype.type(0.0)
    for l in range(steps):
        step = a[b, t0 + l, h]
        cum += step
        E[l] = fast_exp(cum)
        row = L[l]
        for s in range(l):
            run[s] += step
        run[l] = 0.0
        for s in range(l + 1):
            row[s] = fast_exp(run[s])
    last = L[steps - 1]
    for s in range(steps):
        W[s] = last[s]


@numba.njit(nogil=True, cache=True)
def masked(CB, L, steps, r, M):  # pragma: no cover - compiled
    # M = CB * L read per step, zero above the step diagonal, where causal_mm reads it
    m = steps * r
    for i in range(m):
        l = i // r
        crow, lrow, mrow = CB[i], L[l], M[i]
        inside, width = (l + 1) * r, _width(steps, r, i)
        if r == 1:  # the common case, vectorized (j // r would stop that)
            for j in range(inside):
                mrow[j] = crow[j] * lrow[j]
        else:
            for j in range(inside):
                mrow[j] = crow[j] * lrow[j // r]
        for j in range(inside, width):
            mrow[j] = 0.0


@numba.njit(nogil=True, cache=True)
def rows_scaled(src, so, lds, w, r, m, d, dst):  # pragma: no cover - compiled
    # dst[i, :d] = src rows (offset so, stride lds) times w[i // r]: a head's rows with a per-step factor
    # (rows are taken as slices: indexing the flat array at o + j would keep the loop scalar, ~10x slower)
    sf = src.reshape(src.size)
    for i in range(m):
        f, row, o = w[i // r], dst[i], so + i * lds
        srow = sf[o:o + d]
        for j in range(d):
            row[j] = srow[j] * f


@numba.njit(nogil=True, cache=True)
def step_dots(U, V, vo, ldv, r, m, d, out):  # pragma: no cover - compiled
    # out[l] = sum over the ranks of step l of U[i, :d] . V row i (offset vo, stride ldv)
    vf = V.reshape(V.size)
    for l in range(m // r):
        out[l] = 0.0
    for i in range(m):
        out[i // r] += row_dot(U[i], vf[vo + i * ldv:], d)


@numba.njit(nogil=True, cache=True)
def add_rows(U, w, r, m, d, first, D, do, ldd):  # pragma: no cover - compiled
    # D rows (offset do, stride ldd) = or += U[i, :d] * w[i // r]: a head's share of its group's rows
    df = D.reshape(D.size)
    for i in range(m):
        row, o, f = U[i], do + i * ldd, w[i // r]
        drow = df[o:o + d]  # a slice, as in rows_scaled, so that the loops vectorize
        if first:
            for j in range(d):
                drow[j] = row[j] * f
        else:
            for j in range(d):
                drow[j] += row[j] * f


@numba.njit(nogil=True, cache=True)
def mask_grads(dM, L, CB, steps, r, first, dW, W, dE, ddecay, col, dCB, da, b, t0, h):  # pragma: no cover
    # From dM = dL/dM (M = CB * L): dCB (= or += over the group's heads) dM * L, and dL/da of the chunk's
    # steps. With dseg = dL/dseg = dM * M summed over ranks (plus dW W on the last row, W being it), a_i is in
    # seg[l, s] for s < i <= l, in E_l for i <= l and in the chunk's decay, so
    #     da_i = sum_{l >= i} sum_{s < i} dseg[l, s] + sum_{l >= i} dE_l + ddecay.
    # Rows are taken last to first: col[s] then sums dseg over the rows taken, and both sums run as vectors.
    col[:steps] = 0.0
    tail = dE.dtype.type(0.0)
    for l in range(steps - 1, -1, -1):
        lrow, inside = L[l], (l + 1) * r
        for i in range(l * r, inside):
            dmr, crow, drow = dM[i], CB[i], dCB[i]
            width = _width(steps, r, i)
            if r == 1 and first:  # the common cases, vectorized (j // r would stop that)
                for j in range(inside):
                    tv = dmr[j] * lrow[j]
                    drow[j] = tv
                    col[j] += tv * crow[j]
            elif r == 1:
                for j in range(inside):
                    tv = dmr[j] * lrow[j]
                    drow[j] += tv
                    col[j] += tv * crow[j]
            else:
                for j in range(inside):
                    tv = dmr[j] * lrow[j // r]
                    drow[j] = tv if first else drow[j] + tv
                    col[j // r] += tv * crow[j]
            if first:
                drow[inside:width] = 0.0
        if l == steps - 1:
            for s in range(steps):
                col[s] += dW[s] * W[s]
        tail += dE[l]
        da[b, t0 + l, h] = row_sum(col, l) + tail + ddecay


# ---- the tasks ---------------------------------------------------------------------------------------------

@numba.njit(nogil=True, cache=True)
def forward_task(x, a, B, C, q, h0, has_h0, blas, b0, b1, hs, he, y, last, starts):  # pragma: no cover
    # y, last and starts for batch rows b0..b1 and heads hs..he. Per chunk and head: the chunk's own end
    # state S = (x W)^T B joins the carried state (last, which starts[c] saw before), and
    # y = (E C) starts^T + M x, the second product adding onto the first in y itself.
    t_len, r, nh, p = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    ng, n, nc = B.shape[3], B.shape[4], starts.shape[1]
    rep, lx, lb, dt = nh // ng, nh * p, ng * n, x.dtype
    CB, M = np.empty((q * r, q * r), dt), np.empty((q * r, q * r), dt)
    L, E, W, run = np.empty((q, q), dt), np.empty(q, dt), np.empty(q, dt), np.empty(q, dt)
    XW, EC = np.empty((q * r, p), dt), np.empty((q * r, n), dt)
    for b in range(b0, b1):
        for h in range(hs, he):
            if has_h0:
                last[b, h] = h0[b, h]
            else:
                last[b, h] = 0.0
        for c in range(nc):
            steps = min(q, t_len - c * q)
            m, row0 = steps * r, (b * t_len + c * q) * r        # the chunk's first (step, rank) row
            for h in range(hs, he):
                g = h // rep
                bo, xo, so = row0 * lb + g * n, row0 * lx + h * p, ((b * nc + c) * nh + h) * p * n
                if h == hs or h % rep == 0:                     # the group's C B^T, once for its heads
                    lower_mm(blas, steps, r, C, bo, lb, B, bo, lb, n, CB)
                decays(a, b, c * q, h, steps, run, L, E, W)
                masked(CB, L, steps, r, M)
                starts[b, c, h] = last[b, h]
                last[b, h] *= E[steps - 1]
                rows_scaled(x, xo, lx, W, r, m, p, XW)
                gemm(blas, 1, 0, p, n, m, XW, 0, p, B, bo, lb, 1.0, last, (b * nh + h) * p * n, n)
                rows_scaled(C, bo, lb, E, r, m, n, EC)
                gemm(blas, 0, 1, m, p, n, EC, 0, n, starts, so, n, 0.0, y, xo, lx)
                causal_mm(blas, 0, steps, r, M, x, xo, lx, p, 1.0, y, xo, lx)


@numba.njit(nogil=True, cache=True)
def backward_task(gy, x, a, B, C, q, starts, blas, b0, b1, hs, he, dx, da, dB, dC):  # pragma: no cover
    # The gradients for batch rows b0..b1 and heads hs..he, chunks last to first: nxt[h] carries dL/d(the
    # state after the chunk) back through the chunk decays. dB and dC take every head of a group in turn
    # (the first writes, the others add), then the group's dCB products.
    t_len, r, nh, p = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    ng, n, nc = B.shape[3], B.shape[4], starts.shape[1]
    rep, lx, lb, dt, qr = nh // ng, nh * p, ng * n, x.dtype, q * r
    CB, M, dM, dCB = np.empty((qr, qr), dt), np.empty((qr, qr), dt), np.empty((qr, qr), dt), np.empty((qr, qr), dt)
    L, E, W, run = np.empty((q, q), dt), np.empty(q, dt), np.empty(q, dt), np.empty(q, dt)
    dE, dW, col, ones = np.empty(q, dt), np.empty(q, dt), np.empty(q, dt), np.ones(q, dt)
    GE, WB, T1 = np.empty((qr, p), dt), np.empty((qr, n), dt), np.empty((qr, n), dt)
    nxt = np.empty((he - hs, p, n), dt)
    for b in range(b0, b1):
        nxt[:] = 0.0
        for c in range(nc - 1, -1, -1):
            steps = min(q, t_len - c * q)
            m, row0 = steps * r, (b * t_len + c * q) * r
            for g in range(hs // rep, (he - 1) // rep + 1):
                bo = row0 * lb + g * n
                lower_mm(blas, steps, r, C, bo, lb, B, bo, lb, n, CB)
                for h in range(max(hs, g * rep), min(he, (g + 1) * rep)):
                    first = h == max(hs, g * rep)
                    xo, so, no = row0 * lx + h * p, ((b * nc + c) * nh + h) * p * n, (h - hs) * p * n
                    dS = nxt[h - hs]
                    decays(a, b, c * q, h, steps, run, L, E, W)
                    masked(CB, L, steps, r, M)
                    decay = E[steps - 1]
                    ddecay = row_dot(dS.reshape(p * n), starts[b, c, h].reshape(p * n), p * n) * decay
                    # y took (E C) starts^T: dC += (g E) starts, dE from the same product
                    rows_scaled(gy, xo, lx, E, r, m, p, GE)
                    gemm(blas, 0, 0, m, n, p, GE, 0, p, starts, so, n, 0.0, T1, 0, n)
                    step_dots(T1, C, bo, lb, r, m, n, dE)
                    add_rows(T1, ones, r, m, n, first, dC, bo, lb)
                    # the end state took (x W)^T B: dB += W (x dS), dW from the same product, dx = W (B dS^T)
                    gemm(blas, 0, 0, m, n, p, x, xo, lx, nxt, no, n, 0.0, T1, 0, n)
                    step_dots(T1, B, bo, lb, r, m, n, dW)
                    add_rows(T1, W, r, m, n, first, dB, bo, lb)
                    rows_scaled(B, bo, lb, W, r, m, n, WB)
                    gemm(blas, 0, 1, m, p, n, WB, 0, n, nxt, no, n, 0.0, dx, xo, lx)
                    causal_mm(blas, 1, steps, r, M, gy, xo, lx, p, 1.0, dx, xo, lx)     # y = M x: dx += M^T g
                    # on to the chunk before: dL/d(its end state) = decay dS + (g E)^T C
                    dS *= decay
                    gemm(blas, 1, 0, p, n, m, GE, 0, p, C, bo, lb, 1.0, nxt, no, n)
                    lower_mm(blas, steps, r, gy, xo, lx, x, xo, lx, p, dM)             # dM = g x^T
                    mask_grads(dM, L, CB, steps, r, first, dW, W, dE, ddecay, col, dCB, da, b, c * q, h)
                causal_mm(blas, 0, steps, r, dCB, B, bo, lb, n, 1.0, dC, bo, lb)          # dC += dCB B
                causal_mm(blas, 1, steps, r, dCB, C, bo, lb, n, 1.0, dB, bo, lb)          # dB += dCB^T C
