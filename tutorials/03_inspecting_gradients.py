# %% [markdown]
# # 03 · Inspecting gradients
#
# When training misbehaves, the first question is usually *what gradients are flowing
# where?* This step shows four tools for looking inside a backward pass:
#
# 1. `retain_grad()`: keep the gradient of an intermediate tensor;
# 2. `register_hook(fn)`: see (or change) a gradient the moment it is computed;
# 3. `minigrad.gradcheck`: test a gradient against finite differences, as in step 01;
# 4. `minigrad.viz`: draw the graph, with gradient norms on it.

# %%
import os
import shutil

import _common
import numpy as np

import minigrad as mg
from minigrad import viz

rng = np.random.default_rng(0)

# %% [markdown]
# ## A small two-layer network
#
# `x (8, 3) → tanh(x @ W1 + b1) = h (8, 5) → h @ W2 = out (8, 1) → loss = mean(out²)`.
# We keep everything float64 so the checks can be tight.

# %%
x = mg.tensor(rng.standard_normal((8, 3)))
W1 = mg.tensor(rng.standard_normal((3, 5)) * 0.5, requires_grad=True)
b1 = mg.tensor(np.zeros(5), requires_grad=True)
W2 = mg.tensor(rng.standard_normal((5, 1)) * 0.5, requires_grad=True)


def forward():
    z = x @ W1 + b1  # (8, 5)
    h = z.tanh()  # (8, 5)
    out = h @ W2  # (8, 1)
    return z, h, out, (out**2).mean()


def clear_grads():
    for p in (W1, b1, W2):
        p.grad = None


# %% [markdown]
# ## 1. retain_grad: gradients of intermediate tensors
#
# Leaves (`W1`, `b1`, `W2`) keep their `.grad` after backward: that is what an optimizer
# reads. Intermediate tensors do not, to save memory, unless you ask with `retain_grad()`.
#
# By hand: `dL/dout = 2·out / N` (N = 8 rows) and `dL/dh = dL/dout @ W2ᵀ`.

# %%
z, h, out, loss = forward()
h.retain_grad()
loss.backward()
d_out = 2 * out.numpy() / out.size
_common.check("h.grad matches the hand formula", np.allclose(h.grad.numpy(), d_out @ W2.numpy().T))
_common.check("z kept no gradient (no retain_grad)", z.grad is None)
print("|dL/dh| =", np.linalg.norm(h.grad.numpy()).round(4), " |dL/dW1| =", np.linalg.norm(W1.grad.numpy()).round(4))

# %% [markdown]
# ## 2. Hooks: watch or change a gradient in flight
#
# `t.register_hook(fn)` calls `fn(grad)` as soon as `t`'s gradient is known, before it
# flows further back. Returning nothing just watches; returning a tensor **replaces** the
# gradient for everything upstream. `register_hook` returns a function that removes the
# hook again.
#
# First, a watching hook: it sees exactly what `retain_grad` stored.

# %%
seen = []
clear_grads()
z, h, out, loss = forward()
remove = h.register_hook(lambda g: seen.append(g.numpy().copy()))
h.retain_grad()
loss.backward()
remove()
_common.check("the hook saw h's gradient", len(seen) == 1 and np.allclose(seen[0], h.grad.numpy()))
W1_grad_plain = W1.grad.numpy().copy()
W2_grad_plain = W2.grad.numpy().copy()

# %% [markdown]
# Now a hook that doubles the gradient at `h`. Everything *behind* `h` (`W1`, `b1`) gets
# twice the gradient; `W2`, which is not behind `h`, is untouched. Gradient clipping and
# "stop gradient" tricks are hooks like this one.

# %%
clear_grads()
z, h, out, loss = forward()
h.register_hook(lambda g: g * 2)
loss.backward()
_common.check("doubling at h doubles W1's gradient", np.allclose(W1.grad.numpy(), 2 * W1_grad_plain))
_common.check("W2's gradient is unchanged", np.allclose(W2.grad.numpy(), W2_grad_plain))

# %% [markdown]
# ## 3. gradcheck: trust, but verify
#
# When you write a new op you write its backward by hand, and it is easy to get wrong.
# `mg.gradcheck(fn, inputs)` compares autograd's gradient with central finite differences
# (step 01's referee) on every element. Inputs must be float64: finite differences in
# float32 are too coarse.
#
# Here is softplus, `log(1 + eˣ)`, as a custom `Function` with its derivative written by
# hand. The first version has a classic bug: it forgets the denominator.

# %%


class BuggySoftplus(mg.Function):
    def forward(self, a):
        self.a = a
        return self.xp.log1p(self.xp.exp(a))

    def backward(self, g):
        return g * self.xp.exp(self.a)  # wrong: d/da log(1 + e^a) = e^a / (1 + e^a)


class Softplus(mg.Function):
    def forward(self, a):
        self.a = a
        return self.xp.log1p(self.xp.exp(a))

    def backward(self, g):
        return g / (1 + self.xp.exp(-self.a))  # e^a / (1 + e^a), written stably as a sigmoid


inp = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
try:
    mg.gradcheck(BuggySoftplus.apply, [inp])
    caught = False
except mg.GradcheckError as e:
    print("gradcheck says:", e)
    caught = True
_common.check("gradcheck catches the buggy backward", caught)
_common.check("gradcheck passes the fixed backward", mg.gradcheck(Softplus.apply, [inp]))
# Ops built from other ops need no backward of their own: autograd composes them.
_common.check("gradcheck passes softplus built from ops", mg.gradcheck(lambda t: (t.exp() + 1).log(), [inp]))

# %% [markdown]
# ## 4. Drawing the graph
#
# `viz.to_dot(t)` returns the graph behind `t` as Graphviz DOT text: blue boxes are
# parameters, grey boxes inputs, green ellipses the ops, with arrows in the direction data
# flows. Draw it **before** a plain `backward()` (which frees the graph as it goes) or
# after `backward(retain_graph=True)`. With `names=` the boxes carry your variable names,
# and after backward each box with a gradient shows its norm.
#
# Paste the `.dot` text into any Graphviz viewer, or install Graphviz (`apt-get install
# graphviz`, `brew install graphviz`) and `viz.render` writes a PNG.

# %%
out_dir = _common.out_dir()
clear_grads()
z, h, out, loss = forward()
names = {"x": x, "W1": W1, "b1": b1, "W2": W2, "h": h, "loss": loss}
h.retain_grad()
dot_before = viz.to_dot(loss, names=names)
loss.backward(retain_graph=True)
dot_after = viz.to_dot(loss, names=names)
for name, text in (("03_graph.dot", dot_before), ("03_graph_grads.dot", dot_after)):
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(text)
    print("wrote", os.path.join(out_dir, name))
print(dot_after)
_common.check("the graph shows every op",
              all(op in dot_before for op in ("MatMul", "Add", "Tanh", "PowScalar", "Mean")))
_common.check("gradient norms appear only after backward", "|grad|" not in dot_before and "|grad|" in dot_after)
_common.check("the drawn norm of W1 is |W1.grad|", f"|grad| = {viz.grad_norm(W1):.4g}" in dot_after)

if shutil.which("dot"):
    viz.render(loss, os.path.join(out_dir, "03_graph.png"), names=names)
    print("wrote", os.path.join(out_dir, "03_graph.png"))
else:
    print("note: Graphviz `dot` is not installed, so no PNG of the graph (the .dot files are written)")

# %% [markdown]
# ## Gradient norms per parameter
#
# A bar per parameter is a quick health check: a norm of zero means no signal reaches that
# parameter; a norm orders of magnitude above the others means trouble ahead.

# %%
norms = {n: viz.grad_norm(p) for n, p in (("W1", W1), ("b1", b1), ("W2", W2))}
print("gradient norms:", {k: round(v, 4) for k, v in norms.items()})
_common.check("every parameter receives a gradient", all(v > 0 for v in norms.values()))
plt = _common.pyplot()
if plt is not None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(norms), list(norms.values()))
    ax.set_ylabel("|grad|")
    ax.set_title("gradient norm per parameter")
    _common.save(fig, "03_grad_norms.png")

# %% [markdown]
# **Next:** `04_mlp_from_ops.py`: a Linear layer, an MLP and a hand-written SGD loop that
# learns to separate two spirals.
