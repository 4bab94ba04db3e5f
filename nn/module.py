"""Module and Parameter: the containers layers and models are built from (PyTorch's names)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from minigrad import Tensor
from minigrad.backend import Backend, get_backend


class Parameter(Tensor):
    """A Tensor that a Module owns as a trainable weight (requires_grad is on)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, backend: str | Backend | None = None):
        if isinstance(data, Tensor):
            backend = backend or data.backend
            data = data.data
        super().__init__(data, backend=backend)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(KeyError):
    """load_state_dict found missing, unexpected or mis-shaped keys (all named in the message)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Module:
    """Base class: assigning a Parameter or a Module as an attribute registers it."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for d in (self._parameters, self._modules, self._buffers):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True) -> None:
        """A tensor that moves with the module but is not trained. As in PyTorch, a persistent buffer
        is part of ``state_dict``; tables recomputed from the config (RoPE) pass ``persistent=False``."""
        self._buffers[name] = (value, persistent)
        object.__setattr__(self, name, value)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ---------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()]
            stack.extend(reversed(children))

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Each parameter once (a tied weight under its first name)."""
        seen: set[int] = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def named_buffers(self) -> Iterator[tuple[str, Tensor, bool]]:
        for mname, m in self.named_modules():
            for bname, (b, persistent) in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b, persistent

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in self.modules():
            fn(m)
        return self

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, backend: str | Backend | None = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer to ``backend`` (a backend or device name: ``"cuda"``, ``"cpu"``)
        and/or cast the floating-point ones to ``dtype``, in place; returns self. Gradients are dropped."""
        b = get_backend(backend) if backend is not None else None
        dt = np.dtype(dtype) if dtype is not None else None

        def moved(t: Tensor) -> Tensor:
            t = t.to(b) if b is not None else t
            if dt is not None and (t.dtype.kind == "f" or t.dtype.name == "bfloat16") and t.dtype != dt:
                t = Tensor._from_array(t.data.astype(dt), t.backend, t.requires_grad)
            return t
        for p in self.parameters():
            m = moved(p)
            p.data, p.backend, p.grad = m.data, m.backend, None
        for m in self.modules():
            for name, (buf, persistent) in list(m._buffers.items()):
                if buf is not None:
                    m.register_buffer(name, moved(buf), persistent)
        return self

    def cuda(self) -> Module:
        return self.to("cuda")

    def cpu(self) -> Module:
        return self.to("cpu")

    # ---- state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter (and persistent buffer) as a host NumPy array, by dotted name."""
        out = {name: p.numpy() for name, p in self.named_parameters()}
        out.update({name: b.numpy() for name, b, persistent in self.named_buffers() if persistent})
        return out

    def _ignored_state_keys(self) -> set[str]:
        """Keys a checkpoint may carry that this model deliberately does not load."""
        return set()

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters (and persistent buffers). With ``strict``, missing, unexpected
        and shape-mismatched keys are all reported in one error."""
        params = dict(self.named_parameters())
        params.update({name: b for name, b, persistent in self.named_buffers() if persistent})
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params and k not in self._ignored_state_keys()]
        bad_shape = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {params[k].shape}"
                     for k in params if k in state and tuple(np.shape(state[k])) != params[k].shape]
        if bad_shape or (strict and (missing or unexpected)):
            lines = []
            if missing:
                lines.append("missing keys: " + ", ".join(missing))
            if unexpected:
                lines.append("unexpected keys: " + ", ".join(unexpected))
            if bad_shape:
                lines.append("shape mismatch: " + "; ".join(bad_shape))
            raise StateDictError(f"load_state_dict into {type(self).__name__} failed:\n  " + "\n  ".join(lines))
        for k, p in params.items():
            if k in state:
                v = state[k]
                host = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                p.data = p.backend.asarray(host.astype(p.dtype, copy=False))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([f"  {extra}"] if extra else []) + children
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered as children "0", "1", ..."""

    def __init__(self, modules: list[Module] | None = None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, m: Module) -> None:
        setattr(self, str(len(self._modules)), m)

    def __getitem__(self, i: int) -> Module:
        return self._modules[str(i % len(self._modules))]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
