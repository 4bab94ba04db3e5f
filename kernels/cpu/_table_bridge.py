"""Temporary: hands the Numba twins written in the kernel tables' layout (``fn(*arrays)``, returning
NotImplemented to decline) to the old registry (``fn(xp, *arrays)``), until the tables land on main.
The only file under kernels/ that imports minigrad; it goes with the old registry."""

from __future__ import annotations

from collections.abc import Callable

from kernels.reference import KERNELS as REFERENCE
from minigrad.backend import register_kernel


def _adapt(fast: Callable, ref: Callable) -> Callable:
    def kernel(xp, *args, **kwargs):
        out = fast(*args, **kwargs)
        return ref(xp, *args, **kwargs) if out is NotImplemented else out
    kernel.__wrapped__ = fast
    return kernel


def register_table(table: dict[str, Callable]) -> None:
    for name, fast in table.items():
        register_kernel(name, "numba")(_adapt(fast, REFERENCE[name]))
