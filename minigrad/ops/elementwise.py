"""Elementwise ops: arithmetic, math functions, activations and dropout, forward beside backward.

Binary ops may broadcast; their backward returns full-size gradients and the engine sums
them back to each input's shape (autograd.unbroadcast).

The arithmetic and the common activations hand arrays of ``backend.kernel_min_size`` elements or
more to the backend's kernel of the same name (on the numba backend: one threaded pass, where NumPy
makes one single-threaded pass per operator); smaller ones, and every array on the numpy backend,
take the plain NumPy expression beside it, which is also that kernel's reference.
"""

from __future__ import annotations

import math
from operator import mul as _multiply
from operator import truediv as _truediv

from ..autograd import Function

# ---- arithmetic -------------------------------------------------------------------


def _big(fn: Function, a, b=None) -> bool:
    """Whether ``fn``'s arrays are large enough for its backend's kernel (see the module docstring)."""
    return a.size + (0 if b is None else b.size) >= fn.backend.kernel_min_size


class Add(Function):
    def forward(self, a, b):
        return self.backend.kernel("add")(a, b) if _big(self, a, b) else a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return self.backend.kernel("sub")(a, b) if _big(self, a, b) else a - b

    def backward(self, g):
        return g, (-g if self.needs_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return self.backend.kernel("mul")(a, b) if _big(self, a, b) else a * b

    def backward(self, g):
        mul = self.backend.kernel("mul") if _big(self, g) else _multiply
        return (mul(g, self.b) if self.needs_grad[0] else None,
                mul(g, self.a) if self.needs_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return self.backend.kernel("div")(a, b) if _big(self, a, b) else a / b

    def backward(self, g):
        big = _big(self, g, self.b)
        mul, div = (self.backend.kernel("mul"), self.backend.kernel("div")) if big else (_multiply, _truediv)
        gb = div(g, self.b)
        # (gb a) / (-b) is -gb a / b to the bit (a sign flip is exact); -b is small where b broadcasts
        return (gb if self.needs_grad[0] else None,
                div(mul(gb, self.a), -self.b) if self.needs_grad[1] else None)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class PowScalar(Function):
    """x ** p for a Python number p."""

    def forward(self, a, p):
        self.a, self.p = a, p
        if p == 2 and _big(self, a):  # a square (an MSE loss): a * a, what NumPy's power computes for 2
            return self.backend.kernel("mul")(a, a)
        return a ** p

    def backward(self, g):
        p = self.p
        if p == 0:  # d/dx x**0 is 0 everywhere, also at x = 0 where x**-1 would give 0*inf
            return self.xp.zeros_like(g)
        if p == 2:
            mul = self.backend.kernel("mul") if _big(self, g) else _multiply
            return mul(g, mul(self.a, self.xp.asarray(2, dtype=self.a.dtype)))
        return g * (p * self.a ** (p - 1))


class Pow(Function):
    """a ** b with both tensors (d/db uses log a, so a should be positive there)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp = self.xp
        ga = None
        if self.needs_grad[0]:  # b = 0 has zero slope, also at a = 0: use a**1 there, not inf a**-1
            ga = g * self.b * self.a ** xp.where(self.b == 0, 1, self.b - 1)
        gb = None
        if self.needs_grad[1]:
            with_log = xp.where(self.a > 0, xp.log(xp.where(self.a > 0, self.a, 1)), 0)
            gb = g * self.out * with_log.astype(self.out.dtype, copy=False)
        return ga, gb


class _Extremum(Function):
    """maximum / minimum of two tensors (``op`` names the xp function). The gradient goes to the
    operand that was picked; on ties each gets half, as in torch."""

    op = "maximum"

    def forward(self, a, b):
        self.tie = a == b
        self.picks_a = a > b if self.op == "maximum" else a < b
        return getattr(self.xp, self.op)(a, b)

    def backward(self, g):
        wa = self.xp.where(self.tie, 0.5, self.picks_a.astype(g.dtype)).astype(g.dtype, copy=False)
        return (g * wa if self.needs_grad[0] else None,
                g * (1 - wa) if self.needs_grad[1] else None)


class Maximum(_Extremum):
    op = "maximum"


class Minimum(_Extremum):
    op = "minimum"


class Where(Function):
    """where(cond, a, b); cond is a bool tensor with no gradient."""

    def forward(self, cond, a, b):
        self.cond = cond
        return self.xp.where(cond, a, b)

    def backward(self, g):
        zero = self.xp.zeros((), dtype=g.dtype)
        return (None,
                self.xp.where(self.cond, g, zero) if self.needs_grad[1] else None,
                self.xp.where(self.cond, zero, g) if self.needs_grad[2] else None)


class MaskedFill(Function):
    def forward(self, a, mask, value):
        self.mask = mask
        return self.xp.where(mask, self.xp.asarray(value, dtype=a.dtype), a)

    def backward(self, g):
        return self.xp.where(self.mask, self.xp.zeros((), dtype=g.dtype), g), None


class Clip(Function):
    def forward(self, a, lo, hi):
        self.keep = self.xp.ones(a.shape, dtype=bool)
        if lo is not None:
            self.keep &= a >= lo
        if hi is not None:
            self.keep &= a <= hi
        return self.xp.clip(a, lo, hi)

    def backward(self, g):
        return g * self.keep


# ---- unary math -------------------------------------------------------------------


class Exp(Function):
    def forward(self, a):
        self.out = self.backend.kernel("exp")(a) if _big(self, a) else self.xp.exp(a)
        return self.out

    def backward(self, g):
        return self.backend.kernel("mul")(g, self.out) if _big(self, g) else g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return self.backend.kernel("log")(a) if _big(self, a) else self.xp.log(a)

    def backward(self, g):
        return self.backend.kernel("div")(g, self.a) if _big(self, g) else g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = self.xp.sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Rsqrt(Function):
    def forward(self, a):
        self.out = 1 / self.xp.sqrt(a)
        return self.out

    def backward(self, g):
        return g * (-0.5 * self.out ** 3)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return self.xp.abs(a)

    def backward(self, g):
        return g * self.xp.sign(self.a)


class Tanh(Function):
    def forward(self, a):
        self.out = self.backend.kernel("tanh")(a) if _big(self, a) else self.xp.tanh(a)
        return self.out

    def backward(self, g):
        if _big(self, g):
            return self.backend.kernel("tanh_backward")(g, self.out)
        return g * (1 - self.out * self.out)


def _sigmoid(xp, a):
    # 0.5 * (1 + tanh(a/2)) never overflows, unlike 1 / (1 + exp(-a)).
    return 0.5 * (1 + xp.tanh(0.5 * a))


class Sigmoid(Function):
    def forward(self, a):
        self.out = self.backend.kernel("sigmoid")(a) if _big(self, a) else _sigmoid(self.xp, a)
        return self.out

    def backward(self, g):
        if _big(self, g):
            return self.backend.kernel("sigmoid_backward")(g, self.out)
        return g * self.out * (1 - self.out)


class Relu(Function):
    def forward(self, a):
        # The output is kept, not a mask: y <= 0 exactly where a <= 0, and the next op usually keeps y anyway.
        self.out = self.backend.kernel("relu")(a) if _big(self, a) else self.xp.maximum(a, 0)
        return self.out

    def backward(self, g):
        if _big(self, g):
            return self.backend.kernel("relu_backward")(g, self.out)
        return self.xp.where(self.out <= 0, 0, g)


class Silu(Function):
    def forward(self, a):
        self.a = a
        if _big(self, a):
            out, self.s = self.backend.kernel("silu_forward")(a, self.needs_grad[0])
            return out
        self.s = _sigmoid(self.xp, a)
        return a * self.s

    def backward(self, g):
        if _big(self, g):
            return self.backend.kernel("silu_backward")(g, self.a, self.s)
        s = self.s
        return g * (s * (1 + self.a * (1 - s)))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_CUBIC = 0.044715  # the tanh approximation's x^3 coefficient


class Gelu(Function):
    """GELU: exact x*Phi(x), or the tanh approximation (approximate='tanh')."""

    def forward(self, a, approximate="none"):
        xp = self.xp
        self.a, self.approx = a, approximate
        if _big(self, a):  # one fused pass; its backward recomputes Phi from a instead of keeping it
            return self.backend.kernel("gelu")(a, approximate == "tanh")
        if approximate == "tanh":
            self.t = xp.tanh(_SQRT_2_OVER_PI * (a + _CUBIC * a * a * a))
            return 0.5 * a * (1 + self.t)
        self.cdf = 0.5 * (1 + self.backend.kernel("erf")(a * _INV_SQRT_2))
        return a * self.cdf

    def backward(self, g):
        a = self.a
        if _big(self, g):
            return self.backend.kernel("gelu_backward")(g, a, self.approx == "tanh")
        if self.approx == "tanh":
            t = self.t
            dinner = _SQRT_2_OVER_PI * (1 + 3 * _CUBIC * a * a)
            return g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * dinner)
        pdf = _INV_SQRT_2PI * self.xp.exp(-0.5 * a * a)
        return g * (self.cdf + a * pdf)


class Cast(Function):
    """astype: the gradient is cast back to the input's dtype by the engine."""

    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, g):
        return g


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p). ``mask`` comes in
    precomputed (from a seeded Generator) so the op itself stays deterministic."""

    def forward(self, a, mask, p):
        self.scale = (mask / (1.0 - p)).astype(a.dtype, copy=False)
        return a * self.scale

    def backward(self, g):
        return g * self.scale, None
