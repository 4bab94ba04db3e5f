"""Reductions. ``axis`` is an int, a tuple of ints or None; ``keepdims`` as in NumPy.
``logsumexp_simple`` is the fused LogSumExp's composite from primitive ops.

Sum, Mean and Max hand arrays of ``backend.kernel_min_size`` elements or more to the backend's
"sum" / "max" kernel (threaded on the numba backend; see ops/elementwise.py); NumPy's own
reduction, the kernels' reference, runs the rest."""

from __future__ import annotations

from ..autograd import Function

_ALL_AXES = [tuple(range(n)) for n in range(33)]  # NumPy's limit is 64 dimensions; these are the usual ones


def normalize_axis(axis, ndim: int) -> tuple:
    """Axis argument -> sorted tuple of non-negative axes (all axes for None)."""
    if axis is None:  # the common cases first, without building anything (this runs on every reduction)
        return _ALL_AXES[ndim] if ndim < 33 else tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:
        return (axis % ndim,)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


class _Reduction(Function):
    """What every reduction's backward needs, kept in one place: the input's shape, the reduced
    axes (sorted, non-negative) and keepdims."""

    def _reduce_over(self, a, axis, keepdims) -> tuple:
        """Record a's shape, the axes and keepdims; returns the axes."""
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        return self.axes

    def _count(self) -> int:
        """How many input elements went into each output element."""
        n = 1
        for ax in self.axes:
            n *= self.shape[ax]
        return n

    def _squeeze(self, out):
        """A result computed with keepdims=True, in the shape the caller asked for."""
        return out if self.keepdims else out.reshape([n for i, n in enumerate(self.shape) if i not in self.axes])

    def _unsqueeze(self, g):
        """The output's gradient reshaped so it broadcasts against the input (1 on the reduced axes)."""
        return g if self.keepdims else g.reshape([1 if i in self.axes else n for i, n in enumerate(self.shape)])


class Sum(_Reduction):
    def forward(self, a, axis=None, keepdims=False):
        # _reduce_over written out, with normalize_axis's first case: the commonest reduction, kept short
        self.shape, self.keepdims = a.shape, keepdims
        self.axes = axes = _ALL_AXES[a.ndim] if axis is None and a.ndim < 33 else normalize_axis(axis, a.ndim)
        backend = self.backend
        if a.size >= backend.kernel_min_size:
            return backend.kernel("sum")(a, axes, keepdims)
        if backend.numpy_arrays:  # what a.sum calls, without its Python wrapper (a third of a tiny sum)
            return self.xp.add.reduce(a, axes, None, None, keepdims)
        return a.sum(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return self.xp.broadcast_to(self._unsqueeze(g), self.shape)


class Mean(_Reduction):
    def forward(self, a, axis=None, keepdims=False):
        axes = self._reduce_over(a, axis, keepdims)
        if a.size >= self.backend.kernel_min_size and a.dtype.kind == "f":
            return self.backend.kernel("sum")(a, axes, keepdims) / a.dtype.type(self._count())
        return a.mean(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return self.xp.broadcast_to(self._unsqueeze(g) / self._count(), self.shape)


class _MaxMin(_Reduction):
    """max / min: the gradient is split evenly among tied extremes (as torch's amax does)."""

    op = "max"

    def forward(self, a, axis=None, keepdims=False):
        axes = self._reduce_over(a, axis, keepdims)
        keep = self.needs_grad[0]  # the backward finds the extremes again: a and out are kept, not a mask
        if self.op == "max" and a.size >= self.backend.kernel_min_size:
            out = self.backend.kernel("max")(a, axes, keepdims or keep)
        else:
            out = getattr(a, self.op)(axis=axes, keepdims=keepdims or keep)
        if not keep:  # (no gradient: the result as asked, with no reshape after it)
            return out
        self.a, self.out = a, out
        return self._squeeze(out)

    def backward(self, g):
        m = (self.a == self.out).astype(g.dtype)
        return m * (self._unsqueeze(g) / m.sum(axis=self.axes, keepdims=True))


class Max(_MaxMin):
    op = "max"


class Min(_MaxMin):
    op = "min"


class Var(_Reduction):
    """Variance with ``correction`` (1 = unbiased, torch's default; 0 = population)."""

    def forward(self, a, axis=None, keepdims=False, correction=1):
        axes = self._reduce_over(a, axis, keepdims)
        self.denom = max(self._count() - correction, 0)
        self.centered = a - a.mean(axis=axes, keepdims=True)
        out = (self.centered * self.centered).sum(axis=axes, keepdims=keepdims)
        return out / self.denom if self.denom > 0 else out * float("nan")

    def backward(self, g):
        g = self._unsqueeze(g)
        return g * (2.0 / self.denom) * self.centered if self.denom > 0 else g * self.centered * float("nan")


class LogSumExp(_Reduction):
    def forward(self, a, axis=None, keepdims=False):
        xp = self.xp
        axes = self._reduce_over(a, axis, keepdims)
        m = a.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros((), dtype=a.dtype))  # an all -inf row: shift by 0, not inf
        e = xp.exp(a - m)
        s = e.sum(axis=axes, keepdims=True)
        self.soft = e / s
        return self._squeeze(xp.log(s) + m)

    def backward(self, g):
        return self._unsqueeze(g) * self.soft


def logsumexp_simple(x, axis=None, keepdims: bool = False):
    """log(sum(exp(x))) from primitive ops, whose backward autograd derives: the max is
    subtracted first so exp cannot overflow, and detached (the shift cancels in the value, so
    no gradient flows through it). Unlike the fused op, an all -inf slice gives nan."""
    m = x.max(axis=axis, keepdims=True).detach()
    s = (x - m).exp().sum(axis=axis, keepdims=keepdims).log()
    return s + (m if keepdims else m.reshape(s.shape))
