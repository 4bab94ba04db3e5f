"""The reference kernels: each kernel's spec, written against ``xp`` (an array module with
NumPy's API), so it runs on every backend. ``fn(xp, *arrays, ...)``; the contracts are in
``kernels/contracts.py``. A fast twin in ``kernels/cpu`` has the same file name and is held to
its reference by the tests.

``KERNELS`` is the table of reference kernels, by name. Importing this package does nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from .moe_dispatch import moe_combine, moe_combine_backward, moe_gather, moe_gather_backward
from .moe_routing import moe_sort_by_expert, moe_topk

KERNELS: dict[str, Callable] = {
    "moe_topk": moe_topk,
    "moe_sort_by_expert": moe_sort_by_expert,
    "moe_gather": moe_gather,
    "moe_gather_backward": moe_gather_backward,
    "moe_combine": moe_combine,
    "moe_combine_backward": moe_combine_backward,
}
