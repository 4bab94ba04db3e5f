"""Numba erf for the exact GELU: ``math.erf`` elementwise, evaluated in float64 and stored in
the input's dtype, as the reference (kernels/reference/erf.py) does. float32/float64 only;
other dtypes return NotImplemented."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._layout import same_float


@numba.njit(parallel=True, cache=True)
def _erf_flat(x, out):  # pragma: no cover - compiled
    for i in numba.prange(x.size):
        out[i] = math.erf(np.float64(x[i]))


def erf(x: np.ndarray) -> np.ndarray:
    if not same_float(x):
        return NotImplemented
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, dtype=x.dtype)
    _erf_flat(flat, out)
    return out.reshape(x.shape)
