"""Generation: the KV cache changes nothing but speed; greedy tokens match transformers."""

import numpy as np
import pytest

import minigrad as mg
import nn

CFG = dict(hidden_size=32, num_layers=2, num_heads=4, kv_heads=2, vocab_size=40, max_seq_len=48,
           intermediate_size=64)


def _model(seed=0):
    m = nn.build_model(CFG, seed=seed)
    # larger weights than the 0.02 init so logits are well separated (no near-ties in argmax)
    for p in m.parameters():
        if p.ndim == 2:
            p.data = p.data * 20
    return m


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
def test_greedy_with_cache_equals_without(backend):
    m = _model().to(backend)
    prompt = np.array([[1, 5, 7, 2, 9], [3, 3, 8, 1, 0]])
    a = m.generate(prompt, 20, temperature=0)
    b = m.generate(prompt, 20, temperature=0, use_cache=False)
    assert a.shape == (2, 25)
    assert np.array_equal(a, b)
    assert np.array_equal(a[:, :5], prompt)


def test_cached_logits_equal_full_logits():
    m = _model()
    ids = np.random.default_rng(0).integers(0, 40, (2, 12))
    full = m(mg.tensor(ids)).numpy()
    cache = nn.KVCache(2, 2, 48, 2, 8, m.model.embed_tokens.weight.backend)
    with mg.no_grad():
        first = m(mg.tensor(ids[:, :7]), cache).numpy()
        rest = [m(mg.tensor(ids[:, t:t + 1]), cache).numpy() for t in range(7, 12)]
    got = np.concatenate([first] + rest, axis=1)
    assert np.abs(got - full).max() < 1e-4


def test_greedy_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    m = _model(seed=1)
    hf_cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=48,
                                      rms_norm_eps=1e-5, tie_word_embeddings=False)
    ref = transformers.LlamaForCausalLM(hf_cfg).float().eval()
    ref.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()}, strict=False)
    prompt = np.array([[4, 1, 30, 2]])
    ours = m.generate(prompt, 12, temperature=0)
    theirs = ref.generate(torch.tensor(prompt), max_new_tokens=12, do_sample=False, min_new_tokens=12,
                          pad_token_id=0, eos_token_id=None).numpy()
    assert np.array_equal(ours, theirs)


def test_sampling_rules():
    rng = mg.Generator(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = np.array([nn.sample_next(logits, 1.0, None, None, rng)[0] for _ in range(4000)])
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert np.abs(freq - [0.5, 0.3, 0.15, 0.05]).max() < 0.03
    top2 = {int(nn.sample_next(logits, 1.0, 2, None, rng)[0]) for _ in range(300)}
    assert top2 == {0, 1}
    nucleus = {int(nn.sample_next(logits, 1.0, None, 0.7, rng)[0]) for _ in range(300)}
    assert nucleus == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    assert nn.sample_next(logits, 0.0, None, None, rng)[0] == 0
    a = [int(nn.sample_next(logits, 1.0, None, None, mg.Generator(7))[0]) for _ in range(5)]
    assert len(set(a)) == 1  # same seed, same draw


def test_generate_is_seeded():
    m = _model()
    a = m.generate([[1, 2, 3]], 10, temperature=1.0, top_k=10, seed=5)
    b = m.generate([[1, 2, 3]], 10, temperature=1.0, top_k=10, seed=5)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="max_seq_len"):
        m.generate([[1, 2, 3]], 46)
