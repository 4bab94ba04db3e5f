"""The causal depthwise 1-D convolution of the Mamba blocks, optionally followed by SiLU: the spec
that kernels/cpu/causal_conv1d.py is held to; used by ``nn.ops.causal_conv1d``.

Layout is channels-last, as the projections make it: x (B, T, C), one filter of K taps per
channel, w (C, K) (transformers' conv1d.weight (C, 1, K) without its middle axis). Output t sees
inputs t-K+1 .. t, zeros before the start:

    y[b, t, c] = bias[c] + sum_k w[c, k] * x[b, t - K + 1 + k, c]
"""

from __future__ import annotations


def _sigmoid(xp, x):
    return 0.5 * (1 + xp.tanh(0.5 * x))  # no overflow for large |x|


def _padded(xp, x, k):
    """x with K-1 zero steps in front: (B, T + K - 1, C)."""
    b, _, c = x.shape
    return xp.concatenate([xp.zeros((b, k - 1, c), dtype=x.dtype), x], axis=1)


def _conv(xp, x, w, bias):
    t, k = x.shape[1], w.shape[1]
    xpad = _padded(xp, x, k)
    y = xpad[:, 0:t] * w[:, 0]
    for j in range(1, k):
        y = y + xpad[:, j:j + t] * w[:, j]
    return y if bias is None else y + bias


def causal_conv1d_forward(xp, x, w, bias, silu):
    """x (B, T, C), w (C, K), bias (C,) or None -> y (B, T, C); SiLU applied when ``silu``."""
    y = _conv(xp, x, w, bias)
    return y * _sigmoid(xp, y) if silu else y


def causal_conv1d_backward(xp, g, x, w, bias, silu):
    """Given dL/dy, return dL/dx (B, T, C), dL/dw (C, K), dL/dbias (C,) (None without a bias).
    The pre-activation is recomputed, not saved: the convolution is cheap next to its memory."""
    t, k = x.shape[1], w.shape[1]
    if silu:
        pre = _conv(xp, x, w, bias)
        s = _sigmoid(xp, pre)
        g = g * (s * (1 + pre * (1 - s)))
    # dx[t] = sum_j w[:, j] g[t + K - 1 - j]: the same filter run backwards over g padded at the end
    gpad = xp.concatenate([g, xp.zeros((g.shape[0], k - 1, g.shape[2]), dtype=g.dtype)], axis=1)
    dx = gpad[:, k - 1:k - 1 + t] * w[:, 0]
    for j in range(1, k):
        dx = dx + gpad[:, k - 1 - j:k - 1 - j + t] * w[:, j]
    xpad = _padded(xp, x, k)
    dw = xp.stack([(g * xpad[:, j:j + t]).sum(axis=(0, 1)) for j in range(k)], axis=1)
    db = None if bias is None else g.sum(axis=(0, 1))
    return dx, dw.astype(w.dtype, copy=False), db
