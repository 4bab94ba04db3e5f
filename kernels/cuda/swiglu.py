"""SwiGLU's CUDA launchers (swiglu.cu); same contract as kernels/reference/swiglu.py, ``out=`` included.
Every array may be rows a fixed stride apart (the halves of the fused gate/up product); inputs laid out
otherwise are copied, and an ``out=`` array laid out otherwise returns NotImplemented (before writing)."""

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

FORWARD = kernel("swiglu.cu", "swiglu_forward", "const scalar_t* gate_rows, long long ld_gate, "
                 "const scalar_t* up_rows, long long ld_up, scalar_t* out_rows, long long ld_out, int n, int f")
BACKWARD = kernel("swiglu.cu", "swiglu_backward", "const scalar_t* g_rows, long long ld_g, "
                  "const scalar_t* gate_rows, long long ld_gate, const scalar_t* up_rows, long long ld_up, "
                  "scalar_t* dgate_rows, long long ld_dgate, scalar_t* dup_rows, long long ld_dup, int n, int f")
KERNELS = (FORWARD, BACKWARD)
THREADS = 256


def launch_config(n: int, f: int) -> Launch:
    return Launch((blocks_for(n * f, THREADS), 1, 1), (THREADS, 1, 1))


def _rows(xp, a: Any, f: int, writable: bool):
    """(array, row stride) for kernel use, or None where an output cannot be written in place."""
    ld = row_stride(a.shape, a.strides, a.itemsize, f)
    if ld is not None:
        return a, ld
    return None if writable else (xp.ascontiguousarray(a), f)


def _prepare(inputs: tuple, outputs: tuple):
    """Flat kernel arguments [a, ld, ...] for inputs then outputs, plus (n, f); None to decline."""
    first = inputs[0]
    if first.ndim == 0 or first.size == 0 or dtype_name(first.dtype) not in FLOAT_DTYPES:
        return None
    if any(a.dtype != first.dtype or a.shape != first.shape for a in inputs + outputs):
        return None
    f = first.shape[-1]
    n = first.size // f
    if n * f > INT32_MAX:
        return None
    xp = array_module(first)
    rows = [_rows(xp, a, f, False) for a in inputs] + [_rows(xp, a, f, True) for a in outputs]
    return None if any(r is None for r in rows) else (rows, n, f)


def swiglu_forward(gate: Any, up: Any, out: Any = None):
    xp = array_module(gate)
    result = xp.empty(gate.shape, dtype=gate.dtype) if out is None else out
    prep = _prepare((gate, up), (result,))
    if prep is None:
        return NotImplemented
    (ga, up_r, o), n, f = prep
    launch(FORWARD, variant(gate.dtype), types_of(gate.dtype), launch_config(n, f), gate_rows=ga[0],
           ld_gate=ga[1], up_rows=up_r[0], ld_up=up_r[1], out_rows=o[0], ld_out=o[1], n=n, f=f)
    return result


def swiglu_backward(g: Any, gate: Any, up: Any, out: Any = None):
    xp = array_module(gate)
    dgate, dup = out if out is not None else (xp.empty(gate.shape, gate.dtype), xp.empty(up.shape, up.dtype))
    prep = _prepare((g, gate, up), (dgate, dup))
    if prep is None:
        return NotImplemented
    (gr, ga, up_r, dg, du), n, f = prep
    launch(BACKWARD, variant(gate.dtype), types_of(gate.dtype), launch_config(n, f), g_rows=gr[0], ld_g=gr[1],
           gate_rows=ga[0], ld_gate=ga[1], up_rows=up_r[0], ld_up=up_r[1], dgate_rows=dg[0], ld_dgate=dg[1],
           dup_rows=du[0], ld_dup=du[1], n=n, f=f)
    return dgate, dup


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
