"""MoE routing's CUDA launchers (moe_routing.cu); same contract as kernels/reference/moe_routing.py.

moe_topk: any float dtype of scores; group-limited routing with more than 64 groups, E not a multiple of
n_group, or k > E return NotImplemented. moe_sort_by_expert: a stable counting sort (per-expert prefix sums
in shared memory, no atomics), so the plan is a function of idx alone, equal to the reference's. One
device-to-host transfer: M, the kept rows (the size of ``order``), with idx's range, so an expert id outside
[0, E) returns NotImplemented (the reference then says what is wrong)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._runtime import (
    FLOAT_DTYPES,
    INT32_MAX,
    Launch,
    array_module,
    blocks_for,
    dtype_name,
    kernel,
    launch,
    to_host,
    types_of,
    variant,
)

TOPK = kernel("moe_routing.cu", "moe_topk",
              "const scalar_t* scores, long long* idx, int n, int e, int top_k, int n_group, int topk_group, int top2")
RANK = kernel("moe_routing.cu", "moe_expert_rank", "const long long* flat, int* rank, long long* load, int s")
PLACE = kernel("moe_routing.cu", "moe_place",
               "const long long* flat, const int* rank, const long long* offsets, long long* order, "
               "long long* slot_row, int s, long long capacity")
KERNELS = (TOPK, RANK, PLACE)
THREADS = 128
SCAN_THREADS = 256  # a tile of the per-expert prefix sum (at most 1024: moe_expert_rank's shared array)
INDEX_VARIANT = "float32"  # the sort touches no floats: any one variant of the file


def topk_config(n: int) -> Launch:
    return Launch((blocks_for(n, THREADS), 1, 1), (THREADS, 1, 1))


def sort_configs(s: int, num_experts: int) -> tuple[Launch, Launch]:
    """(rank launch: a block per expert, place launch: a thread per slot)."""
    return Launch((num_experts, 1, 1), (SCAN_THREADS, 1, 1)), Launch((blocks_for(s, THREADS), 1, 1), (THREADS, 1, 1))


def moe_topk(scores: Any, k: int, n_group: int = 1, topk_group: int = 1, group_score: str = "max"):
    if dtype_name(scores.dtype) not in FLOAT_DTYPES or scores.ndim != 2 or scores.size == 0:
        return NotImplemented
    n, e = scores.shape
    grouped = n_group > 1 and topk_group < n_group
    if not 0 < k <= e or scores.size > INT32_MAX or (grouped and (n_group > 64 or e % n_group)):
        return NotImplemented
    xp = array_module(scores)
    idx = xp.empty((n, k), dtype=np.int64)
    launch(TOPK, variant(scores.dtype), types_of(scores.dtype), topk_config(n), scores=xp.ascontiguousarray(scores),
           idx=idx, n=n, e=e, top_k=k, n_group=n_group, topk_group=topk_group, top2=int(group_score == "top2"))
    return idx


def moe_sort_by_expert(idx: Any, num_experts: int, capacity: int = -1):
    s = idx.size
    if getattr(idx.dtype, "kind", "") not in "iu" or not 0 < s <= INT32_MAX or num_experts < 1:
        return NotImplemented
    xp = array_module(idx)
    types, opts = types_of(INDEX_VARIANT), variant(INDEX_VARIANT)
    flat = xp.ascontiguousarray(idx.reshape(-1).astype(np.int64))
    rank_cfg, place_cfg = sort_configs(s, num_experts)
    rank, load = xp.empty(s, dtype=np.int32), xp.zeros(num_experts, dtype=np.int64)
    launch(RANK, opts, types, rank_cfg, flat=flat, rank=rank, load=load, s=s)
    kept = load if capacity < 0 else xp.minimum(load, capacity)
    offsets = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(kept)])
    m, lo, hi = (int(v) for v in to_host(xp.stack([offsets[-1], flat.min(), flat.max()])))
    if lo < 0 or hi >= num_experts:  # an expert id outside [0, E): no rank was given to its slot
        return NotImplemented
    order, slot_row = xp.empty(m, dtype=np.int64), xp.empty(s, dtype=np.int64)
    launch(PLACE, opts, types, place_cfg, flat=flat, rank=rank, offsets=offsets, order=order, slot_row=slot_row,
           s=s, capacity=capacity)
    return order, offsets, slot_row.reshape(idx.shape), load


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) of every variant the tests compile with nvcc: each dtype moe_topk runs."""
    return [("moe_routing.cu", variant(dt)) for dt in FLOAT_DTYPES]
