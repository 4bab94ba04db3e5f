"""``index_add``'s CUDA launcher (index_add.cu) for the embedding's backward: out (V, D) [ids (N,)] +=
src (N, D), with xp.add.at's order of additions (a stable sort of the ids, no atomics), so float32
results equal the reference's bit for bit. Every other key shape, or dtypes that differ, return
NotImplemented. One device-to-host transfer: the ids' range, checked as the reference's indexing does."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._runtime import (
    FLOAT_DTYPES,
    INT32_MAX,
    Launch,
    array_module,
    dtype_name,
    kernel,
    launch,
    round_up,
    to_host,
    types_of,
    variant,
)

ADD_ROWS = kernel("index_add.cu", "index_add_rows", "scalar_t* out, const long long* sorted_ids, "
                  "const long long* order, const scalar_t* src, int n, int d")
KERNELS = (ADD_ROWS,)


def launch_config(n: int, d: int) -> Launch:
    threads = min(256, round_up(d))
    return Launch((n, -(-d // threads), 1), (threads, 1, 1))


def _is_row_case(out: Any, key: Any, src: Any) -> bool:
    return (hasattr(key, "dtype") and key.ndim == 1 and key.dtype.kind in "iu" and out.ndim == 2
            and src.shape == (key.shape[0], out.shape[1]) and out.dtype == src.dtype
            and dtype_name(out.dtype) in FLOAT_DTYPES and out.flags.c_contiguous and 0 < key.size <= INT32_MAX)


def index_add(out: Any, key: Any, src: Any):
    if not _is_row_case(out, key, src):
        return NotImplemented
    xp = array_module(out)
    v, d = out.shape
    ids = key.astype(np.int64, copy=False)
    lo, hi = (int(x) for x in to_host(xp.stack([ids.min(), ids.max()])))
    if hi >= v or lo < -v:
        raise IndexError(f"index_add: index {hi if hi >= v else lo} is out of bounds for axis 0 with size {v}")
    if lo < 0:
        ids = xp.where(ids < 0, ids + v, ids)
    order = xp.argsort(ids, kind="stable") if xp is np else xp.argsort(ids)  # CuPy's argsort is always stable
    launch(ADD_ROWS, variant(out.dtype), types_of(out.dtype), launch_config(ids.size, d), out=out,
           sorted_ids=xp.ascontiguousarray(ids[order]), order=xp.ascontiguousarray(order.astype(np.int64)),
           src=xp.ascontiguousarray(src), n=ids.size, d=d)
    return out


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
