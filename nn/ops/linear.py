"""y = x @ W^T (+ b), with W stored (out, in) as in PyTorch and transformers.

Also two fused forms that turn several projections of the same input into one GEMM (one
larger product runs closer to the BLAS peak than three small ones, and the input's gradient
comes out of one product instead of a sum of three):

* ``linear_split(x, (W1, W2, ...))`` = (x W1^T, x W2^T, ...): attention's q, k, v projections.
* ``swiglu_linear(x, W_gate, W_up)`` = silu(x W_gate^T) * (x W_up^T): the first half of the
  Llama MLP, whose backward writes both gates' gradients straight into the GEMM's buffer.

The weights stay separate parameters (the model's state_dict keeps transformers' names);
they are stacked into one (sum of out, in) matrix on each forward, a copy far smaller than
the product itself.
"""

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


def _stacked_weight(xp, ws):
    return ws[0] if len(ws) == 1 else xp.concatenate(ws, axis=0)   # (sum of out, in)


def _weight_grads(gw, rows, needs):
    """Split the stacked weight's gradient (sum of out, in) into blocks of ``rows`` rows (views)."""
    out, start = [], 0
    for n, need in zip(rows, needs):
        out.append(gw[start:start + n] if need else None)
        start += n
    return out


class LinearSplit(Function):
    """(x W1^T, x W2^T, ...) from one product with the stacked weights. The outputs are
    column blocks (views) of the (N, sum of out) product."""

    def forward(self, x, *ws):
        self.x_shape = x.shape
        self.x2 = x.reshape(-1, x.shape[-1])                          # (N, in)
        self.w = _stacked_weight(self.xp, ws)                         # (sum of out, in)
        self.rows = [w.shape[0] for w in ws]
        y = self.x2 @ self.w.T                                        # (N, sum of out)
        outs, start = [], 0
        for w in ws:
            outs.append(y[:, start:start + w.shape[0]].reshape(*x.shape[:-1], w.shape[0]))
            start += w.shape[0]
        return tuple(outs)

    def backward(self, *grads):
        xp = self.xp
        n = self.x2.shape[0]
        # Missing output gradients (an output nobody used) are zeros in the stacked gradient.
        g2 = xp.concatenate([g.reshape(n, -1) if g is not None else xp.zeros((n, r), dtype=self.w.dtype)
                             for g, r in zip(grads, self.rows)], axis=1)        # (N, sum of out)
        gx = (g2 @ self.w).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = g2.T @ self.x2 if any(self.needs_grad[1:]) else None
        return (gx, *_weight_grads(gw, self.rows, self.needs_grad[1:]))


class SwiGLULinear(Function):
    """silu(x W_gate^T) * (x W_up^T) with the gate and up products done as one GEMM."""

    def forward(self, x, w_gate, w_up):
        self.x_shape = x.shape
        self.x2 = x.reshape(-1, x.shape[-1])                          # (N, in)
        self.w = _stacked_weight(self.xp, (w_gate, w_up))             # (2F, in)
        f = w_gate.shape[0]
        self.gu = self.x2 @ self.w.T                                  # (N, 2F): [gate | up]
        h = self.backend.kernel("swiglu_forward")(self.gu[:, :f], self.gu[:, f:])   # (N, F)
        return h.reshape(*x.shape[:-1], f)

    def backward(self, g):
        f = self.gu.shape[1] // 2
        g2 = g.reshape(-1, f)                                         # (N, F)
        dgu = self.xp.empty_like(self.gu)                             # (N, 2F): [dgate | dup]
        self.backend.kernel("swiglu_backward")(g2, self.gu[:, :f], self.gu[:, f:], out=(dgu[:, :f], dgu[:, f:]))
        gx = (dgu @ self.w).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = dgu.T @ self.x2 if any(self.needs_grad[1:]) else None
        return (gx, *_weight_grads(gw, (f, f), self.needs_grad[1:]))


def _check(x: Tensor, weight: Tensor, who: str = "linear") -> None:
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"{who}: input's last dim {x.shape[-1]} != weight's in_features {weight.shape[1]} "
                         f"(input {x.shape}, weight {weight.shape})")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    _check(x, weight)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def linear_simple(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = x @ weight.T
    return y if bias is None else y + bias


def linear_split(x: Tensor, weights: tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    """(x W1^T, x W2^T, ...) for weights sharing in_features, as one product."""
    for w in weights:
        _check(x, w, "linear_split")
    return LinearSplit.apply(x, *weights)


def linear_split_simple(x: Tensor, weights: tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    return tuple(linear_simple(x, w) for w in weights)


def swiglu_linear(x: Tensor, w_gate: Tensor, w_up: Tensor) -> Tensor:
    """silu(x W_gate^T) * (x W_up^T): (..., in) -> (..., F)."""
    _check(x, w_gate, "swiglu_linear")
    _check(x, w_up, "swiglu_linear")
    if w_gate.shape != w_up.shape:
        raise ValueError(f"swiglu_linear: gate weight {w_gate.shape} and up weight {w_up.shape} differ")
    return SwiGLULinear.apply(x, w_gate, w_up)


def swiglu_linear_simple(x: Tensor, w_gate: Tensor, w_up: Tensor) -> Tensor:
    return linear_simple(x, w_gate).silu() * linear_simple(x, w_up)
