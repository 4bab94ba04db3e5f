"""Reductions against torch.autograd: sum mean max min var std logsumexp over int, tuple,
None and negative axes, with and without keepdims, on both backends."""

import numpy as np
import pytest
import torch
from torch_parity import FLOATS, check, randn

import minigrad as mg

AXES = [None, 0, 1, -1, (0, 2), (-1, -3), (1,), (0, 1, 2)]


def _torch_dim(axis):
    return tuple(range(3)) if axis is None else axis


REDUCE = {  # name: (minigrad(x, axis, keepdims), torch(x, axis, keepdims))
    "sum": (lambda x, a, k: x.sum(axis=a, keepdims=k), lambda x, a, k: x.sum(dim=_torch_dim(a), keepdim=k)),
    "mean": (lambda x, a, k: mg.mean(x, a, k), lambda x, a, k: x.mean(dim=_torch_dim(a), keepdim=k)),
    "max": (lambda x, a, k: x.max(axis=a, keepdims=k), lambda x, a, k: torch.amax(x, dim=_torch_dim(a), keepdim=k)),
    "min": (lambda x, a, k: mg.min(x, a, k), lambda x, a, k: torch.amin(x, dim=_torch_dim(a), keepdim=k)),
    "var": (lambda x, a, k: x.var(axis=a, keepdims=k), lambda x, a, k: x.var(dim=_torch_dim(a), keepdim=k)),
    "var0": (lambda x, a, k: mg.var(x, a, k, correction=0),
             lambda x, a, k: torch.var(x, dim=_torch_dim(a), keepdim=k, correction=0)),
    "std": (lambda x, a, k: x.std(axis=a, keepdims=k), lambda x, a, k: x.std(dim=_torch_dim(a), keepdim=k)),
    "logsumexp": (lambda x, a, k: x.logsumexp(axis=a, keepdims=k),
                  lambda x, a, k: torch.logsumexp(x, dim=_torch_dim(a), keepdim=k)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduction(backend, dtype, keepdims, axis, name):
    ours, ref = REDUCE[name]
    a = randn((2, 3, 4), dtype, seed=7)
    check(lambda x: ours(x, axis, keepdims), lambda x: ref(x, axis, keepdims), [a], backend)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_max_min_split_gradient_among_ties(backend, name, axis):
    """Tied extremes share the gradient evenly, as torch.amax / amin do."""
    a = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, -1.0], [3.0, -1.0, 0.0]], np.float64)
    if name == "min":
        a = -a
    ours, ref = REDUCE[name]
    check(lambda x: ours(x, axis, False), lambda x: ref(x, axis if axis is not None else (0, 1), False),
          [a], backend)


def test_full_reduction_gives_0d(backend):
    x = mg.tensor(randn((2, 3)), backend=backend, requires_grad=True)
    for r in (x.sum(), x.mean(), x.max(), x.var(), x.logsumexp()):
        assert r.shape == ()


@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_with_minus_inf(backend, dtype):
    """Masked (-inf) entries, as attention scores have: finite rows stay exact."""
    a = randn((3, 4), dtype)
    a[0, 1:] = -np.inf
    a[2, 0] = -np.inf
    check(lambda x: x.logsumexp(axis=-1), lambda x: torch.logsumexp(x, dim=-1), [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_large_values_do_not_overflow(backend, dtype):
    a = randn((2, 5), dtype) * 10 + np.asarray(800 if dtype == np.float64 else 80, dtype)
    check(lambda x: x.logsumexp(axis=1, keepdims=True), lambda x: torch.logsumexp(x, 1, keepdim=True),
          [a], backend)


def test_reductions_of_non_contiguous_views(backend):
    a = randn((4, 5, 3), np.float64, seed=2)
    check(lambda x: x.transpose(0, 2).sum(axis=1) * x[:, ::2, :].max(axis=1).T,  # (3, 4) * (3, 4)
          lambda x: x.transpose(0, 2).sum(dim=1) * torch.amax(x[:, ::2, :], dim=1).T, [a], backend)
    check(lambda x: x.permute(2, 0, 1).var(axis=(-1, 0)), lambda x: x.permute(2, 0, 1).var(dim=(-1, 0)),
          [a], backend)


def test_reduction_result_reused(backend):
    """A normalization: the mean and std feed back into an expression with the input."""
    a = randn((3, 6), np.float64)
    check(lambda x: (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True), None, [a], backend)
