"""The ``model:`` section of a config: its one schema, and the checked :class:`ModelConfig` models are built from.

Keys follow Oxidizr's configs (so their files load) plus a few of ours (``rms_norm_eps``,
``tie_word_embeddings``, ``mamba_dt_rank``, the MLA head widths and the MoE router's options). The
dataclass below *is* the schema: each field's type, default, meaning and bounds, read by
``model_config`` (which checks a dict) and by ``--help-config``.

MLA attention (``kv_latent_dim`` and friends) and Mixture-of-Experts MLPs (``num_experts`` and friends)
are built, with transformers' DeepseekV3 as the reference. Architectures that are not built yet (Mamba)
have their keys here so that Oxidizr's files parse; a config that switches one on is refused, naming
every such key at once. Keys that are accepted but would do nothing in the model described
(``mamba2_*`` with no ``mamba_layers``) get a warning.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from minigrad.config import ConfigError, Key, Problems, coerce, suggest

__all__ = ["ConfigError", "ModelConfig", "MODEL_KEYS", "model_config", "check_model", "config_differences"]


def key(default: Any, doc: str, minimum: float | None = None, choices: tuple | None = None):
    """A dataclass field that carries its schema entry (meaning and bounds) as metadata."""
    meta = {"doc": doc, "minimum": minimum, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    # ---- the Llama-style decoder
    hidden_size: int = key(256, "width of the residual stream", minimum=1)
    num_layers: int = key(4, "number of decoder blocks", minimum=1)
    num_heads: int = key(4, "query heads per attention layer", minimum=1)
    kv_heads: int | None = key(None, "key/value heads (grouped-query attention); null = num_heads", minimum=1)
    intermediate_size: int | None = key(None, "SwiGLU hidden width; null = 8/3 * hidden_size rounded to 32",
                                        minimum=1)
    vocab_size: int = key(4096, "number of token ids the model knows", minimum=1)
    max_seq_len: int = key(256, "longest sequence the model is built for", minimum=1)
    rope_theta: float = key(10000.0, "RoPE base frequency", minimum=1e-9)
    rms_norm_eps: float = key(1e-5, "RMSNorm epsilon", minimum=0.0)
    tie_word_embeddings: bool = key(False, "share the embedding and lm_head weights")
    name: str | None = key(None, "a name for the model (used in messages only)")
    # ---- MLA attention (DeepSeek's Multi-head Latent Attention; transformers' names in brackets)
    kv_latent_dim: int | None = key(None, "MLA: width of the compressed key/value latent, the only per-token "
                                    "state it caches besides d_rope [kv_lora_rank]; set it (with d_rope) to make "
                                    "the attention layers MLA", minimum=1)
    q_latent_dim: int | None = key(None, "MLA: width of the compressed query [q_lora_rank]; null or 0 = a plain "
                                   "q_proj", minimum=0)
    d_rope: int | None = key(None, "MLA: width of the decoupled rotary part of each query/key head "
                             "[qk_rope_head_dim]", minimum=2)
    mla_nope_head_dim: int | None = key(None, "MLA: width of the non-rotary part of each query/key head "
                                        "[qk_nope_head_dim]; null = hidden_size / num_heads", minimum=1)
    mla_v_head_dim: int | None = key(None, "MLA: width of each value head [v_head_dim]; null = hidden_size / "
                                     "num_heads", minimum=1)
    # ---- Mixture-of-Experts MLPs (DeepSeek-V3's fine-grained experts; transformers' names in brackets)
    num_experts: int | None = key(None, "MoE: routed experts per MoE layer, each a SwiGLU of intermediate_size "
                                  "[n_routed_experts]; set it to make the MLPs Mixture-of-Experts", minimum=1)
    experts_per_tok: int | None = key(None, "MoE: experts each token is routed to, the top-k "
                                      "[num_experts_per_tok]", minimum=1)
    shared_expert_enabled: bool | None = key(None, "MoE: always-on shared expert(s) beside the routed ones")
    num_shared_experts: int | None = key(None, "MoE: how many shared experts (one SwiGLU num_shared_experts * "
                                         "intermediate_size wide) [n_shared_experts]; null = 1 when "
                                         "shared_expert_enabled", minimum=1)
    first_dense_layers: int = key(0, "MoE: the first this many layers keep a dense MLP [first_k_dense_replace]",
                                  minimum=0)
    dense_intermediate_size: int | None = key(None, "MoE: width of those dense MLPs; null = intermediate_size",
                                              minimum=1)
    router_score: str = key("softmax", "MoE: router scores, softmax (Mixtral, DeepSeek-V2) or sigmoid "
                            "(DeepSeek-V3)", choices=("softmax", "sigmoid"))
    router_bias: bool | None = key(None, "MoE: DeepSeek-V3's score-correction bias, added to the scores only to "
                                   "choose experts [e_score_correction_bias]; null = on with moe_balance: "
                                   "bias_update")
    norm_topk_prob: bool = key(False, "MoE: rescale each token's top-k weights to sum to 1")
    routed_scaling_factor: float = key(1.0, "MoE: factor on the routed experts' weights", minimum=0.0)
    n_group: int | None = key(None, "MoE: group-limited routing: experts form this many groups; null = 1 (no "
                              "limit)", minimum=1)
    topk_group: int | None = key(None, "MoE: a token's experts come from its best topk_group groups; null = "
                                 "n_group", minimum=1)
    moe_balance: str = key("aux_loss", "MoE: how experts are kept busy alike: aux_loss (Switch/Mixtral loss, "
                           "weighted by trainer.load_balance_alpha), bias_update (DeepSeek-V3's auxiliary-loss-"
                           "free bias nudging) or none", choices=("aux_loss", "bias_update", "none"))
    bias_update_rate: float = key(0.001, "MoE: bias_update's step: each optimizer step moves an expert's bias by "
                                  "this toward balance", minimum=0.0)
    capacity_factor: float | None = key(None, "MoE: in training an expert takes at most capacity_factor * "
                                        "tokens * experts_per_tok / num_experts tokens, later ones are dropped "
                                        "(counted in metrics); null = no dropping", minimum=0.0)
    # ---- Mamba layers (not built yet): which layers, then each family's keys
    mamba_layers: list[int] = key([], "indices of layers that are Mamba blocks")
    mamba_d_state: int | None = key(None, "Mamba1: state size N")
    mamba_d_conv: int | None = key(None, "Mamba1: causal conv width")
    mamba_expand: int | None = key(None, "Mamba1: inner width multiplier")
    mamba_dt_rank: int | None = key(None, "Mamba1: rank of the dt projection; null = ceil(hidden_size / 16)")
    mamba2_num_heads: int | None = key(None, "Mamba2: SSM heads")
    mamba2_head_dim: int | None = key(None, "Mamba2: head width")
    mamba2_state_size: int | None = key(None, "Mamba2: state size N")
    mamba2_chunk_size: int | None = key(None, "Mamba2: SSD chunk length")
    mamba2_n_groups: int | None = key(None, "Mamba2: B/C groups")
    mamba2_conv_kernel: int | None = key(None, "Mamba2: causal conv width")
    mamba2_expand: int | None = key(None, "Mamba2: inner width multiplier")
    mamba3_enabled: bool | None = key(None, "Mamba3 layers instead of Mamba2")
    mamba3_complex_rope: bool | None = key(None, "Mamba3: complex-valued RoPE")
    mamba3_mimo_rank: int | None = key(None, "Mamba3: MIMO rank (0 = SISO)")
    mamba3_use_conv: bool | None = key(None, "Mamba3: keep the short conv")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.num_heads

    @property
    def ffn_size(self) -> int:
        """The SwiGLU width: of the dense MLPs, or of each expert in an MoE layer."""
        if self.intermediate_size:
            return self.intermediate_size
        return -(-(8 * self.hidden_size // 3) // 32) * 32

    # ---- MLA
    @property
    def uses_mla(self) -> bool:
        return bool(self.kv_latent_dim)

    @property
    def rope_dim(self) -> int:
        """Width the rotary tables are built for: MLA's decoupled part, else the whole head."""
        return self.d_rope if self.uses_mla else self.head_dim

    @property
    def q_lora_rank(self) -> int | None:
        return self.q_latent_dim or None

    @property
    def nope_head_dim(self) -> int:
        return self.mla_nope_head_dim or self.head_dim

    @property
    def v_head_dim(self) -> int:
        return self.mla_v_head_dim or self.head_dim

    # ---- MoE
    @property
    def uses_moe(self) -> bool:
        return bool(self.num_experts)

    def is_moe_layer(self, layer_idx: int) -> bool:
        return self.uses_moe and layer_idx >= self.first_dense_layers

    @property
    def dense_ffn_size(self) -> int:
        """Width of a dense MLP in a model with MoE layers (the first_dense_layers)."""
        return self.dense_intermediate_size or self.ffn_size

    @property
    def shared_experts(self) -> int:
        """Number of shared experts: 0 unless shared_expert_enabled (or num_shared_experts) asks for them."""
        if self.shared_expert_enabled is False:
            return 0
        return self.num_shared_experts or (1 if self.shared_expert_enabled else 0)

    @property
    def uses_router_bias(self) -> bool:
        return self.moe_balance == "bias_update" if self.router_bias is None else self.router_bias

    @property
    def expert_groups(self) -> tuple[int, int]:
        """(n_group, topk_group) with the nulls filled in."""
        n = self.n_group or 1
        return n, self.topk_group or n

    def to_dict(self) -> dict[str, Any]:
        """The keys that are set (what a config file would need to rebuild this model)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, [])}


_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list[int]": "ints"}


def _schema_key(f) -> Key:
    text = str(f.type)
    nullable = text.endswith(" | None")
    kind = _KINDS[text.removesuffix(" | None")]
    default = f.default if f.default is not MISSING else f.default_factory()
    return Key(kind, default, f.metadata["doc"], nullable=nullable or kind == "ints",
               minimum=f.metadata["minimum"], choices=f.metadata["choices"])


MODEL_KEYS: dict[str, Key] = {f.name: _schema_key(f) for f in fields(ModelConfig)}

# Keys that switch on an architecture that is not built yet, and what it is called.
NOT_YET_SUPPORTED = {"mamba_layers": "Mamba layers", "mamba3_enabled": "Mamba-3"}
# Families of keys, by prefix (disjoint: 'mamba_' is no prefix of 'mamba2_'): a typo inside one family is
# never pointed at another family's key.
_FAMILIES = ("mamba2_", "mamba3_", "mamba_")
MLA_KEYS = ("kv_latent_dim", "q_latent_dim", "d_rope", "mla_nope_head_dim", "mla_v_head_dim")
MOE_KEYS = ("experts_per_tok", "shared_expert_enabled", "num_shared_experts", "dense_intermediate_size",
            "router_bias", "n_group", "topk_group", "capacity_factor")


def _family(name: str) -> str:
    return next((p for p in _FAMILIES if name.startswith(p)), "")


def suggest_key(name: str) -> str:
    """'; did you mean ...?' for an unknown model key, never pointing at a key of another family."""
    own = _family(name)
    others = tuple(p for p in _FAMILIES if p != own) if own else ()
    return suggest(name, MODEL_KEYS, exclude_prefixes=others)


def check_model(cfg: ModelConfig, problems: Problems, label=lambda k: f"model.{k}",
                check_supported: bool = True) -> None:
    """Checks that span keys (shapes that must divide, unbuilt parts, inert keys), into ``problems``."""
    if cfg.hidden_size % cfg.num_heads:
        problems.error(f"{label('hidden_size')} = {cfg.hidden_size} is not divisible by "
                       f"model.num_heads = {cfg.num_heads}")
    elif cfg.head_dim % 2 and not cfg.uses_mla:
        problems.error(f"{label('num_heads')}: head size hidden_size / num_heads = {cfg.head_dim} "
                       "must be even for rotary embeddings")
    if cfg.kv_heads is not None and cfg.num_heads % cfg.kv_heads:
        problems.error(f"{label('kv_heads')} = {cfg.kv_heads} does not divide model.num_heads = {cfg.num_heads}")
    _check_mla(cfg, problems, label)
    if cfg.uses_moe:
        _check_moe(cfg, problems, label)
    _warn_inert_keys(cfg, problems, label)
    if check_supported:
        for k in [k for k in NOT_YET_SUPPORTED if getattr(cfg, k)]:
            problems.error(f"{label(k)} = {getattr(cfg, k)!r} asks for {NOT_YET_SUPPORTED[k]}, which is not yet "
                           "supported (Llama-style, MLA and MoE models are built so far); remove the key or set it "
                           "to null")


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


def _warn_inert_keys(cfg: ModelConfig, problems: Problems, label) -> None:
    """Keys that are set but do nothing in the model this config describes."""
    set_keys = [f.name for f in fields(cfg) if getattr(cfg, f.name) not in (None, [])]
    if not cfg.mamba_layers:
        inert = [k for k in set_keys if k.startswith(_FAMILIES) and k != "mamba_layers"]
        if inert:
            problems.warn(f"{', '.join(label(k) for k in inert)} set but model.mamba_layers is empty: "
                          "no layer uses them")
    if not cfg.mamba3_enabled:
        inert = [k for k in set_keys if k.startswith("mamba3_") and k != "mamba3_enabled"]
        if inert:
            problems.warn(f"{', '.join(label(k) for k in inert)} set but model.mamba3_enabled is not: "
                          "they do nothing")
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


def read_model_section(body: dict, problems: Problems, label=lambda k: f"model.{k}") -> ModelConfig | None:
    """A ModelConfig from a ``model:`` mapping, every problem recorded (None if any value is unusable)."""
    values: dict[str, Any] = {}
    ok = True
    for name, value in body.items():
        if name not in MODEL_KEYS:
            problems.error(f"unknown key {label(name)}" + suggest_key(str(name)))
            ok = False
            continue
        try:
            values[name] = coerce(label(name), MODEL_KEYS[name], value)
        except ConfigError as e:
            problems.error(str(e))
            ok = False
    if not ok:
        return None
    return ModelConfig(**{k: v for k, v in values.items() if v is not None or MODEL_KEYS[k].nullable})


def model_config(d: dict | ModelConfig, where: str = "config", check_supported: bool = True) -> ModelConfig:
    """Validate a ``model:`` dict and return a ModelConfig; every problem is in one ConfigError naming ``where``."""
    if isinstance(d, ModelConfig):
        return d
    problems = Problems(where)
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: the model section must be a mapping, got {type(d).__name__}")
    cfg = read_model_section(d, problems)
    if cfg is not None:
        check_model(cfg, problems, check_supported=check_supported)
    problems.raise_if_any()
    return cfg


def config_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """'model.KEY A vs B' for every key (but the name) where two model configs differ."""
    return [f"model.{f.name} {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}" for f in fields(a)
            if f.name != "name" and getattr(a, f.name) != getattr(b, f.name)]
