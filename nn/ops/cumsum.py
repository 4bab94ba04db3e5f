"""Cumulative sum along an axis (Mamba3 sums its rotation angles over time): the gradient of a
running sum is the running sum of the gradient taken from the other end."""

from __future__ import annotations

from minigrad import Function, Tensor


class Cumsum(Function):
    def forward(self, x, axis):
        self.axis = axis
        return self.xp.cumsum(x, axis=axis)

    def backward(self, g):
        xp, ax = self.xp, self.axis
        return xp.flip(xp.cumsum(xp.flip(g, axis=ax), axis=ax), axis=ax)


def cumsum(x: Tensor, axis: int) -> Tensor:
    return Cumsum.apply(x, axis=axis % x.ndim)
