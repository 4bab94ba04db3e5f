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

from . import (  # noqa: F401,E402,E501
    adamw,
    attention,
    causal_conv1d,
    cross_entropy,
    erf,
    index_add,
    rms_norm,
    rope,
    selective_scan,
    ssd,
    swiglu,
)
from ._cache_guard import refresh_stale_caches  # noqa: E402

refresh_stale_caches([attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu, causal_conv1d,
                      selective_scan, ssd])

# The kernels written in the kernel tables' layout (fn(*arrays), NotImplemented to decline).
KERNELS = {
    "causal_conv1d_forward": causal_conv1d.causal_conv1d_forward,
    "causal_conv1d_backward": causal_conv1d.causal_conv1d_backward,
    "selective_scan_forward": selective_scan.selective_scan_forward,
    "selective_scan_backward": selective_scan.selective_scan_backward,
    "ssd_forward": ssd.ssd_forward,
    "ssd_backward": ssd.ssd_backward,
}

from ._table_bridge import register_table  # noqa: E402  (temporary: until the tables land)

register_table(KERNELS)
