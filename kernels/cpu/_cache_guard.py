"""Invalidate Numba's on-disk cache when the shared helpers change.

Numba (``cache=True``) keys each kernel's cache on its own source file only. The kernels
inline ``_fast_math``'s helpers (and some ``_gemm``'s; activations.py compiles in the erfc fit of
``../reference/erf.py``), so after an edit to ``_fast_math.py``
(say, to the exp polynomial) they would keep running the old machine code. This stores a hash
of those files next to each cache and empties the kernels' cache indexes when it differs.
"""

from __future__ import annotations

import hashlib
import os
from types import ModuleType

from numba.core.registry import CPUDispatcher

_STAMP = "minigrad_fast_math.sha1"
_HELPERS = ("_fast_math.py", "_gemm.py", os.path.join("..", "reference", "erf.py"))


def _helpers_hash() -> str:
    digest = hashlib.sha1()
    for name in _HELPERS:
        with open(os.path.join(os.path.dirname(__file__), name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def refresh_stale_caches(modules: list[ModuleType]) -> None:
    """Flush the cache of every cached kernel in ``modules`` if a helper module changed."""
    digest = _helpers_hash()
    by_dir: dict[str, list] = {}
    for mod in modules:
        for obj in vars(mod).values():
            cache = getattr(obj, "_cache", None) if isinstance(obj, CPUDispatcher) else None
            if getattr(cache, "cache_path", None):  # uncached helpers hold a NullCache
                by_dir.setdefault(cache.cache_path, []).append(cache)
    for path, caches in by_dir.items():
        stamp = os.path.join(path, _STAMP)
        try:
            with open(stamp) as f:
                if f.read().strip() == digest:
                    continue
        except OSError:
            pass
        for cache in caches:
            cache.flush()
        try:
            os.makedirs(path, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(digest)
        except OSError:  # a read-only install: Numba falls back to compiling in memory anyway
            pass
