"""Module bookkeeping, state_dict strictness, initialisation and build_model's config checks."""

import numpy as np
import pytest

import minigrad as mg
import nn

TINY = dict(hidden_size=32, num_layers=2, num_heads=4, kv_heads=2, vocab_size=50, max_seq_len=16,
            intermediate_size=48)


def test_parameter_names_follow_transformers():
    m = nn.build_model(TINY)
    names = [n for n, _ in m.named_parameters()]
    assert names[0] == "model.embed_tokens.weight"
    for want in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
                 "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
                 "model.norm.weight", "lm_head.weight"):
        assert want in names
    assert "lm_head.weight" not in dict(nn.build_model({**TINY, "tie_word_embeddings": True}).named_parameters())


def test_parameter_count_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    ref = transformers.LlamaForCausalLM(cfg)
    assert nn.build_model(TINY).num_parameters() == sum(p.numel() for p in ref.parameters())
    del torch


def test_state_dict_round_trip_and_strict_errors():
    a, b = nn.build_model(TINY, seed=1), nn.build_model(TINY, seed=2)
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    b.load_state_dict(sd)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p.numpy(), q.numpy()), n
    bad = dict(sd)
    del bad["model.norm.weight"]
    bad["model.extra.weight"] = np.zeros(3)
    bad["lm_head.weight"] = np.zeros((3, 3))
    with pytest.raises(nn.StateDictError) as e:
        b.load_state_dict(bad)
    msg = str(e.value)
    assert "missing keys: model.norm.weight" in msg
    assert "unexpected keys: model.extra.weight" in msg
    assert "lm_head.weight: checkpoint (3, 3) vs model (50, 32)" in msg


def test_init_is_deterministic_and_scaled():
    a, b = nn.build_model(TINY, seed=3), nn.build_model(TINY, seed=3)
    c = nn.build_model(TINY, seed=4)
    pa, pc = dict(a.named_parameters()), dict(c.named_parameters())
    for n, p in b.named_parameters():
        assert np.array_equal(pa[n].numpy(), p.numpy())
    assert not np.array_equal(pa["model.layers.0.mlp.up_proj.weight"].numpy(),
                              pc["model.layers.0.mlp.up_proj.weight"].numpy())
    big = nn.build_model({**TINY, "hidden_size": 256, "intermediate_size": 512, "vocab_size": 512, "num_layers": 8})
    p = dict(big.named_parameters())
    assert abs(p["model.layers.0.mlp.up_proj.weight"].numpy().std() - 0.02) < 1e-3
    assert abs(p["model.layers.0.self_attn.o_proj.weight"].numpy().std() - 0.02 / 4) < 3e-4  # 1/sqrt(2*8)
    assert np.all(p["model.norm.weight"].numpy() == 1)


def test_train_eval_apply_zero_grad():
    m = nn.build_model(TINY)
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen.count("DecoderBlock") == 2
    ids = mg.randint(0, 50, (2, 8))
    mg.cross_entropy(m(ids), ids).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


@pytest.mark.parametrize("change,key", [
    ({"hidden_sise": 32}, "hidden_size"),            # typo gets a did-you-mean
    ({"num_heads": 5}, "num_heads"),                 # 32 % 5
    ({"kv_heads": 3}, "kv_heads"),                   # 4 % 3
    ({"num_layers": "two"}, "num_layers"),           # wrong type
    ({"mamba_layers": [0, 7]}, "mamba_layers"),      # no layer 7
    ({"mamba_layers": [0], "mamba2_num_heads": 3}, "mamba2_num_heads"),   # 32 * 2 != 3 * head_dim
    ({"num_experts": 4}, "num_experts"),
    ({"kv_latent_dim": 16}, "kv_latent_dim"),
])
def test_build_model_rejects_bad_config(change, key):
    cfg = {**TINY, **change}
    with pytest.raises(nn.ConfigError) as e:
        nn.build_model(cfg, where="my.yaml")
    assert key in str(e.value) and "my.yaml" in str(e.value)


def test_oxidizr_style_nulls_are_accepted():
    cfg = {**TINY, "kv_heads": None, "kv_latent_dim": None, "num_experts": None, "mamba_layers": None,
           "shared_expert_enabled": None, "name": "x", "rope_theta": 10000}
    m = nn.build_model(cfg)
    assert m.config.n_kv_heads == 4


def test_sequence_longer_than_max_is_refused():
    m = nn.build_model(TINY)
    with pytest.raises(ValueError, match="max_seq_len"):
        m(mg.randint(0, 50, (1, 17)))


def test_layers_built_alone_get_pytorch_style_initialisation():
    torch = pytest.importorskip("torch")
    mg.manual_seed(0)
    lin = nn.Linear(64, 32, bias=True)
    emb = nn.Embedding(1000, 16)
    bound = 1 / np.sqrt(64)
    assert np.abs(lin.bias.numpy()).max() <= bound and np.abs(lin.weight.numpy()).max() <= bound
    assert lin.weight.numpy().std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # the std of U(-b, b)
    assert emb.weight.numpy().std() == pytest.approx(1.0, rel=0.05)
    ref = torch.nn.Linear(64, 32).requires_grad_(False)  # torch's own: U(-1/sqrt(in), 1/sqrt(in))
    assert float(ref.weight.abs().max()) <= bound and float(ref.weight.std()) == pytest.approx(
        float(lin.weight.numpy().std()), rel=0.15)
    x = mg.randn(8, 64)
    assert float(lin(x).numpy().std()) > 0.1  # not the all-zero layer it used to be


def test_buffers_are_persistent_by_default_and_round_trip():
    m = nn.Module()
    m.register_buffer("running", mg.ones(3))
    m.register_buffer("table", mg.ones(2), persistent=False)
    sd = m.state_dict()
    assert list(sd) == ["running"]
    other = nn.Module()
    other.register_buffer("running", mg.zeros(3))
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other.running.numpy(), np.ones(3))
