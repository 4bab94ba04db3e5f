"""Mixture-of-Experts dispatch and combine, the reference kernels: copy each token to its experts'
rows of the expert-sorted buffer, and add the experts' outputs back, weighted, per token; forward and
backward. The spec that kernels/cpu/moe_dispatch.py is held to; used by ``nn.ops.moe``.

The plan comes from ``moe_sort_by_expert``: ``order`` (M,) the slot id of each buffer row and
``slot_row`` (N, k) the buffer row of each slot (-1 = dropped). Both directions are written per
token (a gather over its k slots), so nothing is ever added into the same place twice: the results
do not depend on thread scheduling.
"""

from __future__ import annotations


def _with_zero_row(xp, rows):
    """(M, H) -> (M + 1, H) with a zero row last: index -1 (a dropped slot) then reads zeros."""
    return xp.concatenate([rows, xp.zeros((1, rows.shape[1]), dtype=rows.dtype)], axis=0)


def moe_gather(xp, x, order, k):
    """x (N, H), order (M,) -> xs (M, H): row m is the token of slot order[m]."""
    return x[order // k]


def moe_gather_backward(xp, dxs, slot_row):
    """dxs (M, H), slot_row (N, k) -> dx (N, H): each token sums the gradients of its kept slots."""
    return _with_zero_row(xp, dxs)[slot_row].sum(axis=1)


def moe_combine(xp, ys, slot_row, weights):
    """ys (M, H) experts' outputs by buffer row, slot_row (N, k), weights (N, k) ->
    out (N, H) = sum over j of weights[n, j] * ys[slot_row[n, j]] (a dropped slot adds nothing)."""
    return (_with_zero_row(xp, ys)[slot_row] * weights[..., None]).sum(axis=1)


def moe_combine_backward(xp, g, ys, slot_row, weights):
    """g (N, H) = dL/dout -> dys (M, H), dweights (N, k)."""
    picked = _with_zero_row(xp, ys)[slot_row]                             # (N, k, H)
    dweights = (picked * g[:, None, :]).sum(axis=-1)                     # (N, k)
    m, h = ys.shape
    dys = xp.zeros((m + 1, h), dtype=ys.dtype)
    # Each kept slot owns one row, so this is a permutation; dropped slots all land in the spare row.
    dys[slot_row.reshape(-1)] = (weights[..., None] * g[:, None, :]).reshape(-1, h)
    return dys[:m], dweights
