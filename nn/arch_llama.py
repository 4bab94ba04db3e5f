"""Llama-style models (``nn.llama.CausalLM``) in transformers' and llama.cpp's terms: the converter behind the
"llama" entry of ``nn.pretrained.ARCHITECTURES``.

* transformers: ``LlamaForCausalLM``. Our parameter names are transformers' already (``model.layers.N.
  self_attn.q_proj.weight``, ...), and so is the rotary layout (the two halves of each head rotate together),
  so the weights convert as they are; only the config is translated, key by key.
* llama.cpp (GGUF): the tensors are renamed by the ``gguf`` package's own name map, and the q/k rows are
  permuted from the half-split rotary layout back to llama.cpp's interleaved pairs, exactly as llama.cpp's
  ``convert_hf_to_gguf.py`` (``LlamaModel.permute``) does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ConfigError, ModelConfig

HF_CLASS = "LlamaForCausalLM"
MODEL_TYPE = "llama"


def config_to_hf(cfg: ModelConfig, bos_id: int | None, eos_id: int | None, dtype: str = "float32") -> dict:
    """A transformers ``LlamaConfig`` as config.json holds it. Both spellings of the rotary base and the dtype
    are written: ``rope_theta``/``torch_dtype`` (transformers 4.x) and ``rope_parameters``/``dtype`` (5.x)."""
    return {
        "architectures": [HF_CLASS], "model_type": MODEL_TYPE,
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "intermediate_size": cfg.ffn_size,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta, "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False, "pretraining_tp": 1,
        "tie_word_embeddings": cfg.tie_word_embeddings, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": None,
        "torch_dtype": dtype, "dtype": dtype,
    }


def _rope(hf: dict, where: str) -> float:
    """The rotary base; refuses scaled variants (llama3, yarn, linear, ...), which our model does not do."""
    params = hf.get("rope_parameters") if isinstance(hf.get("rope_parameters"), dict) else {}
    scaling = hf.get("rope_scaling") if isinstance(hf.get("rope_scaling"), dict) else {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ConfigError(f"{where}: rope_type {kind!r} (scaled rotary positions) is not supported; only "
                          "'default' rotary embeddings are")
    return float(params.get("rope_theta") or hf.get("rope_theta") or 10000.0)


def config_from_hf(hf: dict, where: str) -> dict[str, Any]:
    """The ``model:`` section for a transformers LlamaConfig (config.json as a dict). Settings our model does
    not have (biases, another activation, a head size other than hidden/heads) are refused, all at once."""
    problems = []

    def need(key, ok, default, what):
        value = hf.get(key, default)
        if not ok(value):
            problems.append(f"{key} = {value!r} ({what})")
        return value

    try:
        section = {
            "hidden_size": int(hf["hidden_size"]), "num_layers": int(hf["num_hidden_layers"]),
            "num_heads": int(hf["num_attention_heads"]), "vocab_size": int(hf["vocab_size"]),
            "intermediate_size": int(hf["intermediate_size"]),
            "kv_heads": int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
            "max_seq_len": int(hf.get("max_position_embeddings", 2048)),
            "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),  # LlamaConfig's defaults, for absent keys
            "rope_theta": _rope(hf, where),
            "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
        }
    except KeyError as e:
        raise ConfigError(f"{where}: key {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: a size is not a number ({e})") from None
    head_dim = section["hidden_size"] // max(section["num_heads"], 1)
    need("hidden_act", lambda v: v == "silu", "silu", "only SwiGLU with silu is built")
    need("attention_bias", lambda v: not v, False, "attention projections have no bias here")
    need("mlp_bias", lambda v: not v, False, "MLP projections have no bias here")
    need("head_dim", lambda v: v in (None, head_dim), None, f"must be hidden_size / num_attention_heads = {head_dim}")
    need("pretraining_tp", lambda v: v in (None, 1), 1, "tensor-parallel slicing is not done here")
    if problems:
        raise ConfigError(f"{where}: settings this Llama implementation does not have: " + "; ".join(problems))
    return section


def weights_to_hf(state: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Our names and layouts are transformers'; nothing to change."""
    return dict(state)


def weights_from_hf(weights: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """transformers' weights under our names: older checkpoints also store the rotary tables (``inv_freq``,
    recomputed here from the config), and tied models may store the embedding twice (as lm_head)."""
    out = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")}
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


# ---- GGUF (llama.cpp) -----------------------------------------------------------------------

def rotary_to_interleaved(w: np.ndarray, n_head: int) -> np.ndarray:
    """q/k projection rows from transformers' half-split rotary layout to llama.cpp's interleaved one:
    llama.cpp's ``LlamaModel.permute`` (reshape (n_head, 2, head_dim/2, ...), swap axes 1 and 2)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def interleaved_to_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of :func:`rotary_to_interleaved`."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_metadata(writer, cfg: ModelConfig) -> None:
    """The hyperparameters llama.cpp's ``llama`` architecture reads."""
    writer.add_context_length(cfg.max_seq_len)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_layers)
    writer.add_feed_forward_length(cfg.ffn_size)
    writer.add_head_count(cfg.num_heads)
    writer.add_head_count_kv(cfg.n_kv_heads)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.head_dim)


def gguf_tensors(state: dict[str, np.ndarray], cfg: ModelConfig) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, array) for every weight, q/k permuted; named by the gguf package's map for ``llama``."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_layers)
    out = []
    for name, w in state.items():
        if name.endswith("self_attn.q_proj.weight"):
            w = rotary_to_interleaved(w, cfg.num_heads)
        elif name.endswith("self_attn.k_proj.weight"):
            w = rotary_to_interleaved(w, cfg.n_kv_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"no GGUF name for tensor {name!r}")
        out.append((gguf_name, w))
    return out
