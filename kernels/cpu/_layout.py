"""What the Numba loops accept: their dtypes (``same_float``), and strided row views handed
over in a form the loops can vectorize (``as_rows``). A kernel given anything else returns
``NotImplemented``, and the backend runs the reference instead.

Numba types any non-C-contiguous array as layout "A": every stride is a runtime value, so
no inner loop vectorizes. The column blocks the fused projections produce (q, k, v and
gate, up are slices of one GEMM output) are rows of contiguous elements a fixed distance
apart. ``as_rows`` turns such an array into a contiguous 1-D view of the underlying memory
plus the row stride, so a kernel reads row i as ``flat[i * ld : i * ld + width]``.
"""

from __future__ import annotations

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
