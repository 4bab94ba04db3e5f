"""A fine-grained Mixture-of-Experts MLP (DeepSeek-V3's, with transformers' names): a router sends each
token to ``experts_per_tok`` of ``num_experts`` small SwiGLU experts, whose outputs are added back
weighted, plus the output of always-on shared experts.

    y = sum_j weights[j] * expert_{e_j}(x) + shared_experts(x)

The layer also keeps what training needs to balance the experts: the latest load-balancing loss
(``aux_loss``), and the tokens each expert took (for DeepSeek-V3's bias update after each step, and for
the metrics). ``load_state_dict`` hooks: per-expert weights (``experts.{e}.gate_proj.weight`` ...) are
accepted besides transformers' fused layout (``experts.gate_up_proj`` (E, 2I, H), ``experts.down_proj``).
"""

from __future__ import annotations

import math
import re

import numpy as np

from minigrad import Tensor
from minigrad.backend import Backend

from .config import ModelConfig
from .layers import MLP, uniform_parameter
from .module import Module
from .ops.moe import plan_dispatch, routed_experts
from .router import TopKRouter, load_balancing_loss


class Experts(Module):
    """The routed experts' weights, stacked as transformers stores them: gate_up_proj (E, 2I, H) holds
    each expert's gate rows then its up rows; down_proj (E, H, I)."""

    def __init__(self, num_experts: int, hidden: int, inner: int, backend: Backend):
        super().__init__()
        self.num_experts, self.inner = num_experts, inner
        self.gate_up_proj = uniform_parameter((num_experts, 2 * inner, hidden), 1 / math.sqrt(hidden), backend)
        self.down_proj = uniform_parameter((num_experts, hidden, inner), 1 / math.sqrt(inner), backend)

    def extra_repr(self) -> str:
        return f"experts={self.num_experts}, hidden={self.gate_up_proj.shape[2]}, intermediate={self.inner}"


class RoutingTally:
    """Tokens per expert and dropped slots, counted on the device from one reset to the next."""

    def __init__(self, num_experts: int, xp):
        self.xp, self.num_experts = xp, num_experts
        self.reset()

    def reset(self) -> None:
        self.load = self.xp.zeros(self.num_experts, dtype=np.int64)
        self.dropped, self.aux, self.forwards = 0, 0.0, 0

    def add(self, load, dropped: int, aux) -> None:
        self.load = self.load + load
        self.dropped += dropped
        self.aux, self.forwards = self.aux + aux, self.forwards + 1


class MoE(Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        self.layer_idx, self.num_experts, self.top_k = layer_idx, cfg.num_experts, cfg.experts_per_tok
        self.capacity_factor = cfg.capacity_factor
        self.gate = TopKRouter(cfg, backend)
        self.experts = Experts(cfg.num_experts, cfg.hidden_size, cfg.ffn_size, backend)
        if cfg.shared_experts:
            self.shared_experts = MLP(cfg.hidden_size, cfg.ffn_size * cfg.shared_experts, backend)
        self.aux_loss: Tensor | None = None  # the latest training forward's load-balancing loss
        self.since_step = RoutingTally(cfg.num_experts, backend.xp)    # read by the bias update
        self.since_report = RoutingTally(cfg.num_experts, backend.xp)  # read by the metrics

    def capacity(self, tokens: int) -> int:
        """Slots an expert may take in training (-1: no limit): capacity_factor times its even share."""
        if self.capacity_factor is None or not self.training:
            return -1
        return max(1, math.ceil(self.capacity_factor * tokens * self.top_k / self.num_experts))

    def forward(self, x: Tensor) -> Tensor:
        b, t, h = x.shape
        flat = x.reshape(b * t, h)                                               # (N, H)
        routing = self.gate(flat)
        plan = plan_dispatch(x.backend, routing.experts, self.num_experts, self.capacity(b * t))
        y = routed_experts(flat, routing.weights, self.experts.gate_up_proj, self.experts.down_proj, plan)
        if self.training:  # evaluation and generation leave the balancing state alone
            self.aux_loss = load_balancing_loss(routing.probs, routing.experts, self.num_experts)
            dropped = b * t * self.top_k - plan.kept
            for tally in (self.since_step, self.since_report):
                tally.add(plan.load, dropped, self.aux_loss.data)
        y = y.reshape(b, t, h)
        if "shared_experts" in self._modules:
            y = y + self.shared_experts(x)
        return y

    def update_bias(self, allreduce=None) -> None:
        """DeepSeek-V3's bias update from the load of the step just taken (see TopKRouter.update_bias).
        ``allreduce`` sums an array over the processes of a data-parallel job, so that all of them
        move their bias alike."""
        if self.since_step.forwards:
            load = self.since_step.load
            if allreduce is not None:
                load = allreduce(load.astype(np.float64))
            self.gate.update_bias(load)
        self.since_step.reset()

    def report(self, allreduce=None) -> dict:
        """Tokens per expert, dropped slots and the mean aux loss since the last report, on the host
        (summed over the processes by ``allreduce``, if given)."""
        t, xp = self.since_report, self.since_report.xp
        packed = xp.concatenate([t.load.astype(np.float64), xp.asarray([t.dropped, t.forwards], dtype=np.float64),
                                 xp.reshape(xp.asarray(t.aux, dtype=np.float64), (1,))])
        if allreduce is not None:
            packed = allreduce(packed)
        host = self.gate.weight.backend.to_numpy(packed)
        load, (dropped, forwards, aux) = [int(v) for v in host[:-3]], host[-3:]
        mean = sum(load) / len(load)
        t.reset()
        return {"expert_tokens": load, "dropped_tokens": int(dropped), "aux_loss": float(aux) / max(forwards, 1),
                "load_imbalance": max(load) / mean if mean else 1.0}

    def extra_repr(self) -> str:
        return f"layer={self.layer_idx}, capacity_factor={self.capacity_factor}"


_PER_EXPERT = re.compile(r"^(.*\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def fuse_per_expert_weights(state: dict) -> dict:
    """A state dict with per-expert weights (``...experts.{e}.gate_proj.weight`` (I, H), ``up_proj``,
    ``down_proj`` (H, I), as older transformers and DeepSeek's checkpoints store them) turned into the
    fused layout: ``...experts.gate_up_proj`` (E, 2I, H) and ``...experts.down_proj`` (E, H, I).
    Other keys pass through; an incomplete set of experts is left alone (load_state_dict names it)."""
    found: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for name, value in state.items():
        m = _PER_EXPERT.match(name)
        if m:
            found.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = value
    out = dict(state)
    for prefix, experts in found.items():
        complete = sorted(experts) == list(range(len(experts))) and all(len(p) == 3 for p in experts.values())
        if not complete:
            continue
        host = [{k: v.numpy() if isinstance(v, Tensor) else np.asarray(v) for k, v in experts[e].items()}
                for e in range(len(experts))]
        out[f"{prefix}.gate_up_proj"] = np.stack([np.concatenate([p["gate_proj"], p["up_proj"]]) for p in host])
        out[f"{prefix}.down_proj"] = np.stack([p["down_proj"] for p in host])
        for e in range(len(experts)):
            for part in ("gate_proj", "up_proj", "down_proj"):
                del out[f"{prefix}.{e}.{part}.weight"]
    return out
