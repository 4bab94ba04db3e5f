# %% [markdown]
# # 04 · A Linear layer, an MLP, and a training loop written by hand
#
# Steps 01 to 03 computed gradients. Now we **use** them: build a small network from
# nothing but tensor ops, and run the simplest optimizer there is, stochastic gradient
# descent (SGD), until it separates two interleaved spirals, a task no straight line can do.
#
# The target, stated up front and asserted at the end: the cross-entropy loss on the
# training points falls **below 0.05** and at least **98 %** of the points are classified
# correctly (in quick mode too: it trains fewer steps but still reaches the target).

# %%
import time

import _common
import numpy as np

import minigrad as mg

LOSS_TARGET = 0.05
ACCURACY_TARGET = 0.98
quick = _common.is_quick()
steps = 500 if quick else 1000
learning_rate = 0.3  # larger steps learn faster here but make the loss spike now and then
mg.manual_seed(0)  # the same initial weights on every run
rng = np.random.default_rng(0)

# %% [markdown]
# ## The data: two spirals
#
# Each class is an arm of a spiral; the second arm is the first rotated by half a turn.
# Inputs are 2-D points, labels are 0 or 1.

# %%


def two_spirals(n_per_class: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    radius = np.linspace(0.1, 1.0, n_per_class)
    points, labels = [], []
    for label in (0, 1):
        angle = label * np.pi + 2 * np.pi * radius + rng.normal(0.0, noise, n_per_class)
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels)


X, Y = two_spirals(100, noise=0.05)
x, y = mg.tensor(X), mg.tensor(Y)  # x (200, 2) float32, y (200,) int64
print("inputs", x.shape, x.dtype, " labels", y.shape, y.dtype)

# %% [markdown]
# ## A Linear layer
#
# A linear layer computes `x Wᵀ + b`. We store `W` as `(out_features, in_features)`, the
# layout PyTorch (and `nn.Linear` in this repo) uses. Step 02 explains why `b` of shape
# `(out,)` gets a gradient summed over the batch.
#
# The initial weights are scaled by `1/√in_features`, so every layer's outputs start with
# roughly the spread of its inputs: not so large that tanh saturates (flat, tiny
# gradients), not so small that the signal fades.

# %%


class Linear:
    def __init__(self, in_features: int, out_features: int, dtype=mg.float32):
        scale = in_features ** -0.5
        self.weight = (mg.randn(out_features, in_features, dtype=dtype) * scale).requires_grad_()
        self.bias = mg.zeros(out_features, dtype=dtype, requires_grad=True)

    def __call__(self, x: mg.Tensor) -> mg.Tensor:
        return x @ self.weight.T + self.bias  # (N, in) @ (in, out) + (out,) -> (N, out)

    def parameters(self) -> list:
        return [self.weight, self.bias]


# %% [markdown]
# ## An MLP
#
# A multi-layer perceptron is Linear layers with a nonlinearity between them. Without the
# `tanh`, two Linear layers would collapse into one (a product of matrices is a matrix) and
# the network could only draw straight boundaries.

# %%


class MLP:
    def __init__(self, sizes: list, dtype=mg.float32):
        self.layers = [Linear(a, b, dtype) for a, b in zip(sizes[:-1], sizes[1:])]

    def __call__(self, x: mg.Tensor) -> mg.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:  # no tanh after the last layer: logits are unbounded
                x = x.tanh()
        return x

    def parameters(self) -> list:
        return [p for layer in self.layers for p in layer.parameters()]


model = MLP([2, 32, 32, 2])
n_params = sum(p.size for p in model.parameters())
print(f"MLP 2 -> 32 -> 32 -> 2: {n_params} parameters")

# %% [markdown]
# ## The loss: cross-entropy, from ops
#
# The network outputs two numbers per point (logits). Softmax turns them into
# probabilities; the loss is the average of `-log p(correct class)`. In log space:
# `log p = logits - log Σ exp(logits)`.
#
# Subtracting each row's max before `exp` avoids overflow and does not change the result
# (softmax ignores a constant shift), so we `detach()` the max: its gradient would cancel out
# anyway.

# %%


def cross_entropy(logits: mg.Tensor, labels: mg.Tensor) -> mg.Tensor:
    shifted = logits - logits.max(axis=1, keepdims=True).detach()  # (N, C)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()  # (N, C)
    picked = log_probs[mg.arange(labels.shape[0]), labels]  # (N,): log p of the right class
    return -picked.mean()


logits = model(x)
loss0 = cross_entropy(logits, y)
print(f"initial loss {loss0.item():.4f}; guessing at random would give log 2 = {np.log(2):.4f}")
_common.check("our cross-entropy equals minigrad's fused one",
              abs(loss0.item() - mg.cross_entropy(logits, y).item()) < 1e-5)
_common.check("the untrained network is about as good as a coin", abs(loss0.item() - np.log(2)) < 0.1)

# %% [markdown]
# Before training on it, check the whole model's gradient numerically, as in step 03:
# a small float64 copy of the architecture (finite differences need the precision) on a
# few points. gradcheck nudges each parameter in place, so the function just reruns the
# model.

# %%
small = MLP([2, 4, 2], dtype=mg.float64)
x8, y8 = x[:8].double(), y[:8]
_common.check("the MLP's gradient passes gradcheck",
              mg.gradcheck(lambda *params: cross_entropy(small(x8), y8), small.parameters()))

# %% [markdown]
# ## The training loop
#
# Every step does the same four things:
#
# 1. **forward**: logits and loss for all 200 points (full batch: the data set is tiny);
# 2. **zero** the old gradients (backward *adds*, as step 01 showed);
# 3. **backward**: fill every parameter's `.grad`;
# 4. **update**: move each parameter a little *against* its gradient, downhill.
#
# The update changes `p.data`, the raw array inside the tensor, so it is not recorded as
# an op: we want new numbers, not a longer graph.

# %%
losses = []
start = time.perf_counter()
for step in range(steps):
    logits = model(x)
    loss = cross_entropy(logits, y)
    for p in model.parameters():
        p.grad = None
    loss.backward()
    for p in model.parameters():
        p.data -= learning_rate * p.grad.data
    losses.append(loss.item())
    if step % (steps // 5) == 0 or step == steps - 1:
        print(f"step {step:4d}  loss {losses[-1]:.4f}")
seconds = time.perf_counter() - start
print(f"{steps} steps in {seconds:.2f} s ({1e3 * seconds / steps:.2f} ms per step)")

# %% [markdown]
# ## Did it learn?

# %%
with mg.no_grad():
    final_logits = model(x)
final_loss = cross_entropy(final_logits, y).item()
accuracy = float((final_logits.argmax(axis=1).numpy() == Y).mean())
print(f"final loss {final_loss:.4f} (target < {LOSS_TARGET}), "
      f"accuracy {accuracy:.1%} (target >= {ACCURACY_TARGET:.0%})")
_common.check(f"loss fell below {LOSS_TARGET}", final_loss < LOSS_TARGET)
_common.check(f"accuracy reached {ACCURACY_TARGET:.0%}", accuracy >= ACCURACY_TARGET)
_common.check("the loss went down overall", losses[-1] < 0.2 * losses[0])

# %% [markdown]
# ## Pictures: the loss curve and the learned boundary

# %%
plt = _common.pyplot()
if plt is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(losses)
    ax1.axhline(LOSS_TARGET, color="gray", linestyle="--", label=f"target {LOSS_TARGET}")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    grid = np.linspace(-1.1, 1.1, 120, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    with mg.no_grad():
        p1 = model(mg.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1))).softmax(axis=1)[:, 1]
    ax2.contourf(gx, gy, p1.numpy().reshape(gx.shape), levels=20, cmap="RdBu_r", alpha=0.6)
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        ax2.scatter(X[Y == label, 0], X[Y == label, 1], color=colour, edgecolors="white", s=18,
                    label=f"class {label}")
    ax2.legend(loc="lower right")
    ax2.set_title("p(class 1) and the training points")
    ax2.set_aspect("equal")
    _common.save(fig, "04_training.png")

# %% [markdown]
# That is a whole training run in a few dozen lines. Everything that follows, embeddings,
# attention, a language model, is more layers and a better optimizer around this loop.
#
# **Next:** `05_attention_from_scratch.py` builds attention, the heart of a language model.
