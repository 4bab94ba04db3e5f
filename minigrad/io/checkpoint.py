"""Checkpoint directories: ``model.safetensors``, ``optimizer.safetensors`` and ``meta.json``.

A run directory holds one checkpoint per saved step (``step-00000500/``) plus ``best/`` (lowest
validation loss so far) and ``final/``. Each is written under a hidden temporary name, every
file is fsync'ed, and only then is the directory renamed into place; a process killed halfway
leaves a ``.tmp-*`` directory that nothing reads (and the next save sweeps away), never a
half-written checkpoint that ``--resume auto`` could pick. Arrays go in safetensors, everything
else (config, step, RNG states, data cursor, metrics) in JSON: no pickle anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

FILES = ("model.safetensors", "optimizer.safetensors", "meta.json")
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names the path."""


@dataclass
class Checkpoint:
    path: str
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    meta: dict[str, Any]


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open a directory; the rename is still atomic enough
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _contiguous(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def save_checkpoint(run_dir: str, name: str, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    meta: dict[str, Any]) -> str:
    """Write checkpoint ``run_dir/name`` atomically and return its path. An existing checkpoint of
    that name (``best``, ``final``) is replaced only once the new one is complete."""
    os.makedirs(run_dir, exist_ok=True)
    final = os.path.join(run_dir, name)
    tmp = os.path.join(run_dir, f".tmp-{name}-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    _write_file(os.path.join(tmp, "model.safetensors"), st_save(_contiguous(model), {"format": "np"}))
    _write_file(os.path.join(tmp, "optimizer.safetensors"), st_save(_contiguous(optimizer), {"format": "np"}))
    _write_file(os.path.join(tmp, "meta.json"), json.dumps(meta, indent=1).encode())  # last: marks complete
    _fsync_dir(tmp)
    if os.path.exists(final):  # move the old one aside first; rename cannot replace a non-empty directory
        old = os.path.join(run_dir, f".old-{name}-{os.getpid()}")
        if os.path.exists(old):
            shutil.rmtree(old)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(run_dir)
    return final


def is_complete(path: str) -> bool:
    return os.path.isdir(path) and all(os.path.isfile(os.path.join(path, f)) for f in FILES)


def load_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint directory (a path to one of its files means its directory)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not is_complete(str(p)):
        missing = [f for f in FILES if not (p / f).is_file()]
        raise CheckpointError(f"{p}: not a complete checkpoint (missing {', '.join(missing)})")
    try:
        meta = json.loads((p / "meta.json").read_text())
        model = st_load((p / "model.safetensors").read_bytes())
        optimizer = st_load((p / "optimizer.safetensors").read_bytes())
    except Exception as e:  # safetensors raises its own error types; report them uniformly
        raise CheckpointError(f"{p}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    return Checkpoint(str(p), model, optimizer, meta)


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """(step, path) of the complete step-* checkpoints in ``run_dir``, oldest first."""
    if not os.path.isdir(run_dir):
        return []
    found = []
    for name in os.listdir(run_dir):
        m = _STEP_DIR.match(name)
        path = os.path.join(run_dir, name)
        if m and is_complete(path):
            found.append((int(m.group(1)), path))
    return sorted(found)


def _meta_step(path: str) -> int | None:
    try:
        return int(json.loads(Path(path, "meta.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_latest(run_dir: str) -> str | None:
    """The newest complete checkpoint in ``run_dir`` (step-* or final, by step) that loads, or None.
    A checkpoint that fails to load is skipped with a warning, falling back to the one before."""
    candidates = [(step, 1, path) for step, path in list_checkpoints(run_dir)]
    final = os.path.join(run_dir, "final")
    if is_complete(final) and _meta_step(final) is not None:
        candidates.append((_meta_step(final), 0, final))  # a step-N dir wins a tie with final
    for _, _, path in sorted(candidates, reverse=True):
        try:
            load_checkpoint(path)
            return path
        except CheckpointError as e:
            print(f"warning: skipping {e}", file=sys.stderr)
    return None


def resolve_checkpoint(spec: str, run_dir: str) -> str:
    """``latest``/``auto`` -> the newest in ``run_dir``; ``best``/``final``/a step number -> that one
    in ``run_dir``; anything else is a path."""
    if spec in ("latest", "auto"):
        path = find_latest(run_dir)
        if path is None:
            raise CheckpointError(f"{run_dir}: no complete checkpoint to use as {spec!r}")
        return path
    if spec.isdigit():
        return os.path.join(run_dir, step_dir_name(int(spec)))
    if spec in ("best", "final") and not os.path.exists(spec):
        return os.path.join(run_dir, spec)
    return spec


def rotate(run_dir: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` step checkpoints (best/ and final/ are separate copies and
    stay); also sweep temporary directories left by killed saves. Returns what was removed."""
    removed = []
    for _, path in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for name in os.listdir(run_dir):
        if name.startswith((".tmp-", ".old-")) and not name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
    return removed
