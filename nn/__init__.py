"""minigrad.nn's home: modules, layers and the models built from a config.

    import nn
    model = nn.build_model({"hidden_size": 128, "num_layers": 2, "num_heads": 4, "vocab_size": 512})
    logits = model(ids)                # (batch, seq, vocab)
    model = nn.from_pretrained("hf/me/my-model")   # a packed folder, or a transformers LlamaForCausalLM folder
"""

from __future__ import annotations

from minigrad.backend import Backend

from . import config, ops
from .cache import AttentionCache, KVCache, MambaCache, ModelCache
from .checkpoint import model_from_checkpoint, tokenizer_beside
from .config import MODEL_KEYS, ConfigError, ModelConfig, check_model, config_differences, model_config
from .generate import check_sampling, generate, generate_text, sample_next
from .layers import MLP, Embedding, Linear, RMSNorm
from .llama import Attention, CausalLM, DecoderBlock, LlamaModel, make_attention, make_block, make_mlp
from .mamba import MambaMixer
from .mamba2 import Mamba2Mixer
from .mamba3 import Mamba3Mixer
from .memory import available_memory, kv_cache_bytes_per_token, parameter_count, training_memory
from .mla import MLA, LatentCache
from .module import Module, ModuleList, Parameter, StateDictError
from .moe import MoE
from .pretrained import ARCHITECTURES, PretrainedError, family_of, from_pretrained, read_pretrained, save_pretrained
from .router import TopKRouter, load_balancing_loss
from .ssm_block import MambaBackbone, MambaBlock


def build_model(model_cfg: dict | ModelConfig, backend: str | Backend | None = None, seed: int = 0,
                where: str = "config") -> CausalLM:
    """Turn the ``model:`` section of a config into a model (the one public way in)."""
    return CausalLM(model_config(model_cfg, where), backend=backend, seed=seed)


__all__ = [
    "Module", "ModuleList", "Parameter", "StateDictError", "Linear", "Embedding", "RMSNorm",
    "Attention", "MLP", "DecoderBlock", "LlamaModel", "CausalLM", "build_model", "make_block", "make_attention",
    "make_mlp", "MLA", "LatentCache", "MoE", "TopKRouter", "load_balancing_loss",
    "MambaMixer", "Mamba2Mixer", "Mamba3Mixer", "MambaBlock", "MambaBackbone",
    "ModelConfig", "ConfigError", "MODEL_KEYS", "model_config", "check_model", "config_differences", "config",
    "KVCache", "AttentionCache", "MambaCache", "ModelCache", "generate", "generate_text", "sample_next",
    "check_sampling",
    "training_memory", "parameter_count", "kv_cache_bytes_per_token", "available_memory", "model_from_checkpoint",
    "tokenizer_beside", "ops",
    "ARCHITECTURES", "PretrainedError", "family_of", "from_pretrained", "read_pretrained", "save_pretrained",
]
