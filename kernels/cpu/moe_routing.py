"""Numba Mixture-of-Experts routing: top-k expert choice (with DeepSeek's group limit) and the
counting sort of token slots by expert, the twins of kernels/reference/moe_routing.py.

Top-k runs one token per thread: k passes of an arg-max with a strict ``>``, so among equal scores
the lower index wins, as in the reference's stable sort; k is small (1 to 8), so this beats sorting
all E scores. The sort by expert is a parallel counting sort: each thread counts the experts of one
chunk of slots, a prefix over (chunk, expert) gives every chunk its first row per expert, then each
thread places its chunk's slots, in slot order: the result is the reference's stable sort exactly.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _holds(row, n, value):  # pragma: no cover - compiled
    for i in range(n):
        if row[i] == value:
            return True
    return False


@numba.njit(parallel=True, cache=True)
def _topk_rows(scores, k, n_group, topk_group, top2, out, groups):  # pragma: no cover - compiled
    # scores (N, E); out (N, k) chosen experts; groups (N, topk_group) scratch: each token's best groups.
    n, e = scores.shape
    per = e // n_group
    limited = n_group > 1 and topk_group < n_group
    for i in numba.prange(n):
        row = scores[i]
        if limited:
            for t in range(topk_group):
                best_g, best_score = -1, row[0]
                for g in range(n_group):
                    if _holds(groups[i], t, g):
                        continue
                    first = second = row.dtype.type(-np.inf)  # the group's two best scores, in row's dtype
                    for j in range(g * per, (g + 1) * per):
                        v = row[j]
                        if v > first:
                            first, second = v, first
                        elif v > second:
                            second = v
                    score = first + second if top2 and per >= 2 else first
                    if best_g < 0 or score > best_score:
                        best_g, best_score = g, score
                groups[i, t] = best_g
        for t in range(k):
            best = -1
            for j in range(e):
                if limited and not _holds(groups[i], topk_group, j // per):
                    continue
                if _holds(out[i], t, j):
                    continue
                if best < 0 or row[j] > row[best]:
                    best = j
            out[i, t] = best


def moe_topk(scores: np.ndarray, k: int, n_group: int = 1, topk_group: int = 1, group_score: str = "max"):
    if scores.dtype not in (np.float32, np.float64) or scores.ndim != 2 or group_score not in ("max", "top2"):
        return NotImplemented
    n = scores.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    groups = np.empty((n, max(topk_group, 1)), dtype=np.int64)
    _topk_rows(np.ascontiguousarray(scores), k, n_group, topk_group, group_score == "top2", out, groups)
    return out


@numba.njit(parallel=True, cache=True)
def _counting_sort(flat, num_experts, capacity, n_chunks):  # pragma: no cover - compiled
    m = flat.size
    counts = np.zeros((n_chunks, num_experts), dtype=np.int64)
    for c in numba.prange(n_chunks):
        for s in range(m * c // n_chunks, m * (c + 1) // n_chunks):
            counts[c, flat[s]] += 1
    # first_rank[c, e]: how many of expert e's slots come before chunk c (a prefix over chunks)
    first_rank = np.zeros((n_chunks, num_experts), dtype=np.int64)
    load = np.zeros(num_experts, dtype=np.int64)
    for c in range(n_chunks):
        for e in range(num_experts):
            first_rank[c, e] = load[e]
            load[e] += counts[c, e]
    offsets = np.zeros(num_experts + 1, dtype=np.int64)
    for e in range(num_experts):
        kept = load[e] if capacity < 0 else min(load[e], capacity)
        offsets[e + 1] = offsets[e] + kept
    order = np.empty(offsets[num_experts], dtype=np.int64)
    slot_row = np.empty(m, dtype=np.int64)
    for c in numba.prange(n_chunks):
        rank = first_rank[c].copy()
        for s in range(m * c // n_chunks, m * (c + 1) // n_chunks):
            e = flat[s]
            r = rank[e]
            rank[e] += 1
            if capacity < 0 or r < capacity:
                row = offsets[e] + r
                order[row] = s
                slot_row[s] = row
            else:
                slot_row[s] = -1
    return order, offsets, slot_row, load


def moe_sort_by_expert(idx: np.ndarray, num_experts: int, capacity: int = -1):
    if idx.dtype.kind not in "iu" or idx.size == 0 or idx.min() < 0 or idx.max() >= num_experts:
        return NotImplemented
    flat = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
    n_chunks = max(1, min(numba.get_num_threads(), flat.size // 256))
    order, offsets, slot_row, load = _counting_sort(flat, num_experts, int(capacity), n_chunks)
    return order, offsets, slot_row.reshape(idx.shape), load
