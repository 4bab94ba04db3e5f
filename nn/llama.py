"""The Llama-style causal language model, with transformers' parameter names, and the stacks built on it.

    x = embed_tokens(ids)
    for each block:  x = x + attn(rms_norm(x));  x = x + mlp(rms_norm(x))
    logits = lm_head(rms_norm(x))

An attention block's attention is grouped-query attention or, when the config sets ``kv_latent_dim``,
DeepSeek's MLA (``nn/mla.py``); its MLP is a dense SwiGLU or, when it sets ``num_experts``, a
Mixture-of-Experts (``nn/moe.py``) from layer ``first_dense_layers`` on: with both, the model is
transformers' DeepseekV3 (``make_attention``, ``make_mlp``).

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
from .layers import MLP, Embedding, Linear, RMSNorm
from .mla import MLA
from .module import Module, ModuleList
from .moe import MoE, fuse_per_expert_weights
from .ops import apply_rope, causal_attention, linear, linear_split, rope_tables
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

    def new_cache(self, batch: int, max_len: int, dtype) -> AttentionCache:
        return AttentionCache(batch, max_len, self.kv_heads, self.head_dim, self.q_proj.weight.backend, dtype)


def make_attention(cfg: ModelConfig, layer_idx: int, backend: Backend) -> Module:
    """An attention block's attention: MLA when the config sets kv_latent_dim, else grouped-query."""
    return MLA(cfg, layer_idx, backend) if cfg.uses_mla else Attention(cfg, layer_idx, backend)


def make_mlp(cfg: ModelConfig, layer_idx: int, backend: Backend) -> Module:
    """An attention block's MLP: Mixture-of-Experts when the config sets num_experts (after its first
    first_dense_layers layers), else a dense SwiGLU."""
    if cfg.is_moe_layer(layer_idx):
        return MoE(cfg, layer_idx, backend)
    return MLP(cfg.hidden_size, cfg.dense_ffn_size if cfg.uses_moe else cfg.ffn_size, backend)


class DecoderBlock(Module):
    """Pre-norm residual block: attention, then MLP."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        self.self_attn = make_attention(cfg, layer_idx, backend)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        self.mlp = make_mlp(cfg, layer_idx, backend)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: AttentionCache | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))

    def new_cache(self, batch: int, max_len: int, dtype):
        """Keys and values (AttentionCache), or MLA's latents (nn.mla.LatentCache)."""
        return self.self_attn.new_cache(batch, max_len, dtype)


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
        cos, sin = rope_tables(cfg.rope_dim, cfg.max_seq_len, cfg.rope_theta, backend)
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
            resid = name.endswith(("o_proj.weight", "down_proj.weight", "out_proj.weight", "experts.down_proj"))
            std = resid_std if resid else 0.02
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

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """As Module's; MoE experts may come per expert (``experts.{e}.gate_proj.weight``...) or fused."""
        super().load_state_dict(fuse_per_expert_weights(state), strict)

    # ---- the MoE layers' training hooks (train.py calls these; a model without experts answers None)
    def moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def auxiliary_loss(self) -> Tensor | None:
        """The load-balancing losses of the MoE layers in the latest training forward, summed (one per
        layer, as Switch Transformer adds them); None without MoE layers or with moe_balance: none.
        The trainer adds trainer.load_balance_alpha times it to the loss."""
        losses = [m.aux_loss for m in self.moe_layers() if m.aux_loss is not None]
        if not losses or self.config.moe_balance == "none":
            return None
        return losses[0] if len(losses) == 1 else mg.stack(losses).sum()

    def after_step(self, allreduce=None) -> None:
        """Called after each optimizer step: with moe_balance: bias_update, each MoE router's bias moves
        toward balance by the load of the step just taken (DeepSeek-V3's auxiliary-loss-free balancing).
        ``allreduce``: sums an array over the processes of a data-parallel job (they then agree)."""
        for m in self.moe_layers():
            if self.config.moe_balance == "bias_update":
                m.update_bias(allreduce)
            else:
                m.since_step.reset()

    def routing_stats(self, allreduce=None) -> dict | None:
        """Since the last call: each MoE layer's tokens per expert, the dropped slots, the mean aux loss
        and the load imbalance (the busiest expert's tokens over the mean; 1 is perfect balance, the
        worst layer's is reported), over all processes with ``allreduce``. None without MoE layers."""
        layers = self.moe_layers()
        if not layers:
            return None
        reports = {str(m.layer_idx): m.report(allreduce) for m in layers}
        return {"expert_tokens": {i: r["expert_tokens"] for i, r in reports.items()},
                "dropped_tokens": sum(r["dropped_tokens"] for r in reports.values()),
                "aux_loss": sum(r["aux_loss"] for r in reports.values()),
                "load_imbalance": max(r["load_imbalance"] for r in reports.values())}

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
        attention = f"mla(kv_latent={c.kv_latent_dim})" if c.uses_mla else f"kv_heads={c.n_kv_heads}"
        experts = f", experts={c.num_experts} top-{c.experts_per_tok}" if c.uses_moe else ""
        mamba = f", mamba_layers={c.mamba_layers} ({c.mamba.family})" if c.mamba_layers else ""
        return (f"hidden={c.hidden_size}, layers={c.num_layers}, heads={c.num_heads}, {attention}{experts}, "
                f"vocab={c.vocab_size}{mamba}")
