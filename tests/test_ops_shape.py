"""Shape ops against torch.autograd: reshape view transpose permute swapaxes expand broadcast_to
squeeze unsqueeze flatten contiguous, cat/concat stack split chunk, tril triu."""

import numpy as np
import pytest
import torch
from torch_parity import FLOATS, check, randn

import minigrad as mg

# Each case: (minigrad fn, torch fn or None for the same code, input shape).
CASES = {
    "reshape": (lambda x: x.reshape(4, 6), None, (2, 3, 4)),
    "reshape_tuple_minus1": (lambda x: x.reshape((3, -1)), None, (2, 3, 4)),
    "view": (lambda x: x.view(-1), None, (2, 3, 4)),
    "mg_reshape": (lambda x: mg.reshape(x, 6, 4), lambda x: torch.reshape(x, (6, 4)), (2, 3, 4)),
    "transpose_default": (lambda x: x.transpose(), lambda x: x.transpose(-2, -1), (2, 3, 4)),
    "transpose": (lambda x: x.transpose(0, 2), None, (2, 3, 4)),
    "transpose_neg": (lambda x: x.transpose(-3, -1), None, (2, 3, 4)),
    "T": (lambda x: x.T, lambda x: x.permute(1, 0), (3, 4)),
    "permute": (lambda x: x.permute(2, 0, 1), None, (2, 3, 4)),
    "permute_tuple_neg": (lambda x: x.permute((-1, -3, -2)), lambda x: x.permute(2, 0, 1), (2, 3, 4)),
    "swapaxes": (lambda x: x.swapaxes(0, 1), None, (2, 3, 4)),
    "expand": (lambda x: x.expand(2, 3, 4), None, (3, 1)),
    "expand_minus1": (lambda x: x.expand(5, -1, 4), None, (3, 1)),
    "broadcast_to": (lambda x: x.broadcast_to((2, 3, 4)), lambda x: x.broadcast_to((2, 3, 4)), (1, 4)),
    "broadcast_to_same": (lambda x: mg.broadcast_to(x, 2, 3), lambda x: x.broadcast_to((2, 3)), (2, 3)),
    "squeeze_all": (lambda x: x.squeeze(), None, (1, 3, 1, 4)),
    "squeeze_axis": (lambda x: x.squeeze(2), None, (1, 3, 1, 4)),
    "squeeze_neg": (lambda x: x.squeeze(-4), None, (1, 3, 1, 4)),
    "squeeze_tuple": (lambda x: x.squeeze((0, 2)), None, (1, 3, 1, 4)),
    "squeeze_non_one": (lambda x: x.squeeze(1), None, (1, 3, 1, 4)),
    "unsqueeze": (lambda x: x.unsqueeze(1), None, (3, 4)),
    "unsqueeze_neg": (lambda x: x.unsqueeze(-1), None, (3, 4)),
    "unsqueeze_front": (lambda x: x.unsqueeze(-3), None, (3, 4)),
    "flatten": (lambda x: x.flatten(), None, (2, 3, 4)),
    "flatten_range": (lambda x: x.flatten(1), None, (2, 3, 4)),
    "flatten_mid": (lambda x: x.flatten(0, -2), None, (2, 3, 4)),
    "contiguous": (lambda x: x.transpose(0, 1).contiguous(), None, (3, 4)),
    "tril": (lambda x: x.tril(), None, (4, 4)),
    "tril_k": (lambda x: x.tril(-1), lambda x: x.tril(-1), (2, 4, 5)),
    "triu": (lambda x: mg.triu(x), torch.triu, (4, 4)),
    "triu_k": (lambda x: x.triu(2), None, (2, 4, 5)),
    "chained_views": (lambda x: x.permute(1, 2, 0).reshape(12, 2).T.unsqueeze(0).expand(3, 2, 12), None, (2, 3, 4)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(CASES))
def test_shape_op(backend, dtype, name):
    ours, ref, shape = CASES[name]
    check(ours, ref, [randn(shape, dtype, seed=3)], backend)


def test_view_ops_on_non_contiguous_input(backend):
    a = randn((4, 6), np.float64)
    check(lambda x: x.T.reshape(3, 8), lambda x: x.T.reshape(3, 8), [a], backend)
    check(lambda x: x[:, 1::2].flatten(), None, [a], backend)
    check(lambda x: x.T.contiguous().unsqueeze(0) * x.T, None, [a], backend)


def test_expand_result_used_twice_accumulates(backend):
    check(lambda x: x.expand(3, 4) * x.expand(3, 4).exp() + x, None, [randn((1, 4), np.float64)], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cat(backend, dtype, axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for s, n in zip(shapes, (1, 2, 3)):
        s[axis] = n
    arrays = [randn(s, dtype, seed=i) for i, s in enumerate(shapes)]
    check(lambda *xs: mg.cat(xs, axis=axis), lambda *xs: torch.cat(xs, dim=axis), arrays, backend)
    check(lambda *xs: mg.concat(list(xs), axis), lambda *xs: torch.cat(xs, dim=axis), arrays, backend, no_grad=(1,))


def test_cat_same_tensor_twice(backend):
    check(lambda x: mg.cat([x, x * 2, x], axis=0), lambda x: torch.cat([x, x * 2, x]), [randn((2, 3))], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(backend, dtype, axis):
    arrays = [randn((3, 4), dtype, seed=i) for i in range(3)]
    check(lambda *xs: mg.stack(xs, axis=axis), lambda *xs: torch.stack(xs, dim=axis), arrays, backend)
    check(lambda *xs: mg.stack(list(xs), axis), lambda *xs: torch.stack(xs, dim=axis), arrays, backend,
          no_grad=(0, 2))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("how", [2, 3, [1, 4, 2], [7], [0, 7]], ids=str)
@pytest.mark.parametrize("axis", [0, -1])
def test_split(backend, dtype, how, axis):
    shape = (7, 3) if axis == 0 else (3, 7)
    check(lambda x: x.split(how, axis), lambda x: torch.split(x, how, dim=axis), [randn(shape, dtype)], backend)


def test_split_uses_only_some_pieces(backend):
    """Pieces that get no gradient leave zeros in their part of the input's gradient."""
    a = randn((3, 7), np.float64)
    check(lambda x: x.split([2, 3, 2], axis=1)[1] * 2, lambda x: torch.split(x, [2, 3, 2], dim=1)[1] * 2,
          [a], backend)
    check(lambda x: (lambda p: p[0] * p[2])(mg.split(x, 2, axis=1)),
          lambda x: (lambda p: p[0] * p[2])(torch.split(x, 2, dim=1)), [a[:, :6]], backend)


@pytest.mark.parametrize("chunks", [1, 2, 3, 4])
def test_chunk(backend, chunks):
    a = randn((7, 2), np.float64)
    check(lambda x: x.chunk(chunks), lambda x: torch.chunk(x, chunks), [a], backend)
    check(lambda x: mg.chunk(x, chunks, axis=-1), lambda x: torch.chunk(x, chunks, dim=-1), [a.T.copy()], backend)


def test_split_then_cat_roundtrip(backend):
    a = randn((6, 4), np.float64)
    check(lambda x: mg.cat(list(reversed(x.chunk(3, axis=0))), axis=1),
          lambda x: torch.cat(list(reversed(x.chunk(3, dim=0))), dim=1), [a], backend)
