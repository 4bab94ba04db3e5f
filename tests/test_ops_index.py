"""Indexing ops against torch.autograd: basic slicing (negative steps, None, Ellipsis), integer
arrays, bool masks, mixed advanced+basic keys, gather/take_along_axis, index_select, embedding
and scatter_add. Repeated indices must add their gradients up (scatter-add backward)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_parity import FLOATS, check, randn

import minigrad as mg

I3 = np.array([0, 2, 0])  # repeated index
INEG = np.array([-1, 0, -1, 1])  # negative, repeated
I2D = np.array([[1, 1], [0, 2]])
MASK_ROWS = np.array([True, False, True, True])
MASK_FULL = np.array([[True, False, True, False, True]] * 2 + [[False] * 5, [True] * 5])


def T(a):
    return torch.from_numpy(a)


# name: (minigrad key, torch key or None for the same key); input shape (4, 5) or (2, 3, 4) below.
KEYS_2D = {
    "int": (1, None),
    "neg_int": (-1, None),
    "slice": (slice(1, 3), None),
    "int_slice": ((2, slice(None, None, 2)), None),
    "slice_neg_bounds": ((slice(1, -1), -2), None),
    "none": ((None, 1), None),
    "ellipsis": ((Ellipsis, 2), None),
    "none_and_slices": ((slice(None), None, slice(1, 4)), None),
    "int_array_repeated": (I3, T(I3)),
    "list_repeated": ([3, 3, 1], [3, 3, 1]),
    "neg_int_array": (INEG, T(INEG)),
    "int_array_2d": (I2D, T(I2D)),
    "two_arrays": ((np.array([0, 1, 1]), np.array([4, 2, 2])), (T(np.array([0, 1, 1])), T(np.array([4, 2, 2])))),
    "array_then_slice": ((I3, slice(1, 4)), (T(I3), slice(1, 4))),
    "slice_then_array": ((slice(1, None), np.array([0, 0, 4])), (slice(1, None), T(np.array([0, 0, 4])))),
    "array_ellipsis": ((Ellipsis, I3), (Ellipsis, T(I3))),
    "none_then_array": ((None, I3), (None, T(I3))),
    "int_and_array": ((2, I3), (2, T(I3))),
    "bool_rows": (MASK_ROWS, T(MASK_ROWS)),
    "bool_full": (MASK_FULL, T(MASK_FULL)),
    "bool_cols": ((slice(None), MASK_FULL[0]), (slice(None), T(MASK_FULL[0]))),
    "empty_array": (np.array([], dtype=np.int64), T(np.array([], dtype=np.int64))),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(KEYS_2D))
def test_getitem_2d(backend, dtype, name):
    key, tkey = KEYS_2D[name]
    tkey = key if tkey is None else tkey
    check(lambda x: x[key], lambda x: x[tkey], [randn((4, 5), dtype, seed=2)], backend)


KEYS_3D = {
    "separated_arrays": ((np.array([0, 1, 1]), slice(None), np.array([3, 3, 0]))),
    "ellipsis_middle": ((1, Ellipsis, None, slice(0, 3))),
    "array_none_slice": ((np.array([[1], [0]]), None, slice(1, 3), np.array([0, 3, 3]))),
    "bool_2d_prefix": ((np.array([[True, False, True], [False, True, True]]),)),
    "bool_then_slice": ((np.array([True, True]), slice(None, 2), 1)),
}


@pytest.mark.parametrize("name", list(KEYS_3D))
def test_getitem_3d_mixed(backend, name):
    key = KEYS_3D[name]
    tkey = tuple(T(k) if isinstance(k, np.ndarray) else k for k in key)
    check(lambda x: x[key], lambda x: x[tkey], [randn((2, 3, 4), np.float64, seed=4)], backend)


@pytest.mark.parametrize("dtype", FLOATS)
def test_negative_steps(backend, dtype):
    """torch has no negative steps: compare against flip, which is the same selection."""
    a = randn((4, 6), dtype)
    check(lambda x: x[::-1], lambda x: x.flip(0), [a], backend)
    check(lambda x: x[1:3, ::-2], lambda x: x[1:3].flip(1)[:, ::2], [a], backend)
    check(lambda x: x[-1::-3, 4:0:-1], lambda x: x.flip(0)[::3, 1:5].flip(1), [a], backend)


@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_index_with_tensors(backend, idx_dtype):
    idx = np.array([2, 0, 2, 2], idx_dtype)
    a = randn((3, 4), np.float64)
    check(lambda x, i: x[i], lambda x, i: x[i.long()], [a, idx], backend)
    check(lambda x, i: x[:, i], lambda x, i: x[:, i.long()], [a, idx], backend)
    check(lambda x, i: x[i[0]], lambda x, i: x[i[0].long()], [a, idx], backend)  # 0-d index tensor
    check(lambda x, m: x[m], None, [a, a > 0.1], backend)  # bool mask tensor


def test_mask_from_comparison(backend):
    a = randn((3, 4), np.float64)
    check(lambda x: x[x > 0] * 2, None, [a], backend)


def test_same_tensor_indexed_many_times(backend):
    """Overlapping slices and repeated rows of one tensor: all their gradients add up."""
    a = randn((4, 3), np.float64)
    check(lambda x: x[1:3] * x[:2] + x[I3[:2]] - x[[1, 1]], lambda x: x[1:3] * x[:2] + x[T(I3[:2])] - x[[1, 1]],
          [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_gather_and_take_along_axis(backend, dtype, axis, idx_dtype):
    a = randn((3, 4), dtype)
    n = a.shape[axis]
    shape = (3, 5) if axis != 0 else (6, 4)  # more picks than elements: repeats are certain
    idx = np.random.default_rng(3).integers(0, n, shape).astype(idx_dtype)
    check(lambda x, i: x.gather(axis, i), lambda x, i: torch.gather(x, axis, i.long()), [a, idx], backend)
    check(lambda x, i: mg.take_along_axis(x, i, axis), lambda x, i: torch.gather(x, axis, i.long()),
          [a, idx], backend)


def test_gather_index_smaller_than_input(backend):
    """torch lets the index be smaller than the input in the other dimensions."""
    a = randn((4, 5), np.float64)
    idx = np.array([[4, 4, 0], [1, 2, 1]])
    check(lambda x, i: mg.gather(x, 1, i), lambda x, i: torch.gather(x, 1, i), [a, idx], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_index_select(backend, dtype, axis):
    a = randn((3, 4, 2), dtype)
    idx = np.array([1, 0, 1, 1])
    check(lambda x, i: x.index_select(axis, i), lambda x, i: torch.index_select(x, axis, i), [a, idx], backend)
    check(lambda x: mg.index_select(x, axis, [0, 0]), lambda x: torch.index_select(x, axis, torch.tensor([0, 0])),
          [a], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_embedding(backend, dtype, idx_dtype):
    w = randn((6, 3), dtype)
    ids = np.array([[1, 5, 1], [0, 1, 5]], idx_dtype)  # repeated ids add their rows' gradients
    check(lambda i, w: mg.embedding(i, w), lambda i, w: F.embedding(i.long(), w), [ids, w], backend)
    check(lambda w: mg.embedding([2, 2, 2], w), lambda w: F.embedding(torch.tensor([2, 2, 2]), w), [w], backend)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_add(backend, dtype, axis):
    a = randn((3, 4), dtype, seed=1)
    n = a.shape[axis]
    idx = np.random.default_rng(5).integers(0, n, (3, 4) if axis != 0 else (5, 4))
    src = randn(idx.shape, dtype, seed=2)
    check(lambda x, i, s: x.scatter_add(axis, i, s), lambda x, i, s: torch.scatter_add(x, axis, i, s),
          [a, idx, src], backend)
    check(lambda x, i, s: mg.scatter_add(x, axis, i, s), lambda x, i, s: torch.scatter_add(x, axis, i, s),
          [a, idx, src], backend, no_grad=(0,))


def test_scatter_add_index_smaller_than_input(backend):
    a = randn((3, 4), np.float64)
    idx = np.array([[3, 3, 0], [1, 1, 1]])
    src = randn(idx.shape, np.float64, seed=1)
    check(lambda x, i, s: mg.scatter_add(x, 1, i, s), lambda x, i, s: torch.scatter_add(x, 1, i, s),
          [a, idx, src], backend)


def test_setitem_under_no_grad_and_refused_with_grad(backend):
    x = mg.tensor(np.zeros((2, 3)), backend=backend, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x[0, 1] = 5.0
    with mg.no_grad():
        x[0, 1] = 5.0
        x[1] = mg.tensor(np.array([1.0, 2.0, 3.0]), backend=backend)
    np.testing.assert_array_equal(x.numpy(), [[0, 5, 0], [1, 2, 3]])
