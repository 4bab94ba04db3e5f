"""The MoE router (transformers' ``mlp.gate``): scores every expert for every token, picks each token's
top-k, and weighs them; also the load-balancing loss and DeepSeek-V3's bias update that keep experts
equally busy.

    scores  = softmax(x W^T)  or  sigmoid(x W^T)                 (N, E)
    experts = top-k of (scores + e_score_correction_bias)        (N, k), group-limited if asked
    weights = scores[experts] (/ their sum) * routed_scaling_factor

The bias only steers the choice, never the weights (DeepSeek-V3); the choice is not differentiable, the
weights are, so the language-model loss trains the router through them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import minigrad as mg
from minigrad import Tensor
from minigrad.backend import Backend

from .config import ModelConfig
from .layers import uniform_parameter
from .module import Module
from .ops import linear

NORM_EPS = 1e-20  # transformers' guard in the top-k renormalisation


@dataclass
class Routing:
    weights: Tensor   # (N, k) the chosen experts' weights (differentiable)
    experts: Any      # (N, k) int64 array: the chosen experts, best first
    probs: Tensor     # (N, E) each token's distribution over experts (sums to 1), for the balancing loss


class TopKRouter(Module):
    def __init__(self, cfg: ModelConfig, backend: Backend):
        super().__init__()
        self.num_experts, self.top_k, self.score = cfg.num_experts, cfg.experts_per_tok, cfg.router_score
        self.norm_topk_prob, self.scaling = cfg.norm_topk_prob, cfg.routed_scaling_factor
        self.n_group, self.topk_group = cfg.expert_groups
        self.bias_update_rate = cfg.bias_update_rate
        self.weight = uniform_parameter((cfg.num_experts, cfg.hidden_size), 1 / math.sqrt(cfg.hidden_size), backend)
        if cfg.uses_router_bias:  # a buffer: moved by update_bias, never by the optimizer
            self.register_buffer("e_score_correction_bias", mg.zeros(cfg.num_experts, backend=backend))
        else:
            self.e_score_correction_bias = None

    def forward(self, x: Tensor) -> Routing:
        """x (N, hidden) -> the routing of its N tokens."""
        logits = linear(x, self.weight)                                          # (N, E)
        scores = logits.sigmoid() if self.score == "sigmoid" else logits.softmax(axis=-1)
        bias = self.e_score_correction_bias
        choice = scores.data if bias is None else scores.data + bias.data        # steers the choice only
        # Group scores: DeepSeek-V3 (sigmoid) sums a group's two best, DeepSeek-V2 (softmax) takes its best.
        experts = x.backend.kernel("moe_topk")(choice, self.top_k, self.n_group, self.topk_group,
                                                "top2" if self.score == "sigmoid" else "max")
        weights = mg.gather(scores, 1, Tensor._from_array(experts, x.backend))  # (N, k)
        if self.norm_topk_prob:
            weights = weights / (weights.sum(axis=-1, keepdims=True) + NORM_EPS)
        if self.scaling != 1.0:
            weights = weights * self.scaling
        probs = scores if self.score == "softmax" else scores / scores.sum(axis=-1, keepdims=True)
        return Routing(weights, experts, probs)

    def update_bias(self, load) -> None:
        """DeepSeek-V3's auxiliary-loss-free balancing: after a step, each expert's bias moves by
        bias_update_rate toward balance: down if the expert took more than the mean load, up if less."""
        b = self.e_score_correction_bias
        xp = b.backend.xp
        load = load.astype(b.dtype)
        b.data = (b.data + self.bias_update_rate * xp.sign(load.mean() - load)).astype(b.dtype)

    def extra_repr(self) -> str:
        return (f"experts={self.num_experts}, top_k={self.top_k}, score={self.score}, "
                f"bias={self.e_score_correction_bias is not None}")


def load_balancing_loss(probs: Tensor, experts, num_experts: int) -> Tensor:
    """Switch Transformer's auxiliary loss, as Mixtral's: E * sum_e f_e * P_e, with f_e the fraction of
    the N tokens routed to expert e (each token counted once per chosen expert, so f sums to k) and
    P_e the mean router probability of e. It is k when the routing is uniform and grows as it
    concentrates; only P carries a gradient, and it pulls the router away from busy experts."""
    xp = probs.backend.xp
    n = probs.shape[0]
    fraction = xp.bincount(experts.reshape(-1), minlength=num_experts).astype(probs.dtype) / n   # (E,)
    return (probs.mean(axis=0) * Tensor._from_array(fraction, probs.backend)).sum() * float(num_experts)
