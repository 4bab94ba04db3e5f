"""Fast chunked SSD (Mamba2 / Mamba3), forward and a hand-written backward that runs the chunk-to-chunk
recurrence in reverse. Held to kernels/reference/ssd.py by tests/test_kernels_mamba.py.

The work is small matrix products, (Q R) x N x (Q R) and alike per (batch, chunk, head). They stay BLAS
products (OpenBLAS beats any loop nest Numba emits), but are called from the compiled kernel itself
(``_gemm``) on the operands where they lie, so that a chunk's products and the passes between them (the
causal decay mask, the masked form M = (C B^T) * L, the per-step scalings, the decay gradients) run one
head at a time, in cache, without a layout copy or a temporary per product; ``_ssd_chunks`` holds that
compiled body and says how the multiply-adds are kept down.

Threads are our own: the batch rows (or, with fewer rows than threads, the heads) are split into one task
per thread, and each runs its products on a single-threaded BLAS (``_blas_threads``): one thread handoff per
call instead of one per product.

Nothing of size (Q, Q) per chunk is kept from the forward: the backward rebuilds the mask and C B^T from the
inputs and the saved chunk-start states (a few percent of its multiply-adds).
"""

from __future__ import annotations

import numpy as np

from . import _ssd_chunks as chunks
from ._blas_threads import blas_single_thread, n_threads, run_parallel
from ._gemm import blas_for


def _ranges(total: int, parts: int, unit: int = 1) -> list[tuple[int, int]]:
    """``total`` split into ``parts`` near-equal ranges of whole ``unit``s."""
    units = total // unit
    edges = [round(i * units / parts) * unit for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i] < edges[i + 1]]


def _tasks(bt: int, h: int, g: int) -> tuple[list[tuple[int, int, int, int]], bool]:
    """(b0, b1, h0, h1) per thread, and whether two tasks share a group (then each needs its own dB, dC).
    Batch rows are split first; with fewer rows than threads, each row's heads are, by whole groups if
    there are enough of them."""
    k = n_threads()
    if bt >= k or k == 1:
        return [(b0, b1, 0, h) for b0, b1 in _ranges(bt, min(k, bt))], False
    parts = min(h, -(-k // bt))
    unit = h // g if g >= parts else 1
    heads = _ranges(h, parts, unit)
    return [(b, b + 1, h0, h1) for b in range(bt) for h0, h1 in heads], unit == 1 and g < h


def _supported(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _c(a):
    return np.ascontiguousarray(a)


def ssd_forward(x, a, B, C, chunk, h0):
    if not _supported(x, a, B, C) or (h0 is not None and h0.dtype != x.dtype):
        return NotImplemented
    x, a, B, C = _c(x), _c(a), _c(B), _c(C)
    h0 = None if h0 is None else _c(h0)
    bt, t, r, h, p = x.shape
    n, q = B.shape[-1], int(chunk)
    y = np.empty(x.shape, dtype=x.dtype)
    last = np.empty((bt, h, p, n), dtype=x.dtype)
    starts = np.empty((bt, -(-t // q), h, p, n), dtype=x.dtype)
    blas = blas_for(x.dtype)
    tasks, _ = _tasks(bt, h, B.shape[3])

    def task(tk):
        chunks.forward_task(x, a, B, C, q, last if h0 is None else h0, h0 is not None, blas, *tk, y, last, starts)

    with blas_single_thread():
        run_parallel(task, tasks)
    return y, last, starts


def ssd_backward(g, x, a, B, C, chunk, starts):
    if not _supported(g, x, a, B, C, starts):
        return NotImplemented
    g, x, a, B, C, starts = _c(g), _c(x), _c(a), _c(B), _c(C), _c(starts)
    dx, da = np.empty(x.shape, dtype=x.dtype), np.empty(a.shape, dtype=x.dtype)
    blas = blas_for(x.dtype)
    tasks, shared = _tasks(x.shape[0], x.shape[3], B.shape[3])
    # tasks sharing a group each add their heads' share into their own zeroed dB, dC; summed below
    outs = [(np.zeros(B.shape, x.dtype), np.zeros(C.shape, x.dtype)) for _ in tasks] if shared else \
        [(np.empty(B.shape, x.dtype), np.empty(C.shape, x.dtype))] * len(tasks)

    def task(i):
        chunks.backward_task(g, x, a, B, C, int(chunk), starts, blas, *tasks[i], dx, da, *outs[i])

    with blas_single_thread():
        run_parallel(task, range(len(tasks)))
    dB, dC = outs[0]
    for more_dB, more_dC in outs[1:] if shared else ():
        dB += more_dB
        dC += more_dC
    return dx, da, dB, dC
