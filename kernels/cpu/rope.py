"""Numba rotary position embedding (half-split pairs), forward and backward, in one pass
that reads x once and writes the output once (the reference builds rotate_half's
concatenation and three temporaries). Same arithmetic in the same order as the
reference (kernels/reference/rope.py), so the results agree bit for bit."""

from __future__ import annotations

import numba
import numpy as np

from ._layout import as_rows, same_float


@numba.njit(parallel=True, cache=True)
def _rotate(n_rows, t, h, d, x, ld, cos, sin, out, transpose):  # pragma: no cover - compiled
    # Row r of x is position r % t of one sequence: h heads of d values at x[r*ld : r*ld + h*d].
    # cos, sin (T, D); out: flat (n_rows * h * d). Forward (transpose=False), per pair (x1, x2):
    #   out1 = x1 c1 - x2 s1,  out2 = x2 c2 + x1 s2.
    # Backward applies the transposed rotation to the gradient:
    #   out1 = x1 c1 + x2 s2,  out2 = x2 c2 - x1 s1.
    half = d // 2
    for r in numba.prange(n_rows):
        c = cos[r % t]
        s = sin[r % t]
        for hi in range(h):
            # Slices (not flat[a + i]) so Numba knows the indices are non-negative and vectorizes.
            x1, x2 = x[r * ld + hi * d:r * ld + hi * d + half], x[r * ld + hi * d + half:r * ld + (hi + 1) * d]
            o1 = out[(r * h + hi) * d:(r * h + hi) * d + half]
            o2 = out[(r * h + hi) * d + half:(r * h + hi + 1) * d]
            c1, c2, s1, s2 = c[:half], c[half:], s[:half], s[half:]
            if transpose:
                for i in range(half):
                    o1[i] = x1[i] * c1[i] + x2[i] * s2[i]
                    o2[i] = x2[i] * c2[i] - x1[i] * s1[i]
            else:
                for i in range(half):
                    o1[i] = x1[i] * c1[i] - x2[i] * s1[i]
                    o2[i] = x2[i] * c2[i] + x1[i] * s2[i]


def _apply(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, transpose: bool) -> np.ndarray:
    b, t, h, d = x.shape
    rows = as_rows(x, h * d) if x.size and d % 2 == 0 else None
    if rows is None or not same_float(x, cos, sin):  # rows not evenly spaced, or a dtype Numba lacks
        return NotImplemented
    out = np.empty(b * t * h * d, dtype=x.dtype)
    _rotate(b * t, t, h, d, rows[0], rows[1], np.ascontiguousarray(cos), np.ascontiguousarray(sin), out,
            transpose)
    return out.reshape(b, t, h, d)


def rope_forward(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    return _apply(x, cos, sin, False)


def rope_backward(g: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    return _apply(g, cos, sin, True)
