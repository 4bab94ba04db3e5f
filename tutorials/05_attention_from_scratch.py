# %% [markdown]
# # 05 · Attention from scratch: loops, ops, the fused kernel, the causal mask and RoPE
#
# Attention is the one layer of a language model that mixes information *between*
# positions. This step builds it three times and checks that all three agree:
#
# 1. with Python loops over positions, straight from the definition;
# 2. from tensor ops (`nn.ops.causal_attention_simple`), so autograd derives the backward;
# 3. as one fused op with a hand-written backward (`nn.ops.causal_attention`), the one the
#    model uses.
#
# Then the two ingredients that make it a *language model's* attention: the **causal mask**
# (a position may not look at the future) and **rotary position embeddings** (RoPE), which
# make the score between two tokens depend on how far apart they are, not on where they sit.

# %%
import time

import _common
import numpy as np

import minigrad as mg
from nn import ops

quick = _common.is_quick()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The definition
#
# Each position `i` has a query vector `q_i`, a key `k_j` and a value `v_j`, all of length `D`
# (the head size). Position `i` scores every position it may see,
# `s_ij = q_i · k_j / √D`, turns the scores into weights with a softmax, and returns the
# weighted average of the values: `out_i = Σ_j softmax(s_i)_j v_j`. "May see" means `j ≤ i`.
#
# The `1/√D` keeps the scores' spread independent of `D`: a dot product of `D` random terms
# grows like `√D`, and large scores would make the softmax pick one position and nothing else.

# %%


def attention_by_loops(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One head, plain NumPy: q (T, D), k and v (T, D) -> out (T, D)."""
    t, d = q.shape
    out = np.zeros_like(q)
    for i in range(t):
        scores = np.array([q[i] @ k[j] for j in range(i + 1)]) / np.sqrt(d)  # only j <= i
        weights = np.exp(scores - scores.max())  # the max shift changes nothing (step 04)
        weights /= weights.sum()
        out[i] = sum(weights[j] * v[j] for j in range(i + 1))
    return out


# %% [markdown]
# ## Heads and the layout the ops use
#
# A model runs several heads side by side, each with its own slice of the hidden vector.
# minigrad's attention ops take `q` of shape `(B, T, H, D)` (batch, positions, heads, head
# size) and `k`, `v` of shape `(B, T, KV, D)`: the layout the projections produce, so no
# transposes are needed around the op.
#
# `KV` may be smaller than `H`: **grouped-query attention** lets `H / KV` query heads share one
# key/value head, which shrinks the KV cache of step 08. Query head `h` uses key/value head
# `h // (H / KV)`. Below, 4 query heads share 2 key/value heads, in float64 so the
# comparisons can be tight.

# %%
B, T, H, KV, D = 2, 6, 4, 2, 8
q = mg.tensor(rng.standard_normal((B, T, H, D)), requires_grad=True)
k = mg.tensor(rng.standard_normal((B, T, KV, D)), requires_grad=True)
v = mg.tensor(rng.standard_normal((B, T, KV, D)), requires_grad=True)

out_simple = ops.causal_attention_simple(q, k, v)  # from ops
out_fused = ops.causal_attention(q, k, v)  # one op
print("out", out_fused.shape)

group = H // KV
loops = np.zeros((B, T, H, D))
for b in range(B):
    for h in range(H):
        loops[b, :, h] = attention_by_loops(q.numpy()[b, :, h], k.numpy()[b, :, h // group],
                                            v.numpy()[b, :, h // group])
_common.check("ops agree with the loops", np.allclose(out_simple.numpy(), loops, atol=1e-12))
_common.check("the fused op agrees with the loops", np.allclose(out_fused.numpy(), loops, atol=1e-12))

# %% [markdown]
# ## Two ways to the same gradient
#
# `causal_attention_simple` is built from primitive ops (matmul, mask, softmax, matmul, and
# the reshapes between them); autograd records each one and derives the backward. The fused
# `causal_attention` is **one** recorded op whose backward was written by hand: it keeps only
# the attention weights `P` from the forward pass and computes
#
# - `dV = Pᵀ dO`,
# - `dP = dO Vᵀ`,  `dS = P ⊙ (dP − rowsum(dP ⊙ P))` (the softmax backward),
# - `dQ = dS K / √D`,  `dK = dSᵀ Q / √D`,
#
# summing `dK`, `dV` over the query heads that share a key/value head. Here are the two
# graphs, walked as in step 01:

# %%


def ops_in_graph(t: mg.Tensor) -> list:
    """Names of the recorded ops behind t, each once."""
    seen, names, stack = set(), [], [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        names.append(fn.name)
        stack.extend(x.grad_fn for x in fn.inputs)
    return names


simple_ops, fused_ops = ops_in_graph(out_simple), ops_in_graph(out_fused)
print(f"simple: {len(simple_ops)} ops {sorted(set(simple_ops))}")
print(f"fused:  {len(fused_ops)} op  {fused_ops}")
_common.check("the fused attention is a single recorded op", fused_ops == ["CausalAttention"])

# %% [markdown]
# Both backward passes, given the same upstream gradient `g`, must give the same `dq`, `dk`,
# `dv`; and the hand-written one must pass `gradcheck` (finite differences, as in step 03).

# %%
g = mg.tensor(rng.standard_normal(out_fused.shape))
grads = {}
for name, attention in (("simple", ops.causal_attention_simple), ("fused", ops.causal_attention)):
    q.grad = k.grad = v.grad = None
    (attention(q, k, v) * g).sum().backward()
    grads[name] = [t.grad.numpy() for t in (q, k, v)]
worst = max(np.abs(a - b).max() for a, b in zip(grads["simple"], grads["fused"]))
print(f"largest difference between the two backward passes: {worst:.1e}")
_common.check("fused and simple gradients agree", worst < 1e-12)

small = [mg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 4, 2, 4), (1, 4, 1, 4), (1, 4, 1, 4))]
_common.check("the hand-written backward passes gradcheck", mg.gradcheck(ops.causal_attention, small))

# %% [markdown]
# Why write the backward by hand? Fewer recorded ops means less bookkeeping and fewer saved
# arrays: the simple version keeps the scores, the masked scores and the weights for its
# backward, the fused one only the weights. And a single op is a single place to put a
# faster kernel. The fused op asks its tensor's backend for `kernel("attention_forward")`:
# the default `numpy` backend answers with the reference written in NumPy (the same math as
# the composite, so about the same speed), while the `numba` backend answers with a compiled
# twin (BLAS products and a fused causal softmax), held by the tests to that reference. The
# twin keeps even less: not `P` but one number per query row, its log-sum-exp `lse`, from
# which its backward recomputes `P = exp(S − lse)` block by block (flash style), so the memory
# it keeps grows with the sequence length, not with its square.
#
# A rough timing, forward and backward, float32 (the first `numba` call may pause to compile
# or load its kernels; we time the best of a few runs after it):

# %%
shape_q, shape_kv = ((4, 128, 4, 32), (4, 128, 2, 32)) if quick else ((4, 256, 8, 64), (4, 256, 4, 64))
outputs = {}
for backend in ("numpy", "numba"):
    mg.manual_seed(0)  # the same numbers on both backends
    qt, kt, vt = (mg.randn(*s, backend=backend, requires_grad=True) for s in (shape_q, shape_kv, shape_kv))
    for name, attention in (("simple", ops.causal_attention_simple), ("fused", ops.causal_attention)):
        outputs[backend, name] = attention(qt, kt, vt).numpy()  # also warms up (and compiles)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            attention(qt, kt, vt).sum().backward()
            best = min(best, time.perf_counter() - start)
        print(f"{backend:5s} {name:6s} q {shape_q}: {1e3 * best:6.1f} ms forward + backward")
worst = max(np.abs(o - outputs["numpy", "simple"]).max() for o in outputs.values())
_common.check("every backend and version gives the same attention (float32)", worst < 1e-5)

# %% [markdown]
# ## The causal mask
#
# A language model learns to predict token `i + 1` from tokens `0 .. i`. If position `i`
# could see position `i + 1`, it would copy the answer. The mask sets the scores of future
# positions to `-∞` before the softmax, so their weights are exactly 0:

# %%
mask = np.arange(T)[None, :] > np.arange(T)[:, None]  # True where key j is in query i's future
print("masked (x) and visible (.) pairs, rows = queries, columns = keys:")
print("\n".join(" ".join("x" if m else "." for m in row) for row in mask))

# %% [markdown]
# Two consequences we can check directly. Changing the **last** position's key and value
# leaves every earlier output untouched; and the gradient of an early output with respect
# to later keys is exactly zero.

# %%
k2, v2 = k.numpy().copy(), v.numpy().copy()
k2[:, -1] += 5.0
v2[:, -1] -= 3.0
changed = ops.causal_attention(q, mg.tensor(k2), mg.tensor(v2)).numpy()
_common.check("earlier outputs ignore a changed future",
              np.array_equal(changed[:, :-1], out_fused.numpy()[:, :-1])
              and not np.allclose(changed[:, -1], out_fused.numpy()[:, -1]))

q.grad = k.grad = v.grad = None
ops.causal_attention(q, k, v)[:, 2].sum().backward()  # only output position 2
_common.check("output 2 gets no gradient from keys 3 and later",
              np.all(k.grad.numpy()[:, 3:] == 0) and np.any(k.grad.numpy()[:, :3] != 0))

# %% [markdown]
# The ops also take an `offset`: the queries then sit at positions `offset, offset + 1, ...`
# while the keys start at 0. That is what generation with a KV cache needs (step 08): the new
# token's query attends to the keys of everything before it, without recomputing their rows.

# %%
last_two = ops.causal_attention(q[:, -2:], k, v, offset=T - 2)
_common.check("queries with an offset reproduce the last rows",
              np.allclose(last_two.numpy(), out_fused.numpy()[:, -2:], atol=1e-12))

# %% [markdown]
# ## Rotary position embeddings (RoPE)
#
# Attention as written has no idea of order: permute the keys and values together and each
# output stays the same. RoPE adds order by **rotating** each query and key according to its
# position, before the dot product.
#
# Split a head's vector in two halves and pair element `i` with element `i + D/2`. Each pair is
# a point in a plane; at position `p` it is rotated by the angle `p · θ_i`, where
# `θ_i = base^(-2i/D)` runs from 1 radian per position (fast) down to about `1/base` (slow):
# a clock with hands at many speeds. `ops.rope_tables` precomputes `cos(p θ_i)` and
# `sin(p θ_i)` for every position; `ops.apply_rope` rotates.
#
# A pair `(a, b)` is the complex number `a + ib`, and a rotation by `φ` is a multiplication by
# `e^{iφ}`: that gives us an independent way to compute it.

# %%
D_ROPE, MAX_LEN, BASE = 16, 64, 10000.0
cos, sin = ops.rope_tables(D_ROPE, MAX_LEN, BASE, mg.get_backend("numpy"), dtype=np.float64)
print("tables", cos.shape, "(positions, head size)")

x = mg.tensor(rng.standard_normal((1, 10, 1, D_ROPE)), requires_grad=True)  # (B, T, H, D)
rotated = ops.apply_rope(x, cos, sin)

half = D_ROPE // 2
theta = BASE ** (-np.arange(half) * 2 / D_ROPE)  # (D/2,)
angle = np.arange(10)[:, None] * theta[None, :]  # (T, D/2): position p times theta_i
z = x.numpy()[0, :, 0, :half] + 1j * x.numpy()[0, :, 0, half:]  # (T, D/2) complex pairs
z_rotated = z * np.exp(1j * angle)
by_complex = np.concatenate([z_rotated.real, z_rotated.imag], axis=-1)
_common.check("apply_rope is a rotation of complex pairs", np.allclose(rotated.numpy()[0, :, 0], by_complex))
_common.check("rotation keeps each vector's length",
              np.allclose(np.linalg.norm(rotated.numpy(), axis=-1), np.linalg.norm(x.numpy(), axis=-1)))

# %% [markdown]
# As with attention, there is a `*_simple` composite next to the fused op; their outputs and
# gradients agree.

# %%
gx = mg.tensor(rng.standard_normal(x.shape))
rope_grads = []
for rope in (ops.apply_rope_simple, ops.apply_rope):
    x.grad = None
    y = rope(x, cos, sin)
    (y * gx).sum().backward()
    rope_grads.append((y.numpy(), x.grad.numpy()))
_common.check("apply_rope and apply_rope_simple agree (values and gradients)",
              all(np.allclose(a, b, atol=1e-12) for a, b in zip(*rope_grads)))

# %% [markdown]
# ### Why relative position falls out
#
# Put a query at position `m` and a key at position `n`. For one pair, rotating the query by
# `mθ` and the key by `nθ` and taking the dot product is `|q||k| cos(φ_q − φ_k + (m − n)θ)`:
# only the **difference** `m − n` enters. Summed over pairs, so is the whole score. So RoPE
# needs no "position of the key" in the model: the same pattern of scores appears wherever
# the two tokens sit in the sequence.
#
# Check it: the same two vectors, placed at three different pairs of positions three apart,
# give the same score; three apart is not the same as four apart. (`apply_rope`'s `offset`
# places a single vector at a chosen position.)

# %%
q_vec = mg.tensor(rng.standard_normal((1, 1, 1, D_ROPE)))
k_vec = mg.tensor(rng.standard_normal((1, 1, 1, D_ROPE)))


def rope_score(m: int, n: int) -> float:
    """q at position m, k at position n, both rotated, then their dot product."""
    qm = ops.apply_rope(q_vec, cos, sin, offset=m).numpy().ravel()
    kn = ops.apply_rope(k_vec, cos, sin, offset=n).numpy().ravel()
    return float(qm @ kn)


same_distance = [rope_score(m, m - 3) for m in (3, 20, 50)]
print("score at distance 3, queries at 3, 20, 50:", np.round(same_distance, 6))
print("score at distance 4:", round(rope_score(20, 16), 6))
_common.check("the RoPE score depends only on the distance",
              np.ptp(same_distance) < 1e-12 and abs(rope_score(20, 16) - same_distance[0]) > 1e-3)

# %% [markdown]
# ## An attention map
#
# The weights `P` (query rows, key columns) are the classic picture. We compute them from
# ops, as the simple version does, and confirm them against the fused op with a trick:
# with the values set to the identity matrix (`v_j` = the `j`-th unit vector), the output of
# row `i` *is* the weight row `P_i`.
#
# Two maps, 32 positions each, one head:
#
# - **random** queries and keys, rotated by RoPE: nothing above the diagonal (the mask), and
#   each row sums to 1;
# - **the same content at every position** (`q_i = q`, `k_j = k` for all positions): now
#   *only* RoPE tells positions apart, so the score depends on `i − j` alone and the map is
#   constant along every diagonal.

# %%
T_MAP = 32  # the identity-values trick needs head size = number of positions
cos32, sin32 = ops.rope_tables(T_MAP, T_MAP, BASE, mg.get_backend("numpy"), dtype=np.float64)


def attention_weights(q: mg.Tensor, k: mg.Tensor) -> np.ndarray:
    """Weights P (T, S) of one head: q (1, T, 1, D), k (1, S, 1, D)."""
    d = q.shape[-1]
    scores = (q[0, :, 0] @ k[0, :, 0].T) / np.sqrt(d)  # (T, S)
    future = mg.tensor(np.arange(k.shape[1])[None, :] > np.arange(q.shape[1])[:, None])
    return scores.masked_fill(future, float("-inf")).softmax(axis=-1).numpy()


maps, read_out_error = {}, 0.0
for label, (q_in, k_in) in {
    "random q, k": (rng.standard_normal((1, T_MAP, 1, T_MAP)), rng.standard_normal((1, T_MAP, 1, T_MAP))),
    "same q, k at every position": (np.tile(rng.standard_normal(T_MAP), (1, T_MAP, 1, 1)),
                                    np.tile(rng.standard_normal(T_MAP), (1, T_MAP, 1, 1))),
}.items():
    qr = ops.apply_rope(mg.tensor(q_in * 2.0), cos32, sin32)  # x2: sharper weights, easier to see
    kr = ops.apply_rope(mg.tensor(k_in * 2.0), cos32, sin32)
    maps[label] = attention_weights(qr, kr)
    identity_values = mg.tensor(np.eye(T_MAP)[None, :, None, :])  # (1, S, 1, S)
    read_out = ops.causal_attention(qr, kr, identity_values).numpy()[0, :, 0]
    read_out_error = max(read_out_error, np.abs(read_out - maps[label]).max())

P = maps["random q, k"]
_common.check("the map is zero above the diagonal and rows sum to 1",
              np.all(P[np.triu_indices(T_MAP, 1)] == 0) and np.allclose(P.sum(axis=1), 1))
_common.check("the fused op's weights equal the map (values = identity)", read_out_error < 1e-12)
scores_same = np.log(maps["same q, k at every position"] + 1e-300)
# Along diagonal -d the raw score is the same; the softmax's normaliser differs per row, so compare
# score differences within rows: P[i, i-d] / P[i, i] must not depend on i.
ratios = [scores_same[i, i - 3] - scores_same[i, i] for i in range(3, T_MAP)]
_common.check("with equal content, the map depends only on i - j", np.ptp(ratios) < 1e-9)
print("weights of the first 6 queries (random q, k), rounded:")
print(np.round(P[:6, :6], 2))

plt = _common.pyplot()
if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
    for ax, (label, weights) in zip(axes, maps.items()):
        image = ax.imshow(weights, cmap="viridis")
        ax.set_title(label)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        fig.colorbar(image, ax=ax, fraction=0.046)
    _common.save(fig, "05_attention_maps.png")

# %% [markdown]
# In `nn`'s Llama attention layer these pieces appear in exactly this order: project `x` to
# `q`, `k`, `v`; `apply_rope` to `q` and `k`; `causal_attention`; project back.
#
# **Next:** `06_tiny_llama.py` builds a whole (tiny) Llama from a config and looks at its
# parameters and their gradients, layer by layer.
