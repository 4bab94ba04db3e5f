"""TEMPORARY, until the kernel-table layout lands on main: installs the table-style kernels
(``kernels/reference`` ``fn(xp, *arrays)``, ``kernels/cpu`` ``fn(*arrays)`` returning NotImplemented to
decline) into the old decorator registry of ``minigrad.backend``, so that ``backend.kernel(name)(xp, ...)``
finds them. Deleted by the merge, which wires the tables into the backends directly."""

from __future__ import annotations

from minigrad.backend import register_kernel, register_reference


def install_reference() -> None:
    from kernels.reference import KERNELS

    for name, fn in KERNELS.items():
        register_reference(name)(fn)


def install_numba(fast_kernels: dict) -> None:
    from kernels.reference import KERNELS as REFERENCE

    for name, fast in fast_kernels.items():
        register_kernel(name, "numba")(_declining_to(fast, REFERENCE[name]))


def _declining_to(fast, ref):
    def kernel(xp, *args, **kwargs):
        out = fast(*args, **kwargs)
        return ref(xp, *args, **kwargs) if out is NotImplemented else out
    kernel.__wrapped__ = fast
    return kernel
