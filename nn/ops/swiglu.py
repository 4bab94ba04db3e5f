"""SwiGLU's gate: silu(gate) * up, the middle of the Llama MLP down(silu(gate(x)) * up(x))."""

from __future__ import annotations

from minigrad import Function, Tensor
from minigrad.backend import register_reference


@register_reference("swiglu_forward")
def swiglu_forward(xp, gate, up, out=None):
    """silu(gate) * up. ``out``: optional array to write the result into."""
    sig = 0.5 * (1 + xp.tanh(0.5 * gate))  # sigmoid without overflow
    y = gate * sig * up
    if out is None:
        return y
    out[...] = y
    return out


@register_reference("swiglu_backward")
def swiglu_backward(xp, g, gate, up, out=None):
    """dL/dgate, dL/dup. ``out``: optional (dgate, dup) arrays to write them into, so a caller
    can have both land in one buffer (the fused gate/up projection's gradient)."""
    sig = 0.5 * (1 + xp.tanh(0.5 * gate))
    silu = gate * sig
    dgate = g * up * (sig * (1 + gate * (1 - sig)))
    dup = g * silu
    if out is None:
        return dgate, dup
    out[0][...] = dgate
    out[1][...] = dup
    return out


class SwiGLU(Function):
    def forward(self, gate, up):
        self.gate, self.up = gate, up
        return self.backend.kernel("swiglu_forward")(self.xp, gate, up)

    def backward(self, g):
        return self.backend.kernel("swiglu_backward")(self.xp, g, self.gate, self.up)


def swiglu(gate: Tensor, up: Tensor) -> Tensor:
    if gate.shape != up.shape:
        raise ValueError(f"swiglu: gate {gate.shape} and up {up.shape} must have the same shape")
    return SwiGLU.apply(gate, up)


def swiglu_simple(gate: Tensor, up: Tensor) -> Tensor:
    return gate.silu() * up
