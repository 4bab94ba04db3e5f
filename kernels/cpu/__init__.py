"""Numba kernels for the "numba" backend; importing this package registers them all.
(Numba's threading layer and the malloc tuning are set by ``import minigrad``: minigrad/_process.py.)"""

from . import adamw, attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu  # noqa: F401
from ._cache_guard import refresh_stale_caches

refresh_stale_caches([attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu])
