"""Numba kernels: the fast twins that the "numba" backend is given as its table.

Each module pairs by file name with its spec in ``kernels/reference`` and is held to it by
tests/test_kernels_cpu.py. The kernels take and return NumPy arrays only (no ``xp``, nothing
from the engine), and return ``NotImplemented`` for a case they do not handle, which the
backend then hands to the reference (see ``kernels/contracts.py``).

Importing this package imports Numba and, once, empties the on-disk caches of kernels that
inline an edited ``_fast_math.py`` or compile in an edited erfc fit (``_cache_guard``); kernels
compile, or load from that cache, on their first call.
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    _ssd_chunks,
    activations,
    adamw,
    attention,
    causal_conv1d,
    cross_entropy,
    elementwise,
    erf,
    index_add,
    moe_dispatch,
    moe_routing,
    reduce,
    rms_norm,
    rope,
    selective_scan,
    softmax,
    ssd,
    swiglu,
)
from ._cache_guard import refresh_stale_caches

refresh_stale_caches([attention, cross_entropy, erf, index_add, rms_norm, rope, swiglu, causal_conv1d,
                      selective_scan, _ssd_chunks, moe_dispatch, elementwise, reduce, softmax, activations])

KERNELS: dict[str, Callable] = {
    "rms_norm_forward": rms_norm.rms_norm_forward,
    "rms_norm_backward": rms_norm.rms_norm_backward,
    "rope_forward": rope.rope_forward,
    "rope_backward": rope.rope_backward,
    "swiglu_forward": swiglu.swiglu_forward,
    "swiglu_backward": swiglu.swiglu_backward,
    "attention_forward": attention.attention_forward,
    "attention_backward": attention.attention_backward,
    "softmax_cross_entropy": cross_entropy.softmax_cross_entropy,
    "index_add": index_add.index_add,
    "erf": erf.erf,
    "adamw_step": adamw.adamw_step,
    "causal_conv1d_forward": causal_conv1d.causal_conv1d_forward,
    "causal_conv1d_backward": causal_conv1d.causal_conv1d_backward,
    "selective_scan_forward": selective_scan.selective_scan_forward,
    "selective_scan_backward": selective_scan.selective_scan_backward,
    "ssd_forward": ssd.ssd_forward,
    "ssd_backward": ssd.ssd_backward,
    "moe_topk": moe_routing.moe_topk,
    "moe_sort_by_expert": moe_routing.moe_sort_by_expert,
    "moe_gather": moe_dispatch.moe_gather,
    "moe_gather_backward": moe_dispatch.moe_gather_backward,
    "moe_combine": moe_dispatch.moe_combine,
    "moe_combine_backward": moe_dispatch.moe_combine_backward,
    **{name: getattr(elementwise, name) for name in elementwise.NAMES},
    **{name: getattr(activations, name) for name in activations.NAMES},
    "sum": reduce.sum,
    "max": reduce.max,
    **{name: getattr(softmax, name) for name in softmax.NAMES},
}
