"""The Numba kernels (kernels/cpu) against their xp-generic reference twins, and each fused
Function (reference kernels, Numba kernels) against its ``*_simple`` composite and torch.autograd.

The references are the spec; the Numba kernels may reorder sums and use a polynomial exp in
float32, so float32 agrees to ~1e-5 relative (of the largest magnitude) and float64 to ~1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
import nn
from kernels.cpu import KERNELS as CPU_KERNELS
from minigrad.backend import get_backend

torch = pytest.importorskip("torch")

NUMBA = get_backend("numba")
REF = get_backend("numpy")
FLOATS = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def close(ours, ref, dtype, what="", tols=TOL):
    """|ours - ref| <= tol * (|ref| + max|ref|): relative to the element and to the array's scale."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    tol = tols[np.dtype(dtype)]
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * max(scale, 1e-30), err_msg=what)


def both(name):
    """The numba backend's kernel ``name`` (the Numba twin, falling back to the reference where it
    declines) and the reference, both with xp bound; fails if kernels/cpu has no twin for it."""
    assert name in CPU_KERNELS, f"kernels/cpu has no Numba kernel {name!r}"
    return NUMBA.kernel(name), REF.reference(name)


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---- kernels: Numba == reference -----------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(3, 7, 33), (5, 3), (2, 64)])
def test_rms_norm_kernels(dtype, shape):
    rng = np.random.default_rng(1)
    x, w, g = randn(rng, shape, dtype), randn(rng, shape[-1:], dtype), randn(rng, shape, dtype)
    fwd, fwd_ref = both("rms_norm_forward")
    (y, rstd), (y_ref, rstd_ref) = fwd(x, w, 1e-5), fwd_ref(x, w, 1e-5)
    close(y, y_ref, dtype, "y")
    close(rstd, rstd_ref, dtype, "rstd")
    bwd, bwd_ref = both("rms_norm_backward")
    for ours, ref, what in zip(bwd(g, x, w, rstd_ref), bwd_ref(g, x, w, rstd_ref), ("gx", "gw")):
        close(ours, ref, dtype, what)


def _qkv_views(rng, b, t, h, kv, d, dtype):
    """q, k, v as column blocks of one (B, T, (H + 2 KV) D) array, as the fused projection makes them."""
    qkv = randn(rng, (b, t, (h + 2 * kv) * d), dtype)
    q = qkv[..., :h * d].reshape(b, t, h, d)
    k = qkv[..., h * d:(h + kv) * d].reshape(b, t, kv, d)
    v = qkv[..., (h + kv) * d:].reshape(b, t, kv, d)
    return q, k, v


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["contiguous", "column_block", "transposed"])
def test_rope_kernels(dtype, layout):
    rng = np.random.default_rng(2)
    b, t, h, d = 2, 5, 3, 8
    if layout == "contiguous":
        x = randn(rng, (b, t, h, d), dtype)
    elif layout == "column_block":
        x = _qkv_views(rng, b, t, h, 1, d, dtype)[0]
    else:  # no evenly spaced rows: the Numba side must fall back and still be right
        x = randn(rng, (h, d, t, b), dtype).transpose(3, 2, 0, 1)
    cos, sin = randn(rng, (t, d), dtype), randn(rng, (t, d), dtype)
    for name in ("rope_forward", "rope_backward"):
        fast, ref = both(name)
        np.testing.assert_array_equal(fast(x, cos, sin), ref(x, cos, sin))  # same arithmetic


ATTENTION_CASES = [
    # (B, T, S, H, KV, D, offset): MHA, GQA 2/3/4, MQA, odd sizes, KV-cache offsets (T < S), decode (T = 1)
    (2, 5, 5, 4, 4, 8, 0),
    (2, 7, 7, 4, 2, 6, 0),
    (1, 9, 9, 6, 2, 5, 0),
    (2, 4, 4, 8, 2, 8, 0),
    (3, 6, 6, 3, 1, 4, 0),
    (2, 3, 7, 6, 3, 4, 4),
    (1, 1, 9, 4, 2, 8, 8),
    (2, 3, 9, 2, 1, 8, 2),   # S > offset + T: trailing keys nobody may see
    (1, 70, 70, 2, 1, 4, 0),  # one (batch, kv head) pair: no split across threads; two causal blocks
    (2, 67, 75, 4, 2, 4, 8),  # blocks not aligned with the offset
    (1, 104, 104, 4, 2, 8, 0),  # a block whose second sub-block is partial
    (2, 40, 40, 4, 2, 8, 40),  # offset past every key: nothing masked, and the later sub-blocks see no new key
]


def _log_sum_exp_rows(q, k, scale, offset):
    """Each query row's log-sum-exp of its visible scaled scores, in float64 from the formula, in the
    Numba forward's saved layout (B, KV, T*G), rows ordered (t, g)."""
    b, t, h, _ = q.shape
    s, kv = k.shape[1], k.shape[2]
    qh = q.astype(np.float64).reshape(b, t, kv, h // kv, -1)                    # (B, T, KV, G, D)
    scores = np.einsum("btkgd,bskd->bktgs", qh, k.astype(np.float64)) * scale  # (B, KV, T, G, S)
    masked = np.arange(s)[None, :] > np.arange(t)[:, None] + offset            # (T, S)
    scores = np.where(masked[None, None, :, None, :], -np.inf, scores)
    m = scores.max(axis=-1, keepdims=True)
    return (m[..., 0] + np.log(np.exp(scores - m).sum(axis=-1))).reshape(b, kv, -1)


def check_attention(q, k, v, scale, offset, dtype, rng):
    """The Numba forward's output and saved log-sum-exp against the reference and the formula; its
    backward (from its own state) against the reference backward (from P); and the SAVED_STATE rule:
    handed the reference's P, the twin declines and the backend's kernel runs the reference."""
    fwd, fwd_ref = both("attention_forward")
    (out, saved), (out_ref, p_ref) = fwd(q, k, v, scale, offset), fwd_ref(q, k, v, scale, offset)
    close(out, out_ref, dtype, "out")
    assert type(saved).__name__ == "LseState"  # the twin ran: no (T, S) array saved
    close(saved.lse, _log_sum_exp_rows(q, k, scale, offset), dtype, "lse")
    g = randn(rng, out_ref.shape, dtype)
    bwd, bwd_ref = both("attention_backward")
    want = bwd_ref(g, q, k, v, p_ref, scale, offset)
    for ours, ref, what in zip(bwd(g, q, k, v, saved, scale, offset), want, ("dq", "dk", "dv")):
        close(ours, ref, dtype, what)
    assert CPU_KERNELS["attention_backward"](g, q, k, v, p_ref, scale, offset) is NotImplemented
    for ours, ref, what in zip(bwd(g, q, k, v, p_ref, scale, offset), want, ("dq", "dk", "dv")):
        close(ours, ref, dtype, what + " (the reference, from P)")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("b,t,s,h,kv,d,offset", ATTENTION_CASES)
def test_attention_kernels(dtype, b, t, s, h, kv, d, offset):
    rng = np.random.default_rng(3)
    q = randn(rng, (b, t, h, d), dtype)
    k, v = randn(rng, (b, s, kv, d), dtype, 2.0), randn(rng, (b, s, kv, d), dtype)
    check_attention(q, k, v, 1.0 / math.sqrt(d), offset, dtype, rng)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("b,t,s,h,kv,d,dv,offset", [
    (2, 6, 6, 4, 4, 12, 8, 0),    # MLA: query/key heads nope + rope wide, value heads narrower
    (1, 70, 70, 3, 3, 10, 16, 0),  # a wider value head, two causal blocks
    (2, 1, 9, 4, 2, 6, 4, 8),      # decode with a cache, grouped heads
    (1, 131, 140, 4, 2, 10, 6, 5),  # three blocks, the last one partial, trailing keys nobody sees
])
def test_attention_kernels_with_value_heads_of_another_width(dtype, b, t, s, h, kv, d, dv, offset):
    rng = np.random.default_rng(17)
    q, k, v = randn(rng, (b, t, h, d), dtype), randn(rng, (b, s, kv, d), dtype), randn(rng, (b, s, kv, dv), dtype)
    check_attention(q, k, v, 1.0 / math.sqrt(d), offset, dtype, rng)


@pytest.mark.parametrize("dtype", FLOATS)
def test_attention_kernels_on_strided_projections(dtype):
    rng = np.random.default_rng(4)
    q, k, v = _qkv_views(rng, 2, 6, 4, 2, 8, dtype)
    check_attention(q, k, v, 0.3, 0, dtype, rng)


@pytest.mark.parametrize("dtype", FLOATS)
def test_attention_kernels_without_blas(dtype, monkeypatch):
    """Where NumPy's OpenBLAS cannot be found, kernels/cpu/_gemm's loop nest runs the same products (the
    transposed ones and those that add into dK, dV and dQ included)."""
    import kernels.cpu.attention as attention_cpu

    monkeypatch.setattr(attention_cpu, "blas_for", lambda dt: (0, 0))
    rng = np.random.default_rng(8)
    q, k, v = randn(rng, (2, 70, 4, 6), dtype), randn(rng, (2, 75, 2, 6), dtype), randn(rng, (2, 75, 2, 4), dtype)
    check_attention(q, k, v, 0.4, 5, dtype, rng)


def test_attention_forward_declines_what_it_does_not_handle():
    rng = np.random.default_rng(5)
    q = randn(rng, (1, 3, 2, 4), np.float16)
    assert CPU_KERNELS["attention_forward"](q, q, q, 0.5, 0) is NotImplemented  # no float16 in Numba
    q32 = q.astype(np.float32)
    assert CPU_KERNELS["attention_forward"](q32, q32, q32, 0.5, -1) is NotImplemented
    out, p = NUMBA.kernel("attention_forward")(q, q, q, 0.5, 0)  # the reference ran: it saved P
    assert p.shape == (1, 2, 1, 3, 3)
    assert CPU_KERNELS["attention_backward"](q, q, q, q, p, 0.5, 0) is NotImplemented


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["contiguous", "column_blocks", "nd"])
def test_swiglu_kernels(dtype, layout):
    rng = np.random.default_rng(5)
    if layout == "column_blocks":  # gate | up as the halves of one (N, 2F) product
        gu = randn(rng, (9, 2 * 13), dtype, 6.0)
        gate, up = gu[:, :13], gu[:, 13:]
    else:
        shape = (9, 13) if layout == "contiguous" else (3, 4, 13)
        gate, up = randn(rng, shape, dtype, 6.0), randn(rng, shape, dtype)
    gate.reshape(-1)[:2] = (-100.0, 100.0)  # where exp(-x) overflows or vanishes
    g = randn(rng, gate.shape, dtype)
    fwd, fwd_ref = both("swiglu_forward")
    close(fwd(gate, up), fwd_ref(gate, up), dtype, "forward")
    bwd, bwd_ref = both("swiglu_backward")
    ref = bwd_ref(g, gate, up)
    for ours, r, what in zip(bwd(g, gate, up), ref, ("dgate", "dup")):
        close(ours, r, dtype, what)
    buf = np.zeros((gate.size // gate.shape[-1], 2 * gate.shape[-1]), dtype)  # out= into one buffer
    f = gate.shape[-1]
    bwd(g.reshape(-1, f), gate.reshape(-1, f), up.reshape(-1, f), out=(buf[:, :f], buf[:, f:]))
    close(buf, np.concatenate([r.reshape(-1, f) for r in ref], axis=1), dtype, "out=")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n,c", [(11, 17), (4, 1000), (1, 3)])
def test_softmax_cross_entropy_kernel(dtype, n, c):
    rng = np.random.default_rng(6)
    logits = randn(rng, (n, c), dtype, 4.0)
    logits[0, :2] = (80.0, -80.0)  # far from zero: the max shift must keep exp in range
    targets = rng.integers(0, c, size=n)
    targets[n // 2] = -100  # ignored
    fast, ref = both("softmax_cross_entropy")
    (loss, n_valid, grad), (loss_ref, n_valid_ref, grad_ref) = fast(logits, targets, -100), \
        ref(logits, targets, -100)
    assert n_valid == n_valid_ref
    close(loss, loss_ref, dtype, "loss_sum")
    close(grad, grad_ref, dtype, "grad")


def test_softmax_cross_entropy_kernel_edge_targets():
    rng = np.random.default_rng(7)
    logits = randn(rng, (4, 6), np.float32)
    fast, ref = both("softmax_cross_entropy")
    all_ignored = np.full(4, 3)
    loss, n_valid, grad = fast(logits, all_ignored, 3)
    assert n_valid == 0 and loss == 0 and not grad.any()
    wrapped = np.array([-1, 0, 5, -6])  # negative targets index from the end, as NumPy's indexing does
    close(fast(logits, wrapped, -100)[2], ref(logits, wrapped, -100)[2], np.float32)
    with pytest.raises(IndexError):
        fast(logits, np.array([0, 6, 1, 2]), -100)


@pytest.mark.parametrize("dtype", FLOATS)
def test_index_add_kernel(dtype):
    rng = np.random.default_rng(8)
    ids = rng.integers(-10, 10, size=300)  # repeats, and negative ids counted from the end
    src = randn(rng, (300, 70), dtype)
    fast, ref = both("index_add")
    out, out_ref = randn(rng, (10, 70), dtype), None
    out_ref = out.copy()
    fast(out, ids, src)
    ref(out_ref, ids, src)
    np.testing.assert_array_equal(out, out_ref)  # same additions in the same order
    # Other key shapes go to the reference.
    key = (np.array([0, 2, 0]), np.array([1, 1, 1]))
    a, a_ref = np.zeros((3, 4), dtype), np.zeros((3, 4), dtype)
    fast(a, key, np.ones(3, dtype))
    ref(a_ref, key, np.ones(3, dtype))
    np.testing.assert_array_equal(a, a_ref)
    with pytest.raises(IndexError):
        fast(np.zeros((3, 2), dtype), np.array([3]), np.ones((1, 2), dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_erf_kernel(dtype):
    x = np.concatenate([np.linspace(-7, 7, 301), [0.0, 1e-8, -30.0, 30.0]]).astype(dtype).reshape(5, 61)
    fast, ref = both("erf")
    close(fast(x), ref(x), dtype)
    close(fast(x[:, ::2]), ref(x[:, ::2]), dtype, "strided")


def test_reference_erf_float32_against_math_erf():
    """The reference's float32 form (a Taylor polynomial near 0, the fitted erfc beyond) against math.erf:
    a few ulp relative everywhere, tiny arguments included, and the edges exact, with no warning."""
    tiny = np.logspace(-37, 0.3, 800)
    x = np.concatenate([np.linspace(-9, 9, 20_001), tiny, -tiny, [1.0, -1.0, 1e20, -3e38]]).astype(np.float32)
    with np.errstate(all="raise"):  # no overflow or invalid on the way (underflow in exp is expected)
        with np.errstate(under="ignore"):
            ours = REF.reference("erf")(x).astype(np.float64)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.all(np.abs(ours - exact) <= 2.5e-7 * np.abs(exact))  # float32's ulp is 6e-8 to 1.2e-7
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)
    out = REF.reference("erf")(edges)
    np.testing.assert_array_equal(out, [0.0, -0.0, 1.0, -1.0, np.nan])
    assert out.dtype == np.float32 and np.signbit(out[1])


@pytest.mark.parametrize("variant", ["_exp_float32_bits", "_exp_float32_scalef"])
def test_both_float32_exps_against_float64(variant):
    """Each CPU's exp (AVX-512's applies 2^n by ldexp, the others build it from bits; this machine runs one
    in its kernels), compiled here either way: ~1 ulp over float32's normal range, and the edges right."""
    import numba

    from kernels.cpu import _fast_math

    fn = getattr(_fast_math, variant)

    @numba.njit
    def run(a, out):
        for i in range(a.size):
            out[i] = fn(a[i])

    x = np.concatenate([np.linspace(-87.0, 88.0, 200_001), [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    out = np.empty_like(x)
    run(x, out)
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(out - exact) / exact) <= 1.5 * 2.0 ** -23  # 1.5 ulp at worst (ulp/value <= 2^-23)
    edges = np.array([np.inf, -np.inf, np.nan, 100.0, -120.0, 89.0], np.float32)
    out = np.empty_like(edges)
    run(edges, out)
    np.testing.assert_array_equal(out, [np.inf, 0.0, np.nan, np.inf, 0.0, np.inf])


def test_row_views_and_thread_helpers():
    from kernels.cpu._blas_threads import blas_single_thread, run_parallel
    from kernels.cpu._layout import as_rows

    y = np.arange(60, dtype=np.float32).reshape(6, 10)
    flat, ld = as_rows(y[:, 2:5], 3)  # a column block: rows 10 apart
    assert ld == 10 and flat.flags.c_contiguous and np.shares_memory(flat, y)
    np.testing.assert_array_equal(flat[4 * ld:4 * ld + 3], y[4, 2:5])
    assert as_rows(y.T, 6) is None  # rows not contiguous: callers fall back to the reference
    done = []
    run_parallel(done.append, range(5))
    assert sorted(done) == list(range(5))

    def fail(i):
        if i == 3:
            raise ValueError("task 3")
    with pytest.raises(ValueError, match="task 3"):
        run_parallel(fail, range(4))
    a = np.ones((300, 300), np.float32)
    with blas_single_thread():
        inside = a @ a
    np.testing.assert_array_equal(inside, a @ a)
    import kernels.cpu._blas_threads as bt
    if bt._blas:  # NumPy's OpenBLAS was found: one thread inside, the old count restored after
        get = bt._blas[0]
        before = get()
        with blas_single_thread():
            assert get() == 1
        assert get() == before


# ---- fused Functions: fused == *_simple == torch.autograd, on both CPU backends ----------------

FN_TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


def _run_ours(fn, arrays, grads_out, backend, needs_grad):
    ts = [mg.tensor(a, backend=backend, requires_grad=n) for a, n in zip(arrays, needs_grad)]
    out = fn(*ts)
    outs = list(out) if isinstance(out, tuple) else [out]
    loss = sum((o * mg.tensor(np.asarray(g), dtype=o.dtype, backend=backend)).sum() for o, g in zip(outs, grads_out))
    loss.backward()
    grads = [t.grad.numpy() if t.grad is not None else np.zeros(t.shape, t.dtype)  # an unused input
             for t, n in zip(ts, needs_grad) if n]
    return [o.numpy() for o in outs], grads


def _run_torch(fn, arrays, grads_out, needs_grad):
    ts = [torch.tensor(a, requires_grad=n) for a, n in zip(arrays, needs_grad)]
    out = fn(*ts)
    outs = list(out) if isinstance(out, tuple) else [out]
    sum((o * torch.from_numpy(np.asarray(g))).sum() for o, g in zip(outs, grads_out)).backward()
    return [o.detach().numpy() for o in outs], [t.grad.numpy() for t, n in zip(ts, needs_grad) if n]


def check_fused(fused, simple, torch_fn, arrays, backend, needs_grad=None, seed=0):
    """Outputs and every input's gradient, of the fused op and of its simple composite, equal torch's."""
    needs_grad = needs_grad or [a.dtype.kind == "f" for a in arrays]
    dtype = arrays[0].dtype
    with torch.no_grad():
        probe = torch_fn(*[torch.tensor(a) for a in arrays])
    shapes = [o.shape for o in (probe if isinstance(probe, tuple) else (probe,))]
    rng = np.random.default_rng(seed)
    grads_out = [randn(rng, tuple(s), dtype) for s in shapes]
    ref_out, ref_grads = _run_torch(torch_fn, arrays, grads_out, needs_grad)
    for name, fn in (("fused", fused), ("simple", simple)):
        outs, grads = _run_ours(fn, arrays, grads_out, backend, needs_grad)
        assert len(outs) == len(ref_out) and len(grads) == len(ref_grads)
        for i, (o, r) in enumerate(zip(outs, ref_out)):
            close(o, r, dtype, f"{name}: output {i}", FN_TOL)
        for i, (g, r) in enumerate(zip(grads, ref_grads)):
            close(g, r, dtype, f"{name}: gradient of input {i}", FN_TOL)


BACKENDS = ["numpy", "numba", "cupy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_rms_norm_function(backend, dtype):
    rng = np.random.default_rng(10)
    x, w = randn(rng, (2, 5, 24), dtype), randn(rng, (24,), dtype, 0.5) + 1

    def torch_fn(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w
    check_fused(nn.ops.rms_norm, nn.ops.rms_norm_simple, torch_fn, [x, w], backend)


def _torch_rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos[:, None, :] + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin[:, None, :]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("offset", [0, 3])
def test_rope_function(backend, dtype, offset):
    rng = np.random.default_rng(11)
    b, t, h, d = 2, 5, 3, 8
    x = randn(rng, (b, t, h, d), dtype)
    cos, sin = nn.ops.rope_tables(d, 16, 10000.0, get_backend(backend), dtype)
    c, s = cos.numpy()[offset:offset + t], sin.numpy()[offset:offset + t]
    check_fused(lambda x: nn.ops.apply_rope(x, cos, sin, offset),
                lambda x: nn.ops.apply_rope_simple(x, cos, sin, offset),
                lambda x: _torch_rope(x, torch.tensor(c), torch.tensor(s)), [x], backend)


def _torch_attention(q, k, v, offset, scale=None):
    b, t, h, d = q.shape
    s, kv = k.shape[1], k.shape[2]
    qh = q.transpose(1, 2)                                             # (B, H, T, D)
    kh = k.repeat_interleave(h // kv, dim=2).transpose(1, 2)           # (B, H, S, D)
    vh = v.repeat_interleave(h // kv, dim=2).transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) * (scale or 1 / math.sqrt(d))
    mask = torch.arange(s)[None, :] > (torch.arange(t)[:, None] + offset)
    probs = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return (probs @ vh).transpose(1, 2)                                # (B, T, H, Dv)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("t,s,h,kv,offset", [(6, 6, 4, 2, 0), (5, 5, 3, 3, 0), (3, 7, 6, 2, 4), (4, 4, 4, 1, 0)])
def test_causal_attention_function(backend, dtype, t, s, h, kv, offset):
    rng = np.random.default_rng(12)
    d = 8
    q, k, v = randn(rng, (2, t, h, d), dtype), randn(rng, (2, s, kv, d), dtype), randn(rng, (2, s, kv, d), dtype)
    check_fused(lambda q, k, v: nn.ops.causal_attention(q, k, v, offset),
                lambda q, k, v: nn.ops.causal_attention_simple(q, k, v, offset),
                lambda q, k, v: _torch_attention(q, k, v, offset), [q, k, v], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_causal_attention_function_with_narrower_value_heads(backend, dtype):
    rng = np.random.default_rng(18)
    q, k, v = randn(rng, (2, 5, 4, 12), dtype), randn(rng, (2, 5, 4, 12), dtype), randn(rng, (2, 5, 4, 6), dtype)
    check_fused(lambda q, k, v: nn.ops.causal_attention(q, k, v, 0, scale=0.2),
                lambda q, k, v: nn.ops.causal_attention_simple(q, k, v, 0, scale=0.2),
                lambda q, k, v: _torch_attention(q, k, v, 0, scale=0.2), [q, k, v], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_swiglu_function(backend, dtype):
    rng = np.random.default_rng(13)
    gate, up = randn(rng, (3, 4, 10), dtype, 3.0), randn(rng, (3, 4, 10), dtype)
    check_fused(nn.ops.swiglu, nn.ops.swiglu_simple, lambda a, b: torch.nn.functional.silu(a) * b,
                [gate, up], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_functions(backend, dtype):
    rng = np.random.default_rng(14)
    x = randn(rng, (2, 5, 12), dtype)
    w, b = randn(rng, (7, 12), dtype), randn(rng, (7,), dtype)
    check_fused(nn.ops.linear, nn.ops.linear_simple, lambda x, w, b: x @ w.T + b, [x, w, b], backend)
    w1, w2, w3 = randn(rng, (8, 12), dtype), randn(rng, (4, 12), dtype), randn(rng, (4, 12), dtype)
    check_fused(lambda x, *ws: nn.ops.linear_split(x, ws), lambda x, *ws: nn.ops.linear_split_simple(x, ws),
                lambda x, *ws: tuple(x @ w.T for w in ws), [x, w1, w2, w3], backend)
    wg, wu = randn(rng, (9, 12), dtype), randn(rng, (9, 12), dtype)
    check_fused(nn.ops.swiglu_linear, nn.ops.swiglu_linear_simple,
                lambda x, wg, wu: torch.nn.functional.silu(x @ wg.T) * (x @ wu.T), [x, wg, wu], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_split_with_an_unused_output(backend):
    rng = np.random.default_rng(15)
    x, w1, w2 = randn(rng, (4, 6), np.float64), randn(rng, (3, 6), np.float64), randn(rng, (2, 6), np.float64)
    check_fused(lambda x, a, b: nn.ops.linear_split(x, (a, b))[0],
                lambda x, a, b: nn.ops.linear_split_simple(x, (a, b))[0],
                lambda x, a, b: x @ a.T + 0 * (x @ b.T).sum(), [x, w1, w2], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_core_kernels_through_their_functions_on_numba(dtype):
    """Cross-entropy (with ignore_index), embedding's backward (index_add) and exact GELU (erf),
    run through the numba backend's kernels, against torch."""
    rng = np.random.default_rng(16)
    logits = randn(rng, (3, 5, 11), dtype, 3.0)
    targets = rng.integers(0, 11, size=(3, 5))
    targets[1, 2] = -100

    def ce(x):
        return mg.cross_entropy(x, mg.tensor(targets, backend="numba"))
    check_fused(ce, ce, lambda x: torch.nn.functional.cross_entropy(x.reshape(-1, 11),
                                                                    torch.tensor(targets).reshape(-1)),
                [logits], "numba")
    table = randn(rng, (7, 4), dtype)
    ids = rng.integers(0, 7, size=(3, 6))

    def emb(w):
        return mg.embedding(mg.tensor(ids, backend="numba"), w)
    check_fused(emb, emb, lambda w: torch.nn.functional.embedding(torch.tensor(ids), w), [table], "numba")
    x = randn(rng, (4, 9), dtype, 2.0)
    check_fused(lambda x: x.gelu(), lambda x: x.gelu(), lambda x: torch.nn.functional.gelu(x), [x], "numba")
