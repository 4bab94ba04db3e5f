"""Threaded Numba twins of ReLU and GELU, forward and backward (``kernels/reference/activations.py``).

NumPy's exact GELU is a dozen whole-array passes and, lacking an erf, a long series (the reference's
erf is a spec, not a fast path). Here each is one pass over blocks of ``BLOCK`` elements spread over
the threads, and a GELU's backward recomputes Phi from its input rather than keeping it. For float32
the normal CDF comes from a vectorizable erfc (``_cdf_float32``, below) and exp from ``_fast_math``;
float64 uses ``math.erf`` and ``math.exp``. The tanh form is evaluated through sigmoids (``_sigmoid_pair``),
which do not cancel where the reference's 1 + tanh does.

Handled: float32 or float64 C-contiguous arrays of one shape and dtype. Anything else returns
NotImplemented and the reference runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from ..reference.erf import ERFC_FIT
from ._fast_math import CONTRACT, fast_exp
from ._layout import dense, same_float

BLOCK = 1 << 14  # elements per parallel task

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_CUBIC = 0.044715

# erfc(z) = t exp(-z^2 + P(t)) with t = 1 / (1 + z/2), for z >= 0, P our own fit (kernels/reference/erf.py:
# relative error <= 1e-7 for every z >= 0). A relative erfc keeps Phi(x) = erfc(-x/sqrt 2)/2 accurate for very
# negative x too, where 1 + erf(x / sqrt 2) would cancel: evaluated in float32, within 5e-7 (1 + x^2 / 2)
# relative (the rounding of x^2 is what grows; tests/test_kernels_generic.py).
_E9, _E8, _E7, _E6, _E5, _E4, _E3, _E2, _E1, _E0 = (np.float32(c) for c in ERFC_FIT)
_ONE32, _HALF32, _INV_SQRT_2_32 = np.float32(1.0), np.float32(0.5), np.float32(_INV_SQRT_2)


# error_model: the division must not be checked for zero, or the loops stay scalar; CONTRACT: FMAs
@numba.njit(fastmath=CONTRACT, error_model="numpy")
def _cdf_float32(x):  # pragma: no cover - compiled
    z = abs(x) * _INV_SQRT_2_32
    t = _ONE32 / (_ONE32 + _HALF32 * z)
    # P(t) by Estrin's scheme: pairs, then powers t^2, t^4, t^8. Its dependency chain is 4 multiply-adds
    # long where Horner's is 9, and the loop runs ~25% faster for it (float32 rounding alike: 2e-7).
    t2 = t * t
    t4 = t2 * t2
    p = ((_E9 * t + _E8) * (t4 * t4) + ((_E7 * t + _E6) * t2 + (_E5 * t + _E4)) * t4
         + ((_E3 * t + _E2) * t2 + (_E1 * t + _E0)))
    half_erfc = _HALF32 * t * fast_exp(p - z * z)  # erfc(|x| / sqrt 2) / 2 = Phi(-|x|)
    return _ONE32 - half_erfc if x >= np.float32(0.0) else half_erfc  # (a NaN takes the second: NaN)


def normal_cdf(x):
    """Phi(x), the standard normal CDF. (Python fallback; compiled code uses the overload.)"""
    return 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


@overload(normal_cdf, inline="always")
def _normal_cdf_overload(x):
    if x == types.float32:
        return lambda x: _cdf_float32(x)
    return lambda x: 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


@numba.njit(error_model="numpy")
def _sigmoid_pair(v, one):  # pragma: no cover - compiled
    """(sigmoid(v), sigmoid(-v)), each with a relative error of a few ulp. The tanh GELU's 1 + tanh(u) is
    2 sigmoid(2u) and 1 - tanh(u)^2 is 4 sigmoid(2u) sigmoid(-2u): written so, neither cancels for large |u|
    (1 + tanh(u) in float32 has no correct digit left once tanh(u) rounds near -1)."""
    e = fast_exp(-abs(v))  # <= 1: nothing overflows
    small = e / (one + e)  # sigmoid(-|v|)
    large = one / (one + e)  # sigmoid(|v|)
    return (large, small) if v >= 0 else (small, large)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _relu(a, g, out, backward):  # pragma: no cover - compiled
    """forward: out = a unless a <= 0, then 0 (NaN stays NaN); backward: out = g unless a <= 0, then 0
    (a is then relu's output)."""
    n = out.size
    zero = a.dtype.type(0.0)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        x, o = a[lo:hi], out[lo:hi]
        if backward:  # two loops, not a test per element: each one vectorizes
            gg = g[lo:hi]
            for i in range(hi - lo):
                o[i] = zero if x[i] <= zero else gg[i]
        else:
            for i in range(hi - lo):
                o[i] = zero if x[i] <= zero else x[i]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _gelu(a, out, tanh_approx):  # pragma: no cover - compiled
    n = out.size
    one, two = a.dtype.type(1.0), a.dtype.type(2.0)
    k, c = a.dtype.type(_SQRT_2_OVER_PI), a.dtype.type(_CUBIC)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        x, o = a[lo:hi], out[lo:hi]
        if tanh_approx:  # two loops, not a test per element: each one vectorizes
            for i in range(hi - lo):
                xi = x[i]
                p, _ = _sigmoid_pair(two * k * (xi + c * xi * xi * xi), one)
                o[i] = xi * p
        else:
            for i in range(hi - lo):
                o[i] = x[i] * normal_cdf(x[i])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _gelu_backward(g, a, out, tanh_approx):  # pragma: no cover - compiled
    n = out.size
    half, one, two, three = a.dtype.type(0.5), a.dtype.type(1.0), a.dtype.type(2.0), a.dtype.type(3.0)
    k, c, inv_sqrt_2pi = a.dtype.type(_SQRT_2_OVER_PI), a.dtype.type(_CUBIC), a.dtype.type(_INV_SQRT_2PI)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        gg, x, o = g[lo:hi], a[lo:hi], out[lo:hi]
        if tanh_approx:  # (1 + t) / 2 = p and (1 - t^2) / 4 = p q, from _sigmoid_pair
            for i in range(hi - lo):
                xi = x[i]
                p, q = _sigmoid_pair(two * k * (xi + c * xi * xi * xi), one)
                o[i] = gg[i] * (p + two * xi * p * q * (k * (one + three * c * xi * xi)))
        else:
            for i in range(hi - lo):
                xi = x[i]
                o[i] = gg[i] * (normal_cdf(xi) + xi * (inv_sqrt_2pi * fast_exp(-half * xi * xi)))


def _handled(*arrays: np.ndarray) -> bool:
    a = arrays[0]
    return same_float(*arrays) and all(x.shape == a.shape and x.flags.c_contiguous for x in arrays)


def relu(a):
    if not _handled(a):
        return NotImplemented
    out = np.empty(a.shape, a.dtype)
    if a.size:
        flat = a.reshape(-1)
        _relu(flat, flat, out.reshape(-1), False)
    return out


def relu_backward(g, y):
    g = dense(g) if g.shape == y.shape else None  # a sum's gradient arrives broadcast
    if g is None or not _handled(g, y):
        return NotImplemented
    out = np.empty(g.shape, g.dtype)
    if g.size:
        _relu(y.reshape(-1), g.reshape(-1), out.reshape(-1), True)
    return out


def gelu(a, tanh_approx=False):
    if not _handled(a):
        return NotImplemented
    out = np.empty(a.shape, a.dtype)
    if a.size:
        _gelu(a.reshape(-1), out.reshape(-1), bool(tanh_approx))
    return out


def gelu_backward(g, a, tanh_approx=False):
    g = dense(g) if g.shape == a.shape else None  # a sum's gradient arrives broadcast
    if g is None or not _handled(g, a):
        return NotImplemented
    out = np.empty(g.shape, g.dtype)
    if g.size:
        _gelu_backward(g.reshape(-1), a.reshape(-1), out.reshape(-1), bool(tanh_approx))
    return out


NAMES = ("relu", "relu_backward", "gelu", "gelu_backward")
