"""Tensor factories. Each takes ``dtype``, ``requires_grad`` and ``backend``; the random ones
take a ``generator`` (the global one, seeded by ``manual_seed``, when omitted)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Backend, default_backend, get_backend
from .random import Generator, default_generator
from .tensor import Tensor

Backendish = str | Backend | None


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _make(arr, backend: Backendish, requires_grad: bool) -> Tensor:
    b = get_backend(backend) if backend is not None else default_backend()
    t = Tensor._from_array(arr if b.is_array(arr) else b.asarray(arr), b, False)
    return t.requires_grad_(requires_grad) if requires_grad else t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, backend: Backendish = None) -> Tensor:
    """A tensor holding (a copy of) ``data``; Python floats become float32, ints int64."""
    if isinstance(data, Tensor):
        data = data.numpy()
    t = Tensor(np.array(data, copy=True) if isinstance(data, np.ndarray) else data,
               dtype=dtype, backend=backend)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _xp(backend):
    return (get_backend(backend) if backend is not None else default_backend()).xp


def zeros(*shape, dtype=np.float32, requires_grad=False, backend: Backendish = None) -> Tensor:
    return _make(_xp(backend).zeros(_shape(shape), dtype=dtype), backend, requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False, backend: Backendish = None) -> Tensor:
    return _make(_xp(backend).ones(_shape(shape), dtype=dtype), backend, requires_grad)


def full(shape, fill_value, dtype=np.float32, requires_grad=False, backend: Backendish = None) -> Tensor:
    return _make(_xp(backend).full(_shape((shape,)), fill_value, dtype=dtype), backend, requires_grad)


def empty(*shape, dtype=np.float32, requires_grad=False, backend: Backendish = None) -> Tensor:
    return _make(_xp(backend).empty(_shape(shape), dtype=dtype), backend, requires_grad)


def arange(start, stop=None, step=1, dtype=None, backend: Backendish = None) -> Tensor:
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, int) for v in (start, stop, step)) else np.float32
    return _make(_xp(backend).arange(start, stop, step, dtype=dtype), backend, False)


def eye(n: int, m: int | None = None, dtype=np.float32, backend: Backendish = None) -> Tensor:
    return _make(_xp(backend).eye(n, m, dtype=dtype), backend, False)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, backend=t.backend)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, backend=t.backend)


def randn(*shape, dtype=np.float32, requires_grad=False, generator: Generator | None = None,
          backend: Backendish = None) -> Tensor:
    """Standard normal samples."""
    g = generator or default_generator()
    return _make(g.normal(_shape(shape), dtype).astype(dtype, copy=False), backend, requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False, generator: Generator | None = None,
         backend: Backendish = None) -> Tensor:
    """Uniform samples in [0, 1)."""
    g = generator or default_generator()
    return _make(g.random(_shape(shape), dtype).astype(dtype, copy=False), backend, requires_grad)


def randint(low: int, high: int, shape, dtype=np.int64, generator: Generator | None = None,
            backend: Backendish = None) -> Tensor:
    """Uniform integers in [low, high)."""
    g = generator or default_generator()
    return _make(g.integers(low, high, _shape((shape,))).astype(dtype, copy=False), backend, False)
