"""erf's reference kernel, for the exact GELU (minigrad/ops/elementwise.py). The spec that
kernels/cpu/erf.py is held to, and what the numpy backend runs.

float64 inputs get the series below (~1e-14, slow). float32 inputs get a form ~20x faster and as
exact as float32 can hold: a Taylor polynomial near 0 (relative there, where erf is small) and
1 - erfc beyond, erfc from ``ERFC_FIT``, which kernels/cpu/activations.py uses for the normal CDF too.
"""

from __future__ import annotations

import math

# erfc(z) = t exp(-z^2 + P(t)) with t = 1 / (1 + z/2), for z >= 0 (the form of Numerical Recipes'
# erfcc; these coefficients are our own fit: least squares on Chebyshev nodes in t, reweighted towards
# minimax, against the exact exponent log(erfc(z) / t) + z^2). |P(t) - exact| <= 1e-7 for every z >= 0,
# so erfc's relative error is <= 1e-7, near float32's 6e-8. Highest power first.
ERFC_FIT = (
    0.16876100433557908, -0.8133255471278048, 1.4732552574032562, -1.1210997462457863, 0.2713515094120187,
    -0.18396615851577197, 0.09638813209803097, 0.3741250380611763, 1.0000226498805478, -1.2655122201048024)

# erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)): for |x| < 1 twelve terms leave < 1e-10.
_TAYLOR = tuple((2.0 / math.sqrt(math.pi)) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(11, -1, -1))


def erf(xp, x):
    """erf elementwise, in x's dtype: float32 by ``_erf_float32``, anything else from the float64 series."""
    if x.dtype == "float32":
        return _erf_float32(xp, x)
    return _erf_series(xp, x)


def _erf_float32(xp, x):
    """Both branches on every element, in place where possible (each NumPy pass costs ~0.3 ms on 1M)."""
    z = xp.minimum(xp.abs(x), 10.0)  # erfc(10) = 2e-45 is 0 in float32; the clamp keeps z^2 finite
    z2 = z * z
    small = xp.full_like(x, _TAYLOR[0])
    for c in _TAYLOR[1:]:  # Horner in z^2
        small *= z2
        small += c
    small *= z
    t = 1 / (1 + 0.5 * z)
    p = xp.full_like(x, ERFC_FIT[0])
    for c in ERFC_FIT[1:]:
        p *= t
        p += c
    p -= z2
    erfc = xp.exp(p, out=p)
    erfc *= t
    return xp.copysign(xp.where(z < 1, small, 1 - erfc), x)  # (a NaN x gives NaN)


def _erf_series(xp, x):
    """erf in float64 from xp primitives alone: a Taylor series for |x| <= 3, the
    continued fraction of erfc beyond. Accurate to ~1e-14; slow but exact enough to be
    the spec the fast kernels are held to."""
    x64 = x.astype("float64")
    ax = xp.abs(x64)
    s = xp.minimum(ax, 3.0)
    s2 = s * s
    term = s
    total = s
    for n in range(1, 90):
        term = term * (-s2) / n
        total = total + term / (2 * n + 1)
    small = (2.0 / math.sqrt(math.pi)) * total
    z = xp.maximum(ax, 3.0)
    frac = z
    for k in range(60, 0, -1):  # evaluate z + (1/2)/(z + 1/(z + (3/2)/(z + ...))) from the tail
        frac = z + (k / 2.0) / frac
    large = 1.0 - xp.exp(-z * z) / (math.sqrt(math.pi) * frac)
    return (xp.sign(x64) * xp.where(ax <= 3.0, small, large)).astype(x.dtype, copy=False)
