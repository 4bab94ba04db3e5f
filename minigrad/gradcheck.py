"""Check analytic gradients against central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .tensor import Tensor


class GradcheckError(AssertionError):
    pass


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare autograd's gradient of ``sum(fn(*inputs) * w)`` (w a fixed random weight, so
    every output element matters) with central differences, for every input that requires
    grad. Inputs should be float64. Returns True, or raises (or returns False) naming the
    input, the worst element's index and both values."""
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64")
    out = fn(*inputs)
    rng = np.random.default_rng(1234)
    w = Tensor(rng.standard_normal(out.shape), dtype=out.dtype, backend=out.backend)

    def scalar() -> float:
        return float((fn(*inputs) * w).sum().item())

    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    (out * w).sum().backward()

    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        analytic = x.grad.numpy() if x.grad is not None else np.zeros(x.shape)
        host = x.numpy().copy()
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            orig = host[idx]
            for sign in (1, -1):
                host[idx] = orig + sign * eps
                x.data = x.backend.asarray(host.copy())
                val = scalar()
                numeric[idx] += sign * val / (2 * eps)
            host[idx] = orig
        x.data = x.backend.asarray(host)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            worst = np.unravel_index(np.argmax(err), err.shape)
            msg = (f"gradcheck: input {i} gradient mismatch at index {tuple(int(j) for j in worst)}: "
                   f"analytic {analytic[worst]:.10g} vs numeric {numeric[worst]:.10g} "
                   f"(atol={atol}, rtol={rtol})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
