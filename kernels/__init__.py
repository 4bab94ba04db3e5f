"""Kernels: the array math behind the fused ops, as plain tables of functions.

* ``contracts.py``: the one list of kernel names, each with its contract.
* ``reference/``: each kernel's spec, written against ``xp`` (NumPy's API): ``fn(xp, *arrays)``.
* ``cpu/``: Numba twins for the "numba" backend, same file names: ``fn(*arrays)`` on NumPy arrays.
* ``cuda/``: CUDA C twins for the "cupy" backend (a ``.cu`` and a launcher ``.py`` per kernel, same
  names), compiled by CuPy on first use: ``fn(*arrays)`` on CuPy arrays.

Nothing here imports minigrad; ``minigrad/backend.py`` gives each backend its table.
"""
