"""CUDA kernels: the fast twins that the "cupy" backend is given as its table.

Each kernel is a ``.cu`` file of CUDA C (one concept per file, compiled by CuPy's ``RawModule`` on
first use and cached on disk, see ``_runtime``) and a launcher module of the same name with the
functions of ``kernels/reference``'s contract: arrays in and out (CuPy's), no ``xp``, nothing from
minigrad, ``NotImplemented`` for a case it does not handle (the backend then runs the reference).
Importing this package imports neither CuPy nor anything that needs a GPU.

Adding a kernel: ``<name>.cu``, ``<name>.py`` (its ``Kernel`` descriptions, a pure ``launch_config``
and the contract's function), and its line in ``KERNELS`` below; tests/test_cuda_sources.py then
compiles it with nvcc and checks its signatures and launches, and tests/test_kernels_cuda.py holds it
to its reference on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    adamw,
    attention,
    causal_conv1d,
    cross_entropy,
    erf,
    index_add,
    moe_dispatch,
    moe_routing,
    rms_norm,
    rope,
    selective_scan,
    swiglu,
)

MODULES = (adamw, attention, causal_conv1d, cross_entropy, erf, index_add, moe_dispatch, moe_routing, rms_norm, rope,
           selective_scan, swiglu)

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
    "adamw_step_multi": adamw.adamw_step_multi,
    "causal_conv1d_forward": causal_conv1d.causal_conv1d_forward,
    "causal_conv1d_backward": causal_conv1d.causal_conv1d_backward,
    "selective_scan_forward": selective_scan.selective_scan_forward,
    "selective_scan_backward": selective_scan.selective_scan_backward,
    "moe_topk": moe_routing.moe_topk,
    "moe_sort_by_expert": moe_routing.moe_sort_by_expert,
    "moe_gather": moe_dispatch.moe_gather,
    "moe_gather_backward": moe_dispatch.moe_gather_backward,
    "moe_combine": moe_dispatch.moe_combine,
    "moe_combine_backward": moe_dispatch.moe_combine_backward,
}

# Contracts with no CUDA twin yet: on the cupy backend these run their reference (written against xp, so
# CuPy runs it on the GPU, op by op). The conv1d, Mamba1's scan and MoE routing/dispatch have theirs (issue
# 12); Mamba2/3's chunked SSD is still missing.
NOT_YET: frozenset[str] = frozenset({
    "ssd_forward", "ssd_backward",
})

# Generic ops whose reference is already one CuPy kernel per operator on the GPU, so they need no twin here
# (and the ops call them only past the numba backend's size threshold: on cupy they run CuPy directly).
REFERENCE_SUFFICES: frozenset[str] = frozenset({
    "add", "sub", "mul", "div", "exp", "log", "tanh", "sigmoid", "silu_forward", "tanh_backward",
    "sigmoid_backward", "silu_backward", "sum", "max", "softmax_forward", "softmax_backward",
    "log_softmax_forward", "log_softmax_backward", "relu", "relu_backward", "gelu", "gelu_backward",
})
