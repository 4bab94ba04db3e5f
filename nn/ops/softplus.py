"""softplus(x) = log(1 + exp(x)), as torch.nn.functional.softplus (threshold 20: above it, x itself),
which Mamba uses to keep the step sizes dt positive."""

from __future__ import annotations

from minigrad import Function, Tensor

THRESHOLD = 20.0


class Softplus(Function):
    def forward(self, x):
        self.x = x
        xp = self.xp
        return xp.where(x > THRESHOLD, x, xp.log1p(xp.exp(xp.minimum(x, THRESHOLD))))

    def backward(self, g):
        x = self.x
        sig = 0.5 * (1 + self.xp.tanh(0.5 * x))  # d softplus / dx = sigmoid(x)
        return g * self.xp.where(x > THRESHOLD, self.xp.ones((), dtype=x.dtype), sig)


def softplus(x: Tensor) -> Tensor:
    return Softplus.apply(x)


def softplus_simple(x: Tensor) -> Tensor:
    """The same from primitive ops (no threshold: fine below exp's overflow)."""
    return (x.exp() + 1).log()
