# %% [markdown]
# # 08 · Generating text: the KV cache and the sampling knobs
#
# A language model gives, at every position, scores (logits) for the next token.
# **Generating** is a loop: look at the scores of the last position, pick a token, append it,
# repeat. Two questions decide how well and how fast that goes:
#
# 1. **How much work per new token?** Naively the model reruns the whole sequence for every
#    token it adds. A **KV cache** keeps each layer's keys and values of the positions already
#    seen, so only the new position is computed.
# 2. **Which token to pick?** Always the most likely one (greedy), or a random draw shaped by
#    **temperature**, **top-k** and **top-p**.

# %%
import argparse
import time

import _common
import numpy as np

import minigrad as mg
import nn
from minigrad import optim
from minigrad.data import TokenFile, WindowSampler

quick = _common.is_quick()
rng = np.random.default_rng(0)

# %% [markdown]
# ## A model worth sampling from
#
# Step 07's loop, shortened: a small model trained briefly on the bytes of `argparse.py`, so
# that its continuations look a little like Python. It uses grouped-query attention (2
# key/value heads for 4 query heads), which matters for the cache's size below.

# %%
MODEL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 256,
         "max_seq_len": 128}
with open(argparse.__file__, "rb") as f:
    tokens = np.frombuffer(f.read(), dtype=np.uint8).astype(np.uint32)
model = nn.build_model(MODEL, seed=0)
optimizer = optim.AdamW(optim.decay_groups(model.named_parameters(), 0.1), lr=3e-3, betas=(0.9, 0.95))
sampler = WindowSampler([TokenFile("argparse.py", tokens)], 128, 4, seed=0)  # windows as long as generation goes
train_steps = 100 if quick else 600
for step in range(train_steps):
    optim.set_lr(optimizer, step, 20, train_steps, "cosine", 0.1)
    x, y = sampler.next_batch()
    loss = mg.cross_entropy(model(mg.tensor(x)), mg.tensor(y))
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
print(f"trained {train_steps} steps; last loss {loss.item():.3f} nats per byte")


def as_text(ids: np.ndarray) -> str:
    return bytes(ids.astype(np.uint8)).decode("utf-8", "replace")


prompt = np.frombuffer(b"        self.", dtype=np.uint8).astype(np.int64)[None]  # (1, T) token ids

# %% [markdown]
# ## With and without the cache: the same tokens
#
# `model.generate(ids, max_new_tokens, temperature=0)` is greedy: always the most likely
# next token, so the result is a function of the model alone. With `use_cache=True` (the
# default) each step feeds only the newest token and reuses the cached keys and values;
# with `use_cache=False` each step feeds the whole sequence so far. The tokens must be
# identical: the cache changes how much is computed, not what. The same holds for random
# sampling with the same seed (the random draws are the same; only the logits could differ,
# and they agree to float rounding).

# %%
new_tokens = 64 if quick else MODEL["max_seq_len"] - prompt.shape[1]
cached = model.generate(prompt, new_tokens, temperature=0, use_cache=True)
uncached = model.generate(prompt, new_tokens, temperature=0, use_cache=False)
print("greedy: ", repr(as_text(cached[0])))
_common.check("greedy tokens are identical with and without the cache", np.array_equal(cached, uncached))
sampled = [model.generate(prompt, new_tokens, temperature=1.0, top_k=20, seed=3, use_cache=use_cache)
           for use_cache in (True, False)]
print("sampled:", repr(as_text(sampled[0][0])))
_common.check("sampled tokens (same seed) are identical with and without the cache",
              np.array_equal(*sampled))

# %% [markdown]
# ## What the cache saves
#
# Count the positions the model computes. Every position the model runs goes through the
# embedding layer once, so we count there, by wrapping the embedding's `forward` for a moment.
#
# With a prompt of `P` tokens and `N` new tokens:
#
# - without a cache, step `i` reruns `P + i` positions: `N·P + N(N−1)/2` in all, growing with
#   the *square* of the length;
# - with a cache, the prompt runs once and then each step runs one position: `P + N − 1`.

# %%


def positions_computed(use_cache: bool) -> tuple[int, float]:
    """Run greedy generation; return (positions through the model, seconds)."""
    embed = model.model.embed_tokens
    count = [0]
    plain_forward = embed.forward

    def counting_forward(ids):
        count[0] += ids.shape[0] * ids.shape[1]  # (B, T) ids in this call
        return plain_forward(ids)

    embed.forward = counting_forward  # an instance attribute shadows the method
    start = time.perf_counter()
    try:
        model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
    finally:
        del embed.forward  # back to the class's method
    return count[0], time.perf_counter() - start


P, N = prompt.shape[1], new_tokens
(with_cache, t_with), (without_cache, t_without) = positions_computed(True), positions_computed(False)
print(f"prompt {P} tokens, {N} new tokens")
print(f"  without cache: {without_cache:6,d} positions (formula {N * P + N * (N - 1) // 2:6,d}), "
      f"{1e3 * t_without:6.0f} ms")
print(f"  with cache:    {with_cache:6,d} positions (formula {P + N - 1:6,d}), {1e3 * t_with:6.0f} ms")
print(f"  {without_cache / with_cache:.0f}x fewer positions; {t_without / t_with:.1f}x faster here")
_common.check("the cached run computes P + N - 1 positions", with_cache == P + N - 1)
_common.check("the uncached run computes N*P + N(N-1)/2 positions", without_cache == N * P + N * (N - 1) // 2)

# %% [markdown]
# Timings on a shared machine are noisy, but on a quiet one the time saved is usually smaller
# than the positions saved: a tiny model spends much of each step on fixed costs (Python,
# one call per layer) rather than arithmetic. The longer the text and the larger the model,
# the closer the speed-up gets to the ratio of positions, which itself grows with the length.
#
# ## Inside the cache
#
# `nn.KVCache` holds, for every layer, a keys array and a values array of shape
# `(batch, max_len, kv_heads, head_dim)`, filled up to `cache.length`. Passing it to the model
# makes every attention layer (step 05) write the new positions' keys and values into it and
# attend over everything stored so far; the queries get `offset = cache.length`, so RoPE
# rotates them by their true positions.
#
# Drive it by hand: the prompt first, then one token at a time. The logits of each step must
# equal those of running the whole sequence at once.

# %%
c = model.config
backend = model.model.embed_tokens.weight.backend
sequence = cached[:, :P + 8]  # the prompt and 8 generated tokens
cache = nn.KVCache(c.num_layers, 1, c.max_seq_len, c.n_kv_heads, c.head_dim, backend)
with mg.no_grad():
    full_logits = model(mg.tensor(sequence)).numpy()  # (1, P + 8, vocab), no cache
    step_logits = [model(mg.tensor(sequence[:, :P]), cache).numpy()]  # the prompt: P positions
    for t in range(P, P + 8):
        step_logits.append(model(mg.tensor(sequence[:, t:t + 1]), cache).numpy())  # one position
incremental = np.concatenate(step_logits, axis=1)
difference = np.abs(incremental - full_logits).max()
print(f"cache.length {cache.length}; keys of layer 0: {cache.k[0].shape}; "
      f"largest logit difference {difference:.1e}")
_common.check("step-by-step logits with the cache equal the full pass", difference < 1e-4)

# %% [markdown]
# The price is memory: `2 (keys and values) × layers × max_len × kv_heads × head_dim` numbers
# per sequence. Grouped-query attention divides it by `num_heads / kv_heads` (here 2): the
# main reason models use it.

# %%
per_sequence = 2 * c.num_layers * c.max_seq_len * c.n_kv_heads * c.head_dim * 4  # float32 bytes
allocated = sum(a.nbytes for a in cache.k + cache.v)
print(f"cache: {allocated:,} bytes for one sequence of up to {c.max_seq_len} tokens "
      f"(with one kv head per query head it would be {allocated * c.num_heads // c.n_kv_heads:,})")
_common.check("the cache's size matches the formula", allocated == per_sequence)

# %% [markdown]
# ## Picking the next token
#
# `nn.sample_next(logits, temperature, top_k, top_p, rng)` turns one row of logits per
# sequence into one token per sequence. Its rules, in order:
#
# - **temperature** `τ` divides the logits before the softmax: `τ < 1` sharpens the
#   distribution (towards greedy, which is `τ = 0`), `τ > 1` flattens it (more surprises);
# - **top-k** keeps only the `k` highest-scoring tokens;
# - **top-p** (nucleus) keeps the smallest set of most likely tokens whose probabilities add
#   up to at least `p`, so the cut adapts: few tokens when the model is sure, many when not.
#
# We check each rule on a toy distribution over six "words", by drawing 20,000 samples (one
# call: 20,000 copies of the same row) and comparing the frequencies with what the rule says
# the probabilities should be.

# %%
words = ["the", "a", "this", "one", "my", "zebra"]
logits = np.array([3.0, 2.5, 1.5, 1.0, 0.5, -1.0])
draws = 20_000


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z[np.isfinite(z)].max())
    return e / e.sum()


def expected(temperature: float, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """The probabilities each rule promises, computed here independently."""
    z = logits / temperature
    if top_k is not None:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = softmax(z)
    if top_p is not None:
        order = np.argsort(-p)
        mass_before = np.cumsum(p[order]) - p[order]  # mass of the more likely tokens
        keep = np.zeros_like(p, dtype=bool)
        keep[order[mass_before < top_p]] = True  # stop once the kept mass reaches top_p
        p = np.where(keep, p, 0.0) / p[keep].sum()
    return p


settings = {"τ = 1": dict(temperature=1.0), "τ = 0.5": dict(temperature=0.5), "τ = 2": dict(temperature=2.0),
            "top-k = 2": dict(temperature=1.0, top_k=2), "top-p = 0.8": dict(temperature=1.0, top_p=0.8)}
frequencies, promised = {}, {}
for label, knobs in settings.items():
    picks = nn.sample_next(np.tile(logits, (draws, 1)), knobs["temperature"], knobs.get("top_k"),
                           knobs.get("top_p"), mg.Generator(0))
    frequencies[label] = np.bincount(picks, minlength=len(words)) / draws
    promised[label] = expected(**knobs)
    print(f"{label:12s} " + "  ".join(f"{w} {f:.3f}" for w, f in zip(words, frequencies[label])))
worst = max(np.abs(frequencies[k] - promised[k]).max() for k in settings)
_common.check("sample frequencies match each rule's probabilities", worst < 0.02)
_common.check("top-k = 2 never picks a third word", np.all(frequencies["top-k = 2"][2:] == 0))
_common.check("top-p = 0.8 drops the unlikely tail",
              np.all(frequencies["top-p = 0.8"][promised["top-p = 0.8"] == 0] == 0)
              and (promised["top-p = 0.8"] == 0).sum() >= 2)
_common.check("lower temperature is sharper", frequencies["τ = 0.5"][0] > frequencies["τ = 1"][0]
              > frequencies["τ = 2"][0])
greedy = nn.sample_next(np.tile(logits, (100, 1)), 0.0, None, None, mg.Generator(0))
_common.check("temperature 0 is greedy", np.all(greedy == 0))

# %%
plt = _common.pyplot()
if plt is not None:
    fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    width = 0.8 / len(settings)
    for i, (label, freq) in enumerate(frequencies.items()):
        ax.bar(np.arange(len(words)) + (i - len(settings) / 2 + 0.5) * width, freq, width, label=label)
    ax.set_xticks(np.arange(len(words)), words)
    ax.set_ylabel(f"frequency in {draws:,} draws")
    ax.set_title("the same logits under different sampling rules")
    ax.legend()
    _common.save(fig, "08_sampling.png")

# %% [markdown]
# ## The knobs on the trained model
#
# The same prompt, three ways. Greedy repeats itself easily; a moderate temperature with
# top-k or top-p is the usual compromise between sense and variety. (`python train.py sample
# --checkpoint PATH --temperature 0.8 --top-k 40` does this for a trained run.)

# %%
for label, knobs in {"greedy": dict(temperature=0), "τ=0.8, top-k=20": dict(temperature=0.8, top_k=20),
                     "τ=1.0, top-p=0.9": dict(temperature=1.0, top_p=0.9)}.items():
    text = as_text(model.generate(prompt, 48, seed=1, **knobs)[0])
    print(f"{label:18s} {text!r}")

# %% [markdown]
# That is the whole path from a Tensor to a language model that writes: autograd (01-03), a
# training loop (04, 07), attention and the Llama blocks (05, 06), and generation (08).
