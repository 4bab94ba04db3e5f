"""The basic layers: Linear, Embedding, RMSNorm. Weights are created by the model's init."""

from __future__ import annotations

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .module import Module, Parameter
from .ops import linear, rms_norm


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 backend: str | Backend | None = None, dtype=mg.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(mg.zeros(out_features, in_features, dtype=dtype, backend=backend))
        self.bias = Parameter(mg.zeros(out_features, dtype=dtype, backend=backend)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, dim) table; forward picks rows by integer ids."""

    def __init__(self, num_embeddings: int, dim: int, backend: str | Backend | None = None, dtype=mg.float32):
        super().__init__()
        self.num_embeddings, self.dim = num_embeddings, dim
        self.weight = Parameter(mg.zeros(num_embeddings, dim, dtype=dtype, backend=backend))

    def forward(self, ids: Tensor) -> Tensor:
        return mg.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}"


class RMSNorm(Module):
    def __init__(self, dim: int, eps: float = 1e-5, backend: str | Backend | None = None, dtype=mg.float32):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(mg.ones(dim, dtype=dtype, backend=backend))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
