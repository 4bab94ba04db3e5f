"""The backend seam: the one place where minigrad touches an array library.

Every Tensor holds a :class:`Backend`. Ops never import numpy or cupy for their math;
they call ``backend.xp`` (an array module with NumPy's API: ``numpy`` today, ``cupy``
on a GPU) and, for fused hot paths, ``backend.kernel(name)``.

Kernels form a two-level registry:

* ``register_reference(name)`` installs the *reference* implementation. It is written
  against ``xp`` only, so it runs on every backend and is the spec of the kernel.
* ``register_kernel(name, backend_name)`` installs a fast implementation for one backend
  (Numba loops for ``"numba"``, CUDA C for ``"cupy"``). Tests hold it to the reference.

``backend.kernel(name)`` returns the backend's own kernel if it has one, else the
reference. A new backend is one :class:`Backend` instance plus, optionally, kernels:
no op or layer code changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_REFERENCE: dict[str, Callable[..., Any]] = {}
_KERNELS: dict[tuple[str, str], Callable[..., Any]] = {}
_LOADERS: dict[str, Callable[[], None]] = {}


def register_reference(name: str) -> Callable:
    """Decorator: the xp-generic reference implementation of kernel ``name``."""

    def wrap(fn: Callable) -> Callable:
        _REFERENCE[name] = fn
        return fn

    return wrap


def register_kernel(name: str, backend_name: str) -> Callable:
    """Decorator: backend ``backend_name``'s fast implementation of kernel ``name``."""

    def wrap(fn: Callable) -> Callable:
        _KERNELS[(name, backend_name)] = fn
        return fn

    return wrap


class Backend:
    """An array module plus a device name and a kernel table.

    ``xp``: the array module (NumPy API). ``device``: ``"cpu"`` or ``"cuda"``.
    ``asarray(x)`` brings host data onto the backend; ``to_numpy(a)`` takes it back.
    """

    def __init__(self, name: str, xp: Any, device: str,
                 asarray: Callable | None = None, to_numpy: Callable | None = None,
                 loader: Callable[[], None] | None = None):
        self.name = name
        self.xp = xp
        self.device = device
        self._asarray = asarray or xp.asarray
        self._to_numpy = to_numpy or np.asarray
        self._loaded = loader is None
        self._loader = loader
        self._cache: dict[str, Callable] = {}

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        return self._asarray(data) if dtype is None else self._asarray(data).astype(dtype, copy=False)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self._to_numpy(a)

    def is_array(self, a: Any) -> bool:
        return isinstance(a, self.array_type)

    @property
    def array_type(self) -> type:
        return type(self.xp.empty(0))

    def kernel(self, name: str) -> Callable:
        """The fastest implementation of kernel ``name`` this backend has."""
        fn = self._cache.get(name)
        if fn is not None:
            return fn
        if not self._loaded:
            self._loaded = True
            self._loader()  # imports the backend's kernel modules, which register themselves
        fn = _KERNELS.get((name, self.name)) or _REFERENCE.get(name)
        if fn is None:
            raise KeyError(f"no kernel named {name!r} (known: {sorted(_REFERENCE)})")
        self._cache[name] = fn
        return fn

    def reference(self, name: str) -> Callable:
        """The reference (spec) implementation of kernel ``name``."""
        return _REFERENCE[name]

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


def _load_numba() -> None:
    import kernels.cpu  # noqa: F401  (registers the Numba kernels)


_BACKENDS: dict[str, Backend] = {}
_DEFAULT = ["numpy"]


def register_backend(backend: Backend) -> Backend:
    _BACKENDS[backend.name] = backend
    return backend


register_backend(Backend("numpy", np, "cpu"))
register_backend(Backend("numba", np, "cpu", loader=_load_numba))


def _make_cupy() -> Backend:
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError("the 'cupy' backend needs CuPy: pip install 'minigrad[gpu]'") from e
    return register_backend(Backend("cupy", cupy, "cuda", to_numpy=cupy.asnumpy))


def get_backend(name: str | Backend | None = None) -> Backend:
    """Look a backend up by name (``"numpy"``, ``"numba"``, ``"cupy"``); None gives the default."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = _DEFAULT[0]
    b = _BACKENDS.get(name)
    if b is None:
        if name == "cupy":
            return _make_cupy()
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(set(_BACKENDS) | {'cupy'})}")
    return b


def set_default_backend(name: str) -> None:
    """Make new tensors live on backend ``name`` unless told otherwise."""
    get_backend(name)
    _DEFAULT[0] = name


def default_backend() -> Backend:
    return get_backend(None)
