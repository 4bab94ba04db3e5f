"""The Llama-style causal language model, with transformers' parameter names, and the stacks built on it.

    x = embed_tokens(ids)
    for each block:  x = x + attn(rms_norm(x));  x = x + mlp(rms_norm(x))
    logits = lm_head(rms_norm(x))

Layers listed in ``model.mamba_layers`` are Mamba blocks instead (``nn/ssm_block.py``): x = x + mixer(rms_norm(x)).
A model whose layers are all Mamba blocks takes transformers' Mamba names (``backbone.*``); any other keeps the
Llama names (``model.*``), its Mamba blocks at ``model.layers.{i}.norm`` / ``model.layers.{i}.mixer``.
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend, get_backend

from .cache import AttentionCache, ModelCache
from .config import ModelConfig
from .layers import Embedding, Linear, RMSNorm
from .module import Module, ModuleList
from .ops import apply_rope, causal_attention, linear, linear_split, rope_tables, swiglu_linear
from .ssm_block import MambaBackbone, MambaBlock


class Attention(Module):
    """Causal self-attention with rotary positions and grouped-query heads."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads, self.kv_heads, self.head_dim = cfg.num_heads, cfg.n_kv_heads, cfg.head_dim
        h = cfg.hidden_size
        self.q_proj = Linear(h, self.num_heads * self.head_dim, backend=backend)
        self.k_proj = Linear(h, self.kv_heads * self.head_dim, backend=backend)
        self.v_proj = Linear(h, self.kv_heads * self.head_dim, backend=backend)
        self.o_proj = Linear(self.num_heads * self.head_dim, h, backend=backend)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache=None) -> Tensor:
        b, t, _ = x.shape
        # q = x Wq^T, k = x Wk^T, v = x Wv^T, computed as one product with the stacked weights
        q, k, v = linear_split(x, (self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
        q = q.reshape(b, t, self.num_heads, self.head_dim)                # (B, T, H, D)
        k = k.reshape(b, t, self.kv_heads, self.head_dim)                 # (B, T, KV, D)
        v = v.reshape(b, t, self.kv_heads, self.head_dim)
        offset = cache.length if cache is not None else 0
        q = apply_rope(q, cos, sin, offset)
        k = apply_rope(k, cos, sin, offset)
        if cache is not None:  # keys/values of all positions so far: (B, offset+T, KV, D)
            k, v = cache.append(k, v)
        out = causal_attention(q, k, v, offset=offset)                    # (B, T, H, D)
        return self.o_proj(out.reshape(b, t, self.num_heads * self.head_dim))


class MLP(Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig, backend: Backend):
        super().__init__()
        h, f = cfg.hidden_size, cfg.ffn_size
        self.gate_proj = Linear(h, f, backend=backend)
        self.up_proj = Linear(h, f, backend=backend)
        self.down_proj = Linear(f, h, backend=backend)

    def forward(self, x: Tensor) -> Tensor:
        # silu(gate_proj(x)) * up_proj(x), with both projections as one product
        return self.down_proj(swiglu_linear(x, self.gate_proj.weight, self.up_proj.weight))


class DecoderBlock(Module):
    """Pre-norm residual block: attention, then MLP."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        self.self_attn = Attention(cfg, layer_idx, backend)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        self.mlp = MLP(cfg, backend)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: AttentionCache | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))

    def new_cache(self, batch: int, max_len: int, dtype) -> AttentionCache:
        a = self.self_attn
        return AttentionCache(batch, max_len, a.kv_heads, a.head_dim, a.q_proj.weight.backend, dtype)


def make_block(cfg: ModelConfig, layer_idx: int, backend: Backend) -> Module:
    """Layer ``layer_idx``'s block: a Mamba block if it is listed in ``cfg.mamba_layers``, else attention."""
    if cfg.is_mamba_layer(layer_idx):
        return MambaBlock(cfg, layer_idx, backend)
    return DecoderBlock(cfg, layer_idx, backend)


class LlamaModel(Module):
    """Embedding, the decoder blocks and the final norm (transformers' ``model.`` prefix)."""

    def __init__(self, cfg: ModelConfig, backend: Backend):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size, backend=backend)
        self.layers = ModuleList([make_block(cfg, i, backend) for i in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, backend)
        self.register_buffer("rope_cos", cos, persistent=False)  # recomputed from the config, not saved
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, ids: Tensor, cache: ModelCache | None = None) -> Tensor:
        x = self.embed_tokens(ids)                                        # (B, T, hidden)
        for i, block in enumerate(self.layers):
            x = block(x, self.rope_cos, self.rope_sin, None if cache is None else cache.for_layer(i))
        if cache is not None:
            cache.advance(ids.shape[1])
        return self.norm(x)


class CausalLM(Module):
    """A decoder-only language model, ``model(ids) -> logits (B, T, vocab)``: Llama-style, pure Mamba, or a
    hybrid of the two (see the module docstring)."""

    def __init__(self, cfg: ModelConfig, backend: str | Backend | None = None, seed: int = 0):
        super().__init__()
        be = get_backend(backend)
        self.config = cfg
        if cfg.has_attention:
            self.model = LlamaModel(cfg, be)
        else:
            self.backbone = MambaBackbone(cfg, be)
        self.lm_head = None if cfg.tie_word_embeddings else Linear(cfg.hidden_size, cfg.vocab_size, backend=be)
        self.init_weights(seed)

    @property
    def stack(self) -> LlamaModel | MambaBackbone:
        """The embedding, blocks and final norm (``model`` or, for a pure Mamba model, ``backbone``)."""
        return self.model if self.config.has_attention else self.backbone

    def init_weights(self, seed: int = 0) -> None:
        """Normal(0, 0.02) for every matrix, residual output projections scaled by
        1/sqrt(2 * layers) so the residual stream's variance does not grow with depth;
        norm weights 1; the Mamba mixers' own parameters (A_log, D, dt biases, the conv) as
        transformers initialises them. Deterministic for a seed."""
        gen = mg.Generator(seed)
        resid_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        mixers = [m for m in self.modules() if hasattr(m, "reset_ssm_parameters")]
        own = set().union(*(m.reset_ssm_parameters(gen) for m in mixers))
        for name, p in self.named_parameters():
            if p.ndim == 1 or id(p) in own:
                continue  # RMSNorm weights keep their ones
            std = resid_std if name.endswith(("o_proj.weight", "down_proj.weight", "out_proj.weight")) else 0.02
            p.data = p.backend.asarray((gen.normal(p.shape, p.dtype) * std).astype(p.dtype))

    @property
    def backend(self):
        """The backend the model's parameters live on."""
        return self.stack.embed_tokens.weight.backend

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> ModelCache:
        """An empty generation cache: one layer cache per block (keys/values, or a Mamba layer's state)."""
        w = self.stack.embed_tokens.weight
        return ModelCache([blk.new_cache(batch, max_len or self.config.max_seq_len, w.dtype)
                           for blk in self.stack.layers])

    def _ignored_state_keys(self) -> set[str]:
        # transformers' tied models also list lm_head.weight; it is the embedding here.
        return {"lm_head.weight"} if self.lm_head is None else set()

    def forward(self, ids: Tensor, cache=None) -> Tensor:
        if ids.ndim != 2:
            raise ValueError(f"CausalLM expects token ids of shape (batch, seq), got {ids.shape}")
        t = ids.shape[1] + (cache.length if cache is not None else 0)
        if t > self.config.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds model.max_seq_len = {self.config.max_seq_len}")
        h = self.stack(ids, cache)                                        # (B, T, hidden)
        w = self.stack.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return linear(h, w)                                               # (B, T, vocab)

    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int = 0, use_cache: bool = True):
        from .generate import generate

        return generate(self, ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache)

    def extra_repr(self) -> str:
        c = self.config
        mamba = f", mamba_layers={c.mamba_layers} ({c.mamba.family})" if c.mamba_layers else ""
        return (f"hidden={c.hidden_size}, layers={c.num_layers}, heads={c.num_heads}, "
                f"kv_heads={c.n_kv_heads}, vocab={c.vocab_size}{mamba}")
