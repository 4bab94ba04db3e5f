"""What the Numba loops accept: their dtypes (``same_float``), and strided row views handed
over in a form the loops can vectorize (``as_rows``). A kernel given anything else returns
``NotImplemented``, and the backend runs the reference instead.

Numba types any non-C-contiguous array as layout "A": every stride is a runtime value, so
no inner loop vectorizes. The column blocks the fused projections produce (q, k, v and
gate, up are slices of one GEMM output) are rows of contiguous elements a fixed distance
apart. ``as_rows`` turns such an array into a contiguous 1-D view of the underlying memory
plus the row stride, so a kernel reads row i as ``flat[i * ld : i * ld + width]``.

The gradient of a sum or a mean reaches the next op as a broadcast view (stride 0 along the
summed axes: ``broadcast_to``, free to make). ``broadcast_source`` finds the scalar, row or
column it repeats, which the binary ops take as they are; ``dense`` writes such a view out once, by the
threads, for the kernels that want every operand whole (a fraction of what sending the op to
NumPy's strided loops would cost).
"""

from __future__ import annotations

import numba
import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # Numba has no float16 arithmetic on the CPU


def same_float(*arrays: np.ndarray) -> bool:
    """True when every array is float32, or every array is float64."""
    dt = arrays[0].dtype
    return dt in FLOATS and all(a.dtype == dt for a in arrays)


def as_rows(a: np.ndarray, width: int) -> tuple[np.ndarray, int] | None:
    """(flat, ld) with row i of ``a.reshape(-1, width)`` at flat[i*ld : i*ld + width], sharing
    a's memory; None when a's rows are not evenly spaced runs of contiguous elements."""
    if a.size == 0:
        return None
    rows = a.reshape(-1, width)  # a view whenever the leading axes collapse into one
    if rows.base is None or not np.may_share_memory(rows, a):  # reshape had to copy
        return None
    isz = a.itemsize
    if width > 1 and rows.strides[1] != isz:
        return None
    n = rows.shape[0]
    ld = rows.strides[0] // isz if n > 1 else width
    if ld < width or rows.strides[0] % isz:
        return None
    flat = np.lib.stride_tricks.as_strided(rows, shape=((n - 1) * ld + width,), strides=(isz,))
    return flat, ld


def broadcast_source(a: np.ndarray) -> np.ndarray:
    """The array ``a`` repeats: a view with each stride-0 axis cut to length 1 (``a`` itself when it
    has none). For the gradient of ``x.sum()``, a (1, ..., 1) view of the one value."""
    if 0 not in a.strides or a.size == 0:
        return a
    return a[tuple(slice(0, 1) if s == 0 else slice(None) for s in a.strides)]


@numba.njit(parallel=True, cache=True)
def _fill_rows(row, out):  # pragma: no cover - compiled
    """out[r, :] = row for every row r of out (rows, m)."""
    for r in numba.prange(out.shape[0]):
        o = out[r]
        for j in range(row.size):
            o[j] = row[j]


@numba.njit(parallel=True, cache=True)
def _fill_columns(col, out):  # pragma: no cover - compiled
    """out[r, :] = col[r] for every row r of out (rows, m)."""
    for r in numba.prange(out.shape[0]):
        o, c = out[r], col[r]
        for j in range(out.shape[1]):
            o[j] = c


def dense(a: np.ndarray) -> np.ndarray | None:
    """``a`` as a C-contiguous array: ``a`` itself, or a broadcast scalar, row or column (one value per
    row) written out whole; None for any other layout (the caller returns NotImplemented)."""
    if a.flags.c_contiguous:
        return a
    src = broadcast_source(a)
    if a.ndim == 0 or not src.flags.c_contiguous or a.dtype not in FLOATS:
        return None
    m = a.shape[-1]
    out = np.empty(a.shape, a.dtype)
    if src.size == 1:
        _fill_rows(np.full(m, src.reshape(-1)[0], dtype=a.dtype), out.reshape(-1, m))
    elif src.size == m and src.shape[-1] == m:
        _fill_rows(src.reshape(m), out.reshape(-1, m))
    elif src.shape == a.shape[:-1] + (1,):
        _fill_columns(src.reshape(-1), out.reshape(-1, m))
    else:
        return None
    return out
