"""Numba fused softmax + cross-entropy over the vocabulary: per row, one max, one exp pass
that writes the softmax straight into the gradient buffer, one sum, one scale. Same
contract as the reference (kernels/reference/cross_entropy.py): returns (loss_sum, n_valid,
d loss_sum / d logits). float32/float64 logits with integer targets; otherwise NotImplemented."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._fast_math import row_exp_sum, row_max
from ._layout import same_float


@numba.njit(parallel=True, cache=True)
def _rows(logits, targets, ignore_index, grad, losses):  # pragma: no cover - compiled
    n, c = logits.shape
    zero, one = logits.dtype.type(0.0), logits.dtype.type(1.0)
    for i in numba.prange(n):
        x = logits[i]
        gr = grad[i]
        t = targets[i]
        if t == ignore_index:
            for j in range(c):
                gr[j] = zero
            losses[i] = zero
            continue
        m = row_max(x, c)
        for j in range(c):
            gr[j] = x[j]
        s = row_exp_sum(gr, c, one, m)  # gr = exp(x - m), s = its sum
        inv = one / s
        for j in range(c):
            gr[j] *= inv
        gr[t] -= 1
        losses[i] = -((x[t] - m) - math.log(s))


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int):
    n, c = logits.shape
    if not same_float(logits) or targets.dtype.kind not in "iu":
        return NotImplemented
    valid = targets != ignore_index
    # NumPy's indexing in the reference wraps negative targets and rejects those >= C; do the same.
    if valid.any():
        tv = targets[valid]
        if tv.max() >= c or tv.min() < -c:
            bad = tv[(tv >= c) | (tv < -c)][0]
            raise IndexError(f"cross_entropy: target {int(bad)} is out of range for {c} classes")
        if tv.min() < 0:
            targets = np.where(valid & (targets < 0), targets + c, targets)
    grad = np.empty((n, c), dtype=logits.dtype)
    losses = np.empty(n, dtype=logits.dtype)
    _rows(logits, targets.astype(np.int64, copy=False), int(ignore_index), grad, losses)
    return losses.sum(), int(valid.sum()), grad
