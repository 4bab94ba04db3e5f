"""The basic layers: Linear, Embedding, RMSNorm and the SwiGLU MLP, initialised as PyTorch's are (a model's own init,
such as ``CausalLM.init_weights``, then replaces these with its scheme)."""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .module import Module, Parameter
from .ops import linear, rms_norm, swiglu_linear


def uniform_parameter(shape, bound: float, backend, dtype=mg.float32, generator=None) -> Parameter:
    """U(-bound, bound), drawn from ``generator`` (the default one when None)."""
    u = (generator or mg.default_generator()).random(shape, dtype)
    return Parameter(mg.tensor(((2 * u - 1) * bound).astype(dtype), backend=backend))


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features). Initialised as torch.nn.Linear:
    W and b uniform in +-1/sqrt(in_features), so the output's scale does not grow with the width."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 backend: str | Backend | None = None, dtype=mg.float32, generator: mg.Generator | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = uniform_parameter((out_features, in_features), bound, backend, dtype, generator)
        self.bias = uniform_parameter((out_features,), bound, backend, dtype, generator) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, dim) table; forward picks rows by integer ids. Initialised N(0, 1), as
    torch.nn.Embedding."""

    def __init__(self, num_embeddings: int, dim: int, backend: str | Backend | None = None, dtype=mg.float32,
                 generator: mg.Generator | None = None):
        super().__init__()
        self.num_embeddings, self.dim = num_embeddings, dim
        self.weight = Parameter(mg.randn(num_embeddings, dim, dtype=dtype, backend=backend, generator=generator))

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


class MLP(Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)), ``intermediate_size`` wide."""

    def __init__(self, hidden_size: int, intermediate_size: int, backend: str | Backend | None = None):
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, backend=backend)
        self.up_proj = Linear(hidden_size, intermediate_size, backend=backend)
        self.down_proj = Linear(intermediate_size, hidden_size, backend=backend)

    def forward(self, x: Tensor) -> Tensor:
        # silu(gate_proj(x)) * up_proj(x), with both projections as one product
        return self.down_proj(swiglu_linear(x, self.gate_proj.weight, self.up_proj.weight))
