"""Models as transformers folders (``config.json`` + ``model.safetensors``), both ways, for every architecture.

``ARCHITECTURES`` is the one table: an entry per model family, each naming its transformers class and
``model_type`` and holding its converter (config to/from transformers' keys, weights to/from transformers'
names, and optionally the GGUF tensors). ``family_of(cfg)`` says which family a model config is; everything
else (pack, ``from_pretrained``, ``--init-from``, GGUF export) goes through the table, so a new architecture
is one entry and one converter module (see ``nn/arch_llama.py``, ``nn/arch_mamba.py``):

* Mamba1 / Mamba2: ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` (model types ``mamba`` / ``mamba2``,
  weights under ``backbone.*``); DeepSeek-V3 MLA + MoE: ``DeepseekV3ForCausalLM`` (``deepseek_v3``).
* Hybrids and Mamba3 have no transformers class: they use ``own_config_to_hf``/``own_config_from_hf``, a
  config.json of our own ``model_type`` that carries the ``model:`` section itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.numpy import save as st_save

from minigrad.io import CheckpointError, non_finite
from minigrad.io.safetensors_io import SafetensorsError, load_safetensors

from . import arch_deepseek, arch_llama, arch_mamba
from .config import ConfigError, ModelConfig, model_config
from .llama import CausalLM
from .module import Module, StateDictError

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


class PretrainedError(CheckpointError):
    """A model folder cannot be read or written as asked; the message names the folder, file or key."""


@dataclass(frozen=True)
class Architecture:
    family: str                      # ours: "llama", "mamba1", "mamba2", "deepseek_v3", "hybrid", "mamba3"
    hf_class: str                    # config.json "architectures"[0]
    model_type: str                  # config.json "model_type"
    build: Callable[..., Module]     # (ModelConfig, backend=...) -> our model
    config_to_hf: Callable[..., dict]                 # (cfg, bos_id, eos_id, dtype) -> config.json
    config_from_hf: Callable[[dict, str], dict]       # (config.json, where) -> our model: section
    weights_to_hf: Callable[[dict, ModelConfig], dict]
    weights_from_hf: Callable[[dict, ModelConfig], dict]
    in_transformers: bool = True     # False: our own model_type, which only nn.from_pretrained loads
    gguf_metadata: Callable | None = None             # (GGUFWriter, cfg); None: no GGUF export
    gguf_tensors: Callable | None = None              # (state, cfg) -> [(gguf name, array)]


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", arch_llama.HF_CLASS, arch_llama.MODEL_TYPE, CausalLM, arch_llama.config_to_hf,
                          arch_llama.config_from_hf, arch_llama.weights_to_hf, arch_llama.weights_from_hf,
                          gguf_metadata=arch_llama.gguf_metadata, gguf_tensors=arch_llama.gguf_tensors),
    "deepseek_v3": Architecture("deepseek_v3", arch_deepseek.HF_CLASS, arch_deepseek.MODEL_TYPE, CausalLM,
                                arch_deepseek.config_to_hf, arch_deepseek.config_from_hf, arch_deepseek.weights_to_hf,
                                arch_deepseek.weights_from_hf),
    "mamba1": Architecture("mamba1", *arch_mamba.MAMBA1, CausalLM, arch_mamba.mamba1_config_to_hf,
                           arch_mamba.config_from_hf, arch_mamba.weights_to_hf, arch_mamba.weights_from_hf),
    "mamba2": Architecture("mamba2", *arch_mamba.MAMBA2, CausalLM, arch_mamba.mamba2_config_to_hf,
                           arch_mamba.config_from_hf, arch_mamba.weights_to_hf, arch_mamba.weights_from_hf),
}

# What each family is called in messages, including those whose converter is not on this branch yet.
FAMILY_NAMES = {"llama": "Llama-style", "mamba1": "Mamba1 (MambaForCausalLM)", "mamba2": "Mamba2 (Mamba2ForCausalLM)",
                "mamba3": "Mamba3 (own model_type)", "hybrid": "Mamba/attention hybrid (own model_type)",
                "deepseek_v3": "MLA + MoE (DeepseekV3ForCausalLM)", "moe": "MoE or MLA (own model_type)"}


def family_of(cfg: ModelConfig) -> str:
    """Which family a model config describes: the one place that reads the architecture keys."""
    if cfg.mamba_layers:
        if len(set(cfg.mamba_layers)) < cfg.num_layers:
            return "hybrid"
        if cfg.mamba3_enabled:
            return "mamba3"
        return "mamba2" if any(getattr(cfg, k) for k in vars(cfg) if k.startswith("mamba2_")) else "mamba1"
    if cfg.kv_latent_dim or cfg.q_latent_dim or cfg.num_experts:
        return "deepseek_v3" if arch_deepseek.is_deepseek_v3(cfg) else "moe"
    return "llama"


def architecture_for(cfg: ModelConfig, where: str) -> Architecture:
    family = family_of(cfg)
    if family not in ARCHITECTURES:
        raise PretrainedError(f"{where}: is a {FAMILY_NAMES[family]} model, which has no converter on this branch "
                              f"yet (converters: {', '.join(FAMILY_NAMES[f] for f in ARCHITECTURES)})")
    return ARCHITECTURES[family]


def architecture_of_hf(hf: dict, where: str) -> Architecture:
    """The table entry for a config.json: by its class name, else by its model_type."""
    classes = hf.get("architectures") or []
    for arch in ARCHITECTURES.values():
        if arch.hf_class in classes or (not classes and arch.model_type == hf.get("model_type")):
            return arch
    supported = ", ".join(a.hf_class for a in ARCHITECTURES.values())
    raise PretrainedError(f"{where}: architecture {', '.join(classes) or hf.get('model_type')!r} is not one "
                          f"minigrad can load (supported: {supported})")


def own_config_to_hf(arch_name: str, model_type: str) -> Callable[..., dict]:
    """config_to_hf for a family transformers does not have: our own model_type, carrying the model section."""
    def to_hf(cfg: ModelConfig, bos_id: int | None, eos_id: int | None, dtype: str = "float32") -> dict:
        return {"architectures": [arch_name], "model_type": model_type, "minigrad_model": cfg.to_dict(),
                "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": dtype, "dtype": dtype}
    return to_hf


def own_config_from_hf(hf: dict, where: str) -> dict[str, Any]:
    section = hf.get("minigrad_model")
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: 'minigrad_model' (the model section) is missing or not an object")
    return section


for _family, _names in (("mamba3", arch_mamba.MAMBA3), ("hybrid", arch_mamba.HYBRID)):
    ARCHITECTURES[_family] = Architecture(_family, *_names, CausalLM, own_config_to_hf(*_names), own_config_from_hf,
                                          arch_mamba.weights_to_hf, arch_mamba.weights_from_hf, in_transformers=False)

# MoE with grouped-query attention or a softmax router (Mixtral-, DeepSeek-V2-like): our own model_type
ARCHITECTURES["moe"] = Architecture("moe", "MinigradMoEForCausalLM", "minigrad_moe", CausalLM,
                                    own_config_to_hf("MinigradMoEForCausalLM", "minigrad_moe"), own_config_from_hf,
                                    lambda state, cfg: dict(state), lambda weights, cfg: dict(weights),
                                    in_transformers=False)


def _dtype_name(state: dict[str, np.ndarray]) -> str:
    kinds = {a.dtype for a in state.values() if a.dtype.kind == "f"}
    return "float16" if kinds == {np.dtype(np.float16)} else "float32"


def save_pretrained(folder: str, state: dict[str, np.ndarray], cfg: ModelConfig, bos_id: int | None,
                    eos_id: int | None, generation: dict[str, Any] | None = None) -> Architecture:
    """Write model.safetensors, config.json and generation_config.json of a model into ``folder`` (which
    exists: pack writes into a temporary folder and renames it)."""
    arch = architecture_for(cfg, "the model")
    weights = {k: np.ascontiguousarray(v) for k, v in arch.weights_to_hf(state, cfg).items()}
    with open(os.path.join(folder, WEIGHTS), "wb") as f:
        f.write(st_save(weights, {"format": "pt"}))  # transformers refuses safetensors without format "pt"
    hf_config = arch.config_to_hf(cfg, bos_id, eos_id, _dtype_name(weights))
    write_json(os.path.join(folder, "config.json"), hf_config)
    gen = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id, **(generation or {})}
    write_json(os.path.join(folder, "generation_config.json"), gen)
    return arch


def write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise PretrainedError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PretrainedError(f"{path}: not readable JSON ({e})") from None


def read_config(folder: str) -> tuple[ModelConfig, Architecture]:
    """Our model config and the table entry for a transformers or packed folder's config.json."""
    if not os.path.isdir(folder):
        raise PretrainedError(f"{folder}: no such model folder")
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise PretrainedError(f"{folder}: holds no config.json, so it is not a transformers model folder")
    hf = read_json(path)
    if not isinstance(hf, dict):
        raise PretrainedError(f"{path}: expected a JSON object")
    arch = architecture_of_hf(hf, path)
    try:
        cfg = model_config(arch.config_from_hf(hf, path), path)
    except ConfigError as e:
        raise PretrainedError(str(e)) from None
    if family_of(cfg) != arch.family:
        raise PretrainedError(f"{path}: says {arch.hf_class} but describes a {FAMILY_NAMES[family_of(cfg)]} model")
    return cfg, arch


def _weight_files(folder: str) -> list[str]:
    single, index = os.path.join(folder, WEIGHTS), os.path.join(folder, WEIGHTS_INDEX)
    if os.path.isfile(single):
        return [single]
    if os.path.isfile(index):
        body = read_json(index)
        weight_map = body.get("weight_map") if isinstance(body, dict) else None
        if not isinstance(weight_map, dict):
            raise PretrainedError(f"{index}: has no 'weight_map' object")
        shards = sorted(set(weight_map.values()))
        bad = [s for s in shards if not isinstance(s, str) or os.path.basename(s) != s]
        if bad:
            raise PretrainedError(f"{index}: shard names must be files in the folder, got {bad[0]!r}")
        return [os.path.join(folder, s) for s in shards]
    if any(n.endswith((".bin", ".pt", ".pth")) for n in os.listdir(folder)):
        raise PretrainedError(f"{folder}: holds only pickle-based weights (.bin/.pt), which minigrad never loads; "
                              "convert them to model.safetensors")
    raise PretrainedError(f"{folder}: holds no {WEIGHTS}")


def read_weights(folder: str) -> dict[str, np.ndarray]:
    """Every tensor of a folder's safetensors file(s), floats as float32."""
    weights: dict[str, np.ndarray] = {}
    for path in _weight_files(folder):
        try:
            arrays, _ = load_safetensors(path)
        except FileNotFoundError:
            raise PretrainedError(f"{path}: no such file (named by {WEIGHTS_INDEX})") from None
        except (OSError, SafetensorsError) as e:
            raise PretrainedError(f"{path}: not a readable safetensors file ({e})") from None
        weights.update({k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()})
    return weights


def read_pretrained(folder: str) -> tuple[ModelConfig, Architecture, dict[str, np.ndarray]]:
    """(model config, table entry, weights under our names, checked finite) of a model folder."""
    cfg, arch = read_config(folder)
    state = arch.weights_from_hf(read_weights(folder), cfg)
    bad = non_finite(state)
    if bad:
        raise PretrainedError(f"{folder}: its weights are not finite ({', '.join(bad[:3])})")
    return cfg, arch, state


def load_weights(model: Module, state: dict[str, np.ndarray], folder: str) -> None:
    try:
        model.load_state_dict(state)
    except StateDictError as e:
        raise PretrainedError(f"{folder}: its weights do not fit its config.json: {e}") from None


def from_pretrained(folder: str, backend=None) -> Module:
    """A model from a packed folder or a transformers folder of a supported class (``LlamaForCausalLM``)."""
    cfg, arch, state = read_pretrained(folder)
    model = arch.build(cfg, backend=backend)
    load_weights(model, state, folder)
    return model
