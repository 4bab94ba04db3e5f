"""A test-only backend whose arrays behave like CuPy's towards NumPy: they refuse implicit
conversion (``np.asarray(a)`` raises) and refuse to mix with raw ``numpy.ndarray`` operands.

The whole op suite runs on it, so any op that reaches past ``backend.xp`` (calls ``np.`` on
a tensor's data, or mixes a host array into device math) fails here on a CPU-only machine,
long before a GPU would show it.
"""

from __future__ import annotations

import operator

import numpy as np

from kernels.reference import KERNELS as REFERENCE_KERNELS
from minigrad.backend import Backend, register_backend


class StrictConversionError(TypeError):
    pass


def _unwrap(x):
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise StrictConversionError("a raw numpy.ndarray was mixed into strict-backend math "
                                    f"(shape {x.shape}); move it with backend.asarray first")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic):  # like CuPy, reductions give 0-d arrays, not scalars
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _wrapped_call(fn):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    return call


class StrictArray:
    __slots__ = ("_a",)
    __array_ufunc__ = None  # numpy ufuncs refuse us instead of converting us

    def __init__(self, a: np.ndarray):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise StrictConversionError("implicit conversion of a strict-backend array to NumPy "
                                    "(use backend.to_numpy)")

    def __array_function__(self, func, types, args, kwargs):
        raise StrictConversionError(f"numpy.{func.__name__} was called on a strict-backend array; "
                                    "call it through backend.xp")

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: StrictArray(self._a.T))
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ and friends: no back door to NumPy
            raise AttributeError(name)
        attr = getattr(self._a, name)
        return _wrapped_call(attr) if callable(attr) else _wrap(attr)

    def __len__(self):
        return len(self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __repr__(self):
        return f"StrictArray({self._a!r})"


def _binop(name):
    op = getattr(operator, name)

    def f(self, other):
        return _wrap(op(self._a, _unwrap(other)))

    def rf(self, other):
        return _wrap(op(_unwrap(other), self._a))

    return f, rf


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor"):
    _f, _rf = _binop(_n)
    _d = _n.rstrip("_")
    setattr(StrictArray, f"__{_d}__", _f)
    setattr(StrictArray, f"__r{_d}__", _rf)
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_n}__", _binop(_n)[0])
for _n in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_n}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(operator, _n)))
for _n in ("iadd", "isub", "imul", "itruediv", "ipow", "iand", "ior"):
    def _inplace(self, other, _op=getattr(operator, _n)):
        self._a = _op(self._a, _unwrap(other))
        return self
    setattr(StrictArray, f"__{_n}__", _inplace)
StrictArray.__hash__ = None


class _StrictUfunc:
    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _wrap(self._uf(*_unwrap(args), **_unwrap(kwargs)))

    def at(self, a, indices, b=None):
        if b is None:
            self._uf.at(_unwrap(a), _unwrap(indices))
        else:
            self._uf.at(_unwrap(a), _unwrap(indices), _unwrap(b))

    def reduce(self, *args, **kwargs):
        return _wrap(self._uf.reduce(*_unwrap(args), **_unwrap(kwargs)))


class _StrictXP:
    """numpy's API, taking and giving StrictArrays."""

    __name__ = "strict_xp"
    ndarray = StrictArray

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, np.ufunc):
            return _StrictUfunc(attr)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes, constants
        return _wrapped_call(attr)

    # Like cupy.asarray / cupy.array, these accept host arrays (a copy to the "device").
    def asarray(self, a, dtype=None):
        return StrictArray(np.array(a._a if isinstance(a, StrictArray) else a, dtype=dtype, copy=None))

    def array(self, a, dtype=None, copy=True):
        return StrictArray(np.array(a._a if isinstance(a, StrictArray) else a, dtype=dtype, copy=copy))


strict_xp = _StrictXP()

STRICT = register_backend(Backend(
    "strict", strict_xp, "strict", reference=REFERENCE_KERNELS,  # no fast kernels: every fused op runs its spec
    asarray=lambda data: StrictArray(np.array(data)),
    to_numpy=lambda a: np.array(a._a),
))
