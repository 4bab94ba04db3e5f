"""Mamba1's selective scan, CUDA launchers (selective_scan.cu); same contract as
kernels/reference/selective_scan.py, saved state included: ``starts`` is the reference's (the state before
every ``chunk`` steps, in u's dtype), so this backward takes the reference forward's and the other way
round, and nothing here needs SAVED_STATE's NotImplemented rule. float32, float16, bfloat16 and float64
(A, B, C, delta, h0 are cast to u's dtype; the state is kept in float32, or float64); a state wider than
``MAX_STATE`` returns NotImplemented.

The backward keeps one chunk of recomputed states, (chunk, N, Bt * D) acc_t: 64 x 16 x Bt D x 4 bytes, 4 KiB
per (batch row, channel) at the defaults. dB, dC (sums over channels) and dA (a sum over the batch) are
written as per-warp / per-row partials and added in a fixed order: no atomics, the same bits every run."""

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

FORWARD = kernel("selective_scan.cu", "selective_scan_forward",
                 "const scalar_t* u, const scalar_t* delta, const scalar_t* A, const scalar_t* B, const scalar_t* C, "
                 "const scalar_t* h0, scalar_t* y, scalar_t* last, scalar_t* starts, int t_len, int d, int n, "
                 "int chunk, int has_h0")
BACKWARD = kernel("selective_scan.cu", "selective_scan_backward",
                  "const scalar_t* g, const scalar_t* u, const scalar_t* delta, const scalar_t* A, const scalar_t* B, "
                  "const scalar_t* C, const scalar_t* starts, acc_t* hs, scalar_t* du_out, scalar_t* ddelta, "
                  "acc_t* part_a, acc_t* part_b, acc_t* part_c, int bt, int t_len, int d, int n, int chunk")
PART_SUM = kernel("selective_scan.cu", "selective_scan_part_sum",
                  "const acc_t* part, scalar_t* out, long long m, int n_parts")
KERNELS = (FORWARD, BACKWARD, PART_SUM)
STATE_SIZES = (16, 64)  # the MAX_N variants: registers for the state, sized to Mamba's usual N = 16
MAX_STATE = STATE_SIZES[-1]
THREADS = 64            # channels per block: 2 warps (the backward's partial sums are per warp)


def max_n(n: int) -> int:
    return next(s for s in STATE_SIZES if n <= s)


def scan_config(bt: int, d: int) -> Launch:
    return Launch((blocks_for(d, THREADS), bt, 1), (THREADS, 1, 1))


def sum_config(m: int) -> Launch:
    return Launch((blocks_for(m, 256), 1, 1), (256, 1, 1))


def _supported(u: Any, A: Any, chunk: int) -> bool:
    return (dtype_name(u.dtype) in FLOAT_DTYPES and u.ndim == 3 and u.size > 0 and A.ndim == 2
            and 0 < A.shape[1] <= MAX_STATE and chunk > 0 and u.size * A.shape[1] <= INT32_MAX
            and u.shape[0] <= 65535)


def _cast(xp, dtype, *arrays):
    return [xp.ascontiguousarray(a.astype(dtype, copy=False)) for a in arrays]


def selective_scan_forward(u: Any, delta: Any, A: Any, B: Any, C: Any, h0: Any, chunk: int):
    if not _supported(u, A, chunk):
        return NotImplemented
    xp = array_module(u)
    bt, t, d = u.shape
    n = A.shape[1]
    uc, dc, ac, bc, cc = _cast(xp, u.dtype, u, delta, A, B, C)
    h0c = xp.zeros(1, dtype=u.dtype) if h0 is None else _cast(xp, u.dtype, h0)[0]
    y, last = xp.empty(u.shape, dtype=u.dtype), xp.empty((bt, d, n), dtype=u.dtype)
    starts = xp.empty((bt, -(-t // chunk), d, n), dtype=u.dtype)
    launch(FORWARD, variant(u.dtype, max_n=max_n(n)), types_of(u.dtype), scan_config(bt, d), u=uc, delta=dc, A=ac,
           B=bc, C=cc, h0=h0c, y=y, last=last, starts=starts, t_len=t, d=d, n=n, chunk=chunk,
           has_h0=int(h0 is not None))
    return y, last, starts


def selective_scan_backward(g: Any, u: Any, delta: Any, A: Any, B: Any, C: Any, starts: Any, chunk: int):
    if not _supported(u, A, chunk):
        return NotImplemented
    bt, t, d = u.shape
    n = A.shape[1]
    if tuple(starts.shape) != (bt, -(-t // chunk), d, n):
        return NotImplemented
    xp = array_module(u)
    types, opts = types_of(u.dtype), variant(u.dtype, max_n=max_n(n))
    acc = types["acc_t"]
    gc, uc, dc, ac, bc, cc, sc = _cast(xp, u.dtype, g, u, delta, A, B, C, starts)
    cfg = scan_config(bt, d)
    n_warps = cfg.grid[0] * THREADS // 32
    hs = xp.empty((min(chunk, t), n, bt * d), dtype=acc)
    du, ddelta = xp.empty(u.shape, dtype=u.dtype), xp.empty(u.shape, dtype=u.dtype)
    part_a = xp.empty((bt, d, n), dtype=acc)
    # warps past the last channel write nothing: their rows must add zero
    part_b, part_c = xp.zeros((n_warps, bt, t, n), dtype=acc), xp.zeros((n_warps, bt, t, n), dtype=acc)
    launch(BACKWARD, opts, types, cfg, g=gc, u=uc, delta=dc, A=ac, B=bc, C=cc, starts=sc, hs=hs, du_out=du,
           ddelta=ddelta, part_a=part_a, part_b=part_b, part_c=part_c, bt=bt, t_len=t, d=d, n=n, chunk=chunk)
    dA, dB, dC = (xp.empty(shape, dtype=u.dtype) for shape in ((d, n), (bt, t, n), (bt, t, n)))
    for part, out, parts in ((part_a, dA, bt), (part_b, dB, n_warps), (part_c, dC, n_warps)):
        launch(PART_SUM, opts, types, sum_config(out.size), part=part, out=out, m=out.size, n_parts=parts)
    return du, ddelta, dA.astype(A.dtype, copy=False), dB.astype(B.dtype, copy=False), dC.astype(C.dtype, copy=False)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype with the usual state
    size, and float32 with the widest."""
    return ([("selective_scan.cu", variant(dt, max_n=STATE_SIZES[0])) for dt in FLOAT_DTYPES]
            + [("selective_scan.cu", variant("float32", max_n=MAX_STATE))])
