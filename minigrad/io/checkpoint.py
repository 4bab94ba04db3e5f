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


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions): the message names the path and the
    error. The partial temporary directory is removed; every earlier checkpoint is intact."""


def save_checkpoint(run_dir: str, name: str, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    meta: dict[str, Any]) -> str:
    """Write checkpoint ``run_dir/name`` atomically and return its path. An existing checkpoint of
    that name (``best``, ``final``) is replaced only once the new one is complete."""
    final = os.path.join(run_dir, name)
    tmp = os.path.join(run_dir, f".tmp-{name}-{os.getpid()}")
    try:
        os.makedirs(run_dir, exist_ok=True)
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        _write_file(os.path.join(tmp, "model.safetensors"), st_save(_contiguous(model), {"format": "np"}))
        _write_file(os.path.join(tmp, "optimizer.safetensors"), st_save(_contiguous(optimizer), {"format": "np"}))
        _write_file(os.path.join(tmp, "meta.json"), json.dumps(meta, indent=1).encode())  # last: marks complete
        _fsync_dir(tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"{e.filename or tmp}: could not write checkpoint {name!r} ({e.strerror}); "
                                   f"the earlier checkpoints in {run_dir} are intact") from None
    replace_dir(run_dir, name, tmp)
    return final


def replace_dir(run_dir: str, name: str, tmp: str) -> None:
    """Put the complete ``tmp`` in place of ``run_dir/name``. rename() cannot replace a non-empty
    directory, so an existing one is first moved to ``.old-NAME-PID``; a crash between the two renames
    leaves that old copy, which :func:`recover` puts back (it is never swept as debris)."""
    final = os.path.join(run_dir, name)
    if os.path.exists(final):
        old = os.path.join(run_dir, f".old-{name}-{os.getpid()}")
        if os.path.exists(old):
            shutil.rmtree(old)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(run_dir)


def recover(run_dir: str) -> list[str]:
    """Undo what a crash mid-save left: an ``.old-NAME-PID`` whose NAME is missing (the crash fell between
    the two renames of a replacement) is renamed back; temporary directories of dead saves and old copies
    whose replacement is complete are removed. Returns what it restored. Safe to call at any time."""
    restored = []
    if not os.path.isdir(run_dir):
        return restored
    for entry in sorted(os.listdir(run_dir)):
        m = re.match(r"^\.(tmp|old)-(.+)-(\d+)$", entry)
        if not m or int(m.group(3)) == os.getpid():
            continue
        kind, name, path = m.group(1), m.group(2), os.path.join(run_dir, entry)
        if kind == "old" and not os.path.exists(os.path.join(run_dir, name)) and is_complete(path):
            os.rename(path, os.path.join(run_dir, name))
            restored.append(os.path.join(run_dir, name))
        else:
            shutil.rmtree(path, ignore_errors=True)
    return restored


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


# What a training run's meta.json holds (train.py writes it): key -> (type, what sample needs it for too)
_RUN_META = {"step": int, "config": dict, "optimizer": dict, "data_cursor": dict, "rng": dict,
             "train_state": dict}


def check_run_meta(meta: Any, path: str, keys: tuple[str, ...] = tuple(_RUN_META)) -> None:
    """Refuse a meta.json that lacks what a resume (or, with fewer ``keys``, a sample) reads, or holds it
    with the wrong type: one CheckpointError naming the file and every bad key."""
    where = os.path.join(path, "meta.json")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    bad = []
    for key in keys:
        want = _RUN_META[key]
        if key not in meta:
            bad.append(f"'{key}' is missing")
        elif not isinstance(meta[key], want) or isinstance(meta[key], bool):
            bad.append(f"'{key}' must be {want.__name__}, got {type(meta[key]).__name__}")
    if not bad and "step" in keys and meta["step"] < 0:
        bad.append(f"'step' must be >= 0, got {meta['step']}")
    if not bad and "config" in keys and not isinstance(meta["config"].get("model"), dict):
        bad.append("'config' has no 'model' section")
    if not bad and "data_cursor" in keys and not all(
            isinstance(meta["data_cursor"].get(k), int) for k in ("epoch", "index")):
        bad.append("'data_cursor' needs integer 'epoch' and 'index'")
    if not bad and "train_state" in keys:
        ts = meta["train_state"]
        if not (isinstance(ts.get("bad_evals"), int) and isinstance(ts.get("elapsed"), (int, float))
                and (ts.get("best_val_loss") is None or isinstance(ts.get("best_val_loss"), (int, float)))):
            bad.append("'train_state' needs 'best_val_loss' (number or null), 'bad_evals' (int), 'elapsed' (number)")
    if not bad and "rng" in keys and not all(isinstance(meta["rng"].get(k), dict) for k in ("minigrad", "numpy")):
        bad.append("'rng' needs 'minigrad' and 'numpy' states")
    if bad:
        raise CheckpointError(f"{where}: not a training checkpoint's metadata: " + "; ".join(bad))


def non_finite(arrays: dict[str, np.ndarray]) -> list[str]:
    """Names of the float arrays holding a NaN or an infinity."""
    return [k for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]


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


def meta_field(path: str, key: str) -> Any:
    """One field of a checkpoint's meta.json, or None if it cannot be read."""
    try:
        return json.loads(Path(path, "meta.json").read_text())[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _meta_step(path: str) -> int | None:
    step = meta_field(path, "step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


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


def rotate(run_dir: str, keep: int, run_id: str | None = None) -> list[str]:
    """Delete all but the newest ``keep`` step checkpoints of run ``run_id`` (None: every run's), keeping
    best/ and final/ (separate copies); also clear what killed saves left (see :func:`recover`).
    Returns what was removed."""
    mine = [(s, p) for s, p in list_checkpoints(run_dir) if run_id is None or meta_field(p, "run_id") == run_id]
    removed = []
    for _, path in mine[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    recover(run_dir)
    return removed
