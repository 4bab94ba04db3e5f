"""softmax and log_softmax over one axis, fused (one Function each, backward by hand), and their
``*_simple`` composites built from primitive ops, whose backward autograd derives (DeZero's
``softmax_simple`` is the anchor): the same values, for a learner to compare graph and speed.

Both subtract the row maximum first: exp of a large logit would overflow, and softmax(x) equals
softmax(x - c) for any constant c. Over the last axis, arrays of ``backend.row_kernel_min_size`` elements
or more go to the backend's row kernels (on the numba backend, every array: one compiled call, threaded
on large ones; kernels/reference/softmax.py is their spec, the same formulas as here).
"""

from __future__ import annotations

from ..autograd import Function
from .reduce import logsumexp_simple


class _RowFunction(Function):
    def _rows(self, a) -> bool:
        """Whether this call goes to the backend's row kernel: over the last axis, from its size on."""
        return a.size >= self.backend.row_kernel_min_size and self.axis in (-1, a.ndim - 1)

    def _reduce(self, ufunc_name: str, a):
        """a's max or sum over self.axis, keepdims. On NumPy arrays the ufunc's reduce is called directly:
        ndarray.max and .sum are Python wrappers around it, and on a tiny softmax they cost ~0.4 us each."""
        if self.backend.numpy_arrays:
            return getattr(self.xp, ufunc_name).reduce(a, self.axis, None, None, True)
        return a.max(axis=self.axis, keepdims=True) if ufunc_name == "maximum" else a.sum(axis=self.axis, keepdims=True)


class Softmax(_RowFunction):
    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = axis
        if self._rows(a):
            self.out = self.backend.kernel("softmax_forward")(a)
            return self.out
        e = a - self._reduce("maximum", a)
        xp.exp(e, out=e)  # in place: e is ours (small arrays pay mostly for each new array)
        e /= self._reduce("add", e)
        self.out = e
        return e

    def backward(self, g):
        # dL/dx = y * (g - sum(g * y)): the softmax Jacobian diag(y) - y y^T applied to g
        y = self.out
        if self._rows(g):
            return self.backend.kernel("softmax_backward")(g, y)
        return y * (g - self._reduce("add", g * y))


class LogSoftmax(_RowFunction):
    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = axis
        if self._rows(a):
            self.out = self.backend.kernel("log_softmax_forward")(a)
            return self.out
        shifted = a - self._reduce("maximum", a)
        self.out = shifted - xp.log(self._reduce("add", xp.exp(shifted)))
        return self.out

    def backward(self, g):
        if self._rows(g):
            return self.backend.kernel("log_softmax_backward")(g, self.out)
        return g - self.xp.exp(self.out) * self._reduce("add", g)


def softmax_simple(x, axis: int = -1):
    """softmax from primitive ops: exp(x - max) / sum(exp(x - max)). The max is detached: any
    constant shift gives the same softmax, so no gradient flows through it."""
    e = (x - x.max(axis=axis, keepdims=True).detach()).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_simple(x, axis: int = -1):
    """log_softmax from primitive ops: x - logsumexp(x)."""
    return x - logsumexp_simple(x, axis=axis, keepdims=True)
