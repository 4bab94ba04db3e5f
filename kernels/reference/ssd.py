"""The chunked state-space-duality (SSD) scan of Mamba2 and Mamba3, forward and backward: the spec
that kernels/cpu/ssd.py is held to; used by ``nn.ops.ssd``.

Each head h carries a (P, N) state. At step t it decays by exp(a_t) (one scalar per head) and
takes R rank-one inputs (R = 1 for Mamba2; Mamba3's MIMO rank otherwise):

    H_t = exp(a_t) H_{t-1} + sum_r x_t[r] B_t[r]^T            y_t[r] = H_t C_t[r]

x (Bt, T, R, H, P); a (Bt, T, H) (log decays, <= 0); B, C (Bt, T, R, G, N) with the heads split
into G groups sharing B and C; h0 (Bt, H, P, N) or None. For Mamba2, x already carries dt
(x * dt) and a = dt * A; the D skip is added by the layer.

The sequence is cut into chunks of Q steps (the last one zero-padded, so any length works).
Inside a chunk the output is a masked quadratic form, like attention (the "dual" form); chunks
hand their end state on to the next (the recurrent form):

    y_l = sum_{s<=l} (C_l . B_s) exp(a_{s+1} + ... + a_l) x_s  +  exp(a_0 + ... + a_l) C_l H_start

Rows within a chunk are ordered (step l, rank r), so a chunk is a (Q R)-row matrix and the
decay mask is read by step. The forward keeps only the state at each chunk's start,
``starts`` (Bt, n_chunks, H, P, N); the backward recomputes a chunk's quadratic form from its
inputs and runs the chunk-to-chunk recurrence in reverse.
"""

from __future__ import annotations


def _n_chunks(t, q):
    return -(-t // q)


def _pad_time(xp, v, pad):
    if not pad:
        return v
    return xp.concatenate([v, xp.zeros((v.shape[0], pad) + v.shape[2:], dtype=v.dtype)], axis=1)


def _rows(v, nc, q):
    """(Bt, nc*Q, R, H, K) -> (Bt, nc, H, Q*R, K): one matrix per (chunk, head), rows (step, rank)."""
    bt, _, r, h, k = v.shape
    return v.reshape(bt, nc, q, r, h, k).transpose(0, 1, 4, 2, 3, 5).reshape(bt, nc, h, q * r, k)


def _unrows(v, nc, q, r):
    """Inverse of ``_rows``: (Bt, nc, H, Q*R, K) -> (Bt, nc*Q, R, H, K)."""
    bt, _, h, _, k = v.shape
    return v.reshape(bt, nc, h, q, r, k).transpose(0, 1, 3, 4, 2, 5).reshape(bt, nc * q, r, h, k)


def _segsum(xp, a):
    """seg[..., l, s] = a_{s+1} + ... + a_l for s <= l, -inf above the diagonal: (..., Q, Q).
    Summed directly (not as a difference of cumulative sums, which loses digits when they are large)."""
    q = a.shape[-1]
    lower = xp.tril(xp.ones((q, q), dtype=bool), k=-1)
    seg = xp.cumsum(xp.where(lower, a[..., :, None], xp.zeros((), dtype=a.dtype)), axis=-2)
    return xp.where(xp.tril(xp.ones((q, q), dtype=bool)), seg, xp.asarray(-xp.inf, dtype=a.dtype))


class _Chunks:
    """The padded, chunked inputs and the decay factors both passes use."""

    def __init__(self, xp, x, a, B, C, q):
        bt, t, r, h, _ = x.shape
        self.t, self.r, self.q, self.g = t, r, q, B.shape[3]
        self.nc = nc = _n_chunks(t, q)
        pad = nc * q - t
        rep = h // self.g
        expand = (lambda v: xp.repeat(v, rep, axis=3)) if rep > 1 else (lambda v: v)   # groups -> heads
        self.x = _rows(_pad_time(xp, x, pad), nc, q)                      # (Bt, nc, H, QR, P)
        self.B = _rows(_pad_time(xp, expand(B), pad), nc, q)              # (Bt, nc, H, QR, N)
        self.C = _rows(_pad_time(xp, expand(C), pad), nc, q)
        ac = _pad_time(xp, a, pad).reshape(bt, nc, q, h).transpose(0, 1, 3, 2)   # (Bt, nc, H, Q)
        self.L = xp.exp(_segsum(xp, ac))                                  # (Bt, nc, H, Q, Q)
        self.E = xp.exp(xp.cumsum(ac, axis=-1))                           # exp(a_0 + .. + a_l)
        self.decay = self.E[..., -1]                                      # the whole chunk's decay
        self.W = self.L[..., -1, :]                                       # exp(a_{s+1} + .. + a_{Q-1})
        # the step mask and decays per (step, rank) row
        self.Lrr = self.L[..., :, None, :, None]
        self.Lrr = xp.broadcast_to(self.Lrr, self.L.shape[:-2] + (q, r, q, r)).reshape(
            self.L.shape[:-2] + (q * r, q * r))
        self.Erow = xp.repeat(self.E, r, axis=-1)[..., None]              # (Bt, nc, H, QR, 1)
        self.Wrow = xp.repeat(self.W, r, axis=-1)[..., None]

    def per_step(self, v):
        """(..., Q*R) -> (..., Q): sum over the ranks of each step."""
        return v.reshape(v.shape[:-1] + (self.q, self.r)).sum(axis=-1)


def ssd_forward(xp, x, a, B, C, chunk, h0):
    """Returns y (Bt, T, R, H, P), the last state (Bt, H, P, N), and ``starts`` (Bt, n_chunks, H, P, N)."""
    bt, _, r, h, p = x.shape
    n = B.shape[-1]
    k = _Chunks(xp, x, a, B, C, chunk)
    M = (k.C @ k.B.swapaxes(-1, -2)) * k.Lrr                              # (Bt, nc, H, QR, QR)
    y = M @ k.x                                                           # within each chunk
    S = (k.x * k.Wrow).swapaxes(-1, -2) @ k.B                             # each chunk's own end state (P, N)
    states = xp.empty((bt, k.nc + 1, h, p, n), dtype=x.dtype)
    states[:, 0] = 0 if h0 is None else h0
    for c in range(k.nc):
        states[:, c + 1] = k.decay[:, c, :, None, None] * states[:, c] + S[:, c]
    starts = states[:, :k.nc]
    y = y + (k.C @ starts.swapaxes(-1, -2)) * k.Erow                      # what came before the chunk
    return _unrows(y, k.nc, chunk, r)[:, :k.t], states[:, k.nc], starts


def _reverse_cumsum(xp, v):
    return xp.flip(xp.cumsum(xp.flip(v, axis=-1), axis=-1), axis=-1)


def _decay_grad(xp, dseg, dE, ddecay):
    """dL/da (Bt, nc, H, Q) from the gradients of L = exp(seg) (as dL/dseg), of E_l = exp(a_0 + .. + a_l)
    (as dL/d(a_0 + .. + a_l)) and of the chunk decay (as dL/d(sum of a))."""
    q = dseg.shape[-1]
    # seg[l, s] sums a_i over s < i <= l: a_i collects dseg[l, s] for l >= i > s
    before = xp.cumsum(dseg, axis=-1) - dseg                              # sum over s < column
    da = (before * xp.tril(xp.ones((q, q), dtype=dseg.dtype))).sum(axis=-2)
    return da + _reverse_cumsum(xp, dE) + ddecay[..., None]


def ssd_backward(xp, g, x, a, B, C, chunk, starts):
    """Given dL/dy (Bt, T, R, H, P) and the forward's ``starts``, return dL/dx (Bt, T, R, H, P),
    dL/da (Bt, T, H), dL/dB and dL/dC (Bt, T, R, G, N) (summed over the heads of each group)."""
    bt, t, r, h, _ = x.shape
    k = _Chunks(xp, x, a, B, C, chunk)
    gr = _rows(_pad_time(xp, g, k.nc * chunk - t), k.nc, chunk)           # (Bt, nc, H, QR, P)
    # y += E_l C_l H_start
    gE = gr * k.Erow
    dC = gE @ starts
    dH = gE.swapaxes(-1, -2) @ k.C                                        # (Bt, nc, H, P, N)
    dE = k.per_step((gr * (k.C @ starts.swapaxes(-1, -2))).sum(axis=-1) * k.Erow[..., 0])
    # H_{c+1} = decay_c H_c + S_c, in reverse: dS_c is the gradient of the next chunk's start
    dS = xp.empty_like(dH)
    ddecay = xp.empty(k.decay.shape, dtype=x.dtype)
    nxt = xp.zeros_like(dH[:, 0])
    for c in reversed(range(k.nc)):
        dS[:, c] = nxt
        ddecay[:, c] = (nxt * starts[:, c]).sum(axis=(-1, -2)) * k.decay[:, c]
        nxt = dH[:, c] + k.decay[:, c, :, None, None] * nxt
    # S = (x W)^T B
    xdS = k.x @ dS                                                        # (Bt, nc, H, QR, N)
    dx = (k.B @ dS.swapaxes(-1, -2)) * k.Wrow
    dB = xdS * k.Wrow
    dW = k.per_step((xdS * k.B).sum(axis=-1))                             # (Bt, nc, H, Q)
    # y = M x within the chunk, M = (C B^T) * L
    CB = k.C @ k.B.swapaxes(-1, -2)
    M = CB * k.Lrr
    dx = dx + M.swapaxes(-1, -2) @ gr
    dM = gr @ k.x.swapaxes(-1, -2)
    dCB = dM * k.Lrr
    dC = dC + dCB @ k.B
    dB = dB + dCB.swapaxes(-1, -2) @ k.C
    q = chunk
    dseg = (dM * M).reshape(M.shape[:-2] + (q, r, q, r)).sum(axis=(-3, -1))
    dseg[..., -1, :] += dW * k.W                                          # W = L[..., -1, :]
    da = _decay_grad(xp, dseg, dE, ddecay)                                # (Bt, nc, H, Q)
    da = da.transpose(0, 1, 3, 2).reshape(bt, k.nc * q, h)[:, :t]
    g_ = k.g

    def per_group(v):                                                     # heads -> their group's sum
        v = _unrows(v, k.nc, q, r)[:, :t]
        return v.reshape(bt, t, r, g_, h // g_, v.shape[-1]).sum(axis=4) if h != g_ else v

    return _unrows(dx, k.nc, q, r)[:, :t], da, per_group(dB), per_group(dC)
