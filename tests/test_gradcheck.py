"""float64 central finite differences (minigrad.gradcheck) on every differentiable op, and
proof that gradcheck itself fails loudly on a wrong backward."""

import re

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function

R = np.random.default_rng(0)


def pos(*shape):
    return np.abs(R.standard_normal(shape)) + 0.5


def rnd(*shape):
    return R.standard_normal(shape)


IDX = np.array([2, 0, 2])
MASK = np.array([[True, False, True], [False, False, True]])
CE_T = np.array([1, -100, 0, 2])
W32, W223, W232 = rnd(3, 2), rnd(2, 2, 3), rnd(2, 3, 2)  # fixed weights, drawn once

# name: (fn of tensors, input arrays). Inputs are drawn once; kinks (relu, abs, max...) are
# hit with probability zero by continuous random values.
CASES = {
    "add_broadcast": (lambda a, b: a + b, [rnd(2, 3), rnd(3)]),
    "sub_broadcast": (lambda a, b: a - b, [rnd(2, 1), rnd(1, 3)]),
    "mul_broadcast": (lambda a, b: a * b, [rnd(2, 3), rnd(2, 1)]),
    "div_broadcast": (lambda a, b: a / b, [rnd(2, 3), pos(3)]),
    "scalar_ops": (lambda a: (2.0 - a) * 3.0 / (a + 4.0) + 1.5 / (a * a + 1), [rnd(4)]),
    "pow_scalar": (lambda a: a ** 3 + a ** 0.5 + a ** -1.5, [pos(2, 3)]),
    "pow_tensor": (lambda a, b: a ** b, [pos(2, 3), rnd(3)]),
    "rpow": (lambda b: 1.7 ** b, [rnd(4)]),
    "neg": (lambda a: -a, [rnd(3)]),
    "matmul_mm": (lambda a, b: a @ b, [rnd(2, 3), rnd(3, 2)]),
    "matmul_vv": (lambda a, b: a @ b, [rnd(3), rnd(3)]),
    "matmul_vm": (lambda a, b: a @ b, [rnd(3), rnd(3, 2)]),
    "matmul_mv": (lambda a, b: a @ b, [rnd(2, 3), rnd(3)]),
    "matmul_batched_vec": (lambda a, b: a @ b, [rnd(2, 2, 3), rnd(3)]),
    "matmul_vec_batched": (lambda a, b: a @ b, [rnd(3), rnd(2, 3, 2)]),
    "matmul_batch_broadcast": (lambda a, b: a @ b, [rnd(2, 1, 2, 3), rnd(2, 3, 2)]),
    "matmul_batched_weight": (lambda a, b: a @ b, [rnd(2, 2, 3), rnd(3, 2)]),
    "exp": (mg.exp, [rnd(2, 3)]),
    "log": (mg.log, [pos(2, 3)]),
    "sqrt": (mg.sqrt, [pos(2, 3)]),
    "rsqrt": (mg.rsqrt, [pos(2, 3)]),
    "abs": (mg.abs, [rnd(2, 3)]),
    "tanh": (mg.tanh, [rnd(2, 3)]),
    "sigmoid": (mg.sigmoid, [rnd(2, 3) * 3]),
    "relu": (mg.relu, [rnd(2, 3)]),
    "silu": (mg.silu, [rnd(2, 3) * 3]),
    "gelu": (mg.gelu, [rnd(2, 3) * 2]),
    "gelu_tanh": (lambda a: mg.gelu(a, approximate="tanh"), [rnd(2, 3) * 2]),
    "maximum": (mg.maximum, [rnd(2, 3), rnd(3)]),
    "minimum": (mg.minimum, [rnd(2, 3), rnd(2, 1)]),
    "clip": (lambda a: a.clip(-0.5, 0.5), [rnd(2, 4)]),
    "where": (lambda a, b: mg.where(mg.tensor(MASK), a, b), [rnd(2, 3), rnd(3)]),
    "masked_fill": (lambda a: a.masked_fill(mg.tensor(MASK), 2.0), [rnd(2, 3)]),
    "sum": (lambda a: a.sum(axis=(0, -1), keepdims=True), [rnd(2, 3, 2)]),
    "mean": (lambda a: a.mean(axis=1), [rnd(2, 3, 2)]),
    "max": (lambda a: a.max(axis=-1), [rnd(2, 3)]),
    "min": (lambda a: a.min(), [rnd(2, 3)]),
    "var": (lambda a: a.var(axis=0, keepdims=True), [rnd(3, 2)]),
    "var_population": (lambda a: a.var(correction=0), [rnd(3, 2)]),
    "std": (lambda a: a.std(axis=-1), [rnd(2, 3)]),
    "logsumexp": (lambda a: a.logsumexp(axis=(0, 1)), [rnd(2, 3, 2)]),
    "reshape": (lambda a: a.reshape(3, -1) * mg.tensor(W32), [rnd(2, 3)]),
    "permute": (lambda a: a.permute(2, 0, 1) * mg.tensor(W223), [rnd(2, 3, 2)]),
    "transpose": (lambda a: a.transpose(0, 1) @ a, [rnd(3, 2)]),
    "expand": (lambda a: a.expand(2, 3, 2) * mg.tensor(W232), [rnd(3, 1)]),
    "broadcast_to": (lambda a: a.broadcast_to((3, 2)).exp(), [rnd(2)]),
    "squeeze_unsqueeze": (lambda a: a.squeeze(1).unsqueeze(0) ** 2, [rnd(2, 1, 3)]),
    "flatten": (lambda a: a.flatten() ** 2, [rnd(2, 3)]),
    "contiguous": (lambda a: a.T.contiguous() ** 2, [rnd(2, 3)]),
    "cat": (lambda a, b: mg.cat([a, b, a], axis=-1) ** 2, [rnd(2, 1), rnd(2, 2)]),
    "stack": (lambda a, b: mg.stack([a, b], axis=1) ** 2, [rnd(3), rnd(3)]),
    "split": (lambda a: (lambda p: p[0] * p[1].sum())(a.split([1, 2], axis=1)), [rnd(2, 3)]),
    "chunk": (lambda a: (lambda p: p[0] * p[2])(a.chunk(3)), [rnd(3, 2)]),
    "tril": (lambda a: a.tril(-1) ** 2, [rnd(3, 3)]),
    "triu": (lambda a: a.triu(1) ** 2, [rnd(2, 3, 3)]),
    "getitem_basic": (lambda a: a[1:, ::-1, None] ** 2, [rnd(3, 3)]),
    "getitem_repeated": (lambda a: a[IDX, 1:] ** 2, [rnd(3, 3)]),
    "getitem_bool": (lambda a: a[mg.tensor(MASK)] ** 2, [rnd(2, 3)]),
    "gather": (lambda a: a.gather(1, mg.tensor(np.array([[2, 2, 0], [1, 0, 1]]))) ** 2, [rnd(2, 3)]),
    "index_select": (lambda a: a.index_select(0, mg.tensor(IDX)) ** 2, [rnd(3, 2)]),
    "embedding": (lambda w: mg.embedding(mg.tensor(np.array([[1, 1], [0, 2]])), w) ** 2, [rnd(3, 2)]),
    "scatter_add": (lambda a, s: a.scatter_add(1, mg.tensor(np.array([[0, 0], [2, 1]])), s) ** 2,
                    [rnd(2, 3), rnd(2, 2)]),
    "softmax": (lambda a: a.softmax(axis=0), [rnd(3, 2)]),
    "log_softmax": (lambda a: a.log_softmax(), [rnd(2, 3)]),
    "cross_entropy_mean": (lambda a: mg.cross_entropy(a, mg.tensor(CE_T)), [rnd(4, 3)]),
    "cross_entropy_sum": (lambda a: mg.cross_entropy(a, mg.tensor(CE_T.reshape(2, 2)), reduction="sum"),
                          [rnd(2, 2, 3)]),
    "dropout": (lambda a: mg.dropout(a, 0.4, generator=mg.Generator(3)), [rnd(3, 4)]),
    "reuse": (lambda a: (a * a.exp() + a.tanh() * a) @ a.T, [rnd(2, 3)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_op(backend, name):
    fn, arrays = CASES[name]
    inputs = [mg.tensor(a, dtype=mg.float64, backend=backend, requires_grad=True) for a in arrays]

    def on_backend(*ts):  # constant tensors made inside fn must live on the inputs' backend
        with _default_backend(backend):
            return fn(*ts)
    assert mg.gradcheck(on_backend, inputs)


class _default_backend:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.prev = mg.default_backend().name
        mg.set_default_backend(self.name)

    def __exit__(self, *exc):
        mg.set_default_backend(self.prev)


class WrongSquare(Function):
    """x**2 whose backward claims 3x instead of 2x."""

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return g * 3 * self.a


class RightForSecondInputOnly(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.b  # d/db should be g * a


def test_gradcheck_raises_with_index_and_both_values():
    x = mg.tensor(np.array([0.7, -1.3, 2.1]), requires_grad=True)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(WrongSquare.apply, [x])
    msg = str(info.value)
    m = re.search(r"input 0 .*index \((\d+),\): analytic (\S+) vs numeric (\S+)", msg)
    assert m, msg
    i, analytic, numeric = int(m[1]), float(m[2]), float(m[3])
    assert 0 <= i < 3
    assert analytic == pytest.approx(1.5 * numeric, rel=1e-6)  # 3x against the true 2x


def test_gradcheck_names_the_wrong_input_and_can_return_false():
    a = mg.tensor(np.array([[0.5, 1.5]]), requires_grad=True)
    b = mg.tensor(np.array([[2.0, -1.0]]), requires_grad=True)
    with pytest.raises(mg.GradcheckError, match="input 1"):
        mg.gradcheck(RightForSecondInputOnly.apply, [a, b])
    assert mg.gradcheck(RightForSecondInputOnly.apply, [a, b], raise_exception=False) is False
    c = mg.tensor(np.array([[2.0, -1.0]]))  # no grad: its wrong gradient is never asked for
    assert mg.gradcheck(RightForSecondInputOnly.apply, [a, c])


def test_gradcheck_refuses_float32():
    x = mg.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        mg.gradcheck(mg.exp, [x])
