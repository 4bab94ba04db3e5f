"""Matmul (NumPy's 1-D, batched and broadcasting rules), softmax, log_softmax, fused
cross-entropy and seeded dropout against torch.autograd, on both backends."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_parity import FLOATS, assert_close, check, randn

import minigrad as mg

MATMUL_SHAPES = [
    ((4,), (4,)),  # vec @ vec -> scalar
    ((4,), (4, 3)),  # vec @ mat
    ((3, 4), (4,)),  # mat @ vec
    ((2, 3, 4), (4,)),  # batched @ vec
    ((4,), (2, 4, 3)),  # vec @ batched
    ((3, 4), (4, 2)),
    ((2, 3, 4), (2, 4, 5)),  # batched
    ((2, 3, 4), (4, 5)),  # batched @ mat (the weight of a linear layer)
    ((3, 4), (2, 4, 5)),  # mat @ batched
    ((2, 1, 3, 4), (5, 4, 2)),  # batch dims broadcast: (2, 5, 3, 2)
    ((1, 3, 4), (2, 2, 4, 1)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(backend, dtype, shapes):
    a, b = randn(shapes[0], dtype, seed=1), randn(shapes[1], dtype, seed=2)
    check(lambda x, y: x @ y, None, [a, b], backend)
    check(mg.matmul, torch.matmul, [a, b], backend, no_grad=(0,))
    check(lambda x, y: x.matmul(y), None, [a, b], backend, no_grad=(1,))


def test_matmul_non_contiguous_and_reused(backend):
    a = randn((4, 3), np.float64)
    check(lambda x: x.T @ x, None, [a], backend)  # one tensor on both sides
    c = randn((2, 4, 6), np.float64, seed=4)
    check(lambda x: x[:, :, ::2].transpose(1, 2) @ x[..., 1::2], None, [c], backend)
    check(lambda x, w: x.transpose(0, 1) @ w.T, None, [c, randn((5, 6), np.float64, seed=5)], backend)


def test_matmul_with_numpy_operand(backend):
    a = randn((3, 4), np.float32)
    b = randn((4, 2), np.float32, seed=3)
    check(lambda x: x @ b, lambda x: x @ torch.from_numpy(b), [a], backend)


SOFTMAX_AXES = [-1, 0, 1]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", SOFTMAX_AXES)
def test_softmax_and_log_softmax(backend, dtype, axis):
    a = randn((3, 4, 5), dtype) * 3
    check(lambda x: x.softmax(axis), lambda x: torch.softmax(x, dim=axis), [a], backend)
    check(lambda x: mg.log_softmax(x, axis=axis), lambda x: torch.log_softmax(x, dim=axis), [a], backend)


def test_softmax_large_logits_and_masked_entries(backend):
    a = randn((3, 6), np.float32) * 50 + 500
    check(lambda x: x.softmax(), lambda x: torch.softmax(x, -1), [a], backend)
    check(lambda x: x.log_softmax(), lambda x: torch.log_softmax(x, -1), [a], backend)
    mask = np.triu(np.ones((3, 6), bool), 1)
    check(lambda x: x.masked_fill(mg.tensor(mask, backend=backend), float("-inf")).softmax(),
          lambda x: x.masked_fill(torch.from_numpy(mask), float("-inf")).softmax(-1), [a], backend)


def _ce_case(shape, n_classes, ignore=(), seed=0, idx_dtype=np.int64):
    g = np.random.default_rng(seed)
    logits = (g.standard_normal(shape + (n_classes,)) * 2)
    targets = g.integers(0, n_classes, shape).astype(idx_dtype)
    for pos in ignore:
        targets[pos] = -100
    return logits, targets


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=str)
def test_cross_entropy(backend, dtype, reduction, shape):
    logits, targets = _ce_case(shape, 5)
    c = logits.shape[-1]
    check(lambda x, t: mg.cross_entropy(x, t, reduction=reduction),
          lambda x, t: F.cross_entropy(x.reshape(-1, c), t.reshape(-1), reduction=reduction),
          [logits.astype(dtype), targets], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_ignore_index_mean_over_kept_targets(backend, dtype, reduction):
    logits, targets = _ce_case((2, 4), 7, ignore=[(0, 1), (1, 0), (1, 3)], seed=2, idx_dtype=np.int32)
    check(lambda x, t: mg.cross_entropy(x, t, reduction=reduction),
          lambda x, t: F.cross_entropy(x.reshape(-1, 7), t.reshape(-1).long(), reduction=reduction),
          [logits.astype(dtype), targets], backend)


def test_cross_entropy_custom_ignore_index_and_large_logits(backend):
    logits, targets = _ce_case((8,), 4, seed=3)
    logits = logits * 100
    targets[[2, 5]] = 3
    check(lambda x, t: mg.cross_entropy(x, t, ignore_index=3),
          lambda x, t: F.cross_entropy(x, t, ignore_index=3), [logits, targets], backend)


def test_cross_entropy_all_ignored_is_nan_like_torch(backend):
    logits, targets = _ce_case((3,), 4, ignore=[0, 1, 2])
    x = mg.tensor(logits, backend=backend, requires_grad=True)
    ref = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))
    ours = mg.cross_entropy(x, mg.tensor(targets, backend=backend))
    assert np.isnan(ref.item()) and np.isnan(ours.item())


def test_cross_entropy_shares_logits_with_other_terms(backend):
    logits, targets = _ce_case((4,), 3, seed=5)
    check(lambda x, t: mg.cross_entropy(x * 2, t) + (x ** 2).mean(),
          lambda x, t: F.cross_entropy(x * 2, t) + (x ** 2).mean(), [logits, targets], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_matches_torch_given_our_mask(backend, dtype, p):
    """The mask is ours (seeded); given it, output and gradient must equal x*mask/(1-p) in torch."""
    a = randn((6, 50), dtype, seed=3)
    x = mg.tensor(a, backend=backend, requires_grad=True)
    out = mg.dropout(x, p=p, generator=mg.Generator(7))
    mask = out.numpy() != 0  # x has no zeros, so the kept elements are exactly the non-zeros
    assert 0 < mask.mean() < 1
    t = torch.from_numpy(a.copy()).requires_grad_(True)
    ref = t * torch.from_numpy(mask) / (1 - p)
    assert_close(out.numpy(), ref.detach().numpy(), dtype, "dropout output")
    g = randn(a.shape, dtype, seed=4)
    out.backward(mg.tensor(g, backend=backend))
    ref.backward(torch.from_numpy(g))
    assert_close(x.grad.numpy(), t.grad.numpy(), dtype, "dropout gradient")


def test_dropout_seeding_rate_and_eval(backend):
    a = np.ones((200, 100), np.float32)
    x = mg.tensor(a, backend=backend)
    m1 = mg.dropout(x, 0.3, generator=mg.Generator(1)).numpy()
    m2 = mg.dropout(x, 0.3, generator=mg.Generator(1)).numpy()
    m3 = mg.dropout(x, 0.3, generator=mg.Generator(2)).numpy()
    np.testing.assert_array_equal(m1, m2)
    assert (m1 != m3).any()
    kept = (m1 != 0).mean()
    assert abs(kept - 0.7) < 0.02  # 20,000 draws: one standard deviation is 0.0032
    mg.manual_seed(3)
    d1 = mg.dropout(x, 0.3).numpy()
    mg.manual_seed(3)
    np.testing.assert_array_equal(d1, mg.dropout(x, 0.3).numpy())
    assert mg.dropout(x, 0.3, training=False) is x
    assert mg.dropout(x, 0.0) is x


LAYOUT_CASES = {  # leaves whose memory is F-ordered or a strided view, through typical layers
    "linear": (lambda x, w, b: mg.gelu(x @ w.T + b, approximate="tanh"),
               lambda x, w, b: F.gelu(x @ w.T + b, approximate="tanh"), [(4, 6), (5, 6), (5,)]),
    "attention_scores": (lambda q, k, v: ((q @ k.transpose(-1, -2)) * 0.5).softmax(-1) @ v, None,
                         [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
    "norm": (lambda x, w: (x - x.mean(-1, keepdims=True)) * (x.var(-1, keepdims=True, correction=0) + 1e-5).rsqrt()
             * w, None, [(3, 6), (6,)]),
    "reshape_and_index": (lambda x: x.reshape(-1)[::3] * x.T.flatten()[:8], None, [(4, 6)]),
    "join": (lambda x, y: mg.cat([x, y.T], axis=0).max(axis=0) + mg.stack([x, x], 1).sum(axis=1).mean(0),
             lambda x, y: torch.amax(torch.cat([x, y.T], 0), 0) + torch.stack([x, x], 1).sum(1).mean(0),
             [(3, 4), (4, 2)]),
}


@pytest.mark.parametrize("layout", ["F", "strided"])
@pytest.mark.parametrize("name", list(LAYOUT_CASES))
def test_non_contiguous_leaf_data(backend, layout, name):
    ours, ref, shapes = LAYOUT_CASES[name]
    check(ours, ref, [randn(s, np.float64, seed=i) for i, s in enumerate(shapes)], backend, layout=layout)


def test_cross_entropy_on_strided_logits(backend):
    logits, targets = _ce_case((6,), 5, ignore=[2], seed=4)
    check(lambda x, t: mg.cross_entropy(x, t), lambda x, t: F.cross_entropy(x, t), [logits, targets], backend,
          layout="strided")
