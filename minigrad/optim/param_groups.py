"""Standard parameter grouping for language models: which parameters get weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor

# Embedding tables are looked up sparsely; decaying every row each step would shrink rare tokens.
EMBEDDING_NAME_PARTS = ("embed_tokens", "embedding")


def is_embedding_name(name: str) -> bool:
    return any(part in name for part in EMBEDDING_NAME_PARTS)


def is_no_decay_name(name: str) -> bool:
    """Embeddings, and an SSM's log state matrix ``A_log`` (2-D in Mamba1, but a per-entry decay rate, not a linear
    map: mamba_ssm exempts it from weight decay too)."""
    return is_embedding_name(name) or name.endswith("A_log")


def decay_groups(named_params: Iterable[tuple[str, Tensor]], weight_decay: float) -> list[dict[str, Any]]:
    """Two param groups for AdamW: ``weight_decay`` on matrices, none on 1-D tensors (norm weights,
    biases), embeddings (names holding "embed_tokens" or "embedding") or ``A_log``. Frozen parameters and empty
    groups are left out."""
    decay, no_decay = [], []
    for name, p in named_params:
        if not isinstance(p, Tensor):
            raise TypeError(f"decay_groups: expected (name, Tensor) pairs, got {name!r}: {type(p).__name__}")
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or is_no_decay_name(name) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
