"""Matrix product and the classic network ops: softmax, log-softmax, cross-entropy, dropout."""

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


def softmax_forward(xp, x, axis):
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Softmax(Function):
    def forward(self, a, axis=-1):
        self.axis = axis
        self.out = softmax_forward(self.xp, a, axis)
        return self.out

    def backward(self, g):
        y = self.out
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = axis
        shifted = a - a.max(axis=axis, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        return g - self.xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Mean (or sum) cross-entropy of logits (..., C) against integer targets (...)."""

    def forward(self, logits, targets, ignore_index=-100, reduction="mean"):
        c = logits.shape[-1]
        self.shape = logits.shape
        flat, flat_t = logits.reshape(-1, c), targets.reshape(-1)
        # A negative target would silently wrap around to a real class (-1 -> C-1): refuse it.
        bad = (flat_t != ignore_index) & ((flat_t < 0) | (flat_t >= c))
        if bool(bad.any()):
            raise IndexError(f"cross_entropy: target {int(flat_t[bad][0])} is out of range for {c} classes "
                             f"(and is not ignore_index={ignore_index})")
        kernel = self.backend.kernel("softmax_cross_entropy")
        loss_sum, n_valid, self.grad = kernel(flat, flat_t, ignore_index)
        if reduction == "mean":
            # torch gives nan when every target is ignored; so do we.
            self.scale = 1.0 / n_valid if n_valid else float("nan")
        elif reduction == "sum":
            self.scale = 1.0
        else:
            raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
        return self.xp.asarray(loss_sum * self.scale, dtype=logits.dtype)

    def backward(self, g):
        return (self.grad * (g * self.scale)).reshape(self.shape), None


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p). ``mask`` comes in
    precomputed (from a seeded Generator) so the op itself stays deterministic."""

    def forward(self, a, mask, p):
        self.scale = (mask / (1.0 - p)).astype(a.dtype, copy=False)
        return a * self.scale

    def backward(self, g):
        return g * self.scale, None
