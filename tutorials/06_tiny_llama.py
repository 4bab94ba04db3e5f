# %% [markdown]
# # 06 · A tiny Llama, its parameters and their gradients
#
# Step 05 built attention. A Llama-style language model is attention plus three more pieces
# we have nearly seen already, stacked:
#
# ```
# x = embed_tokens[ids]                                   token ids -> vectors
# for each block:
#     x = x + attention(rms_norm(x))                      mix information across positions
#     x = x + mlp(rms_norm(x))                            think about each position alone
# logits = lm_head(rms_norm(x))                           vectors -> a score per vocabulary token
# ```
#
# This step builds one from a config with `nn.build_model`, lists its parameters, writes the
# same forward pass again from tensor ops to see that nothing is hidden, and looks at the
# gradients of one backward pass, layer by layer.

# %%
import math

import _common
import numpy as np

import minigrad as mg
import nn
from nn import ops

quick = _common.is_quick()
rng = np.random.default_rng(0)

# %% [markdown]
# ## A model from a config
#
# A model is described by a plain dict, the `model:` section of a training config (step 07
# writes one to a YAML file). Missing keys take defaults; a misspelled key is refused with a
# suggestion (try `"hiden_size"`). `python train.py train --help-config` lists every key.

# %%
cfg = {
    "hidden_size": 64,  # width of the residual stream
    "num_layers": 2,  # decoder blocks
    "num_heads": 4,  # query heads, 16 dimensions each
    "kv_heads": 2,  # grouped-query attention: 2 query heads share each key/value head (step 05)
    "vocab_size": 256,  # token ids 0..255: bytes, as in step 07
    "max_seq_len": 64,  # the longest sequence; sizes the RoPE tables
}
model = nn.build_model(cfg, seed=0)
print(model)

# %% [markdown]
# The names are those of Hugging Face `transformers`' Llama (`model.layers.0.self_attn.q_proj`
# ...), so a state dict maps across one to one. The config object fills in what the dict left
# out:

# %%
c = model.config
print(f"head_dim {c.head_dim} = hidden_size / num_heads; kv heads {c.n_kv_heads}; "
      f"MLP width {c.ffn_size} (8/3 x hidden, rounded up to a multiple of 32); "
      f"tied embeddings {c.tie_word_embeddings}")
try:
    nn.build_model({**cfg, "hiden_size": 64})
except nn.ConfigError as e:
    print("a typo is refused:", e)
    typo_message = str(e)
_common.check("a misspelled key is refused with a suggestion", "did you mean 'hidden_size'" in typo_message)

# %% [markdown]
# ## Parameters
#
# Every weight is a `Parameter` (a Tensor that requires grad), registered under a dotted
# name. Linear layers have no bias, as in Llama; RMSNorm has one weight vector.

# %%
total = 0
for name, p in model.named_parameters():
    total += p.size
    print(f"{name:48s} {str(p.shape):12s} {p.size:8,d}")
print(f"{'total':48s} {'':12s} {total:8,d}")

h, v, f, layers = c.hidden_size, c.vocab_size, c.ffn_size, c.num_layers
q_width, kv_width = c.num_heads * c.head_dim, c.n_kv_heads * c.head_dim
per_block = (h * q_width + 2 * h * kv_width + q_width * h  # q, k, v, o projections
             + 3 * h * f  # gate, up, down
             + 2 * h)  # two RMSNorm weights
by_formula = v * h + layers * per_block + h + h * v  # embedding, blocks, final norm, lm_head
print(f"by formula: {v}*{h} + {layers}*{per_block} + {h} + {h}*{v} = {by_formula:,}")
_common.check("the parameter count matches the formula", model.num_parameters() == total == by_formula)

# %% [markdown]
# A quarter of this tiny model is the embedding and the `lm_head` (`2 x 256 x 64`), and with a
# real tokenizer's vocabulary (thousands of tokens) they would dominate a model this narrow;
# in large models the blocks dominate. Setting `tie_word_embeddings: true` shares one matrix
# between the two; the MLPs hold most of each block.

# %%
vocab_share = (v * h + h * v) / total
mlp_share = layers * 3 * h * f / (layers * per_block)
print(f"embedding + lm_head: {vocab_share:.0%} of all parameters; MLPs: {mlp_share:.0%} of each block")
_common.check("the MLP holds most of each block", mlp_share > 0.5)

# %% [markdown]
# ## One forward pass, and the first loss
#
# Inputs are token ids of shape `(batch, seq)`; the model returns **logits** of shape
# `(batch, seq, vocab)`: at every position, a score for each possible next token. The loss
# is the cross-entropy of the true next tokens, the targets, which are the inputs shifted by
# one.
#
# What should the loss be before training? Every matrix starts as Normal(0, 0.02), so the
# logits are all close to 0, the softmax is close to uniform over the 256 tokens, and the
# loss is close to `-log(1/256) = ln 256 ≈ 5.545`. A first loss far from `ln(vocab)` is a
# bug worth finding before training for an hour (too large an init, a wrong target shift).

# %%
batch, seq = (4, 32) if quick else (8, 64)
tokens = rng.integers(0, c.vocab_size, size=(batch, seq + 1))
ids, targets = mg.tensor(tokens[:, :-1]), mg.tensor(tokens[:, 1:])  # targets: the next token
logits = model(ids)
loss = mg.cross_entropy(logits, targets)
print(f"ids {ids.shape} -> logits {logits.shape}; first loss {loss.item():.4f} vs ln({c.vocab_size}) = "
      f"{math.log(c.vocab_size):.4f}")
_common.check("the first loss is about ln(vocab)", abs(loss.item() - math.log(c.vocab_size)) < 0.05)

# %% [markdown]
# ## The same forward pass, from tensor ops
#
# Nothing in the model is magic. Here it is again, written with the tensor ops of steps 01
# to 04 and the `*_simple` attention and RoPE of step 05, reading the model's own weights.
# The model itself uses fused ops (one recorded op each for RMSNorm, RoPE, attention, SwiGLU,
# and one matrix product for q, k, v together); the logits must agree.

# %%


def rms_norm(x: mg.Tensor, weight: mg.Tensor, eps: float) -> mg.Tensor:
    return x * ((x * x).mean(axis=-1, keepdims=True) + eps).rsqrt() * weight  # x / rms(x) * weight


def forward_by_hand(model: nn.CausalLM, ids: mg.Tensor) -> mg.Tensor:
    c, inner = model.config, model.model
    b, t = ids.shape
    x = mg.embedding(ids, inner.embed_tokens.weight)  # (B, T, hidden): row ids[b, t] of the table
    for block in inner.layers:
        attn, mlp = block.self_attn, block.mlp
        a = rms_norm(x, block.input_layernorm.weight, c.rms_norm_eps)
        q = (a @ attn.q_proj.weight.T).reshape(b, t, c.num_heads, c.head_dim)  # (B, T, H, D)
        k = (a @ attn.k_proj.weight.T).reshape(b, t, c.n_kv_heads, c.head_dim)  # (B, T, KV, D)
        v = (a @ attn.v_proj.weight.T).reshape(b, t, c.n_kv_heads, c.head_dim)
        q = ops.apply_rope_simple(q, inner.rope_cos, inner.rope_sin)
        k = ops.apply_rope_simple(k, inner.rope_cos, inner.rope_sin)
        mixed = ops.causal_attention_simple(q, k, v).reshape(b, t, c.num_heads * c.head_dim)
        x = x + mixed @ attn.o_proj.weight.T  # the residual connection
        m = rms_norm(x, block.post_attention_layernorm.weight, c.rms_norm_eps)
        gated = (m @ mlp.gate_proj.weight.T).silu() * (m @ mlp.up_proj.weight.T)  # SwiGLU: (B, T, ffn)
        x = x + gated @ mlp.down_proj.weight.T
    x = rms_norm(x, inner.norm.weight, c.rms_norm_eps)
    return x @ model.lm_head.weight.T  # (B, T, vocab)


logits_by_hand = forward_by_hand(model, ids)
difference = np.abs(logits_by_hand.numpy() - logits.numpy()).max()
print(f"largest logit difference, model vs by hand: {difference:.1e} (float32)")
_common.check("the model's logits equal the hand-written forward pass", difference < 1e-5)

# %% [markdown]
# ## One backward pass
#
# `loss.backward()` fills `.grad` of every parameter. The hand-written version gets its
# gradients from autograd alone, op by op; the model's fused ops use hand-written backward
# passes. They must agree, parameter by parameter:

# %%
loss.backward()
model_grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
model.zero_grad()
mg.cross_entropy(logits_by_hand, targets).backward()
worst_name, worst = max(((name, np.abs(p.grad.numpy() - model_grads[name]).max()
                          / (np.abs(model_grads[name]).max() + 1e-30))
                         for name, p in model.named_parameters()), key=lambda item: item[1])
print(f"largest relative gradient difference: {worst:.1e} ({worst_name})")
_common.check("fused and hand-written gradients agree for every parameter", worst < 1e-3)
_common.check("every parameter receives a gradient", all(np.any(g != 0) for g in model_grads.values()))

# %% [markdown]
# One exception hides inside "every parameter": an embedding row only gets a gradient when
# its token appears in the batch. The forward pass *looked up* rows; rows that were never
# looked up did not affect the loss.

# %%
emb_grad = model_grads["model.embed_tokens.weight"]  # (vocab, hidden)
seen = np.zeros(c.vocab_size, dtype=bool)
seen[tokens[:, :-1].ravel()] = True
rows_with_grad = np.any(emb_grad != 0, axis=1)
print(f"{seen.sum()} of {c.vocab_size} tokens appear in the inputs; {rows_with_grad.sum()} embedding rows "
      "have a gradient")
_common.check("exactly the embedding rows of seen tokens have a gradient", np.array_equal(rows_with_grad, seen))

# %% [markdown]
# ## Gradient norms, layer by layer
#
# The size of each layer's gradient tells where learning happens, and where it might not: a
# gradient that shrinks towards the input layers (vanishing) or grows (exploding) shows up
# here first. `python train.py --log-grad-norms` writes the same numbers to `metrics.jsonl`
# during training (step 07 plots them), grouped the same way: each block as one number.

# %%


def layer_of(name: str) -> str:
    """model.layers.3.mlp.up_proj.weight -> model.layers.3; other parameters keep their name."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["model", "layers"] else name.removesuffix(".weight")


squares: dict = {}
for name, g in model_grads.items():
    squares[layer_of(name)] = squares.get(layer_of(name), 0.0) + float((g.astype(np.float64) ** 2).sum())
layer_norms = {layer: math.sqrt(s) for layer, s in squares.items()}
for layer, norm in layer_norms.items():
    print(f"{layer:24s} |grad| = {norm:.4f}")
per_param = {name: float(np.linalg.norm(g)) for name, g in model_grads.items()}
_common.check("the layer norms combine the parameter norms",
              abs(math.sqrt(sum(n * n for n in layer_norms.values()))
                  - math.sqrt(sum(n * n for n in per_param.values()))) < 1e-4)

# %% [markdown]
# What the numbers say about a model at initialisation:
#
# - The `lm_head` sits right at the loss, and its input (the normalised last hidden state)
#   has unit size, so its gradient is large.
# - The embedding's is as large, for a less obvious reason: its vectors start tiny (std 0.02)
#   and every RMSNorm divides by their size, so a small change to an embedding is a large
#   change after the norm; the gradient grows by the same factor, about 1/0.02.
# - Inside each block, `q_proj` and `k_proj` get far smaller gradients than `v_proj` and
#   `o_proj`. Every score `q·k` starts near 0, so attention starts as a plain average over
#   the visible positions; the gradient of a score with respect to `q` is `k`, which is tiny.
#   The value path learns first; *where to look* is learned more slowly.

# %%
qk = max(per_param[f"model.layers.{i}.self_attn.{m}_proj.weight"] for i in range(layers) for m in "qk")
vo = min(per_param[f"model.layers.{i}.self_attn.{m}_proj.weight"] for i in range(layers) for m in "vo")
print(f"largest q/k projection gradient {qk:.4f}, smallest v/o projection gradient {vo:.4f}")
_common.check("q and k projections start with smaller gradients than v and o", qk < vo)
_common.check("lm_head's gradient is larger than any block's",
              all(layer_norms["lm_head"] > layer_norms[f"model.layers.{i}"] for i in range(layers)))

# %%
plt = _common.pyplot()
if plt is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    ax1.bar(list(layer_norms), list(layer_norms.values()))
    ax1.set_yscale("log")
    ax1.set_ylabel("|grad| (L2)")
    ax1.set_title("gradient norm per layer, first step")
    ax1.tick_params(axis="x", rotation=30)
    short = [name.replace("model.", "").replace(".weight", "") for name in per_param]
    ax2.barh(short[::-1], list(per_param.values())[::-1])
    ax2.set_xscale("log")
    ax2.set_xlabel("|grad| (L2)")
    ax2.set_title("per parameter")
    ax2.tick_params(axis="y", labelsize=7)
    _common.save(fig, "06_grad_norms.png")

# %% [markdown]
# **Next:** `07_training_loop.py` trains this kind of model on real text with AdamW, first
# in a loop you can read in one screen, then with `python train.py`.
