"""MoE dispatch and combine, CUDA launchers (moe_dispatch.cu); same contract as
kernels/reference/moe_dispatch.py. Every float dtype; arrays of different float dtypes (weights against
ys, g) return NotImplemented. The weighted scatter-add of moe_combine is done as each token's gather over
its k slots, and its backward's dys as a permutation write: no atomics, so the sums are in slot order and
the same on every run (an atomicAdd's order, and so its float rounding, would change from run to run)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._runtime import (
    FLOAT_DTYPES,
    INT32_MAX,
    Launch,
    array_module,
    blocks_for,
    dtype_name,
    kernel,
    launch,
    round_up,
    types_of,
    variant,
)

GATHER = kernel("moe_dispatch.cu", "moe_gather",
                "const scalar_t* x, const long long* order, scalar_t* xs, int h, int top_k")
GATHER_BACKWARD = kernel("moe_dispatch.cu", "moe_gather_backward",
                         "const scalar_t* dxs, const long long* slot_row, scalar_t* dx, int h, int top_k")
COMBINE = kernel("moe_dispatch.cu", "moe_combine",
                 "const scalar_t* ys, const long long* slot_row, const scalar_t* weights, scalar_t* out, int h, "
                 "int top_k")
COMBINE_DYS = kernel("moe_dispatch.cu", "moe_combine_dys",
                     "const scalar_t* g, const long long* slot_row, const scalar_t* weights, scalar_t* dys, int h, "
                     "int top_k")
COMBINE_DWEIGHTS = kernel("moe_dispatch.cu", "moe_combine_dweights",
                          "const scalar_t* g, const scalar_t* ys, const long long* slot_row, scalar_t* dweights, "
                          "int h, int top_k")
KERNELS = (GATHER, GATHER_BACKWARD, COMBINE, COMBINE_DYS, COMBINE_DWEIGHTS)


def rows_config(rows: int, h: int) -> Launch:
    """A block row per output row, its threads over the H columns."""
    threads = min(256, round_up(h))
    return Launch((max(1, rows), blocks_for(h, threads), 1), (threads, 1, 1))


def dot_config(slots: int, h: int) -> Launch:
    return Launch((max(1, slots), 1, 1), (min(256, round_up(h)), 1, 1))


def _ok(*arrays: Any) -> bool:
    floats = [a for a in arrays if dtype_name(a.dtype) not in ("int64", "int32")]
    return (len({a.dtype for a in floats}) == 1 and dtype_name(floats[0].dtype) in FLOAT_DTYPES
            and all(0 < a.size <= INT32_MAX for a in arrays))


def _i64(xp, a: Any) -> Any:
    return xp.ascontiguousarray(a.astype(np.int64, copy=False))


def moe_gather(x: Any, order: Any, k: int):
    if not _ok(x, order) or x.ndim != 2:
        return NotImplemented
    xp = array_module(x)
    h = x.shape[1]
    xs = xp.empty((order.size, h), dtype=x.dtype)
    launch(GATHER, variant(x.dtype), types_of(x.dtype), rows_config(order.size, h), x=xp.ascontiguousarray(x),
           order=_i64(xp, order), xs=xs, h=h, top_k=k)
    return xs


def moe_gather_backward(dxs: Any, slot_row: Any):
    if not _ok(dxs, slot_row) or dxs.ndim != 2 or slot_row.ndim != 2:
        return NotImplemented
    xp = array_module(dxs)
    (n, k), h = slot_row.shape, dxs.shape[1]
    dx = xp.empty((n, h), dtype=dxs.dtype)
    launch(GATHER_BACKWARD, variant(dxs.dtype), types_of(dxs.dtype), rows_config(n, h),
           dxs=xp.ascontiguousarray(dxs), slot_row=_i64(xp, slot_row), dx=dx, h=h, top_k=k)
    return dx


def moe_combine(ys: Any, slot_row: Any, weights: Any):
    if not _ok(ys, slot_row, weights) or ys.ndim != 2 or weights.shape != slot_row.shape:
        return NotImplemented
    xp = array_module(ys)
    (n, k), h = slot_row.shape, ys.shape[1]
    out = xp.empty((n, h), dtype=ys.dtype)
    launch(COMBINE, variant(ys.dtype), types_of(ys.dtype), rows_config(n, h), ys=xp.ascontiguousarray(ys),
           slot_row=_i64(xp, slot_row), weights=xp.ascontiguousarray(weights), out=out, h=h, top_k=k)
    return out


def moe_combine_backward(g: Any, ys: Any, slot_row: Any, weights: Any):
    if not _ok(g, ys, slot_row, weights) or ys.ndim != 2 or weights.shape != slot_row.shape:
        return NotImplemented
    xp = array_module(ys)
    (n, k), (m, h) = slot_row.shape, ys.shape
    types, opts = types_of(ys.dtype), variant(ys.dtype)
    gc, rows, w = xp.ascontiguousarray(g), _i64(xp, slot_row), xp.ascontiguousarray(weights)
    dys = xp.zeros((m, h), dtype=ys.dtype)
    launch(COMBINE_DYS, opts, types, rows_config(n * k, h), g=gc, slot_row=rows, weights=w, dys=dys, h=h, top_k=k)
    dweights = xp.empty((n, k), dtype=ys.dtype)
    launch(COMBINE_DWEIGHTS, opts, types, dot_config(n * k, h), g=gc, ys=xp.ascontiguousarray(ys), slot_row=rows,
           dweights=dweights, h=h, top_k=k)
    return dys, dweights


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [("moe_dispatch.cu", variant(dt)) for dt in FLOAT_DTYPES]
