"""RMSNorm's CUDA launchers (rms_norm.cu); same contract as kernels/reference/rms_norm.py.
float32, float16, bfloat16 and float64; a row wider than ``MAX_COLS * 1024`` returns NotImplemented."""

from __future__ import annotations

from typing import Any

from ._runtime import (
    FLOAT_DTYPES,
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

FORWARD = kernel("rms_norm.cu", "rms_norm_forward",
                 "const scalar_t* x, const scalar_t* w, scalar_t* y, scalar_t* rstd, int d, acc_t eps")
BACKWARD = kernel("rms_norm.cu", "rms_norm_backward",
                  "const scalar_t* g, const scalar_t* x, const scalar_t* w, const scalar_t* rstd, scalar_t* gx, "
                  "acc_t* partial_dw, int n, int d, int rows_per_part")
DW_SUM = kernel("rms_norm.cu", "rms_norm_dw_sum", "const acc_t* partial_dw, scalar_t* dw, int n_parts, int d")
KERNELS = (FORWARD, BACKWARD, DW_SUM)
MAX_COLS = 8      # as in rms_norm.cu: columns of dL/dw one backward thread accumulates
MAX_PARTS = 256   # blocks of the backward, each summing dL/dw over its run of rows


def forward_config(n: int, d: int) -> Launch:
    return Launch((n, 1, 1), (min(512, round_up(d)), 1, 1))


def backward_config(n: int, d: int) -> tuple[Launch, Launch, int] | None:
    """(backward launch, dw-sum launch, rows per part), or None for rows too wide."""
    threads = max(min(256, round_up(d)), round_up(-(-d // MAX_COLS)))
    if threads > 1024:
        return None
    parts = min(n, MAX_PARTS)
    rows_per_part = -(-n // parts)
    parts = -(-n // rows_per_part)
    return Launch((parts, 1, 1), (threads, 1, 1)), Launch((blocks_for(d, 256), 1, 1), (256, 1, 1)), rows_per_part


def _rows(xp, a: Any) -> Any:
    return xp.ascontiguousarray(a).reshape(-1, a.shape[-1])


def rms_norm_forward(x: Any, w: Any, eps: float):
    if dtype_name(x.dtype) not in FLOAT_DTYPES or x.size == 0:
        return NotImplemented
    xp = array_module(x)
    x2 = _rows(xp, x)
    n, d = x2.shape
    y = xp.empty((n, d), dtype=x.dtype)
    rstd = xp.empty((n,), dtype=x.dtype)
    launch(FORWARD, variant(x.dtype), types_of(x.dtype), forward_config(n, d), x=x2,
           w=xp.ascontiguousarray(w.astype(x.dtype, copy=False)), y=y, rstd=rstd, d=d, eps=eps)
    return y.reshape(x.shape), rstd.reshape(*x.shape[:-1], 1)


def rms_norm_backward(g: Any, x: Any, w: Any, rstd: Any):
    if dtype_name(x.dtype) not in FLOAT_DTYPES or x.size == 0 or len({g.dtype, x.dtype, rstd.dtype}) != 1:
        return NotImplemented
    n, d = x.size // x.shape[-1], x.shape[-1]
    cfg = backward_config(n, d)
    if cfg is None:
        return NotImplemented
    bwd, dw_sum, rows_per_part = cfg
    xp = array_module(x)
    types, opts = types_of(x.dtype), variant(x.dtype)
    gx = xp.empty((n, d), dtype=x.dtype)
    partial = xp.empty((bwd.grid[0], d), dtype=types["acc_t"])
    launch(BACKWARD, opts, types, bwd, g=_rows(xp, g), x=_rows(xp, x), w=xp.ascontiguousarray(w.astype(x.dtype)),
           rstd=xp.ascontiguousarray(rstd).reshape(-1), gx=gx, partial_dw=partial, n=n, d=d,
           rows_per_part=rows_per_part)
    dw = xp.empty((d,), dtype=x.dtype)
    launch(DW_SUM, opts, types, dw_sum, partial_dw=partial, dw=dw, n_parts=bwd.grid[0], d=d)
    return gx.reshape(x.shape), dw.astype(w.dtype, copy=False)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
