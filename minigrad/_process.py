"""Process-wide settings, all in one place. ``import minigrad`` applies them first, before
anything in minigrad imports NumPy; a value the user set in the environment always wins.

* ``OPENBLAS_THREAD_TIMEOUT=1``. Idle OpenBLAS threads otherwise spin for ~0.1 s after every
  call, stealing the cores from the Numba kernels that run between matmuls (on a busy 2-core
  machine, training steps ran several times slower). OpenBLAS reads it when NumPy loads it,
  so it counts only if minigrad is imported before NumPy.
* ``NUMBA_THREADING_LAYER_PRIORITY="omp workqueue tbb"`` and ``GOMP_SPINCOUNT=10000``: Numba's
  parallel loops run on GNU OpenMP where it loads, with its idle threads spinning ~10 us, not GNU's
  default ~0.3 s, before they sleep (spinning threads fought OpenBLAS's for the cores: a training step
  ran ~1.8x slower). "workqueue", the fallback, costs 0.3-0.6 ms to start every parallel loop on this
  2-core VM, where OpenMP costs ~4 us (a quiet nano training step: 556 ms on workqueue, 479 on OpenMP;
  with one busy process beside it 914 vs 967).
* glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` raised to 1 GiB. glibc serves every
  allocation of 32 MiB or more with a fresh mmap and unmaps it on free, so each training step's
  large arrays (logits, their gradient, attention probabilities) get new pages that the kernel
  must fault in and zero (~3 ms per 32 MiB here), step after step. With the thresholds raised,
  large blocks come from, and return to, the heap. Linux/glibc only; ``MALLOC_MMAP_THRESHOLD_``
  or ``MALLOC_TRIM_THRESHOLD_`` in the environment leaves glibc's own settings alone.

* ``NUMBA_CPU_FEATURES``: on a CPU with AVX-512, the host's own features plus ``-prefer-256-bit``.
  LLVM's tuning for Intel's AVX-512 cores vectorizes with 256-bit registers only, so Numba's loops
  ran on half the lanes that PyTorch's and OpenBLAS's AVX-512 kernels use (exp on 1024x1024 float32:
  ~280 us vs ~200 for torch on a 2-core Xeon; a softmax 1.38x torch, 1.01x with wide vectors).
  Numba keys its cache on the feature string, so a cached kernel is never reused across the change.
  Nothing changes on CPUs without AVX-512, or where ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` is set or
  ``NUMBA_ENABLE_AVX=0``.

So an entry point (train.py, tests/conftest.py, tutorials/_common.py, bench/_common.py) needs
only to import minigrad before NumPy. This module imports nothing heavy: no NumPy, no Numba
(llvmlite's small binding, ~40 ms, only on an AVX-512 CPU).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ENV_DEFAULTS = {
    "OPENBLAS_THREAD_TIMEOUT": "1",
    "NUMBA_THREADING_LAYER_PRIORITY": "omp workqueue tbb",
    "GOMP_SPINCOUNT": "10000",
}

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MALLOC_THRESHOLD = 1 << 30  # bytes: blocks up to 1 GiB stay on the heap


def apply() -> None:
    """Apply every setting in the table above (idempotent)."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    wide = wide_vector_features()
    if wide is not None:
        os.environ["NUMBA_CPU_FEATURES"] = wide
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before minigrad: it read its config already, so tell it too
        numba.config.THREADING_LAYER_PRIORITY = os.environ["NUMBA_THREADING_LAYER_PRIORITY"].split()
        if wide is not None:  # counts if nothing was compiled yet (the code generator is made then)
            numba.config.CPU_FEATURES = wide
    keep_freed_memory()


def wide_vector_features() -> str | None:
    """The LLVM feature string that lets Numba vectorize with 512-bit registers, or None where
    the CPU has no AVX-512 or the user chose Numba's target already."""
    if any(k in os.environ for k in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")):
        return None
    if os.environ.get("NUMBA_ENABLE_AVX", "1") == "0":
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:  # a cheap look first, so CPUs without AVX-512 never load LLVM here
        with open("/proc/cpuinfo") as f:
            if " avx512f" not in f.read():
                return None
    except OSError:  # not Linux: ask LLVM directly
        pass
    from llvmlite import binding  # what Numba itself asks (numba.core.codegen.get_host_cpu_features)

    try:
        features = binding.get_host_cpu_features()
    except RuntimeError:
        return None
    if not features.get("avx512f"):
        return None
    return features.flatten() + ",-prefer-256-bit"


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; returns whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MALLOC_THRESHOLD) == 1
        return ok and libc.mallopt(_M_TRIM_THRESHOLD, _MALLOC_THRESHOLD) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
