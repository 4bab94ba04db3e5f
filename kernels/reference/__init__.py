"""The reference kernels: each kernel's spec, written against ``xp`` (an array module with
NumPy's API), so it runs on every backend. ``fn(xp, *arrays, ...)``; the contracts are in
``kernels/contracts.py``. A fast twin in ``kernels/cpu`` has the same file name and is held to
its reference by the tests.

``KERNELS`` is the table a backend's kernels fall back to. Importing this package does nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from .causal_conv1d import causal_conv1d_backward, causal_conv1d_forward
from .selective_scan import selective_scan_backward, selective_scan_forward
from .ssd import ssd_backward, ssd_forward

KERNELS: dict[str, Callable] = {
    "causal_conv1d_forward": causal_conv1d_forward,
    "causal_conv1d_backward": causal_conv1d_backward,
    "selective_scan_forward": selective_scan_forward,
    "selective_scan_backward": selective_scan_backward,
    "ssd_forward": ssd_forward,
    "ssd_backward": ssd_backward,
}
