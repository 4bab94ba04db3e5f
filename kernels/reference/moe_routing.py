"""Mixture-of-Experts routing, the reference kernels: which experts each token goes to (top-k, with
DeepSeek's group limit), and the dispatch plan that sorts the token slots by expert. The spec that
kernels/cpu/moe_routing.py is held to; used by ``nn.router`` and ``nn.moe``.

Shapes: N tokens, E experts, k experts per token; a *slot* is one (token, choice) pair, numbered
n * k + j, so there are N * k of them. Ties are broken toward the lower index (of an expert or a
group), so the routing is a function of the scores alone.
"""

from __future__ import annotations


def _rank_desc(xp, a):
    """Column indices of each row of ``a`` (R, C) from the largest value down; equal values keep
    their order (lower index first): a stable sort of -a."""
    return xp.argsort(-a, axis=-1, kind="stable")


def moe_topk(xp, scores, k, n_group=1, topk_group=1, group_score="max"):
    """scores (N, E) -> the k chosen experts of each token (N, k) int64, best first.

    Group-limited routing (n_group > 1, topk_group < n_group): the E experts form n_group equal
    groups; a group's score is its best expert's (``"max"``, DeepSeek-V2) or the sum of its two best
    (``"top2"``, DeepSeek-V3); a token only chooses among the experts of its topk_group best groups."""
    n, e = scores.shape
    if n_group > 1 and topk_group < n_group:
        per = e // n_group
        grouped = scores.reshape(n, n_group, per)                        # (N, G, E/G)
        if group_score == "top2":
            best_two = xp.sort(grouped, axis=-1)[..., -min(2, per):]     # ascending: the two best last
            group_scores = best_two.sum(axis=-1)                         # (N, G)
        else:
            group_scores = grouped.max(axis=-1)
        # group_rank[n, g]: place of group g in token n's order, 0 = best (the inverse permutation)
        group_rank = xp.argsort(_rank_desc(xp, group_scores), axis=-1)
        allowed = xp.repeat(group_rank < topk_group, per, axis=1)        # (N, E)
        scores = xp.where(allowed, scores, xp.asarray(-xp.inf, dtype=scores.dtype))
    return _rank_desc(xp, scores)[:, :k].astype(xp.int64)


def moe_sort_by_expert(xp, idx, num_experts, capacity=-1):
    """idx (N, k) expert of each slot -> the dispatch plan:

    * order (M,) int64: the kept slots' ids, grouped by expert (expert 0's first), in slot order
      within an expert; row m of the expert-sorted buffer holds token order[m] // k;
    * offsets (E + 1,) int64: expert e's rows are offsets[e]:offsets[e + 1];
    * slot_row (N, k) int64: the row of each slot, -1 for a dropped one;
    * load (E,) int64: slots routed to each expert, dropped ones included.

    capacity >= 0: an expert keeps its first ``capacity`` slots (in slot order) and drops the rest;
    capacity < 0: nothing is dropped (M = N * k)."""
    flat = idx.reshape(-1).astype(xp.int64)
    load = xp.bincount(flat, minlength=num_experts).astype(xp.int64)
    by_expert = xp.argsort(flat, kind="stable")                          # (N*k,) slot ids
    first_row = xp.cumsum(load) - load                                   # (E,) where each run starts
    rank = xp.arange(flat.size) - first_row[flat[by_expert]]             # place within its expert's run
    if capacity >= 0:
        order = by_expert[rank < capacity]
        kept = xp.minimum(load, capacity)
    else:
        order, kept = by_expert, load
    offsets = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(kept)])
    slot_row = xp.full(flat.size, -1, dtype=xp.int64)
    slot_row[order] = xp.arange(order.size)
    return order.astype(xp.int64), offsets, slot_row.reshape(idx.shape), load
