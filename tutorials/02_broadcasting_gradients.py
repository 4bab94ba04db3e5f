# %% [markdown]
# # 02 · Broadcasting, and why gradients are summed back
#
# In step 01 the input `a` was used twice, and its two gradient contributions **added up**.
# Broadcasting is the same thing at scale: when a bias of shape `(4,)` is added to a batch
# of shape `(3, 4)`, each bias entry is silently *used three times*, once per row. So its
# gradient is the **sum** of three contributions.
#
# This step makes that visible: shapes going forward, sums coming back.

# %%
import _common
import numpy as np

import minigrad as mg
from minigrad.autograd import unbroadcast

rng = np.random.default_rng(0)

# %% [markdown]
# ## Forward: the shapes stretch
#
# Broadcasting lines shapes up from the right; a missing dimension or a dimension of size 1
# is stretched to match the other operand.

# %%
x = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
bias = mg.tensor(rng.standard_normal(4), requires_grad=True)
y = x + bias
print(f"x {x.shape} + bias {bias.shape} -> y {y.shape}")

# %% [markdown]
# ## Backward: the gradients sum
#
# Suppose the rest of the network sends back some upstream gradient `G = dL/dy` of shape
# `(3, 4)`. We fake it with random numbers by computing `L = sum(y * G)`, whose gradient
# with respect to `y` is exactly `G`.
#
# * `x` was not stretched, so `dL/dx = G`, same shape `(3, 4)`.
# * `bias[j]` fed every row `i` of column `j`, so `dL/dbias[j] = Σ_i G[i, j]`: a sum over
#   the stretched dimension, giving back shape `(4,)`.

# %%
G = rng.standard_normal((3, 4))
(y * mg.tensor(G)).sum().backward()
print("G =\n", G.round(2))
print("bias.grad      =", bias.grad.numpy().round(4))
print("G.sum(axis=0)  =", G.sum(axis=0).round(4))
_common.check("x.grad is G", np.allclose(x.grad.numpy(), G))
_common.check("bias.grad is G summed over rows", np.allclose(bias.grad.numpy(), G.sum(axis=0)))
_common.check("every gradient has its tensor's shape", x.grad.shape == x.shape and bias.grad.shape == bias.shape)

# %% [markdown]
# ## A size-1 dimension is stretched too
#
# A column of shape `(3, 1)` is stretched along the columns, so its gradient sums along
# axis 1, *keeping* that axis so the shape stays `(3, 1)`. A 0-d scalar tensor is stretched
# along everything, so its gradient is the sum of all of `G`.

# %%
col = mg.tensor(rng.standard_normal((3, 1)), requires_grad=True)
scale = mg.tensor(2.0, dtype=mg.float64, requires_grad=True)
z = (x + col) * scale
print(f"x {x.shape} + col {col.shape} -> {(x + col).shape}; times scale {scale.shape} -> {z.shape}")
(z * mg.tensor(G)).sum().backward()
# z = (x + col) * s: dL/dcol = s * G summed over axis 1; dL/ds = sum(G * (x + col)).
xv, cv = x.numpy(), col.numpy()
_common.check("col.grad sums over the stretched axis (keepdims)",
              np.allclose(col.grad.numpy(), 2.0 * G.sum(axis=1, keepdims=True)) and col.grad.shape == (3, 1))
_common.check("a scalar's gradient sums over everything", np.isclose(scale.grad.item(), (G * (xv + cv)).sum()))

# %% [markdown]
# ## Where this happens in minigrad
#
# No op has to think about it. Each op's `backward` returns a gradient shaped like its
# *output*; the engine then calls `unbroadcast(xp, grad, input_shape)` once, which sums
# over the dimensions broadcasting added (leading ones) and the ones it stretched (size 1).
# Here it is on its own:

# %%
g = np.ones((2, 3, 4))
for shape in [(3, 4), (4,), (3, 1), (1, 4), ()]:
    r = unbroadcast(np, g, shape)
    print(f"unbroadcast {g.shape} -> {shape!s:7}: each entry = {r.reshape(-1)[0]:.0f} (how many times it was used)")
_common.check("unbroadcast counts the uses", unbroadcast(np, g, (3, 1)).reshape(-1)[0] == 2 * 4)

# %% [markdown]
# ## The same rule inside matmul
#
# A weight matrix `W (4, 5)` applied to a batch `x (2, 3, 4)` is broadcast over the batch
# dimension: every sample uses the same `W`. So `dL/dW` is the sum over samples of
# `x_bᵀ G_b`, exactly what you would write with a loop.

# %%
xb = mg.tensor(rng.standard_normal((2, 3, 4)))
W = mg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
Gb = rng.standard_normal((2, 3, 5))
((xb @ W) * mg.tensor(Gb)).sum().backward()
by_loop = sum(xb.numpy()[i].T @ Gb[i] for i in range(2))
_common.check("W.grad sums the batch", np.allclose(W.grad.numpy(), by_loop))

# %% [markdown]
# ## Why you care: sum versus mean over a batch
#
# Because a shared parameter's gradient is a sum over its uses, it grows with the batch
# when the loss is a **sum** over samples, and stays put when the loss is a **mean**. That
# is why losses average over the batch: the learning rate then does not depend on the
# batch size.

# %%
sizes = [4, 16, 64] if _common.is_quick() else [4, 16, 64, 256, 1024]
norms_sum, norms_mean = [], []
for n in sizes:
    data = mg.tensor(rng.standard_normal((n, 4)) + 1.0)
    b = mg.tensor(np.zeros(4), requires_grad=True)
    ((data + b) ** 2).sum().backward()
    norms_sum.append(float(np.linalg.norm(b.grad.numpy())))
    b.grad = None
    ((data + b) ** 2).mean().backward()
    norms_mean.append(float(np.linalg.norm(b.grad.numpy())))
for n, s, m in zip(sizes, norms_sum, norms_mean):
    print(f"batch {n:5d}: |grad| with sum-loss {s:9.2f}   with mean-loss {m:6.3f}")
_common.check("sum-loss gradients grow with the batch", norms_sum[-1] > 4 * norms_sum[0])
_common.check("mean-loss gradients do not", max(norms_mean) < 3 * min(norms_mean))

# %%
plt = _common.pyplot()
if plt is not None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    pos = np.arange(len(sizes))
    ax.bar(pos - 0.2, norms_sum, 0.4, label="sum over batch")
    ax.bar(pos + 0.2, norms_mean, 0.4, label="mean over batch")
    ax.set_xticks(pos, [str(n) for n in sizes])
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("|d loss / d bias|")
    ax.legend()
    _common.save(fig, "02_grad_norm_vs_batch.png")

# %% [markdown]
# **Next:** `03_inspecting_gradients.py`: looking inside a backward pass with hooks,
# checking gradients numerically, and drawing the graph.
