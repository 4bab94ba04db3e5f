"""Numba SwiGLU gate, silu(gate) * up, forward and backward in one pass per row (the
reference sweeps whole arrays five or six times). The sigmoid is 1 / (1 + exp(-x)) with
the vectorizable exp; the reference's 0.5 (1 + tanh(x/2)) is the same function, and the two
agree to a few ulp.

gate and up are usually column blocks of one (N, 2F) product (``nn.ops.swiglu_linear``):
they arrive as flat buffers plus row strides (see ``_layout``) so the loops vectorize. Other
layouts and dtypes return NotImplemented. Held to kernels/reference/swiglu.py.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp
from ._layout import as_rows, same_float


@numba.njit(parallel=True, cache=True)
def _forward_rows(n, f, gate, lg, up, lu, out, lo):  # pragma: no cover - compiled
    one = gate.dtype.type(1.0)
    for i in numba.prange(n):
        # Row slices, not flat[i * ld + j]: a sliced index is known non-negative, so Numba
        # drops its wraparound check and the loop vectorizes.
        gr, ur, orow = gate[i * lg:i * lg + f], up[i * lu:i * lu + f], out[i * lo:i * lo + f]
        for j in range(f):
            x = gr[j]
            sig = one / (one + fast_exp(-x))
            orow[j] = x * sig * ur[j]


@numba.njit(parallel=True, cache=True)
def _backward_rows(n, f, g, lgr, gate, lg, up, lu, dgate, ldg, dup, ldu):  # pragma: no cover - compiled
    one = gate.dtype.type(1.0)
    for i in numba.prange(n):
        grow, xr, ur = g[i * lgr:i * lgr + f], gate[i * lg:i * lg + f], up[i * lu:i * lu + f]
        dgr, dur = dgate[i * ldg:i * ldg + f], dup[i * ldu:i * ldu + f]
        for j in range(f):
            x = xr[j]
            sig = one / (one + fast_exp(-x))
            dgr[j] = grow[j] * ur[j] * (sig * (one + x * (one - sig)))
            dur[j] = grow[j] * (x * sig)


def _flat_rows(arrays: tuple, width: int) -> list | None:
    """[flat, ld, flat, ld, ...] for arrays of one float dtype whose rows are contiguous runs."""
    if not same_float(*arrays) or any(a.shape != arrays[0].shape for a in arrays):
        return None
    out = []
    for a in arrays:
        r = as_rows(a, width)
        if r is None:
            return None
        out += r
    return out


def swiglu_forward(gate: np.ndarray, up: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    result = np.empty(gate.shape, dtype=gate.dtype) if out is None else out
    f = gate.shape[-1] if gate.ndim else 1
    args = _flat_rows((gate, up, result), f) if gate.size else None
    if args is None:  # odd layouts or dtypes: the reference handles them
        return NotImplemented
    _forward_rows(gate.size // f, f, *args)
    return result


def swiglu_backward(g: np.ndarray, gate: np.ndarray, up: np.ndarray, out=None):
    dgate, dup = out if out is not None else (np.empty(gate.shape, gate.dtype), np.empty(up.shape, up.dtype))
    f = gate.shape[-1] if gate.ndim else 1
    args = _flat_rows((g, gate, up, dgate, dup), f) if gate.size else None
    if args is None:
        return NotImplemented
    _backward_rows(gate.size // f, f, *args)
    return dgate, dup
