"""Kernels: the array math behind the fused ops, as plain tables of functions.

* ``contracts.py``: the one list of kernel names, each with its contract.
* ``reference/``: each kernel's spec, written against ``xp`` (NumPy's API): ``fn(xp, *arrays)``.
* ``cpu/``: Numba twins for the "numba" backend, same file names: ``fn(*arrays)`` on NumPy arrays.

Nothing here imports minigrad; ``minigrad/backend.py`` gives each backend its table.
"""
