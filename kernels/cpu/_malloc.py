"""Keep freed memory for reuse instead of handing it back to the OS.

glibc serves every allocation of 32 MiB or more with a fresh mmap and unmaps it on free, so
the next step's array of the same size gets new pages that the kernel must fault in and zero
(~3 ms per 32 MiB here). A training step allocates and frees the same large arrays every
step (logits, their gradient, attention probabilities), so those page faults recur forever.
Raising the mmap and trim thresholds makes large blocks come from, and return to, the heap.
Linux/glibc only; a user's own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # bytes: blocks up to 1 GiB stay on the heap


def keep_freed_memory() -> bool:
    """Raise glibc's thresholds; returns whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1
        return ok and libc.mallopt(_M_TRIM_THRESHOLD, _THRESHOLD) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
