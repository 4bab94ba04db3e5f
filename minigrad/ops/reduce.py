"""Reductions. ``axis`` is an int, a tuple of ints or None; ``keepdims`` as in NumPy."""

from __future__ import annotations

from ..autograd import Function


def normalize_axis(axis, ndim: int) -> tuple:
    """Axis argument -> sorted tuple of non-negative axes (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _expand_back(g, in_shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input."""
    if not keepdims:
        shape = [1 if i in axes else n for i, n in enumerate(in_shape)]
        g = g.reshape(shape)
    return g


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g, self.shape)


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        self.n = 1
        for ax in self.axes:
            self.n *= a.shape[ax]
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims) / self.n
        return self.xp.broadcast_to(g, self.shape)


class _MaxMin(Function):
    """max / min: the gradient is split evenly among tied extremes (as torch's amax does)."""

    op = "max"

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        out = getattr(a, self.op)(axis=self.axes, keepdims=True)
        self.mask = a == out
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        m = self.mask.astype(g.dtype)
        return m * (g / m.sum(axis=self.axes, keepdims=True))


class Max(_MaxMin):
    op = "max"


class Min(_MaxMin):
    op = "min"


class Var(Function):
    """Variance with ``correction`` (1 = unbiased, torch's default; 0 = population)."""

    def forward(self, a, axis=None, keepdims=False, correction=1):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        n = 1
        for ax in self.axes:
            n *= a.shape[ax]
        self.denom = max(n - correction, 0)
        self.centered = a - a.mean(axis=self.axes, keepdims=True)
        out = (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdims)
        return out / self.denom if self.denom > 0 else out * float("nan")

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        return g * (2.0 / self.denom) * self.centered if self.denom > 0 else g * self.centered * float("nan")


class LogSumExp(Function):
    def forward(self, a, axis=None, keepdims=False):
        xp = self.xp
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        m = a.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros((), dtype=a.dtype))
        e = xp.exp(a - m)
        s = e.sum(axis=self.axes, keepdims=True)
        out = xp.log(s) + m
        self.soft = e / s
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        return _expand_back(g, self.shape, self.axes, self.keepdims) * self.soft
