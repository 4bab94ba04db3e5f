"""How much memory training a model takes, estimated from the config before anything is allocated."""

from __future__ import annotations

import os

from . import mamba_config
from .config import ModelConfig

# Optimizer state, in parameter-sized arrays: AdamW keeps two moments, Lion one, Muon a momentum for
# its matrices and two AdamW moments for the rest (about one and a half).
STATE_PER_PARAMETER = {"adamw": 2, "lion": 1, "muon": 1.5}


def parameter_count(cfg: ModelConfig) -> int:
    """The number of parameters ``nn.build_model(cfg)`` will have, counted from the config alone
    (so a model too large for the machine is refused before its first array is allocated)."""
    h, d = cfg.hidden_size, cfg.head_dim
    attention = h * cfg.num_heads * d + 2 * h * cfg.n_kv_heads * d + cfg.num_heads * d * h  # q, k, v, o
    mlp = 3 * h * cfg.ffn_size                                                            # gate, up, down
    per_layer = attention + mlp + 2 * h                                                    # + two RMSNorms
    n_mamba = len(set(cfg.mamba_layers))
    mamba = n_mamba * mamba_config.layer_parameters(cfg.mamba) if n_mamba else 0
    embeddings = cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2)               # + lm_head
    return embeddings + (cfg.num_layers - n_mamba) * per_layer + mamba + h                 # + final norm


def training_memory(cfg: ModelConfig, num_parameters: int, batch: int, seq_len: int, optimizer: str,
                    bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes for parameters, gradients, optimizer state and the activations autograd keeps for one
    micro-batch of ``batch`` x ``seq_len`` tokens: per attention layer and token the block's inputs and norms,
    q/k/v, the attention probabilities, the SwiGLU hiddens; per Mamba layer what ``mamba_config.activation_values``
    counts; then the logits with their softmax."""
    h, kv = cfg.hidden_size, cfg.n_kv_heads * cfg.head_dim
    per_token_layer = 6 * h + 2 * kv + 3 * cfg.ffn_size + cfg.num_heads * seq_len
    n_mamba = len(set(cfg.mamba_layers))
    mamba = n_mamba * mamba_config.activation_values(cfg.mamba) if n_mamba else 0
    per_token = (cfg.num_layers - n_mamba) * per_token_layer + mamba + 2 * h + 2 * cfg.vocab_size
    n = num_parameters * bytes_per_value
    return {"parameters": n, "gradients": n, "optimizer state": int(n * STATE_PER_PARAMETER[optimizer]),
            "activations": int(bytes_per_value * batch * seq_len * per_token)}


def available_memory() -> int | None:
    """Bytes of RAM this process could still use (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
