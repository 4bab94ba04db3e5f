"""The one list of kernel names, each with its contract.

Every kernel has a reference (``kernels/reference``): ``fn(xp, *arrays, ...)``, written against
``xp`` only, the spec. A backend may also have a fast twin (``kernels/cpu`` for "numba"):
``fn(*arrays, ...)`` on that backend's own arrays, no ``xp``, same results to rounding. A fast
kernel that does not handle a case returns ``NotImplemented`` before it writes anything, and the
reference runs instead.

Shapes below use N tokens, H features, E experts, k experts per token, M kept (token, expert)
slots; a slot n * k + j is token n's j-th choice; int arrays are int64.
"""

from __future__ import annotations

CONTRACTS: dict[str, str] = {
    "moe_topk":
        "(scores (N, E), k, n_group=1, topk_group=1, group_score='max'|'top2') -> idx (N, k): each token's "
        "k best experts, best first, ties to the lower index; with n_group > 1 and topk_group < n_group only "
        "experts of the topk_group best groups (group score: its max, or the sum of its two best) are chosen",
    "moe_sort_by_expert":
        "(idx (N, k), num_experts, capacity=-1) -> order (M,), offsets (E+1,), slot_row (N, k), load (E,): "
        "kept slots grouped by expert in slot order, expert e's rows offsets[e]:offsets[e+1], each slot's row "
        "(-1 if dropped), slots per expert before dropping; capacity >= 0 keeps each expert's first capacity",
    "moe_gather":
        "(x (N, H), order (M,), k) -> xs (M, H) = x[order // k]",
    "moe_gather_backward":
        "(dxs (M, H), slot_row (N, k)) -> dx (N, H): per token, the sum over its kept slots of dxs[row]",
    "moe_combine":
        "(ys (M, H), slot_row (N, k), weights (N, k)) -> out (N, H) = sum_j weights[n, j] ys[slot_row[n, j]] "
        "over kept slots",
    "moe_combine_backward":
        "(g (N, H), ys (M, H), slot_row, weights (N, k)) -> dys (M, H), dweights (N, k) (0 for dropped slots)",
}

NAMES: frozenset[str] = frozenset(CONTRACTS)
