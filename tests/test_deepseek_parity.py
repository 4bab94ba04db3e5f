"""MLA and MoE models against transformers, built offline from small config objects: the same weights
give the same logits and the same gradient for every parameter.

* DeepseekV3ForCausalLM: MLA (interleaved RoPE) and sigmoid routers with the score-correction bias,
  top-k renormalisation, routed scaling and group-limited routing (a group scores its two best);
* DeepseekV2ForCausalLM: MLA and softmax routers, greedy or group-limited (a group scores its best);
* MixtralForCausalLM: Llama-style grouped-query attention with softmax top-2 MoE MLPs.

Each has dense first layers (first_dense_layers) where the reference has them, top-k 1 and 2, shared
experts on and off, and q_lora_rank null and set.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import minigrad as mg  # noqa: E402
import nn  # noqa: E402

BASE = dict(vocab_size=61, hidden_size=32, num_layers=3, num_heads=4, max_seq_len=32, rms_norm_eps=1e-5,
            rope_theta=10000.0, intermediate_size=12)
MLA = dict(kv_latent_dim=16, d_rope=4, mla_nope_head_dim=8, mla_v_head_dim=6)


def _mla_kwargs(c):
    shared = c.get("num_shared_experts", 1) if c.get("shared_expert_enabled") else 0
    return dict(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
                intermediate_size=c["dense_intermediate_size"], moe_intermediate_size=c["intermediate_size"],
                num_hidden_layers=c["num_layers"],
                num_attention_heads=c["num_heads"], num_key_value_heads=c["num_heads"], n_shared_experts=shared,
                n_routed_experts=c["num_experts"], routed_scaling_factor=c.get("routed_scaling_factor", 1.0),
                kv_lora_rank=c["kv_latent_dim"], q_lora_rank=c.get("q_latent_dim"), qk_rope_head_dim=c["d_rope"],
                v_head_dim=c["mla_v_head_dim"], qk_nope_head_dim=c["mla_nope_head_dim"],
                n_group=c.get("n_group") or 1, topk_group=c.get("topk_group") or 1,
                num_experts_per_tok=c["experts_per_tok"], first_k_dense_replace=c["first_dense_layers"],
                max_position_embeddings=c["max_seq_len"], rms_norm_eps=c["rms_norm_eps"],
                rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"]},
                tie_word_embeddings=False, attn_implementation="eager")


def reference_model(family, c):
    if family == "v3":
        hf = transformers.DeepseekV3Config(**_mla_kwargs(c), norm_topk_prob=c["norm_topk_prob"], rope_interleave=True)
        cls = transformers.DeepseekV3ForCausalLM
    elif family == "v2":
        grouped = (c.get("n_group") or 1) > 1
        hf = transformers.DeepseekV2Config(**_mla_kwargs(c),
                                           topk_method="group_limited_greedy" if grouped else "greedy")
        cls = transformers.DeepseekV2ForCausalLM
    else:
        hf = transformers.MixtralConfig(
            vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
            num_hidden_layers=c["num_layers"], num_attention_heads=c["num_heads"], num_key_value_heads=c["kv_heads"],
            num_local_experts=c["num_experts"], num_experts_per_tok=c["experts_per_tok"], router_jitter_noise=0.0,
            max_position_embeddings=c["max_seq_len"], rms_norm_eps=c["rms_norm_eps"],
            rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"]}, tie_word_embeddings=False,
            attn_implementation="eager")
        cls = transformers.MixtralForCausalLM
    torch.manual_seed(0)
    model = cls(hf).float()
    with torch.no_grad():  # random norms and routers too (transformers starts them at 1 and 0)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 1 else 0.1) + (1.0 if p.ndim == 1 else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):  # so that the bias changes which experts are chosen
                b.copy_(torch.randn_like(b) * 0.2)
    return model


CASES = {
    # DeepSeek-V3: sigmoid router, bias, renormalised and scaled top-2 from the best 2 of 4 groups; shared expert
    "v3-top2-shared-qlora-grouped": ("v3", dict(
        **MLA, q_latent_dim=12, num_experts=8, experts_per_tok=2, shared_expert_enabled=True, first_dense_layers=1,
        dense_intermediate_size=40, router_score="sigmoid", router_bias=True, norm_topk_prob=True,
        routed_scaling_factor=2.5, n_group=4, topk_group=2)),
    # DeepSeek-V3: top-1, no shared expert, a plain q_proj, no group limit, raw sigmoid weights
    "v3-top1-noshared-qproj": ("v3", dict(
        **MLA, num_experts=4, experts_per_tok=1, shared_expert_enabled=False, first_dense_layers=1,
        dense_intermediate_size=40, router_score="sigmoid", router_bias=True, norm_topk_prob=False)),
    # DeepSeek-V2: softmax router, greedy top-2, two shared experts, a plain q_proj, two dense layers
    "v2-top2-shared-qproj": ("v2", dict(
        **MLA, num_experts=6, experts_per_tok=2, shared_expert_enabled=True, num_shared_experts=2,
        first_dense_layers=2, dense_intermediate_size=40, router_score="softmax", routed_scaling_factor=1.5)),
    # DeepSeek-V2: softmax router, top-1 from the best 2 of 4 groups, no shared expert
    "v2-top1-noshared-qlora-grouped": ("v2", dict(
        **MLA, q_latent_dim=12, num_experts=8, experts_per_tok=1, first_dense_layers=1, dense_intermediate_size=40,
        router_score="softmax", n_group=4, topk_group=2)),
    # Mixtral: Llama blocks (grouped-query attention) with softmax top-2 renormalised MoE MLPs in every layer
    "mixtral-gqa-top2": ("mixtral", dict(
        kv_heads=2, num_experts=4, experts_per_tok=2, router_score="softmax", norm_topk_prob=True,
        router_bias=False)),
}


def _nonempty(named):
    """transformers builds a zero-width shared expert when there is none: not a parameter of ours."""
    return {k: v for k, v in named if v.numel()}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # transformers' zero-width shared expert
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_every_gradient_match_transformers(case, backend):
    family, extra = CASES[case]
    c = {**BASE, **extra}
    ref = reference_model(family, c)
    ours = nn.build_model(c, backend=backend)
    ours.load_state_dict({k: v.detach().numpy() for k, v in _nonempty(ref.state_dict().items()).items()})
    # the count the trainer makes from the config alone (to refuse models too large) is the real one
    assert nn.parameter_count(ours.config) == ours.num_parameters() == sum(p.numel() for p in ref.parameters())

    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, c["vocab_size"], (2, 11)), rng.integers(0, c["vocab_size"], (2, 11))
    out = ref(torch.tensor(ids))
    torch.nn.functional.cross_entropy(out.logits.reshape(-1, c["vocab_size"]), torch.tensor(targets).reshape(-1)
                                      ).backward()
    logits = ours(mg.tensor(ids, backend=backend))
    mg.cross_entropy(logits, mg.tensor(targets, backend=backend)).backward()

    assert np.abs(logits.numpy() - out.logits.detach().numpy()).max() <= 1e-4
    ref_grads = {k: p.grad.numpy() for k, p in _nonempty(ref.named_parameters()).items()}
    ours_grads = dict(ours.named_parameters())
    assert set(ours_grads) == set(ref_grads)
    for name, p in ours_grads.items():
        g, rg = p.grad.numpy(), ref_grads[name]
        rel = np.abs(g - rg).max() / max(np.abs(rg).max(), 1e-12)
        assert rel <= 1e-4, f"{name}: relative gradient error {rel:.2e}"
    if family == "v3":  # the bias really steered some choices: without it the logits differ
        for m in ours.moe_layers():
            m.gate.e_score_correction_bias.data = m.gate.e_score_correction_bias.data * 0
        assert np.abs(ours(mg.tensor(ids, backend=backend)).numpy() - out.logits.detach().numpy()).max() > 1e-3


def test_per_expert_checkpoints_load_into_the_fused_layout():
    """DeepSeek's own checkpoints (and older transformers) store experts.{e}.gate_proj / up_proj / down_proj."""
    c = {**BASE, **CASES["v3-top2-shared-qlora-grouped"][1]}
    ref = reference_model("v3", c)
    fused = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    per_expert = {}
    for k, v in fused.items():
        if k.endswith("experts.gate_up_proj"):
            prefix, inner = k.removesuffix(".gate_up_proj"), v.shape[1] // 2
            for e in range(v.shape[0]):
                per_expert[f"{prefix}.{e}.gate_proj.weight"] = v[e, :inner]
                per_expert[f"{prefix}.{e}.up_proj.weight"] = v[e, inner:]
        elif k.endswith("experts.down_proj"):
            prefix = k.removesuffix(".down_proj")
            for e in range(v.shape[0]):
                per_expert[f"{prefix}.{e}.down_proj.weight"] = v[e]
        else:
            per_expert[k] = v
    a, b = nn.build_model(c), nn.build_model(c)
    a.load_state_dict(fused)
    b.load_state_dict(per_expert)
    ids = mg.tensor(np.arange(10)[None] % c["vocab_size"])
    with torch.no_grad():
        expected = ref(torch.tensor(ids.numpy())).logits.numpy()
    assert np.abs(b(ids).numpy() - expected).max() <= 1e-4
    assert all(np.array_equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    del per_expert["model.layers.1.mlp.experts.3.up_proj.weight"]  # an incomplete set is refused, by name
    with pytest.raises(nn.StateDictError, match="experts.3.gate_proj"):
        nn.build_model(c).load_state_dict(per_expert)
