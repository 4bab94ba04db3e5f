"""The ``model:`` section of a config: its one schema, and the checked :class:`ModelConfig` models are built from.

Keys follow Oxidizr's configs (so their files load) plus a few of ours (``rms_norm_eps``,
``tie_word_embeddings``, ``mamba_dt_rank``, ``mamba3_trapezoidal``, ``mamba3_bc_norm``, the MLA head widths and the
MoE router's options). The dataclass below
*is* the schema: each field's type, default, meaning and bounds, read by ``model_config`` (which checks a dict)
and by ``--help-config``.

Layers listed in ``mamba_layers`` are Mamba blocks, of one family for the whole model: Mamba3 when
``mamba3_enabled``, else Mamba2 when any ``mamba2_*`` key is set, else Mamba1. The others are attention
blocks. A Mamba key left null takes the default named in its description (``mamba_defaults``).

The attention blocks' attention is MLA when ``kv_latent_dim`` is set, and their MLPs Mixture-of-Experts when
``num_experts`` is (after ``first_dense_layers``), with transformers' DeepseekV3 as the reference; those
keys and their cross-checks are ``nn/moe_config.py``'s. Keys that are accepted but would do nothing in the
model described (``mamba2_*`` with no ``mamba_layers``) get a warning.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from minigrad.config import ConfigError, Key, Problems, coerce, suggest

from . import mamba_config, moe_config
from .mamba_config import MambaDims

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
    # ---- Mamba layers: which layers, then each family's keys (null = the default in brackets)
    mamba_layers: list[int] = key([], "indices of layers that are Mamba blocks (all of them: a pure Mamba model)")
    mamba_d_state: int | None = key(None, "Mamba1: state size N [16]", minimum=1)
    mamba_d_conv: int | None = key(None, "Mamba1: causal conv width [4]", minimum=1)
    mamba_expand: int | None = key(None, "Mamba1: inner width = mamba_expand * hidden_size [2]", minimum=1)
    mamba_dt_rank: int | None = key(None, "Mamba1: rank of the dt projection [ceil(hidden_size / 16)]", minimum=1)
    mamba2_num_heads: int | None = key(None, "Mamba2: SSM heads [inner width / mamba2_head_dim]", minimum=1)
    mamba2_head_dim: int | None = key(None, "Mamba2: channels per head [64, or inner width / mamba2_num_heads]",
                                      minimum=1)
    mamba2_state_size: int | None = key(None, "Mamba2: state size N [64]", minimum=1)
    mamba2_chunk_size: int | None = key(None, "Mamba2: SSD chunk length (any sequence length works) [64]",
                                        minimum=1)
    mamba2_n_groups: int | None = key(None, "Mamba2: groups of heads sharing B and C [1]", minimum=1)
    mamba2_conv_kernel: int | None = key(None, "Mamba2: causal conv width [4]", minimum=1)
    mamba2_expand: int | None = key(None, "Mamba2: inner width = mamba2_expand * hidden_size [2]", minimum=1)
    mamba3_enabled: bool | None = key(None, "Mamba3 layers (on top of the mamba2_* keys) instead of Mamba2")
    mamba3_trapezoidal: bool | None = key(None, "Mamba3: exponential-trapezoidal discretization with a "
                                                "data-dependent lambda (off: Mamba2's Euler step) [true]")
    mamba3_complex_rope: bool | None = key(None, "Mamba3: complex state as a data-dependent rotation of B and C "
                                                 "[true]")
    mamba3_mimo_rank: int | None = key(None, "Mamba3: MIMO rank (0 = SISO) [0]", minimum=0)
    mamba3_use_conv: bool | None = key(None, "Mamba3: keep Mamba2's short causal conv [false]")
    mamba3_bc_norm: bool | None = key(None, "Mamba3: RMSNorm on B and C plus learned per-head biases [true]")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.num_heads

    @property
    def ffn_size(self) -> int:
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

    @property
    def mamba(self) -> MambaDims | None:
        """The Mamba layers' dimensions (defaults filled in), or None if there are no Mamba layers."""
        return mamba_config.resolve(self)

    def is_mamba_layer(self, i: int) -> bool:
        return i in self.mamba_layers

    @property
    def has_attention(self) -> bool:
        """Whether any layer is an attention block (a pure Mamba model has none)."""
        return len(set(self.mamba_layers)) < self.num_layers

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

# Families of keys, by prefix (disjoint: 'mamba_' is no prefix of 'mamba2_'): a typo inside one family is
# never pointed at another family's key.
_FAMILIES = ("mamba2_", "mamba3_", "mamba_")


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
    if cfg.has_attention:
        _check_attention(cfg, problems, label)
    mamba_config.check(cfg, problems, label)
    moe_config.check(cfg, problems, label)
    _warn_inert_keys(cfg, problems, label)


def _check_attention(cfg: ModelConfig, problems: Problems, label) -> None:
    if cfg.hidden_size % cfg.num_heads:
        problems.error(f"{label('hidden_size')} = {cfg.hidden_size} is not divisible by "
                       f"model.num_heads = {cfg.num_heads}")
    elif cfg.head_dim % 2 and not cfg.uses_mla:
        problems.error(f"{label('num_heads')}: head size hidden_size / num_heads = {cfg.head_dim} "
                       "must be even for rotary embeddings")
    if cfg.kv_heads is not None and cfg.num_heads % cfg.kv_heads:
        problems.error(f"{label('kv_heads')} = {cfg.kv_heads} does not divide model.num_heads = {cfg.num_heads}")


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
    moe_config.warn_inert_keys(cfg, set_keys, problems, label)


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
