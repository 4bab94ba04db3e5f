"""The MoE routing and dispatch kernels: each Numba twin against its NumPy reference, forward and
backward, with ties, group limits and dropped slots; the fused routed-experts op against transformers'
DeepseekV3Experts (torch autograd), its ``*_simple`` composite and float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from kernels.cpu import KERNELS as CPU_KERNELS
from minigrad.backend import get_backend
from nn.ops.moe import plan_dispatch, routed_experts, routed_experts_simple

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

REF = get_backend("numpy")
FLOATS = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-13}


def both(name):
    """The Numba twin itself (which must not decline these cases) and the reference, xp bound."""
    fast = CPU_KERNELS[name]

    def run_twin(*args, **kwargs):
        out = fast(*args, **kwargs)
        assert out is not NotImplemented, f"the Numba {name} declined"
        return out
    return run_twin, REF.reference(name)


def close(ours, ref, dtype, what=""):
    ref = np.asarray(ref, dtype=np.float64)
    tol = TOL[np.dtype(dtype)] * max(float(np.abs(ref).max()) if ref.size else 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), ref, rtol=0, atol=tol, err_msg=what)


def tied_scores(rng, n, e, dtype):
    """Scores on a coarse grid (many exact ties), plus a few rows that are all equal."""
    s = (rng.integers(0, 4, (n, e)) / 4).astype(dtype)
    s[:3] = 0.5
    return s


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("k,n_group,topk_group,rule", [(1, 1, 1, "max"), (2, 1, 1, "max"), (3, 4, 2, "max"),
                                                       (2, 4, 1, "top2"), (4, 2, 1, "top2"), (2, 8, 3, "top2")])
@pytest.mark.parametrize("scores", ["random", "tied"])
def test_topk_kernel(dtype, k, n_group, topk_group, rule, scores):
    rng = np.random.default_rng(0)
    s = rng.standard_normal((300, 8)).astype(dtype) if scores == "random" else tied_scores(rng, 300, 8, dtype)
    fast, ref = both("moe_topk")
    got, want = fast(s, k, n_group, topk_group, rule), ref(s, k, n_group, topk_group, rule)
    assert got.dtype == np.int64 and got.shape == (300, k)
    np.testing.assert_array_equal(got, want)


def test_topk_ties_go_to_the_lower_index_and_groups_limit_the_choice():
    fast, ref = both("moe_topk")
    s = np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.9, 0.2], [0.3, 0.3, 0.7, 0.7]], np.float32)
    for kern in (fast, ref):
        np.testing.assert_array_equal(kern(s, 2), [[0, 1], [1, 2], [2, 3]])
        # two groups of two: row 0's groups tie (group 0 wins), row 1's: 0.9 vs 0.9 (group 0), row 2: group 1
        np.testing.assert_array_equal(kern(s, 2, 2, 1, "max"), [[0, 1], [1, 0], [2, 3]])
        # summing a group's two best: row 1 has 1.0 (group 0) against 1.1 (group 1)
        np.testing.assert_array_equal(kern(s, 1, 2, 1, "top2"), [[0], [2], [2]])
    assert np.array_equal(fast(s, 2), fast(s, 2))  # and the same on every call


@pytest.mark.parametrize("capacity", [-1, 0, 3, 40, 1000])
@pytest.mark.parametrize("n,k,e", [(50, 2, 8), (1, 1, 4), (2000, 3, 16)])
def test_sort_by_expert_kernel(capacity, n, k, e):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, e, (n, k))
    idx[: n // 3] = 1  # one busy expert, so capacities bite
    fast, ref = both("moe_sort_by_expert")
    got, want = fast(idx, e, capacity), ref(idx, e, capacity)
    for g, w, what in zip(got, want, ("order", "offsets", "slot_row", "load")):
        assert g.dtype == np.int64, what
        np.testing.assert_array_equal(g, w, err_msg=what)
    order, offsets, slot_row, load = want
    assert np.array_equal(load, np.bincount(idx.ravel(), minlength=e))
    kept = slot_row.ravel() >= 0
    assert kept.sum() == order.size == offsets[-1]
    assert np.array_equal(idx.ravel()[order], np.repeat(np.arange(e), np.diff(offsets)))  # grouped by expert
    assert np.array_equal(slot_row.ravel()[order], np.arange(order.size))
    if capacity >= 0:
        assert np.diff(offsets).max(initial=0) <= capacity


def _plan_arrays(rng, n, k, e, capacity):
    idx = rng.integers(0, e, (n, k))
    order, offsets, slot_row, _ = REF.kernel("moe_sort_by_expert")(idx, e, capacity)
    return order, slot_row


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("capacity", [-1, 5])
def test_dispatch_and_combine_kernels(dtype, capacity):
    rng = np.random.default_rng(2)
    n, k, e, h = 64, 3, 6, 37
    order, slot_row = _plan_arrays(rng, n, k, e, capacity)
    assert capacity < 0 or (slot_row < 0).any()  # some slots dropped
    x = rng.standard_normal((n, h)).astype(dtype)
    weights = rng.random((n, k)).astype(dtype)
    ys = rng.standard_normal((order.size, h)).astype(dtype)
    g = rng.standard_normal((n, h)).astype(dtype)
    for name, args in [("moe_gather", (x, order, k)), ("moe_gather_backward", (ys, slot_row)),
                       ("moe_combine", (ys, slot_row, weights)),
                       ("moe_combine_backward", (g, ys, slot_row, weights[:, ::-1]))]:  # strided weights
        fast, ref = both(name)
        got, want = fast(*args), ref(*args)
        for a, b in zip(got if isinstance(want, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert a.shape == b.shape and a.dtype == b.dtype, name
            close(a, b, dtype, name)
    dys, dw = REF.kernel("moe_combine_backward")(g, ys, slot_row, weights)
    assert not dw[slot_row < 0].any()  # a dropped slot's weight gets no gradient


# ---- the fused op ---------------------------------------------------------------------------


def _experts_inputs(rng, n, h, inner, e, k, dtype):
    x = rng.standard_normal((n, h)).astype(dtype)
    gate_up = (rng.standard_normal((e, 2 * inner, h)) * 0.3).astype(dtype)
    down = (rng.standard_normal((e, h, inner)) * 0.3).astype(dtype)
    idx = np.stack([rng.permutation(e)[:k] for _ in range(n)])  # distinct experts per token
    weights = rng.random((n, k)).astype(dtype)
    return x, weights, gate_up, down, idx


def _hf_experts(gate_up, down):
    cfg = transformers.DeepseekV3Config(num_local_experts=gate_up.shape[0], hidden_size=gate_up.shape[2],
                                        moe_intermediate_size=down.shape[2], hidden_act="silu")
    experts = transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3Experts(cfg).to(
        torch.float64 if gate_up.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        experts.gate_up_proj.copy_(torch.from_numpy(gate_up))
        experts.down_proj.copy_(torch.from_numpy(down))
    return experts


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("capacity", [-1, 7])
def test_routed_experts_match_transformers_experts(backend, dtype, capacity):
    rng = np.random.default_rng(3)
    x, weights, gate_up, down, idx = _experts_inputs(rng, 40, 12, 10, 6, 2, dtype)
    be = get_backend(backend)
    plan = plan_dispatch(be, idx, 6, capacity)
    kept = be.to_numpy(plan.slot_row) >= 0
    g = rng.standard_normal(x.shape).astype(dtype)

    # transformers has no capacity: a dropped slot is a slot of weight 0 there
    hf = _hf_experts(gate_up, down)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weights, requires_grad=True)
    (hf(tx, torch.tensor(idx), tw * torch.tensor(kept, dtype=tw.dtype)) * torch.tensor(g)).sum().backward()
    want = [tx.grad.numpy(), tw.grad.numpy() * kept, hf.gate_up_proj.grad.numpy(), hf.down_proj.grad.numpy()]
    with torch.no_grad():
        want_out = hf(torch.tensor(x), torch.tensor(idx), torch.tensor(weights * kept)).numpy()

    for fn in (routed_experts, routed_experts_simple):
        ts = [mg.tensor(a, backend=backend, requires_grad=True) for a in (x, weights, gate_up, down)]
        out = fn(*ts, plan)
        (out * mg.tensor(g, backend=backend)).sum().backward()
        close(out.numpy(), want_out, dtype, f"{fn.__name__}: output")
        for t, w, what in zip(ts, want, ("dx", "dweights", "dgate_up", "ddown")):
            close(t.grad.numpy(), w, dtype, f"{fn.__name__}: {what}")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_routed_experts_finite_differences(backend):
    rng = np.random.default_rng(4)
    x, weights, gate_up, down, idx = _experts_inputs(rng, 7, 4, 3, 4, 2, np.float64)
    plan = plan_dispatch(get_backend(backend), idx, 4, 3)  # capacity 3 of 14 slots over 4 experts: drops some
    ts = [mg.tensor(a, backend=backend, requires_grad=True) for a in (x, weights, gate_up, down)]
    assert mg.gradcheck(lambda *a: routed_experts(*a, plan), ts)
