"""The CUDA kernels (kernels/cuda) against their NumPy twins, forward and backward: float32 within 1e-5
of the reference in float32 (TF32 does not touch these kernels), float64 within 1e-12, and float16 /
bfloat16 within their precision of the reference evaluated in float64 on the same inputs. Every case
asserts that the CUDA kernel itself ran (did not decline).

Each case runs twice: on the CPU, the very CUDA C on tests/cuda_emulator (g++, threads as fibers that
stop only at barriers), through the same launchers; and on a GPU, on CuPy (skipped, with the other GPU
cases, where there is none). The launch code's limits are checked in tests/test_cuda_sources.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_kernels_cpu import ATTENTION_CASES

from kernels.reference import KERNELS as REFERENCE

DTYPES = ["float32", "float64", "float16", "bfloat16"]
TOL = {"float32": 1e-5, "float64": 1e-12, "float16": 1e-2, "bfloat16": 3e-2}


class HostAsDevice:
    """The few CuPy calls the tests make, on NumPy arrays (copies, as a transfer to the device makes)."""

    ndarray = np.ndarray
    zeros = staticmethod(np.zeros)

    @staticmethod
    def asarray(a):
        return np.array(a, copy=True)

    @staticmethod
    def asnumpy(a):
        return np.array(a, copy=True)


@pytest.fixture(params=["emulator", "cupy"])
def cp(request, monkeypatch):
    if request.param == "cupy":
        import cupy

        return cupy
    import cuda_emulator

    if cuda_emulator.CXX is None:
        pytest.skip("g++ is not on this machine: the CUDA emulator cannot build")
    cuda_emulator.install(monkeypatch)
    return HostAsDevice


def _dtype(name):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def cuda(name):
    from kernels.cuda import KERNELS
    return KERNELS[name]


def ref(name, *args, **kwargs):
    return REFERENCE[name](np, *args, **kwargs)


def host(a):
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a).astype(np.float64)


def spec_inputs(arrays, dt):
    """The inputs the reference runs on: the same values, in float64 for half types (their exact values)."""
    wide = np.float64 if dt.itemsize < 4 else dt
    def floating(a):  # ml_dtypes' bfloat16 has dtype.kind "V", not "f"
        return isinstance(a, np.ndarray) and (a.dtype.kind == "f" or a.dtype.name == "bfloat16")
    return [a.astype(wide) if floating(a) else a for a in arrays]


def close(ours, theirs, dtname, what=""):
    ours, theirs = host(ours), host(theirs)
    assert ours.shape == theirs.shape, what
    tol = TOL[dtname]
    scale = float(np.abs(theirs).max()) if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(scale, 1e-30), err_msg=what)


def rand(rng, shape, dt, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dt)


def run_both(cp, name, host_args, dtname, **kw):
    """The CUDA kernel on device copies, the reference on the spec inputs; asserts the kernel did not decline."""
    dev = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in host_args]
    out = cuda(name)(*dev, **kw)
    assert out is not NotImplemented, f"{name} declined {dtname}"
    return out, ref(name, *spec_inputs(host_args, _dtype(dtname)), **kw)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7, 33), (5, 3), (2, 4096)])
def test_rms_norm(cp, dtname, shape):
    dt, rng = _dtype(dtname), np.random.default_rng(1)
    x, w, g = rand(rng, shape, dt), rand(rng, shape[-1:], dt), rand(rng, shape, dt)
    (y, rstd), (y_r, rstd_r) = run_both(cp, "rms_norm_forward", (x, w, 1e-5), dtname)
    close(y, y_r, dtname, "y")
    close(rstd, rstd_r, dtname, "rstd")
    rstd_in = rstd_r.astype(dt)
    (gx, gw), (gx_r, gw_r) = run_both(cp, "rms_norm_backward", (g, x, w, rstd_in), dtname)
    close(gx, gx_r, dtname, "gx")
    close(gw, gw_r, dtname, "gw")


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "column_block"])
def test_rope(cp, dtname, layout):
    dt, rng = _dtype(dtname), np.random.default_rng(2)
    b, t, h, d = 2, 5, 3, 8
    wide = rand(rng, (b, t, (h + 2) * d), dt)  # q as a column block of a qkv product
    x = wide[..., :h * d].reshape(b, t, h, d)
    dev = cp.asarray(wide)[..., :h * d].reshape(b, t, h, d) if layout == "column_block" else cp.asarray(x)
    cos, sin = rand(rng, (t, d), dt), rand(rng, (t, d), dt)
    for name in ("rope_forward", "rope_backward"):
        out = cuda(name)(dev, cp.asarray(cos), cp.asarray(sin))
        assert out is not NotImplemented
        close(out, ref(name, *spec_inputs([np.ascontiguousarray(x), cos, sin], dt)), dtname, name)


@pytest.mark.parametrize("dtname", DTYPES)
def test_swiglu_with_column_blocks_and_out(cp, dtname):
    dt, rng = _dtype(dtname), np.random.default_rng(5)
    gu = cp.asarray(rand(rng, (9, 26), dt, 6.0))
    gate, up = gu[:, :13], gu[:, 13:]
    g = rand(rng, (9, 13), dt)
    hg, hu = cp.asnumpy(gate), cp.asnumpy(up)
    out = cuda("swiglu_forward")(gate, up)
    assert out is not NotImplemented
    close(out, ref("swiglu_forward", *spec_inputs([hg, hu], dt)), dtname, "forward")
    buf = cp.zeros((9, 26), dtype=dt)
    res = cuda("swiglu_backward")(cp.asarray(g), gate, up, out=(buf[:, :13], buf[:, 13:]))
    assert res is not NotImplemented
    want = ref("swiglu_backward", *spec_inputs([g, hg, hu], dt))
    close(buf, np.concatenate(want, axis=1), dtname, "backward into one buffer")


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("b,t,s,h,kv,d,offset", ATTENTION_CASES + [(2, 130, 130, 4, 2, 64, 0)])
def test_flash_attention_forward_and_backward(cp, dtname, b, t, s, h, kv, d, offset):
    dt, rng = _dtype(dtname), np.random.default_rng(3)
    q, k, v = rand(rng, (b, t, h, d), dt), rand(rng, (b, s, kv, d), dt, 2.0), rand(rng, (b, s, kv, d), dt)
    g = rand(rng, (b, t, h, d), dt)
    scale = 1.0 / math.sqrt(d)
    (out, saved), (out_r, p_r) = run_both(cp, "attention_forward", (q, k, v, scale, offset), dtname)
    close(out, out_r, dtname, "out")
    grads = cuda("attention_backward")(cp.asarray(g), *(cp.asarray(a) for a in (q, k, v)), saved, scale, offset)
    assert grads is not NotImplemented
    want = ref("attention_backward", *spec_inputs([g, q, k, v], dt), p_r, scale, offset)
    for ours, theirs, what in zip(grads, want, ("dq", "dk", "dv")):
        close(ours, theirs, dtname, what)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("b,t,s,h,kv,d,dv,offset", [(1, 5, 7, 4, 2, 12, 8, 2), (2, 70, 70, 2, 1, 24, 16, 0),
                                                    (1, 9, 9, 2, 2, 8, 20, 0)])
def test_flash_attention_with_mla_value_heads(cp, dtname, b, t, s, h, kv, d, dv, offset):
    """MLA: value heads of Dv != D columns (T past a tile, grouped heads, an offset)."""
    dt, rng = _dtype(dtname), np.random.default_rng(17)
    q, k, v = rand(rng, (b, t, h, d), dt), rand(rng, (b, s, kv, d), dt, 2.0), rand(rng, (b, s, kv, dv), dt)
    g = rand(rng, (b, t, h, dv), dt)
    scale = 1.0 / math.sqrt(d)
    (out, saved), (out_r, p_r) = run_both(cp, "attention_forward", (q, k, v, scale, offset), dtname)
    close(out, out_r, dtname, "out")
    grads = cuda("attention_backward")(cp.asarray(g), *(cp.asarray(a) for a in (q, k, v)), saved, scale, offset)
    assert grads is not NotImplemented
    want = ref("attention_backward", *spec_inputs([g, q, k, v], dt), p_r, scale, offset)
    for ours, theirs, what in zip(grads, want, ("dq", "dk", "dv")):
        close(ours, theirs, dtname, what)


def test_flash_attention_on_strided_projections_and_the_reference_p_fallback(cp):
    rng = np.random.default_rng(4)
    qkv = cp.asarray(rand(rng, (2, 6, 8 * 8), np.float32))
    q, k, v = (qkv[..., a:b].reshape(2, 6, -1, 8) for a, b in ((0, 32), (32, 48), (48, 64)))
    out, saved = cuda("attention_forward")(q, k, v, 0.3, 0)
    out_r, p_r = ref("attention_forward", *(cp.asnumpy(a) for a in (q, k, v)), 0.3, 0)
    close(out, out_r, "float32")
    # the CUDA backward declines the reference's P: the backend then runs the reference backward
    assert cuda("attention_backward")(cp.asarray(out_r), q, k, v, cp.asarray(p_r), 0.3, 0) is NotImplemented


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("n,c", [(11, 17), (4, 1000), (3, 50257)])
def test_softmax_cross_entropy(cp, dtname, n, c):
    dt, rng = _dtype(dtname), np.random.default_rng(6)
    logits = rand(rng, (n, c), dt, 4.0)
    logits[0, :2] = (30.0, -30.0)
    targets = rng.integers(0, c, size=n)
    targets[n // 2] = -100
    targets[-1] = -1  # counted from the end, as the reference's indexing does
    (loss, n_valid, grad), (loss_r, n_valid_r, grad_r) = run_both(cp, "softmax_cross_entropy",
                                                                  (logits, targets, -100), dtname)
    assert n_valid == n_valid_r
    close(loss, loss_r, "float32" if dtname == "float32" else dtname, "loss")
    assert host(loss).dtype == np.float64 and cp.asarray(loss).dtype == (np.float64 if dtname == "float64" else
                                                                       np.float32)
    close(grad, grad_r, dtname, "grad")
    with pytest.raises(IndexError):
        cuda("softmax_cross_entropy")(cp.asarray(logits), cp.asarray(np.full(n, c)), -100)


@pytest.mark.parametrize("dtname", ["float32", "float64", "float16"])
def test_index_add_in_the_references_order(cp, dtname):
    dt, rng = _dtype(dtname), np.random.default_rng(8)
    ids = rng.integers(-10, 10, size=300)
    src, out = rand(rng, (300, 70), dt), rand(rng, (10, 70), dt)
    dev = cp.asarray(out)
    assert cuda("index_add")(dev, cp.asarray(ids), cp.asarray(src)) is not NotImplemented
    want = ref("index_add", out.astype(np.float64) if dtname == "float16" else out.copy(), ids,
               src.astype(np.float64) if dtname == "float16" else src)
    if dtname == "float32":
        np.testing.assert_array_equal(cp.asnumpy(dev), want)  # the same additions in the same order
    else:
        close(dev, want, dtname)


@pytest.mark.parametrize("dtname", DTYPES)
def test_erf(cp, dtname):
    dt = _dtype(dtname)
    x = np.concatenate([np.linspace(-7, 7, 301), [0.0, 1e-8, -30.0, 30.0]]).astype(dt).reshape(5, 61)
    out, want = run_both(cp, "erf", (x[:, ::2],), dtname)
    close(out, want, dtname)


@pytest.mark.parametrize("mixed", [None, "float16", "bfloat16"])
def test_fused_adamw_equals_the_reference_loop(cp, mixed):
    rng = np.random.default_rng(9)
    shapes = [(5000,), (3, 7), (1,), (4097,)]
    low = _dtype(mixed) if mixed else np.dtype(np.float32)
    p, m = [rand(rng, s, np.float32) for s in shapes], [rand(rng, s, np.float32) for s in shapes]
    v, g = [rand(rng, s, np.float32) ** 2 for s in shapes], [rand(rng, s, low) for s in shapes]
    dev = [[cp.asarray(a) for a in arrays] for arrays in (p, g, m, v)]
    copies = [cp.zeros(s, dtype=low) for s in shapes] if mixed else None
    args = (1e-3, 0.9, 0.95, 1e-8, 0.1, 7)
    assert cuda("adamw_step_multi")(*dev, *args, grad_scale=0.25, copies=copies) is None
    want = [[a.copy() for a in arrays] for arrays in (p, g, m, v)]
    ref_copies = [np.zeros(s, dtype=np.float64) for s in shapes] if mixed else None
    ref("adamw_step_multi", *want, *args, grad_scale=0.25, copies=ref_copies)
    for i in (0, 2, 3):
        for ours, theirs in zip(dev[i], want[i]):
            close(ours, theirs, "float32")
    if mixed:
        for ours, theirs in zip(copies, ref_copies):
            close(ours, theirs, mixed)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("b,t,c,k,silu,bias", [(2, 9, 40, 4, True, True), (1, 3, 7, 4, False, False),
                                               (3, 17, 5, 2, True, False), (1, 150, 33, 8, False, True)])
def test_causal_conv1d(cp, dtname, b, t, c, k, silu, bias):
    dt, rng = _dtype(dtname), np.random.default_rng(12)
    x, w, g = rand(rng, (b, t, c), dt), rand(rng, (c, k), dt, 0.5), rand(rng, (b, t, c), dt)
    bv = rand(rng, (c,), dt) if bias else None
    y, y_r = run_both(cp, "causal_conv1d_forward", (x, w, bv, silu), dtname)
    close(y, y_r, dtname, "y")
    grads, want = run_both(cp, "causal_conv1d_backward", (g, x, w, bv, silu), dtname)
    for ours, theirs, what in zip(grads, want, ("dx", "dw", "dbias")):
        assert (ours is None) == (theirs is None), what
        if theirs is not None:
            close(ours, theirs, dtname, what)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("bt,t,d,n,chunk,with_h0", [(2, 13, 37, 5, 4, True), (1, 5, 3, 16, 64, False),
                                                    (1, 3, 70, 20, 2, False)])
def test_selective_scan(cp, dtname, bt, t, d, n, chunk, with_h0):
    """Odd T (not a multiple of chunk), D past a warp (dead lanes), N in both state-size variants."""
    dt, rng = _dtype(dtname), np.random.default_rng(13)
    u, b_in, c_in = rand(rng, (bt, t, d), dt), rand(rng, (bt, t, n), dt), rand(rng, (bt, t, n), dt)
    delta = (rng.random((bt, t, d)) * 0.5).astype(dt)
    a = -(rng.random((d, n)) * 2 + 0.1).astype(dt)
    h0 = rand(rng, (bt, d, n), dt) if with_h0 else None
    out, want = run_both(cp, "selective_scan_forward", (u, delta, a, b_in, c_in, h0, chunk), dtname)
    for ours, theirs, what in zip(out, want, ("y", "last", "starts")):
        close(ours, theirs, dtname, what)
    g, starts = rand(rng, (bt, t, d), dt), want[2].astype(dt)
    grads, want = run_both(cp, "selective_scan_backward", (g, u, delta, a, b_in, c_in, starts, chunk), dtname)
    for ours, theirs, what in zip(grads, want, ("du", "ddelta", "dA", "dB", "dC")):
        close(ours, theirs, dtname, what)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("k,n_group,topk_group,rule", [(1, 1, 1, "max"), (3, 1, 1, "max"), (3, 4, 2, "max"),
                                                       (2, 4, 1, "top2"), (2, 8, 3, "top2")])
def test_moe_topk_with_ties_and_groups(cp, dtname, k, n_group, topk_group, rule):
    dt, rng = _dtype(dtname), np.random.default_rng(14)
    scores = np.concatenate([rand(rng, (20, 16), np.float32), rng.integers(0, 4, (20, 16)) / 4])  # many exact ties
    scores[-3:] = 0.5
    scores = scores.astype(dt)
    got = cuda("moe_topk")(cp.asarray(scores), k, n_group, topk_group, rule)
    assert got is not NotImplemented
    want = ref("moe_topk", scores, k, n_group, topk_group, rule)
    assert cp.asnumpy(got).dtype == np.int64
    np.testing.assert_array_equal(cp.asnumpy(got), want)


@pytest.mark.parametrize("capacity", [-1, 0, 3, 1000])
@pytest.mark.parametrize("n,k,e", [(50, 2, 9), (1, 1, 4), (300, 3, 5)])
def test_moe_sort_by_expert_with_empty_experts(cp, capacity, n, k, e):
    rng = np.random.default_rng(15)
    idx = rng.integers(0, e - 1, (n, k))  # the last expert gets nothing
    idx[: n // 3] = 1                     # a busy one, so capacities bite
    got = cuda("moe_sort_by_expert")(cp.asarray(idx), e, capacity)
    assert got is not NotImplemented
    for ours, theirs, what in zip(got, ref("moe_sort_by_expert", idx, e, capacity),
                                  ("order", "offsets", "slot_row", "load")):
        assert cp.asnumpy(ours).dtype == np.int64, what
        np.testing.assert_array_equal(cp.asnumpy(ours), theirs, err_msg=what)
    assert cuda("moe_sort_by_expert")(cp.asarray(idx), 1, capacity) is NotImplemented  # ids outside [0, E)


@pytest.mark.parametrize("dtname", DTYPES)
@pytest.mark.parametrize("capacity", [-1, 5])
def test_moe_gather_and_combine(cp, dtname, capacity):
    dt, rng = _dtype(dtname), np.random.default_rng(16)
    n, k, e, h = 23, 3, 6, 37
    order, _, slot_row, _ = ref("moe_sort_by_expert", rng.integers(0, e, (n, k)), e, capacity)
    x, g, w = rand(rng, (n, h), dt), rand(rng, (n, h), dt), rng.random((n, k)).astype(dt)
    ys = rand(rng, (order.size, h), dt)
    for name, args in [("moe_gather", (x, order, k)), ("moe_gather_backward", (ys, slot_row)),
                       ("moe_combine", (ys, slot_row, w)), ("moe_combine_backward", (g, ys, slot_row, w))]:
        out, want = run_both(cp, name, args, dtname)
        pairs = zip(out, want) if isinstance(want, tuple) else [(out, want)]
        for ours, theirs in pairs:
            close(ours, theirs, dtname, name)


def test_kernels_agree_when_each_blocks_threads_run_in_reverse(monkeypatch):
    """Another interleaving at the barriers (last thread first): a missing __syncthreads shows up as a
    difference between the two orders."""
    import cuda_emulator

    if cuda_emulator.CXX is None:
        pytest.skip("g++ is not on this machine: the CUDA emulator cannot build")
    cuda_emulator.install(monkeypatch)
    rng = np.random.default_rng(11)
    q, k, v = rand(rng, (2, 70, 4, 8), np.float32), rand(rng, (2, 75, 2, 8), np.float32), rand(rng, (2, 75, 2, 8),
                                                                                                 np.float32)
    g, x, w = rand(rng, (2, 70, 4, 8), np.float32), rand(rng, (9, 300), np.float32), rand(rng, (300,), np.float32)
    logits, targets = rand(rng, (5, 3000), np.float32), rng.integers(0, 3000, size=5)

    def everything():
        out, saved = cuda("attention_forward")(q, k, v, 0.3, 5)
        grads = cuda("attention_backward")(g, q, k, v, saved, 0.3, 5)
        y, rstd = cuda("rms_norm_forward")(x, w, 1e-5)
        gx, gw = cuda("rms_norm_backward")(x, x, w, rstd)
        loss, _, dlogits = cuda("softmax_cross_entropy")(logits, targets, -100)
        return [out, *grads, y, gx, gw, loss, dlogits]
    forward = everything()
    monkeypatch.setattr(cuda_emulator, "REVERSE", [True])
    for a, b in zip(forward, everything()):
        np.testing.assert_array_equal(a, b)


def test_mamba_and_moe_kernels_agree_when_each_blocks_threads_run_in_reverse(monkeypatch):
    """The new kernels with barriers or shuffles (conv1d's dw sums, the scan backward's warp sums, the
    per-expert prefix sums, combine's dot products), in the other thread order: the same bits."""
    import cuda_emulator

    if cuda_emulator.CXX is None:
        pytest.skip("g++ is not on this machine: the CUDA emulator cannot build")
    cuda_emulator.install(monkeypatch)
    rng = np.random.default_rng(18)
    x, w, g = rand(rng, (2, 19, 40), np.float32), rand(rng, (40, 4), np.float32), rand(rng, (2, 19, 40), np.float32)
    u, b_in, c_in = rand(rng, (2, 9, 37), np.float32), rand(rng, (2, 9, 4), np.float32), rand(rng, (2, 9, 4),
                                                                                                 np.float32)
    delta, a = (rng.random((2, 9, 37)) * 0.5).astype(np.float32), -rng.random((37, 4)).astype(np.float32)
    idx = rng.integers(0, 5, (300, 2))
    ys, weights, gt = rand(rng, (600, 9), np.float32), rand(rng, (300, 2), np.float32), rand(rng, (300, 9), np.float32)

    def everything():
        conv = cuda("causal_conv1d_backward")(g, x, w, w[:, 0], True)
        y, _, starts = cuda("selective_scan_forward")(u, delta, a, b_in, c_in, None, 4)
        scan = cuda("selective_scan_backward")(u, u, delta, a, b_in, c_in, starts, 4)
        order, offsets, slot_row, load = cuda("moe_sort_by_expert")(idx, 5, 100)
        combine = cuda("moe_combine_backward")(gt, ys, slot_row, weights)
        return [*conv, y, *scan, order, slot_row, *combine]
    forward = everything()
    monkeypatch.setattr(cuda_emulator, "REVERSE", [True])
    for first, second in zip(forward, everything()):
        np.testing.assert_array_equal(first, second)


def test_a_llama_training_step_through_every_cuda_kernel_equals_numpy(monkeypatch):
    """A backend of NumPy arrays whose table is kernels/cuda's, on the emulator: a tiny Llama's loss, every
    gradient and two AdamW steps (the fused multi-tensor update) equal the numpy backend's."""
    import cuda_emulator

    import minigrad as mg
    import nn
    from kernels.cuda import KERNELS as CUDA
    from minigrad.backend import Backend, register_backend

    if cuda_emulator.CXX is None:
        pytest.skip("g++ is not on this machine: the CUDA emulator cannot build")
    cuda_emulator.install(monkeypatch)
    register_backend(Backend("cuda-emulator", np, "cpu", kernels=CUDA))
    cfg = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 64, "max_seq_len": 16}
    ids = np.random.default_rng(0).integers(0, 64, (2, 13))
    results = {}
    for name in ("numpy", "cuda-emulator"):
        model = nn.build_model(cfg, backend=name, seed=3)
        opt = mg.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        losses = []
        for _ in range(2):
            loss = mg.cross_entropy(model(mg.tensor(ids[:, :-1], backend=name)), mg.tensor(ids[:, 1:], backend=name))
            loss.backward()
            grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        results[name] = losses, grads, model.state_dict()
    (l_ref, g_ref, w_ref), (l_cuda, g_cuda, w_cuda) = results["numpy"], results["cuda-emulator"]
    np.testing.assert_allclose(l_cuda, l_ref, rtol=1e-6)
    for n in g_ref:
        close(g_cuda[n], g_ref[n], "float32", n)
        # Adam divides by sqrt(v): where a gradient is ~0, its last-bit differences move the weight by up
        # to ~lr * 1e-4, so the weights get an absolute tolerance of 1e-5 (lr is 1e-2)
        np.testing.assert_allclose(w_cuda[n], w_ref[n], rtol=1e-5, atol=1e-5, err_msg=n)
