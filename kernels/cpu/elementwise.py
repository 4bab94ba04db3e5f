"""Threaded Numba twins of the elementwise kernels (``kernels/reference/elementwise.py``): a + b,
a - b, a * b, a / b, exp, log, tanh, sigmoid, SiLU and the activations' fused backward.

NumPy runs each of these on one core, one pass per operator (``g * (1 - y * y)`` is three passes
and two temporaries). Here each is one pass over blocks of ``BLOCK`` elements spread over the
threads; float32 exp/log/tanh use the vectorizable approximations of ``_fast_math`` (a few ulp
from NumPy's), float64 the exact ``math`` functions. The ops call these only on large arrays
(``Backend.kernel_min_size``): below that, starting the threads costs more than the arithmetic.

Handled: float32 or float64 C-contiguous operands of one dtype; a binary op's second operand
may also be a scalar (size 1), a row (the first operand's last axis) or a column (one value per
row, keepdims-style) broadcast against the first, on either side. Anything else returns
NotImplemented and NumPy (the reference) runs it.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fast_math import fast_exp, fast_log, fast_tanh
from ._layout import broadcast_source, dense, same_float

BLOCK = 1 << 14  # elements per parallel task: 64 KiB of float32, a few microseconds of work

ADD, SUB, MUL, DIV = 0, 1, 2, 3


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _binary_same(op, a, b, out):  # pragma: no cover - compiled
    n = out.size
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        x, y, o = a[lo:hi], b[lo:hi], out[lo:hi]  # slices: known bounds, so the loops vectorize
        if op == ADD:
            for i in range(hi - lo):
                o[i] = x[i] + y[i]
        elif op == SUB:
            for i in range(hi - lo):
                o[i] = x[i] - y[i]
        elif op == MUL:
            for i in range(hi - lo):
                o[i] = x[i] * y[i]
        else:
            for i in range(hi - lo):
                o[i] = x[i] / y[i]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _binary_rows(op, left, a, row, out):  # pragma: no cover - compiled
    """out[r, j] = a[r, j] (op) row[j], or row[j] (op) a[r, j] when ``left`` (the row on the left).
    A scalar is a row of one element repeated: row has a.shape[1] copies of it."""
    n_rows, m = a.shape
    for r in numba.prange(n_rows):
        x, o = a[r], out[r]
        if op == ADD:
            for j in range(m):
                o[j] = x[j] + row[j]
        elif op == MUL:
            for j in range(m):
                o[j] = x[j] * row[j]
        elif op == SUB and not left:
            for j in range(m):
                o[j] = x[j] - row[j]
        elif op == SUB:
            for j in range(m):
                o[j] = row[j] - x[j]
        elif not left:
            for j in range(m):
                o[j] = x[j] / row[j]
        else:
            for j in range(m):
                o[j] = row[j] / x[j]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _binary_columns(op, left, a, col, out):  # pragma: no cover - compiled
    """out[r, j] = a[r, j] (op) col[r], or col[r] (op) a[r, j] when ``left``: a (rows, 1) operand, as in
    x - x.max(axis=-1, keepdims=True), or the gradient of a sum over the last axis."""
    n_rows, m = a.shape
    for r in numba.prange(n_rows):
        x, o, c = a[r], out[r], col[r]
        if op == ADD:
            for j in range(m):
                o[j] = x[j] + c
        elif op == MUL:
            for j in range(m):
                o[j] = x[j] * c
        elif op == SUB and not left:
            for j in range(m):
                o[j] = x[j] - c
        elif op == SUB:
            for j in range(m):
                o[j] = c - x[j]
        elif not left:
            for j in range(m):
                o[j] = x[j] / c
        else:
            for j in range(m):
                o[j] = c / x[j]


def _binary(op: int, a: np.ndarray, b: np.ndarray):
    if not same_float(a, b):
        return NotImplemented
    if a.shape == b.shape and a.flags.c_contiguous != b.flags.c_contiguous:
        # one is likely a broadcast view (a sum's gradient): take the scalar or row it repeats
        a, b = (a, broadcast_source(b)) if a.flags.c_contiguous else (broadcast_source(a), b)
    if not (a.flags.c_contiguous and b.flags.c_contiguous):
        return NotImplemented
    if a.shape == b.shape:
        out = np.empty(a.shape, a.dtype)
        if a.size:
            _binary_same(op, a.reshape(-1), b.reshape(-1), out.reshape(-1))
        return out
    left = a.size < b.size  # the broadcast operand, on the left of the operator
    full, small = (b, a) if left else (a, b)
    if full.ndim == 0 or small.ndim > full.ndim or full.size == 0:
        return NotImplemented
    m = full.shape[-1]
    if small.size == 1:  # a scalar: a row of m copies
        row = np.full(m, small.reshape(-1)[0], dtype=full.dtype)
    elif small.shape[-1] == m and small.size == m:  # a row, possibly with leading axes of 1
        row = small.reshape(m)
    elif small.shape == full.shape[:-1] + (1,):  # a column: one value per row
        out = np.empty(full.shape, full.dtype)
        _binary_columns(op, left, full.reshape(-1, m), small.reshape(-1), out.reshape(-1, m))
        return out
    else:
        return NotImplemented
    out = np.empty(full.shape, full.dtype)
    _binary_rows(op, left, full.reshape(-1, m), row, out.reshape(-1, m))
    return out


def add(a, b):
    return _binary(ADD, a, b)


def sub(a, b):
    return _binary(SUB, a, b)


def mul(a, b):
    return _binary(MUL, a, b)


def div(a, b):
    return _binary(DIV, a, b)


EXP, LOG, TANH, SIGMOID = 0, 1, 2, 3


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _unary(op, a, out):  # pragma: no cover - compiled
    n = out.size
    one, half = a.dtype.type(1.0), a.dtype.type(0.5)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        x, o = a[lo:hi], out[lo:hi]
        if op == EXP:
            for i in range(hi - lo):
                o[i] = fast_exp(x[i])
        elif op == LOG:
            for i in range(hi - lo):
                o[i] = fast_log(x[i])
        elif op == TANH:
            for i in range(hi - lo):
                o[i] = fast_tanh(x[i])
        else:  # the reference's 0.5 (1 + tanh(x/2)): bounded, so nothing overflows
            for i in range(hi - lo):
                o[i] = half * (one + fast_tanh(half * x[i]))


def _unary_call(op: int, a: np.ndarray):
    if not same_float(a) or not a.flags.c_contiguous:
        return NotImplemented
    out = np.empty(a.shape, a.dtype)
    if a.size:
        _unary(op, a.reshape(-1), out.reshape(-1))
    return out


def exp(a):
    return _unary_call(EXP, a)


def log(a):
    return _unary_call(LOG, a)


def tanh(a):
    return _unary_call(TANH, a)


def sigmoid(a):
    return _unary_call(SIGMOID, a)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _silu_forward(a, out, s, keep):  # pragma: no cover - compiled
    n = out.size
    one, half = a.dtype.type(1.0), a.dtype.type(0.5)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        x, o, so = a[lo:hi], out[lo:hi], s[lo:hi]
        if keep:  # two loops, not a test per element: each one vectorizes
            for i in range(hi - lo):
                sig = half * (one + fast_tanh(half * x[i]))
                so[i] = sig
                o[i] = x[i] * sig
        else:
            for i in range(hi - lo):
                o[i] = x[i] * (half * (one + fast_tanh(half * x[i])))


def silu_forward(a, keep_sigmoid=True):
    if not same_float(a) or not a.flags.c_contiguous:
        return NotImplemented
    out = np.empty(a.shape, a.dtype)
    s = np.empty(a.shape if keep_sigmoid else (0,), a.dtype)
    if a.size:
        _silu_forward(a.reshape(-1), out.reshape(-1), s.reshape(-1), keep_sigmoid)
    return out, (s if keep_sigmoid else None)


TANH_BACK, SIGMOID_BACK, SILU_BACK = 0, 1, 2


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _activation_backward(op, g, y, s, out):  # pragma: no cover - compiled
    """tanh: g (1 - y^2); sigmoid: g y (1 - y); silu (y is its input, s its sigmoid): g s (1 + y (1 - s))."""
    n = out.size
    one = g.dtype.type(1.0)
    for blk in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = blk * BLOCK, min(n, blk * BLOCK + BLOCK)
        gg, yy, ss, o = g[lo:hi], y[lo:hi], s[lo:hi], out[lo:hi]
        if op == TANH_BACK:
            for i in range(hi - lo):
                o[i] = gg[i] * (one - yy[i] * yy[i])
        elif op == SIGMOID_BACK:
            for i in range(hi - lo):
                o[i] = gg[i] * yy[i] * (one - yy[i])
        else:
            for i in range(hi - lo):
                o[i] = gg[i] * (ss[i] * (one + yy[i] * (one - ss[i])))


def _backward_call(op: int, g: np.ndarray, y: np.ndarray, s: np.ndarray):
    g = dense(g) if g.shape == y.shape else None  # a sum's gradient arrives broadcast
    if g is None:
        return NotImplemented
    arrays = (g, y, s)
    if not same_float(*arrays) or any(x.shape != g.shape or not x.flags.c_contiguous for x in arrays):
        return NotImplemented
    out = np.empty(g.shape, g.dtype)
    if g.size:
        _activation_backward(op, g.reshape(-1), y.reshape(-1), s.reshape(-1), out.reshape(-1))
    return out


def tanh_backward(g, y):
    return _backward_call(TANH_BACK, g, y, y)


def sigmoid_backward(g, y):
    return _backward_call(SIGMOID_BACK, g, y, y)


def silu_backward(g, a, s):
    return _backward_call(SILU_BACK, g, a, s)


NAMES = ("add", "sub", "mul", "div", "exp", "log", "tanh", "sigmoid", "silu_forward", "tanh_backward",
         "sigmoid_backward", "silu_backward")
