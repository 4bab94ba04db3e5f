"""ReLU and GELU, forward and backward: the specs of the numba backend's activation kernels
(``kernels/cpu/activations.py``). GELU is x Phi(x), Phi the standard normal CDF: exact (through
erf, ``kernels/reference/erf.py``) or the tanh approximation."""

from __future__ import annotations

import math

from .erf import erf

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_CUBIC = 0.044715  # the tanh approximation's x^3 coefficient


def relu(xp, a):
    """(a) -> a where a > 0, else 0 (a NaN stays NaN, -inf gives 0)."""
    return xp.maximum(a, 0)


def relu_backward(xp, g, y):
    """(g, y = relu(a)) -> 0 where y <= 0, else g (torch's threshold_backward: a NaN y passes g on)."""
    return xp.where(y <= 0, 0, g)


def gelu(xp, a, tanh_approx=False):
    """(a) -> a Phi(a); with ``tanh_approx``, 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))."""
    if tanh_approx:
        return 0.5 * a * (1 + xp.tanh(_SQRT_2_OVER_PI * (a + _CUBIC * a * a * a)))
    return a * (0.5 * (1 + erf(xp, a * _INV_SQRT_2)))


def gelu_backward(xp, g, a, tanh_approx=False):
    """(g, a) -> g d/da gelu(a): g (Phi(a) + a phi(a)), phi the normal density; or the tanh form's derivative."""
    if tanh_approx:
        t = xp.tanh(_SQRT_2_OVER_PI * (a + _CUBIC * a * a * a))
        dinner = _SQRT_2_OVER_PI * (1 + 3 * _CUBIC * a * a)
        return g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * dinner)
    cdf = 0.5 * (1 + erf(xp, a * _INV_SQRT_2))
    return g * (cdf + a * (_INV_SQRT_2PI * xp.exp(-0.5 * a * a)))


NAMES = ("relu", "relu_backward", "gelu", "gelu_backward")
