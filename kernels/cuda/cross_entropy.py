"""Fused softmax + cross-entropy's CUDA launcher (cross_entropy.cu); same contract as
kernels/reference/cross_entropy.py. loss_sum is kept in float32 for float16/bfloat16 logits (float64
for float64); the gradient has the logits' dtype. One device-to-host transfer per call: the count of
targets not ignored and of targets out of range (an IndexError, as the reference's indexing raises)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._runtime import (
    FLOAT_DTYPES,
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

CROSS_ENTROPY = kernel("cross_entropy.cu", "softmax_cross_entropy",
                       "const scalar_t* logits, const long long* targets, long long ignore_index, scalar_t* grad, "
                       "acc_t* losses, int* status, int c")
KERNELS = (CROSS_ENTROPY,)


def launch_config(n: int, c: int) -> Launch:
    return Launch((n, 1, 1), (min(1024, round_up(c)), 1, 1))


def softmax_cross_entropy(logits: Any, targets: Any, ignore_index: int):
    n, c = logits.shape
    if dtype_name(logits.dtype) not in FLOAT_DTYPES or targets.dtype.kind not in "iu" or n == 0 or c == 0:
        return NotImplemented
    xp = array_module(logits)
    types = types_of(logits.dtype)
    logits = xp.ascontiguousarray(logits)
    t = xp.ascontiguousarray(targets.astype(np.int64, copy=False))
    grad = xp.empty((n, c), dtype=logits.dtype)
    losses = xp.empty((n,), dtype=types["acc_t"])
    status = xp.zeros((2,), dtype=np.int32)
    launch(CROSS_ENTROPY, variant(logits.dtype), types, launch_config(n, c), logits=logits, targets=t,
           ignore_index=int(ignore_index), grad=grad, losses=losses, status=status, c=c)
    n_valid, n_bad = (int(v) for v in to_host(status))
    if n_bad:
        host = to_host(t)
        bad = host[(host != ignore_index) & ((host >= c) | (host < -c))][0]
        raise IndexError(f"cross_entropy: target {int(bad)} is out of range for {c} classes")
    return losses.sum(), n_valid, grad


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype it runs."""
    return [(k.file, variant(dt)) for dt in FLOAT_DTYPES for k in {k.file: k for k in KERNELS}.values()]
