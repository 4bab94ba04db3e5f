"""The MLA and Mixture-of-Experts keys' cross-checks (the keys themselves are fields of ``nn.config.ModelConfig``).

MLA is on when ``kv_latent_dim`` is set; it needs ``d_rope`` and replaces grouped-query heads. The MLPs are
MoE when ``num_experts`` is set; it needs ``experts_per_tok``, and the router's groups must fit. Each
problem is recorded in the ``Problems`` collector, naming its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minigrad.config import Problems

    from .config import ModelConfig

MLA_KEYS = ("kv_latent_dim", "q_latent_dim", "d_rope", "mla_nope_head_dim", "mla_v_head_dim")
MOE_KEYS = ("experts_per_tok", "shared_expert_enabled", "num_shared_experts", "dense_intermediate_size",
            "router_bias", "n_group", "topk_group", "capacity_factor")


def check(cfg: ModelConfig, problems: Problems, label) -> None:
    _check_mla(cfg, problems, label)
    if cfg.uses_moe:
        _check_moe(cfg, problems, label)


def _check_mla(cfg: ModelConfig, problems: Problems, label) -> None:
    """MLA is on when kv_latent_dim is set; it needs d_rope and replaces grouped-query heads."""
    if not cfg.uses_mla:
        for k in ("q_latent_dim", "d_rope"):
            if getattr(cfg, k):
                problems.error(f"{label(k)} = {getattr(cfg, k)} is an MLA key, but model.kv_latent_dim is not set: "
                               "set kv_latent_dim (and d_rope) for MLA attention, or remove it")
        return
    if not cfg.d_rope:
        problems.error(f"{label('kv_latent_dim')} = {cfg.kv_latent_dim} makes the attention MLA, which needs "
                       "model.d_rope (the width of each head's rotary part, e.g. 16)")
    elif cfg.d_rope % 2:
        problems.error(f"{label('d_rope')} = {cfg.d_rope} must be even (rotary dimensions come in pairs)")
    if cfg.kv_heads is not None:
        problems.error(f"{label('kv_heads')} = {cfg.kv_heads} asks for grouped-query attention, but "
                       "model.kv_latent_dim asks for MLA, whose heads all read one shared latent; set kv_heads to "
                       "null (as Oxidizr's MLA configs do) or remove the MLA keys")


def _check_moe(cfg: ModelConfig, problems: Problems, label) -> None:
    e, k = cfg.num_experts, cfg.experts_per_tok
    if k is None:
        problems.error(f"{label('num_experts')} = {e} makes the MLPs Mixture-of-Experts, which needs "
                       "model.experts_per_tok (how many experts each token uses, e.g. 2)")
        return
    if k > e:
        problems.error(f"{label('experts_per_tok')} = {k} is more than model.num_experts = {e}")
    elif k == 1:
        problems.warn(f"{label('experts_per_tok')} = 1: top-1 routing is prone to expert collapse (the router "
                      "sends everything to one expert); Oxidizr recommends experts_per_tok >= 2")
    if k == 1 and cfg.norm_topk_prob:
        problems.warn(f"{label('norm_topk_prob')} with experts_per_tok = 1: the one weight is always 1, so the "
                      "language-model loss never reaches the router (only the aux loss does)")
    groups, top_groups = cfg.expert_groups
    if e % groups:
        problems.error(f"{label('n_group')} = {groups} does not divide model.num_experts = {e}")
    elif top_groups > groups:
        problems.error(f"{label('topk_group')} = {top_groups} is more than model.n_group = {groups}")
    elif top_groups * (e // groups) < k:
        problems.error(f"{label('topk_group')} = {top_groups} groups of {e // groups} experts hold fewer than "
                       f"model.experts_per_tok = {k} experts")
    if cfg.moe_balance == "bias_update" and cfg.router_bias is False:
        problems.error(f"{label('moe_balance')} = 'bias_update' moves the router's score-correction bias, but "
                       "model.router_bias is false")
    if cfg.capacity_factor is not None and cfg.capacity_factor <= 0:
        problems.error(f"{label('capacity_factor')} must be above 0 (null = no dropping), got {cfg.capacity_factor}")
    if cfg.first_dense_layers >= cfg.num_layers:
        problems.warn(f"{label('first_dense_layers')} = {cfg.first_dense_layers}: every one of the "
                      f"{cfg.num_layers} layers is dense, so model.num_experts does nothing")


def warn_inert_keys(cfg: ModelConfig, set_keys: list[str], problems: Problems, label) -> None:
    """MoE and MLA keys that are set but do nothing in the model this config describes."""
    if not cfg.num_experts:
        inert = [k for k in MOE_KEYS if k in set_keys]
        if inert:
            problems.warn(f"{', '.join(label(k) for k in inert)} set but model.num_experts is not: "
                          "there are no experts")
    elif cfg.shared_expert_enabled is False and cfg.num_shared_experts:
        problems.warn(f"{label('num_shared_experts')} set but model.shared_expert_enabled is false: no shared expert")
    if not cfg.uses_mla:
        inert = [k for k in ("mla_nope_head_dim", "mla_v_head_dim") if k in set_keys]
        if inert:
            problems.warn(f"{', '.join(label(k) for k in inert)} set but model.kv_latent_dim is not: "
                          "the attention is not MLA")
