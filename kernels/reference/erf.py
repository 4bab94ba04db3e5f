"""erf's reference kernel, for the exact GELU (minigrad/ops/elementwise.py). The spec that
kernels/cpu/erf.py is held to."""

from __future__ import annotations

import math


def erf(xp, x):
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
