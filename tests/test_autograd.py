"""The autograd engine: accumulation, retain_graph, retain_grad, hooks, no_grad, requires_grad
propagation, detach, deep graphs and explicit seeds. Expected gradients come from torch or
from hand-derived calculus, never from minigrad itself."""

import numpy as np
import pytest
import torch
from torch_parity import check, randn

import minigrad as mg


def leaf(a, backend, grad=True):
    return mg.tensor(np.asarray(a, np.float64), backend=backend, requires_grad=grad)


def tleaf(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


def test_diamond_through_non_leaf_nodes(backend):
    """An intermediate feeding several consumers (and one consumer feeding another) must get
    the sum of all their gradients before its own backward runs (topological order)."""
    a = randn((3,), np.float64, seed=1)
    check(lambda x: (lambda b: b + b * 2)(x.exp()), None, [a], backend)  # b feeds Add directly and via Mul
    check(lambda x: (lambda b: b * 2 + b)(x.exp()), None, [a], backend)

    def f(x):
        b = x.exp()
        c = b * 2
        d = c.tanh() + b  # b reaches d directly and through c
        return (d * c).sum() + b.sum()
    check(f, None, [a], backend)

    def g(x):  # a chain whose nodes are also all consumed by the last one
        h = [x]
        for _ in range(4):
            h.append(h[-1] * 1.5 + h[0].exp())
        total = h[0]
        for t in h[1:]:
            total = total * 0.5 + t
        return total.sum()
    check(g, None, [a], backend)


def test_accumulation_over_multiple_uses_and_backward_calls(backend):
    x = leaf([1.0, -2.0, 3.0], backend)
    (x * x).sum().backward()  # 2x
    (x * 3).sum().backward()  # + 3
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0, 9.0])
    x.zero_grad()
    assert x.grad is None
    (x + x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_first_gradient_is_not_aliased_by_later_accumulation(backend):
    """A leaf's first grad may alias an array held elsewhere; accumulating must not write into it."""
    x = leaf([1.0, 2.0], backend)
    y = leaf([0.5, 0.5], backend)
    (x + y).sum().backward()  # both get the same ones array from Add's backward
    gx = x.grad.numpy().copy()
    (x * 4).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), gx + 4)


def test_retain_graph_allows_a_second_backward(backend):
    x = leaf([1.0, 2.0], backend)
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])))


def test_second_backward_without_retain_graph_raises_clearly(backend):
    x = leaf([1.0, 2.0], backend)
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        loss.backward()
    y = x.exp()  # a shared, already-freed subgraph reached from a new root
    z = y * 2
    z.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (z + 1).sum().backward()


def test_retain_grad_on_non_leaves_matches_torch(backend):
    a = randn((2, 3), np.float64)
    x = leaf(a, backend)
    h = (x * 2).tanh().retain_grad()
    h2 = h.exp()
    (h2 * h).sum().backward()
    t = tleaf(a)
    th = (t * 2).tanh()
    th.retain_grad()
    (th.exp() * th).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    assert h2.grad is None  # not retained
    assert not h.is_leaf and x.is_leaf


def test_hooks_observe_replace_and_remove(backend):
    a = randn((3,), np.float64)
    x = leaf(a, backend)
    t = tleaf(a)
    seen = []
    h = x * 3
    th = t * 3
    remove_observer = h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.register_hook(lambda g: g * 10)  # replaces the gradient flowing on into x
    th.register_hook(lambda g: g * 10)
    (h ** 2).sum().backward(retain_graph=True)
    (th ** 2).sum().backward(retain_graph=True)
    np.testing.assert_allclose(seen[0], 2 * 3 * a)  # d/dh of h**2, before the replacement
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)

    remove_observer()
    (h ** 2).sum().backward()
    assert len(seen) == 1  # removed: not called again
    np.testing.assert_allclose(x.grad.numpy(), 2 * t.grad.numpy(), rtol=1e-12)


def test_hook_on_leaf_sees_total_and_replaces_before_accumulating(backend):
    x = leaf([1.0, 2.0], backend)
    calls = []

    def hook(g):
        calls.append(g.numpy().copy())
        return g * 0 + 7
    x.register_hook(hook)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])
    t = tleaf([1.0, 2.0])
    t.register_hook(lambda g: torch.full_like(g, 7.0))
    (t * t + t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
    assert sum(c.sum() for c in calls) == pytest.approx(3.0 + 5.0)


def test_no_grad_records_nothing(backend):
    x = leaf([1.0, 2.0], backend)
    with mg.no_grad():
        y = (x * 2).exp().sum()
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 2
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()

    @mg.no_grad()
    def step(t):
        return t * t
    out = step(x)
    assert not out.requires_grad and mg.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception(backend):
    with pytest.raises(ValueError), mg.no_grad():
        raise ValueError("boom")
    assert mg.is_grad_enabled()


def test_requires_grad_propagation(backend):
    a = leaf([1.0], backend)
    b = leaf([2.0], backend, grad=False)
    assert (a * b).requires_grad and not (b * b).requires_grad
    assert not (b + 1).requires_grad and (b + a).exp().requires_grad
    assert (b * 2).grad_fn is None
    c = leaf([3.0], backend, grad=False).requires_grad_()
    assert c.requires_grad and c.is_leaf
    with pytest.raises(RuntimeError, match="leaf"):
        (a * 2).requires_grad_(False)
    (a * b).sum().backward()
    assert b.grad is None


def test_detach_stops_gradient_and_shares_values(backend):
    a = [1.0, -2.0, 3.0]
    x = leaf(a, backend)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.numpy(), a)
    (x * d).sum().backward()  # d/dx (x * const) = const
    np.testing.assert_allclose(x.grad.numpy(), a)
    h = (x * 2).detach()
    assert h.is_leaf and not h.requires_grad


def test_deep_chain_does_not_recurse(backend):
    x = leaf([1.0], backend)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-10)
    z = x
    for _ in range(5000):
        z = z + 1.0
    del z  # dropping a deep unused graph must not overflow the C stack either


def test_backward_on_non_scalar_needs_grad(backend):
    x = leaf(np.ones((2, 3)), backend)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        y.backward()


def test_backward_with_explicit_grad(backend):
    a = randn((2, 3), np.float64)
    g = randn((2, 3), np.float64, seed=5)
    for seed in (mg.tensor(g, backend=backend), g, g.astype(np.float32)):
        x = leaf(a, backend)
        (x.tanh() * 3).backward(seed)
        np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh(a) ** 2) * g, rtol=1e-6)
    x = leaf(a, backend)
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\), expected \(2, 3\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_leaf_and_on_a_0d_seed(backend):
    x = leaf([1.0, 2.0], backend)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    s = leaf(2.0, backend)
    (s * s * s).backward()
    assert s.grad.item() == pytest.approx(12.0)


def test_only_inputs_that_need_grad_get_one(backend):
    x = leaf([1.0, 2.0], backend)
    w = leaf([3.0, 4.0], backend, grad=False)
    y = leaf([5.0, 6.0], backend)
    (x * w + y.detach() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 10.0])
    assert w.grad is None and y.grad is None


def test_unused_output_of_multi_output_op(backend):
    x = leaf(np.arange(6.0), backend)
    a, b, c = x.split(2)
    (b * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 3, 3, 0, 0])


def test_grad_of_int_tensors_is_refused(backend):
    with pytest.raises(TypeError, match="floating"):
        mg.zeros(3, dtype=np.int64, requires_grad=True, backend=backend)


def test_post_accumulate_grad_hooks_fire_once_each_when_the_gradient_is_final():
    torch = pytest.importorskip("torch")
    w1, w2 = mg.randn(3, 3, requires_grad=True), mg.randn(3, requires_grad=True)
    x = mg.randn(4, 3)
    fired = []
    removers = [w.register_post_accumulate_grad_hook(lambda t, n=n: fired.append((n, t.grad.numpy().copy())))
                for n, w in (("w1", w1), ("w2", w2))]
    h = (x @ w1).tanh() @ w1      # w1 is used twice: its hook fires once, after both contributions
    loss = (h * w2).sum() + (w2 * w2).sum()
    loss.backward()
    assert sorted(n for n, _ in fired) == ["w1", "w2"]
    tw1, tw2 = (torch.tensor(w.numpy(), requires_grad=True) for w in (w1, w2))
    th = torch.tanh(torch.tensor(x.numpy()) @ tw1) @ tw1
    ((th * tw2).sum() + (tw2 * tw2).sum()).backward()
    got = dict(fired)
    np.testing.assert_allclose(got["w1"], tw1.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["w2"], tw2.grad.numpy(), rtol=1e-5, atol=1e-6)
    for r in removers:
        r()
    fired.clear()
    (w2 * 2).sum().backward()
    assert not fired


def test_post_accumulate_hook_of_a_leaf_fires_before_the_rest_of_backward_finishes():
    a, b = mg.randn(2, requires_grad=True), mg.randn(2, requires_grad=True)
    seen = {}
    b.register_post_accumulate_grad_hook(lambda t: seen.setdefault("a.grad then", a.grad))
    loss = ((a * 3).exp().tanh() * b).sum()   # b's gradient is final after the first Mul's backward
    loss.backward()
    assert "a.grad then" in seen and seen["a.grad then"] is None and a.grad is not None
