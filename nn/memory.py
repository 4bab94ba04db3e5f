"""How much memory training a model takes, estimated before anything is allocated."""

from __future__ import annotations

from .config import ModelConfig

# Optimizer state, in parameter-sized arrays: AdamW keeps two moments, Lion one, Muon a momentum for
# its matrices and two AdamW moments for the rest (about one and a half).
STATE_PER_PARAMETER = {"adamw": 2, "lion": 1, "muon": 1.5}


def training_memory(cfg: ModelConfig, num_parameters: int, batch: int, seq_len: int, optimizer: str,
                    bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes for parameters, gradients, optimizer state and the activations autograd keeps for one
    micro-batch of ``batch`` x ``seq_len`` tokens: per layer and token the block's inputs and norms,
    q/k/v, the attention probabilities, the SwiGLU hiddens; then the logits with their softmax."""
    h, kv = cfg.hidden_size, cfg.n_kv_heads * cfg.head_dim
    per_token_layer = 6 * h + 2 * kv + 3 * cfg.ffn_size + cfg.num_heads * seq_len
    per_token = cfg.num_layers * per_token_layer + 2 * h + 2 * cfg.vocab_size
    n = num_parameters * bytes_per_value
    return {"parameters": n, "gradients": n, "optimizer state": int(n * STATE_PER_PARAMETER[optimizer]),
            "activations": bytes_per_value * batch * seq_len * per_token}


def kv_cache_bytes_per_token(cfg: ModelConfig, bytes_per_value: int = 4) -> int:
    """Bytes the generation cache holds per token, over all layers: MLA caches its latent and the shared
    rotary key (kv_latent_dim + d_rope numbers per layer); other attention caches a key and a value per
    kv head (2 * kv_heads * head_dim)."""
    per_layer = cfg.kv_latent_dim + cfg.d_rope if cfg.uses_mla else 2 * cfg.n_kv_heads * cfg.head_dim
    return cfg.num_layers * per_layer * bytes_per_value
