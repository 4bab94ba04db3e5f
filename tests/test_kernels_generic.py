"""The numba backend's threaded generic kernels (kernels/cpu/elementwise.py, activations.py, reduce.py, softmax.py)
against their NumPy twins (kernels/reference), on arrays spanning several parallel blocks, with the
edge values (inf, NaN, huge and tiny arguments) and the layouts each one declines. The ops that call
them are held to torch on the "numba-kernels" backend (tests/conftest.py), at every size."""

import math

import numpy as np
import pytest

import minigrad as mg
from kernels.cpu import _layout as cpu_layout
from kernels.cpu import activations as cpu_act
from kernels.cpu import elementwise as cpu_ew
from kernels.cpu import reduce as cpu_reduce
from kernels.cpu import softmax as cpu_softmax
from kernels.reference import activations as ref_act
from kernels.reference import elementwise as ref_ew
from kernels.reference import reduce as ref_reduce
from kernels.reference import softmax as ref_softmax

FLOATS = [np.float32, np.float64]
ULPS = {np.dtype(np.float32): 4e-7, np.dtype(np.float64): 1e-15}  # relative: a few ulp
SHAPE = (3, 11_000)  # 33,000 elements: three of the kernels' 16,384-element blocks


def data(dtype, shape=SHAPE, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def close(ours, ref, dtype, rel=None, atol=None):
    rel = ULPS[np.dtype(dtype)] if rel is None else rel
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(ours[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])  # same infinities
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=rel, atol=rel * 1e-3 if atol is None else atol)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["same", "row", "row_2d", "scalar", "column", "row_left", "scalar_left",
                                    "column_left"])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_kernels(op, layout, dtype):
    a, other = data(dtype), data(dtype, seed=1)
    b = {"same": other, "row": other[0], "row_2d": other[:1], "scalar": other[0, :1].reshape(()),
         "column": other[:, :1].copy(), "row_left": other[0], "scalar_left": other[0, :1],
         "column_left": other[:, 1:2].copy()}[layout]
    args = (b, a) if layout.endswith("_left") else (a, b)
    close(getattr(cpu_ew, op)(*args), getattr(ref_ew, op)(np, *args), dtype, rel=0 if op != "div" else None)


def test_binary_kernels_decline_what_they_do_not_handle():
    a = data(np.float32)
    assert cpu_ew.add(a, a.astype(np.float64)) is NotImplemented  # mixed dtypes
    assert cpu_ew.add(a[:, ::2], a[:, ::2]) is NotImplemented  # strided
    assert cpu_ew.mul(a[None], a[:, :1].copy()) is NotImplemented  # a column that broadcasts over a new axis too
    assert cpu_ew.add(a.astype(np.float16), a.astype(np.float16)) is NotImplemented
    assert cpu_ew.add(a.astype(np.int64), a.astype(np.int64)) is NotImplemented


def broadcast_views(dtype, shape=SHAPE):
    """Gradients as sums and means hand them on: stride-0 views of one value, of one row, of one column."""
    return {"scalar": np.broadcast_to(np.asarray(1.5, dtype), shape),
            "row": np.broadcast_to(data(dtype, (shape[-1],), seed=7), shape),
            "column": np.broadcast_to(data(dtype, shape[:-1] + (1,), seed=8), shape)}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["scalar", "row", "column"])
def test_kernels_take_a_broadcast_gradient_as_it_comes(kind, dtype):
    g = broadcast_views(dtype)[kind]
    a, y = data(dtype), np.tanh(data(dtype, seed=3))
    dense = cpu_layout.dense(g)
    assert dense.flags.c_contiguous and np.array_equal(dense, g)
    for op in ("add", "sub", "mul", "div"):  # either side
        close(getattr(cpu_ew, op)(g, a), getattr(ref_ew, op)(np, g, a), dtype, rel=None if op == "div" else 0)
        close(getattr(cpu_ew, op)(a, g), getattr(ref_ew, op)(np, a, g), dtype, rel=None if op == "div" else 0)
    for op in ("tanh_backward", "sigmoid_backward"):
        close(getattr(cpu_ew, op)(g, y), getattr(ref_ew, op)(np, g, y), dtype)
    close(cpu_ew.silu_backward(g, a, y), ref_ew.silu_backward(np, g, a, y), dtype)
    close(cpu_act.relu_backward(g, a), ref_act.relu_backward(np, g, a), dtype, rel=0)
    close(cpu_act.gelu_backward(g, a), cpu_act.gelu_backward(dense, a), dtype, rel=0)  # (held to the twin above)
    p = ref_softmax.softmax_forward(np, a)
    rel = 2e-6 if dtype == np.float32 else 2e-14  # the backward's g - sum(g p) cancels: as in test_softmax_kernels
    close(cpu_softmax.softmax_backward(g, p), ref_softmax.softmax_backward(np, g, p), dtype, rel * 10,
          rel * float(np.abs(g).sum(axis=-1).max()))


def test_broadcast_gradients_the_kernels_decline():
    a = data(np.float32, (3, 4, 2750))
    middle = np.broadcast_to(a[:, :1], a.shape)  # a sum over a middle axis: no scalar, row or column
    assert cpu_layout.dense(middle) is None
    assert cpu_ew.mul(middle, a) is NotImplemented and cpu_ew.tanh_backward(middle, a) is NotImplemented
    assert cpu_ew.add(middle, middle) is NotImplemented  # both strided


EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-4, 88.0, 89.0, -87.5, -104.0, 500.0, -500.0, np.inf, -np.inf,
                  np.nan, 1e-39, 20.0, -20.0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", ["exp", "log", "tanh", "sigmoid"])
def test_unary_kernels(op, dtype):
    a = np.concatenate([data(dtype).reshape(-1), EDGES.astype(dtype)])
    if op == "log":  # positive numbers over many decades, and the edges (log of <= 0 is -inf or NaN)
        a = np.concatenate([np.exp(data(np.float64, scale=20.0)).reshape(-1).astype(dtype), EDGES.astype(dtype)])
    with np.errstate(all="ignore"):
        ref = getattr(ref_ew, op)(np, a)
    # sigmoid is 0.5 (1 + tanh(a/2)) in both: near 0 its error is absolute, an ulp of 1
    atol = (2.4e-7 if dtype == np.float32 else 4e-16) if op == "sigmoid" else None
    close(getattr(cpu_ew, op)(a), ref, dtype, rel=2e-6 if dtype == np.float32 else None, atol=atol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_silu_and_activation_backward_kernels(dtype):
    a, g = data(dtype), data(dtype, seed=2)
    out, s = cpu_ew.silu_forward(a)
    ref_out, ref_s = ref_ew.silu_forward(np, a)
    rel = 2e-6 if dtype == np.float32 else None
    atol = 2.4e-7 if dtype == np.float32 else 4e-16  # the sigmoid's error near 0 is absolute (see above)
    close(out, ref_out, dtype, rel, atol * 10), close(s, ref_s, dtype, rel, atol)
    out_only, none = cpu_ew.silu_forward(a, False)
    assert none is None and np.array_equal(out_only, out)
    y = np.tanh(a)
    close(cpu_ew.tanh_backward(g, y), ref_ew.tanh_backward(np, g, y), dtype)
    close(cpu_ew.sigmoid_backward(g, s), ref_ew.sigmoid_backward(np, g, s), dtype)
    close(cpu_ew.silu_backward(g, a, s), ref_ew.silu_backward(np, g, a, s), dtype)
    assert cpu_ew.tanh_backward(g, y[:, ::2].copy()) is NotImplemented  # shapes differ


@pytest.mark.parametrize("dtype", FLOATS)
def test_relu_kernels(dtype):
    a = np.concatenate([data(dtype).reshape(-1), EDGES.astype(dtype)])
    g = np.random.default_rng(5).standard_normal(a.shape).astype(dtype)
    y = cpu_act.relu(a)
    close(y, ref_act.relu(np, a), dtype, rel=0)  # exact, NaN included
    close(cpu_act.relu_backward(g, y), ref_act.relu_backward(np, g, y), dtype, rel=0)
    assert cpu_act.relu(a[::2]) is NotImplemented and cpu_act.relu_backward(g, y.astype(np.float16)) is NotImplemented


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("tanh_approx", [False, True])
def test_gelu_kernels(dtype, tanh_approx):
    a = np.concatenate([data(dtype).reshape(-1), EDGES[np.abs(EDGES) < 1e3], np.linspace(-12, 8, 999)]).astype(dtype)
    g = np.random.default_rng(6).standard_normal(a.shape).astype(dtype)
    # The twin evaluated in float64 on the same inputs: in float32 the twin's own 1 + erf (or 1 + tanh)
    # cancels for x << 0, which the kernel's erfc and sigmoids do not, so it is held to float64 instead.
    a64, g64 = a.astype(np.float64), g.astype(np.float64)
    with np.errstate(all="ignore"):
        ref_y = ref_act.gelu(np, a64, tanh_approx).astype(dtype)
        ref_dx = ref_act.gelu_backward(np, g64, a64, tanh_approx).astype(dtype)
    rel, atol = (3e-6, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)  # (float64: the twin's erf is ~1e-13)
    close(cpu_act.gelu(a, tanh_approx), ref_y, dtype, rel, atol)
    close(cpu_act.gelu_backward(g, a, tanh_approx), ref_dx, dtype, rel, atol)
    assert cpu_act.gelu(a.astype(np.float16)) is NotImplemented
    assert cpu_act.gelu_backward(g[:10], a) is NotImplemented  # shapes differ


def test_float32_normal_cdf_is_relative_even_in_the_far_left_tail():
    """Phi(x) = erfc(-x / sqrt 2) / 2 against math.erfc, relative down to x = -12 (Phi = 2e-33), where
    1 + erf(x / sqrt 2) has no correct digit left. The bound grows with x^2: exp(-x^2 / 2) inherits the
    float32 rounding of x^2 (relative 6e-8, so an absolute 4e-6 in the exponent at x = -12)."""
    x = np.linspace(-12, 6, 40_001).astype(np.float32)
    x = x[x != 0]
    ours = cpu_act.gelu(x).astype(np.float64) / x  # x Phi(x) / x
    exact = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x])
    assert np.all(np.abs(ours / exact - 1) <= 5e-7 * (1 + x.astype(np.float64) ** 2 / 2))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,axes", [((3, 11_000), (0, 1)), ((3, 11_000), (1,)), ((3, 11_000), (0,)),
                                        ((2, 3, 5_000), (1, 2)), ((2, 3, 5_000), (0, 1)), ((70_000,), (0,)),
                                        ((5, 1), (0,)), ((1, 7), (1,))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_max_kernels(dtype, shape, axes, keepdims):
    a = data(dtype, shape) + 1.0  # a nonzero mean: a sum that drifts would show
    ours, ref = cpu_reduce.sum(a, axes, keepdims), ref_reduce.sum(np, a, axes, keepdims)
    exact = a.astype(np.float64).sum(axis=axes, keepdims=keepdims)
    scale = np.abs(a).astype(np.float64).sum(axis=axes, keepdims=keepdims)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14  # of the sum of |a|: NumPy's pairwise sum meets it too
    assert np.all(np.abs(ours - exact) <= tol * scale) and np.all(np.abs(ref - exact) <= tol * scale)
    np.testing.assert_array_equal(cpu_reduce.max(a, axes, keepdims), ref_reduce.max(np, a, axes, keepdims))


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_kernel_is_nan_where_numpy_is_and_keeps_infinities(dtype):
    a = data(dtype, (4, 9_000))
    a[1, 123], a[2, 8_000], a[3, 5] = np.nan, np.inf, -np.inf
    for axes in [(1,), (0,), (0, 1)]:
        np.testing.assert_array_equal(cpu_reduce.max(a, axes), ref_reduce.max(np, a, axes))
    assert cpu_reduce.sum(a[:, ::2], (1,)) is NotImplemented and cpu_reduce.max(a, ()) is NotImplemented
    assert cpu_reduce.sum(data(dtype, (2, 3, 4)), (1,)) is NotImplemented  # a middle axis


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(64, 4096), (2, 3, 700), (5, 1)])
def test_softmax_kernels(dtype, shape):
    x, g = data(dtype, shape, scale=5.0), data(dtype, shape, seed=3)
    x.reshape(-1, shape[-1])[0, :2] = -np.inf  # masked entries
    rel = 2e-6 if dtype == np.float32 else 2e-14
    # Where log_softmax (x - max - lse) or a backward (g - sum) cancels to near 0, the error is absolute: an
    # ulp of the terms (|x - max| up to ~40 here; sum(|g|) over a row)
    fwd_atol, bwd_atol = rel * 40, rel * float(np.abs(g).sum(axis=-1).max())
    y = cpu_softmax.softmax_forward(x)
    with np.errstate(invalid="ignore"):  # (5, 1): the masked row is all -inf, NaN in both
        close(y, ref_softmax.softmax_forward(np, x), dtype, rel)
    close(cpu_softmax.softmax_backward(g, y), ref_softmax.softmax_backward(np, g, y), dtype, rel * 10, bwd_atol)
    ly = cpu_softmax.log_softmax_forward(x)
    with np.errstate(invalid="ignore"):
        close(ly, ref_softmax.log_softmax_forward(np, x), dtype, rel, fwd_atol)
    close(cpu_softmax.log_softmax_backward(g, ly), ref_softmax.log_softmax_backward(np, g, ly), dtype, rel * 10,
          bwd_atol)


def test_softmax_kernels_give_nan_rows_where_the_reference_does():
    x = data(np.float32, (4, 50))
    x[1, 3], x[2] = np.nan, -np.inf
    with np.errstate(invalid="ignore"):
        for fwd in ("softmax_forward", "log_softmax_forward"):
            close(getattr(cpu_softmax, fwd)(x), getattr(ref_softmax, fwd)(np, x), np.float32, 2e-6)
    assert cpu_softmax.softmax_forward(x[:, ::2]) is NotImplemented


def test_ops_call_the_kernels_only_from_the_threshold_on(monkeypatch):
    numba = mg.get_backend("numba")
    calls = []
    real = numba.kernel("exp")
    monkeypatch.setitem(numba._bound, "exp", lambda a: calls.append(a.size) or real(a))
    small = mg.tensor(np.ones(numba.kernel_min_size - 1, np.float32), backend="numba")
    large = mg.tensor(np.ones(numba.kernel_min_size, np.float32), backend="numba")
    small.exp(), large.exp()
    assert calls == [numba.kernel_min_size]
    assert mg.get_backend("numpy").kernel_min_size > 1 << 60  # the numpy backend stays plain NumPy


def test_softmax_calls_the_numba_row_kernels_at_every_size(monkeypatch):
    calls = []
    for name in ("numba", "numpy"):
        backend = mg.get_backend(name)
        for kernel in ("softmax_forward", "softmax_backward"):
            real = backend.kernel(kernel)
            monkeypatch.setitem(backend._bound, kernel, lambda *a, real=real, k=kernel: calls.append(k) or real(*a))
        x = mg.tensor(np.arange(8, dtype=np.float32).reshape(2, 4), requires_grad=True, backend=name)
        (x.softmax(-1) * x).sum().backward()
        x.softmax(0)  # not the last axis: NumPy's calls
    assert calls == ["softmax_forward", "softmax_backward"]  # the numba backend's, once each; numpy never
    assert mg.get_backend("numba").row_kernel_min_size == 0
