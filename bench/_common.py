"""What every benchmark does before NumPy, Numba or torch load: pin each library to the same
number of threads (so the two sides of a comparison get the same cores; a value you set
yourself wins), put the repository on sys.path, and import minigrad first, so its
process-wide settings (minigrad/_process.py) are made before NumPy loads OpenBLAS.

A benchmark imports this module before anything else (``import _common``).
"""

from __future__ import annotations

import os
import sys

THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

_USER_GOMP_SPINCOUNT = "GOMP_SPINCOUNT" in os.environ
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import minigrad  # noqa: E402,F401


def torch_openmp_defaults() -> None:
    """In a process that runs only PyTorch: drop the GOMP_SPINCOUNT that importing minigrad set for Numba's
    OpenMP threads (unless the user set it), so torch's OpenMP (the same libgomp) keeps its own default.
    Call it before importing torch. Where both run in one process (op_overhead.py) they share the setting."""
    if not _USER_GOMP_SPINCOUNT:
        os.environ.pop("GOMP_SPINCOUNT", None)

# What a process that never imported minigrad gets from glibc for large blocks, once its dynamic
# thresholds have settled (glibc raises them to the largest freed mmapped block, up to 32 MiB, the
# trim threshold to twice that). A benchmark gives these to a PyTorch side that runs in a process of
# its own, so that its peak memory is torch's own, not torch's under minigrad's malloc settings.
GLIBC_STEADY_STATE = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


def reset_peak_rss() -> bool:
    """Hand the heap's free pages back (malloc_trim), then reset this process's resident-memory
    high-water mark (VmHWM) to its current RSS (Linux's /proc/self/clear_refs): a peak read later
    counts what is live now plus what came after. False where that cannot be done."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def status_bytes(key: str) -> int:
    """A size from /proc/self/status, in bytes: "VmHWM" (peak resident memory), "VmRSS" (now)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
