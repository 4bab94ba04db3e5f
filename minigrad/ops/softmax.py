"""softmax and log_softmax over one axis, fused: one Function each, backward by hand.

Both subtract the row maximum first: exp of a large logit would overflow, and softmax(x) equals
softmax(x - c) for any constant c.
"""

from __future__ import annotations

from ..autograd import Function


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

