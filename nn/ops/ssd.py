"""The chunked SSD scan of Mamba2 and Mamba3: H_t = exp(a_t) H_{t-1} + sum_r x_t[r] B_t[r]^T, y_t[r] = H_t C_t[r].
Kernels: ``ssd_forward`` / ``ssd_backward`` (kernels/reference/ssd.py, where the chunked form is explained)."""

from __future__ import annotations

import minigrad as mg
from minigrad import Function, Tensor


class SSD(Function):
    def forward(self, x, a, B, C, h0=None, chunk=64):
        y, last, self.starts = self.backend.kernel("ssd_forward")(x, a, B, C, chunk, h0)
        self.x, self.a, self.B, self.C, self.chunk = x, a, B, C, chunk
        return y, last

    def backward(self, g, g_last):
        if g_last is not None:
            raise NotImplementedError("ssd: no gradient through the returned last state")
        return self.backend.kernel("ssd_backward")(g, self.x, self.a, self.B, self.C, self.chunk, self.starts)


def _check(x, a, B, C):
    bt, t, r, h, _ = x.shape
    g, n = B.shape[3], B.shape[4]
    if a.shape != (bt, t, h) or B.shape != (bt, t, r, g, n) or C.shape != B.shape or h % g:
        raise ValueError(f"ssd: expected x (B, T, R, H, P), a (B, T, H), B and C (B, T, R, G, N) with G dividing H; "
                         f"got x {x.shape}, a {a.shape}, B {B.shape}, C {C.shape}")


def ssd(x: Tensor, a: Tensor, B: Tensor, C: Tensor, chunk: int = 64, h0: Tensor | None = None
        ) -> tuple[Tensor, Tensor]:
    """Returns y (B, T, R, H, P) and the last state (B, H, P, N); ``h0`` a starting state (no gradient)."""
    _check(x, a, B, C)
    return SSD.apply(x, a, B, C, h0=None if h0 is None else h0.data, chunk=chunk)


def ssd_simple(x: Tensor, a: Tensor, B: Tensor, C: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The recurrence itself, one step at a time, from primitive ops (the chunked form's reference)."""
    _check(x, a, B, C)
    bt, t, r, h, p = x.shape
    g, n = B.shape[3], B.shape[4]
    rep = h // g
    state = h0 if h0 is not None else mg.zeros(bt, h, p, n, dtype=x.dtype, backend=x.backend)
    ys = []
    for i in range(t):
        Bi = B[:, i].unsqueeze(3).expand(bt, r, g, rep, n).reshape(bt, r, h, n)   # groups -> heads
        Ci = C[:, i].unsqueeze(3).expand(bt, r, g, rep, n).reshape(bt, r, h, n)
        inflow = (x[:, i].unsqueeze(-1) * Bi.unsqueeze(-2)).sum(axis=1)           # (B, H, P, N)
        state = a[:, i].exp().reshape(bt, h, 1, 1) * state + inflow
        ys.append((state.unsqueeze(1) * Ci.unsqueeze(-2)).sum(axis=-1))           # (B, R, H, P)
    return mg.stack(ys, axis=1), state
