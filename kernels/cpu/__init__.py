"""Numba kernels for the "numba" backend; importing this package registers them all."""

import os as _os

import numba as _numba

# Numba's default "omp" threading layer and OpenBLAS's threads fight over the cores (a training
# step runs ~1.8x slower); "workqueue" yields between parallel regions. Set before any kernel
# runs; a user's own NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _numba.config.THREADING_LAYER = "workqueue"

from ._malloc import keep_freed_memory  # noqa: E402

keep_freed_memory()  # large per-step arrays reuse heap memory instead of fresh, zeroed pages

from . import adamw, attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu  # noqa: F401,E402
from ._cache_guard import refresh_stale_caches  # noqa: E402

refresh_stale_caches([attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu])
