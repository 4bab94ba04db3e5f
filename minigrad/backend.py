"""The backend seam: the one place where minigrad touches an array library.

Every Tensor holds a :class:`Backend`. Ops never import numpy or cupy for their math;
they call ``backend.xp`` (an array module with NumPy's API: ``numpy`` today, ``cupy``
on a GPU) and, for fused hot paths, ``backend.kernel(name)``.

A backend is constructed with its kernel tables (minitorch's ``TensorBackend(FastOps)``):

* ``reference``: name -> ``fn(xp, *arrays, ...)``, each kernel's spec, written against ``xp``
  only, so it runs on every backend (``kernels.reference.KERNELS``);
* ``kernels``: name -> ``fn(*arrays, ...)``, the backend's own fast twins, if any
  (``kernels.cpu.KERNELS``, Numba, for ``"numba"``). A fast kernel returns ``NotImplemented``
  for a case it does not handle, and the reference runs instead.

``backend.kernel(name)`` returns a callable with ``xp`` bound (``kernel(name)(x, w, eps)``);
``kernels/contracts.py`` lists the names and what each kernel must do. A new backend is one
:class:`Backend` instance with its tables: no op or layer code changes.

The wiring. This module is the only place in ``minigrad/`` that imports ``kernels`` (nothing
in ``minigrad/`` imports ``nn`` or ``train``): ``_reference_table`` and ``_numba_table`` below
import ``kernels.reference``, ``kernels.cpu`` and ``kernels.cuda`` on a backend's first ``kernel()``
call, so ``import minigrad`` loads none of them and never imports Numba or CuPy.

What ``import minigrad`` does to the process, all of it: it applies the process-wide settings
of ``minigrad/_process.py`` (environment defaults for OpenBLAS and Numba, and glibc's malloc thresholds), and
registers the "numpy" and "numba" backends here (plain objects; "cupy" is made on first
``get_backend("cupy")``, which imports CuPy). Nothing else runs until you call it.

Devices. ``get_backend`` also takes a device name, as ``Tensor.to`` and ``Module.to`` do:
``"cuda"`` (or ``"gpu"``) is the "cupy" backend; ``"cpu"`` is the default backend when that one
runs on the CPU, else "numpy".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Table = Mapping[str, Callable[..., Any]]
NEVER = 1 << 62  # a kernel_min_size no array reaches
NUMBA_KERNEL_MIN_SIZE = 1 << 15  # elements: below, NumPy on one core beats waking the threads (bench/op_overhead.py)


def _reference_table() -> Table:
    from kernels.reference import KERNELS  # the documented wiring (see the module docstring)
    return KERNELS


def _numba_table() -> Table:
    from kernels.cpu import KERNELS  # imports Numba: only when the numba backend first needs a kernel
    return KERNELS


def _cuda_table() -> Table:
    from kernels.cuda import KERNELS  # imports no CuPy itself: each kernel compiles on its first call
    return KERNELS


def _with_fallback(fast: Callable, ref: Callable) -> Callable:
    """``fast``, or ``ref`` (xp bound) with the same arguments where ``fast`` returns NotImplemented.
    A fast kernel declines before it writes anything, so in-place kernels may fall back too."""
    def kernel(*args, **kwargs):
        out = fast(*args, **kwargs)
        return ref(*args, **kwargs) if out is NotImplemented else out
    return functools.update_wrapper(kernel, fast)  # __wrapped__ is the fast kernel


class Backend:
    """An array module plus a device name and kernel tables.

    ``xp``: the array module (NumPy API). ``device``: ``"cpu"`` or ``"cuda"``.
    ``kernels``, ``reference``: the tables described in the module docstring; each may also
    be a function returning its table, called on the first ``kernel()`` (so a heavy table,
    such as Numba's, loads only when used). ``reference`` defaults to ``kernels.reference``.
    ``asarray(x)`` brings host data onto the backend; ``to_numpy(a)`` takes it back.
    ``kernel_min_size``: from how many elements the generic ops (add, exp, sum, softmax, ...) call
    this backend's kernels rather than ``xp`` directly. The numba backend's threaded twins pay only on
    large arrays (starting the threads costs ~10 us); other backends leave it at "never".
    ``row_kernel_min_size``: the same for softmax and log_softmax, whose numba kernels have a one-thread
    path for small arrays and so beat NumPy's five calls at every size (0 there).
    ``numpy_arrays``: the arrays are NumPy's, so an op may call a ufunc's ``reduce`` directly (a third of
    a tiny reduction's cost is ``ndarray.sum``'s Python wrapper around it).
    """

    def __init__(self, name: str, xp: Any, device: str, kernels: Table | Callable[[], Table] | None = None,
                 reference: Table | Callable[[], Table] | None = None,
                 asarray: Callable | None = None, to_numpy: Callable | None = None,
                 kernel_min_size: int = NEVER, row_kernel_min_size: int = NEVER):
        self.name = name
        self.kernel_min_size = kernel_min_size
        self.row_kernel_min_size = row_kernel_min_size
        self.numpy_arrays = xp is np
        self.xp = xp
        self.device = device
        self._asarray = asarray or xp.asarray
        self._to_numpy = to_numpy or np.asarray
        self._tables = {"kernels": kernels if kernels is not None else {},
                        "reference": reference if reference is not None else _reference_table}
        self._bound: dict[str, Callable] = {}
        self._bound_reference: dict[str, Callable] = {}

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        return self._asarray(data) if dtype is None else self._asarray(data).astype(dtype, copy=False)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self._to_numpy(a)

    def is_array(self, a: Any) -> bool:
        return isinstance(a, self.array_type)

    @property
    def array_type(self) -> type:
        return type(self.xp.empty(0))

    def _table(self, which: str) -> Table:
        table = self._tables[which]
        if callable(table):  # a loader: call it once and keep its table
            table = self._tables[which] = table()
        return table

    @property
    def fast_kernels(self) -> Table:
        """This backend's own kernels: name -> fn(*arrays)."""
        return self._table("kernels")

    @property
    def reference_kernels(self) -> Table:
        """The reference kernels: name -> fn(xp, *arrays)."""
        return self._table("reference")

    def reference(self, name: str) -> Callable:
        """The reference (spec) implementation of kernel ``name``, with ``xp`` bound."""
        fn = self._bound_reference.get(name)
        if fn is None:
            table = self.reference_kernels
            if name not in table:
                raise KeyError(f"no kernel named {name!r} (known: {sorted(table)})")
            fn = functools.update_wrapper(functools.partial(table[name], self.xp), table[name])
            self._bound_reference[name] = fn
        return fn

    def kernel(self, name: str) -> Callable:
        """The fastest implementation of kernel ``name`` this backend has, with ``xp`` bound:
        its own kernel falling back to the reference where it declines, or the reference."""
        fn = self._bound.get(name)
        if fn is None:
            ref = self.reference(name)
            fast = self.fast_kernels.get(name)
            fn = self._bound[name] = ref if fast is None else _with_fallback(fast, ref)
        return fn

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


_BACKENDS: dict[str, Backend] = {}
_DEFAULT = ["numpy"]


def register_backend(backend: Backend) -> Backend:
    _BACKENDS[backend.name] = backend
    return backend


register_backend(Backend("numpy", np, "cpu", reference=_reference_table))
register_backend(Backend("numba", np, "cpu", kernels=_numba_table, reference=_reference_table,
                         kernel_min_size=NUMBA_KERNEL_MIN_SIZE, row_kernel_min_size=0))


def _make_cupy() -> Backend:
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError("the 'cupy' backend needs CuPy: pip install 'minigrad[gpu]' (CUDA 12) or "
                           "'minigrad[gpu-cuda13]'") from e
    return register_backend(Backend("cupy", cupy, "cuda", kernels=_cuda_table, reference=_reference_table,
                                    to_numpy=cupy.asnumpy))


DEVICES = {"cuda": "cupy", "gpu": "cupy"}  # device name -> backend ("cpu": see get_backend)


def cuda_unavailable() -> str | None:
    """Why the cupy backend cannot run here (no CuPy, no driver, no device), or None when it can."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
        return "CuPy finds no CUDA device"
    except Exception as e:  # ImportError, or a CUDA runtime error when there is no driver
        return f"CuPy is not usable ({type(e).__name__})"


def set_tf32(enabled: bool) -> None:
    """Let cuBLAS run the cupy backend's float32 matmuls on TF32 tensor cores (10-bit mantissa inputs,
    float32 accumulation: several times faster, about 1e-3 relative error) or not (the default). Imports
    CuPy; also sets CUPY_TF32 for CuPy versions without a runtime switch."""
    os.environ["CUPY_TF32"] = "1" if enabled else "0"
    import cupy
    from cupy._core import _routines_linalg as linalg

    linalg.set_compute_type(cupy.float32, linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT)


def get_backend(name: str | Backend | None = None) -> Backend:
    """Look a backend up by name (``"numpy"``, ``"numba"``, ``"cupy"``) or device (``"cpu"``, ``"cuda"``);
    None gives the default."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = _DEFAULT[0]
    elif name == "cpu":
        default = get_backend(None)
        return default if default.device == "cpu" else get_backend("numpy")
    name = DEVICES.get(name, name)
    b = _BACKENDS.get(name)
    if b is None:
        if name == "cupy":
            return _make_cupy()
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(set(_BACKENDS) | {'cupy'})} "
                         "or a device: 'cpu', 'cuda'")
    return b


def set_default_backend(name: str) -> None:
    """Make new tensors live on backend ``name`` unless told otherwise."""
    get_backend(name)
    _DEFAULT[0] = name


def default_backend() -> Backend:
    return get_backend(None)
