"""The ``model:`` section of a config, as a checked dataclass.

Keys follow Oxidizr's configs (so their files load); architectures that are not built yet
(Mamba, MLA, MoE) are refused by name. ``rms_norm_eps`` and ``tie_word_embeddings`` are ours.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type or impossible; the message names the key."""


@dataclass
class ModelConfig:
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    kv_heads: int | None = None            # None: as many kv heads as query heads (plain MHA)
    intermediate_size: int | None = None   # None: 8/3 * hidden rounded up to a multiple of 32
    vocab_size: int = 4096
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    name: str | None = None
    # Oxidizr's keys for architectures still to come: accepted when null/empty/false.
    kv_latent_dim: int | None = None
    q_latent_dim: int | None = None
    d_rope: int | None = None
    num_experts: int | None = None
    experts_per_tok: int | None = None
    shared_expert_enabled: bool | None = None
    mamba_layers: list | None = field(default_factory=list)
    mamba2_num_heads: int | None = None
    mamba2_head_dim: int | None = None
    mamba2_state_size: int | None = None
    mamba2_chunk_size: int | None = None
    mamba2_n_groups: int | None = None
    mamba2_conv_kernel: int | None = None
    mamba2_expand: int | None = None
    mamba3_enabled: bool | None = None
    mamba3_complex_rope: bool | None = None
    mamba3_mimo_rank: int | None = None
    mamba3_use_conv: bool | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.num_heads

    @property
    def ffn_size(self) -> int:
        if self.intermediate_size:
            return self.intermediate_size
        return -(-(8 * self.hidden_size // 3) // 32) * 32


_TYPES = {f.name: f.type for f in fields(ModelConfig)}
# Which keys switch on an architecture that is not built yet, and the issue it waits for.
_NOT_YET = {"mamba_layers": "Mamba", "kv_latent_dim": "MLA", "q_latent_dim": "MLA", "d_rope": "MLA",
            "num_experts": "MoE", "experts_per_tok": "MoE", "shared_expert_enabled": "MoE",
            "mamba3_enabled": "Mamba-3"}


def _check_type(key: str, value: Any, where: str) -> Any:
    t = _TYPES[key]
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{where}: model.{key} must be set (got null)")
    if "bool" in t and not isinstance(value, bool):
        raise ConfigError(f"{where}: model.{key} must be true or false, got {value!r}")
    if t.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: model.{key} must be an integer, got {value!r}")
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: model.{key} must be a number, got {value!r}")
        value = float(value)
    if t.startswith("list") and not isinstance(value, list):
        raise ConfigError(f"{where}: model.{key} must be a list, got {value!r}")
    if t.startswith("str") and not isinstance(value, str):
        raise ConfigError(f"{where}: model.{key} must be a string, got {value!r}")
    return value


def model_config(d: dict | ModelConfig, where: str = "config", check_supported: bool = True) -> ModelConfig:
    """Validate a ``model:`` dict and return a ModelConfig. ``where`` names the file in messages."""
    if isinstance(d, ModelConfig):
        return d
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: the model section must be a mapping, got {type(d).__name__}")
    kw = {}
    for key, value in d.items():
        if key not in _TYPES:
            near = difflib.get_close_matches(str(key), list(_TYPES), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{where}: unknown key model.{key}{hint}")
        kw[key] = _check_type(key, value, where)
    cfg = ModelConfig(**{k: v for k, v in kw.items() if v is not None or "None" in _TYPES[k]})
    if kw.get("mamba_layers") is None:
        cfg.mamba_layers = []
    for key in ("hidden_size", "num_layers", "num_heads", "vocab_size", "max_seq_len"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{where}: model.{key} must be positive, got {getattr(cfg, key)}")
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"{where}: model.hidden_size ({cfg.hidden_size}) must be divisible by "
                          f"model.num_heads ({cfg.num_heads})")
    if cfg.head_dim % 2:
        raise ConfigError(f"{where}: model.hidden_size / model.num_heads = {cfg.head_dim} must be even for RoPE")
    if cfg.kv_heads is not None and (cfg.kv_heads <= 0 or cfg.num_heads % cfg.kv_heads):
        raise ConfigError(f"{where}: model.num_heads ({cfg.num_heads}) must be divisible by "
                          f"model.kv_heads ({cfg.kv_heads})")
    if check_supported:
        for key, arch in _NOT_YET.items():
            if getattr(cfg, key):
                raise ConfigError(f"{where}: model.{key} = {getattr(cfg, key)!r} asks for {arch}, "
                                  "which is not yet supported (only Llama-style models are built so far)")
    return cfg
