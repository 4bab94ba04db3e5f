"""Mamba layers beyond transformers' parity: Mamba3 with its features off is Mamba2 exactly; the chunked
forward equals the recurrence stepped one token at a time (with the cache) for every family and hybrid;
float64 gradcheck of the Mamba3 layer; the strict backend; generation; the config's Mamba checks."""

import numpy as np
import pytest

import minigrad as mg
import nn
from nn.mamba3 import Mamba3Mixer
from nn.mamba_config import resolve

BASE = dict(vocab_size=61, hidden_size=32, num_layers=2, max_seq_len=64)
MAMBA2 = dict(mamba2_state_size=8, mamba2_num_heads=4, mamba2_head_dim=16, mamba2_chunk_size=4, mamba2_n_groups=2)
OFF = dict(mamba3_enabled=True, mamba3_trapezoidal=False, mamba3_complex_rope=False, mamba3_bc_norm=False,
           mamba3_mimo_rank=0, mamba3_use_conv=True)
ALL_ON = dict(mamba3_enabled=True, mamba3_trapezoidal=True, mamba3_complex_rope=True, mamba3_bc_norm=True,
              mamba3_mimo_rank=2, mamba3_use_conv=True)
FAMILIES = {
    "mamba1": dict(mamba_layers=[0, 1], mamba_d_state=8),
    "mamba2": dict(mamba_layers=[0, 1], **MAMBA2),
    "mamba3": dict(mamba_layers=[0, 1], **MAMBA2, mamba3_enabled=True),   # the defaults: no conv, SISO
    "mamba3-all": dict(mamba_layers=[0, 1], **MAMBA2, **ALL_ON),
    "mamba3-trapezoidal": dict(mamba_layers=[0, 1], **MAMBA2, **{**OFF, "mamba3_trapezoidal": True}),
    "mamba3-rope": dict(mamba_layers=[0, 1], **MAMBA2, **{**OFF, "mamba3_complex_rope": True}),
    "mamba3-mimo": dict(mamba_layers=[0, 1], **MAMBA2, **{**OFF, "mamba3_mimo_rank": 3}),
    "hybrid-mamba2": dict(mamba_layers=[1], **MAMBA2, num_heads=4, kv_heads=2),
    "hybrid-mamba3": dict(mamba_layers=[0], **MAMBA2, **ALL_ON, num_heads=4),
}


def build(name, backend="numpy", seed=0):
    m = nn.build_model({**BASE, **FAMILIES[name]}, backend=backend, seed=seed)
    rng = np.random.default_rng(seed)
    for pname, p in m.named_parameters():  # away from the init (ones, zeros) so that every part matters
        if p.ndim >= 2 and "embed" not in pname:
            noise = rng.standard_normal(p.shape) * 0.15
        else:
            noise = rng.standard_normal(p.shape) * 0.1 + p.numpy()
        p.data = p.backend.asarray(noise.astype(np.float32))
    return m


def test_mamba3_with_every_feature_off_is_mamba2_exactly():
    m2 = build("mamba2")
    m3 = nn.build_model({**BASE, "mamba_layers": [0, 1], **MAMBA2, **OFF})
    assert isinstance(m3.backbone.layers[0].mixer, Mamba3Mixer)
    assert [n for n, _ in m3.named_parameters()] == [n for n, _ in m2.named_parameters()]
    m3.load_state_dict(m2.state_dict())
    ids = np.random.default_rng(0).integers(0, 61, (2, 11))
    outs = []
    for m in (m2, m3):
        logits = m(mg.tensor(ids))
        (logits * logits).mean().backward()
        outs.append((logits.numpy(), {n: p.grad.numpy() for n, p in m.named_parameters()}))
    assert np.array_equal(outs[0][0], outs[1][0])
    for n in outs[0][1]:
        assert np.array_equal(outs[0][1][n], outs[1][1][n]), n


def step_by_step(m, ids, splits):
    """Logits of feeding ids in pieces (a prompt, a second multi-token piece, then single tokens) with a cache."""
    cache, pieces, start = m.new_cache(ids.shape[0]), [], 0
    with mg.no_grad():
        for end in splits + list(range(splits[-1] + 1, ids.shape[1] + 1)):
            pieces.append(m(mg.tensor(ids[:, start:end], backend=m.backend), cache).numpy())
            start = end
    return np.concatenate(pieces, axis=1)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_recurrent_steps_equal_the_full_sequence(name):
    m = build(name)
    ids = np.random.default_rng(1).integers(0, 61, (2, 14))
    with mg.no_grad():
        full = m(mg.tensor(ids)).numpy()
    # 5 tokens from an empty cache, 4 more from the cached state (chunked, not a multiple of the chunk), then 1 by 1
    np.testing.assert_allclose(step_by_step(m, ids, [5, 9]), full, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["mamba1", "mamba3-all", "hybrid-mamba2"])
def test_recurrent_steps_equal_the_full_sequence_on_numba(name):
    m = build(name, backend="numba")
    ids = np.random.default_rng(2).integers(0, 61, (2, 12))
    with mg.no_grad():
        full = m(mg.tensor(ids, backend="numba")).numpy()
    np.testing.assert_allclose(step_by_step(m, ids, [6, 8]), full, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["mamba2", "mamba3-all", "hybrid-mamba3"])
def test_greedy_generation_with_the_cache_equals_without(name):
    m = build(name, seed=3)
    for p in m.parameters():
        if p.ndim == 2:
            p.data = p.data * 6  # well-separated logits
    prompt = np.array([[1, 5, 7, 2], [3, 3, 8, 1]])
    a = m.generate(prompt, 12, temperature=0)
    assert np.array_equal(a, m.generate(prompt, 12, temperature=0, use_cache=False))
    assert a.shape == (2, 16)


def test_mamba3_layer_gradcheck_float64():
    cfg = nn.model_config({"vocab_size": 10, "hidden_size": 8, "num_layers": 1, "mamba_layers": [0],
                           "mamba2_state_size": 8, "mamba2_num_heads": 2, "mamba2_head_dim": 8, "mamba2_chunk_size": 2,
                           "mamba2_n_groups": 2, "mamba2_conv_kernel": 3, **ALL_ON})
    mixer = Mamba3Mixer(resolve(cfg), 0, mg.get_backend("numpy"))
    rng = np.random.default_rng(4)
    for p in mixer.parameters():
        p.data = (rng.standard_normal(p.shape) * 0.4 + (p.numpy() if p.ndim == 1 else 0)).astype(np.float64)
    x = mg.tensor(rng.standard_normal((2, 5, 8)), requires_grad=True, dtype=mg.float64)
    small = [mixer.D, mixer.dt_bias, mixer.A_log, mixer.B_bias, mixer.C_bias, mixer.mimo_x, mixer.mimo_o,
             mixer.B_norm.weight, mixer.norm.weight, mixer.conv1d.bias]
    assert mg.gradcheck(lambda *_: mixer(x), [x, *small], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["mamba1", "mamba2", "mamba3-all", "hybrid-mamba3"])
def test_layers_run_on_the_strict_backend(name):
    """Arrays that refuse conversion to NumPy: the layers reach array math only through the backend."""
    ids = np.random.default_rng(5).integers(0, 61, (2, 7))
    results = []
    for backend in ("numpy", "strict"):
        m = build(name).to(backend)
        logits = m(mg.tensor(ids, backend=backend))
        (logits * logits).mean().backward()
        results.append((logits.numpy(), [p.grad.numpy() for p in m.parameters()]))
        with mg.no_grad():
            step_by_step(m, ids, [3, 5])
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layer_kinds_and_names_in_a_hybrid():
    m = build("hybrid-mamba2")
    names = dict(m.named_parameters())
    assert "model.layers.0.self_attn.q_proj.weight" in names and "model.layers.0.mlp.up_proj.weight" in names
    assert "model.layers.1.norm.weight" in names and "model.layers.1.mixer.A_log" in names
    assert "model.layers.1.mlp.up_proj.weight" not in names
    cache = m.new_cache(1)
    assert isinstance(cache.for_layer(0), nn.AttentionCache) and isinstance(cache.for_layer(1), nn.MambaCache)


@pytest.mark.parametrize("cfg,family", [
    (dict(mamba_layers=[0]), "mamba1"),
    (dict(mamba_layers=[0], mamba2_chunk_size=16), "mamba2"),
    (dict(mamba_layers=[0], mamba3_enabled=True), "mamba3"),
])
def test_family_follows_the_keys(cfg, family):
    assert nn.model_config({**BASE, **cfg}).mamba.family == family


def test_mamba2_width_constraint_names_all_four_keys():
    with pytest.raises(nn.ConfigError) as e:
        nn.build_model({**BASE, "mamba_layers": [0, 1], "mamba2_num_heads": 5, "mamba2_head_dim": 16}, where="m.yaml")
    msg = str(e.value)
    for key in ("model.hidden_size = 32", "model.mamba2_expand = 2", "model.mamba2_num_heads = 5",
                "model.mamba2_head_dim = 16", "m.yaml"):
        assert key in msg, key


@pytest.mark.parametrize("change,expect", [
    (dict(mamba_layers=[0, 2]), "model.mamba_layers = [0, 2] must list distinct layer indices in 0..1"),
    (dict(mamba_layers=[1, 1]), "must list distinct layer indices"),
    (dict(mamba_layers=[0], mamba2_num_heads=4, mamba2_head_dim=16, mamba2_n_groups=3),
     "model.mamba2_n_groups = 3 does not divide the 4 Mamba2 heads"),
])
def test_bad_mamba_configs_are_refused(change, expect):
    with pytest.raises(nn.ConfigError, match=expect.replace("[", r"\[").replace("]", r"\]")):
        nn.build_model({**BASE, **change})


def test_mamba1_keys_are_warned_about_in_a_mamba2_model():
    from minigrad.config import Problems

    problems = Problems("cfg")
    nn.check_model(nn.config.ModelConfig(**{**BASE, "mamba_layers": [0], "mamba_d_state": 16, **MAMBA2}), problems)
    assert any("model.mamba_d_state set, but the Mamba layers are mamba2" in w for w in problems.warnings)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_parameter_count_from_the_config(name):
    """train.py refuses a model too large for the machine before building it, from this count."""
    cfg = nn.model_config({**BASE, **FAMILIES[name]})
    assert nn.parameter_count(cfg) == nn.build_model(cfg).num_parameters()


def _graph_bytes(out, params) -> int:
    """Bytes of the distinct buffers the graph behind ``out`` keeps: arrays its Functions hold and the data of
    their non-parameter inputs (the graph holds its inputs)."""
    from minigrad.autograd import _topo_order

    seen = {}

    def add(a):
        if isinstance(a, np.ndarray) and a.size:
            while isinstance(a.base, np.ndarray):
                a = a.base
            seen[id(a)] = 0 if id(a) in params else a.nbytes

    for fn in _topo_order(out._ctx):
        for v in vars(fn).values():
            for a in (v if isinstance(v, (tuple, list)) else (v,)):
                add(a)
        for t in fn.inputs:
            add(t.data)
    return sum(seen.values())


@pytest.mark.parametrize("name", ["mamba1", "mamba2", "mamba3", "mamba3-all"])
def test_activation_estimate_is_what_the_graph_keeps(name):
    batch, seq = 2, 32
    measured = []
    for layers in (1, 3):  # the difference is two Mamba layers' worth
        cfg = nn.model_config({**BASE, **FAMILIES[name], "hidden_size": 64, "num_layers": layers,
                               "mamba_layers": list(range(layers)), "mamba2_num_heads": 8, "mamba2_chunk_size": 8})
        m = nn.build_model(cfg, backend="numba")
        out = m(mg.tensor(np.zeros((batch, seq), dtype=np.int64), backend="numba"))
        measured.append(_graph_bytes(out, {id(p.data) for p in m.parameters()}))
    per_layer = (measured[1] - measured[0]) / 2
    estimate = (nn.training_memory(cfg, 0, batch, seq, "adamw")["activations"]
                - nn.training_memory(nn.model_config({**cfg.to_dict(), "num_layers": 1, "mamba_layers": [0]}), 0, batch,
                                     seq, "adamw")["activations"]) / 2
    assert 0.8 <= estimate / per_layer <= 1.25, (estimate, per_layer)


def test_a_log_gets_no_weight_decay_and_no_muon():
    from minigrad.optim import param_groups
    from minigrad.optim.muon import MuonWithAdamW

    m = build("mamba1")
    a_log = m.backbone.layers[0].mixer.A_log
    assert a_log.ndim == 2
    groups = param_groups.decay_groups(m.named_parameters(), 0.1)
    assert any(p is a_log for g in groups if g["weight_decay"] == 0.0 for p in g["params"])
    muon = MuonWithAdamW(m.named_parameters())
    assert all(p is not a_log for g in muon.param_groups if g["algorithm"] == "muon" for p in g["params"])
