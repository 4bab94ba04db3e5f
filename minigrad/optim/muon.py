"""Muon (Keller Jordan, 2024): momentum SGD whose update for a 2-D weight matrix is replaced by the
nearest semi-orthogonal matrix, found with a few Newton-Schulz iterations.

For a hidden (rows, cols) matrix with gradient g and momentum buffer b:

    b <- b + (1 - mu) * (g - b)                           momentum (an EMA of the gradient)
    u <- g + mu * (b - g)       if nesterov else b        look ahead along the momentum
    u <- NS5(u) * max(1, rows / cols) ** 0.5              orthogonalize, then rescale tall matrices
    p <- p * (1 - lr * wd) - lr * u                       decoupled weight decay, then the update

NS5 normalizes u by its Frobenius norm (so every singular value is <= 1), works on the wide
orientation (transposing when rows > cols so X @ X.T is the small Gram matrix), and applies five
steps of the quintic X <- a X + (b A + c A^2) X with A = X X^T and (a, b, c) = (3.4445, -4.7750, 2.0315):
coefficients chosen to pull small singular values up fast rather than to converge exactly to 1.
The reference runs it in bfloat16 on GPU; here it runs in the parameter's dtype.

Muon is for hidden matrices only: embeddings, the LM head and 1-D parameters go to AdamW, which
``MuonWithAdamW`` arranges from parameter names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor
from .adamw import adamw_update, check_adam_options
from .optimizer import Optimizer, ParamsLike
from .param_groups import is_no_decay_name

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(xp: Any, g: Any, steps: int = 5, eps: float = 1e-7) -> Any:
    """An approximately orthogonal matrix with g's row/column spaces (about U V^T for g = U S V^T)."""
    a, b, c = NS_COEFFICIENTS
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g  # (small, large): the Gram matrix x @ x.T is (small, small)
    x = x / (xp.sqrt(xp.sum(xp.square(x))) + eps)
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    return x.T if tall else x


class Muon(Optimizer):
    """``Muon(params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0)`` for 2-D
    parameters. State: ``momentum_buffer``."""

    def __init__(self, params: ParamsLike, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_muon_options(type(self).__name__, group)
        for p in group["params"]:
            if p.ndim != 2:
                raise ValueError(f"Muon: takes only 2-D parameters, got one of shape {p.shape} "
                                 "(send it to AdamW, e.g. with MuonWithAdamW)")

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        muon_update(p, grad, state, group)


def muon_update(p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
    """One Muon step on a 2-D parameter ``p`` with its state dict (created on first use)."""
    xp = p.backend.xp
    mu, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = xp.zeros_like(p.data)
    buf = state["momentum_buffer"]
    buf += (grad - buf) * (1.0 - mu)
    update = grad + (buf - grad) * mu if group["nesterov"] else buf
    rows, cols = p.shape
    update = newton_schulz5(xp, update, group["ns_steps"]) * max(1.0, rows / cols) ** 0.5
    if wd != 0.0:
        p.data *= 1.0 - lr * wd
    p.data -= update.astype(p.data.dtype, copy=False) * lr


def check_muon_options(owner: str, group: dict[str, Any]) -> None:
    if not 0.0 <= group["momentum"] < 1.0:
        raise ValueError(f"{owner}: momentum must be in [0, 1), got {group['momentum']}")
    if not group["weight_decay"] >= 0.0:
        raise ValueError(f"{owner}: weight_decay must be >= 0, got {group['weight_decay']}")
    if int(group["ns_steps"]) != group["ns_steps"] or group["ns_steps"] < 1:
        raise ValueError(f"{owner}: ns_steps must be a positive integer, got {group['ns_steps']}")


class MuonWithAdamW(Optimizer):
    """Muon for hidden 2-D matrices, AdamW for everything else, in one optimizer (one state, one
    checkpoint). Built from ``named_params`` (``(name, Tensor)`` pairs, e.g. ``model.named_parameters()``):

    * 2-D and not an embedding / LM head / SSM A_log (names holding "embed_tokens", "embedding", "lm_head",
      or ending in "A_log")
      -> a Muon group (``lr``, ``momentum``, ``nesterov``, ``ns_steps``, ``weight_decay``);
    * the rest -> AdamW groups (``adamw_lr``, ``adamw_betas``, ``adamw_eps``), with
      ``adamw_weight_decay`` on 2-D ones (the LM head) and none on 1-D ones and embeddings.

    Each group's ``"algorithm"`` says which rule it takes; every group has its own ``"lr"`` and
    ``"initial_lr"``, so a schedule scales both rates together.
    """

    def __init__(self, named_params: Iterable[tuple[str, Tensor]], lr: float = 0.02, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, weight_decay: float = 0.0, adamw_lr: float = 3e-4,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0):
        muon, decay, no_decay = [], [], []
        for name, p in named_params:
            if not p.requires_grad:
                continue
            if p.ndim == 2 and not (is_no_decay_name(name) or "lm_head" in name):
                muon.append(p)
            elif p.ndim >= 2 and not is_no_decay_name(name):
                decay.append(p)
            else:
                no_decay.append(p)
        groups = [{"params": muon, "algorithm": "muon", "lr": lr, "weight_decay": weight_decay},
                  {"params": decay, "algorithm": "adamw", "lr": adamw_lr, "weight_decay": adamw_weight_decay},
                  {"params": no_decay, "algorithm": "adamw", "lr": adamw_lr, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise ValueError("MuonWithAdamW: no parameter requires grad")
        super().__init__(groups, dict(lr=lr, algorithm="muon", momentum=momentum, nesterov=nesterov,
                                      ns_steps=ns_steps, weight_decay=weight_decay, betas=tuple(adamw_betas),
                                      eps=adamw_eps))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if group["algorithm"] == "muon":
            check_muon_options("MuonWithAdamW", group)
            if any(p.ndim != 2 for p in group["params"]):
                raise ValueError("MuonWithAdamW: a 'muon' group may hold only 2-D parameters")
        elif group["algorithm"] == "adamw":
            check_adam_options("MuonWithAdamW", group["betas"], group["eps"], group["weight_decay"])
        else:
            raise ValueError(f"MuonWithAdamW: algorithm must be 'muon' or 'adamw', got {group['algorithm']!r}")

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["algorithm"] == "muon":
            muon_update(p, grad, state, group)
        else:
            beta1, beta2 = group["betas"]
            adamw_update(p, grad, state, group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
