"""The matrix product, with NumPy's rules for 1-D, batched and broadcasting operands."""

from __future__ import annotations

from ..autograd import Function


def _mT(x):
    return x.swapaxes(-1, -2)


class MatMul(Function):
    """a @ b with NumPy's rules: batched and broadcasting; a 1-D operand is a vector."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:
            return g * b, g * a
        ga = gb = None
        if a.ndim == 1:  # (k,) @ (..., k, m) -> (..., m)
            g2 = g[..., None, :]
            if self.needs_grad[0]:
                ga = (g2 @ _mT(b))[..., 0, :]
            if self.needs_grad[1]:
                gb = a[:, None] @ g2
            return ga, gb
        if b.ndim == 1:  # (..., n, k) @ (k,) -> (..., n)
            g2 = g[..., :, None]
            if self.needs_grad[0]:
                ga = g2 @ b[None, :]
            if self.needs_grad[1]:
                gb = (_mT(a) @ g2)[..., 0]
            return ga, gb
        if self.needs_grad[0]:
            ga = g @ _mT(b)
        if self.needs_grad[1]:
            if b.ndim == 2 and a.ndim > 2:
                # Fold the batch into the rows: one (k, N) @ (N, m) instead of a batched product.
                k, m = a.shape[-1], g.shape[-1]
                gb = a.reshape(-1, k).T @ g.reshape(-1, m)
            else:
                gb = _mT(a) @ g
        return ga, gb
