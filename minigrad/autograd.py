"""Reverse-mode autograd: the Function base class and the backward sweep.

A Function's ``forward`` takes backend arrays (``self.xp`` is their array module) and
returns one array or a tuple of arrays; its ``backward`` takes the gradient of each output
and returns one gradient per tensor input (None where an input needs none). Gradients
may have a broadcast shape: the engine sums them back to each input's shape in one place
(:func:`unbroadcast`), so no Function has to.

The graph is made of Functions: each output Tensor points to the Function that made it
(``t._ctx``); each Function holds its input Tensors. Outputs are held weakly, so the
graph has no reference cycles and is freed as soon as the loss is dropped.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any


class _GradState(threading.local):
    enabled = True  # a class default: no getattr fallback on the per-op hot path


_state = _GradState()
_TENSOR: list = []  # the Tensor class, bound on first use (tensor.py imports this module)
_new_object = object.__new__


def is_grad_enabled() -> bool:
    return _state.enabled


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self.prev

    def __call__(self, fn):  # usable as a decorator too
        def wrapped(*a, **k):
            with _GradMode(self.enabled):
                return fn(*a, **k)
        wrapped.__name__ = getattr(fn, "__name__", "wrapped")
        wrapped.__doc__ = fn.__doc__
        return wrapped


def no_grad() -> _GradMode:
    """Context manager (or decorator): ops inside record no graph."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


def unbroadcast(xp: Any, grad: Any, shape: tuple) -> Any:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Function:
    """Base of every differentiable op. Subclasses define ``forward`` and ``backward``."""

    # Set by apply(): backend, xp, inputs, needs_grad. With several outputs also n_outputs, outputs (weak
    # refs) and out_meta ((shape, dtype) of each, for the graph drawing: an output may die before backward).
    # A single output is alive wherever its Function is reached (only tensors hold a Function), so it is
    # referenced only once it has a hook or retains its grad (Tensor._watch_in_graph), for backward to find.
    freed = False
    n_outputs = 1
    outputs: tuple = ()
    out_meta = None

    def forward(self, *arrays: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grads: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        # The hot path of every op (a tiny op's whole cost beyond NumPy's call is this function): one- and
        # two-input calls, nearly all of them, are written out rather than looped over, and the output
        # Tensor is built in place (Tensor._init's body: two calls fewer; keep the two alike).
        a = inputs[0]
        backend = a.backend
        fn = cls()
        fn.backend = backend
        fn.xp = backend.xp
        n = len(inputs)
        try:
            if n == 1:
                requires = a.requires_grad and _state.enabled
                fn.needs_grad = (True,) if requires else (False,)
                out = fn.forward(a.data, **params)
            elif n == 2:
                b = inputs[1]
                if b.backend is not backend:
                    _different_backends(cls, a, b)
                requires = (a.requires_grad or b.requires_grad) and _state.enabled
                fn.needs_grad = (a.requires_grad, b.requires_grad) if requires else (False, False)
                out = fn.forward(a.data, b.data, **params)
            else:
                for t in inputs:
                    if t.backend is not backend:
                        _different_backends(cls, a, t)
                requires = any([t.requires_grad for t in inputs]) and _state.enabled
                fn.needs_grad = tuple([t.requires_grad for t in inputs]) if requires else (False,) * n
                out = fn.forward(*[t.data for t in inputs], **params)
        except ValueError as e:  # name the op and shapes instead of NumPy's inner message
            shapes = ", ".join(str(t.shape) for t in inputs)
            raise ValueError(f"{cls.__name__}: cannot apply to inputs of shapes {shapes} ({e})") from None
        if not _TENSOR:
            from .tensor import Tensor
            _TENSOR.append(Tensor)
        if type(out) is not tuple:  # the common single-output case, kept short
            t = _new_object(_TENSOR[0])
            t.data = out
            t.backend = backend
            t.requires_grad = requires
            t.grad = None
            t._out_index = 0
            t._hooks = None
            t._retains_grad = False
            t._grad_owned = False
            t._post_hooks = None
            if requires:
                fn.inputs = inputs
                t._ctx = fn
            else:
                t._ctx = None
            return t
        from_array = _TENSOR[0]._from_array
        tensors = tuple([from_array(o, backend, requires) for o in out])
        if requires:
            fn.inputs = inputs
            fn.n_outputs = len(tensors)
            fn.outputs = tuple([weakref.ref(t) for t in tensors])
            fn.out_meta = tuple([(o.shape, o.dtype) for o in out])
            for i, t in enumerate(tensors):
                t._ctx = fn
                t._out_index = i
        return tensors

    @property
    def name(self) -> str:
        return type(self).__name__


def _different_backends(cls, a, b):
    raise RuntimeError(
        f"{cls.__name__}: inputs live on different backends "
        f"({a.backend.name}/{a.backend.device} and {b.backend.name}/{b.backend.device}); "
        "move them with .to(backend) first")


def _accumulate(slot: list, i: int, g: Any, owned: list) -> None:
    # The first gradient is stored as given (it may alias another array); a second one is
    # added out of place, after which the sum is ours and later ones add in place.
    if slot[i] is None:
        slot[i] = g
    elif owned[i]:
        slot[i] += g
    else:
        slot[i] = slot[i] + g
        owned[i] = True


def _topo_order(root_fn: Function) -> list:
    """Functions reachable from ``root_fn``, each after every Function that consumes its outputs."""
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:  # iterative post-order DFS: no recursion limit on deep graphs
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in visited:  # marked when expanded, not when pushed, so post-order stays exact
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            p = t._ctx
            if p is not None and id(p) not in visited:
                stack.append((p, False))
    order.reverse()
    return order


def backward(root, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    from .tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no graph "
                           "(was it made under no_grad(), or from tensors without requires_grad?)")
    xp = root.backend.xp
    if grad is None:
        if root.size != 1:
            raise RuntimeError(f"backward(): grad can be implied only for a scalar output, "
                               f"but the output has shape {root.shape}; pass grad= of that shape")
        g = xp.ones(root.shape, dtype=root.dtype)
    else:
        g = grad.data if isinstance(grad, Tensor) else root.backend.asarray(grad)
        if g.shape != root.shape:
            raise RuntimeError(f"backward(): grad has shape {g.shape}, expected {root.shape}")
        g = g.astype(root.dtype, copy=False)

    fn0 = root._ctx
    if fn0 is None:  # backward on a leaf: its gradient is the seed itself
        root._accumulate_grad(root._apply_hooks(g))
        if root._post_hooks:
            root._run_post_hooks()
        return
    if fn0.freed:
        raise RuntimeError(_FREED_MSG.format(name=fn0.name))

    grads: dict[int, tuple[list, list]] = {}
    hooked_leaves: dict[int, tuple] = {}  # leaves with hooks: (leaf, [total grad], [owned])
    slot = [None] * fn0.n_outputs
    slot[root._out_index] = g
    grads[id(fn0)] = (slot, [False] * len(slot))

    order = _topo_order(fn0)
    waiting = _post_hook_uses(order) if _POST_HOOKS[0] else None
    for fn in order:
        entry = grads.pop(id(fn), None)
        if entry is not None:
            _backward_through(fn, entry[0], grads, hooked_leaves, xp, retain_graph)
        if waiting is not None:
            _fire_post_hooks(waiting, fn)
    for t, total, _ in hooked_leaves.values():
        t._accumulate_grad(t._apply_hooks(total[0]))
        if t._post_hooks:
            t._run_post_hooks()


def _backward_through(fn: Function, out_grads: list, grads: dict, hooked_leaves: dict, xp: Any,
                      retain_graph: bool) -> None:
    """One Function's backward: its output gradients in, each input's gradient accumulated."""
    if fn.freed:
        raise RuntimeError(_FREED_MSG.format(name=fn.name))
    for ref in fn.outputs:  # hooks and retain_grad of non-leaf outputs (see Function: often none is referenced)
        t = ref()
        if t is None:
            continue
        i = t._out_index
        if out_grads[i] is not None:
            if t._hooks:
                out_grads[i] = t._apply_hooks(out_grads[i])
            if t._retains_grad:
                t._accumulate_grad(out_grads[i])
    if all(x is None for x in out_grads):
        return
    in_grads = fn.backward(*out_grads)
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    for t, need, ig in zip(fn.inputs, fn.needs_grad, in_grads):
        if not need or ig is None:
            continue
        if ig.shape != t.shape:
            ig = unbroadcast(xp, ig, t.shape)
        if ig.dtype != t.dtype:
            ig = ig.astype(t.dtype)
        p = t._ctx
        if p is None and t._hooks:  # as in torch, a leaf's hooks see its total gradient of the pass
            e = hooked_leaves.setdefault(id(t), (t, [None], [False]))
            _accumulate(e[1], 0, ig, e[2])
        elif p is None:
            t._accumulate_grad(ig)
        else:
            e = grads.get(id(p))
            if e is None:
                e = grads[id(p)] = ([None] * p.n_outputs, [False] * p.n_outputs)
            _accumulate(e[0], t._out_index, ig, e[1])
    if not retain_graph:
        # Drop saved arrays and inputs; keep just enough to report a second backward.
        fn.__dict__ = {"freed": True, "inputs": (), "outputs": fn.outputs, "out_meta": fn.out_meta,
                       "n_outputs": fn.n_outputs}


# Post-accumulate-grad hooks (data-parallel training starts a gradient's all-reduce as soon as it is final):
# a count of tensors that have one, so backward pays for the bookkeeping only when one exists.
_POST_HOOKS = [0]


def _post_hook_uses(order: list) -> dict:
    """For the leaves with post-accumulate hooks: how many graph edges still bring them a gradient, and which
    Function's edges do (looked up by id while the Functions still hold their inputs)."""
    remaining: dict[int, list] = {}
    by_fn: dict[int, list] = {}
    for fn in order:
        for t, need in zip(fn.inputs, fn.needs_grad):
            if need and t._ctx is None and t._post_hooks and not t._hooks:
                remaining.setdefault(id(t), [0, t])[0] += 1
                by_fn.setdefault(id(fn), []).append(t)
    return {"remaining": remaining, "by_fn": by_fn}


def _fire_post_hooks(waiting: dict, fn: Function) -> None:
    """After ``fn``'s backward: a leaf whose last gradient edge this was now has its final gradient."""
    for t in waiting["by_fn"].pop(id(fn), ()):
        entry = waiting["remaining"][id(t)]
        entry[0] -= 1
        if entry[0] == 0:
            t._run_post_hooks()


_FREED_MSG = ("backward(): trying to backward through the graph a second time (through {name}); "
              "its saved values were freed after the first backward. "
              "Call backward(retain_graph=True) the first time if you need a second pass.")
