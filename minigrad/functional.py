"""Every op as a function (``minigrad.exp(x)``) and as a Tensor method (``x.exp()``).

Each function checks its arguments, then calls one Function's ``apply``; the math lives in
``minigrad/ops``. Names follow PyTorch where it has one (``cat``, ``transpose(d0, d1)``),
with NumPy's spelling as an alias (``concat``, ``swapaxes``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from . import ops
from .tensor import FUNCTIONAL_METHODS, Tensor, matmul

# ---- elementwise -------------------------------------------------------------------


def exp(x: Tensor) -> Tensor:
    return ops.elementwise.Exp.apply(x)


def log(x: Tensor) -> Tensor:
    return ops.elementwise.Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    return ops.elementwise.Sqrt.apply(x)


def rsqrt(x: Tensor) -> Tensor:
    return ops.elementwise.Rsqrt.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - torch's name
    return ops.elementwise.Abs.apply(x)


def tanh(x: Tensor) -> Tensor:
    return ops.elementwise.Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    return ops.elementwise.Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    return ops.elementwise.Relu.apply(x)


def silu(x: Tensor) -> Tensor:
    return ops.elementwise.Silu.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ops.elementwise.Gelu.apply(x, approximate=approximate)


def maximum(a: Tensor, b: Tensor | float) -> Tensor:
    return ops.elementwise.Maximum.apply(a, a._operand(b))


def minimum(a: Tensor, b: Tensor | float) -> Tensor:
    return ops.elementwise.Minimum.apply(a, a._operand(b))


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    if min is None and max is None:
        raise ValueError("clip: give min, max or both")
    # NumPy scalar bounds become Python numbers, which do not upcast a float32 x.
    min, max = (v.item() if isinstance(v, np.generic) else v for v in (min, max))
    return ops.elementwise.Clip.apply(x, lo=min, hi=max)


clamp = clip


def where(cond: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    ref = a if isinstance(a, Tensor) else b
    if not isinstance(ref, Tensor):
        raise TypeError("where: at least one of a, b must be a Tensor")
    cond = cond if isinstance(cond, Tensor) else Tensor(cond, backend=ref.backend)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: cond must be a bool tensor, got dtype {cond.dtype}")
    return ops.elementwise.Where.apply(cond, ref._operand(a), ref._operand(b))


def masked_fill(x: Tensor, mask: Tensor, value: float) -> Tensor:
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
    return ops.elementwise.MaskedFill.apply(x, mask, value=value)


def astype(x: Tensor, dtype) -> Tensor:
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if x.requires_grad and not (dtype.kind == "f" or dtype.name == "bfloat16"):
        return x.detach().astype(dtype)
    return ops.elementwise.Cast.apply(x, dtype=dtype)


# ---- reductions --------------------------------------------------------------------


def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return ops.reduce.Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return ops.reduce.Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return ops.reduce.Max.apply(x, axis=axis, keepdims=keepdims)


def min(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return ops.reduce.Min.apply(x, axis=axis, keepdims=keepdims)


def var(x: Tensor, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
    return ops.reduce.Var.apply(x, axis=axis, keepdims=keepdims, correction=correction)


def std(x: Tensor, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
    return sqrt(var(x, axis, keepdims, correction))


def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return ops.reduce.LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def argmax(x: Tensor, axis: int | None = None) -> Tensor:
    return Tensor._from_array(x.data.argmax(axis=axis), x.backend)


def argmin(x: Tensor, axis: int | None = None) -> Tensor:
    return Tensor._from_array(x.data.argmin(axis=axis), x.backend)


# ---- shape -------------------------------------------------------------------------


def _axis(op: str, axis: int, ndim: int) -> int:
    """``axis`` made non-negative; out of range (torch's rule: -ndim <= axis < ndim) is an error
    naming the op, instead of silently wrapping around."""
    n = ndim or 1  # as in torch, a 0-d tensor accepts axis 0 and -1 (max is shadowed here)
    if not -n <= axis < n:
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor of {ndim} dimensions")
    return axis % n


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x: Tensor, *shape) -> Tensor:
    # _shape_arg written out, and NumPy left to check the sizes: a tiny reshape is mostly this function
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if shape == x.data.shape:
        return x
    try:  # only a failure pays for the message below
        return _Reshape.apply(x, shape=shape)
    except ValueError:
        raise ValueError(f"reshape: cannot view a tensor of shape {x.shape} ({x.size} elements) as {shape}") from None


_Reshape = ops.shape.Reshape
view = reshape  # NumPy reshapes copy only when they must, so view and reshape are one op here


def permute(x: Tensor, *axes) -> Tensor:
    axes = tuple(_axis("permute", a, x.ndim) for a in _shape_arg(axes))
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    return ops.shape.Permute.apply(x, axes=axes)


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    axes = list(range(x.ndim))
    dim0, dim1 = _axis("transpose", dim0, x.ndim), _axis("transpose", dim1, x.ndim)
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return ops.shape.Permute.apply(x, axes=tuple(axes))


swapaxes = transpose


def broadcast_to(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}") from None
    return x if shape == x.shape else ops.shape.BroadcastTo.apply(x, shape=shape)


def expand(x: Tensor, *sizes) -> Tensor:
    """torch's expand: -1 keeps a dimension's size."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    return broadcast_to(x, shape)


def squeeze(x: Tensor, axis=None) -> Tensor:
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = {_axis("squeeze", a, x.ndim) for a in ((axis,) if isinstance(axis, int) else axis)}
        shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    return reshape(x, shape)


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    if not -x.ndim - 1 <= axis <= x.ndim:  # one more place than x has axes
        raise IndexError(f"unsqueeze: axis {axis} is out of range for a tensor of {x.ndim} dimensions")
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])


def contiguous(x: Tensor) -> Tensor:
    return ops.shape.Contiguous.apply(x)


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = list(tensors)
    nd = tensors[0].ndim
    ax = _axis("cat", axis, nd)
    for t in tensors[1:]:
        if t.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != ax):
            raise ValueError(f"cat: shapes {[t.shape for t in tensors]} differ outside axis {axis}")
    return ops.shape.Concat.apply(*tensors, axis=axis)


concat = cat


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = list(tensors)
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: all shapes must match, got {[t.shape for t in tensors]}")
    return ops.shape.Stack.apply(*tensors, axis=axis)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple:
    """torch's split: an int is the size of each piece (the last may be smaller); a list
    gives each piece's size."""
    n = x.shape[_axis("split", axis, x.ndim)]
    if isinstance(split_size_or_sections, int):
        k = split_size_or_sections
        if k <= 0:
            raise ValueError(f"split: split_size must be positive, got {k}")
        sections = [k] * (n // k) + ([n % k] if n % k else [])
    else:
        sections = list(split_size_or_sections)
        if builtins.sum(sections) != n:
            raise ValueError(f"split: sections {sections} do not add up to {n} (axis {axis} of {x.shape})")
    return ops.shape.Split.apply(x, sections=sections, axis=axis)


def chunk(x: Tensor, chunks: int, axis: int = 0) -> tuple:
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[_axis("chunk", axis, x.ndim)]
    return split(x, -(-n // chunks) or 1, axis)  # "or 1": an empty axis gives no pieces


def tril(x: Tensor, k: int = 0) -> Tensor:
    return ops.shape.Tril.apply(x, k=k)


def triu(x: Tensor, k: int = 0) -> Tensor:
    return ops.shape.Triu.apply(x, k=k)


# ---- indexing ----------------------------------------------------------------------


def _index_tensor(idx, like: Tensor) -> Tensor:
    idx = idx if isinstance(idx, Tensor) else Tensor(np.asarray(idx), backend=like.backend)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"index tensor must hold integers, got dtype {idx.dtype}")
    return idx


def gather(x: Tensor, axis: int, index: Tensor) -> Tensor:
    """torch.gather(x, dim, index)."""
    index = _index_tensor(index, x)
    if index.ndim != x.ndim:
        raise ValueError(f"gather: index has {index.ndim} dims, input has {x.ndim}")
    return ops.index.Gather.apply(x, index, axis=axis)


def take_along_axis(x: Tensor, index: Tensor, axis: int) -> Tensor:
    return gather(x, axis, index)


def scatter_add(x: Tensor, axis: int, index: Tensor, src: Tensor) -> Tensor:
    """torch.scatter_add(x, dim, index, src), out of place."""
    index = _index_tensor(index, x)
    if index.shape != src.shape:
        raise ValueError(f"scatter_add: index shape {index.shape} must equal src shape {src.shape}")
    return ops.index.ScatterAdd.apply(x, index, src, axis=axis)


def index_select(x: Tensor, axis: int, index: Tensor) -> Tensor:
    index = _index_tensor(index, x)
    return ops.index.IndexSelect.apply(x, index, axis=axis)


def embedding(ids: Tensor, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (V, D) picked by integer ``ids`` (...): (..., D)."""
    ids = _index_tensor(ids, weight)
    return ops.index.Embedding.apply(weight, ids)


# ---- networks ----------------------------------------------------------------------


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return ops.softmax.Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return ops.softmax.LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Softmax + negative log-likelihood, fused: logits (..., C), integer targets (...)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    targets = _index_tensor(targets, logits)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {targets.shape} do not match "
                         f"logits of shape {logits.shape} (expected {logits.shape[:-1]})")
    return ops.loss.CrossEntropy.apply(logits, targets, ignore_index=ignore_index, reduction=reduction)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    from .random import default_generator

    gen = generator or default_generator()
    keep = gen.random(x.shape) >= p
    mask = Tensor(keep, backend=x.backend)
    return ops.elementwise.Dropout.apply(x, mask, p=p)


# ---- *_simple composites: the fused ops above, built from primitive ops ---------------
# (autograd derives their backward; the tests hold each to its fused op and to torch)

logsumexp_simple = ops.reduce.logsumexp_simple
softmax_simple = ops.softmax.softmax_simple
log_softmax_simple = ops.softmax.log_softmax_simple
cross_entropy_simple = ops.loss.cross_entropy_simple


# ---- Tensor methods (the list is in tensor.py) ---------------------------------------

for _name in FUNCTIONAL_METHODS:
    setattr(Tensor, _name, globals()[_name])

__all__ = [
    # elementwise
    "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu", "silu", "gelu", "maximum", "minimum",
    "clip", "clamp", "where", "masked_fill", "astype",
    # reductions
    "sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin",
    # shape
    "reshape", "view", "permute", "transpose", "swapaxes", "broadcast_to", "expand", "squeeze", "unsqueeze",
    "flatten", "contiguous", "cat", "concat", "stack", "split", "chunk", "tril", "triu",
    # indexing
    "gather", "take_along_axis", "scatter_add", "index_select", "embedding",
    # networks
    "matmul", "softmax", "log_softmax", "cross_entropy", "dropout",
    # composites
    "logsumexp_simple", "softmax_simple", "log_softmax_simple", "cross_entropy_simple",
]
