"""erf's CUDA launcher (erf.cu); same contract as kernels/reference/erf.py: evaluated in double,
stored in x's dtype. Strided inputs are copied first."""

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
    types_of,
    variant,
)

ERF = kernel("erf.cu", "erf_kernel", "const scalar_t* x, scalar_t* out, int n")
KERNELS = (ERF,)
THREADS = 256


def launch_config(n: int) -> Launch:
    return Launch((blocks_for(n, THREADS), 1, 1), (THREADS, 1, 1))


def erf(x: Any):
    if dtype_name(x.dtype) not in FLOAT_DTYPES or x.size == 0 or x.size > INT32_MAX:
        return NotImplemented
    xp = array_module(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    out = xp.empty(flat.shape, dtype=x.dtype)
    launch(ERF, variant(x.dtype), types_of(x.dtype), launch_config(flat.size), x=flat, out=out, n=flat.size)
    return out.reshape(x.shape)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
