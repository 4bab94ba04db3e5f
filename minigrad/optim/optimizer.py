"""The Optimizer base class: parameter groups, per-parameter state, and checkpointable state.

Subclasses write ``_update(p, grad, state, group)`` for one parameter; the base class walks the
groups, skips parameters without a gradient and keeps the bookkeeping. State is keyed by the
parameter's *index* (its position across all groups, in order), so a checkpoint written by one
process loads into a fresh optimizer built the same way in another.

Checkpoints are two halves, so no pickle is ever needed:

* ``state_arrays()`` -> ``{"3.exp_avg": ndarray, ...}``: host (NumPy) copies of every state array,
  ready for ``safetensors.numpy.save_file``.
* ``state_meta()`` -> a JSON-safe dict: optimizer type, group hyperparameters, per-parameter scalars
  such as the step count.

``load_state(arrays, meta)`` takes them back; ``state_dict()`` / ``load_state_dict(sd)`` wrap the pair
as ``{"arrays": ..., "meta": ...}``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from ..tensor import Tensor

ParamsLike = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class. ``param_groups[i]`` is a dict with ``"params"`` (a list of Tensors) and that
    group's options (``"lr"``, ``"weight_decay"``, ...); ``param_groups[i]["lr"]`` may be written
    between steps (that is how LR schedules act). ``"initial_lr"`` records the lr a group started
    with, so a schedule can scale groups with different base rates."""

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # param index -> {"step": int, "exp_avg": array, ...}
        self._params: list[Tensor] = []
        self._index: dict[int, int] = {}  # id(param) -> param index
        # Mixed precision (minigrad/optim/amp.py) steps float32 master weights through these two: every
        # gradient is read as grad * grad_scale in the parameter's dtype (unscaling and clipping in one),
        # and each updated parameter's value is also written, rounded, into copies[param index] (the
        # float16 model). Plain training leaves them alone.
        self.grad_scale = 1.0
        self.copies: dict[int, Tensor] = {}
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, "
                            "got a single Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a param group must be a dict with a 'params' key, got {group!r}")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a param group; "
                             f"known: {sorted(self.defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                hint = " (for (name, Tensor) pairs use decay_groups(named_params, wd))" if isinstance(p, tuple) else ""
                raise TypeError(f"{type(self).__name__}: params must be Tensors, got {type(p).__name__}{hint}")
            if id(p) in self._index:
                raise ValueError(f"{type(self).__name__}: a parameter (shape {p.shape}) appears in more than "
                                 "one param group")
            self._index[id(p)] = len(self._params)
            self._params.append(p)
        full = {**self.defaults, **group, "params": params}
        full.setdefault("initial_lr", full["lr"])
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Subclasses validate hyperparameters here (one clear message per bad value)."""
        if not group["lr"] >= 0.0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {group['lr']}")

    # ---- stepping -----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``set_to_none=False`` zeroes it in place instead)."""
        for p in self._params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:  # a fresh array: the old one may alias another tensor's gradient
                p.grad = Tensor._from_array(p.backend.xp.zeros_like(p.grad.data), p.backend)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place (``p.data`` is modified)."""
        for group in self.param_groups:
            self._step_group(group)

    def _step_group(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad.data
            if grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: a gradient of shape {grad.shape} for a parameter "
                                 f"of shape {p.shape}")
            if grad.dtype != p.data.dtype:
                grad = grad.astype(p.data.dtype)
            if self.grad_scale != 1.0:
                grad = grad * self.grad_scale
            index = self._index[id(p)]
            self._update(p, grad, self.state.setdefault(index, {}), group)
            copy = self.copies.get(index)
            if copy is not None:
                copy.data[...] = p.data

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---- checkpoints --------------------------------------------------------------
    def state_arrays(self) -> dict[str, Any]:
        """Every state array as a host NumPy array, keyed ``"<param index>.<name>"``."""
        out = {}
        for i, st in sorted(self.state.items()):
            b = self._params[i].backend
            for name, v in st.items():
                if b.is_array(v):
                    out[f"{i}.{name}"] = b.to_numpy(v)
        return out

    def state_meta(self) -> dict[str, Any]:
        """The JSON-safe half: type, group options (params as indices), per-parameter scalars."""
        groups = []
        for g in self.param_groups:
            opts = {k: _json_safe(k, v) for k, v in g.items() if k != "params"}
            opts["params"] = [self._index[id(p)] for p in g["params"]]
            groups.append(opts)
        state = {}
        for i, st in sorted(self.state.items()):
            b = self._params[i].backend
            scalars = {k: _json_safe(k, v) for k, v in st.items() if not b.is_array(v)}
            state[str(i)] = scalars
        return {"type": type(self).__name__, "param_groups": groups, "state": state}

    def state_dict(self) -> dict[str, Any]:
        return {"arrays": self.state_arrays(), "meta": self.state_meta()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.load_state(state_dict["arrays"], state_dict["meta"])

    def load_state(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        """Restore from ``state_arrays()`` / ``state_meta()`` output (arrays may be NumPy)."""
        name = type(self).__name__
        if meta.get("type") != name:
            raise ValueError(f"{name}.load_state: the checkpoint holds a {meta.get('type')!r} optimizer's state")
        saved_groups = meta["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state: the checkpoint has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            ours = [self._index[id(p)] for p in group["params"]]
            if list(saved["params"]) != ours:
                raise ValueError(f"{name}.load_state: param group {gi} holds parameters {saved['params']} in the "
                                 f"checkpoint but {ours} here; build the optimizer the same way")
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        new_state: dict[int, dict[str, Any]] = {}
        for key, scalars in meta["state"].items():
            new_state[int(key)] = dict(scalars)
        for key, arr in arrays.items():
            idx_s, _, field = key.partition(".")
            if not idx_s.isdigit() or not field or int(idx_s) >= len(self._params):
                raise ValueError(f"{name}.load_state: unexpected state array key {key!r}")
            p = self._params[int(idx_s)]
            if tuple(arr.shape) != p.shape:
                raise ValueError(f"{name}.load_state: state array {key!r} has shape {tuple(arr.shape)}, "
                                 f"the parameter has shape {p.shape}")
            # a private copy on the parameter's backend, in its dtype (state is updated in place)
            new_state.setdefault(int(idx_s), {})[field] = p.backend.xp.array(p.backend.asarray(arr),
                                                                            dtype=p.data.dtype)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {opts}")
        return "\n".join(lines + [")"])


def _json_safe(key: str, v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"optimizer option {key!r} = {f} is not finite and cannot be saved as JSON")
        return f
    if isinstance(v, (tuple, list)):
        return [_json_safe(key, x) for x in v]
    raise TypeError(f"optimizer option {key!r} has a value of type {type(v).__name__} that JSON cannot hold")
