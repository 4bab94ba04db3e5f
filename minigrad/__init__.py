"""minigrad: a NumPy-first tensor library with reverse-mode autograd, for learning and
training language models.

    import minigrad as mg
    x = mg.randn(3, 4, requires_grad=True)
    y = (x.tanh() * 2).sum()
    y.backward()
    x.grad
"""
# ruff: noqa: E402 - the imports below must come after _process.apply()

from . import _process

# First, before anything here imports NumPy: the process-wide settings (see _process.py).
_process.apply()

import numpy as _np

from . import functional
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .backend import Backend, default_backend, get_backend, register_backend, set_default_backend
from .creation import arange, empty, eye, full, ones, ones_like, rand, randint, randn, tensor, zeros, zeros_like
from .functional import *  # noqa: F401,F403 - every op as a function
from .gradcheck import GradcheckError, gradcheck
from .random import Generator, default_generator, manual_seed
from .tensor import Tensor, matmul

float16 = _np.dtype("float16")
float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
int32 = _np.dtype("int32")
int64 = _np.dtype("int64")
bool_ = _np.dtype("bool")

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "Backend", "Generator", "GradcheckError", "tensor", "zeros", "ones",
    "full", "empty", "arange", "eye", "zeros_like", "ones_like", "randn", "rand", "randint",
    "no_grad", "enable_grad", "is_grad_enabled", "manual_seed", "default_generator", "gradcheck",
    "get_backend", "set_default_backend", "default_backend", "register_backend", "matmul", "functional",
    "float16", "float32", "float64", "int32", "int64", "bool_",
] + functional.__all__
from . import optim, viz  # noqa: F401
