"""minigrad.viz: the DOT text describes the graph (nodes, labels, data-flow edges) and the
gradient norms it prints match gradients derived by hand in NumPy."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import minigrad as mg
from minigrad import viz

NODE_RE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE_RE = re.compile(r"^\s*(\w+) -> (\w+);$")
NORM_RE = re.compile(r"\|grad\| = ([-+0-9.eE]+)")


def parse_dot(text: str):
    """Nodes {id: label lines} and edges [(src, dst)]; fails on any line it does not understand."""
    assert text.count("{") == text.count("}") == 1
    lines = text.strip().splitlines()
    assert lines[0] == "digraph minigrad {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE_RE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = m.group(2).split("\\n")
        elif m := EDGE_RE.match(line):
            edges.append((m.group(1), m.group(2)))
        else:
            assert line.strip().startswith(("rankdir", "node [")), f"unexpected DOT line: {line!r}"
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} names an undeclared node"
    return nodes, edges


def find(nodes, first_line_prefix):
    hits = [n for n, lab in nodes.items() if lab[0].startswith(first_line_prefix)]
    assert len(hits) == 1, f"expected one node starting {first_line_prefix!r}, got {hits}"
    return hits[0]


def norm_of(label_lines):
    for line in label_lines:
        if m := NORM_RE.search(line):
            return float(m.group(1))
    return None


def mlp_case(backend="numpy"):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((4, 3))
    w_np = rng.standard_normal((3, 2))
    b_np = rng.standard_normal(2)
    x = mg.tensor(x_np, backend=backend)
    w = mg.tensor(w_np, requires_grad=True, backend=backend)
    b = mg.tensor(b_np, requires_grad=True, backend=backend)
    h = (x @ w + b).tanh()
    loss = h.sum()
    # Hand-derived gradients: d sum(tanh(z)) / dz = 1 - tanh(z)^2.
    dz = 1 - np.tanh(x_np @ w_np + b_np) ** 2
    expected = {"w": np.linalg.norm(x_np.T @ dz), "b": np.linalg.norm(dz.sum(0))}
    return x, w, b, h, loss, expected


def test_dot_structure_before_backward():
    x, w, b, h, loss, _ = mlp_case()
    nodes, edges = parse_dot(viz.to_dot(loss, names={"x": x, "w": w, "b": b}))
    ops = sorted(lab[0] for lab in nodes.values() if lab[0][0].isupper())
    assert ops == ["Add", "MatMul", "Sum", "Tanh"]
    mm, add, tanh, sm = (find(nodes, k) for k in ("MatMul", "Add", "Tanh", "Sum"))
    xw, wn, bn = find(nodes, "x (input)"), find(nodes, "w (param)"), find(nodes, "b (param)")
    root = find(nodes, "output")
    assert nodes[xw][1] == "(4, 3) float64" and nodes[wn][1] == "(3, 2) float64"
    assert nodes[bn][1] == "(2,) float64" and nodes[root][1] == "() float64"
    assert nodes[mm][1] == "-> (4, 2) float64"
    # Data flows from inputs into MatMul, through Add and Tanh, into Sum and out to the root.
    assert (xw, mm) in edges and (wn, mm) in edges and (bn, add) in edges and (sm, root) in edges
    succ = {a: b for a, b in edges if a in (mm, add, tanh)}  # each op has one output
    assert (succ[mm], add) in edges and (succ[add], tanh) in edges and (succ[tanh], sm) in edges
    assert "|grad|" not in viz.to_dot(loss)


def test_node_and_edge_counts_match_the_graph():
    _, _, _, _, loss, _ = mlp_case()
    nodes, edges = parse_dot(viz.to_dot(loss))
    # tensors: x, w, b, x@w, x@w+b, tanh(.), loss -> 7; Functions: 4; edges: 6 in + 4 out.
    assert len(nodes) == 11
    assert len(edges) == 10


def test_grad_norms_after_backward_match_numpy(backend):
    x, w, b, h, loss, expected = mlp_case(backend)
    h.retain_grad()
    loss.backward(retain_graph=True)
    nodes, _ = parse_dot(viz.to_dot(loss, names={"x": x, "w": w, "b": b, "h": h}))
    for name in ("w", "b"):
        shown = norm_of(nodes[find(nodes, f"{name} (param)")])
        assert shown == pytest.approx(expected[name], rel=1e-3)  # label keeps 4 significant digits
        assert viz.grad_norm({"w": w, "b": b}[name]) == pytest.approx(expected[name], rel=1e-10)
    # d loss / d h is all ones: its norm is sqrt(4 * 2).
    assert norm_of(nodes[find(nodes, "h (tensor)")]) == pytest.approx(np.sqrt(8), rel=1e-3)
    assert norm_of(nodes[find(nodes, "x (input)")]) is None  # x needs no gradient
    assert "|grad|" not in viz.to_dot(loss, show_grad_norms=False)


def test_after_plain_backward_named_leaves_still_show_their_norms():
    x, w, b, h, loss, expected = mlp_case()
    loss.backward()
    nodes, edges = parse_dot(viz.to_dot(loss, names={"w": w}))
    fn = find(nodes, "Sum")
    assert "(freed by backward)" in nodes[fn]  # the walk stops at the freed Function
    assert not any(lab[0].startswith("MatMul") for lab in nodes.values())
    assert norm_of(nodes[find(nodes, "w (param)")]) == pytest.approx(expected["w"], rel=1e-3)


def test_multi_output_function_draws_every_live_output():
    x = mg.tensor(np.arange(6.0), requires_grad=True)
    a, b = x.split(3)
    y = (a * 2).sum()
    nodes, edges = parse_dot(viz.to_dot(y))
    split = find(nodes, "Split")
    outs = [d for s, d in edges if s == split]
    assert len(outs) == 2  # b is drawn too although y does not use it
    assert all(nodes[o][1] == "(3,) float64" for o in outs)


def test_scalar_constant_shows_its_value_and_leaf_root_is_allowed():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    nodes, _ = parse_dot(viz.to_dot(x * 0.25))
    const = find(nodes, "input")
    assert "value 0.25" in nodes[const]
    nodes, edges = parse_dot(viz.to_dot(x))
    assert len(nodes) == 1 and edges == []


def test_deep_graph_walks_without_recursion():
    x = mg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    nodes, edges = parse_dot(viz.to_dot(y))
    assert sum(lab[0] == "Mul" for lab in nodes.values()) == 3000


def test_bad_argument_is_named():
    with pytest.raises(TypeError, match="Tensor"):
        viz.to_dot(np.zeros(3))


def test_render_without_dot_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    _, _, _, _, loss, _ = mlp_case()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.render(loss, tmp_path / "g.png")
    assert viz.to_dot(loss).startswith("digraph")  # still works


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
def test_graphviz_accepts_the_text_and_renders_png(tmp_path):
    x, w, b, h, loss, _ = mlp_case()
    text = viz.to_dot(loss, names={"w": w})
    canon = subprocess.run(["dot", "-Tcanon"], input=text.encode(), capture_output=True)
    assert canon.returncode == 0, canon.stderr.decode()
    out = viz.render(loss, tmp_path / "g.png")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
