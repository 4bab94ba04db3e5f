"""Numba ``index_add`` for the embedding's backward: out (V, D) [ids (N,)] += src (N, D).
Threads split the columns, so each element's additions still happen in the order of
``ids``, exactly as ``xp.add.at`` does them: the result is bit for bit the reference's
(kernels/reference/index_add.py). Every other key shape, and dtypes other than float32/float64,
return NotImplemented."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ._layout import same_float

_COLUMNS_PER_TASK = 64


@numba.njit(parallel=True, cache=True)
def _add_rows(out, ids, src):  # pragma: no cover - compiled
    n, d = src.shape
    n_tasks = (d + _COLUMNS_PER_TASK - 1) // _COLUMNS_PER_TASK
    for task in numba.prange(n_tasks):
        j0 = task * _COLUMNS_PER_TASK
        j1 = min(d, j0 + _COLUMNS_PER_TASK)
        for i in range(n):
            row = ids[i]
            for j in range(j0, j1):
                out[row, j] += src[i, j]


def _is_row_case(out: Any, key: Any, src: Any) -> bool:
    return (isinstance(key, np.ndarray) and key.ndim == 1 and key.dtype.kind in "iu"
            and isinstance(out, np.ndarray) and out.ndim == 2 and isinstance(src, np.ndarray)
            and src.shape == (key.shape[0], out.shape[1]) and same_float(out, src))


def index_add(out: np.ndarray, key: Any, src: Any) -> np.ndarray:
    if not _is_row_case(out, key, src) or key.size == 0:
        return NotImplemented
    v = out.shape[0]
    if key.max() >= v or key.min() < -v:
        raise IndexError(f"index_add: index {int(key.max() if key.max() >= v else key.min())} is out of "
                         f"bounds for axis 0 with size {v}")
    ids = np.where(key < 0, key + v, key) if key.min() < 0 else key
    _add_rows(out, ids.astype(np.int64, copy=False), src)
    return out
