"""The graph must not leak: a training loop keeps resident memory flat, and a finished graph's
intermediates are freed by reference counting alone (no cycles for the GC to find)."""

import gc
import os
import weakref

import numpy as np
import pytest

import minigrad as mg

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _mlp(backend):
    g = np.random.default_rng(0)
    params = [mg.tensor(g.standard_normal(s).astype(np.float32) * 0.3, backend=backend, requires_grad=True)
              for s in [(32, 128), (128,), (128, 10), (10,)]]
    x = mg.tensor(g.standard_normal((32, 32)).astype(np.float32), backend=backend)
    y = mg.tensor(g.integers(0, 10, 32), backend=backend)
    return params, x, y


def _step(params, x, y):
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).gelu(approximate="tanh")
    h = mg.dropout(h, 0.1, generator=mg.Generator(0))
    logits = h @ w2 + b2
    loss = mg.cross_entropy(logits, y) + 1e-4 * (w1 * w1).sum() + logits.softmax(-1).max(axis=-1).mean()
    loss.backward()
    with mg.no_grad():
        for p in params:
            p.data = p.data - 0.01 * p.grad.data
            p.zero_grad()
    return loss.item()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_training_loop_keeps_resident_memory_flat(backend):
    params, x, y = _mlp(backend)
    for _ in range(50):  # warm-up: allocator pools, caches and lazy imports settle
        _step(params, x, y)
    gc.collect()
    before = rss_bytes()
    losses = [_step(params, x, y) for _ in range(1000)]
    growth = rss_bytes() - before
    # A leaked graph pins ~16 KB per saved (32, 128) activation, several per step: 60+ MB in all.
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 1,000 steps"
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_finished_graph_is_freed_when_the_loss_is_dropped(backend):
    gc.collect()
    gc.disable()  # prove it is reference counting, not the cycle collector, that frees the graph
    try:
        for do_backward, retain in [(False, False), (True, False), (True, True)]:
            params, x, y = _mlp(backend)
            w1, b1, w2, b2 = params
            h = (x @ w1 + b1).relu()
            parts = h.split(50, axis=1)  # a multi-output node too
            logits = mg.cat(parts, axis=1) @ w2 + b2
            loss = mg.cross_entropy(logits, y)
            refs = [weakref.ref(t) for t in (h, *parts, logits, loss)]
            fn_refs = [weakref.ref(t.grad_fn) for t in (h, logits, loss)]
            if do_backward:
                loss.backward(retain_graph=retain)
            del h, parts, logits, loss
            assert all(r() is None for r in refs), f"tensors alive (backward={do_backward}, retain={retain})"
            assert all(r() is None for r in fn_refs), f"Functions alive (backward={do_backward}, retain={retain})"
            assert w1.grad is None or w1.grad.shape == w1.shape  # leaves and their grads stay
    finally:
        gc.enable()


def test_backward_releases_saved_arrays_while_outputs_live(backend):
    """After backward (no retain_graph) a node drops its saved arrays even if the user still
    holds the output tensor, so activations are not pinned by a lingering reference."""
    x = mg.tensor(np.ones((64, 64), np.float32), backend=backend, requires_grad=True)
    big = x * 2
    y = big.exp()  # Exp saves its output
    saved = weakref.ref(y.grad_fn)
    y.sum().backward()
    fn = saved()
    assert fn is not None and fn.freed and not hasattr(fn, "out") and fn.inputs == ()
