# %% [markdown]
# # 01 · Tensors and autograd, by hand first
#
# Training a network means asking one question over and over: *if I nudge this number a
# little, how much does the loss move?* That number is a derivative, and **autograd** is the
# machine that computes all of them at once.
#
# In this step we differentiate a small expression **by hand** with the chain rule, then let
# minigrad do it, and check that both agree (and agree with a third, dumb method: nudging
# the inputs and measuring). Everything later in these tutorials rests on this one idea.
#
# Run it as a script (`python tutorials/01_tensors_and_autograd.py`) or open it as a
# notebook (see `tutorials/README.md`).

# %%
import math

import _common  # quick mode, output folder, checked claims (and puts the repo on sys.path)
import numpy as np

import minigrad as mg

# %% [markdown]
# ## The expression
#
# Three numbers go in, one comes out:
#
#     u = a * b + c
#     t = tanh(u)
#     y = t * a
#
# Note that `a` is used **twice**: once inside `u` and once at the end. Remember that; it
# is the whole story of the next tutorial.

# %%
a_val, b_val, c_val = 0.7, -1.3, 0.4


def y_of(a: float, b: float, c: float) -> float:
    return math.tanh(a * b + c) * a


print("y =", y_of(a_val, b_val, c_val))

# %% [markdown]
# ## Step 1: the chain rule, by hand
#
# Walk backwards from `y`. With `t = tanh(u)` we have `dt/du = 1 - t²`, so:
#
# * `dy/dc = dy/dt · dt/du · du/dc = a · (1 - t²) · 1`
# * `dy/db = a · (1 - t²) · a`
# * `dy/da` has **two paths**, one per use of `a`, and their contributions **add up**:
#   `t` (from `y = t * a` directly) plus `a · (1 - t²) · b` (through `u`).

# %%
u = a_val * b_val + c_val
t = math.tanh(u)
hand = {
    "a": t + a_val * (1 - t * t) * b_val,
    "b": a_val * (1 - t * t) * a_val,
    "c": a_val * (1 - t * t),
}
print("by hand:", hand)

# %% [markdown]
# ## Step 2: nudge and measure (finite differences)
#
# A derivative is a slope, so we can estimate it by evaluating `y` just left and just right
# of a point: `(y(a + h) - y(a - h)) / 2h`. This is slow (two evaluations per input) and
# only approximate, but it needs no calculus at all, which makes it a good referee.

# %%
h = 1e-6
numeric = {
    "a": (y_of(a_val + h, b_val, c_val) - y_of(a_val - h, b_val, c_val)) / (2 * h),
    "b": (y_of(a_val, b_val + h, c_val) - y_of(a_val, b_val - h, c_val)) / (2 * h),
    "c": (y_of(a_val, b_val, c_val + h) - y_of(a_val, b_val, c_val - h)) / (2 * h),
}
print("numeric:", numeric)
_common.check("hand derivatives match finite differences",
              all(abs(hand[k] - numeric[k]) < 1e-8 for k in hand))

# %% [markdown]
# ## Step 3: the same in minigrad
#
# A `Tensor` is an array plus two things autograd needs: whether we want its gradient
# (`requires_grad=True`) and, for computed tensors, a link to the op that made it
# (`grad_fn`). We use float64 so that the comparison can be tight.
#
# `y.backward()` walks the recorded ops from `y` back to the inputs, applying exactly the
# chain rule we used above, and leaves `dy/da` in `a.grad`, and so on.

# %%
a = mg.tensor(a_val, dtype=mg.float64, requires_grad=True)
b = mg.tensor(b_val, dtype=mg.float64, requires_grad=True)
c = mg.tensor(c_val, dtype=mg.float64, requires_grad=True)

y = (a * b + c).tanh() * a
print(y)  # note grad_fn=Mul: y remembers the op that made it
y.backward()

auto = {"a": a.grad.item(), "b": b.grad.item(), "c": c.grad.item()}
print("minigrad:", auto)
_common.check("gradients agree (minigrad vs hand)", all(abs(auto[k] - hand[k]) < 1e-12 for k in hand))

# %% [markdown]
# ## What was recorded
#
# Each computed tensor points at the Function (op) that made it; each Function holds its
# inputs. That chain of links *is* the graph that `backward()` walks. Let us print it,
# starting from a fresh `y` (a plain `backward()` frees the graph as it goes, to save memory).

# %%
y = (a * b + c).tanh() * a


def show(tensor: mg.Tensor, depth: int = 0) -> None:
    fn = tensor.grad_fn
    if fn is None:
        print("  " * depth + f"leaf {tensor.item():+.2f}")
        return
    print("  " * depth + f"{fn.name}  ->  {tensor.item():+.4f}")
    for x in fn.inputs:
        show(x, depth + 1)


show(y)
_common.check("the graph starts with the last op", y.grad_fn.name == "Mul")

# %% [markdown]
# ## Gradients accumulate
#
# `backward()` **adds** into `.grad`; it never overwrites. That is what makes the two
# paths through `a` add up, and it is also why a training loop clears gradients before
# every step. Calling backward twice on the same graph needs `retain_graph=True`, since a
# plain backward frees what each op saved.

# %%
for x in (a, b, c):
    x.grad = None  # clear, as a training loop does each step
y = (a * b + c).tanh() * a
y.backward(retain_graph=True)
y.backward()
_common.check("a second backward doubles the gradient", abs(a.grad.item() - 2 * hand["a"]) < 1e-12)

try:
    y.backward()  # the graph was freed by the last call
except RuntimeError as e:
    print("as expected:", str(e)[:90], "...")
    freed_error = True
else:
    freed_error = False
_common.check("a third backward on a freed graph is refused", freed_error)

# %% [markdown]
# ## From scalars to tensors
#
# Nothing changes when the inputs are arrays: every op works elementwise, and `backward()`
# needs a scalar to start from, so we sum the outputs. The gradient of a sum with respect
# to each element is just that element's own derivative, so the vectorised hand formula
# applies unchanged.

# %%
quick = _common.is_quick()
n = 5 if quick else 1000
rng = np.random.default_rng(0)
av, bv, cv = rng.standard_normal((3, n))
A = mg.tensor(av, requires_grad=True)
B = mg.tensor(bv, requires_grad=True)
C = mg.tensor(cv, requires_grad=True)
loss = ((A * B + C).tanh() * A).sum()
loss.backward()

tv = np.tanh(av * bv + cv)
_common.check("vector gradients match the hand formula",
              np.allclose(A.grad.numpy(), tv + av * (1 - tv**2) * bv)
              and np.allclose(B.grad.numpy(), av * (1 - tv**2) * av)
              and np.allclose(C.grad.numpy(), av * (1 - tv**2)))
print("shapes:", A.shape, "->", loss.shape, "; A.grad has the shape of A:", A.grad.shape)

# %% [markdown]
# ## Switching recording off
#
# Work done under `mg.no_grad()` records no graph: use it for evaluation and for updating
# weights, where you want numbers, not derivatives.

# %%
with mg.no_grad():
    z = (A * B).sum()
_common.check("no_grad records nothing", z.grad_fn is None and not z.requires_grad)

# %% [markdown]
# ## A picture: the gradient is a slope
#
# If matplotlib is installed, we draw `y` as a function of `a` (holding `b` and `c`) and
# the tangent line whose slope minigrad computed.

# %%
plt = _common.pyplot()
if plt is not None:
    xs = np.linspace(-2.0, 2.0, 200)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, [y_of(x, b_val, c_val) for x in xs], label="y(a)")
    y0 = y_of(a_val, b_val, c_val)
    ax.plot(xs, y0 + hand["a"] * (xs - a_val), "--", label=f"tangent, slope dy/da = {hand['a']:.3f}")
    ax.plot([a_val], [y0], "o", color="k")
    ax.set_xlabel("a")
    ax.set_ylim(-2, 2)
    ax.legend()
    _common.save(fig, "01_tangent.png")

# %% [markdown]
# **Next:** `02_broadcasting_gradients.py`: what happens to gradients when one tensor is
# stretched to meet another's shape.
