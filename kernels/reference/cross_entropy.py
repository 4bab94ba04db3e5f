"""Fused softmax + cross-entropy's reference kernel. The spec that kernels/cpu/cross_entropy.py
is held to; used by ``minigrad.cross_entropy``."""

from __future__ import annotations


def softmax_cross_entropy(xp, logits, targets, ignore_index):
    """Fused softmax + negative log-likelihood over the last axis of 2-D ``logits`` (N, C).

    Returns (loss_sum, n_valid, dlogits_per_unit): the summed loss over targets that are not
    ``ignore_index``, their count, and d(loss_sum)/d(logits), so the caller scales it once.
    float16/bfloat16 logits are computed in float32: loss_sum is float32, the gradient is rounded back.
    """
    n = logits.shape[0]
    out_dtype = logits.dtype
    if logits.dtype.itemsize < 4:  # float16 / bfloat16: the softmax and the loss are summed in float32
        logits = logits.astype("float32")
    valid = targets != ignore_index
    safe_t = xp.where(valid, targets, 0)
    m = logits.max(axis=1, keepdims=True)
    e = xp.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    logp_t = (logits[xp.arange(n), safe_t] - m[:, 0]) - xp.log(s[:, 0])
    vmask = valid.astype(logits.dtype)
    loss_sum = -(logp_t * vmask).sum()
    grad = e / s
    grad[xp.arange(n), safe_t] -= 1
    grad *= vmask[:, None]
    return loss_sum, int(valid.sum()), grad.astype(out_dtype, copy=False)
