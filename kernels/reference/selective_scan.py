"""Mamba1's selective scan, forward and backward: the spec that kernels/cpu/selective_scan.py is
held to; used by ``nn.ops.selective_scan``.

For every batch row and channel d, a state h of N numbers runs over time:

    h_t = exp(delta_t A_d) * h_{t-1} + delta_t u_t B_t        (elementwise over N)
    y_t = sum_n h_t[n] C_t[n]

u, delta (Bt, T, D), A (D, N), B, C (Bt, T, N) (shared by the channels), h0 (Bt, D, N) or None.
The D skip and the z gate are not part of the scan (``nn.mamba`` adds them).

Memory: the forward keeps only the state at the start of every ``chunk`` steps, ``starts``
(Bt, ceil(T / chunk), D, N); the backward recomputes the states inside one chunk at a time
from there and runs the recurrence in reverse. (Saving every state would be T x D x N numbers
per row, 16x the layer's input for N = 16.)
"""

from __future__ import annotations


def _n_chunks(t, chunk):
    return -(-t // chunk)


def selective_scan_forward(xp, u, delta, A, B, C, h0, chunk):
    """Returns y (Bt, T, D), the last state h_T (Bt, D, N), and ``starts`` (Bt, n_chunks, D, N)."""
    bt, t_len, d = u.shape
    n = A.shape[1]
    h = xp.zeros((bt, d, n), dtype=u.dtype) if h0 is None else h0.astype(u.dtype, copy=True)
    starts = xp.empty((bt, _n_chunks(t_len, chunk), d, n), dtype=u.dtype)
    y = xp.empty_like(u)
    du = delta * u                                                  # (Bt, T, D)
    for t in range(t_len):
        if t % chunk == 0:
            starts[:, t // chunk] = h
        h = xp.exp(delta[:, t, :, None] * A) * h + du[:, t, :, None] * B[:, t, None, :]   # (Bt, D, N)
        y[:, t] = (h * C[:, t, None, :]).sum(axis=-1)
    return y, h, starts


def _chunk_states(xp, delta, du, A, B, start, t0, t1):
    """The decays exp(delta A) (L, Bt, D, N) and states h_t0 .. h_t1 (L + 1, Bt, D, N) of one chunk."""
    decay = xp.exp(delta[:, t0:t1, :, None] * A).transpose(1, 0, 2, 3)   # (L, Bt, D, N)
    hs = xp.empty((t1 - t0 + 1,) + start.shape, dtype=start.dtype)
    hs[0] = start
    for i, t in enumerate(range(t0, t1)):
        hs[i + 1] = decay[i] * hs[i] + du[:, t, :, None] * B[:, t, None, :]
    return decay, hs


def selective_scan_backward(xp, g, u, delta, A, B, C, starts, chunk):
    """Given dL/dy (Bt, T, D) and the forward's ``starts``, return dL/du, dL/ddelta (Bt, T, D),
    dL/dA (D, N), dL/dB, dL/dC (Bt, T, N)."""
    bt, t_len, d = u.shape
    du_in, ddelta = xp.empty_like(u), xp.empty_like(u)
    dB, dC = xp.empty_like(B), xp.empty_like(C)
    dA = xp.zeros(A.shape, dtype=u.dtype)
    du = delta * u
    dh = xp.zeros(starts.shape[:1] + starts.shape[2:], dtype=u.dtype)   # dL/dh_t, carried back in time
    for c in reversed(range(starts.shape[1])):
        t0, t1 = c * chunk, min(t_len, (c + 1) * chunk)
        decay, hs = _chunk_states(xp, delta, du, A, B, starts[:, c], t0, t1)
        for i in reversed(range(t1 - t0)):
            t = t0 + i
            gt = g[:, t, :, None]                                   # (Bt, D, 1)
            dC[:, t] = (gt * hs[i + 1]).sum(axis=1)
            dh = dh + gt * C[:, t, None, :]
            dhB = (dh * B[:, t, None, :]).sum(axis=-1)              # (Bt, D)
            dB[:, t] = (dh * du[:, t, :, None]).sum(axis=1)
            du_in[:, t] = dhB * delta[:, t]
            # d decay: dh * h_{t-1}; d decay / d delta = A * decay
            dda = dh * hs[i] * decay[i]                             # (Bt, D, N)
            ddelta[:, t] = (dda * A).sum(axis=-1) + dhB * u[:, t]
            dA = dA + (dda * delta[:, t, :, None]).sum(axis=0)
            dh = dh * decay[i]
    return du_in, ddelta, dA, dB, dC
