"""Mixed precision: float16 (or bfloat16) compute, float32 master weights, dynamic loss scaling.

    amp = MixedPrecision(model, "float16")                 # the model now computes in float16
    opt = AdamW(decay_groups(amp.named_masters(), wd))     # the optimizer steps the float32 masters
    amp.attach(opt)
    amp.backward(loss)                                      # d(loss * scale): small gradients survive float16
    norm = amp.unscale_and_clip(max_norm)                   # the true gradient norm (inf/nan: an overflow)
    amp.step()                                              # skipped after an overflow; the scale adapts
    amp.zero_grad()

Why each piece. float16 has 10 bits of mantissa and a range up to 65504: a weight update of 1e-4
relative is lost when added to a float16 weight, so the optimizer keeps float32 *master* weights and
the model's float16 parameters are rounded copies of them, rewritten after every step. Gradients
below 6e-8 flush to zero in float16, so the loss is multiplied by a *scale* (2^16 to start) before
backward and the gradients divided by it after; when that overflows (an inf or nan anywhere), the
step is skipped and the scale halved, and after ``growth_interval`` good steps in a row it is doubled
(torch.cuda.amp.GradScaler's rule). bfloat16 has float32's range, so it needs no scaling
(``LossScaler(enabled=False)``) but still needs the masters. The unscaling and the gradient clipping
are one factor, ``optimizer.grad_scale``, that the optimizer applies as it reads each gradient; the
rounded copy into the model is ``optimizer.copies`` (fused into one kernel by CUDA's AdamW).

Backend-neutral: everything here goes through ``backend.xp`` and the optimizer, so it runs (and is
tested) on NumPy float16 as well as on CuPy. Norms, softmax and the loss accumulate in float32 inside
the kernels (kernels/contracts.py); the loss itself is float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor import Tensor
from .clip import grad_norm
from .optimizer import Optimizer

LOW_PRECISION = {"f16": "float16", "bf16": "bfloat16"}


class LossScaler:
    """The loss scale and its rule. ``update(overflow)`` after each step: an overflow halves the scale
    (not below ``min_scale``), ``growth_interval`` good steps in a row double it (not above ``max_scale``).
    Disabled, the scale stays 1 and nothing changes."""

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, min_scale: float = 1.0, max_scale: float = 2.0 ** 24,
                 enabled: bool = True):
        self.enabled = enabled
        self.scale = float(init_scale) if enabled else 1.0
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval, self.min_scale, self.max_scale = growth_interval, min_scale, max_scale
        self.good_steps = 0
        self.overflows = 0

    @property
    def at_minimum(self) -> bool:
        """True when the scale cannot shrink further: an overflow now is a real non-finite gradient."""
        return not self.enabled or self.scale <= self.min_scale

    def update(self, overflow: bool) -> None:
        if not self.enabled:
            return
        if overflow:
            self.overflows += 1
            self.scale = max(self.scale * self.backoff_factor, self.min_scale)
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale = min(self.scale * self.growth_factor, self.max_scale)
            self.good_steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "scale": self.scale, "good_steps": self.good_steps,
                "overflows": self.overflows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("enabled", True) and self.enabled:
            self.scale = float(state["scale"])
        self.good_steps, self.overflows = int(state.get("good_steps", 0)), int(state.get("overflows", 0))


class MixedPrecision:
    """A model computing in ``dtype`` ("float16" or "bfloat16") with float32 master weights.

    Construction casts the model's floating-point parameters and buffers to ``dtype`` (in place) after
    taking float32 copies of the parameters: ``masters``, in ``model.named_parameters()`` order, which is
    what the optimizer is built over and what checkpoints hold (:meth:`state_dict`)."""

    def __init__(self, model, dtype: str, scaler: LossScaler | None = None):
        self.dtype = np.dtype(dtype) if dtype != "bfloat16" else bfloat16()
        self.model = model
        self.names, self.params = zip(*model.named_parameters())
        self.masters = [Tensor._from_array(p.data.astype(np.float32), p.backend, True) for p in self.params]
        model.to(dtype=self.dtype)
        self.scaler = scaler if scaler is not None else LossScaler(enabled=self.dtype == np.float16)
        self.optimizer: Optimizer | None = None
        self.overflow = False

    def named_masters(self) -> list[tuple[str, Tensor]]:
        return list(zip(self.names, self.masters))

    def attach(self, optimizer: Optimizer) -> None:
        """The optimizer (built over ``named_masters()``) writes each new value into the model's parameter."""
        self.optimizer = optimizer
        optimizer.copies = {optimizer._index[id(m)]: p for m, p in zip(self.masters, self.params)}

    def backward(self, loss: Tensor) -> None:
        """Backward of loss * scale (the loss is float32: the scale may exceed float16's range)."""
        (loss * self.scaler.scale if self.scaler.enabled else loss).backward()

    def unscale_and_clip(self, max_norm: float = math.inf) -> float:
        """The norm of the true (unscaled) gradient; the factor that unscales and clips it goes to the
        optimizer, and each master's gradient is its parameter's (read through that factor). A non-finite
        norm marks an overflow: :meth:`step` then skips the update."""
        norm = grad_norm(self.params) / self.scaler.scale
        self.overflow = not math.isfinite(norm)
        coef = 1.0 if self.overflow or not max_norm < math.inf else min(1.0, max_norm / (norm + 1e-6))
        self.optimizer.grad_scale = coef / self.scaler.scale
        for m, p in zip(self.masters, self.params):
            m.grad = p.grad
        return norm

    def step(self, apply: bool = True) -> bool:
        """The optimizer's step on the masters unless the gradients overflowed (or ``apply`` is False: the
        caller found the loss non-finite); the scale is updated either way. Returns whether it stepped."""
        taken = apply and not self.overflow
        if taken:
            self.optimizer.step()
        self.scaler.update(not taken)
        return taken

    def zero_grad(self) -> None:
        for t in (*self.params, *self.masters):
            t.grad = None

    # ---- checkpoints: the float32 masters are the weights ---------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """The master weights as host float32 arrays, by the model's parameter names."""
        return {name: m.numpy() for name, m in zip(self.names, self.masters)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """float32 weights (a checkpoint's) into the masters, and rounded into the model."""
        for name, m, p in zip(self.names, self.masters, self.params):
            host = np.asarray(state[name], dtype=np.float32)
            if host.shape != m.shape:
                raise ValueError(f"mixed precision: {name} has shape {host.shape} in the checkpoint, {m.shape} here")
            m.data = m.backend.asarray(host)
            p.data = m.data.astype(self.dtype)


def bfloat16() -> np.dtype:
    """NumPy's dtype for bfloat16, from ml_dtypes (CuPy 14 reads the same dtype)."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def bf16_problem(backend) -> str | None:
    """Why bfloat16 cannot run on ``backend`` here, or None when it can."""
    if backend.device != "cuda":
        return (f"bfloat16 needs the cupy backend on a GPU (backend {backend.name!r} runs on the CPU, and "
                "NumPy's bfloat16 from ml_dtypes computes matmuls in float32); use f16 or f32 on the CPU")
    try:
        dt = bfloat16()
    except ImportError:
        return "bfloat16 needs ml_dtypes: pip install ml_dtypes"
    try:
        xp = backend.xp
        a = xp.ones((2, 2), dtype=dt)
        if (a @ a).dtype != dt:
            return f"this CuPy ({getattr(xp, '__version__', '?')}) computes bfloat16 matmuls in another dtype"
    except Exception as e:  # an older CuPy: no bfloat16 arrays at all
        return f"this CuPy ({getattr(backend.xp, '__version__', '?')}) has no bfloat16 support ({e})"
    return None
