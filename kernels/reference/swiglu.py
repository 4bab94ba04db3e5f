"""SwiGLU gate's reference kernels: silu(gate) * up, the middle of the Llama MLP. The spec
that kernels/cpu/swiglu.py is held to; used by ``nn.ops.swiglu`` and ``nn.ops.swiglu_linear``."""

from __future__ import annotations


def swiglu_forward(xp, gate, up, out=None):
    """silu(gate) * up. ``out``: optional array to write the result into."""
    sig = 0.5 * (1 + xp.tanh(0.5 * gate))  # sigmoid without overflow
    y = gate * sig * up
    if out is None:
        return y
    out[...] = y
    return out


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
