"""The Tensor: an array on a backend, plus what autograd needs to send gradients back."""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import autograd, ops
from .backend import Backend, default_backend, get_backend

_new_tensor = object.__new__


def _is_float(dtype) -> bool:
    """A floating-point dtype: NumPy's, or ml_dtypes' bfloat16 (whose dtype.kind is "V", not "f")."""
    dt = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    return dt.kind == "f" or dt.name == "bfloat16"


class Tensor:
    """An n-dimensional array with reverse-mode autograd.

    ``data`` is the backend array (a numpy.ndarray on CPU, a cupy.ndarray on GPU).
    """

    __slots__ = ("data", "backend", "requires_grad", "grad", "_ctx", "_out_index", "_hooks",
                 "_retains_grad", "_grad_owned", "_post_hooks", "__weakref__")
    __array_priority__ = 1000  # so ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 backend: str | Backend | None = None):
        if isinstance(data, Tensor):
            data = data.data
        b = get_backend(backend) if backend is not None else default_backend()
        arr = _to_backend_array(data, b, dtype)
        self._init(arr, b, requires_grad)
        if requires_grad and not _is_float(arr.dtype):
            raise TypeError(f"only floating-point tensors can require grad, got dtype {arr.dtype}")

    def _init(self, arr, backend, requires_grad):
        self.data = arr
        self.backend = backend
        self.requires_grad = requires_grad
        self.grad = None
        self._ctx = None
        self._out_index = 0
        self._hooks = None
        self._retains_grad = False
        self._grad_owned = False
        self._post_hooks = None

    @staticmethod
    def _from_array(arr, backend: Backend, requires_grad: bool = False) -> Tensor:
        t = _new_tensor(Tensor)
        t._init(arr, backend, requires_grad)  # (Function.apply, every op's output, writes this body out)
        return t

    # ---- attributes ------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))
    device = property(lambda self: self.backend.device)
    is_leaf = property(lambda self: self._ctx is None)

    @property
    def grad_fn(self):
        return self._ctx

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = f", dtype={self.dtype}" if self.dtype != np.float32 else ""
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.backend.name != "numpy":
            extra += f", backend={self.backend.name!r}"
        return f"tensor({body}{extra})"

    # ---- conversion ------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        return self.backend.to_numpy(self.data)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"item(): only a one-element tensor has an item, this one has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, backend: str | Backend) -> Tensor:
        """The same values on another backend or device (``"cuda"``, ``"cpu"``; see ``get_backend``).
        A leaf copy keeps requires_grad; between devices the values go through host memory."""
        b = get_backend(backend)
        if b is self.backend:
            return self
        if b.xp is self.backend.xp:
            arr = self.data
        else:
            arr = b.asarray(self.backend.to_numpy(self.data))
        return Tensor._from_array(arr, b, self.requires_grad)

    def cuda(self) -> Tensor:
        """This tensor on the GPU (the "cupy" backend)."""
        return self.to("cuda")

    def cpu(self) -> Tensor:
        """This tensor on the CPU (the default backend if it is a CPU one, else "numpy")."""
        return self if self.backend.device == "cpu" else self.to("cpu")

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # ---- autograd --------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that needs one."""
        autograd.backward(self, grad, retain_graph)

    def detach(self) -> Tensor:
        return Tensor._from_array(self.data, self.backend, False)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if not self.is_leaf:
            raise RuntimeError("requires_grad_(): only a leaf tensor's flag can be changed")
        if flag and not _is_float(self.dtype):
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves keep theirs anyway)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): this tensor does not require grad")
        self._retains_grad = True
        self._watch_in_graph()
        return self

    def _watch_in_graph(self) -> None:
        """Let backward find this non-leaf output (for its hooks or retained grad): a single-output Function
        holds no reference to its output until one is needed (autograd.Function)."""
        fn = self._ctx
        if fn is not None and not fn.outputs:
            fn.outputs = (weakref.ref(self),)

    def register_hook(self, fn: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``fn(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it.
        Returns a function that removes the hook."""
        if not self.requires_grad:
            raise RuntimeError("register_hook(): this tensor does not require grad")
        if self._hooks is None:
            self._hooks = []
            self._watch_in_graph()
        self._hooks.append(fn)
        return lambda: self._hooks.remove(fn)

    def register_post_accumulate_grad_hook(self, fn: Callable[[Tensor], None]) -> Callable[[], None]:
        """Call ``fn(self)`` during backward as soon as this leaf's ``.grad`` holds its whole gradient of
        the pass (data-parallel training starts each gradient's all-reduce then, overlapping the rest of
        backward). Returns a function that removes the hook."""
        if self._ctx is not None or not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook(): only a leaf that requires grad has one")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(fn)
        autograd._POST_HOOKS[0] += 1

        def remove() -> None:
            self._post_hooks.remove(fn)
            autograd._POST_HOOKS[0] -= 1
        return remove

    def _run_post_hooks(self) -> None:
        for h in list(self._post_hooks):
            h(self)

    def _apply_hooks(self, g):
        for h in self._hooks or ():
            r = h(Tensor._from_array(g, self.backend))
            if r is not None:
                g = r.data if isinstance(r, Tensor) else r
        return g

    def _accumulate_grad(self, g) -> None:
        if self.grad is None:
            self.grad = Tensor._from_array(g, self.backend)
            self._grad_owned = False
        elif self._grad_owned:
            self.grad.data += g
        else:  # the first gradient may alias another array: add out of place once
            self.grad = Tensor._from_array(self.grad.data + g, self.backend)
            self._grad_owned = True

    def zero_grad(self) -> None:
        self.grad = None

    # ---- operand handling ------------------------------------------------------
    def _operand(self, other: Any) -> Tensor:
        """Turn a Python/NumPy scalar into a 0-d tensor of *our* dtype (a weak scalar), so
        ``x * 0.5`` stays float32; an int tensor with a float scalar becomes float32."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (numbers.Number, np.generic)) or (
                isinstance(other, np.ndarray) and other.ndim == 0):
            dt = self.dtype
            if isinstance(other, (float, np.floating)) and not _is_float(dt):
                dt = np.float32
            elif isinstance(other, bool) and dt == np.bool_:
                dt = np.bool_
            return Tensor._from_array(self.backend.xp.asarray(other, dtype=dt), self.backend)
        return Tensor(other, backend=self.backend)

    # ---- arithmetic ------------------------------------------------------------
    def _binary(self, o, fn, reverse=False):
        if type(o) is Tensor and o.data.dtype == self.data.dtype:  # the common case, kept short
            return fn.apply(o, self) if reverse else fn.apply(self, o)
        o = self._operand(o)
        a, b = (o, self) if reverse else (self, o)
        if a.dtype != b.dtype:  # an int tensor meeting a float one takes the float's dtype
            fa, fb = _is_float(a.dtype), _is_float(b.dtype)
            if fa and not fb:
                b = b.astype(a.dtype)
            elif fb and not fa:
                a = a.astype(b.dtype)
        return fn.apply(a, b)

    def __add__(self, o):
        return self._binary(o, ops.elementwise.Add)

    def __radd__(self, o):
        return self._binary(o, ops.elementwise.Add, True)

    def __sub__(self, o):
        return self._binary(o, ops.elementwise.Sub)

    def __rsub__(self, o):
        return self._binary(o, ops.elementwise.Sub, True)

    def __mul__(self, o):
        return self._binary(o, ops.elementwise.Mul)

    def __rmul__(self, o):
        return self._binary(o, ops.elementwise.Mul, True)

    def __truediv__(self, o):
        if not _is_float(self.dtype) and not (isinstance(o, Tensor) and _is_float(o.dtype)):
            return self.astype(np.float32)._binary(o, ops.elementwise.Div)  # true division of ints is float
        return self._binary(o, ops.elementwise.Div)

    def __rtruediv__(self, o):
        if not _is_float(self.dtype):
            return self.astype(np.float32)._binary(o, ops.elementwise.Div, True)
        return self._binary(o, ops.elementwise.Div, True)

    def __neg__(self):
        return ops.elementwise.Neg.apply(self)

    def __pow__(self, p):
        if isinstance(p, Tensor):
            return self._binary(p, ops.elementwise.Pow)
        if isinstance(p, np.ndarray) and p.ndim:
            return self._binary(p, ops.elementwise.Pow)
        if isinstance(p, (np.generic, np.ndarray)):  # a NumPy scalar is weak like a Python one: no upcast
            p = p.item()
        if isinstance(p, float) and not _is_float(self.dtype):
            return self.astype(np.float32) ** p  # int ** float is float32, as in torch
        return ops.elementwise.PowScalar.apply(self, p=p)

    def __rpow__(self, base):
        return self._binary(base, ops.elementwise.Pow, True)

    def __matmul__(self, o):
        return matmul(self, o)

    def __rmatmul__(self, o):
        return matmul(self._operand(o), self)

    # Comparisons give bool tensors and record no graph.
    def _compare(self, o, op):
        o = o.data if isinstance(o, Tensor) else o
        return Tensor._from_array(op(self.data, o), self.backend)

    def __lt__(self, o):
        return self._compare(o, lambda a, b: a < b)

    def __le__(self, o):
        return self._compare(o, lambda a, b: a <= b)

    def __gt__(self, o):
        return self._compare(o, lambda a, b: a > b)

    def __ge__(self, o):
        return self._compare(o, lambda a, b: a >= b)

    def __eq__(self, o):  # noqa: D105 - elementwise, like torch
        return self._compare(o, lambda a, b: a == b)

    def __ne__(self, o):
        return self._compare(o, lambda a, b: a != b)

    def __invert__(self):
        return Tensor._from_array(~self.data, self.backend)

    def __and__(self, o):
        return self._compare(o, lambda a, b: a & b)

    def __or__(self, o):
        return self._compare(o, lambda a, b: a | b)

    __hash__ = object.__hash__

    # ---- indexing --------------------------------------------------------------
    def __getitem__(self, key):
        if type(key) is not slice and type(key) is not int:  # a slice or an int needs no conversion
            key = _index_key(key, self.backend)
        return ops.index.GetItem.apply(self, key=key)

    def __setitem__(self, key, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("in-place assignment into a tensor that requires grad would break "
                               "autograd; use where()/masked_fill(), or do it under no_grad()")
        self.data[_index_key(key, self.backend)] = value.data if isinstance(value, Tensor) else value

    # ---- the transpose and dtype shortcuts (the other methods: FUNCTIONAL_METHODS below) ----
    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def half(self) -> Tensor:
        return self.astype(np.float16)

    def long(self) -> Tensor:
        return self.astype(np.int64)

    def int(self) -> Tensor:
        return self.astype(np.int32)


# Tensor's other methods: x.exp() is minigrad.functional.exp(x), and so on for each name here.
# Each is defined once, in functional.py beside its argument checks, and functional.py sets them
# on Tensor when it loads (it imports this module, so this module cannot import it).
FUNCTIONAL_METHODS = (
    # elementwise
    "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu", "silu", "gelu", "maximum", "minimum",
    "clip", "clamp", "masked_fill", "astype",
    # reductions
    "sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin",
    # shape
    "reshape", "view", "permute", "transpose", "swapaxes", "broadcast_to", "expand", "squeeze", "unsqueeze",
    "flatten", "contiguous", "split", "chunk", "tril", "triu",
    # indexing
    "gather", "index_select", "scatter_add",
    # networks
    "softmax", "log_softmax", "matmul",
)


def _index_key(key, backend):
    """Tensors inside an index become backend arrays; lists become index arrays."""
    def conv(k):
        if isinstance(k, Tensor):
            return k.data
        if isinstance(k, list):
            return backend.asarray(np.asarray(k))
        if isinstance(k, np.ndarray) and backend.xp is not np:
            return backend.asarray(k)
        return k
    if isinstance(key, tuple):
        return tuple(conv(k) for k in key)
    return conv(key)


def _to_backend_array(data, backend: Backend, dtype):
    if backend.is_array(data):
        arr = data
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
            data = [x.numpy() if isinstance(x, Tensor) else x for x in data]
        host = np.asarray(data)
        if dtype is None:  # like torch: Python floats default to float32
            if host.dtype == np.float64 and not isinstance(data, np.ndarray):
                host = host.astype(np.float32)
            elif host.dtype.kind == "i" and not isinstance(data, np.ndarray):
                host = host.astype(np.int64)
        arr = backend.asarray(host)
    if dtype is not None:
        arr = arr.astype(np.dtype(dtype), copy=False)
    return arr


def matmul(a: Tensor, b: Tensor) -> Tensor:
    if not isinstance(b, Tensor):
        b = a._operand(b)
    sa, sb = a.data.shape, b.data.shape
    if not sa or not sb:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = sa[-1]
    kb = sb[-2] if len(sb) >= 2 else sb[0]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up "
                         f"(a's last dim {ka} != b's {'second-to-last' if b.ndim >= 2 else 'only'} dim {kb})")
    return ops.matmul.MatMul.apply(a, b)


__all__ = ["Tensor", "matmul", "FUNCTIONAL_METHODS"]
