"""Numba erf for the exact GELU: ``math.erf`` elementwise, evaluated in float64 and stored in
the input's dtype, as the reference (``minigrad.ops.elementwise``) does."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from minigrad.backend import register_kernel


@numba.njit(parallel=True, cache=True)
def _erf_flat(x, out):  # pragma: no cover - compiled
    for i in numba.prange(x.size):
        out[i] = math.erf(np.float64(x[i]))


@register_kernel("erf", "numba")
def erf(xp: Any, x: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, dtype=x.dtype)
    _erf_flat(flat, out)
    return out.reshape(x.shape)
