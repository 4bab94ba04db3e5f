"""A temporary bridge to the kernel tables, until they land on main (branch house-kernels).

The Mamba kernels are written in the tables' layout: ``kernels/reference/<name>.py`` holds the
spec ``fn(xp, *arrays)``, ``kernels/cpu/<name>.py`` its Numba twin ``fn(*arrays)``. Until the
Backend is given those tables, this module installs the references in the old registry, and
``kernel(backend, name)`` returns ``backend.kernel(name)`` with ``xp`` bound, as the tables' Backend
will. When the tables land, every ``kernel(self.backend, name)`` becomes ``self.backend.kernel(name)``
and this file goes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from kernels.reference import KERNELS as _REFERENCE
from minigrad.backend import Backend, register_reference

for _name, _fn in _REFERENCE.items():
    register_reference(_name)(_fn)


def kernel(backend: Backend, name: str) -> Callable:
    """The backend's kernel ``name`` (its Numba twin or the reference), called without ``xp``."""
    return functools.partial(backend.kernel(name), backend.xp)
