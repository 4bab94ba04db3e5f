"""Scalar building blocks shared by the Numba kernels, written so that LLVM can vectorize
the loops that call them (they are small and get inlined):

* ``fast_exp(x)``: for float32, exp from a range reduction and a degree-7 polynomial (a
  loop of ``math.exp`` calls stays scalar without fastmath); within ~1.3 ulp of the true
  value. On AVX-512, 2^n is applied by ldexp (one VSCALEFPS); elsewhere it is built from its
  exponent bits. For float64 it is ``math.exp`` itself, so the float64 kernels stay tight to NumPy.
* ``fast_tanh(x)``, ``fast_log(x)``: for float32, a rational approximation of tanh (no exp, so
  no overflow to guard against) and log from the exponent bits and a degree-9 polynomial of
  the mantissa (Cephes' logf); within a few ulp. For float64, ``math.tanh`` and ``math.log``.
* ``row_sum``, ``row_max``, ``row_dot``, ``row_dot3``, ``row_exp_sum``, ``row_exp_dot``, ``row_sum_exp``:
  reductions over the
  first ``n`` elements of a 1-D array, compiled with reassociation allowed so they split
  into SIMD lanes (a strict left-to-right sum cannot). ``row_max`` assumes no NaN;
  ``row_max_nan`` is NaN when the row holds one (NumPy's max), and ``row_sum64`` adds in float64.
  Only these helpers get the relaxed flags; every other kernel keeps IEEE order, except that
  the float32 approximations may fuse a multiply and an add (``CONTRACT``: FMA, one rounding). They must be
  inlined by LLVM (which keeps each instruction's flags), not by Numba's ``inline="always"``
  (which would re-lower them under the caller's flags).

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

# The polynomials' multiply-adds may fuse into FMA instructions: half the vector instructions (exp on
# 1024x1024 float32 ran ~280 -> ~205 us on AVX-512) and one rounding fewer each, so no less accurate.
CONTRACT = {"contract"}

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


@intrinsic
def _float32_bits(typingctx, x):
    """The bits of a float32 as an int32 (how log reads the exponent without a scalar frexp)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _ldexp_float32(typingctx, x, n):
    """x * 2^n, LLVM's ldexp: on AVX-512 one VSCALEFPS, exact for any n (inf past the top, subnormals and
    0 below). Elsewhere LLVM makes it a call to libm's ldexpf per element, so only the AVX-512 exp uses it."""
    def codegen(context, builder, signature, args):
        f32, i32 = ir.FloatType(), ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.ldexp", [f32, i32], ir.FunctionType(f32, [f32, i32]))
        return builder.call(fn, args)
    return types.float32(types.float32, types.int32), codegen


@numba.njit(fastmath=CONTRACT)
def _exp_reduced(xc):  # pragma: no cover - compiled
    """(exp(r), n) with xc = n ln2 + r: the range reduction and polynomial both exps below share."""
    n = np.floor(xc * _LOG2E + np.float32(0.5))  # np.floor keeps float32 (math.floor gives int64)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _C7 * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _ONE
    p = p * r + _ONE
    return p, n


@numba.njit(fastmath=CONTRACT)
def _exp_float32_bits(x):  # pragma: no cover - compiled
    """2^n built from its exponent bits, so n must stay in the normal range: clamped, then fixed up."""
    p, n = _exp_reduced(min(max(x, _EXP_LO), _EXP_HI))
    y = p * _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    if x < _EXP_LO:
        y = np.float32(0.0)
    if x > _EXP_HI:
        y = np.float32(np.inf)
    return y


# For ldexp the clamp only keeps n an int32: exp(-104) rounds to 0, exp(89) overflows to inf.
_SCALEF_LO, _SCALEF_HI = np.float32(-104.0), np.float32(89.0)


@numba.njit(fastmath=CONTRACT)
def _exp_float32_scalef(x):  # pragma: no cover - compiled
    """Three instructions fewer than _exp_float32_bits, and right near the ends of the range too
    (x in (88.3, 88.7) is finite, and x in (-103, -87) gives a subnormal, where that one gives inf and 0)."""
    p, n = _exp_reduced(min(max(x, _SCALEF_LO), _SCALEF_HI))
    return _ldexp_float32(p, np.int32(n))


def _compiles_for_avx512() -> bool:
    """Whether Numba targets AVX-512 (F and VL: VSCALEFPS on 512- and 256-bit vectors) in this process.
    Its target is fixed once Numba is imported (minigrad/_process.py chooses it before that)."""
    from numba.core.codegen import get_host_cpu_features

    features = numba.config.CPU_FEATURES
    flags = set((get_host_cpu_features() if features is None else features).split(","))
    return {"+avx512f", "+avx512vl"} <= flags


_exp_float32 = _exp_float32_scalef if _compiles_for_avx512() else _exp_float32_bits


def fast_exp(x):
    """exp(x); see the module docstring. (Python fallback; compiled code uses the overload.)"""
    return math.exp(x)


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_float32(x)
    return lambda x: math.exp(x)


# tanh(x) = x P(x^2) / Q(x^2) on [-c, c], a (13, 6) rational minimax fit (Eigen's float tanh); beyond c,
# tanh(x) rounds to +-1 in float32. Below 4e-4, tanh(x) = x to float32 precision.
_TANH_CLAMP, _TANH_TINY = np.float32(7.90531110763549805), np.float32(0.0004)
_TA1, _TA3, _TA5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
_TA7, _TA9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_TA11, _TA13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_TB0, _TB2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_TB4, _TB6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)


# error_model: Python's model checks each division for zero, and the loop would stay scalar
@numba.njit(fastmath=CONTRACT, error_model="numpy")
def _tanh_float32(x):  # pragma: no cover - compiled
    xc = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = xc * xc
    p = _TA13 * x2 + _TA11
    p = p * x2 + _TA9
    p = p * x2 + _TA7
    p = p * x2 + _TA5
    p = p * x2 + _TA3
    p = p * x2 + _TA1
    q = _TB6 * x2 + _TB4
    q = q * x2 + _TB2
    q = q * x2 + _TB0
    y = xc * p / q
    if abs(x) >= _TANH_CLAMP:  # exactly +-1 (with FMAs the fit gives 4 ulp less there): a sigmoid
        y = np.float32(1.0) if x > 0 else np.float32(-1.0)  # 0.5 (1 + tanh(x / 2)) of x << 0 is then 0
    if abs(x) < _TANH_TINY:
        y = x
    if x != x:
        y = x
    return y


# log(x) = e ln2 + log(m) with x = m 2^e, m in [sqrt(1/2), sqrt(2)); log(1 + f) = f - f^2/2 + f^3 P(f).
_SQRT_HALF, _FLT_MIN, _TWO_23 = np.float32(0.70710678118654752), np.float32(1.17549435e-38), np.float32(8388608.0)
_LP = tuple(np.float32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                                     1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                                     3.3333331174e-1))
_LP0, _LP1, _LP2, _LP3, _LP4, _LP5, _LP6, _LP7, _LP8 = _LP
_HALF = np.float32(0.5)


@numba.njit(fastmath=CONTRACT)
def _log_float32(x):  # pragma: no cover - compiled
    small = x < _FLT_MIN  # subnormal (or not positive): scale it into the normal range first
    xs = x * _TWO_23 if small else x
    bits = _float32_bits(xs)
    e = ((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126) - (np.int32(23) if small else np.int32(0))
    m = _float32_from_bits((bits & np.int32(-2139095041)) | np.int32(0x3F000000))  # 0x807FFFFF: m in [0.5, 1)
    if m < _SQRT_HALF:
        e -= np.int32(1)
        f = m + m - _ONE
    else:
        f = m - _ONE
    z = f * f
    p = _LP0 * f + _LP1
    p = p * f + _LP2
    p = p * f + _LP3
    p = p * f + _LP4
    p = p * f + _LP5
    p = p * f + _LP6
    p = p * f + _LP7
    p = p * f + _LP8
    ef = np.float32(e)
    y = p * f * z + ef * _LN2_LO - _HALF * z
    y = f + y + ef * _LN2_HI
    if x == np.float32(np.inf):
        y = x
    if x == np.float32(0.0):
        y = np.float32(-np.inf)
    if x < np.float32(0.0) or x != x:
        y = np.float32(np.nan)
    return y


def fast_tanh(x):
    """tanh(x); see the module docstring. (Python fallback; compiled code uses the overload.)"""
    return math.tanh(x)


@overload(fast_tanh, inline="always")
def _fast_tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_float32(x)
    return lambda x: math.tanh(x)


def fast_log(x):
    """log(x); see the module docstring. (Python fallback; compiled code uses the overload.)"""
    return math.log(x)


@overload(fast_log, inline="always")
def _fast_log_overload(x):
    if x == types.float32:
        return lambda x: _log_float32(x)
    return lambda x: math.log(x)


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
def row_sum64(a, n):  # pragma: no cover - compiled
    """The sum of a[:n], accumulated in float64 (a float32 sum of many terms would drift)."""
    s = 0.0
    for j in range(n):
        s += np.float64(a[j])
    return s


@numba.njit
def _row_has_nan(a, n):  # pragma: no cover - compiled
    bad = False  # strict IEEE flags: "no NaN" fast-math would fold x != x to False
    for j in range(n):
        bad |= a[j] != a[j]
    return bad


@numba.njit(fastmath=_REASSOC)
def _row_zero_sum(a, n):  # pragma: no cover - compiled
    """sum(a[j] * 0): 0 unless a[:n] holds a NaN or an infinity. A float sum, so it vectorizes, where
    _row_has_nan's or-reduction runs ~2x slower."""
    zero = a.dtype.type(0)
    s = zero
    for j in range(n):
        s += a[j] * zero
    return s


@numba.njit
def row_max_nan(a, n):  # pragma: no cover - compiled
    """max(a[:n]) as NumPy's max: NaN when any element is NaN. Two vectorized passes: a sum that is 0 when
    every element is finite, then row_max; only a row holding a NaN or an inf pays for the exact NaN scan.
    (One loop doing both stays scalar.)"""
    if _row_zero_sum(a, n) != 0 and _row_has_nan(a, n):  # (a NaN sum is != 0 too)
        return a.dtype.type(np.nan)
    return row_max(a, n)


@numba.njit(fastmath=_REASSOC)
def row_sum_exp(a, n, shift):  # pragma: no cover - compiled
    """The sum of exp(a[j] - shift) for j < n, reading a only (log_softmax keeps a and needs just the sum)."""
    s = a.dtype.type(0)
    for j in range(n):
        s += fast_exp(a[j] - shift)
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
