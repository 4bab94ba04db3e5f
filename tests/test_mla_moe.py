"""MLA and MoE models beyond the parity tests: generation with the latent cache, the cache's size,
the strict backend, and the MoE balancing machinery (aux loss, bias update, capacity, statistics)."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import nn

MLA = dict(hidden_size=32, num_layers=2, num_heads=4, vocab_size=40, max_seq_len=48, intermediate_size=24,
           kv_latent_dim=12, q_latent_dim=10, d_rope=4, mla_v_head_dim=6)
MOE = dict(num_experts=4, experts_per_tok=2, shared_expert_enabled=True, first_dense_layers=1)


def _model(cfg, seed=0, backend="numpy"):
    m = nn.build_model(cfg, seed=seed, backend=backend)
    for p in m.parameters():  # larger weights than the 0.02 init: well-separated logits, no near-ties
        if p.ndim >= 2:
            p.data = p.data * 20
    return m


# ---- MLA: generation caches the latent and the rotary key only ------------------------------------

HYBRID = {**MOE, "mamba_layers": [0], "mamba2_num_heads": 2, "mamba2_head_dim": 32, "mamba2_state_size": 8,
          "mamba2_chunk_size": 4, "first_dense_layers": 0}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("extra", [{}, MOE, {"q_latent_dim": None}, HYBRID],
                         ids=["mla", "mla+moe", "mla-q_proj", "mamba2+mla+moe"])
def test_mla_greedy_with_cache_equals_without(backend, extra):
    m = _model({**MLA, **extra}, backend=backend)
    prompt = np.array([[1, 5, 7, 2, 9], [3, 3, 8, 1, 0]])
    cached = m.generate(prompt, 16, temperature=0)
    assert np.array_equal(cached, m.generate(prompt, 16, temperature=0, use_cache=False))
    assert cached.shape == (2, 21) and len(set(cached[0, 5:].tolist())) > 2  # not a constant run


def test_mla_cached_logits_equal_full_logits():
    m = _model({**MLA, **MOE})
    ids = np.random.default_rng(0).integers(0, 40, (2, 12))
    full = m(mg.tensor(ids)).numpy()
    cache = m.new_cache(batch=2)
    assert all(isinstance(layer, nn.LatentCache) for layer in cache.layers)
    with mg.no_grad():
        first = m(mg.tensor(ids[:, :7]), cache).numpy()
        rest = [m(mg.tensor(ids[:, t:t + 1]), cache).numpy() for t in range(7, 12)]
    assert np.abs(np.concatenate([first] + rest, axis=1) - full).max() < 1e-4


def test_kv_cache_bytes_per_token_mla_gqa_mha():
    """The caches allocate what kv_cache_bytes_per_token says: per layer, MLA kv_latent_dim + d_rope
    floats; GQA and MHA 2 * kv_heads * head_dim."""
    base = dict(hidden_size=128, num_layers=4, num_heads=4, vocab_size=64, max_seq_len=64)
    configs = {"mha": base, "gqa": {**base, "kv_heads": 2},
               "mla": {**base, "kv_latent_dim": 64, "q_latent_dim": 64, "d_rope": 8}}
    measured = {}
    for name, c in configs.items():
        m = nn.build_model(c)
        cache = m.new_cache(batch=3)
        measured[name] = cache.nbytes // (3 * 64)
        assert measured[name] == nn.kv_cache_bytes_per_token(m.config), name
    assert measured == {"mha": 4 * 2 * 128 * 4, "gqa": 4 * 2 * 64 * 4, "mla": 4 * 72 * 4}
    layer = nn.build_model(configs["mla"]).new_cache().layers[0]
    assert layer.latent.shape == (1, 64, 64) and layer.k_rot.shape == (1, 64, 1, 8)  # nothing per head


@pytest.mark.parametrize("extra", [MOE, {"kv_latent_dim": None, "q_latent_dim": None, "d_rope": None,
                                         "mla_v_head_dim": None, **MOE, "router_score": "sigmoid",
                                         "moe_balance": "bias_update", "capacity_factor": 1.0}],
                         ids=["mla+moe", "gqa+moe-sigmoid-capacity"])
def test_models_run_on_the_strict_backend(extra):
    """Arrays that refuse conversion to NumPy (as CuPy's): the layers reach arrays only through xp."""
    import strict_backend  # noqa: F401

    cfg = {**MLA, **extra}
    results = []
    for backend in ("numpy", "strict"):
        m = nn.build_model(cfg, seed=3, backend=backend)
        ids = np.random.default_rng(0).integers(0, 40, (2, 9))
        loss = mg.cross_entropy(m(mg.tensor(ids, backend=backend)), mg.tensor(ids, backend=backend))
        (loss + 0.01 * m.auxiliary_loss()).backward()
        m.after_step()
        results.append((loss.item(), {k: p.grad.numpy() for k, p in m.named_parameters()}, m.routing_stats(),
                        m.state_dict()))
    (loss_a, grads_a, stats_a, state_a), (loss_b, grads_b, stats_b, state_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6) and stats_a == stats_b
    for k in grads_a:
        np.testing.assert_allclose(grads_b[k], grads_a[k], rtol=1e-5, atol=1e-7, err_msg=k)
    for k in state_a:
        np.testing.assert_array_equal(state_b[k], state_a[k], err_msg=k)


# ---- MoE balancing -------------------------------------------------------------------------------

def test_aux_loss_is_the_switch_formula_on_hand_made_logits():
    cfg = nn.model_config({"hidden_size": 2, "num_heads": 1, "num_experts": 3, "experts_per_tok": 2})
    router = nn.TopKRouter(cfg, mg.get_backend("numpy"))
    router.weight.data = np.eye(3, 2, dtype=np.float32)      # logits = the two features, then 0
    x = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]], np.float32)
    r = router(mg.tensor(x))
    logits = np.c_[x, np.zeros(4)]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # top-2 by hand; rows 0 and 1 tie for second place, which goes to the lower index
    np.testing.assert_array_equal(r.experts, [[0, 1], [1, 0], [0, 1], [0, 2]])
    f = np.array([4, 3, 1]) / 4                               # tokens per expert / tokens
    expected = 3 * (f * p.mean(0)).sum()
    assert nn.load_balancing_loss(r.probs, r.experts, 3).item() == pytest.approx(expected, rel=1e-6)


def test_aux_loss_equals_mixtral_load_balancing_loss():
    torch = pytest.importorskip("torch")
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((50, 8)).astype(np.float32) * 2
    for k in (1, 2, 3):
        probs = mg.tensor(logits).softmax(axis=-1)
        experts = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
        ours = nn.load_balancing_loss(probs, experts, 8).item()
        theirs = mixtral.load_balancing_loss_func((torch.tensor(logits),), 8, top_k=k).item()
        assert ours == pytest.approx(theirs, rel=1e-5), k


def test_aux_loss_gradient_reaches_the_router_and_trains_it():
    cfg = dict(hidden_size=16, num_layers=2, num_heads=2, vocab_size=32, max_seq_len=16, intermediate_size=8,
               num_experts=4, experts_per_tok=1)
    m = nn.build_model(cfg, seed=0)
    ids = mg.tensor(np.random.default_rng(0).integers(0, 32, (4, 16)))
    m(ids)
    m.auxiliary_loss().backward()
    for moe in m.moe_layers():
        assert moe.gate.weight.grad is not None and np.abs(moe.gate.weight.grad.numpy()).max() > 1e-4
    # a layer's aux loss depends on its router, not on its own experts (nor on anything after it)
    assert m.moe_layers()[-1].experts.gate_up_proj.grad is None and m.lm_head.weight.grad is None

    # An MoE layer whose inputs share one constant feature that its router reads as "expert 0": every token
    # goes there. Training the router on the aux loss alone spreads the tokens out.
    moe = nn.MoE(nn.model_config(cfg), 0, mg.get_backend("numpy"))
    x = np.random.default_rng(1).standard_normal((4, 16, 16)).astype(np.float32)
    x[..., 0] = 3.0
    moe.gate.weight.data[0, 0] += 2.0
    x = mg.tensor(x)

    def imbalance():
        moe.since_report.reset()
        moe(x)
        return moe.report()["load_imbalance"]

    first = imbalance()
    opt = mg.optim.AdamW([moe.gate.weight], lr=0.05, weight_decay=0.0)
    for _ in range(40):
        opt.zero_grad()
        moe(x)
        moe.aux_loss.backward()
        opt.step()
    last = imbalance()
    assert first == 4.0 and last < 1.5, (first, last)  # 4 = everything on one of 4 experts, 1 = balanced


def test_bias_update_follows_deepseek_v3():
    """b_i <- b_i + gamma * sign(mean load - load_i) after each step, from the step's loads only."""
    cfg = nn.model_config({"hidden_size": 8, "num_heads": 2, "num_experts": 4, "experts_per_tok": 2,
                           "router_score": "sigmoid", "moe_balance": "bias_update", "bias_update_rate": 0.01})
    router = nn.TopKRouter(cfg, mg.get_backend("numpy"))
    router.e_score_correction_bias.data = np.array([0.1, 0.0, -0.2, 0.05], np.float32)
    router.update_bias(np.array([10, 2, 4, 0]))                # mean 4: overloaded, under, even, under
    np.testing.assert_allclose(router.e_score_correction_bias.numpy(), [0.09, 0.01, -0.2, 0.06], rtol=1e-6)

    model = nn.build_model({**MLA, **MOE, "router_score": "sigmoid", "moe_balance": "bias_update"})
    ids = mg.tensor(np.random.default_rng(1).integers(0, 40, (2, 10)))
    model(ids)
    layer = model.moe_layers()[0]
    load = layer.since_step.load.copy()
    model.after_step()
    expected = 0.001 * np.sign(load.mean() - load)
    np.testing.assert_allclose(layer.gate.e_score_correction_bias.numpy(), expected, rtol=1e-6)
    model.after_step()  # no forward since: nothing moves
    np.testing.assert_allclose(layer.gate.e_score_correction_bias.numpy(), expected, rtol=1e-6)
    model.eval()
    model(ids)  # evaluation does not count
    model.after_step()
    np.testing.assert_allclose(layer.gate.e_score_correction_bias.numpy(), expected, rtol=1e-6)


def test_capacity_drops_tokens_in_training_only_and_reports_them():
    cfg = {**MLA, **MOE, "num_experts": 4, "experts_per_tok": 2, "capacity_factor": 0.5}
    m = nn.build_model(cfg, seed=2)
    ids = mg.tensor(np.random.default_rng(2).integers(0, 40, (2, 16)))
    m(ids)
    stats = m.routing_stats()
    load = stats["expert_tokens"]["1"]
    capacity = int(np.ceil(0.5 * 32 * 2 / 4))
    assert sum(load) == 64 and stats["dropped_tokens"] == sum(max(0, n - capacity) for n in load) > 0
    m.eval()
    with mg.no_grad():
        dropped_off = m(ids).numpy()
    m2 = nn.build_model({**cfg, "capacity_factor": None}, seed=2)
    m2.eval()
    np.testing.assert_array_equal(dropped_off, m2(ids).numpy())  # evaluation routes every token
    assert m.routing_stats()["dropped_tokens"] == 0 and m.auxiliary_loss() is not None


def test_moe_balance_none_gives_no_aux_loss_and_models_without_experts_answer_none():
    m = nn.build_model({**MLA, **MOE, "moe_balance": "none"})
    m(mg.tensor([[1, 2, 3]]))
    assert m.auxiliary_loss() is None and m.routing_stats()["expert_tokens"]["1"]
    dense = nn.build_model(MLA)
    dense(mg.tensor([[1, 2, 3]]))
    assert dense.auxiliary_loss() is None and dense.routing_stats() is None
    dense.after_step()
