"""The ``*_simple`` composites of the core fused ops (softmax, log_softmax, logsumexp,
cross_entropy): built from primitive ops, they must give torch's values and gradients, and
the same values and gradients as the fused op they explain, on both backends."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_parity import FLOATS, assert_close, check, randn

import minigrad as mg


def _values_and_grads(fn, arrays, backend, seed=1):
    """fn's output and the gradient of every float input, for one random upstream gradient."""
    ts = [mg.tensor(a, backend=backend, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*ts)
    upstream = randn(out.shape, out.dtype, seed=seed)
    out.backward(mg.tensor(upstream, backend=backend))
    return out.numpy(), [t.grad.numpy() for t in ts if t.requires_grad]


def same_as_fused(simple, fused, arrays, backend):
    (out_s, grads_s), (out_f, grads_f) = (_values_and_grads(fn, arrays, backend) for fn in (simple, fused))
    dtype = arrays[0].dtype
    assert_close(out_s, out_f, dtype, "value: simple vs fused")
    for i, (gs, gf) in enumerate(zip(grads_s, grads_f)):
        assert_close(gs, gf, dtype, f"gradient of input {i}: simple vs fused")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_simple(backend, dtype, axis):
    a = randn((3, 4, 5), dtype) * 3
    check(lambda x: mg.softmax_simple(x, axis), lambda x: torch.softmax(x, dim=axis), [a], backend)
    check(lambda x: mg.log_softmax_simple(x, axis), lambda x: torch.log_softmax(x, dim=axis), [a], backend)
    same_as_fused(lambda x: mg.softmax_simple(x, axis), lambda x: x.softmax(axis), [a], backend)
    same_as_fused(lambda x: mg.log_softmax_simple(x, axis), lambda x: x.log_softmax(axis), [a], backend)


def test_softmax_simple_on_large_logits(backend):
    a = randn((3, 6), np.float32) * 50 + 500  # exp(500) overflows: the max shift must be there
    check(mg.softmax_simple, lambda x: torch.softmax(x, -1), [a], backend)
    check(mg.log_softmax_simple, lambda x: torch.log_softmax(x, -1), [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis,keepdims", [(-1, False), (0, True), ((0, 2), False), (None, False)])
def test_logsumexp_simple(backend, dtype, axis, keepdims):
    a = randn((3, 4, 5), dtype) * 4
    torch_axis = tuple(range(3)) if axis is None else axis
    check(lambda x: mg.logsumexp_simple(x, axis, keepdims), lambda x: torch.logsumexp(x, torch_axis, keepdims),
          [a], backend)
    same_as_fused(lambda x: mg.logsumexp_simple(x, axis, keepdims), lambda x: x.logsumexp(axis, keepdims),
                  [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_simple(backend, dtype, reduction):
    g = np.random.default_rng(0)
    logits = (g.standard_normal((2, 4, 7)) * 2).astype(dtype)
    targets = g.integers(0, 7, (2, 4))
    targets[0, 1] = targets[1, 3] = -100  # ignored

    def simple(x, t):
        return mg.cross_entropy_simple(x, t, reduction=reduction)

    check(simple, lambda x, t: F.cross_entropy(x.reshape(-1, 7), t.reshape(-1), reduction=reduction),
          [logits, targets], backend)
    t = mg.tensor(targets, backend=backend)
    same_as_fused(lambda x: simple(x, t), lambda x: mg.cross_entropy(x, t, reduction=reduction), [logits], backend)


def test_cross_entropy_simple_records_only_primitive_ops():
    x = mg.tensor(randn((3, 5), np.float64), requires_grad=True)
    loss = mg.cross_entropy_simple(x, mg.tensor(np.array([0, 4, 2])))
    seen, stack = set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        seen.add(fn.name)
        stack += [t.grad_fn for t in fn.inputs if t.grad_fn is not None]
    assert "CrossEntropy" not in seen and "LogSoftmax" not in seen and "LogSumExp" not in seen
    assert {"Exp", "Log", "Gather", "Sum"} <= seen
