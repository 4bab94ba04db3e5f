"""Reading and writing runs: checkpoint directories (checkpoint) and the metrics log (metrics)."""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointWriteError,
    check_run_meta,
    find_latest,
    load_checkpoint,
    non_finite,
    recover,
    resolve_checkpoint,
    rotate,
    save_checkpoint,
    step_dir_name,
)
from .run_dir import RunDirError, RunLock, StopSignals, claim_run_dir, hold_run_dir, usable_dir

__all__ = ["Checkpoint", "CheckpointError", "CheckpointWriteError", "check_run_meta", "find_latest", "load_checkpoint",
           "non_finite", "recover", "resolve_checkpoint", "rotate", "save_checkpoint", "step_dir_name",
           "RunDirError", "RunLock", "StopSignals", "claim_run_dir", "hold_run_dir", "usable_dir"]
