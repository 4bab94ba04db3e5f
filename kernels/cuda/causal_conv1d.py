"""The causal depthwise conv1d's CUDA launchers (causal_conv1d.cu); same contract as
kernels/reference/causal_conv1d.py. float32, float16, bfloat16 and float64 (w and bias are cast to x's
dtype); more than ``MAX_TAPS`` taps returns NotImplemented. dL/dw and dL/dbias are sums over all
(batch, time) rows: each block sums its run of rows and the parts are added in a fixed order (no atomics),
so the result does not depend on scheduling."""

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

FORWARD = kernel("causal_conv1d.cu", "causal_conv1d_forward",
                 "const scalar_t* x, const scalar_t* w, const scalar_t* bias, scalar_t* y, long long n, int t_len, "
                 "int n_ch, int taps, int silu")
DPRE = kernel("causal_conv1d.cu", "causal_conv1d_dpre",
              "const scalar_t* g, const scalar_t* x, const scalar_t* w, const scalar_t* bias, acc_t* gp, long long n, "
              "int t_len, int n_ch, int taps, int silu")
DX = kernel("causal_conv1d.cu", "causal_conv1d_dx",
            "const acc_t* gp, const scalar_t* w, scalar_t* dx, long long n, int t_len, int n_ch, int taps")
DW = kernel("causal_conv1d.cu", "causal_conv1d_dw",
            "const acc_t* gp, const scalar_t* x, acc_t* partial, int rows, int t_len, int n_ch, int taps, "
            "int rows_per_part")
DW_SUM = kernel("causal_conv1d.cu", "causal_conv1d_dw_sum",
                "const acc_t* partial, scalar_t* dw, scalar_t* dbias, int n_parts, int n_ch, int taps")
KERNELS = (FORWARD, DPRE, DX, DW, DW_SUM)
MAX_TAPS = 8     # as in causal_conv1d.cu
CH, LANES = 32, 8
MAX_PARTS = 128  # blocks of rows the dw kernel splits Bt * T into
THREADS = 256


def elementwise_config(n: int) -> Launch:
    return Launch((blocks_for(n, THREADS), 1, 1), (THREADS, 1, 1))


def dw_config(rows: int, n_ch: int, k: int) -> tuple[Launch, Launch, int]:
    """(dw launch, dw-sum launch, rows per part)."""
    parts = min(rows, MAX_PARTS)
    rows_per_part = -(-rows // parts)
    parts = -(-rows // rows_per_part)
    return (Launch((blocks_for(n_ch, CH), parts, 1), (CH, LANES, 1)),
            elementwise_config(n_ch * (k + 1)), rows_per_part)


def _supported(x: Any, w: Any) -> bool:
    return (dtype_name(x.dtype) in FLOAT_DTYPES and x.ndim == 3 and x.size > 0 and w.ndim == 2
            and w.shape[0] == x.shape[2] and w.shape[1] <= MAX_TAPS and x.size <= INT32_MAX)


def _params(xp, x: Any, w: Any, bias: Any) -> tuple[Any, Any]:
    """w (C, K) and bias (C,) (zeros without one), contiguous, in x's dtype."""
    b = xp.zeros(x.shape[2], dtype=x.dtype) if bias is None else xp.ascontiguousarray(bias.astype(x.dtype))
    return xp.ascontiguousarray(w.astype(x.dtype)), b


def causal_conv1d_forward(x: Any, w: Any, bias: Any, silu: bool):
    if not _supported(x, w):
        return NotImplemented
    xp = array_module(x)
    bt, t, c = x.shape
    wc, b = _params(xp, x, w, bias)
    y = xp.empty(x.shape, dtype=x.dtype)
    launch(FORWARD, variant(x.dtype), types_of(x.dtype), elementwise_config(x.size), x=xp.ascontiguousarray(x),
           w=wc, bias=b, y=y, n=x.size, t_len=t, n_ch=c, taps=w.shape[1], silu=int(bool(silu)))
    return y


def causal_conv1d_backward(g: Any, x: Any, w: Any, bias: Any, silu: bool):
    if not _supported(x, w) or g.shape != x.shape or g.dtype != x.dtype:
        return NotImplemented
    xp = array_module(x)
    bt, t, c = x.shape
    k = w.shape[1]
    types, opts = types_of(x.dtype), variant(x.dtype)
    wc, b = _params(xp, x, w, bias)
    xc, gc = xp.ascontiguousarray(x), xp.ascontiguousarray(g)
    gp = xp.empty(x.shape, dtype=types["acc_t"])
    elem = elementwise_config(x.size)
    launch(DPRE, opts, types, elem, g=gc, x=xc, w=wc, bias=b, gp=gp, n=x.size, t_len=t, n_ch=c, taps=k,
           silu=int(bool(silu)))
    dx = xp.empty(x.shape, dtype=x.dtype)
    launch(DX, opts, types, elem, gp=gp, w=wc, dx=dx, n=x.size, t_len=t, n_ch=c, taps=k)
    dw_cfg, sum_cfg, rows_per_part = dw_config(bt * t, c, k)
    partial = xp.empty((dw_cfg.grid[1], k + 1, c), dtype=types["acc_t"])
    launch(DW, opts, types, dw_cfg, gp=gp, x=xc, partial=partial, rows=bt * t, t_len=t, n_ch=c, taps=k,
           rows_per_part=rows_per_part)
    dw, db = xp.empty((c, k), dtype=x.dtype), xp.empty((c,), dtype=x.dtype)
    launch(DW_SUM, opts, types, sum_cfg, partial=partial, dw=dw, dbias=db, n_parts=dw_cfg.grid[1], n_ch=c, taps=k)
    return dx, dw.astype(w.dtype, copy=False), None if bias is None else db.astype(bias.dtype, copy=False)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
