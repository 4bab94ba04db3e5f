"""How the CUDA kernels are described, compiled and launched; no CuPy until a kernel first runs.

A kernel file ``<name>.cu`` is CUDA C whose ``extern "C" __global__`` kernels are written once for
named element types: ``scalar_t`` (the arrays' dtype), ``acc_t`` (what sums are kept in: float, or
double for float64 arrays) and any a file adds (``grad_t`` in adamw.cu). A *variant* fixes them,
and any tile sizes, as ``-D`` options (:func:`variant`); each (file, variant) is one
``cupy.RawModule``, compiled on its first launch and kept: CuPy caches the binary on disk
(``~/.cupy/kernel_cache``, or ``CUPY_CACHE_DIR``), keyed by the source text and the options, so a
later process loads it without compiling.

The text compiled is ``_common.cuh`` followed by the file (:func:`source`): no ``#include`` of our
own, so the cache key changes whenever either file does, and nvcc in the tests compiles exactly
the text CuPy does (tests/test_cuda_sources.py, for sm_80 and sm_90).

A :class:`Kernel` names its parameters with their C types, in the order of the ``.cu`` signature
(the tests parse the file and compare). Arrays must be C-contiguous, except a pointer parameter
whose name ends in ``_rows`` (a view whose rows are evenly spaced runs, :func:`row_stride`, its row
stride passed beside it) or ``_view`` (strides passed beside it). :func:`launch` checks every argument against that list
(dtype, C-contiguity, integer range) before anything runs, and turns Python numbers into the exact
C type: CuPy would otherwise pass a Python int as a 64-bit integer whatever the kernel declares.
Each launcher module computes its grid, block and shared memory in a pure ``launch_config``
function of shapes, which the CPU tests check against CUDA's limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
COMMON = "_common.cuh"

# dtype name -> (C type of scalar_t, C type of acc_t)
C_TYPES = {"float32": ("float", "float"), "float16": ("__half", "float"), "bfloat16": ("__nv_bfloat16", "float"),
           "float64": ("double", "double")}
FLOAT_DTYPES = tuple(C_TYPES)
MAX_THREADS = 1024                  # per block, every CUDA GPU
MAX_STATIC_SHARED = 48 * 1024       # bytes of shared memory a block gets without opting in
MAX_GRID = (2**31 - 1, 65535, 65535)
INT32_MAX = 2**31 - 1


def dtype_name(dtype: Any) -> str:
    """'float32', 'float16', 'bfloat16' (ml_dtypes'), ... for a NumPy or CuPy dtype (or such a name)."""
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def variant(scalar: Any, **defines: Any) -> tuple[str, ...]:
    """The -D options of one compiled variant: scalar_t/acc_t for ``scalar`` (a dtype), plus ``defines``
    (a dtype value becomes its C type: ``grad_t=np.float16`` -> ``-DGRAD_T=__half``)."""
    c_scalar, c_acc = C_TYPES[dtype_name(scalar)]
    opts = [f"-DSCALAR_T={c_scalar}", f"-DACC_T={c_acc}"]
    for key, value in sorted(defines.items()):
        if isinstance(value, (type, np.dtype)) or value in C_TYPES:
            value = C_TYPES[dtype_name(value)][0]
        opts.append(f"-D{key.upper()}={value}")
    return tuple(opts)


def source(file: str) -> str:
    """The CUDA C compiled for ``file``: _common.cuh, then the file."""
    with open(os.path.join(HERE, COMMON)) as f:
        common = f.read()
    with open(os.path.join(HERE, file)) as f:
        body = f.read()
    return f"{common}\n#line 1 \"{file}\"\n{body}"


COMPILE_OPTIONS = ("-std=c++17",)  # besides a variant's -D options; both NVRTC (CuPy) and nvcc take it


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # as in the .cu signature: "const scalar_t*", "scalar_t*", "int", "long long", "acc_t", ...

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def base(self) -> str:
        return self.ctype.removeprefix("const ").rstrip("*").strip()


@dataclass(frozen=True)
class Kernel:
    file: str                 # "rms_norm.cu"
    name: str                 # its extern "C" name
    params: tuple[Param, ...]


def parse_params(signature: str) -> tuple[Param, ...]:
    """Parameters from a C parameter list as written in a .cu file: "const scalar_t* __restrict__ x, int n"."""
    params = []
    for part in signature.split(","):
        tokens = [t for t in part.replace("*", " * ").split() if t != "__restrict__"]
        ctype = " ".join(tokens[:-1]).replace(" *", "*")
        params.append(Param(tokens[-1], ctype))
    return tuple(params)


def kernel(file: str, name: str, signature: str) -> Kernel:
    """A Kernel of ``file`` from its C parameter list, copied from the .cu signature (the tests compare)."""
    return Kernel(file, name, parse_params(signature))


@dataclass(frozen=True)
class Launch:
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int = 0

    @property
    def threads(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]


def blocks_for(n: int, per_block: int) -> int:
    return max(1, -(-n // per_block))


def check_launch(launch: Launch) -> list[str]:
    """What is wrong with a launch by CUDA's limits (empty when it is fine)."""
    bad = []
    if not 32 <= launch.threads <= MAX_THREADS or launch.threads % 32:
        bad.append(f"{launch.threads} threads per block (needs a multiple of 32 in [32, {MAX_THREADS}])")
    for axis, (n, limit) in enumerate(zip(launch.grid, MAX_GRID)):
        if not 1 <= n <= limit:
            bad.append(f"grid[{axis}] = {n} outside [1, {limit}]")
    if not 0 <= launch.shared_bytes <= MAX_STATIC_SHARED:
        bad.append(f"{launch.shared_bytes} bytes of shared memory (at most {MAX_STATIC_SHARED})")
    return bad


def _c_dtype(base: str, types: dict[str, str]) -> str:
    """The dtype name a C base type stands for in this variant."""
    fixed = {"float": "float32", "double": "float64", "int": "int32", "long long": "int64",
             "unsigned long long": "uint64", "__half": "float16", "__nv_bfloat16": "bfloat16"}
    return fixed.get(base) or types[base]


def check_args(k: Kernel, types: dict[str, str], args: dict[str, Any]) -> list[Any]:
    """The arguments in signature order, scalars as exact NumPy types; raises on a mismatch.
    ``types``: the variant's type names -> dtype names ({"scalar_t": "float16", "acc_t": "float32"})."""
    if set(args) != {p.name for p in k.params}:
        raise TypeError(f"{k.file}:{k.name}: arguments {sorted(args)} != parameters {[p.name for p in k.params]}")
    out = []
    for p in k.params:
        a, want = args[p.name], _c_dtype(p.base, types)
        if p.is_pointer:
            if not hasattr(a, "dtype") or dtype_name(a.dtype) != want:
                raise TypeError(f"{k.file}:{k.name}: {p.name} must be a {want} array, got "
                                f"{getattr(a, 'dtype', type(a).__name__)}")
            if not p.name.endswith(("_rows", "_view")) and not a.flags.c_contiguous:
                raise ValueError(f"{k.file}:{k.name}: {p.name} must be C-contiguous")
            out.append(a)
        else:
            if hasattr(a, "dtype") and getattr(a, "ndim", 0):
                raise TypeError(f"{k.file}:{k.name}: {p.name} is a {p.ctype}, got an array")
            if want in ("int32", "int64") and not np.iinfo(want).min <= int(a) <= np.iinfo(want).max:
                raise OverflowError(f"{k.file}:{k.name}: {p.name} = {a} does not fit a {p.ctype}")
            out.append(np.dtype(want).type(a))
    return out


# ---- running: CuPy, compiled on first use ---------------------------------------------------------------

_MODULES: dict[tuple[str, tuple[str, ...]], Any] = {}


def _module(file: str, options: tuple[str, ...]):
    key = (file, options)
    mod = _MODULES.get(key)
    if mod is None:
        import cupy

        mod = _MODULES[key] = cupy.RawModule(code=source(file), options=COMPILE_OPTIONS + options)
    return mod


def launch(k: Kernel, options: tuple[str, ...], types: dict[str, str], cfg: Launch, **args: Any) -> None:
    """Check the arguments and the launch, then run kernel ``k`` of variant ``options`` on the current stream."""
    bad = check_launch(cfg)
    if bad:
        raise ValueError(f"{k.file}:{k.name}: bad launch: {'; '.join(bad)}")
    values = check_args(k, types, args)
    _module(k.file, options).get_function(k.name)(cfg.grid, cfg.block, tuple(values),
                                                  shared_mem=cfg.shared_bytes)


def types_of(scalar: Any, **extra: Any) -> dict[str, str]:
    """The variant's type names -> dtype names, for check_args."""
    name = dtype_name(scalar)
    out = {"scalar_t": name, "acc_t": "float64" if name == "float64" else "float32"}
    out.update({k: dtype_name(v) for k, v in extra.items()})
    return out


def array_module(a: Any):
    """cupy for a CuPy array, numpy otherwise (the launchers allocate with the inputs' own module)."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


def to_host(a: Any) -> np.ndarray:
    """A host copy of a (small) array: the one device-to-host transfer a launcher may need."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def round_up(n: int, multiple: int = 32) -> int:
    return -(-n // multiple) * multiple


def elements(a: Any) -> tuple[int, ...]:
    """a's strides in elements."""
    return tuple(s // a.itemsize for s in a.strides)


def pointer(a: Any) -> int:
    """The device (or host) address of an array's first element."""
    return int(a.ctypes.data) if isinstance(a, np.ndarray) else int(a.data.ptr)


def row_stride(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, width: int) -> int | None:
    """ld (in elements) such that row i of ``a.reshape(-1, width)`` starts ``i * ld`` elements after the
    first, each row ``width`` contiguous elements; None when the array's rows are not laid out so. The
    column blocks the fused projections make (q, k, v; gate, up) are such arrays."""
    size = int(np.prod(shape)) if shape else 1
    if size == 0 or width <= 0 or size % width:
        return None
    # The trailing axes that make up one row must be contiguous...
    inner, expect, axis = 1, itemsize, len(shape)
    while inner < width:
        axis -= 1
        if axis < 0:
            return None
        if shape[axis] != 1 and strides[axis] != expect:
            return None
        inner *= shape[axis]
        expect *= shape[axis]
    if inner != width:
        return None
    # ... and the leading ones must collapse into one evenly spaced axis of rows.
    lead = [(n, s) for n, s in zip(shape[:axis], strides[:axis]) if n != 1]
    if not lead:
        return width
    ld_bytes = lead[-1][1]
    for (_, s_outer), (n_inner, s_inner) in zip(lead, lead[1:]):
        if s_outer != n_inner * s_inner:
            return None
    if ld_bytes % itemsize or ld_bytes // itemsize < width:
        return None
    return ld_bytes // itemsize
