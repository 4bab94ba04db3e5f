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

from . import (  # noqa: F401,E402
    adamw,
    attention,
    cross_entropy,
    erf,
    index_add,
    moe_dispatch,
    moe_routing,
    rms_norm,
    rope,
    swiglu,
)
from ._cache_guard import refresh_stale_caches  # noqa: E402

refresh_stale_caches([attention, cross_entropy, erf, index_add, moe_dispatch, rms_norm, rope, swiglu])

# Kernels in the table layout (fn(*arrays), NotImplemented to decline), by name.
KERNELS = {
    "moe_topk": moe_routing.moe_topk,
    "moe_sort_by_expert": moe_routing.moe_sort_by_expert,
    "moe_gather": moe_dispatch.moe_gather,
    "moe_gather_backward": moe_dispatch.moe_gather_backward,
    "moe_combine": moe_dispatch.moe_combine,
    "moe_combine_backward": moe_dispatch.moe_combine_backward,
}

from .._table_shim import install_numba  # noqa: E402  (temporary: until the kernel tables land)

install_numba(KERNELS)
