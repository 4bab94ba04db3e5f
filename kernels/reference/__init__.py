"""The reference kernels: each kernel's spec, written against ``xp`` (an array module with
NumPy's API), so it runs on every backend. ``fn(xp, *arrays, ...)``; the contracts are in
``kernels/contracts.py``. A fast twin in ``kernels/cpu`` has the same file name and is held to
its reference by the tests.

``KERNELS`` is the table a :class:`minigrad.Backend` is given as ``reference=``. Importing
this package does nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from . import activations, elementwise, reduce, softmax
from .adamw import adamw_step, adamw_step_multi
from .attention import attention_backward, attention_forward
from .causal_conv1d import causal_conv1d_backward, causal_conv1d_forward
from .cross_entropy import softmax_cross_entropy
from .erf import erf
from .index_add import index_add
from .moe_dispatch import moe_combine, moe_combine_backward, moe_gather, moe_gather_backward
from .moe_routing import moe_sort_by_expert, moe_topk
from .rms_norm import rms_norm_backward, rms_norm_forward
from .rope import rope_backward, rope_forward
from .selective_scan import selective_scan_backward, selective_scan_forward
from .ssd import ssd_backward, ssd_forward
from .swiglu import swiglu_backward, swiglu_forward

KERNELS: dict[str, Callable] = {
    "rms_norm_forward": rms_norm_forward,
    "rms_norm_backward": rms_norm_backward,
    "rope_forward": rope_forward,
    "rope_backward": rope_backward,
    "swiglu_forward": swiglu_forward,
    "swiglu_backward": swiglu_backward,
    "attention_forward": attention_forward,
    "attention_backward": attention_backward,
    "softmax_cross_entropy": softmax_cross_entropy,
    "index_add": index_add,
    "erf": erf,
    "adamw_step": adamw_step,
    "causal_conv1d_forward": causal_conv1d_forward,
    "causal_conv1d_backward": causal_conv1d_backward,
    "selective_scan_forward": selective_scan_forward,
    "selective_scan_backward": selective_scan_backward,
    "ssd_forward": ssd_forward,
    "ssd_backward": ssd_backward,
    "adamw_step_multi": adamw_step_multi,
    "moe_topk": moe_topk,
    "moe_sort_by_expert": moe_sort_by_expert,
    "moe_gather": moe_gather,
    "moe_gather_backward": moe_gather_backward,
    "moe_combine": moe_combine,
    "moe_combine_backward": moe_combine_backward,
    **{name: getattr(elementwise, name) for name in elementwise.NAMES},
    **{name: getattr(activations, name) for name in activations.NAMES},
    "sum": reduce.sum,
    "max": reduce.max,
    **{name: getattr(softmax, name) for name in softmax.NAMES},
}
