"""Elementwise kernels: arithmetic, exp/log/tanh/sigmoid/SiLU and the fused backward of the activations.

These are the specs of the numba backend's threaded twins (``kernels/cpu/elementwise.py``), so each is
the plain NumPy expression the ops in ``minigrad/ops/elementwise.py`` would write. Binary kernels take
operands that broadcast as NumPy's do; the output has their common dtype.
"""

from __future__ import annotations


def add(xp, a, b):
    return a + b


def sub(xp, a, b):
    return a - b


def mul(xp, a, b):
    return a * b


def div(xp, a, b):
    return a / b


def exp(xp, a):
    return xp.exp(a)


def log(xp, a):
    return xp.log(a)


def tanh(xp, a):
    return xp.tanh(a)


def sigmoid(xp, a):
    # 0.5 * (1 + tanh(a/2)) never overflows, unlike 1 / (1 + exp(-a)).
    return 0.5 * (1 + xp.tanh(0.5 * a))


def silu_forward(xp, a, keep_sigmoid=True):
    """-> (a * sigmoid(a), sigmoid(a)): the backward needs the sigmoid (None when not keep_sigmoid)."""
    s = sigmoid(xp, a)
    return a * s, (s if keep_sigmoid else None)


def tanh_backward(xp, g, y):
    """d tanh: g * (1 - y^2), y = tanh(a)."""
    return g * (1 - y * y)


def sigmoid_backward(xp, g, y):
    """d sigmoid: g * y * (1 - y), y = sigmoid(a)."""
    return g * y * (1 - y)


def silu_backward(xp, g, a, s):
    """d silu: g * s * (1 + a * (1 - s)), s = sigmoid(a)."""
    return g * (s * (1 + a * (1 - s)))


NAMES = ("add", "sub", "mul", "div", "exp", "log", "tanh", "sigmoid", "silu_forward", "tanh_backward",
         "sigmoid_backward", "silu_backward")
