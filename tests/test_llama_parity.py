"""Our Llama against transformers' LlamaForCausalLM: same weights, same logits and gradients."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import minigrad as mg  # noqa: E402
import nn  # noqa: E402


def hf_model(cfg: dict, seed: int = 0):
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"], num_hidden_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_heads"], num_key_value_heads=cfg["kv_heads"],
        max_position_embeddings=cfg["max_seq_len"], rms_norm_eps=cfg["rms_norm_eps"],
        rope_theta=cfg["rope_theta"], tie_word_embeddings=cfg["tie_word_embeddings"],
        attention_bias=False, mlp_bias=False, hidden_act="silu", attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_cfg).float()
    with torch.no_grad():  # HF's init leaves norms at 1; perturb them so they matter
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 1 else 0.05) + (1.0 if p.ndim == 1 else 0.0))
    return model


CASES = [
    # (num_heads, kv_heads, tied, seq_len)
    (4, 4, False, 13),
    (4, 1, False, 7),
    (8, 2, True, 19),
    (6, 3, True, 11),
]


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
@pytest.mark.parametrize("heads,kv,tied,seq", CASES)
def test_logits_and_grads_match_transformers(backend, heads, kv, tied, seq):
    cfg = dict(vocab_size=97, hidden_size=48, intermediate_size=88, num_layers=2, num_heads=heads,
               kv_heads=kv, max_seq_len=64, rms_norm_eps=1e-5, rope_theta=10000.0,
               tie_word_embeddings=tied)
    ref = hf_model(cfg)
    ours = nn.build_model(cfg, backend=backend)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})

    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg["vocab_size"], size=(3, seq))
    targets = rng.integers(0, cfg["vocab_size"], size=(3, seq))

    out = ref(torch.tensor(ids))
    ref_loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, cfg["vocab_size"]),
                                                 torch.tensor(targets).reshape(-1))
    ref_loss.backward()

    logits = ours(mg.tensor(ids, backend=backend))
    loss = mg.cross_entropy(logits, mg.tensor(targets, backend=backend))
    loss.backward()

    assert np.abs(logits.numpy() - out.logits.detach().numpy()).max() <= 1e-4
    assert abs(loss.item() - ref_loss.item()) <= 1e-5
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    ours_grads = dict(ours.named_parameters())
    assert set(ours_grads) == set(ref_grads)
    for name, p in ours_grads.items():
        g, rg = p.grad.numpy(), ref_grads[name]
        rel = np.abs(g - rg).max() / max(np.abs(rg).max(), 1e-12)
        assert rel <= 1e-4, f"{name}: relative gradient error {rel:.2e}"
