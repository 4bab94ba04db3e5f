"""Fused layer ops with hand-written backward. Each module holds, side by side:

* the Function that calls ``backend.kernel(...)`` for its forward and backward (the kernels
  themselves, a reference spec and a Numba twin, are in ``kernels/reference`` and ``kernels/cpu``);
* a ``*_simple`` composite built from primitive ops, whose gradient autograd derives, for
  learners to compare with the fused version.
"""

from .attention import causal_attention, causal_attention_simple
from .causal_conv1d import causal_conv1d, causal_conv1d_simple
from .cumsum import cumsum
from .linear import linear, linear_simple, linear_split, linear_split_simple, swiglu_linear, swiglu_linear_simple
from .rms_norm import rms_norm, rms_norm_simple
from .rope import apply_rope, apply_rope_simple, rope_tables
from .selective_scan import selective_scan, selective_scan_simple
from .softplus import softplus, softplus_simple
from .ssd import ssd, ssd_simple
from .swiglu import swiglu, swiglu_simple
from .trig import cos_sin

__all__ = ["causal_attention", "causal_attention_simple", "linear", "linear_simple", "linear_split",
           "linear_split_simple", "swiglu_linear", "swiglu_linear_simple", "rms_norm",
           "rms_norm_simple", "apply_rope", "apply_rope_simple", "rope_tables", "swiglu", "swiglu_simple",
           "causal_conv1d", "causal_conv1d_simple", "selective_scan", "selective_scan_simple", "ssd", "ssd_simple",
           "softplus", "softplus_simple", "cumsum", "cos_sin"]
