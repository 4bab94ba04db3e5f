"""Rotary position embedding's CUDA launcher (rope.cu); same contract as kernels/reference/rope.py.
x may be a column block of the qkv product (rows of H*D values a fixed stride apart); other layouts
are copied first. An odd head size returns NotImplemented."""

from __future__ import annotations

from typing import Any

from ._runtime import (
    FLOAT_DTYPES,
    INT32_MAX,
    Launch,
    array_module,
    blocks_for,
    dtype_name,
    kernel,
    launch,
    row_stride,
    types_of,
    variant,
)

ROPE = kernel("rope.cu", "rope", "const scalar_t* x_rows, const scalar_t* cos_t, const scalar_t* sin_t, "
              "scalar_t* out, int n_pairs, int t, int h, int d, long long ld, int transpose")
KERNELS = (ROPE,)
THREADS = 256


def launch_config(b: int, t: int, h: int, d: int) -> Launch:
    return Launch((blocks_for(b * t * h * (d // 2), THREADS), 1, 1), (THREADS, 1, 1))


def _apply(x: Any, cos: Any, sin: Any, transpose: bool):
    b, t, h, d = x.shape
    if dtype_name(x.dtype) not in FLOAT_DTYPES or x.size == 0 or d % 2 or b * t * h * d // 2 > INT32_MAX:
        return NotImplemented
    xp = array_module(x)
    ld = row_stride(x.shape, x.strides, x.itemsize, h * d)
    if ld is None:
        x = xp.ascontiguousarray(x)
        ld = h * d
    out = xp.empty((b, t, h, d), dtype=x.dtype)
    table = [xp.ascontiguousarray(a.astype(x.dtype, copy=False)) for a in (cos, sin)]
    launch(ROPE, variant(x.dtype), types_of(x.dtype), launch_config(b, t, h, d), x_rows=x, cos_t=table[0],
           sin_t=table[1], out=out, n_pairs=b * t * h * (d // 2), t=t, h=h, d=d, ld=ld, transpose=int(transpose))
    return out


def rope_forward(x: Any, cos: Any, sin: Any):
    return _apply(x, cos, sin, False)


def rope_backward(g: Any, cos: Any, sin: Any):
    return _apply(g, cos, sin, True)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
