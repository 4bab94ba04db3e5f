"""Mamba1's selective scan: h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, y_t = h_t . C_t, per channel.
Kernels: ``selective_scan_forward`` / ``selective_scan_backward`` (kernels/reference/selective_scan.py)."""

from __future__ import annotations

import minigrad as mg
from minigrad import Function, Tensor

CHUNK = 64  # steps between the states the forward keeps for the backward


class SelectiveScan(Function):
    def forward(self, u, delta, A, B, C, h0=None, chunk=CHUNK):
        y, last, self.starts = self.backend.kernel("selective_scan_forward")(u, delta, A, B, C, h0, chunk)
        self.u, self.delta, self.A, self.B, self.C, self.chunk = u, delta, A, B, C, chunk
        return y, last

    def backward(self, g, g_last):
        if g_last is not None:
            raise NotImplementedError("selective_scan: no gradient through the returned last state")
        return self.backend.kernel("selective_scan_backward")(g, self.u, self.delta, self.A, self.B, self.C,
                                                               self.starts, self.chunk)


def _check(u, delta, A, B, C):
    bt, t, d = u.shape
    n = A.shape[1]
    if delta.shape != u.shape or A.shape != (d, n) or B.shape != (bt, t, n) or C.shape != (bt, t, n):
        raise ValueError(f"selective_scan: expected u, delta (B, T, D), A (D, N), B, C (B, T, N); got u {u.shape}, "
                         f"delta {delta.shape}, A {A.shape}, B {B.shape}, C {C.shape}")


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor | None = None,
                   chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """Returns y (B, T, D) and the last state (B, D, N). ``h0``: a starting state (B, D, N) (a cache's;
    no gradient flows into it)."""
    _check(u, delta, A, B, C)
    return SelectiveScan.apply(u, delta, A, B, C, h0=None if h0 is None else h0.data, chunk=chunk)


def selective_scan_simple(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                          h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The same recurrence as a Python loop over time of primitive ops; autograd derives the backward."""
    _check(u, delta, A, B, C)
    bt, t, d = u.shape
    h = h0 if h0 is not None else mg.zeros(bt, d, A.shape[1], dtype=u.dtype, backend=u.backend)
    ys = []
    for i in range(t):
        dt = delta[:, i].unsqueeze(-1)                                   # (B, D, 1)
        h = (dt * A).exp() * h + (dt * u[:, i].unsqueeze(-1)) * B[:, i].unsqueeze(1)
        ys.append((h * C[:, i].unsqueeze(1)).sum(axis=-1))
    return mg.stack(ys, axis=1), h
