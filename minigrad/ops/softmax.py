"""softmax and log_softmax over one axis, fused (one Function each, backward by hand), and their
``*_simple`` composites built from primitive ops, whose backward autograd derives (DeZero's
``softmax_simple`` is the anchor): the same values, for a learner to compare graph and speed.

Both subtract the row maximum first: exp of a large logit would overflow, and softmax(x) equals
softmax(x - c) for any constant c.
"""

from __future__ import annotations

from ..autograd import Function
from .reduce import logsumexp_simple


class Softmax(Function):
    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = axis
        e = xp.exp(a - a.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        # dL/dx = y * (g - sum(g * y)): the softmax Jacobian diag(y) - y y^T applied to g
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


def softmax_simple(x, axis: int = -1):
    """softmax from primitive ops: exp(x - max) / sum(exp(x - max)). The max is detached: any
    constant shift gives the same softmax, so no gradient flows through it."""
    e = (x - x.max(axis=axis, keepdims=True).detach()).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_simple(x, axis: int = -1):
    """log_softmax from primitive ops: x - logsumexp(x)."""
    return x - logsumexp_simple(x, axis=axis, keepdims=True)
