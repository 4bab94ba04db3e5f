"""Numba kernels for the "numba" backend; importing this package registers them all."""

from . import adamw  # noqa: F401,E402
