"""A model from a training checkpoint directory (what ``train.py`` writes): rebuilt from the config in its
meta.json, weights loaded and checked. ``train.py sample`` uses it; so can a notebook."""

from __future__ import annotations

import os

from minigrad.backend import Backend
from minigrad.io import Checkpoint, CheckpointError, check_run_meta, load_checkpoint, non_finite

from .config import ConfigError, model_config
from .module import Module, StateDictError
from .pretrained import architecture_for  # the architecture table builds each family's model


def model_from_checkpoint(path: str, backend: str | Backend | None = None) -> tuple[Module, Checkpoint]:
    """(model, checkpoint) for checkpoint directory ``path``. Every problem (missing files, a malformed
    meta.json, non-finite weights, weights that do not fit the config) is a CheckpointError naming it."""
    ckpt = load_checkpoint(path)
    check_run_meta(ckpt.meta, ckpt.path, keys=("step", "config"))
    bad = non_finite(ckpt.model)
    if bad:
        raise CheckpointError(f"{ckpt.path}: its weights are not finite ({', '.join(bad[:3])}); use another "
                              "checkpoint")
    try:
        cfg = model_config(ckpt.meta["config"]["model"], os.path.join(ckpt.path, "meta.json"))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    model = architecture_for(cfg, ckpt.path).build(cfg, backend=backend)
    try:
        model.load_state_dict(ckpt.model)
    except StateDictError as e:
        raise CheckpointError(f"{ckpt.path}: does not fit its own config: {e}") from None
    return model, ckpt


def tokenizer_beside(path: str) -> str | None:
    """The tokenizer.json of a checkpoint: in its directory, or in the run directory above it."""
    for cand in (os.path.join(path, "tokenizer.json"), os.path.join(os.path.dirname(path), "tokenizer.json")):
        if os.path.isfile(cand):
            return cand
    return None
