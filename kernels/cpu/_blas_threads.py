"""Run NumPy matmuls on our own threads, with OpenBLAS itself kept to one thread.

Attention makes many small products (one per batch row, KV head and causal block). Each
multithreaded OpenBLAS call hands work to its helper thread and waits for it: microseconds
on an idle machine, but on a busy one the helper must first be scheduled, and hundreds of
such handoffs per step add up to seconds. Splitting the batch across two of our own threads,
each calling a single-threaded BLAS, needs one handoff per kernel call instead.

``blas_single_thread()`` switches NumPy's OpenBLAS to one thread for a block (a no-op with
another BLAS or when the library cannot be found); ``run_parallel(fn, tasks)`` runs
``fn(task)`` for every task on a small persistent pool (NumPy and ``nogil`` Numba code
release the GIL, so the tasks really run side by side).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_blas: tuple | None | bool = False  # False: not looked up yet; None: not found


def _find_openblas():
    """(get_num_threads, set_num_threads) of the OpenBLAS NumPy loaded, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


def n_threads() -> int:
    return numba.get_num_threads()


@contextmanager
def blas_single_thread():
    global _blas
    if _blas is False:
        _blas = _find_openblas()
    if _blas is None:
        yield
        return
    get, put = _blas
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


def run_parallel(fn: Callable, tasks: Iterable) -> None:
    """fn(task) for every task, the calling thread taking the first; re-raises the first error."""
    global _pool
    tasks = list(tasks)
    if len(tasks) <= 1 or n_threads() <= 1:
        for t in tasks:
            fn(t)
        return
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, n_threads() - 1), thread_name_prefix="minigrad")
    futures = [_pool.submit(fn, t) for t in tasks[1:]]
    error = None
    try:
        fn(tasks[0])
    except BaseException as e:  # wait for the others before raising: they use shared buffers
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
