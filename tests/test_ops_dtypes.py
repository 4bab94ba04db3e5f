"""dtype rules, checked against torch's: float32 by default, float64 and float16 kept, Python
and NumPy scalars never upcast a tensor, int tensors meeting floats become float32, int index
tensors and bool masks work. Gradients come back in each input's own dtype."""

import numpy as np
import pytest
import torch
from torch_parity import check, randn, torch_dtype

import minigrad as mg


def test_defaults_are_float32_and_int64(backend):
    assert mg.tensor([1.0, 2.0], backend=backend).dtype == np.float32
    assert mg.tensor(3.5, backend=backend).dtype == np.float32
    assert mg.tensor([1, 2], backend=backend).dtype == np.int64
    assert mg.tensor([True, False], backend=backend).dtype == np.bool_
    for t in (mg.zeros(2, 3, backend=backend), mg.ones((2,), backend=backend), mg.randn(2, backend=backend),
              mg.rand(2, backend=backend), mg.full((2,), 1.5, backend=backend), mg.empty(2, backend=backend),
              mg.eye(2, backend=backend), mg.arange(0.0, 1.0, 0.5, backend=backend)):
        assert t.dtype == np.float32
    assert mg.arange(4, backend=backend).dtype == np.int64
    assert mg.randint(0, 5, (3,), backend=backend).dtype == np.int64


def test_numpy_arrays_keep_their_dtype(backend):
    for dt in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_):
        assert mg.tensor(np.zeros(2, dt), backend=backend).dtype == dt
    assert mg.tensor([1.0], dtype=mg.float64, backend=backend).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_non_default_float_dtype_survives_an_mlp_step(backend, dtype):
    """float64 stays float64 and float16 works end to end: values and gradients in that dtype. The one
    exception: cross-entropy of float16 logits is summed, and returned, in float32 (mixed precision's rule
    that losses accumulate in float32); its gradient still comes back in float16."""
    g = np.random.default_rng(0)
    x = mg.tensor(g.standard_normal((4, 3)).astype(dtype), backend=backend)
    w = mg.tensor(g.standard_normal((3, 5)).astype(dtype), backend=backend, requires_grad=True)
    b = mg.tensor(np.zeros(5, dtype), backend=backend, requires_grad=True)
    h = (x @ w + b).relu() * 0.5 + 1
    loss = mg.cross_entropy(h.softmax(-1).log() - h.mean(), mg.tensor([0, 1, 2, 3], backend=backend))
    assert h.dtype == dtype and loss.dtype == (np.float32 if dtype == np.float16 else dtype)
    loss.backward()
    assert w.grad.dtype == dtype and b.grad.dtype == dtype
    assert np.isfinite(w.grad.numpy()).all()


def test_float16_matches_torch_loosely(backend):
    a = randn((3, 4), np.float16, seed=1)
    b = randn((4, 2), np.float16, seed=2)
    check(lambda x, y: (x @ y).tanh() * 2.0 + x.sum(axis=1, keepdims=True), None, [a, b], backend)


SCALARS = [0.5, 2, np.float64(0.5), np.float32(0.5), np.int64(3), np.array(0.5), True]


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_scalars_never_upcast_a_float_tensor(backend, dtype, s):
    x = mg.tensor(np.ones((2, 2), dtype), backend=backend, requires_grad=True)
    results = [x + s, s + x, x - s, s - x, x * s, s * x, x / s, s / x, x ** s, mg.maximum(x, s),
               mg.minimum(x, s), mg.where(x > 0, x, s), x.masked_fill(x > 0, s)]
    if not isinstance(s, np.ndarray):
        results += [x.clip(s, s + 1), x.clip(max=s)]
    for r in results:
        assert r.dtype == dtype, f"{r!r} from {s!r}"
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("expr", ["x * 0.5", "0.5 * x", "x + 1.5", "x - np.float64(1.5)", "x / 2", "2 / x",
                                  "x / np.int64(2)", "x ** 0.5", "x.float()"])
def test_int_tensor_with_float_gives_float32(backend, expr):
    x = mg.tensor(np.array([1, 2, 4], np.int64), backend=backend)
    t = torch.tensor([1, 2, 4])
    ours = eval(expr, {"x": x, "np": np})
    ref = eval(expr, {"x": t, "np": np})
    assert ours.dtype == np.float32 and ref.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6)


@pytest.mark.parametrize("expr", ["x + 1", "x * 3", "x - x", "x ** 2", "-x"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_int_arithmetic_stays_int(backend, expr, dtype):
    x = mg.tensor(np.array([1, 2, 4], dtype), backend=backend)
    ref = eval(expr, {"x": torch.from_numpy(np.array([1, 2, 4], dtype))})
    ours = eval(expr, {"x": x})
    assert ours.dtype == dtype and ref.dtype == torch_dtype(dtype)
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())


def test_int_tensor_meets_float_tensor(backend):
    i = mg.tensor(np.array([1, 2, 3]), backend=backend)
    x = mg.tensor(np.array([0.5, 1.0, 2.0], np.float32), backend=backend, requires_grad=True)
    for r in (i * x, x + i, i / x, x - i):
        assert r.dtype == np.float32
    (i * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])
    assert x.grad.dtype == np.float32


def test_mixed_float_widths_promote_and_grads_keep_input_dtype(backend):
    a = randn((2, 3), np.float32, seed=1)
    b = randn((2, 3), np.float64, seed=2)
    check(lambda x, y: x * y + x, None, [a, b], backend)  # torch: float64 result


def test_pow_scalar_edge_cases(backend):
    """x ** 0 has zero gradient everywhere (also at 0); integer powers of 0 and negatives."""
    a = np.array([0.0, -1.5, 2.0, 0.0], np.float64)
    for p in (0, 1, 2, 3, np.float32(2.0), np.int64(3)):
        check(lambda x, p=p: x ** p, lambda x, p=p: x ** (p.item() if isinstance(p, np.generic) else p),
              [a], backend)


def test_comparisons_give_bool_and_record_no_graph(backend):
    x = mg.tensor(randn((2, 3)), backend=backend, requires_grad=True)
    for m in (x > 0, x >= 0.5, x < x * 2, x <= 0, x == x, x != 0, ~(x > 0), (x > 0) & (x < 1), (x > 0) | (x < -1)):
        assert m.dtype == np.bool_ and not m.requires_grad and m.grad_fn is None


@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64, np.uint8])
def test_integer_index_dtypes(backend, idx_dtype):
    a = randn((5, 3), np.float64)
    idx = np.array([4, 0, 4], idx_dtype)
    check(lambda x, i: x[i] + x.index_select(0, i) + mg.embedding(i, x),
          lambda x, i: x[i.long()] * 3, [a, idx], backend)


def test_bool_mask_rules(backend):
    x = mg.tensor(randn((2, 3)), backend=backend)
    with pytest.raises(TypeError, match="bool"):
        x.masked_fill(mg.tensor(np.ones((2, 3)), backend=backend), 0.0)
    with pytest.raises(TypeError, match="bool"):
        mg.where(mg.tensor(np.ones((2, 3), np.int64), backend=backend), x, 0.0)
    with pytest.raises(TypeError, match="integers"):
        mg.index_select(x, 0, mg.tensor(np.array([0.0]), backend=backend))
    with pytest.raises(TypeError, match="floating"):
        mg.tensor([1, 2], backend=backend, requires_grad=True)


def test_astype_to_int_detaches(backend):
    x = mg.tensor(np.array([1.7, -2.2]), backend=backend, requires_grad=True)
    i = x.astype(np.int64)
    assert i.dtype == np.int64 and not i.requires_grad
    np.testing.assert_array_equal(i.numpy(), torch.tensor([1.7, -2.2]).long().numpy())
