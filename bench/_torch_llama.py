"""The PyTorch peers of our Llama model in bench/train_step.py, each holding our model's weights:

* ``hf_llama``: transformers' ``LlamaForCausalLM`` with eager attention (it materialises the
  (B, H, T, S) scores and probabilities, as our reference kernels do);
* ``SdpaLlama``: a nanoGPT-style Llama written directly on torch (RMSNorm, rotary positions, grouped-query
  heads, SwiGLU), its attention ``F.scaled_dot_product_attention(is_causal=True)``, which on the CPU runs
  a flash-style kernel that keeps only a log-sum-exp per row; ``torch.compile`` compiles this one.

The parameter names are transformers' (and ours), so one ``load_state_dict`` fills both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own spelling
import transformers


def our_weights(ours) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(p.numpy().copy()) for name, p in ours.named_parameters()}


def hf_llama(ours) -> torch.nn.Module:
    """transformers' LlamaForCausalLM (eager attention) holding our model's weights."""
    c = ours.config
    cfg = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.ffn_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.n_kv_heads,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        attn_implementation="eager")
    model = transformers.LlamaForCausalLM(cfg).float()
    model.load_state_dict(our_weights(ours), strict=not c.tie_word_embeddings)
    return model.train()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class _Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.heads, self.kv, self.d = c.hidden_size, c.num_heads, c.n_kv_heads, c.head_dim
        self.q_proj = torch.nn.Linear(h, self.heads * self.d, bias=False)
        self.k_proj = torch.nn.Linear(h, self.kv * self.d, bias=False)
        self.v_proj = torch.nn.Linear(h, self.kv * self.d, bias=False)
        self.o_proj = torch.nn.Linear(self.heads * self.d, h, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.d).transpose(1, 2)   # (B, H, T, D)
        k = self.k_proj(x).view(b, t, self.kv, self.d).transpose(1, 2)      # (B, KV, T, D)
        v = self.v_proj(x).view(b, t, self.kv, self.d).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.heads)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.d))


class _Mlp(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = torch.nn.Linear(c.hidden_size, c.ffn_size, bias=False)
        self.up_proj = torch.nn.Linear(c.hidden_size, c.ffn_size, bias=False)
        self.down_proj = torch.nn.Linear(c.ffn_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = torch.nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.self_attn = _Attention(c)
        self.post_attention_layernorm = torch.nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.mlp = _Mlp(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Stack(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = torch.nn.ModuleList([_Block(c) for _ in range(c.num_layers)])
        self.norm = torch.nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)


class SdpaLlama(torch.nn.Module):
    """Our Llama (untied embeddings) in plain torch with SDPA attention; ``forward(ids) -> logits``."""

    def __init__(self, ours):
        super().__init__()
        c = ours.config
        if c.tie_word_embeddings or c.uses_mla or c.uses_moe or c.mamba_layers:
            raise ValueError("SdpaLlama: a plain Llama only (untied embeddings, no MLA/MoE/Mamba)")
        self.model = _Stack(c)
        self.lm_head = torch.nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim))
        ang = torch.arange(c.max_seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
        ang = torch.cat([ang, ang], dim=1)                                                     # (T, D)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        self.load_state_dict(our_weights(ours))
        self.train()

    def forward(self, ids):
        t = ids.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        x = self.model.embed_tokens(ids)
        for block in self.model.layers:
            x = block(x, cos, sin)
        return self.lm_head(self.model.norm(x))
