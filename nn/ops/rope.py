"""Rotary position embedding, in the half-split ("rotate_half") convention of transformers'
Llama: the first and second halves of each head's vector form the rotated pairs. The reference
kernels are in kernels/reference/rope.py, the Numba twins in kernels/cpu/rope.py."""

from __future__ import annotations

import numpy as np

from minigrad import Function, Tensor
from minigrad.backend import Backend


def rope_tables(head_dim: int, max_len: int, theta: float, backend: Backend, dtype=np.float32):
    """cos, sin tables of shape (max_len, head_dim): angle[t, i] = t * theta^(-2i/head_dim),
    repeated for both halves. Computed in float64 on the host, then cast."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    ang = np.arange(max_len, dtype=np.float64)[:, None] * inv_freq[None, :]   # (T, D/2)
    ang = np.concatenate([ang, ang], axis=1)                                    # (T, D)
    cos = Tensor(np.cos(ang).astype(dtype), backend=backend)
    sin = Tensor(np.sin(ang).astype(dtype), backend=backend)
    return cos, sin


class Rope(Function):
    def forward(self, x, cos, sin):
        self.cos, self.sin = cos, sin
        return self.backend.kernel("rope_forward")(x, cos, sin)

    def backward(self, g):
        return self.backend.kernel("rope_backward")(g, self.cos, self.sin), None, None


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, offset: int = 0) -> Tensor:
    """Rotate x (B, T, H, D) for positions offset .. offset+T-1 (tables are (max_len, D))."""
    t = x.shape[1]
    if offset + t > cos.shape[0]:
        raise ValueError(f"rope: positions up to {offset + t} exceed the table length {cos.shape[0]} "
                         "(raise max_seq_len)")
    c = Tensor._from_array(cos.data[offset:offset + t], cos.backend)
    s = Tensor._from_array(sin.data[offset:offset + t], sin.backend)
    return Rope.apply(x, c, s)


def apply_rope_simple(x: Tensor, cos: Tensor, sin: Tensor, offset: int = 0) -> Tensor:
    import minigrad as mg

    t, h = x.shape[1], x.shape[-1] // 2
    c = cos[offset:offset + t].unsqueeze(1)  # (T, 1, D)
    s = sin[offset:offset + t].unsqueeze(1)
    rotated = mg.cat([-x[..., h:], x[..., :h]], axis=-1)
    return x * c + rotated * s
