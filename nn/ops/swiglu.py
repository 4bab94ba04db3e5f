"""SwiGLU's gate: silu(gate) * up, the middle of the Llama MLP down(silu(gate(x)) * up(x)).
The reference kernels are in kernels/reference/swiglu.py, the Numba twins in kernels/cpu/swiglu.py."""

from __future__ import annotations

from minigrad import Function, Tensor


class SwiGLU(Function):
    def forward(self, gate, up):
        self.gate, self.up = gate, up
        return self.backend.kernel("swiglu_forward")(gate, up)

    def backward(self, g):
        return self.backend.kernel("swiglu_backward")(g, self.gate, self.up)


def swiglu(gate: Tensor, up: Tensor) -> Tensor:
    if gate.shape != up.shape:
        raise ValueError(f"swiglu: gate {gate.shape} and up {up.shape} must have the same shape")
    return SwiGLU.apply(gate, up)


def swiglu_simple(gate: Tensor, up: Tensor) -> Tensor:
    return gate.silu() * up
