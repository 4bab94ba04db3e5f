"""Scalar building blocks shared by the Numba kernels, written so that LLVM can vectorize
the loops that call them (they are small and get inlined):

* ``fast_exp(x)``: for float32, exp from a range reduction and a degree-7 polynomial (a
  loop of ``math.exp`` calls stays scalar without fastmath); within ~1 ulp of the true
  value. For float64 it is ``math.exp`` itself, so the float64 kernels stay tight to NumPy.
* ``row_sum``, ``row_max``, ``row_dot``, ``row_dot3``, ``row_exp_sum``, ``row_exp_dot``: reductions over the
  first ``n`` elements of a 1-D array, compiled with reassociation allowed so they split
  into SIMD lanes (a strict left-to-right sum cannot). Only these helpers get the relaxed
  flags; every other kernel keeps IEEE order. They must be inlined by LLVM (which keeps each instruction's flags),
  not by Numba's ``inline="always"`` (which would re-lower them under the caller's flags).

Numba's cache does not notice edits to this file in the kernels that call it;
``_cache_guard`` does, and recompiles them.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

# exp(x) = 2^n * exp(r), n = round(x / ln2), |r| <= ln2 / 2. ln2 is split in two (Cody-Waite):
# _LN2_HI has few significant bits, so n * _LN2_HI is exact and x - n * _LN2_HI loses nothing.
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.1219444005469057e-4)
_EXP_LO = np.float32(-87.0)   # below: the result is under float32's smallest normal; return 0
_EXP_HI = np.float32(88.3)    # above: 2^n no longer fits the exponent field; return inf
# Taylor coefficients 1/k!, k = 7..0: the truncation error at |r| = ln2/2 is ~5e-9, under float32's ulp.
_C7, _C6, _C5 = np.float32(1 / 5040), np.float32(1 / 720), np.float32(1 / 120)
_C4, _C3, _C2 = np.float32(1 / 24), np.float32(1 / 6), np.float32(0.5)
_ONE = np.float32(1.0)


@intrinsic
def _maxnum(typingctx, a, b):
    """LLVM's maxnum: unlike Python's max (a compare and branch), a max reduction over it
    vectorizes."""
    if a != b or not isinstance(a, types.Float):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(fn, args)
    return a(a, b), codegen


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (how 2^n is built without a scalar ldexp)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@numba.njit
def _exp_float32(x):  # pragma: no cover - compiled
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + np.float32(0.5))  # np.floor keeps float32 (math.floor gives int64)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _C7 * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _ONE
    p = p * r + _ONE
    y = p * _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    if x < _EXP_LO:
        y = np.float32(0.0)
    if x > _EXP_HI:
        y = np.float32(np.inf)
    return y


def fast_exp(x):
    """exp(x); see the module docstring. (Python fallback; compiled code uses the overload.)"""
    return math.exp(x)


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_float32(x)
    return lambda x: math.exp(x)


_REASSOC = {"reassoc", "nsz"}            # lets LLVM split a sum into SIMD lanes
_REASSOC_NO_NAN = {"reassoc", "nsz", "nnan"}  # max reductions also need "no NaN"


@numba.njit(fastmath=_REASSOC)
def row_sum(a, n):  # pragma: no cover - compiled
    s = a.dtype.type(0)
    for j in range(n):
        s += a[j]
    return s


@numba.njit(fastmath=_REASSOC)
def row_dot(a, b, n):  # pragma: no cover - compiled
    s = a.dtype.type(0)
    for j in range(n):
        s += a[j] * b[j]
    return s


@numba.njit(fastmath=_REASSOC_NO_NAN)
def row_max(a, n):  # pragma: no cover - compiled
    m = a[0]
    for j in range(1, n):
        m = _maxnum(m, a[j])
    return m


@numba.njit(fastmath=_REASSOC)
def row_dot3(a, b, c, n):  # pragma: no cover - compiled
    s = a.dtype.type(0)
    for j in range(n):
        s += a[j] * b[j] * c[j]
    return s


@numba.njit(fastmath=_REASSOC)
def row_exp_sum(a, n, scale, shift):  # pragma: no cover - compiled
    """a[j] = exp(a[j] * scale - shift) for j < n, in place; returns their sum. (In place: with
    a separate source LLVM must guard against overlap and the loop runs ~4x slower.)"""
    s = a.dtype.type(0)
    for j in range(n):
        e = fast_exp(a[j] * scale - shift)
        a[j] = e
        s += e
    return s


@numba.njit(fastmath=_REASSOC)
def row_exp_dot(a, b, n, scale, shift):  # pragma: no cover - compiled
    """a[j] = exp(a[j] * scale - shift) for j < n, in place; returns sum(a[j] * b[j]) of the new a."""
    s = a.dtype.type(0)
    for j in range(n):
        e = fast_exp(a[j] * scale - shift)
        a[j] = e
        s += e * b[j]
    return s
