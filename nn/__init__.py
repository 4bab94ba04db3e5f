"""minigrad.nn's home: modules, layers and the models built from a config.

    import nn
    model = nn.build_model({"hidden_size": 128, "num_layers": 2, "num_heads": 4, "vocab_size": 512})
    logits = model(ids)                # (batch, seq, vocab)
"""

from __future__ import annotations

from minigrad.backend import Backend

from . import config, ops
from .config import MODEL_KEYS, ConfigError, ModelConfig, check_model, model_config
from .generate import KVCache, cache_for, generate, generate_text, sample_next
from .layers import MLP, Embedding, Linear, RMSNorm
from .llama import Attention, CausalLM, DecoderBlock, LlamaModel
from .memory import kv_cache_bytes_per_token, training_memory
from .mla import MLA, LatentKVCache
from .module import Module, ModuleList, Parameter, StateDictError
from .moe import MoE
from .router import TopKRouter, load_balancing_loss


def build_model(model_cfg: dict | ModelConfig, backend: str | Backend | None = None, seed: int = 0,
                where: str = "config") -> CausalLM:
    """Turn the ``model:`` section of a config into a model (the one public way in)."""
    return CausalLM(model_config(model_cfg, where), backend=backend, seed=seed)


__all__ = ["Module", "ModuleList", "Parameter", "StateDictError", "Linear", "Embedding", "RMSNorm",
           "Attention", "MLP", "MLA", "LatentKVCache", "MoE", "TopKRouter", "load_balancing_loss",
           "DecoderBlock", "LlamaModel", "CausalLM", "ModelConfig", "ConfigError", "model_config", "check_model",
           "MODEL_KEYS", "build_model", "KVCache", "cache_for", "generate", "generate_text", "sample_next",
           "training_memory", "kv_cache_bytes_per_token", "config", "ops"]
