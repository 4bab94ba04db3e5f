"""Mamba models in transformers' terms: the converters behind the "mamba1", "mamba2", "mamba3" and "hybrid"
entries of ``nn.pretrained.ARCHITECTURES``.

* Mamba1 / Mamba2: ``MambaForCausalLM`` / ``Mamba2ForCausalLM``. A pure Mamba model has transformers' names
  already (``backbone.layers.N.mixer.in_proj.weight``, ...) and their layouts (conv1d.weight (C, 1, K)), so the
  weights convert as they are; the config is translated key by key. transformers' Mamba configs have no
  context length: ours travels as ``max_position_embeddings``, an extra key their config classes keep.
* Mamba3 and Mamba/attention hybrids have no transformers class: a config.json of our own model_type that
  carries the ``model:`` section (``pretrained.own_config_to_hf``), the weights under our names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import ConfigError, ModelConfig

MAMBA1 = ("MambaForCausalLM", "mamba")
MAMBA2 = ("Mamba2ForCausalLM", "mamba2")
MAMBA3 = ("MinigradMamba3ForCausalLM", "minigrad_mamba3")
HYBRID = ("MinigradHybridForCausalLM", "minigrad_hybrid")


def _common(cfg: ModelConfig, names: tuple[str, str], bos_id, eos_id, dtype: str) -> dict:
    return {"architectures": [names[0]], "model_type": names[1], "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
            "layer_norm_epsilon": cfg.rms_norm_eps, "hidden_act": "silu", "use_bias": False, "use_conv_bias": True,
            "residual_in_fp32": True, "tie_word_embeddings": cfg.tie_word_embeddings,
            "max_position_embeddings": cfg.max_seq_len, "bos_token_id": bos_id, "eos_token_id": eos_id,
            "pad_token_id": eos_id, "torch_dtype": dtype, "dtype": dtype, "use_cache": True}


def mamba1_config_to_hf(cfg: ModelConfig, bos_id: int | None, eos_id: int | None, dtype: str = "float32") -> dict:
    d = cfg.mamba
    return {**_common(cfg, MAMBA1, bos_id, eos_id, dtype), "state_size": d.d_state, "conv_kernel": d.d_conv,
            "expand": d.d_inner // cfg.hidden_size, "time_step_rank": d.dt_rank}


def mamba2_config_to_hf(cfg: ModelConfig, bos_id: int | None, eos_id: int | None, dtype: str = "float32") -> dict:
    d = cfg.mamba
    return {**_common(cfg, MAMBA2, bos_id, eos_id, dtype), "state_size": d.d_state, "conv_kernel": d.d_conv,
            "expand": d.d_inner // cfg.hidden_size, "num_heads": d.num_heads, "head_dim": d.head_dim,
            "n_groups": d.n_groups, "chunk_size": d.chunk}


def _is_inf(v: Any) -> bool:
    """transformers writes float('inf') in config.json as Infinity, or as {"__float__": "Infinity"}."""
    if isinstance(v, dict):
        v = v.get("__float__")
    try:
        return float(v) == math.inf
    except (TypeError, ValueError):
        return False


def _checked(hf: dict, family: str) -> list[str]:
    """Settings of transformers' Mamba configs that our layers do not have."""
    problems = []
    if hf.get("use_bias", False):
        problems.append("use_bias = true (in_proj and out_proj have no bias here)")
    if not hf.get("use_conv_bias", True):
        problems.append("use_conv_bias = false (the conv always has a bias here)")
    if hf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act = {hf.get('hidden_act')!r} (only silu is built)")
    limit = hf.get("time_step_limit")
    if family == "mamba2" and limit is not None and not (len(limit) == 2 and limit[0] == 0 and _is_inf(limit[1])):
        problems.append(f"time_step_limit = {limit!r} (dt is not clamped here)")
    return problems


def config_from_hf(hf: dict, where: str) -> dict[str, Any]:
    """The ``model:`` section for a transformers MambaConfig or Mamba2Config (config.json as a dict); settings
    our layers do not have are refused, all at once."""
    family = "mamba2" if hf.get("model_type") == MAMBA2[1] or MAMBA2[0] in (hf.get("architectures") or []) \
        else "mamba1"
    try:
        h, layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
        section = {"hidden_size": h, "num_layers": layers, "vocab_size": int(hf["vocab_size"]),
                   "mamba_layers": list(range(layers)), "max_seq_len": int(hf.get("max_position_embeddings", 2048)),
                   "rms_norm_eps": float(hf.get("layer_norm_epsilon", 1e-5)),
                   "tie_word_embeddings": bool(hf.get("tie_word_embeddings", family == "mamba1"))}
        if family == "mamba1":
            rank = hf.get("time_step_rank", "auto")
            section.update(mamba_d_state=int(hf.get("state_size", 16)), mamba_d_conv=int(hf.get("conv_kernel", 4)),
                           mamba_expand=int(hf.get("expand", 2)),
                           mamba_dt_rank=math.ceil(h / 16) if rank == "auto" else int(rank))
        else:
            section.update(mamba2_num_heads=int(hf.get("num_heads", 128)), mamba2_head_dim=int(hf.get("head_dim", 64)),
                           mamba2_state_size=int(hf.get("state_size", 128)),
                           mamba2_conv_kernel=int(hf.get("conv_kernel", 4)), mamba2_expand=int(hf.get("expand", 2)),
                           mamba2_n_groups=int(hf.get("n_groups", 8)),
                           mamba2_chunk_size=int(hf.get("chunk_size", 256)))
    except KeyError as e:
        raise ConfigError(f"{where}: key {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: a size is not a number ({e})") from None
    problems = _checked(hf, family)
    if problems:
        raise ConfigError(f"{where}: settings this {family} implementation does not have: " + "; ".join(problems))
    return section


def weights_to_hf(state: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Our names and layouts are transformers' (or, for our own model types, ours); nothing to change."""
    return dict(state)


def weights_from_hf(weights: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """A tied model may store the embedding twice (as lm_head.weight); ours holds it once."""
    out = dict(weights)
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out
