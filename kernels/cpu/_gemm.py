"""Matrix products called from inside Numba kernels, on the OpenBLAS that NumPy loaded.

A kernel made of many small products (the SSD: a dozen 64 x 64 x 64 products per head and chunk) loses
most of its time around NumPy's matmul, not in it: each call wants its operands copied into its own
layout, returns a fresh array, and needs another pass to add the result to the next one. Called from
compiled code, ``cblas_?gemm`` reads a head's rows where they lie (a strided block of x), adds into its
output (beta = 1), and costs a fraction of a microsecond per call.

``blas_for(dtype)`` gives the kernels a ``(address, ilp64)`` pair for ``gemm``: cblas_sgemm or cblas_dgemm
of NumPy's OpenBLAS, or ``(0, 0)`` where there is none (another BLAS, no /proc); ``gemm`` then runs a plain
loop nest instead (slow, but the same products). The address travels as an argument, not a global, so the
kernels that call it stay in Numba's on-disk cache. Call them inside ``blas_single_thread()``: the products
are small and the kernels bring their own threads.

Numba's cache does not notice edits to this file in the kernels that inline it; ``_cache_guard`` does.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_NO_TRANS, _TRANS, _ROW_MAJOR = 111, 112, 101   # CBLAS_TRANSPOSE and CBLAS_ORDER values
_found: dict[str, tuple[int, int]] | None = None


def _lookup() -> dict[str, tuple[int, int]]:
    """{"float32": (address of cblas_sgemm, ilp64), "float64": ...} from the first OpenBLAS mapped into
    this process that can also set its thread count (the one ``blas_single_thread`` controls)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return {}
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                if getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None) is None:
                    continue
                fns = {k: getattr(lib, f"{prefix}cblas_{c}gemm{suffix}", None) for k, c in (("float32", "s"),
                                                                                         ("float64", "d"))}
                if None in fns.values():
                    continue
                ilp64 = int(suffix == "64_" or _config_says_ilp64(lib, prefix, suffix))
                return {k: (ctypes.cast(fn, ctypes.c_void_p).value, ilp64) for k, fn in fns.items()}
    return {}


def _config_says_ilp64(lib, prefix: str, suffix: str) -> bool:
    get = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
    if get is None:
        return False
    get.restype = ctypes.c_char_p
    return b"USE64BITINT" in (get() or b"")


def blas_for(dtype) -> tuple[int, int]:
    """(address, ilp64) of NumPy's OpenBLAS gemm for float32 or float64, or (0, 0): the loop nest."""
    global _found
    if _found is None:
        _found = _lookup()
    return _found.get(np.dtype(dtype).name, (0, 0))


def _cblas_call(int_bits: int):
    """An intrinsic calling cblas_?gemm at a runtime address, with ``int_bits``-wide integers; the arrays
    are passed whole, with element offsets, so no pointer arithmetic is done on integers."""
    @intrinsic
    def call(typingctx, addr, ta, tb, m, n, k, alpha, A, ao, lda, B, bo, ldb, beta, Cm, co, ldc):
        sig = types.void(addr, ta, tb, m, n, k, alpha, A, ao, lda, B, bo, ldb, beta, Cm, co, ldc)

        def codegen(context, builder, signature, args):
            i32, it, i8p = ir.IntType(32), ir.IntType(int_bits), ir.IntType(8).as_pointer()
            ft = context.get_value_type(signature.args[6])
            addr_, ta_, tb_, m_, n_, k_, al, A_, ao_, lda_, B_, bo_, ldb_, be, C_, co_, ldc_ = args
            tys = signature.args

            def at(ary_ty, ary, off):
                data = context.make_array(ary_ty)(context, builder, ary).data
                return builder.bitcast(builder.gep(data, [off]), i8p)

            def int_(v):
                if v.type.width == int_bits:
                    return v
                return builder.trunc(v, it) if v.type.width > int_bits else builder.sext(v, it)

            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, it, it, it, ft, i8p, it, i8p, it, ft, i8p, it])
            fn = builder.inttoptr(addr_, fnty.as_pointer())
            builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), builder.trunc(ta_, i32), builder.trunc(tb_, i32),
                              int_(m_), int_(n_), int_(k_), al, at(tys[7], A_, ao_), int_(lda_),
                              at(tys[10], B_, bo_), int_(ldb_), be, at(tys[14], C_, co_), int_(ldc_)])
            return context.get_dummy_value()
        return sig, codegen
    return call


_call64, _call32 = _cblas_call(64), _cblas_call(32)


@numba.njit(nogil=True, cache=True)
def _gemm_loops(ta, tb, m, n, k, A, ao, lda, B, bo, ldb, beta, Cm, co, ldc):  # pragma: no cover - compiled
    # the same product without a BLAS: C-ordered loops, the innermost over a row of the output
    Af, Bf, Cf = A.reshape(A.size), B.reshape(B.size), Cm.reshape(Cm.size)
    for i in range(m):
        row = co + i * ldc
        for j in range(n):
            Cf[row + j] = beta * Cf[row + j] if beta != 0 else 0.0
        for p in range(k):
            av = Af[ao + p * lda + i] if ta else Af[ao + i * lda + p]
            if tb:
                for j in range(n):
                    Cf[row + j] += av * Bf[bo + j * ldb + p]
            else:
                src = bo + p * ldb
                for j in range(n):
                    Cf[row + j] += av * Bf[src + j]


@numba.njit(nogil=True, cache=True)
def gemm(blas, ta, tb, m, n, k, A, ao, lda, B, bo, ldb, beta, Cm, co, ldc):  # pragma: no cover - compiled
    """C = op(A) op(B) + beta C, row-major, on C-contiguous arrays A, B, Cm addressed by element offset
    (ao, bo, co) and row stride (lda, ldb, ldc): op(A) is m x k (A holds its transpose if ta), op(B) k x n.
    ``blas`` is ``blas_for(dtype)``. beta = 0 ignores what C held."""
    if m <= 0 or n <= 0:
        return
    one, b_ = Cm.dtype.type(1.0), Cm.dtype.type(beta)
    addr, ilp64 = blas
    if addr == 0:
        _gemm_loops(ta, tb, m, n, k, A, ao, lda, B, bo, ldb, b_, Cm, co, ldc)
        return
    t_a, t_b = _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS
    if ilp64:
        _call64(addr, t_a, t_b, m, n, k, one, A, ao, lda, B, bo, ldb, b_, Cm, co, ldc)
    else:
        _call32(addr, t_a, t_b, m, n, k, one, A, ao, lda, B, bo, ldb, b_, Cm, co, ldc)
