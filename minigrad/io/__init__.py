"""Reading and writing runs: checkpoint directories (checkpoint) and the metrics log (metrics)."""

from .checkpoint import CheckpointError, find_latest, load_checkpoint, resolve_checkpoint, rotate, save_checkpoint

__all__ = ["CheckpointError", "find_latest", "load_checkpoint", "resolve_checkpoint", "rotate", "save_checkpoint"]
