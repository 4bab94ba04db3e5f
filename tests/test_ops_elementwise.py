"""Elementwise ops against torch.autograd: arithmetic (with broadcasting and scalars), unary
math, activations, maximum/minimum/clip/where/masked_fill and casts, on both backends."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_parity import FLOATS, check, randn, torch_dtype

import minigrad as mg

# Broadcast patterns (a, b): equal, row, column, scalar-shaped, leading dims added on either side.
BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
             ((4,), (2, 3, 4)), ((2, 1, 4), (3, 1)), ((3, 4), ()), ((), (2, 3)),
             ((1, 3, 1), (2, 1, 4)), ((2, 1, 4, 1), (3, 1, 5))]  # several stretched axes per input

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_broadcasting(backend, dtype, shapes, op):
    a = randn(shapes[0], dtype, seed=1)
    b = randn(shapes[1], dtype, seed=2, positive=op == "div")
    check(BINARY[op], None, [a, b], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_with_python_scalar_both_sides(backend, dtype, op):
    a = randn((3, 4), dtype, positive=True)
    check(lambda x: BINARY[op](x, 1.7), None, [a], backend)
    check(lambda x: BINARY[op](2.5, x), None, [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_pow_scalar_exponents(backend, dtype):
    a = randn((3, 4), dtype, positive=True)
    for p in (2, 3, 0.5, -1.5, 1, 0):
        check(lambda x, p=p: x ** p, None, [a], backend)
    b = randn((3, 4), dtype)  # integer exponents need no positive base
    for p in (2, 3, -2):
        check(lambda x, p=p: x ** p, None, [b], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1), (1, 3))], ids=str)
def test_pow_tensor_exponent(backend, dtype, shapes):
    a = randn(shapes[0], dtype, seed=3, positive=True)
    b = randn(shapes[1], dtype, seed=4)
    check(lambda x, y: x ** y, None, [a, b], backend)


def test_pow_tensor_exponent_at_zero_base(backend):
    a = np.array([0.0, 0.0, 2.0, 1.5, 0.0])
    b = np.array([0.0, 2.0, 0.0, 3.0, 1.0])
    check(lambda x, y: x ** y, None, [a, b], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_rpow_scalar_base(backend, dtype):
    b = randn((3, 4), dtype)
    check(lambda y: 2.0 ** y, None, [b], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_neg(backend, dtype):
    check(lambda x: -x, None, [randn((2, 3), dtype)], backend)


UNARY = {  # name: (minigrad, torch, needs a positive input)
    "exp": (mg.exp, torch.exp, False),
    "log": (mg.log, torch.log, True),
    "sqrt": (mg.sqrt, torch.sqrt, True),
    "rsqrt": (mg.rsqrt, torch.rsqrt, True),
    "abs": (mg.abs, torch.abs, False),
    "tanh": (mg.tanh, torch.tanh, False),
    "sigmoid": (mg.sigmoid, torch.sigmoid, False),
    "relu": (mg.relu, torch.relu, False),
    "silu": (mg.silu, F.silu, False),
    "gelu": (mg.gelu, F.gelu, False),
    "gelu_tanh": (lambda x: mg.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), False),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(backend, dtype, name):
    ours, ref, positive = UNARY[name]
    a = randn((4, 5), dtype, seed=5, positive=positive) * (1 if positive else 3)
    check(ours, ref, [a], backend)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "relu", "silu", "gelu", "gelu_tanh", "abs"])
def test_unary_method_form_and_extremes(backend, name):
    """Large magnitudes (where naive formulas overflow) and exact zeros (kinks of relu/abs)."""
    ours, ref, _ = UNARY[name]
    a = np.array([-60.0, -20.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 20.0, 60.0], np.float64)
    if name == "exp":
        a = a / 2
    check(ours, ref, [a], backend)
    if name != "gelu_tanh":
        check(lambda x: getattr(x, name)(), ref, [a.astype(np.float32)], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_maximum_minimum_with_ties(backend, dtype):
    a = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]], dtype)
    b = np.array([[1.0, 0.0, 5.0], [-1.0, 0.5, 2.0]], dtype)  # ties at [0,0], [1,0], [1,1]
    check(mg.maximum, torch.maximum, [a, b], backend)
    check(mg.minimum, torch.minimum, [a, b], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_maximum_broadcast_and_scalar(backend, dtype):
    a, b = randn((3, 4), dtype, seed=1), randn((4,), dtype, seed=2)
    check(mg.maximum, torch.maximum, [a, b], backend)
    check(mg.minimum, torch.minimum, [b, a], backend)
    check(lambda x: mg.maximum(x, 0.25), lambda x: torch.clamp(x, min=0.25), [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_clip(backend, dtype):
    a = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], dtype)  # includes both bounds exactly
    check(lambda x: mg.clip(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0), [a], backend)
    check(lambda x: x.clip(min=-0.5), lambda x: torch.clamp(x, min=-0.5), [a], backend)
    check(lambda x: x.clamp(max=0.5), lambda x: torch.clamp(x, max=0.5), [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_where(backend, dtype):
    cond = randn((3, 4), seed=9) > 0
    a, b = randn((3, 4), dtype, seed=1), randn((4,), dtype, seed=2)
    check(mg.where, torch.where, [cond, a, b], backend)
    check(lambda c, x: mg.where(c, x, 0.5), lambda c, x: torch.where(c, x, 0.5), [cond, a], backend)
    check(lambda c, x: mg.where(c, -1.0, x), lambda c, x: torch.where(c, -1.0, x), [cond, a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_masked_fill(backend, dtype):
    mask = randn((1, 4), seed=3) > 0  # broadcasts over rows, like a causal mask
    a = randn((3, 4), dtype)
    check(lambda x, m: x.masked_fill(m, -1e4), lambda x, m: x.masked_fill(m, -1e4), [a, mask], backend)
    check(lambda x, m: mg.masked_fill(x, m, float("-inf")).exp(),
          lambda x, m: x.masked_fill(m, float("-inf")).exp(), [a, mask], backend)


CASTS = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.float16),
         (np.float16, np.float32), (np.float64, np.float16)]


@pytest.mark.parametrize("src,dst", CASTS, ids=str)
def test_astype_gradient_returns_in_source_dtype(backend, src, dst):
    a = randn((3, 4), src)
    x = mg.tensor(a, backend=backend, requires_grad=True)
    t = torch.from_numpy(a.copy()).requires_grad_(True)
    y = x.astype(dst)
    ty = t.to(torch_dtype(dst))
    assert y.dtype == np.dtype(dst)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    g = randn((3, 4), dst, seed=2)
    y.backward(mg.tensor(g, backend=backend))
    ty.backward(torch.from_numpy(g))
    assert x.grad.dtype == np.dtype(src)
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_float_half_double_methods(backend):
    x = mg.tensor(randn((2, 3), np.float64), backend=backend, requires_grad=True)
    assert x.float().dtype == np.float32
    assert x.half().dtype == np.float16
    assert x.double() is x  # same dtype: no new node
    check(lambda t: t.float() * t.half().double(), lambda t: t.float() * t.half().double(),
          [randn((2, 3), np.float64)], backend)


def test_one_tensor_used_several_times(backend):
    a = randn((3, 4), np.float64, positive=True)
    check(lambda x: x * x + x / (x + 1) - x.exp() * x, None, [a], backend)
    b = randn((4,), np.float32)
    check(lambda x: (x * x.tanh()) ** 2 + x.sigmoid() * x, None, [b], backend)


def test_non_contiguous_inputs(backend):
    a = randn((4, 6), np.float64)
    check(lambda x: x.T.exp() * x[::2].sum(axis=0).reshape(6, 1), None, [a], backend)
    check(lambda x: x[1:3, ::-2].tanh() + x[1:3, 1::2],  # torch has no negative steps: flip
          lambda x: x[1:3].flip(1)[:, ::2].tanh() + x[1:3, 1::2], [a], backend)
