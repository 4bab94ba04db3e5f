"""MLA and MoE models (``nn.llama.CausalLM`` with ``nn.mla`` / ``nn.moe`` blocks) in transformers' terms: the
converter behind the "deepseek_v3" entry of ``nn.pretrained.ARCHITECTURES``.

transformers' class is ``DeepseekV3ForCausalLM``. Our parameter names are its names, the expert weights its
fused layout, and the rotary rows its interleaved layout (MLA de-interleaves at run time), so the weights
convert as they are, plus what DeepseekV3 always has and a model of ours may not: the router's
score-correction bias (zero when ``router_bias`` is off: zero changes no choice) and an empty shared
expert. DeepseekV3 routes with sigmoid scores and MLA attention; a config with a softmax router or with
grouped-query attention and experts is not a DeepseekV3: the table packs it under our own model_type.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .arch_llama import _rope
from .config import ConfigError, ModelConfig

HF_CLASS = "DeepseekV3ForCausalLM"
MODEL_TYPE = "deepseek_v3"
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def is_deepseek_v3(cfg: ModelConfig) -> bool:
    """Whether DeepseekV3ForCausalLM can hold the model: MLA attention, and a sigmoid router if it has experts.
    (Other MLA / MoE models are packed under our own model_type.)"""
    return cfg.uses_mla and (not cfg.uses_moe or cfg.router_score == "sigmoid")


def _moe_to_hf(cfg: ModelConfig) -> dict:
    if not cfg.uses_moe:  # dense MLA: DeepseekV3 with every layer dense
        return {"n_routed_experts": 1, "num_experts_per_tok": 1, "n_shared_experts": 0, "n_group": 1, "topk_group": 1,
                "first_k_dense_replace": cfg.num_layers, "intermediate_size": cfg.ffn_size,
                "moe_intermediate_size": cfg.ffn_size, "norm_topk_prob": False, "routed_scaling_factor": 1.0}
    n_group, topk_group = cfg.expert_groups
    return {"n_routed_experts": cfg.num_experts, "num_experts_per_tok": cfg.experts_per_tok,
            "n_shared_experts": cfg.shared_experts, "n_group": n_group, "topk_group": topk_group,
            "first_k_dense_replace": min(cfg.first_dense_layers, cfg.num_layers),
            "intermediate_size": cfg.dense_ffn_size, "moe_intermediate_size": cfg.ffn_size,
            "norm_topk_prob": cfg.norm_topk_prob, "routed_scaling_factor": cfg.routed_scaling_factor}


def config_to_hf(cfg: ModelConfig, bos_id: int | None, eos_id: int | None, dtype: str = "float32") -> dict:
    """A transformers ``DeepseekV3Config`` as config.json holds it (5.x spellings and 4.x ones)."""
    problems = []
    if not cfg.uses_mla:
        problems.append("its attention is grouped-query, DeepseekV3's is MLA (set kv_latent_dim and d_rope)")
    if cfg.uses_moe and cfg.router_score != "sigmoid":
        problems.append("its router scores with softmax, DeepseekV3's with sigmoid (router_score: sigmoid)")
    if problems:
        raise ConfigError(f"this model is not a {HF_CLASS}: " + "; ".join(problems))
    return {
        "architectures": [HF_CLASS], "model_type": MODEL_TYPE,
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_heads,
        "kv_lora_rank": cfg.kv_latent_dim, "q_lora_rank": cfg.q_lora_rank, "qk_rope_head_dim": cfg.d_rope,
        "qk_nope_head_dim": cfg.nope_head_dim, "v_head_dim": cfg.v_head_dim, "rope_interleave": True,
        **_moe_to_hf(cfg), "hidden_act": "silu", "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta, "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False, "attention_dropout": 0.0, "num_nextn_predict_layers": 0,
        "tie_word_embeddings": cfg.tie_word_embeddings, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": None, "torch_dtype": dtype, "dtype": dtype,
    }


def config_from_hf(hf: dict, where: str) -> dict[str, Any]:
    """The ``model:`` section for a transformers DeepseekV3Config (config.json as a dict); settings our model
    does not have are refused, all at once."""
    try:
        layers, heads = int(hf["num_hidden_layers"]), int(hf["num_attention_heads"])
        section = {
            "hidden_size": int(hf["hidden_size"]), "num_layers": layers, "num_heads": heads,
            "vocab_size": int(hf["vocab_size"]), "max_seq_len": int(hf.get("max_position_embeddings", 4096)),
            "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)), "rope_theta": _rope(hf, where),
            "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
            "kv_latent_dim": int(hf["kv_lora_rank"]), "q_latent_dim": int(hf["q_lora_rank"] or 0) or None,
            "d_rope": int(hf["qk_rope_head_dim"]), "mla_nope_head_dim": int(hf["qk_nope_head_dim"]),
            "mla_v_head_dim": int(hf["v_head_dim"]),
        }
        dense_layers = min(int(hf.get("first_k_dense_replace", 3)), layers)
        if dense_layers == layers:
            section["intermediate_size"] = int(hf["intermediate_size"])
        else:
            shared = int(hf.get("n_shared_experts", 1))
            section.update({
                "num_experts": int(hf["n_routed_experts"]), "experts_per_tok": int(hf["num_experts_per_tok"]),
                "intermediate_size": int(hf["moe_intermediate_size"]), "shared_expert_enabled": shared > 0,
                "num_shared_experts": shared or None, "first_dense_layers": dense_layers,
                "dense_intermediate_size": int(hf["intermediate_size"]) if dense_layers else None,
                "router_score": "sigmoid", "router_bias": True, "norm_topk_prob": bool(hf.get("norm_topk_prob", True)),
                "routed_scaling_factor": float(hf.get("routed_scaling_factor", 1.0)),
                "n_group": int(hf.get("n_group") or 1), "topk_group": int(hf.get("topk_group") or 1)})
    except KeyError as e:
        raise ConfigError(f"{where}: key {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: a size is not a number ({e})") from None
    problems = [f"{key} = {hf.get(key)!r} ({what})" for key, ok, what in (
        ("hidden_act", hf.get("hidden_act", "silu") == "silu", "only SwiGLU with silu is built"),
        ("attention_bias", not hf.get("attention_bias"), "attention projections have no bias here"),
        ("rope_interleave", hf.get("rope_interleave", True) is not False, "MLA's rotary pairs are interleaved here"),
        ("num_key_value_heads", hf.get("num_key_value_heads") in (None, heads), "MLA has a key and value per head"),
    ) if not ok]
    if problems:
        raise ConfigError(f"{where}: settings this MLA + MoE implementation does not have: " + "; ".join(problems))
    return {k: v for k, v in section.items() if v is not None}


def weights_to_hf(state: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Our weights, plus a zero score-correction bias per router without one and an empty shared expert per
    MoE layer without one (DeepseekV3 always builds both)."""
    out = dict(state)
    h = cfg.hidden_size
    for i in range(cfg.num_layers):
        if not cfg.is_moe_layer(i):
            continue
        prefix = f"model.layers.{i}.mlp"
        out.setdefault(f"{prefix}.gate.e_score_correction_bias", np.zeros(cfg.num_experts, np.float32))
        if not cfg.shared_experts:
            for name, shape in (("gate_proj", (0, h)), ("up_proj", (0, h)), ("down_proj", (h, 0))):
                out[f"{prefix}.shared_experts.{name}.weight"] = np.zeros(shape, np.float32)
    return out


def weights_from_hf(weights: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """transformers' weights under our names: without the rotary tables, the empty shared experts and the
    multi-token-prediction layers DeepSeek's checkpoints append after the last layer (which we do not build)."""
    out = {}
    for name, w in weights.items():
        layer = _LAYER.match(name)
        if name.endswith("rotary_emb.inv_freq") or (layer and int(layer.group(1)) >= cfg.num_layers):
            continue
        if ".shared_experts." in name and w.size == 0:
            continue
        out[name] = w
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out
