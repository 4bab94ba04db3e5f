"""Numba AdamW: one fused pass over the elements instead of the reference's ~10 array sweeps.

Held by tests/test_optim.py to the xp-generic reference kernels/reference/adamw.py
(same operation order, scalars in the parameter's dtype, no fastmath: the two agree to the last bit
or nearly so). Elements are split into chunks of ``_CHUNK`` so that ``prange`` hands each thread a
contiguous, cache-friendly run rather than single elements.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._layout import same_float

_CHUNK = 32768  # elements per parallel work item: 4 arrays x 128 KiB of float32 stay in L2


@numba.njit(parallel=True, cache=True, fastmath=False)
def _adamw_flat(p, g, m, v, decay, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps,
                step_size):  # pragma: no cover - compiled
    n = p.size
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(n_chunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        # chunk views indexed from 0: LLVM then knows i >= 0, drops the negative-index wraparound
        # select and vectorizes the loop (sqrt and div included); indexing p[start + i] stays scalar
        pc, gc, mc, vc = p[start:stop], g[start:stop], m[start:stop], v[start:stop]
        for i in range(stop - start):
            gi = gc[i]
            mi = mc[i] + (gi - mc[i]) * one_minus_beta1
            vi = vc[i] * beta2 + (gi * gi) * one_minus_beta2
            mc[i] = mi
            vc[i] = vi
            denom = math.sqrt(vi) / bias_correction2_sqrt + eps
            pc[i] = pc[i] * decay - (mi / denom) * step_size


def adamw_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
               lr: float, beta1: float, beta2: float, eps: float, wd: float, step: int) -> None:
    """Same contract as the reference: updates ``param``, ``exp_avg``, ``exp_avg_sq`` in place."""
    owned = (param, exp_avg, exp_avg_sq)
    if not same_float(*owned) or not all(a.flags.c_contiguous for a in owned):
        # in-place updates need flat views of the arrays themselves; strided ones take the reference
        return NotImplemented
    # grad is only read: a strided or broadcast gradient view may be copied
    grad = np.ascontiguousarray(grad, dtype=param.dtype)
    s = param.dtype.type  # scalars in the arrays' dtype, as NumPy's weak-scalar rule does in the reference
    bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / (1.0 - beta1 ** step)
    decay = 1.0 - lr * wd if wd != 0.0 else 1.0
    _adamw_flat(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
                s(decay), s(1.0 - beta1), s(beta2), s(1.0 - beta2), s(bias_correction2_sqrt), s(eps), s(step_size))
