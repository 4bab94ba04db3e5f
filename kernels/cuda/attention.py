"""Causal grouped-query attention's CUDA launchers (attention_forward.cu, attention_backward_dq.cu,
attention_backward_dkdv.cu),
flash style: the forward saves its output and each query row's log-sum-exp (a :class:`FlashState`)
instead of P, and only this module's backward reads it (see kernels/contracts.py); a backward given
P (the reference's saved state) returns NotImplemented, and one given a FlashState never declines.

The head size is a compile-time constant (one module per head size and dtype, compiled on first use),
up to ``MAX_HEAD_DIM``; key and value heads of another size (MLA), or a negative offset, return
NotImplemented from the forward. q, k and v may be strided views whose last axis is contiguous.
"""

from __future__ import annotations

from typing import Any

from ._runtime import (
    FLOAT_DTYPES,
    MAX_STATIC_SHARED,
    Launch,
    array_module,
    blocks_for,
    dtype_name,
    elements,
    kernel,
    launch,
    types_of,
    variant,
)

_QKV = ("const scalar_t* q_view, long long qb, long long qt, long long qh, const scalar_t* k_view, "
        "const scalar_t* v_view, long long kb, long long kt, long long kh, long long vb, long long vt, long long vh")
FORWARD = kernel("attention_forward.cu", "attention_forward",
                 _QKV + ", scalar_t* out, acc_t* lse, int t, int s, int h, int group, int offset, acc_t scale")
DELTA = kernel("attention_backward_dq.cu", "attention_delta",
               "const scalar_t* g, const scalar_t* out, acc_t* delta, int n_rows, int t, int h")
BACKWARD_DQ = kernel("attention_backward_dq.cu", "attention_backward_dq",
                     "const scalar_t* g, " + _QKV + ", const acc_t* lse, const acc_t* delta, scalar_t* dq, int t, "
                     "int s, int h, int group, int offset, acc_t scale")
BACKWARD_DKDV = kernel("attention_backward_dkdv.cu", "attention_backward_dkdv",
                       "const scalar_t* g, " + _QKV + ", const acc_t* lse, const acc_t* delta, scalar_t* dk, "
                       "scalar_t* dv, int t, int s, int h, int group, int offset, acc_t scale")
KERNELS = (FORWARD, DELTA, BACKWARD_DQ, BACKWARD_DKDV)
MAX_HEAD_DIM = 128  # registers: each thread holds two rows of the head size
SHARED_BUDGET = MAX_STATIC_SHARED  # static arrays, so no opting in to more than 48 KiB


class FlashState:
    """What the CUDA forward saves for its backward: the output and the log-sum-exp (B, H, T) of each row."""

    __slots__ = ("out", "lse")

    def __init__(self, out: Any, lse: Any):
        self.out, self.lse = out, lse


def forward_shared_bytes(d: int, acc: int, block_q: int, block_k: int) -> int:
    return acc * (2 * block_k * d + block_k * block_q)


def dq_shared_bytes(d: int, acc: int, block_q: int, block_k: int) -> int:
    return acc * (2 * block_k * d + d * block_q)


def dkdv_shared_bytes(d: int, acc: int, block_q: int, block_k: int) -> int:
    return acc * (2 * d * block_k + 2 * block_q * d + 2 * block_q)


def tile_sizes(d: int, acc: int) -> dict[str, tuple[int, int]]:
    """(BLOCK_Q, BLOCK_K) of each kernel for head size d and acc_t of ``acc`` bytes: the largest tiles whose
    shared memory stays under SHARED_BUDGET (static arrays: sizes are compile-time constants)."""
    def pick(shared, block_q_options, block_k_options):
        for bq in block_q_options:
            for bk in block_k_options:
                if shared(d, acc, bq, bk) <= SHARED_BUDGET:
                    return bq, bk
        return None
    return {"forward": pick(forward_shared_bytes, (64, 32), (64, 32, 16, 8)),
            "dq": pick(dq_shared_bytes, (64, 32), (32, 16, 8)),
            "dkdv": pick(dkdv_shared_bytes, (32, 16, 8), (32,))}  # BLOCK_K: threads per block, a full warp


def _acc_bytes(dtype: Any) -> int:
    return 8 if dtype_name(dtype) == "float64" else 4


def forward_config(b: int, t: int, h: int, d: int, dtype: Any) -> tuple[Launch, tuple[str, ...], int]:
    """(launch, variant, static shared bytes) of the forward."""
    acc = _acc_bytes(dtype)
    bq, bk = tile_sizes(d, acc)["forward"]
    return (Launch((blocks_for(t, bq), h, b), (bq, 1, 1)), variant(dtype, head_dim=d, block_q=bq, block_k=bk),
            forward_shared_bytes(d, acc, bq, bk))


def backward_configs(b: int, t: int, s: int, h: int, kv: int, d: int, dtype: Any) -> dict[str, tuple]:
    """name -> (launch, variant, static shared bytes) of the delta, dq and dk/dv kernels (delta and dq are
    one module, attention_backward_dq.cu, so they share its variant)."""
    acc = _acc_bytes(dtype)
    tiles = tile_sizes(d, acc)
    (qq, qk), (kq, kk) = tiles["dq"], tiles["dkdv"]
    dq_opts = variant(dtype, head_dim=d, block_q=qq, block_k=qk)
    return {"delta": (Launch((blocks_for(b * t * h, 128), 1, 1), (128, 1, 1)), dq_opts, 0),
            "dq": (Launch((blocks_for(t, qq), h, b), (qq, 1, 1)), dq_opts, dq_shared_bytes(d, acc, qq, qk)),
            "dkdv": (Launch((blocks_for(s, kk), kv, b), (kk, 1, 1)), variant(dtype, head_dim=d, block_q=kq, block_k=kk),
                     dkdv_shared_bytes(d, acc, kq, kk))}


def _views(xp, q, k, v):
    """q, k, v with a contiguous last axis (copied if not), and their strides in elements."""
    arrays = [a if a.strides[-1] == a.itemsize else xp.ascontiguousarray(a) for a in (q, k, v)]
    strides = {}
    for name, a in zip("qkv", arrays):
        sb, st, sh, _ = elements(a)
        strides.update({name + "b": sb, name + "t": st, name + "h": sh})
    return arrays, strides


def _supported(q, k, v, offset) -> bool:
    ok = (q.ndim == 4 and k.ndim == 4 and k.shape == v.shape and q.shape[3] == k.shape[3] and offset >= 0
          and q.shape[3] <= MAX_HEAD_DIM and q.size > 0 and k.shape[1] > 0
          and dtype_name(q.dtype) in FLOAT_DTYPES and q.dtype == k.dtype == v.dtype)
    return ok and None not in tile_sizes(q.shape[3], _acc_bytes(q.dtype)).values()


def attention_forward(q: Any, k: Any, v: Any, scale: float, offset: int):
    if not _supported(q, k, v, offset):
        return NotImplemented
    xp = array_module(q)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    (q, k, v), strides = _views(xp, q, k, v)
    cfg, opts, _ = forward_config(b, t, h, d, q.dtype)
    types = types_of(q.dtype)
    out = xp.empty((b, t, h, d), dtype=q.dtype)
    lse = xp.empty((b, h, t), dtype=types["acc_t"])
    launch(FORWARD, opts, types, cfg, q_view=q, k_view=k, v_view=v, **strides, out=out, lse=lse, t=t, s=s, h=h,
           group=h // kv, offset=int(offset), scale=scale)
    return out, FlashState(out, lse)


def attention_backward(g: Any, q: Any, k: Any, v: Any, saved: Any, scale: float, offset: int = 0):
    if not isinstance(saved, FlashState):  # P from the reference: the reference's backward reads it
        return NotImplemented
    xp = array_module(q)
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    (q, k, v), strides = _views(xp, q, k, v)
    g = xp.ascontiguousarray(g.astype(q.dtype, copy=False))
    cfgs = backward_configs(b, t, s, h, kv, d, q.dtype)
    types = types_of(q.dtype)
    delta = xp.empty((b, h, t), dtype=types["acc_t"])
    launch(DELTA, cfgs["delta"][1], types, cfgs["delta"][0], g=g, out=saved.out, delta=delta, n_rows=b * t * h,
           t=t, h=h)
    common = dict(g=g, q_view=q, k_view=k, v_view=v, **strides, lse=saved.lse, delta=delta, t=t, s=s, h=h,
                  group=h // kv, offset=int(offset), scale=scale)
    dq = xp.empty((b, t, h, d), dtype=q.dtype)
    launch(BACKWARD_DQ, cfgs["dq"][1], types, cfgs["dq"][0], dq=dq, **common)
    dk = xp.empty((b, s, kv, d), dtype=q.dtype)
    dv = xp.empty((b, s, kv, d), dtype=q.dtype)
    launch(BACKWARD_DKDV, cfgs["dkdv"][1], types, cfgs["dkdv"][0], dk=dk, dv=dv, **common)
    return dq, dk, dv


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) the tests compile with nvcc: the ~125M Llama's head size 64 in every dtype, and
    128 (the largest) in float32 and bfloat16."""
    out = []
    for dt, d in [("float32", 64), ("float16", 64), ("bfloat16", 64), ("float64", 64), ("float32", 128),
                  ("bfloat16", 128)]:
        out.append(("attention_forward.cu", forward_config(1, 1, 1, d, dt)[1]))
        cfgs = backward_configs(1, 1, 1, 1, 1, d, dt)
        out += [("attention_backward_dq.cu", cfgs["dq"][1]), ("attention_backward_dkdv.cu", cfgs["dkdv"][1])]
    return out
