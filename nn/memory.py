"""How much memory training a model takes, estimated before anything is allocated.

Autograd keeps every intermediate tensor of the forward until the backward has used it (a Function
holds its inputs), so the activations are the sum of the tensors a forward creates: counted below per
token and layer for each kind of layer, in values (floats), by reading what each layer computes (the Mamba
layers' by ``mamba_config.activation_values``). The
peak comes at the start of the backward, when the logits' gradient is made while all of that is
still alive. ``tests/test_memory_estimate.py`` holds the sum to the peak RSS of real training steps.
"""

from __future__ import annotations

import os

from . import mamba_config
from .config import ModelConfig

# Optimizer state, in parameter-sized arrays: AdamW keeps two moments, Lion one, Muon a momentum for
# its matrices and two AdamW moments for the rest (about one and a half).
STATE_PER_PARAMETER = {"adamw": 2, "lion": 1, "muon": 1.5}
INT64 = 2  # an int64 index takes the room of two float32 values


# Backends whose attention kernel keeps the (T, S) probabilities for its backward: the reference's. The
# Numba and CUDA kernels keep one log-sum-exp per query row instead (kernels/contracts.py, SAVED_STATE).
SAVES_ATTENTION_PROBABILITIES = frozenset({"numpy", "strict"})


def attention_values_per_token(cfg: ModelConfig, seq_len: int, backend: str = "numba") -> int:
    """An attention half-block's tensors, per token: the norm's output, the projections, the rotated
    q and k, what the attention keeps for its backward (the probabilities, heads * seq_len, on a backend
    in SAVES_ATTENTION_PROBABILITIES, else a log-sum-exp per head), its output, o_proj's and the residual
    sum."""
    h, heads = cfg.hidden_size, cfg.num_heads
    kept = heads * seq_len if backend in SAVES_ATTENTION_PROBABILITIES else heads
    if not cfg.uses_mla:
        q, kv = heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        projections = (q + 2 * kv) + q + kv                                  # q|k|v, rope(q), rope(k)
        return 1 + h + projections + kept + q + 2 * h
    nope, rope, v, latent = cfg.nope_head_dim, cfg.d_rope, cfg.v_head_dim, cfg.kv_latent_dim
    qk = heads * (nope + rope)
    q_rank = cfg.q_lora_rank
    projections = (q_rank + 1 + q_rank + qk if q_rank else qk) + latent + rope   # [q_a | kv_a], q_a norm, q_b
    latents = 1 + latent + 2 * (heads * rope + rope)                             # kv norm; de-interleave + rope
    expanded = heads * (nope + v) + 2 * qk                                       # kv_b, then k and q joined
    return 1 + h + projections + latents + expanded + kept + heads * v + 2 * h


def mlp_values_per_token(cfg: ModelConfig, layer_idx: int) -> int:
    """An MLP half-block's tensors, per token: the norm's output, the SwiGLU's [gate | up] and hidden,
    the down projection and the residual sum. An MoE layer keeps them for each of its k slots, plus the
    router's scores and the routing indices, and adds its shared experts."""
    h = cfg.hidden_size
    if not cfg.is_moe_layer(layer_idx):
        width = cfg.dense_ffn_size if cfg.uses_moe else cfg.ffn_size
        return 1 + h + 3 * width + 2 * h
    e, k, width = cfg.num_experts, cfg.experts_per_tok, cfg.ffn_size
    # logits and scores (and sigmoid's normalised copy), the k weights; indices: the choices, the plan's
    # order and slot rows, and the gather's row numbers
    router = 2 * e + k + (e if cfg.router_score == "sigmoid" else 0) + (3 * k + 1) * INT64
    routed = k * (2 * h + 3 * width) + h                                 # per slot: x, [gate | up], hidden, y
    shared = 3 * width * cfg.shared_experts + 2 * h if cfg.shared_experts else 0
    return 1 + h + router + routed + shared + h


def stacked_weight_values(cfg: ModelConfig, layer_idx: int) -> int:
    """Per layer, the copies of weights that one fused product stacks each forward (q|k|v or
    q_a|kv_a, and gate|up)."""
    h = cfg.hidden_size
    if cfg.uses_mla:
        q_rows = cfg.q_lora_rank or cfg.num_heads * (cfg.nope_head_dim + cfg.d_rope)
        attention = (q_rows + cfg.kv_latent_dim + cfg.d_rope) * h
    else:
        attention = (cfg.num_heads + 2 * cfg.n_kv_heads) * cfg.head_dim * h
    if cfg.is_moe_layer(layer_idx):
        mlp = 2 * cfg.ffn_size * cfg.shared_experts * h
    else:
        mlp = 2 * (cfg.dense_ffn_size if cfg.uses_moe else cfg.ffn_size) * h
    return attention + mlp




def parameter_count(cfg: ModelConfig) -> int:
    """The number of parameters ``nn.build_model(cfg)`` will have, counted from the config alone
    (so a model too large for the machine is refused before its first array is allocated)."""
    h = cfg.hidden_size
    per_layer = sum(n * (_attention_parameters(cfg) + _mlp_parameters(cfg, i) + 2 * h) for i, n in _layer_kinds(cfg))
    n_mamba = len(set(cfg.mamba_layers))
    mamba = n_mamba * mamba_config.layer_parameters(cfg.mamba) if n_mamba else 0
    embeddings = cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2)               # + lm_head
    return embeddings + per_layer + mamba + h                                              # + final norm


def _layer_kinds(cfg: ModelConfig) -> list[tuple[int, int]]:
    """(a layer index of each kind, how many attention blocks are of that kind): those with a dense MLP,
    then those with MoE. Sums over layers are taken per kind (the Mamba layers, a finite list, are
    subtracted), so a config with absurdly many layers is counted at once."""
    mamba = set(cfg.mamba_layers)
    first_moe = min(cfg.first_dense_layers, cfg.num_layers) if cfg.uses_moe else cfg.num_layers
    dense = first_moe - sum(1 for i in mamba if i < first_moe)
    moe = cfg.num_layers - first_moe - sum(1 for i in mamba if i >= first_moe)
    kinds = [(0, dense), (first_moe, moe)]
    return [(i, n) for i, n in kinds if n > 0]


def _attention_parameters(cfg: ModelConfig) -> int:
    h, heads = cfg.hidden_size, cfg.num_heads
    if not cfg.uses_mla:
        d = cfg.head_dim
        return h * heads * d + 2 * h * cfg.n_kv_heads * d + heads * d * h                  # q, k, v, o
    qk = heads * (cfg.nope_head_dim + cfg.d_rope)
    rank, latent = cfg.q_lora_rank, cfg.kv_latent_dim
    query = h * rank + rank + rank * qk if rank else h * qk                               # q_a, its norm, q_b
    kv = h * (latent + cfg.d_rope) + latent + latent * heads * (cfg.nope_head_dim + cfg.v_head_dim)
    return query + kv + heads * cfg.v_head_dim * h                                        # + o_proj


def _mlp_parameters(cfg: ModelConfig, layer_idx: int) -> int:
    h = cfg.hidden_size
    if not cfg.is_moe_layer(layer_idx):
        return 3 * h * (cfg.dense_ffn_size if cfg.uses_moe else cfg.ffn_size)            # gate, up, down
    experts = (cfg.num_experts + cfg.shared_experts) * 3 * h * cfg.ffn_size
    return experts + cfg.num_experts * h                                                  # + the router


def training_memory(cfg: ModelConfig, num_parameters: int, batch: int, seq_len: int, optimizer: str,
                    bytes_per_value: int = 4, backend: str = "numba") -> dict[str, int]:
    """Bytes for parameters, gradients, optimizer state, the activations autograd keeps for one
    micro-batch of ``batch`` x ``seq_len`` tokens (every layer's tensors, the embedding's and final
    norm's outputs, the logits and their softmax gradient), and the backward's extra copy of the
    logits' gradient. ``backend``: the one that trains (its attention kernel decides whether the
    (T, S) probabilities are kept: ``SAVES_ATTENTION_PROBABILITIES``)."""
    h, tokens = cfg.hidden_size, batch * seq_len
    per_token = 2 * h + 2 * cfg.vocab_size
    per_token += sum(n * (attention_values_per_token(cfg, seq_len, backend) + mlp_values_per_token(cfg, i))
                     for i, n in _layer_kinds(cfg))
    n_mamba = len(set(cfg.mamba_layers))  # each Mamba layer: what mamba_config.activation_values counts
    per_token += n_mamba * mamba_config.activation_values(cfg.mamba) if n_mamba else 0
    stacked = sum(n * stacked_weight_values(cfg, i) for i, n in _layer_kinds(cfg))
    n = num_parameters * bytes_per_value
    return {"parameters": n, "gradients": n, "optimizer state": int(n * STATE_PER_PARAMETER[optimizer]),
            "activations": int(bytes_per_value * (tokens * per_token + stacked)),
            "backward": bytes_per_value * tokens * cfg.vocab_size}


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


def kv_cache_bytes_per_token(cfg: ModelConfig, bytes_per_value: int = 4) -> int:
    """Bytes the generation cache holds per token, over the attention layers: MLA caches its latent and the shared
    rotary key (kv_latent_dim + d_rope numbers per layer); other attention caches a key and a value per
    kv head (2 * kv_heads * head_dim)."""
    per_layer = cfg.kv_latent_dim + cfg.d_rope if cfg.uses_mla else 2 * cfg.n_kv_heads * cfg.head_dim
    attention_layers = cfg.num_layers - len(set(cfg.mamba_layers))  # a Mamba layer's state does not grow
    return attention_layers * per_layer * bytes_per_value
