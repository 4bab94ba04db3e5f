"""Causal grouped-query attention's CUDA launchers (attention_forward.cu, attention_backward_dq.cu,
attention_backward_dkdv.cu),
flash style: the forward saves its output and each query row's log-sum-exp (a :class:`FlashState`)
instead of P, and only this module's backward reads it (see kernels/contracts.py); a backward given
P (the reference's saved state) returns NotImplemented, and one given a FlashState never declines.

The head size is a compile-time constant (one module per head size and dtype, compiled on first use),
up to ``MAX_HEAD_DIM``. Value heads may have another size Dv than the query/key heads' D (MLA: DeepSeek's
D = 192, Dv = 128), a second constant V_DIM, each up to ``MAX_MLA_DIM``; a negative offset returns
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
MAX_MLA_DIM = 192   # D or Dv when they differ: DeepSeek's 192 / 128 (registers spill there; still correct)
SHARED_BUDGET = MAX_STATIC_SHARED  # static arrays, so no opting in to more than 48 KiB


class FlashState:
    """What the CUDA forward saves for its backward: the output and the log-sum-exp (B, H, T) of each row."""

    __slots__ = ("out", "lse")

    def __init__(self, out: Any, lse: Any):
        self.out, self.lse = out, lse


# dv: the value head size Dv (None: D). Static shared arrays, so these are ptxas's counts exactly.
def forward_shared_bytes(d: int, acc: int, block_q: int, block_k: int, dv: int | None = None) -> int:
    return acc * (block_k * (d + (dv or d)) + block_k * block_q)


def dq_shared_bytes(d: int, acc: int, block_q: int, block_k: int, dv: int | None = None) -> int:
    return acc * (block_k * (d + (dv or d)) + (dv or d) * block_q)


def dkdv_shared_bytes(d: int, acc: int, block_q: int, block_k: int, dv: int | None = None) -> int:
    return acc * ((d + (dv or d)) * (block_k + block_q) + 2 * block_q)


def tile_sizes(d: int, acc: int, dv: int | None = None) -> dict[str, tuple[int, int]]:
    """(BLOCK_Q, BLOCK_K) of each kernel for head sizes d (and dv) and acc_t of ``acc`` bytes: the largest
    tiles whose shared memory stays under SHARED_BUDGET (static arrays: sizes are compile-time constants)."""
    def pick(shared, block_q_options, block_k_options):
        for bq in block_q_options:
            for bk in block_k_options:
                if shared(d, acc, bq, bk, dv) <= SHARED_BUDGET:
                    return bq, bk
        return None
    return {"forward": pick(forward_shared_bytes, (64, 32), (64, 32, 16, 8)),
            "dq": pick(dq_shared_bytes, (64, 32), (32, 16, 8)),
            "dkdv": pick(dkdv_shared_bytes, (32, 16, 8, 4), (32,))}  # BLOCK_K: threads, a full warp


def _acc_bytes(dtype: Any) -> int:
    return 8 if dtype_name(dtype) == "float64" else 4


def _variant(dtype: Any, d: int, dv: int | None, bq: int, bk: int) -> tuple[str, ...]:
    """The -D options; V_DIM only when it differs from D (the D == Dv modules keep their cache keys)."""
    extra = {} if dv in (None, d) else {"v_dim": dv}
    return variant(dtype, head_dim=d, block_q=bq, block_k=bk, **extra)


def forward_config(b: int, t: int, h: int, d: int, dtype: Any,
                   dv: int | None = None) -> tuple[Launch, tuple[str, ...], int]:
    """(launch, variant, static shared bytes) of the forward."""
    acc = _acc_bytes(dtype)
    bq, bk = tile_sizes(d, acc, dv)["forward"]
    return (Launch((blocks_for(t, bq), h, b), (bq, 1, 1)), _variant(dtype, d, dv, bq, bk),
            forward_shared_bytes(d, acc, bq, bk, dv))


def backward_configs(b: int, t: int, s: int, h: int, kv: int, d: int, dtype: Any,
                     dv: int | None = None) -> dict[str, tuple]:
    """name -> (launch, variant, static shared bytes) of the delta, dq and dk/dv kernels (delta and dq are
    one module, attention_backward_dq.cu, so they share its variant)."""
    acc = _acc_bytes(dtype)
    tiles = tile_sizes(d, acc, dv)
    (qq, qk), (kq, kk) = tiles["dq"], tiles["dkdv"]
    dq_opts = _variant(dtype, d, dv, qq, qk)
    return {"delta": (Launch((blocks_for(b * t * h, 128), 1, 1), (128, 1, 1)), dq_opts, 0),
            "dq": (Launch((blocks_for(t, qq), h, b), (qq, 1, 1)), dq_opts, dq_shared_bytes(d, acc, qq, qk, dv)),
            "dkdv": (Launch((blocks_for(s, kk), kv, b), (kk, 1, 1)), _variant(dtype, d, dv, kq, kk),
                     dkdv_shared_bytes(d, acc, kq, kk, dv))}


def _views(xp, q, k, v):
    """q, k, v with a contiguous last axis (copied if not), and their strides in elements."""
    arrays = [a if a.strides[-1] == a.itemsize else xp.ascontiguousarray(a) for a in (q, k, v)]
    strides = {}
    for name, a in zip("qkv", arrays):
        sb, st, sh, _ = elements(a)
        strides.update({name + "b": sb, name + "t": st, name + "h": sh})
    return arrays, strides


def _supported(q, k, v, offset) -> bool:
    d, dv = q.shape[-1], v.shape[-1]
    ok = (q.ndim == 4 and k.ndim == 4 and v.ndim == 4 and k.shape[:3] == v.shape[:3] and d == k.shape[3]
          and offset >= 0 and max(d, dv) <= (MAX_HEAD_DIM if d == dv else MAX_MLA_DIM) and q.size > 0
          and k.shape[1] > 0 and v.size > 0 and dtype_name(q.dtype) in FLOAT_DTYPES and q.dtype == k.dtype == v.dtype)
    return ok and None not in tile_sizes(d, _acc_bytes(q.dtype), dv).values()


def attention_forward(q: Any, k: Any, v: Any, scale: float, offset: int):
    if not _supported(q, k, v, offset):
        return NotImplemented
    xp = array_module(q)
    b, t, h, d = q.shape
    s, kv, dv = k.shape[1], k.shape[2], v.shape[3]
    (q, k, v), strides = _views(xp, q, k, v)
    cfg, opts, _ = forward_config(b, t, h, d, q.dtype, dv)
    types = types_of(q.dtype)
    out = xp.empty((b, t, h, dv), dtype=q.dtype)
    lse = xp.empty((b, h, t), dtype=types["acc_t"])
    launch(FORWARD, opts, types, cfg, q_view=q, k_view=k, v_view=v, **strides, out=out, lse=lse, t=t, s=s, h=h,
           group=h // kv, offset=int(offset), scale=scale)
    return out, FlashState(out, lse)


def attention_backward(g: Any, q: Any, k: Any, v: Any, saved: Any, scale: float, offset: int = 0):
    if not isinstance(saved, FlashState):  # P from the reference: the reference's backward reads it
        return NotImplemented
    xp = array_module(q)
    b, t, h, d = q.shape
    s, kv, dv = k.shape[1], k.shape[2], v.shape[3]
    (q, k, v), strides = _views(xp, q, k, v)
    g = xp.ascontiguousarray(g.astype(q.dtype, copy=False))
    cfgs = backward_configs(b, t, s, h, kv, d, q.dtype, dv)
    types = types_of(q.dtype)
    delta = xp.empty((b, h, t), dtype=types["acc_t"])
    launch(DELTA, cfgs["delta"][1], types, cfgs["delta"][0], g=g, out=saved.out, delta=delta, n_rows=b * t * h,
           t=t, h=h)
    common = dict(g=g, q_view=q, k_view=k, v_view=v, **strides, lse=saved.lse, delta=delta, t=t, s=s, h=h,
                  group=h // kv, offset=int(offset), scale=scale)
    dq = xp.empty((b, t, h, d), dtype=q.dtype)
    launch(BACKWARD_DQ, cfgs["dq"][1], types, cfgs["dq"][0], dq=dq, **common)
    dk = xp.empty((b, s, kv, d), dtype=q.dtype)
    dv_out = xp.empty((b, s, kv, dv), dtype=q.dtype)
    launch(BACKWARD_DKDV, cfgs["dkdv"][1], types, cfgs["dkdv"][0], dk=dk, dv=dv_out, **common)
    return dq, dk, dv_out


def compile_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(file, -D options) the tests compile with nvcc: the ~125M Llama's head size 64 in every dtype, 128
    (the largest) in float32 and bfloat16, and DeepSeek's MLA heads (D 192, Dv 128) in float32 and bfloat16."""
    out = []
    for dt, d, dv in [("float32", 64, None), ("float16", 64, None), ("bfloat16", 64, None), ("float64", 64, None),
                      ("float32", 128, None), ("bfloat16", 128, None), ("float32", 192, 128), ("bfloat16", 192, 128)]:
        out.append(("attention_forward.cu", forward_config(1, 1, 1, d, dt, dv)[1]))
        cfgs = backward_configs(1, 1, 1, 1, 1, d, dt, dv)
        out += [("attention_backward_dq.cu", cfgs["dq"][1]), ("attention_backward_dkdv.cu", cfgs["dkdv"][1])]
    return out
