"""Property tests (hypothesis): random shapes, broadcast patterns, axes and indices, each
checked against torch.autograd, or for indexing against an index-map built with NumPy's
bincount (independent of how minigrad scatters its gradients)."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch_parity import assert_close, check

import minigrad as mg

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**31 - 1)


def values(shape, dtype, seed, positive=False):
    a = np.random.default_rng(seed).standard_normal(shape)
    return (np.abs(a) + 0.5 if positive else a).astype(dtype)


BINARY = {
    "add": (lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, None),
    "pow": (lambda a, b: a ** b, None),
    "maximum": (mg.maximum, torch.maximum),
    "minimum": (mg.minimum, torch.minimum),
    "where": (lambda a, b: mg.where(a > b, a * 2, b), lambda a, b: torch.where(a > b, a * 2, b)),
}


@FAST
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       op=st.sampled_from(sorted(BINARY)), dtype=DTYPES, seed=SEEDS)
def test_binary_ops_broadcast(backend, shapes, op, dtype, seed):
    a_shape, b_shape = shapes.input_shapes
    positive = op in ("div", "pow")
    a = values(a_shape, dtype, seed, positive=positive)
    b = values(b_shape, dtype, seed + 1, positive=op == "div")
    ours, ref = BINARY[op]
    check(ours, ref, [a, b], backend)


@st.composite
def shape_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    axes = [a - nd if draw(st.booleans()) else a for a in axes]  # the negative spelling too
    return shape, (axes[0] if kind == "int" else tuple(axes))


REDUCE = {
    "sum": (lambda x, a, k: x.sum(axis=a, keepdims=k), lambda x, a, k: x.sum(dim=a, keepdim=k)),
    "mean": (lambda x, a, k: x.mean(axis=a, keepdims=k), lambda x, a, k: x.mean(dim=a, keepdim=k)),
    "max": (lambda x, a, k: x.max(axis=a, keepdims=k), lambda x, a, k: torch.amax(x, dim=a, keepdim=k)),
    "min": (lambda x, a, k: x.min(axis=a, keepdims=k), lambda x, a, k: torch.amin(x, dim=a, keepdim=k)),
    "var": (lambda x, a, k: x.var(axis=a, keepdims=k, correction=0),
            lambda x, a, k: x.var(dim=a, keepdim=k, correction=0)),
    "logsumexp": (lambda x, a, k: x.logsumexp(axis=a, keepdims=k), lambda x, a, k: torch.logsumexp(x, a, k)),
    "softmax": (lambda x, a, k: x.softmax(a if isinstance(a, int) else -1),
                lambda x, a, k: x.softmax(a if isinstance(a, int) else -1)),
}


@FAST
@given(sa=shape_and_axes(), op=st.sampled_from(sorted(REDUCE)), keepdims=st.booleans(), dtype=DTYPES, seed=SEEDS)
def test_reductions_over_random_axes(backend, sa, op, keepdims, dtype, seed):
    shape, axis = sa
    ours, ref = REDUCE[op]
    tdim = tuple(range(len(shape))) if axis is None else axis
    check(lambda x: ours(x, axis, keepdims), lambda x: ref(x, tdim, keepdims), [values(shape, dtype, seed)],
          backend)


@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    a = draw(st.sampled_from([(k,), ba + (n, k)]))
    b = draw(st.sampled_from([(k,), bb + (k, m)]))
    return a, b


@FAST
@given(shapes=matmul_shapes(), dtype=DTYPES, seed=SEEDS)
def test_matmul_shapes(backend, shapes, dtype, seed):
    a, b = shapes
    check(lambda x, y: x @ y, None, [values(a, dtype, seed), values(b, dtype, seed + 1)], backend)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), data=st.data(), seed=SEEDS)
def test_permute_reshape_roundtrip(backend, shape, data, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    x = values(shape, np.float64, seed)
    check(lambda t: t.permute(*perm).reshape(-1) * t.permute(*perm).flatten(),
          lambda t: t.permute(*perm).reshape(-1) * t.permute(*perm).flatten(), [x], backend)


def _index_map_grad(shape, key, w):
    """d sum(x[key] * w) / dx, from an index map and bincount: element i of x collects the
    weights of every output position that selected it."""
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    picked = ids[key]
    return np.bincount(picked.ravel(), weights=w.ravel(), minlength=ids.size).reshape(shape)


def _check_index(backend, shape, key, seed):
    x0 = values(shape, np.float64, seed)
    x = mg.tensor(x0, backend=backend, requires_grad=True)
    out = x[key]
    np.testing.assert_array_equal(out.numpy(), x0[key])
    w = values(out.shape, np.float64, seed + 1)
    out.backward(mg.tensor(w, backend=backend))
    assert_close(x.grad.numpy(), _index_map_grad(shape, key, w), np.float64, f"grad of x[{key!r}]")


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), data=st.data(), seed=SEEDS)
def test_basic_indexing(backend, shape, data, seed):
    """Slices with any steps (negative too), ints, None and Ellipsis."""
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    _check_index(backend, shape, key, seed)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), data=st.data(), seed=SEEDS)
def test_integer_array_indexing_with_repeats(backend, shape, data, seed):
    """Integer arrays (negative and repeated entries), alone or followed by a basic slice."""
    key = data.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                    max_side=6)))
    if len(key) < len(shape) and data.draw(st.booleans()):
        key = key + (slice(None, None, data.draw(st.sampled_from([1, 2, -1]))),)
    _check_index(backend, shape, key, seed)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), seed=SEEDS)
def test_bool_mask_indexing(backend, shape, seed):
    mask = np.random.default_rng(seed).random(shape) > 0.5
    _check_index(backend, shape, mask, seed)


GRAPH_OPS = {  # name: (arity, fn); the same code runs on minigrad and torch tensors
    "add": (2, lambda a, b: a + b),
    "mul": (2, lambda a, b: a * b),
    "sub": (2, lambda a, b: a - b),
    "tanh": (1, lambda a: a.tanh()),
    "sigmoid": (1, lambda a: a.sigmoid()),
    "scale": (1, lambda a: a * 0.5 + 1.0),
    "matmul": (2, lambda a, b: a @ b.transpose(0, 1) @ a / 4),
}


@st.composite
def programs(draw):
    """A random DAG: each step applies an op to earlier nodes, so intermediates are reused by
    several later nodes (the shape every step is (3, 3))."""
    steps = []
    for i in range(draw(st.integers(2, 10))):
        name = draw(st.sampled_from(sorted(GRAPH_OPS)))
        # Mostly recent nodes, and often the latest node as the last operand, so diamonds (a
        # node feeding a later one both directly and through another) are common.
        lo = draw(st.sampled_from([max(0, i - 2), 0]))
        args = [draw(st.integers(lo, i + 1)) for _ in range(GRAPH_OPS[name][0])]
        if draw(st.booleans()):
            args[-1] = i + 1
        steps.append((name, args))
    outputs = draw(st.lists(st.integers(0, len(steps) + 1), min_size=1, max_size=4))
    return steps, outputs


def _run_program(program, x, y):
    steps, outputs = program
    nodes = [x, y]
    for name, args in steps:
        nodes.append(GRAPH_OPS[name][1](*[nodes[a] for a in args]))
    return [nodes[o] for o in outputs]


@settings(FAST, max_examples=50)
@given(program=programs(), seed=SEEDS)
def test_random_graphs_with_shared_intermediates(backend, program, seed):
    """Gradients through random DAGs (diamonds, reuse, unused branches) equal torch's."""
    check(lambda x, y: sum(o.sum() * (k + 1) for k, o in enumerate(_run_program(program, x, y))), None,
          [values((3, 3), np.float64, seed), values((3, 3), np.float64, seed + 1)], backend)
