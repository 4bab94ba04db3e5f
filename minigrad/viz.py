"""Draw the autograd graph behind a tensor as Graphviz DOT text (and, with Graphviz installed, a picture).

    import minigrad as mg
    w = mg.randn(3, 2, requires_grad=True)
    loss = (mg.randn(4, 3) @ w).tanh().sum()
    print(mg.viz.to_dot(loss))         # paste into any Graphviz viewer
    loss.backward(retain_graph=True)
    mg.viz.render(loss, "graph.png")   # needs the `dot` program

The picture has one box per tensor and one ellipse per Function (the op that made a tensor),
with arrows in the direction data flows: input tensor -> Function -> output tensor.

When to draw: a plain ``backward()`` frees each Function's saved values *and its inputs* as
it goes, so afterwards only the root's own Function is left to draw. Call ``to_dot`` before
``backward()``, or call ``backward(retain_graph=True)``, to see the whole graph. Gradient
norms show on every drawn tensor that has a ``.grad``: leaves always keep theirs; a
non-leaf keeps one only after ``retain_grad()``. Tensors passed in ``names`` are drawn even
when the graph no longer reaches them, so their gradient norms still show after a plain
backward.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

from .autograd import Function
from .optim import clip
from .tensor import Tensor

# Colours: parameters (leaves that require grad) blue, constant inputs grey, the root yellow.
_PARAM_STYLE = 'shape=box, style=filled, fillcolor="#cfe2f3"'
_CONST_STYLE = 'shape=box, style=filled, fillcolor="#eeeeee"'
_ROOT_STYLE = 'shape=box, style=filled, fillcolor="#fff2cc"'
_INNER_STYLE = "shape=box"
_FN_STYLE = 'shape=ellipse, style=filled, fillcolor="#d9ead3"'
_FREED_STYLE = 'shape=ellipse, style="filled,dashed", fillcolor="#f4cccc"'


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape_text(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))  # Python's spelling: (), (2,), (4, 3)


def grad_norm(t: Tensor) -> float | None:
    """The L2 norm of ``t.grad`` as a Python float, or None when ``t`` has no gradient."""
    return None if t.grad is None else clip.grad_norm(t)


def _tensor_label(t: Tensor, name: str | None, is_root: bool, show_grad_norms: bool) -> str:
    if is_root:
        kind = "output"
    elif t._ctx is not None:
        kind = "tensor"
    elif t.requires_grad:
        kind = "param"
    else:
        kind = "input"
    head = f"{name} ({kind})" if name else kind
    lines = [head, f"{_shape_text(t.shape)} {t.dtype}"]
    if kind == "input" and t.size == 1:  # a scalar constant such as the 0.5 in x * 0.5
        lines.append(f"value {t.backend.to_numpy(t.data).reshape(()).item():.4g}")
    if show_grad_norms:
        n = grad_norm(t)
        if n is not None:
            lines.append(f"|grad| = {n:.4g}")
    return "\n".join(lines)


def _fn_label(fn: Function, out: Tensor) -> str:
    meta = fn.out_meta or [(out.shape, out.dtype)]  # one output: the tensor the walk came from
    outs = ", ".join(f"{_shape_text(s)} {d}" for s, d in meta)
    label = f"{fn.name}\n-> {outs}"
    if getattr(fn, "freed", False):
        label += "\n(freed by backward)"
    return label


def to_dot(t: Tensor, show_grad_norms: bool = True, names: Mapping[str, Tensor] | None = None) -> str:
    """The graph that produced ``t`` as Graphviz DOT text.

    ``names`` maps a label to a tensor (say ``{"w1": w1, "x": x}``) so boxes read as your
    variables; named tensors are drawn even when the graph no longer reaches them.
    ``show_grad_norms`` adds ``|grad| = ...`` to every tensor that has a ``.grad``.
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"to_dot: expected a minigrad Tensor, got {type(t).__name__}")
    label_of = {id(v): k for k, v in (names or {}).items()}
    node_lines: list[str] = []
    edge_lines: list[str] = []
    tensor_ids: dict[int, str] = {}
    fn_ids: dict[int, str] = {}
    keep_alive: list = []  # hold what we number, so no id() is reused by a new object meanwhile

    def tensor_node(x: Tensor) -> str:
        node = tensor_ids.get(id(x))
        if node is None:
            node = tensor_ids[id(x)] = f"t{len(tensor_ids)}"
            keep_alive.append(x)
            is_root = x is t
            if is_root:
                style = _ROOT_STYLE
            elif x._ctx is not None:
                style = _INNER_STYLE
            else:
                style = _PARAM_STYLE if x.requires_grad else _CONST_STYLE
            label = _tensor_label(x, label_of.get(id(x)), is_root, show_grad_norms)
            node_lines.append(f"  {node} [label={_quote(label)}, {style}];")
        return node

    pending_fns: list[tuple[Function, Tensor]] = []

    def fn_node(fn: Function, out: Tensor) -> str:
        """fn's node; ``out`` is the output of fn the walk reached it from."""
        node = fn_ids.get(id(fn))
        if node is None:
            node = fn_ids[id(fn)] = f"f{len(fn_ids)}"
            keep_alive.append(fn)
            style = _FREED_STYLE if getattr(fn, "freed", False) else _FN_STYLE
            node_lines.append(f"  {node} [label={_quote(_fn_label(fn, out))}, {style}];")
            pending_fns.append((fn, out))
        return node

    tensor_node(t)
    if t._ctx is not None:
        fn_node(t._ctx, t)
    # Iterative walk (no recursion limit on deep graphs): each Function is expanded once.
    while pending_fns:
        fn, out = pending_fns.pop()
        me = fn_ids[id(fn)]
        # Its outputs: every live one of several (siblings of a split, say), else the one the walk came from.
        outs = [o for o in (ref() for ref in fn.outputs) if o is not None] if fn.n_outputs > 1 else [out]
        for o in outs:
            edge_lines.append(f"  {me} -> {tensor_node(o)};")
        for x in getattr(fn, "inputs", ()):  # () once a plain backward has freed the Function
            edge_lines.append(f"  {tensor_node(x)} -> {me};")
            if x._ctx is not None:
                fn_node(x._ctx, x)

    for x in (names or {}).values():  # named tensors the walk could not reach
        if isinstance(x, Tensor):
            tensor_node(x)

    header = ["digraph minigrad {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    return "\n".join(header + node_lines + edge_lines + ["}"]) + "\n"


_INSTALL_HINT = ("install Graphviz to get pictures: `sudo apt-get install graphviz` (Debian/Ubuntu), "
                 "`brew install graphviz` (macOS) or `conda install graphviz`. "
                 "minigrad.viz.to_dot(t) works without it: paste its text into any Graphviz viewer.")


def render(t: Tensor, path: str | os.PathLike, show_grad_norms: bool = True,
           names: Mapping[str, Tensor] | None = None) -> str:
    """Draw the graph behind ``t`` into ``path`` with Graphviz's ``dot`` program.

    The file's suffix picks the format (``.png`` by default; ``.svg`` and ``.pdf`` work too).
    Raises RuntimeError naming how to install Graphviz when ``dot`` is not on the PATH.
    Returns the path written.
    """
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render(): the Graphviz `dot` program was not found on the PATH; " + _INSTALL_HINT)
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    text = to_dot(t, show_grad_norms=show_grad_norms, names=names)
    result = subprocess.run([dot, f"-T{fmt}", "-o", path], input=text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"render(): dot failed writing {path!r} as {fmt}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path


__all__ = ["to_dot", "render", "grad_norm"]
