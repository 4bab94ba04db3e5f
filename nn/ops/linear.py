"""y = x @ W^T (+ b), with W stored (out, in) as in PyTorch and transformers."""

from __future__ import annotations

from minigrad import Function, Tensor


class Linear(Function):
    # x (..., in) is folded to rows (N, in) so each product is one 2-D GEMM.
    def forward(self, x, w, b=None):
        self.x_shape = x.shape
        self.x2 = x.reshape(-1, x.shape[-1])          # (N, in)
        self.w = w                                     # (out, in)
        y = self.x2 @ w.T                              # (N, out)
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])                # (N, out)
        gx = (g2 @ self.w).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = g2.T @ self.x2 if self.needs_grad[1] else None
        if len(self.needs_grad) == 3:
            return gx, gw, (g2.sum(axis=0) if self.needs_grad[2] else None)
        return gx, gw


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input's last dim {x.shape[-1]} != weight's in_features {weight.shape[1]} "
                         f"(input {x.shape}, weight {weight.shape})")
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def linear_simple(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = x @ weight.T
    return y if bias is None else y + bias
