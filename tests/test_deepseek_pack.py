"""MLA and MoE models as transformers folders: ours load in transformers' DeepseekV3ForCausalLM (offline) with
equal logits, transformers' DeepseekV3 folders load into minigrad, other MoE models pack under our own
model_type, and train.py sample / pack work on MLA + MoE runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from packing_helpers import make_run  # noqa: E402
from test_deepseek_parity import BASE, CASES, reference_model  # noqa: E402

import minigrad as mg  # noqa: E402
import nn  # noqa: E402
import train  # noqa: E402

MLA_MOE = dict(hidden_size=32, num_layers=3, num_heads=4, vocab_size=61, max_seq_len=32, intermediate_size=12,
               kv_latent_dim=16, q_latent_dim=12, d_rope=4, mla_v_head_dim=6, num_experts=4, experts_per_tok=2,
               first_dense_layers=1, router_score="sigmoid", norm_topk_prob=True)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _random(cfg: dict, seed: int = 0) -> nn.CausalLM:
    m = nn.build_model(cfg, seed=seed, backend="numpy")
    rng = np.random.default_rng(seed)
    for p in m.parameters():  # norms away from 1 and routers away from 0, so that both matter
        p.data = (rng.standard_normal(p.shape) * (0.3 if p.ndim == 1 else 0.1) + (p.ndim == 1)).astype(np.float32)
    return m


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("extra", [{}, {"shared_expert_enabled": True, "router_bias": True, "n_group": 2,
                                        "topk_group": 1}, {"num_experts": None, "experts_per_tok": None,
                                                           "first_dense_layers": 0, "router_score": "softmax",
                                                           "norm_topk_prob": False}],
                         ids=["moe-no-shared-no-bias", "moe-shared-bias-groups", "dense-mla"])
def test_our_models_load_in_transformers_deepseek_v3(tmp_path, extra):
    ours = _random({**MLA_MOE, **extra})
    for m in ours.moe_layers():
        if m.gate.e_score_correction_bias is not None:
            m.gate.e_score_correction_bias.data = np.linspace(-0.2, 0.2, 4).astype(np.float32)
    arch = nn.save_pretrained(str(tmp_path), ours.state_dict(), ours.config, bos_id=0, eos_id=0)
    assert arch.family == "deepseek_v3" and json.load(open(tmp_path / "config.json"))["model_type"] == "deepseek_v3"
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert type(ref).__name__ == "DeepseekV3ForCausalLM"
    ids = np.random.default_rng(1).integers(0, 61, (2, 13))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids, backend="numpy")).numpy() - theirs).max() <= 1e-4
    prompt = ids[:1, :4]  # greedy generation there (its KV cache) gives our tokens (our latent cache)
    with torch.no_grad():
        hf_tokens = ref.generate(torch.tensor(prompt), max_new_tokens=10, do_sample=False,
                                 attention_mask=torch.ones_like(torch.tensor(prompt)), pad_token_id=0).numpy()
    np.testing.assert_array_equal(ours.generate(prompt, 10, temperature=0.0), hf_tokens)
    back = nn.from_pretrained(str(tmp_path), backend="numpy").state_dict()
    assert all(np.array_equal(v, back[k]) for k, v in ours.state_dict().items())
    # a DeepseekV3 folder always has the score-correction bias: read back, a model without one gets zeros
    assert all(not back[k].any() for k in set(back) - set(ours.state_dict()))
    assert {k.rsplit(".", 1)[-1] for k in set(back) - set(ours.state_dict())} <= {"e_score_correction_bias"}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("case", ["v3-top2-shared-qlora-grouped", "v3-top1-noshared-qproj"])
def test_transformers_deepseek_v3_folders_load_into_minigrad(tmp_path, case):
    family, extra = CASES[case]
    c = {**BASE, **extra}
    ref = reference_model(family, c).eval()
    ref.save_pretrained(tmp_path)
    ours = nn.from_pretrained(str(tmp_path), backend="numpy")
    assert ours.config.uses_mla and ours.config.num_experts == c["num_experts"]
    ids = np.random.default_rng(2).integers(0, c["vocab_size"], (2, 11))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids, backend="numpy")).numpy() - theirs).max() <= 1e-4


def test_other_moe_models_pack_under_our_own_model_type(tmp_path):
    """A softmax-routed MoE with grouped-query attention (Mixtral-like) is no DeepseekV3: it round-trips
    through nn.from_pretrained under model_type minigrad_moe."""
    ours = _random({**{k: v for k, v in MLA_MOE.items() if k not in ("kv_latent_dim", "q_latent_dim", "d_rope",
                                                                     "mla_v_head_dim")},
                    "kv_heads": 2, "router_score": "softmax"})
    arch = nn.save_pretrained(str(tmp_path), ours.state_dict(), ours.config, bos_id=0, eos_id=0)
    assert arch.family == "moe" and json.load(open(tmp_path / "config.json"))["model_type"] == "minigrad_moe"
    back = nn.from_pretrained(str(tmp_path), backend="numpy")
    ids = mg.tensor(np.arange(12)[None] % 61, backend="numpy")
    assert np.array_equal(ours(ids).numpy(), back(ids).numpy())


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_sample_and_pack_an_mla_moe_run(tmp_path, capsys):
    model = {**{k: MLA_MOE[k] for k in ("kv_latent_dim", "q_latent_dim", "d_rope", "num_experts", "experts_per_tok",
                                         "router_score", "norm_topk_prob")},
             "kv_heads": None, "first_dense_layers": 1}
    base = make_run(tmp_path, model=model, trainer={"max_steps": 4, "load_balance_alpha": 0.01})
    assert train.main(["sample", "--out", base.run, "--checkpoint", "final", "--prompt", "def ",
                       "--max-new-tokens", "5", "--backend", "numpy"]) == 0
    capsys.readouterr()
    out = os.path.join(base.root, "hf")
    assert train.main(["pack", "--out", base.run, "--checkpoint", "final", "--username", "me", "--name", "m",
                       "--output", out]) == 0
    ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(out, "me", "m")).eval()
    ours, _ = nn.model_from_checkpoint(os.path.join(base.run, "final"), backend="numpy")
    ids = np.arange(20)[None] % 290
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids, backend="numpy")).numpy() - theirs).max() <= 1e-4
