"""Bad input gets one clear message: the op, the shapes or the value at fault. Also mixing
backends in one op, and axes out of range (which must not silently wrap around)."""

import numpy as np
import pytest

import minigrad as mg


def ones(*shape, backend="numpy"):
    return mg.ones(*shape, backend=backend)


def test_broadcast_mismatch_names_op_and_both_shapes(backend):
    with pytest.raises(ValueError, match=r"Add.*\(3,\).*\(4,\)"):
        ones(3, backend=backend) + ones(4, backend=backend)
    with pytest.raises(ValueError, match=r"Mul.*\(2, 3\).*\(2,\)"):
        ones(2, 3, backend=backend) * ones(2, backend=backend)
    with pytest.raises(ValueError, match=r"Maximum.*\(2,\).*\(3,\)"):
        mg.maximum(ones(2, backend=backend), ones(3, backend=backend))
    with pytest.raises(ValueError, match=r"Where.*\(2,\).*\(3,\)"):
        mg.where(ones(2, backend=backend) > 0, ones(3, backend=backend), 0.0)


def test_matmul_mismatch_names_op_and_both_shapes(backend):
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 2\)"):
        ones(2, 3, backend=backend) @ ones(4, 2, backend=backend)
    with pytest.raises(ValueError, match=r"matmul.*\(3,\).*\(2,\)"):
        ones(3, backend=backend) @ ones(2, backend=backend)
    with pytest.raises(ValueError, match=r"[Mm]at[Mm]ul.*\(2, 3, 4\).*\(3, 4, 2\)"):  # batch dims 2 vs 3
        ones(2, 3, 4, backend=backend) @ ones(3, 4, 2, backend=backend)
    with pytest.raises(ValueError, match=r"matmul.*\(\).*\(3,\)"):
        mg.matmul(ones(backend=backend), ones(3, backend=backend))


@pytest.mark.parametrize("other", ["strict", "numba", "cupy"])
def test_mixing_backends_names_both(other):
    a, b = ones(3), ones(3, backend=other)
    for op in (lambda: a + b, lambda: b * a, lambda: ones(2, 3) @ ones(3, 2, backend=other),
               lambda: mg.cat([a, b]), lambda: mg.where(a > 0, a, b)):
        with pytest.raises(RuntimeError, match=rf"different backends.*numpy.*{other}|{other}.*numpy"):
            op()
    assert (a + b.to("numpy")).backend.name == "numpy"  # the way out the message suggests


def test_join_and_split_shape_errors(backend):
    with pytest.raises(ValueError, match=r"cat.*\(2, 3\).*\(3, 2\)"):
        mg.cat([ones(2, 3, backend=backend), ones(3, 2, backend=backend)])
    with pytest.raises(ValueError, match=r"stack.*\(2,\).*\(3,\)"):
        mg.stack([ones(2, backend=backend), ones(3, backend=backend)])
    with pytest.raises(ValueError, match=r"split.*\[2, 2\].*5"):
        ones(5, backend=backend).split([2, 2])
    with pytest.raises(ValueError, match="split_size must be positive"):
        ones(4, backend=backend).split(0)
    with pytest.raises(ValueError, match="chunks must be positive"):
        ones(4, backend=backend).chunk(0)


def test_view_shape_errors(backend):
    with pytest.raises(ValueError, match=r"reshape.*\(6,\).*\(4, 2\)"):
        ones(6, backend=backend).reshape(4, 2)
    with pytest.raises(ValueError, match=r"reshape"):
        ones(6, backend=backend).reshape(-1, -1)
    with pytest.raises(ValueError, match=r"broadcast_to.*\(3,\).*\(4,\)"):
        ones(3, backend=backend).broadcast_to((4,))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(2, 2\)"):
        ones(3, 1, backend=backend).expand(2, 2)
    with pytest.raises(ValueError, match=r"permute.*\(0, 0\)"):
        ones(2, 3, backend=backend).permute(0, 0)
    with pytest.raises(ValueError, match="flatten"):
        ones(2, 3, 4, backend=backend).flatten(2, 1)


AXIS_ERRORS = {
    "sum": lambda x: x.sum(axis=2),
    "mean": lambda x: x.mean(axis=(0, -3)),
    "transpose": lambda x: x.transpose(0, 5),
    "permute": lambda x: x.permute(0, 2),
    "squeeze": lambda x: x.squeeze(4),
    "unsqueeze": lambda x: x.unsqueeze(4),
    "flatten": lambda x: x.flatten(3),
    "cat": lambda x: mg.cat([x, x], axis=2),
    "split": lambda x: x.split(1, axis=-3),
    "chunk": lambda x: x.chunk(2, axis=2),
}


@pytest.mark.parametrize("name", list(AXIS_ERRORS))
def test_axis_out_of_range_is_an_error_not_a_wraparound(backend, name):
    with pytest.raises(IndexError, match=r"axis -?\d+ is out of range for a tensor of 2 dimensions"):
        AXIS_ERRORS[name](ones(2, 3, backend=backend))


def test_index_errors_name_the_index(backend):
    x = ones(3, 2, backend=backend)
    with pytest.raises(IndexError, match="5"):
        x[5]
    with pytest.raises(IndexError, match="7"):
        x[mg.tensor([0, 7], backend=backend)]
    with pytest.raises(IndexError, match="4"):
        mg.embedding(mg.tensor([4], backend=backend), x)
    with pytest.raises(IndexError, match="3"):
        x.index_select(0, mg.tensor([3], backend=backend))


def test_op_argument_errors(backend):
    x = ones(3, 4, backend=backend)
    t = mg.tensor([1, 2, 0], backend=backend)
    with pytest.raises(ValueError, match=r"cross_entropy.*\(2,\).*\(3, 4\)"):
        mg.cross_entropy(x, mg.tensor([1, 2], backend=backend))
    with pytest.raises(IndexError, match=r"target -1 is out of range for 4 classes.*ignore_index=-100"):
        mg.cross_entropy(x, mg.tensor([1, -1, 0], backend=backend))  # would wrap to class 3 unchecked
    with pytest.raises(IndexError, match="target 4 is out of range"):
        mg.cross_entropy(x, mg.tensor([4, 1, 0], backend=backend))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'max'"):
        mg.cross_entropy(x, t, reduction="max")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'x'"):
        mg.gelu(x, approximate="x")
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1.0"):
        mg.dropout(x, 1.0)
    with pytest.raises(ValueError, match="give min, max or both"):
        x.clip()
    with pytest.raises(ValueError, match="gather: index has 1 dims, input has 2"):
        x.gather(1, mg.tensor([1], backend=backend))
    with pytest.raises(ValueError, match=r"scatter_add.*\(1, 1\).*\(2, 2\)"):
        x.scatter_add(1, mg.tensor([[0]], backend=backend), ones(2, 2, backend=backend))
    with pytest.raises(ValueError, match=r"item\(\).*\(3, 4\)"):
        x.item()


def test_backward_errors(backend):
    x = mg.ones(2, 3, backend=backend, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for a scalar output.*\(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        ones(2, backend=backend).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        ones(2, backend=backend).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="does not require grad"):
        ones(2, backend=backend).retain_grad()


def test_unknown_backend_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*numpy"):
        mg.ones(2, backend="nope")


def test_errors_do_not_chain_numpy_tracebacks(backend):
    """The op's own message replaces NumPy's: no 'During handling...' chain to read through."""
    with pytest.raises(ValueError) as info:
        ones(3, backend=backend) + ones(4, backend=backend)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_setitem_shape_mismatch_is_numpy_error(backend):
    x = mg.tensor(np.zeros((2, 3)), backend=backend)
    with pytest.raises(ValueError):
        x[0] = mg.tensor(np.zeros(4), backend=backend)
