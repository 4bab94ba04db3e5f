"""Shared helper of the op tests: run one expression in minigrad and in torch.autograd on the
same NumPy values and demand equal outputs and equal gradients for every input.

PyTorch is the reference nobody here wrote; it is imported only by tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

import minigrad as mg

# (rtol, atol per unit of magnitude): float32 within ~1e-5 relative, float64 within 1e-10.
TOL = {
    np.dtype(np.float16): (2e-3, 2e-3),
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-10, 1e-12),
}

FLOATS = [np.float32, np.float64]

_TORCH_DTYPE = {
    np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64, np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64, np.dtype(np.bool_): torch.bool,
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_close(ours: np.ndarray, ref: np.ndarray, dtype, what: str = "") -> None:
    """Elementwise |ours - ref| <= rtol*|ref| + atol*max(1, max|ref|), nan matching nan."""
    rtol, atol = TOL[np.dtype(dtype)]
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != torch's {ref.shape}"
    finite = ref[np.isfinite(ref)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(ours.astype(np.float64), ref.astype(np.float64), rtol=rtol,
                               atol=atol * scale, equal_nan=True, err_msg=what)


def _outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _leaf(a: np.ndarray, backend: str, grad: bool, layout: str) -> mg.Tensor:
    """A leaf holding ``a`` as C-ordered data, F-ordered data, or a strided view."""
    if layout == "F":
        return mg.tensor(np.asfortranarray(a), backend=backend, requires_grad=grad)  # the copy keeps F order
    if layout == "strided" and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return mg.Tensor(big[..., ::2], backend=backend, requires_grad=grad)  # numpy backend keeps the view
    return mg.tensor(a, backend=backend, requires_grad=grad)


def check(mg_fn: Callable, torch_fn: Callable | None, inputs: Sequence[np.ndarray], backend: str,
          no_grad: Sequence[int] = (), seed: int = 1, layout: str = "C") -> None:
    """Compare ``mg_fn(*tensors)`` with ``torch_fn(*torch_tensors)`` (``torch_fn`` defaults to
    ``mg_fn``): values, output dtype, and the gradient of every floating input given the same
    random upstream gradient. Integer/bool inputs, and those listed in ``no_grad``, are
    passed without requires_grad. ``layout`` ("C", "F", "strided") sets how the leaves'
    data is laid out in memory."""
    torch_fn = torch_fn or mg_fn
    ours, refs = [], []
    for i, a in enumerate(inputs):
        a = np.asarray(a)
        grad = a.dtype.kind == "f" and i not in no_grad
        ours.append(_leaf(a, backend, grad, layout))
        refs.append(torch.from_numpy(a.copy()).requires_grad_(grad))

    outs = _outputs(mg_fn(*ours))
    touts = _outputs(torch_fn(*refs))
    assert len(outs) == len(touts), f"{len(outs)} outputs vs torch's {len(touts)}"
    for k, (o, t) in enumerate(zip(outs, touts)):
        assert o.dtype == np.dtype(str(t.dtype).replace("torch.", "")), \
            f"output {k}: dtype {o.dtype} vs torch's {t.dtype}"
        assert o.backend.name == backend
        assert_close(o.numpy(), t.detach().numpy(), o.dtype, f"output {k} value")

    diff = [k for k, o in enumerate(outs) if o.requires_grad]
    assert diff == [k for k, t in enumerate(touts) if t.requires_grad], "requires_grad of outputs differs"
    if not diff:
        return
    g = rng(seed)
    upstream = [g.standard_normal(outs[k].shape).astype(outs[k].dtype) for k in diff]
    if len(diff) == 1:  # the op's own backward, seeded with a random gradient
        outs[diff[0]].backward(mg.tensor(upstream[0], backend=backend))
    else:  # several outputs: one scalar that weights each of them
        loss = None
        for k, u in zip(diff, upstream):
            term = (outs[k] * mg.tensor(u, backend=backend)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
    torch.autograd.backward([touts[k] for k in diff], [torch.from_numpy(u) for u in upstream])

    for i, (x, t) in enumerate(zip(ours, refs)):
        if not x.requires_grad:
            continue
        if t.grad is None:
            assert x.grad is None or not x.grad.numpy().any(), f"input {i}: torch has no gradient"
            continue
        assert x.grad is not None, f"input {i}: no gradient"
        assert x.grad.dtype == x.dtype, f"input {i}: grad dtype {x.grad.dtype} != {x.dtype}"
        assert x.grad.backend.name == backend
        assert_close(x.grad.numpy(), t.grad.numpy(), x.dtype, f"input {i} gradient")


def randn(shape, dtype=np.float32, seed: int = 0, positive: bool = False) -> np.ndarray:
    a = rng(seed).standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return a.astype(dtype)


def torch_dtype(dtype) -> torch.dtype:
    return _TORCH_DTYPE[np.dtype(dtype)]
