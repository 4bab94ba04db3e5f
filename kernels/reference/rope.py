"""Rotary position embedding's reference kernels, in the half-split ("rotate_half")
convention of transformers' Llama. The spec that kernels/cpu/rope.py is held to; used by
``nn.ops.apply_rope``."""

from __future__ import annotations


def _rotate_half(xp, x):
    h = x.shape[-1] // 2
    return xp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _rotate_half_t(xp, y):
    # The transpose of rotate_half: it sends (y1, y2) to (y2, -y1).
    h = y.shape[-1] // 2
    return xp.concatenate([y[..., h:], -y[..., :h]], axis=-1)


def rope_forward(xp, x, cos, sin):
    """x (B, T, H, D); cos, sin (T, D) for the positions of x."""
    c, s = cos[:, None, :], sin[:, None, :]  # (T, 1, D): broadcast over heads
    return x * c + _rotate_half(xp, x) * s


def rope_backward(xp, g, cos, sin):
    c, s = cos[:, None, :], sin[:, None, :]
    return g * c + _rotate_half_t(xp, g * s)
