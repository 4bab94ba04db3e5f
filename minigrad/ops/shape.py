"""Ops that move data without arithmetic: reshape, permute, broadcast, join and split."""

from __future__ import annotations

from ..autograd import Function


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        inv = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inv[ax] = i
        return g.transpose(inv)


class BroadcastTo(Function):
    def forward(self, a, shape):
        return self.xp.broadcast_to(a, shape)

    def backward(self, g):
        return g  # the engine sums it back to the input's shape


class Contiguous(Function):
    def forward(self, a):
        return self.xp.ascontiguousarray(a)

    def backward(self, g):
        return g


class Concat(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis % arrays[0].ndim
        self.sizes = [a.shape[self.axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=self.axis)

    def backward(self, g):
        out, start = [], 0
        idx = [slice(None)] * g.ndim
        for n, need in zip(self.sizes, self.needs_grad):
            idx[self.axis] = slice(start, start + n)
            out.append(g[tuple(idx)] if need else None)
            start += n
        return tuple(out)


class Stack(Function):
    def forward(self, *arrays, axis=0):
        out = self.xp.stack(arrays, axis=axis)
        self.axis = axis % out.ndim
        return out

    def backward(self, g):
        return tuple(self.xp.take(g, i, axis=self.axis) if need else None
                     for i, need in enumerate(self.needs_grad))


class Split(Function):
    """One input, several outputs (views); the backward writes each piece's gradient back."""

    def forward(self, a, sections, axis=0):
        self.axis = axis % a.ndim
        self.shape, self.dtype = a.shape, a.dtype
        self.bounds = []
        start = 0
        idx = [slice(None)] * a.ndim
        outs = []
        for n in sections:
            idx[self.axis] = slice(start, start + n)
            self.bounds.append(tuple(idx))
            outs.append(a[tuple(idx)])
            start += n
        return tuple(outs)

    def backward(self, *grads):
        if all(g is not None for g in grads):
            return self.xp.concatenate(grads, axis=self.axis)
        out = self.xp.zeros(self.shape, dtype=self.dtype)
        for b, g in zip(self.bounds, grads):
            if g is not None:
                out[b] = g
        return out


class Tril(Function):
    def forward(self, a, k=0):
        self.k = k
        return self.xp.tril(a, k)

    def backward(self, g):
        return self.xp.tril(g, self.k)


class Triu(Function):
    def forward(self, a, k=0):
        self.k = k
        return self.xp.triu(a, k)

    def backward(self, g):
        return self.xp.triu(g, self.k)
