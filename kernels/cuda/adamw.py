"""AdamW's CUDA launchers (adamw.cu): every parameter of a call in one launch.

``adamw_step_multi`` has the contract of kernels/reference/adamw.py's: lists of parameters, gradients
and moments, updated in place, plus ``grad_scale`` (the gradient is read as grad * grad_scale) and
``copies`` (arrays that also receive each new value, rounded: the float16 model of float32 master
weights). ``adamw_step`` is the one-parameter case. The kernel reaches the arrays through tables of
their addresses, uploaded once per call (one small host-to-device copy); the table of chunks depends
only on the sizes and is kept. Parameters and moments must share one float dtype and be C-contiguous,
gradients (and copies) one dtype each; otherwise NotImplemented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._runtime import FLOAT_DTYPES, Launch, array_module, dtype_name, kernel, launch, pointer, types_of, variant

ADAMW = kernel("adamw.cu", "adamw_multi",
               "const unsigned long long* params, const unsigned long long* grads, "
               "const unsigned long long* exp_avgs, const unsigned long long* exp_avg_sqs, "
               "const unsigned long long* copies, const long long* sizes, const int* chunk_param, "
               "const long long* chunk_start, int chunk, int has_copies, acc_t decay, acc_t one_minus_beta1, "
               "acc_t beta2, acc_t one_minus_beta2, acc_t bias_correction2_sqrt, acc_t eps, acc_t step_size, "
               "acc_t grad_scale")
KERNELS = (ADAMW,)
CHUNK = 4096      # elements per block: 16 per thread
THREADS = 256
_CHUNK_TABLES: dict[tuple, tuple[Any, Any, Any]] = {}


def chunk_table(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(chunk_param, chunk_start): chunk c covers elements chunk_start[c] .. + CHUNK of parameter chunk_param[c]."""
    counts = [-(-s // CHUNK) for s in sizes]
    param = np.repeat(np.arange(len(sizes), dtype=np.int32), counts)
    start = np.concatenate([np.arange(c, dtype=np.int64) * CHUNK for c in counts]) if sizes else np.zeros(0, np.int64)
    return param, start


def launch_config(sizes: tuple[int, ...]) -> Launch:
    return Launch((max(1, sum(-(-s // CHUNK) for s in sizes)), 1, 1), (THREADS, 1, 1))


def _chunks(xp, sizes: tuple[int, ...]):
    key = (xp.__name__, sizes)
    if key not in _CHUNK_TABLES:
        param, start = chunk_table(sizes)
        _CHUNK_TABLES[key] = (xp.asarray(np.asarray(sizes, dtype=np.int64)), xp.asarray(param), xp.asarray(start))
    return _CHUNK_TABLES[key]


def _one_dtype(arrays) -> str | None:
    names = {dtype_name(a.dtype) for a in arrays}
    return names.pop() if len(names) == 1 and next(iter(names)) in FLOAT_DTYPES else None


def adamw_step_multi(params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, lr: float, beta1: float,
                     beta2: float, eps: float, wd: float, step: int, grad_scale: float = 1.0, copies=None):
    if not params:
        return None
    owned = [*params, *exp_avgs, *exp_avg_sqs]
    if _one_dtype(owned) is None or _one_dtype(grads) is None or (copies and _one_dtype(copies) is None):
        return NotImplemented
    if not all(a.flags.c_contiguous for a in owned + list(copies or ())) or any(a.size == 0 for a in params):
        return NotImplemented
    xp = array_module(params[0])
    grads = [xp.ascontiguousarray(g) for g in grads]  # only read: a strided gradient may be copied
    sizes = tuple(int(p.size) for p in params)
    lists = (params, grads, exp_avgs, exp_avg_sqs, copies or params)
    table = xp.asarray(np.array([[pointer(a) for a in arrays] for arrays in lists], dtype=np.uint64))
    sizes_d, chunk_param, chunk_start = _chunks(xp, sizes)
    pt = params[0].dtype
    extra = {"grad_t": grads[0].dtype, "copy_t": (copies or params)[0].dtype}
    decay = 1.0 - lr * wd if wd != 0.0 else 1.0
    launch(ADAMW, variant(pt, **extra), types_of(pt, **extra), launch_config(sizes), params=table[0],
           grads=table[1], exp_avgs=table[2], exp_avg_sqs=table[3], copies=table[4], sizes=sizes_d,
           chunk_param=chunk_param, chunk_start=chunk_start, chunk=CHUNK, has_copies=int(bool(copies)),
           decay=decay, one_minus_beta1=1.0 - beta1, beta2=beta2, one_minus_beta2=1.0 - beta2,
           bias_correction2_sqrt=math.sqrt(1.0 - beta2 ** step), eps=eps, step_size=lr / (1.0 - beta1 ** step),
           grad_scale=grad_scale)
    return None


def adamw_step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, lr: float, beta1: float, beta2: float,
               eps: float, wd: float, step: int):
    return adamw_step_multi([param], [grad], [exp_avg], [exp_avg_sq], lr, beta1, beta2, eps, wd, step)


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) the tests compile with nvcc: plain training in each dtype, and float32 masters
    with float16 / bfloat16 gradients and copies (mixed precision)."""
    plain = [("adamw.cu", variant(dt, grad_t=dt, copy_t=dt)) for dt in FLOAT_DTYPES]
    mixed = [("adamw.cu", variant("float32", grad_t=low, copy_t=low)) for low in ("float16", "bfloat16")]
    return plain + mixed
