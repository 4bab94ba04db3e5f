"""softmax and log_softmax over the last axis, forward and backward: the specs of the numba backend's
row kernels (``kernels/cpu/softmax.py``). The row maximum is subtracted first so exp cannot overflow."""

from __future__ import annotations


def softmax_forward(xp, x):
    """(x (..., C)) -> y = exp(x - max) / sum(exp(x - max)) over the last axis."""
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(xp, g, y):
    """(g, y (..., C)) -> dx = y * (g - sum(g * y)): the softmax Jacobian diag(y) - y y^T applied to g."""
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


def log_softmax_forward(xp, x):
    """(x (..., C)) -> y = (x - max) - log(sum(exp(x - max))) over the last axis."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(xp, g, y):
    """(g, y (..., C)) -> dx = g - exp(y) * sum(g)."""
    return g - xp.exp(y) * g.sum(axis=-1, keepdims=True)


NAMES = ("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward")
