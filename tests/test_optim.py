"""Optimizers, clipping and schedules against references nobody here wrote: torch.optim.AdamW,
torch.nn.utils.clip_grad_norm_, torch's CosineAnnealingLR, the published Lion and Muon rules
written out in torch below, and the NumPy reference twin of the Numba AdamW kernel."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import minigrad as mg
from kernels.reference.adamw import adamw_step as reference_adamw_step
from minigrad.optim import AdamW, Lion, Muon, MuonWithAdamW, clip_grad_norm_, decay_groups, lr_at, set_lr

# (rtol, atol): float32 within 1e-6 relative, float64 tight.
TOL = {np.float32: (1e-6, 1e-7), np.float64: (1e-12, 1e-14)}
# several shapes; (130, 257) spans more than one chunk of the Numba kernel
SHAPES = [(7,), (5, 3), (4, 2, 3), (1,), (130, 257)]
STEPS = 10
BACKENDS = ["numpy", "numba", "strict", "cupy"]


def _init(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _grads(shapes, dtype, step):
    rng = np.random.default_rng(1000 + step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _ours(values, backend):
    return [mg.tensor(v, requires_grad=True, backend=backend) for v in values]


def _theirs(values):
    return [torch.tensor(v, requires_grad=True) for v in values]


def _set_grads(ours, theirs, grads, backend):
    for p, t, g in zip(ours, theirs, grads):
        p.grad = mg.tensor(g, backend=backend)
        if t is not None:
            t.grad = torch.tensor(g)


def _close(ours, ref, dtype, what=""):
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=what)


# ---- AdamW -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_torch(backend, dtype, weight_decay):
    values = _init(SHAPES, dtype)
    ours, theirs = _ours(values, backend), _theirs(values)
    kw = dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    opt, ref = AdamW(ours, **kw), torch.optim.AdamW(theirs, **kw)
    for step in range(STEPS):
        _set_grads(ours, theirs, _grads(SHAPES, dtype, step), backend)
        opt.step()
        ref.step()
    for i, (p, t) in enumerate(zip(ours, theirs)):
        _close(p.numpy(), t.detach().numpy(), dtype, f"param {i}")
        st = ref.state[t]
        _close(opt.state[i]["exp_avg"] if backend != "strict" else opt.state_arrays()[f"{i}.exp_avg"],
               st["exp_avg"].numpy(), dtype, f"exp_avg {i}")
        assert opt.state[i]["step"] == int(st["step"]) == STEPS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_param_groups_and_scheduled_lr_match_torch(backend, dtype):
    values = _init(SHAPES, dtype, seed=3)
    ours, theirs = _ours(values, backend), _theirs(values)
    groups = lambda ps: [{"params": ps[:2], "weight_decay": 0.0},
                         {"params": ps[2:], "lr": 5e-3, "betas": (0.9, 0.95)}]
    opt = AdamW(groups(ours), lr=2e-2, weight_decay=0.05)
    ref = torch.optim.AdamW(groups(theirs), lr=2e-2, weight_decay=0.05)
    for step in range(STEPS):
        for g_ours, g_ref in zip(opt.param_groups, ref.param_groups):
            g_ours["lr"] = g_ref["lr"] = lr_at(step, g_ours["initial_lr"], 3, STEPS)
        _set_grads(ours, theirs, _grads(SHAPES, dtype, step), backend)
        opt.step()
        ref.step()
    for i, (p, t) in enumerate(zip(ours, theirs)):
        _close(p.numpy(), t.detach().numpy(), dtype, f"param {i}")


def test_adamw_skips_params_without_grad_and_zero_grad_drops_grads():
    ours = _ours(_init([(3,), (2, 2)], np.float32), "numpy")
    before = ours[1].numpy().copy()
    ours[0].grad = mg.ones(3)
    opt = AdamW(ours)
    opt.step()
    np.testing.assert_array_equal(ours[1].numpy(), before)
    assert 1 not in opt.state and opt.state[0]["step"] == 1
    opt.zero_grad()
    assert ours[0].grad is None


def test_numba_backend_uses_the_numba_kernel():
    from kernels.cpu.adamw import adamw_step as numba_adamw_step
    assert inspect.unwrap(mg.get_backend("numba").kernel("adamw_step")) is numba_adamw_step
    assert inspect.unwrap(mg.get_backend("numpy").kernel("adamw_step")) is reference_adamw_step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "broadcast_grad", "strided_param"])
def test_numba_adamw_kernel_equals_reference_twin(dtype, layout):
    from kernels.cpu.adamw import adamw_step as numba_adamw_step
    numba_kernel = mg.get_backend("numba").kernel("adamw_step")  # the Numba twin, or the reference where it declines
    rng = np.random.default_rng(7)
    shape = (97, 401)  # not a multiple of the chunk size
    p = rng.standard_normal(shape).astype(dtype)
    if layout == "strided_param":  # a column slice: the kernel must fall back, not write to a copy
        p = np.asfortranarray(p)
    arrays_ref = [p.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)]
    arrays_nb = [p.copy(order="K"), np.zeros(shape, dtype), np.zeros(shape, dtype)]
    for step in range(1, 6):
        g = rng.standard_normal(shape).astype(dtype)
        if layout == "broadcast_grad":
            g = np.broadcast_to(g[:1], shape)
        args = (1e-2, 0.9, 0.999, 1e-8, 0.1, step)
        reference_adamw_step(np, arrays_ref[0], g, arrays_ref[1], arrays_ref[2], *args)
        if layout == "strided_param":  # the twin must decline before writing anything; the backend falls back
            before = [a.copy() for a in arrays_nb]
            assert numba_adamw_step(arrays_nb[0], g, arrays_nb[1], arrays_nb[2], *args) is NotImplemented
            assert all(np.array_equal(a, b) for a, b in zip(arrays_nb, before))
            numba_kernel(arrays_nb[0], g, arrays_nb[1], arrays_nb[2], *args)
        else:  # the twin itself runs
            assert numba_adamw_step(arrays_nb[0], g, arrays_nb[1], arrays_nb[2], *args) is None
    # same operation order and scalar dtype, no fastmath: equal to within one rounding
    rtol = 2e-7 if dtype == np.float32 else 1e-15
    for name, a, b in zip(["param", "exp_avg", "exp_avg_sq"], arrays_nb, arrays_ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=name)
    assert not np.array_equal(arrays_nb[0], p)  # the parameter really moved


# ---- Lion --------------------------------------------------------------------------------
def _torch_lion_step(params, states, lr, beta1, beta2, wd):
    """The published rule (Chen et al. 2023, Algorithm 2), written out."""
    with torch.no_grad():
        for p in params:
            m = states.setdefault(p, torch.zeros_like(p))
            update = torch.sign(beta1 * m + (1 - beta1) * p.grad)
            p -= lr * (update + wd * p)
            m.mul_(beta2).add_((1 - beta2) * p.grad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_lion_matches_published_rule(backend, dtype, weight_decay):
    values = _init(SHAPES, dtype, seed=4)
    ours, theirs = _ours(values, backend), _theirs(values)
    opt, states = Lion(ours, lr=3e-3, betas=(0.9, 0.99), weight_decay=weight_decay), {}
    for step in range(STEPS):
        _set_grads(ours, theirs, _grads(SHAPES, dtype, step), backend)
        opt.step()
        _torch_lion_step(theirs, states, 3e-3, 0.9, 0.99, weight_decay)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        _close(p.numpy(), t.detach().numpy(), dtype, f"param {i}")


# ---- Muon --------------------------------------------------------------------------------
def _torch_newton_schulz5(g, steps=5):
    """Keller Jordan's quintic Newton-Schulz, in the input's dtype (ours has no bfloat16 on CPU)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.mT if g.size(0) > g.size(1) else g
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if g.size(0) > g.size(1) else x


def _torch_muon_step(params, states, lr, mu, nesterov, wd):
    with torch.no_grad():
        for p in params:
            buf = states.setdefault(p, torch.zeros_like(p))
            buf.lerp_(p.grad, 1 - mu)
            update = p.grad.lerp(buf, mu) if nesterov else buf
            update = _torch_newton_schulz5(update) * max(1, p.size(0) / p.size(1)) ** 0.5
            p.mul_(1 - lr * wd).add_(update, alpha=-lr)


MUON_SHAPES = [(6, 4), (4, 6), (5, 5), (16, 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov,weight_decay", [(True, 0.0), (False, 0.1), (True, 0.1)])
def test_muon_matches_published_rule(backend, dtype, nesterov, weight_decay):
    values = _init(MUON_SHAPES, dtype, seed=5)
    ours, theirs = _ours(values, backend), _theirs(values)
    opt = Muon(ours, lr=0.02, momentum=0.95, nesterov=nesterov, weight_decay=weight_decay)
    states = {}
    for step in range(STEPS):
        _set_grads(ours, theirs, _grads(MUON_SHAPES, dtype, step), backend)
        opt.step()
        _torch_muon_step(theirs, states, 0.02, 0.95, nesterov, weight_decay)
    # float32: five quintic iterations amplify matmul rounding (summation order differs from torch's)
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else TOL[dtype]
    for i, (p, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"param {i}")


def test_newton_schulz_flattens_singular_values():
    g = np.random.default_rng(0).standard_normal((32, 8))
    s = np.linalg.svd(mg.optim.newton_schulz5(np, g), compute_uv=False)
    assert s.min() > 0.5 and s.max() < 1.3  # the quintic lands singular values near 1, not exactly on it


def _named(dtype=np.float32):
    rng = np.random.default_rng(6)
    shapes = {"model.embed_tokens.weight": (10, 4), "model.layers.0.self_attn.q_proj.weight": (4, 4),
              "model.layers.0.mlp.up_proj.weight": (8, 4), "model.layers.0.input_layernorm.weight": (4,),
              "model.layers.0.mlp.up_proj.bias": (8,), "lm_head.weight": (10, 4)}
    return [(n, mg.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)) for n, s in shapes.items()]


def test_decay_groups_split():
    named = _named()
    by_name = dict(named)
    groups = decay_groups(named, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    ids = lambda g: {id(p) for p in g["params"]}
    assert ids(groups[0]) == {id(by_name[n]) for n in ["model.layers.0.self_attn.q_proj.weight",
                                                       "model.layers.0.mlp.up_proj.weight", "lm_head.weight"]}
    assert ids(groups[1]) == {id(by_name[n]) for n in ["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.bias",
                                                       "model.layers.0.input_layernorm.weight"]}


def test_muon_with_adamw_routes_and_steps_like_its_parts():
    named = _named(np.float64)
    by_name = dict(named)
    opt = MuonWithAdamW(named, lr=0.02, weight_decay=0.01, adamw_lr=1e-2, adamw_betas=(0.9, 0.95),
                        adamw_weight_decay=0.1)
    algos = {id(p): (g["algorithm"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert algos[id(by_name["model.layers.0.self_attn.q_proj.weight"])] == ("muon", 0.01)
    assert algos[id(by_name["model.layers.0.mlp.up_proj.weight"])] == ("muon", 0.01)
    assert algos[id(by_name["lm_head.weight"])] == ("adamw", 0.1)
    assert algos[id(by_name["model.embed_tokens.weight"])] == ("adamw", 0.0)
    assert algos[id(by_name["model.layers.0.input_layernorm.weight"])] == ("adamw", 0.0)
    # the same steps by the published rules: Muon (torch, above) and torch.optim.AdamW
    theirs = {n: torch.tensor(p.numpy(), requires_grad=True) for n, p in named}
    muon_names = [n for n, p in named if algos[id(p)][0] == "muon"]
    ref_adamw = torch.optim.AdamW([{"params": [theirs["lm_head.weight"]], "weight_decay": 0.1},
                                   {"params": [theirs[n] for n, p in named if algos[id(p)] == ("adamw", 0.0)],
                                    "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.95))
    states = {}
    for step in range(STEPS):
        grads = _grads([p.shape for _, p in named], np.float64, step)
        _set_grads([p for _, p in named], [theirs[n] for n, _ in named], grads, "numpy")
        opt.step()
        ref_adamw.step()
        _torch_muon_step([theirs[n] for n in muon_names], states, 0.02, 0.95, True, 0.01)
    for n, p in named:
        _close(p.numpy(), theirs[n].detach().numpy(), np.float64, n)


# ---- clipping ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "strict", "cupy"])
@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (1e3, 2.0), (0.5, math.inf)])
def test_clip_grad_norm_matches_torch(backend, max_norm, norm_type):
    shapes = [(7,), (5, 3), (4, 2, 3)]
    values = _init(shapes, np.float32)
    ours, theirs = _ours(values, backend), _theirs(values)
    _set_grads(ours, theirs, _grads(shapes, np.float32, 0), backend)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(float(ref), rel=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_scales_a_shared_gradient_array_once():
    a, b = mg.ones(3, requires_grad=True), mg.ones(3, requires_grad=True)
    (a + b).sum().backward()  # the add passes one gradient array to both inputs
    total = clip_grad_norm_([a, b], 1.0)
    assert total == pytest.approx(math.sqrt(6), rel=1e-6)
    expect = 1.0 / (math.sqrt(6) + 1e-6)
    np.testing.assert_allclose(a.grad.numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), expect, rtol=1e-6)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_grad_norm_returns_nonfinite_norm_and_leaves_grads(bad):
    p = mg.tensor([1.0, 2.0], requires_grad=True)
    p.grad = mg.tensor([bad, 3.0])
    total = clip_grad_norm_([p], 1.0)
    assert not math.isfinite(total) and (math.isnan(total) == math.isnan(bad))
    assert p.grad.numpy()[1] == 3.0


# ---- schedules ---------------------------------------------------------------------------
def test_warmup_endpoints():
    for schedule in ["cosine", "wsd", "constant"]:
        assert lr_at(0, 1.0, 10, 100, schedule) == pytest.approx(0.1)
        assert lr_at(9, 1.0, 10, 100, schedule) == pytest.approx(1.0)
        assert lr_at(4, 2.0, 10, 100, schedule) == pytest.approx(1.0)


def test_cosine_midpoint_and_torch_cosine_annealing():
    base, min_lr, warmup, total = 3e-3, 3e-4, 10, 110
    mid = warmup + (total - warmup) // 2
    assert lr_at(mid, base, warmup, total, "cosine", min_lr) == pytest.approx(
        min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(total, base, warmup, total, "cosine", min_lr) == pytest.approx(min_lr)
    # after warmup, the curve is torch's CosineAnnealingLR(T_max = total - warmup)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)
    for step in range(warmup, total):
        assert lr_at(step, base, warmup, total, "cosine", min_lr) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def test_wsd_plateau_and_end():
    base, min_lr, warmup, total = 1.0, 0.1, 10, 100  # decay over the last 20 steps
    for step in range(warmup, 80):
        assert lr_at(step, base, warmup, total, "wsd", min_lr) == base
    assert lr_at(90, base, warmup, total, "wsd", min_lr) == pytest.approx(base + (min_lr - base) * 10 / 20)
    assert lr_at(99, base, warmup, total, "wsd", min_lr) == pytest.approx(base + (min_lr - base) * 19 / 20)
    assert lr_at(100, base, warmup, total, "wsd", min_lr) == pytest.approx(min_lr)
    assert lr_at(10**6, 1.0, 10, 100, "constant") == 1.0


def test_set_lr_scales_each_group_from_its_initial_lr():
    opt = MuonWithAdamW(_named(), lr=0.02, adamw_lr=1e-3)
    set_lr(opt, 0, warmup_steps=4, total_steps=10)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([1e-3 / 4, 0.02 / 4])


def test_bad_schedule_name_is_named():
    with pytest.raises(ValueError, match="'linear'"):
        lr_at(0, 1.0, 0, 10, "linear")


# ---- checkpoints -------------------------------------------------------------------------
def _build(kind, params):
    if kind == "adamw":
        return AdamW([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0}], lr=1e-2)
    if kind == "lion":
        return Lion(params, lr=1e-3, weight_decay=0.1)
    if kind == "muon":
        return Muon(params, lr=0.02, weight_decay=0.01)
    return MuonWithAdamW([(f"w{i}", p) for i, p in enumerate(params)], adamw_lr=1e-2)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
@pytest.mark.parametrize("kind", ["adamw", "lion", "muon", "muon_adamw"])
def test_state_round_trip_through_safetensors_and_json(tmp_path, backend, kind):
    shapes = [(6, 4), (3, 5), (4, 7)] if kind == "muon" else [(6, 4), (5,), (4, 7)]
    values = _init(shapes, np.float32, seed=8)

    def run(opt, params, steps):
        for step in steps:
            _set_grads(params, [None] * len(params), _grads(shapes, np.float32, step), backend)
            opt.step()

    straight = _ours(values, backend)
    opt = _build(kind, straight)
    run(opt, straight, range(STEPS))

    first = _ours(values, backend)
    opt1 = _build(kind, first)
    opt1.param_groups[0]["lr"] *= 0.5  # a scheduled lr is part of the state too
    opt1.param_groups[0]["lr"] *= 2.0
    run(opt1, first, range(5))
    save_file(opt1.state_arrays(), str(tmp_path / "optim.safetensors"))
    (tmp_path / "optim.json").write_text(json.dumps(opt1.state_meta()))
    saved_params = [p.numpy().copy() for p in first]

    resumed = _ours(saved_params, backend)
    opt2 = _build(kind, resumed)
    opt2.load_state(load_file(str(tmp_path / "optim.safetensors")), json.loads((tmp_path / "optim.json").read_text()))
    run(opt2, resumed, range(5, STEPS))
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert opt2.state_meta() == opt.state_meta()


def test_load_state_rejects_another_optimizer_and_wrong_shapes():
    params = _ours(_init([(3, 2)], np.float32), "numpy")
    params[0].grad = mg.ones(3, 2)
    opt = AdamW(params)
    opt.step()
    with pytest.raises(ValueError, match="'AdamW'"):
        Lion(params).load_state(opt.state_arrays(), opt.state_meta())
    arrays = opt.state_arrays()
    arrays["0.exp_avg"] = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="0.exp_avg"):
        AdamW(params).load_state(arrays, opt.state_meta())


# ---- bad input -------------------------------------------------------------------------
def test_bad_input_messages():
    p = mg.ones(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="momentun"):
        AdamW([{"params": [p], "momentun": 0.9}])
    with pytest.raises(ValueError, match="more than one param group"):
        AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="2-D"):
        Muon([mg.ones(3, requires_grad=True)])
    with pytest.raises(ValueError, match="betas"):
        AdamW([p], betas=(0.9, 1.5))
    with pytest.raises(TypeError, match="single Tensor"):
        AdamW(p)
