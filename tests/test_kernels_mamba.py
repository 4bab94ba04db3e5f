"""The Mamba kernels: each NumPy reference (the spec) against PyTorch autograd through the plain recurrence
(float64), each Numba twin against its reference (float32 and float64, forward and backward), and each
fused op against its ``*_simple`` composite on the numpy and strict backends."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from kernels.reference import KERNELS as REF
from nn import ops

torch = pytest.importorskip("torch")

FLOATS = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def close(ours, ref, dtype, what=""):
    """|ours - ref| <= tol * (|ref| + max|ref|)."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * max(float(np.abs(ref).max()), 1e-30), err_msg=what)


def numba_kernel(name):
    import kernels.cpu

    return kernels.cpu.KERNELS[name]


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def column_block(rng, shape, dtype, extra=5):
    """An array of ``shape`` whose rows are a column block of a wider array (as split projections are)."""
    wide = randn(rng, shape[:-1] + (shape[-1] + extra,), dtype)
    return wide[..., 2:2 + shape[-1]]


def t64(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


# ---- causal conv1d --------------------------------------------------------------------------------------

def torch_conv(x, w, b, silu):
    k = w.shape[1]
    y = torch.nn.functional.conv1d(x.transpose(1, 2), w[:, None, :], b, padding=k - 1, groups=w.shape[0])
    y = y[:, :, :x.shape[1]].transpose(1, 2)
    return torch.nn.functional.silu(y) if silu else y


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_reference_equals_torch(silu, bias):
    rng = np.random.default_rng(0)
    x, w, b = randn(rng, (2, 9, 6), np.float64), randn(rng, (6, 4), np.float64), randn(rng, (6,), np.float64)
    tx, tw, tb = t64(x), t64(w), (t64(b) if bias else None)
    y = torch_conv(tx, tw, tb, silu)
    g = randn(rng, y.shape, np.float64)
    (y * torch.tensor(g)).sum().backward()
    ours = REF["causal_conv1d_forward"](np, x, w, b if bias else None, silu)
    np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx, dw, db = REF["causal_conv1d_backward"](np, g, x, w, b if bias else None, silu)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert (db is None) == (not bias)
    if bias:
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("b,t,c,k,silu", [(2, 9, 40, 4, True), (1, 3, 7, 4, False), (3, 17, 5, 2, True),
                                          (2, 6, 8, 1, True)])
def test_conv_numba_equals_reference(dtype, b, t, c, k, silu):
    rng = np.random.default_rng(1)
    x, w, bias = column_block(rng, (b, t, c), dtype), randn(rng, (c, k), dtype), randn(rng, (c,), dtype)
    fwd, bwd = numba_kernel("causal_conv1d_forward"), numba_kernel("causal_conv1d_backward")
    y = fwd(x, w, bias, silu)
    close(y, REF["causal_conv1d_forward"](np, x, w, bias, silu), dtype, "y")
    g = column_block(rng, (b, t, c), dtype)
    for ours, ref, what in zip(bwd(g, x, w, bias, silu), REF["causal_conv1d_backward"](np, g, x, w, bias, silu),
                               ("dx", "dw", "dbias")):
        close(ours, ref, dtype, what)
    assert fwd(x.astype(np.float16), w.astype(np.float16), None, silu) is NotImplemented  # declined, not wrong


# ---- selective scan --------------------------------------------------------------------------------------

def scan_inputs(rng, bt, t, d, n, dtype):
    u, B, C = randn(rng, (bt, t, d), dtype), randn(rng, (bt, t, n), dtype), randn(rng, (bt, t, n), dtype)
    delta = (rng.random((bt, t, d)) * 0.5).astype(dtype)
    A = -(rng.random((d, n)) * 2 + 0.1).astype(dtype)
    return u, delta, A, B, C


def test_selective_scan_reference_equals_torch_recurrence():
    rng = np.random.default_rng(2)
    u, delta, A, B, C = scan_inputs(rng, 2, 11, 3, 4, np.float64)
    h0 = randn(rng, (2, 3, 4), np.float64)
    tu, td, tA, tB, tC = map(t64, (u, delta, A, B, C))
    h, ys = torch.tensor(h0), []
    for i in range(11):  # the definition, one step at a time
        h = torch.exp(td[:, i, :, None] * tA) * h + (td[:, i] * tu[:, i])[:, :, None] * tB[:, i, None, :]
        ys.append((h * tC[:, i, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    g = randn(rng, y.shape, np.float64)
    (y * torch.tensor(g)).sum().backward()
    ours, last, starts = REF["selective_scan_forward"](np, u, delta, A, B, C, h0, 4)
    np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last, h.detach().numpy(), rtol=1e-12, atol=1e-12)
    grads = REF["selective_scan_backward"](np, g, u, delta, A, B, C, starts, 4)
    for ours_g, ref_t in zip(grads, (tu, td, tA, tB, tC)):
        np.testing.assert_allclose(ours_g, ref_t.grad.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bt,t,d,n,chunk,with_h0", [(2, 37, 70, 5, 8, True), (1, 5, 3, 16, 64, False),
                                                    (3, 64, 64, 4, 16, False), (1, 1, 130, 2, 4, True)])
def test_selective_scan_numba_equals_reference(dtype, bt, t, d, n, chunk, with_h0):
    rng = np.random.default_rng(3)
    u, delta, A, B, C = scan_inputs(rng, bt, t, d, n, dtype)
    B, C = column_block(rng, (bt, t, n), dtype), column_block(rng, (bt, t, n), dtype)
    h0 = randn(rng, (bt, d, n), dtype) if with_h0 else None
    out = numba_kernel("selective_scan_forward")(u, delta, A, B, C, h0, chunk)
    ref = REF["selective_scan_forward"](np, u, delta, A, B, C, h0, chunk)
    for ours, r, what in zip(out, ref, ("y", "last state", "chunk starts")):
        close(ours, r, dtype, what)
    g = randn(rng, u.shape, dtype)
    for ours, r, what in zip(numba_kernel("selective_scan_backward")(g, u, delta, A, B, C, ref[2], chunk),
                             REF["selective_scan_backward"](np, g, u, delta, A, B, C, ref[2], chunk),
                             ("du", "ddelta", "dA", "dB", "dC")):
        close(ours, r, dtype, what)


# ---- SSD -------------------------------------------------------------------------------------------------

def ssd_inputs(rng, bt, t, r, h, p, g, n, dtype):
    x = randn(rng, (bt, t, r, h, p), dtype)
    a = -(rng.random((bt, t, h)) * 0.8).astype(dtype)
    return x, a, randn(rng, (bt, t, r, g, n), dtype), randn(rng, (bt, t, r, g, n), dtype)


@pytest.mark.parametrize("r,h,g", [(1, 4, 1), (1, 4, 2), (3, 4, 4), (2, 6, 3)])
def test_ssd_reference_equals_torch_recurrence(r, h, g):
    rng = np.random.default_rng(4)
    bt, t, p, n, chunk = 2, 13, 3, 5, 4   # 13 steps: three full chunks and one of a single step
    x, a, B, C = ssd_inputs(rng, bt, t, r, h, p, g, n, np.float64)
    h0 = randn(rng, (bt, h, p, n), np.float64)
    tx, ta, tB, tC = map(t64, (x, a, B, C))
    Bh, Ch = tB.repeat_interleave(h // g, dim=3), tC.repeat_interleave(h // g, dim=3)
    state, ys = torch.tensor(h0), []
    for i in range(t):  # the definition, one step at a time
        state = torch.exp(ta[:, i])[:, :, None, None] * state + torch.einsum("brhp,brhn->bhpn", tx[:, i], Bh[:, i])
        ys.append(torch.einsum("bhpn,brhn->brhp", state, Ch[:, i]))
    y = torch.stack(ys, 1)
    gy = randn(rng, y.shape, np.float64)
    (y * torch.tensor(gy)).sum().backward()
    ours, last, starts = REF["ssd_forward"](np, x, a, B, C, chunk, h0)
    np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(last, state.detach().numpy(), rtol=1e-11, atol=1e-11)
    for ours_g, ref_t in zip(REF["ssd_backward"](np, gy, x, a, B, C, chunk, starts), (tx, ta, tB, tC)):
        np.testing.assert_allclose(ours_g, ref_t.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bt,t,r,h,p,g,n,chunk,with_h0", [
    (2, 13, 1, 4, 3, 1, 5, 4, True),     # Mamba2, groups shared by all heads, a 1-step last chunk
    (2, 13, 2, 4, 3, 2, 5, 4, False),    # MIMO rank 2, two groups
    (1, 64, 1, 2, 16, 2, 8, 64, False),  # one full chunk
    (1, 1, 1, 3, 4, 1, 6, 8, True),      # one step (decode-sized)
    (2, 20, 3, 2, 5, 1, 4, 7, True),     # rank 3, chunk 7
    (2, 45, 2, 4, 6, 2, 5, 28, True),    # rank 2, chunks of 28 and 17 steps: causal products in 3 and 2 blocks
])
def test_ssd_numba_equals_reference(dtype, bt, t, r, h, p, g, n, chunk, with_h0):
    rng = np.random.default_rng(5)
    x, a, B, C = ssd_inputs(rng, bt, t, r, h, p, g, n, dtype)
    h0 = randn(rng, (bt, h, p, n), dtype) if with_h0 else None
    out = numba_kernel("ssd_forward")(x, a, B, C, chunk, h0)
    ref = REF["ssd_forward"](np, x, a, B, C, chunk, h0)
    for ours, rr, what in zip(out, ref, ("y", "last state", "chunk starts")):
        close(ours, rr, dtype, what)
    gy = randn(rng, x.shape, dtype)
    for ours, rr, what in zip(numba_kernel("ssd_backward")(gy, x, a, B, C, chunk, ref[2]),
                              REF["ssd_backward"](np, gy, x, a, B, C, chunk, ref[2]), ("dx", "da", "dB", "dC")):
        close(ours, rr, dtype, what)



@pytest.mark.parametrize("dtype", FLOATS)
def test_ssd_numba_without_blas_equals_reference(dtype, monkeypatch):
    """Where NumPy's OpenBLAS cannot be found, kernels/cpu/_gemm runs its loop nest for the same products."""
    import kernels.cpu.ssd as ssd_cpu

    monkeypatch.setattr(ssd_cpu, "blas_for", lambda dt: (0, 0))
    rng = np.random.default_rng(6)
    x, a, B, C = ssd_inputs(rng, 1, 45, 2, 4, 6, 2, 5, dtype)
    h0 = randn(rng, (1, 4, 6, 5), dtype)
    out, ref = ssd_cpu.ssd_forward(x, a, B, C, 28, h0), REF["ssd_forward"](np, x, a, B, C, 28, h0)
    for ours, rr, what in zip(out, ref, ("y", "last state", "chunk starts")):
        close(ours, rr, dtype, what)
    gy = randn(rng, x.shape, dtype)
    for ours, rr, what in zip(ssd_cpu.ssd_backward(gy, x, a, B, C, 28, ref[2]),
                              REF["ssd_backward"](np, gy, x, a, B, C, 28, ref[2]), ("dx", "da", "dB", "dC")):
        close(ours, rr, dtype, what)

# ---- the fused ops against their composites, on every backend --------------------------------------------

def _grads(fn, arrays, backend, dtype=np.float64):
    ts = [mg.tensor(a.astype(dtype), requires_grad=True, backend=backend) for a in arrays]
    out = fn(*ts)
    y = out[0] if isinstance(out, tuple) else out
    w = mg.tensor(np.random.default_rng(9).standard_normal(y.shape), dtype=dtype, backend=backend)
    (y * w).sum().backward()
    return y.numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "strict"])
def test_fused_ops_equal_their_composites(backend_name):
    rng = np.random.default_rng(6)
    cases = [
        (lambda x, w, b: ops.causal_conv1d(x, w, b, silu=True), lambda x, w, b: ops.causal_conv1d_simple(
            x, w, b, silu=True), [randn(rng, (2, 7, 5), np.float64), randn(rng, (5, 3), np.float64),
                                  randn(rng, (5,), np.float64)]),
        (lambda *a: ops.selective_scan(*a, chunk=3), ops.selective_scan_simple,
         list(scan_inputs(rng, 2, 7, 3, 4, np.float64))),
        (lambda *a: ops.ssd(*a, chunk=3), ops.ssd_simple, list(ssd_inputs(rng, 2, 7, 2, 4, 3, 2, 5, np.float64))),
        (ops.softplus, ops.softplus_simple, [randn(rng, (3, 4), np.float64, 3.0)]),
        (lambda x: ops.cumsum(x, axis=1), lambda x: mg.stack([x[:, :i + 1].sum(axis=1) for i in range(4)], axis=1),
         [randn(rng, (2, 4, 3), np.float64)]),
    ]
    for fused, simple, arrays in cases:
        y, g = _grads(fused, arrays, backend_name)
        y_ref, g_ref = _grads(simple, arrays, backend_name)
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
        for a, b in zip(g, g_ref):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_cos_sin_gradient_is_the_derivative():
    x = mg.tensor(np.linspace(-3, 3, 7), requires_grad=True, dtype=np.float64)
    assert mg.gradcheck(lambda v: ops.cos_sin(v)[0] * 2 + ops.cos_sin(v)[1] * 3, [x])
