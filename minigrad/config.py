"""Run configs: a YAML file with a ``model:`` and a ``trainer:`` section, keys as in Oxidizr.

``load_config(path, overrides)`` reads the file with ``yaml.safe_load``, applies command-line
overrides (``--set trainer.learning_rate=1e-3`` and the named flags), checks every key and value
and returns a :class:`Config`. Every problem raises one :class:`ConfigError` whose message names
the file and the key, so the CLI can print it and exit with status 2 before any work starts.

The schema below is the single list of accepted keys: each has a type, a default, and optional
bounds or choices. Oxidizr's keys for architectures that are not built yet (Mamba, MLA, MoE) are
accepted by the parser, so their configs load, and then refused as "not yet supported".
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config: the message names the file, the key and what is wrong."""


@dataclass(frozen=True)
class Key:
    """One config key: kind is 'int', 'float', 'bool', 'str', 'ints' (list of int) or 'floats'."""

    kind: str
    default: Any
    doc: str
    nullable: bool = False
    minimum: float | None = None  # inclusive
    choices: tuple | None = None
    length: int | None = None     # for lists of fixed length (betas)


MODEL_KEYS: dict[str, Key] = {
    "name": Key("str", None, "a name for the model (used in messages only)", nullable=True),
    "hidden_size": Key("int", 256, "width of the residual stream", minimum=1),
    "num_layers": Key("int", 4, "number of decoder blocks", minimum=1),
    "num_heads": Key("int", 4, "query heads per attention layer", minimum=1),
    "kv_heads": Key("int", None, "key/value heads (grouped-query attention); null = num_heads",
                    nullable=True, minimum=1),
    "intermediate_size": Key("int", None, "SwiGLU hidden width; null = 8/3 * hidden_size rounded to 32",
                             nullable=True, minimum=1),
    "vocab_size": Key("int", 4096, "number of token ids the model knows", minimum=1),
    "max_seq_len": Key("int", 256, "longest sequence the model is built for", minimum=1),
    "rope_theta": Key("float", 10000.0, "RoPE base frequency", minimum=1e-9),
    "rms_norm_eps": Key("float", 1e-5, "RMSNorm epsilon", minimum=0.0),
    "tie_word_embeddings": Key("bool", False, "share the embedding and lm_head weights"),
    # Oxidizr's keys for architectures still to come (accepted when null/empty/false).
    "kv_latent_dim": Key("int", None, "MLA: compressed key/value width", nullable=True),
    "q_latent_dim": Key("int", None, "MLA: compressed query width", nullable=True),
    "d_rope": Key("int", None, "MLA: decoupled RoPE width", nullable=True),
    "num_experts": Key("int", None, "MoE: experts per layer", nullable=True),
    "experts_per_tok": Key("int", None, "MoE: experts routed to per token", nullable=True),
    "shared_expert_enabled": Key("bool", None, "MoE: an always-on expert", nullable=True),
    "mamba_layers": Key("ints", [], "indices of layers that are Mamba blocks", nullable=True),
    "mamba2_num_heads": Key("int", None, "Mamba2: SSM heads", nullable=True),
    "mamba2_head_dim": Key("int", None, "Mamba2: head width", nullable=True),
    "mamba2_state_size": Key("int", None, "Mamba2: state size N", nullable=True),
    "mamba2_chunk_size": Key("int", None, "Mamba2: SSD chunk length", nullable=True),
    "mamba2_n_groups": Key("int", None, "Mamba2: B/C groups", nullable=True),
    "mamba2_conv_kernel": Key("int", None, "Mamba2: causal conv width", nullable=True),
    "mamba2_expand": Key("int", None, "Mamba2: inner width multiplier", nullable=True),
    "mamba3_enabled": Key("bool", None, "Mamba3 layers instead of Mamba2", nullable=True),
    "mamba3_complex_rope": Key("bool", None, "Mamba3: complex-valued RoPE", nullable=True),
    "mamba3_mimo_rank": Key("int", None, "Mamba3: MIMO rank (0 = SISO)", nullable=True),
    "mamba3_use_conv": Key("bool", None, "Mamba3: keep the short conv", nullable=True),
}

# Keys that switch on an architecture that is not built yet, and what it is called.
NOT_YET_SUPPORTED = {
    "mamba_layers": "Mamba layers", "mamba3_enabled": "Mamba-3",
    "kv_latent_dim": "MLA attention", "q_latent_dim": "MLA attention", "d_rope": "MLA attention",
    "num_experts": "Mixture-of-Experts", "experts_per_tok": "Mixture-of-Experts",
    "shared_expert_enabled": "Mixture-of-Experts",
}

TRAINER_KEYS: dict[str, Key] = {
    "target_device": Key("str", "cpu", "cpu or gpu (gpu falls back to cpu when there is none)",
                         choices=("cpu", "gpu")),
    "backend": Key("str", None, "array backend; null = numba on cpu, cupy on gpu", nullable=True,
                   choices=("numpy", "numba", "cupy")),
    "dtype": Key("str", "f32", "parameter and activation precision", choices=("f32", "f16", "bf16")),
    "seed": Key("int", 0, "seeds initialisation, data order and sampling"),
    "data": Key("str", None, "a .bin token file or a directory; null = the embedded corpus", nullable=True),
    "val_data": Key("str", None, "validation tokens; null = val.bin beside the data, or a held-out tail",
                    nullable=True),
    "seq_len": Key("int", None, "tokens per training window; null = model.max_seq_len", nullable=True,
                   minimum=1),
    "batch_size": Key("int", 8, "windows per micro-batch", minimum=1),
    "gradient_accumulation": Key("int", 1, "micro-batches summed into one optimizer step", minimum=1),
    "max_steps": Key("int", 0, "optimizer steps to run (0 = no limit)", minimum=0),
    "num_epochs": Key("int", 1, "passes over the training tokens (0 = no limit)", minimum=0),
    "optimizer": Key("str", "adamw", "adamw, lion or muon", choices=("adamw", "lion", "muon")),
    "learning_rate": Key("float", 3e-4, "peak learning rate", minimum=0.0),
    "min_lr": Key("float", None, "learning rate at the end of the decay; null = learning_rate / 10",
                  nullable=True, minimum=0.0),
    "lr_schedule": Key("str", "cosine", "cosine, wsd (warmup-stable-decay) or constant",
                       choices=("cosine", "wsd", "constant")),
    "warmup_steps": Key("int", 0, "steps of linear warmup from 0", minimum=0),
    "decay_fraction": Key("float", 0.2, "wsd: fraction of the steps spent decaying", minimum=0.0),
    "adamw_lr": Key("float", None, "muon: AdamW's lr for embeddings, lm_head and norms; null = learning_rate / 10",
                    nullable=True, minimum=0.0),
    "weight_decay": Key("float", 0.1, "decoupled weight decay (not on 1-D tensors or embeddings)",
                        minimum=0.0),
    "betas": Key("floats", [0.9, 0.95], "AdamW/Lion betas", length=2),
    "grad_clip": Key("float", 1.0, "clip the global gradient norm to this (0 = off)", minimum=0.0),
    "log_interval": Key("int", 10, "steps between log lines", minimum=1),
    "eval_interval": Key("int", 100, "steps between validation runs (0 = only at the end)", minimum=0),
    "eval_batches": Key("int", 20, "batches per validation run", minimum=1),
    "early_stopping_patience": Key("int", 0, "stop after this many evals without improvement (0 = off)",
                                   minimum=0),
    "checkpoint_dir": Key("str", "checkpoints", "the run directory (checkpoints and metrics.jsonl)"),
    "save_interval": Key("int", 500, "steps between checkpoints (0 = only best and final)", minimum=0),
    "max_checkpoints": Key("int", 10, "step checkpoints kept (best and final are kept besides)", minimum=1),
    "prefetch": Key("int", 0, "batches prepared ahead by a background thread", minimum=0),
    "fail_on_non_finite": Key("bool", False, "stop on a NaN/Inf loss or gradient instead of skipping"),
    "log_grad_norms": Key("bool", False, "write per-layer gradient norms to metrics.jsonl"),
    "sample_prompt": Key("str", "def ", "prompt of the sample printed at the end"),
    "sample_tokens": Key("int", 120, "tokens generated for that sample (0 = none)", minimum=0),
    # Oxidizr keys accepted for compatibility; they do nothing until MoE / GRPO exist.
    "load_balance_alpha": Key("float", 0.0, "MoE load-balancing loss weight", minimum=0.0),
    "group_size": Key("int", None, "GRPO rollouts per prompt (unused)", nullable=True),
    "beta_kl": Key("float", None, "GRPO KL weight (unused)", nullable=True),
}

SECTIONS = {"model": MODEL_KEYS, "trainer": TRAINER_KEYS}

_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class Config:
    """A checked config. ``model`` and ``trainer`` hold every key (defaults filled in)."""

    model: dict[str, Any]
    trainer: dict[str, Any]
    source: str = "<defaults>"
    origins: dict[str, str] = field(default_factory=dict)  # "trainer.lr" -> "--lr" for overridden keys

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"model": dict(self.model), "trainer": dict(self.trainer)}

    def model_args(self) -> dict[str, Any]:
        """The model section as nn.build_model takes it: the keys that are set."""
        return {k: v for k, v in self.model.items() if v is not None and v != []}

    @property
    def seq_len(self) -> int:
        return self.trainer["seq_len"] or self.model["max_seq_len"]

    def label(self, dotted: str) -> str:
        """'section.key', naming the flag if the value came from the command line."""
        origin = self.origins.get(dotted)
        return dotted + (f" (from {origin})" if origin else "")

    def where(self, dotted: str) -> str:
        """'FILE: section.key' for messages."""
        return f"{self.source}: {self.label(dotted)}"


def _suggest(word: str, options) -> str:
    near = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def coerce(label: str, key: Key, value: Any, source: str) -> Any:
    """Check ``value`` against ``key``'s type and bounds; return it in canonical form.
    Messages read 'SOURCE: LABEL must be ...'."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {label} must be {expected}, got {value!r}")

    if value is None:
        if key.nullable:
            return [] if key.kind == "ints" else None
        raise bad("set (it cannot be null)")
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif key.kind == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)  # PyYAML reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
    elif key.kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key.kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif key.kind in ("ints", "floats"):
        scalar = Key(key.kind[:-1], None, "")
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        value = [coerce(f"{label}[{i}]", scalar, v, source) for i, v in enumerate(value)]
        if key.length is not None and len(value) != key.length:
            raise bad(f"a list of {key.length} numbers")
    if key.minimum is not None and key.kind in ("int", "float") and value < key.minimum:
        raise ConfigError(f"{source}: {label} must be at least {key.minimum:g}, got {value!r}")
    if key.choices is not None and value not in key.choices:
        raise ConfigError(f"{source}: {label} must be one of {', '.join(key.choices)}, got {value!r}"
                          + _suggest(value, key.choices))
    return value


def resolve_key(name: str, where: str) -> tuple[str, str]:
    """'trainer.batch_size' or a bare 'batch_size' -> ('trainer', 'batch_size')."""
    if "." in name:
        section, key = name.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r} in {name!r}" + _suggest(section, SECTIONS))
        if key not in SECTIONS[section]:
            raise ConfigError(f"{where}: unknown key {name}" + _suggest(key, SECTIONS[section]))
        return section, key
    owners = [s for s, keys in SECTIONS.items() if name in keys]
    if not owners:
        every = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys]
        raise ConfigError(f"{where}: unknown key {name!r}" + _suggest(name, list(MODEL_KEYS) + list(TRAINER_KEYS)
                                                                      + every))
    return owners[0], name


def parse_set(item: str) -> tuple[str, Any]:
    """'key=value' from ``--set``; the value is read as YAML (so 3, 0.5, true, [1, 2] work)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value")
    name, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return name.strip(), value


def read_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'model:' and 'trainer:' sections")
    return raw


def load_config(path: str | None, overrides: list[tuple[str, Any, str]] = (), check_supported: bool = True
                ) -> Config:
    """Read, override and check a config. ``overrides``: (key, value, origin) with origin the flag
    that set it (for messages); keys may be dotted ('trainer.seed') or bare ('seed')."""
    source = path or "<defaults>"
    raw = read_yaml(path) if path else {}
    values: dict[str, dict[str, Any]] = {"model": {}, "trainer": {}}
    for section, body in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {section!r}" + _suggest(section, SECTIONS)
                              + " (a config has 'model:' and 'trainer:')")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of keys to values")
        for key, value in body.items():
            if key not in SECTIONS[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key}" + _suggest(key, SECTIONS[section]))
            values[section][key] = value
    origins = {}
    for name, value, origin in overrides:
        section, key = resolve_key(name, origin)
        values[section][key] = value
        origins[f"{section}.{key}"] = origin
    cfg = Config({}, {}, source, origins)
    for section, keys in SECTIONS.items():
        out = getattr(cfg, section)
        for key, spec in keys.items():
            value = values[section].get(key, spec.default)
            out[key] = coerce(cfg.label(f"{section}.{key}"), spec, value, source)
    check(cfg, check_supported)
    return cfg


def check(cfg: Config, check_supported: bool = True) -> None:
    """Checks that span keys: shapes that must divide, lengths that must fit, unsupported parts."""
    m, t = cfg.model, cfg.trainer
    if m["hidden_size"] % m["num_heads"]:
        raise ConfigError(f"{cfg.where('model.hidden_size')} = {m['hidden_size']} is not divisible by "
                          f"model.num_heads = {m['num_heads']}")
    if (m["hidden_size"] // m["num_heads"]) % 2:
        raise ConfigError(f"{cfg.where('model.num_heads')}: head size hidden_size / num_heads = "
                          f"{m['hidden_size'] // m['num_heads']} must be even for rotary embeddings")
    if m["kv_heads"] is not None and m["num_heads"] % m["kv_heads"]:
        raise ConfigError(f"{cfg.where('model.kv_heads')} = {m['kv_heads']} does not divide "
                          f"model.num_heads = {m['num_heads']}")
    if t["seq_len"] is not None and t["seq_len"] > m["max_seq_len"]:
        raise ConfigError(f"{cfg.where('trainer.seq_len')} = {t['seq_len']} is above "
                          f"model.max_seq_len = {m['max_seq_len']}")
    if t["min_lr"] is not None and t["min_lr"] > t["learning_rate"]:
        raise ConfigError(f"{cfg.where('trainer.min_lr')} = {t['min_lr']} is above "
                          f"trainer.learning_rate = {t['learning_rate']}")
    if t["max_steps"] == 0 and t["num_epochs"] == 0:
        raise ConfigError(f"{cfg.where('trainer.max_steps')}: trainer.max_steps and trainer.num_epochs are "
                          "both 0, so the run has no end; set one of them")
    if t["decay_fraction"] > 1:
        raise ConfigError(f"{cfg.where('trainer.decay_fraction')} = {t['decay_fraction']} must be at most 1")
    if not all(0.0 <= b < 1.0 for b in t["betas"]):
        raise ConfigError(f"{cfg.where('trainer.betas')} = {t['betas']} must each be in [0, 1)")
    if check_supported:
        check_supported_parts(cfg)


def check_supported_parts(cfg: Config) -> None:
    """Refuse, by key, what the config asks for that minigrad cannot do yet."""
    for key, what in NOT_YET_SUPPORTED.items():
        if cfg.model[key]:
            raise ConfigError(f"{cfg.where('model.' + key)} = {cfg.model[key]!r} asks for {what}, which is not "
                              "yet supported (only Llama-style models are built so far); remove the key or "
                              "set it to null")
    if cfg.trainer["dtype"] != "f32":
        raise ConfigError(f"{cfg.where('trainer.dtype')} = {cfg.trainer['dtype']!r} is not yet supported: "
                          "minigrad trains in f32 for now")


def check_vocab(cfg: Config, max_token: int, data_path: str) -> None:
    """The data's largest token id must be a row of the embedding."""
    if max_token >= cfg.model["vocab_size"]:
        raise ConfigError(f"{cfg.where('model.vocab_size')} = {cfg.model['vocab_size']} is too small for "
                          f"{data_path}, whose largest token id is {max_token} (needs vocab_size >= "
                          f"{max_token + 1})")


def describe() -> str:
    """Every key with its default and meaning (for --help-config)."""
    lines = []
    for section, keys in SECTIONS.items():
        lines.append(f"{section}:")
        for key, spec in keys.items():
            lines.append(f"  {key + ':':<24} {spec.default!r:<14} # {spec.doc}")
    return "\n".join(lines)
