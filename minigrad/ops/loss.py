"""Cross-entropy of logits against integer class targets: fused (softmax and negative
log-likelihood in one kernel, backward by hand), and ``cross_entropy_simple``, the same loss from
primitive ops, whose backward autograd derives (DeZero's ``softmax_cross_entropy_simple`` is the
anchor)."""

from __future__ import annotations

from ..autograd import Function
from .softmax import log_softmax_simple


class CrossEntropy(Function):
    """Mean (or sum) cross-entropy of logits (..., C) against integer targets (...)."""

    def forward(self, logits, targets, ignore_index=-100, reduction="mean"):
        c = logits.shape[-1]
        self.shape = logits.shape
        flat, flat_t = logits.reshape(-1, c), targets.reshape(-1)
        # A negative target would silently wrap around to a real class (-1 -> C-1): refuse it.
        bad = (flat_t != ignore_index) & ((flat_t < 0) | (flat_t >= c))
        if bool(bad.any()):
            raise IndexError(f"cross_entropy: target {int(flat_t[bad][0])} is out of range for {c} classes "
                             f"(and is not ignore_index={ignore_index})")
        kernel = self.backend.kernel("softmax_cross_entropy")
        loss_sum, n_valid, self.grad = kernel(flat, flat_t, ignore_index)
        if reduction == "mean":
            # torch gives nan when every target is ignored; so do we.
            self.scale = 1.0 / n_valid if n_valid else float("nan")
        elif reduction == "sum":
            self.scale = 1.0
        else:
            raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
        # float16/bfloat16 logits: the loss is summed, and returned, in float32 (the kernels' contract)
        loss_dtype = logits.dtype if logits.dtype.itemsize >= 4 else "float32"
        return self.xp.asarray(loss_sum * self.scale, dtype=loss_dtype)

    def backward(self, g):
        # the factor in the gradient's own dtype, so a float32 loss does not widen a float16 (N, C) gradient
        return (self.grad * (g * self.scale).astype(self.grad.dtype)).reshape(self.shape), None


def cross_entropy_simple(logits, targets, ignore_index: int = -100, reduction: str = "mean"):
    """-log softmax(logits)[target], averaged (or summed) over the targets that are not
    ``ignore_index``. logits (..., C) and integer targets (...) are Tensors; the targets are
    assumed in range (the fused ``cross_entropy`` checks them)."""
    c = logits.shape[-1]
    logp = log_softmax_simple(logits.reshape(-1, c), axis=-1)      # (N, C)
    t = targets.reshape(-1)                                         # (N,)
    kept = t != ignore_index                                        # (N,) bool: the targets that count
    picked = t * kept.astype(t.dtype)                               # an ignored target picks class 0 ...
    weight = kept.astype(logp.dtype)
    nll = -logp.gather(1, picked.unsqueeze(1)).squeeze(1) * weight  # ... with weight 0: (N,)
    return nll.sum() if reduction == "sum" else nll.sum() / weight.sum()
