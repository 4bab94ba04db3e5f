"""A run directory belongs to one run.

* While a run trains, it holds ``RUN_DIR/.lock`` (its pid, host and process start time). A second run
  into the same directory is refused; a lock left by a process that no longer exists (killed with
  SIGKILL, say) is recognised as stale and taken over.
* SIGINT, SIGTERM and SIGHUP stop a run cleanly (:class:`StopSignals`): the step finishes, a checkpoint is
  written, and the exit status says which signal it was.
* A fresh run (no ``--resume``) into a directory that already holds checkpoints is refused: continue that
  run with ``--resume auto``, or replace it with ``--overwrite``. Each checkpoint's meta.json carries its
  run's id, and rotation only ever deletes the current run's checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any

from .checkpoint import CheckpointError, is_complete, list_checkpoints, meta_field

LOCK_NAME = ".lock"


class RunDirError(CheckpointError):
    """The run directory cannot be used as asked; the message says why and what to do instead."""


def usable_dir(path: str, what: str = "--out") -> None:
    """Make sure ``path`` is (or can be made) a directory; a clear RunDirError otherwise."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError(f"{path}: {what} must be a directory, but a file is there")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"{path}: {what} cannot be created ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"{path}: {what} is not writable")


def checkpoints_in(run_dir: str) -> list[str]:
    """The complete checkpoints (step-*, best, final) in ``run_dir``."""
    found = [p for _, p in list_checkpoints(run_dir)]
    return found + [p for p in (os.path.join(run_dir, n) for n in ("best", "final")) if is_complete(p)]


def claim_run_dir(run_dir: str, resuming: bool, overwrite: bool) -> None:
    """Refuse a fresh run into another run's directory, unless ``overwrite``: then that run's checkpoints
    and metrics are removed first."""
    found = checkpoints_in(run_dir)
    if not found or resuming:
        return
    if not overwrite:
        steps = [s for s in (meta_field(p, "step") for p in found) if isinstance(s, int)]
        upto = f", up to step {max(steps)}" if steps else ""
        raise RunDirError(f"{run_dir}: holds the checkpoints of an earlier run ({len(found)} of them{upto}); "
                          "continue it with --resume auto, or pass --overwrite to replace it")
    for path in found:
        shutil.rmtree(path)
    for name in ("metrics.jsonl", "metrics.jsonl.old"):
        if os.path.exists(os.path.join(run_dir, name)):
            os.remove(os.path.join(run_dir, name))


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): tells a live process
    from a new one that reused a dead one's pid. None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    started = _start_time(pid)
    return started is None or holder.get("started") is None or started == holder.get("started")


class RunLock:
    """``with RunLock(run_dir):`` — hold the directory's lock for the duration of a run."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid())}
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") not in (None, me["host"]):
                    raise RunDirError(f"{self.run_dir}: locked by a run on host {holder['host']} (pid "
                                      f"{holder.get('pid')}); if that run is gone, delete {self.path}") from None
                if _alive(holder) or (not holder and self._age() < 5.0):  # (a lock still being written)
                    raise RunDirError(f"{self.run_dir}: another run (pid {holder.get('pid', '?')}) is training in this "
                                      "directory; wait for it to end, or pass another --out") from None
                try:
                    os.remove(self.path)  # stale: its process is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunDirError(f"{self.run_dir}: could not take the run lock {self.path}")

    def _age(self) -> float:
        try:
            return time.time() - os.path.getmtime(self.path)
        except OSError:
            return float("inf")

    def _holder(self) -> dict:
        try:
            with open(self.path) as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.held and self._holder().get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class StopSignals:
    """``with StopSignals(say) as stop:`` — SIGINT, SIGTERM and SIGHUP ask the run to stop rather than kill
    it: ``stop.signum`` is set, and the loop finishes its step, saves a checkpoint and exits with status
    ``128 + signum`` (130, 143, 129). A second signal exits at once with that status: checkpoints are only
    ever renamed into place when complete, so leaving mid-save corrupts nothing. Outside the main thread
    (where Python cannot install handlers) this does nothing."""

    def __init__(self, say=None):
        self.say = say or (lambda message: None)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting now; the last complete checkpoint "
                        "is intact\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        self.say(f"{signal.Signals(signum).name}: finishing this step, then saving a checkpoint "
                 "(send it again to exit at once)")

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if s is not None:
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


@contextmanager
def hold_run_dir(run_dir: str, resuming: bool, overwrite: bool, comm=None):
    """``with hold_run_dir(...)``: the run directory is this run's for the duration: usable, locked, repaired
    after a crash mid-save (:func:`recover`) and not another run's (:func:`claim_run_dir`). In a data-parallel
    job rank 0 does it and tells the others (through ``comm``) whether it could."""
    from .checkpoint import recover

    lock = RunLock(run_dir)
    root, size = (comm.is_root, comm.size) if comm is not None else (True, 1)
    problem = None
    if root:
        try:
            usable_dir(run_dir, "trainer.checkpoint_dir (--out)")
            lock.acquire()
            recover(run_dir)  # put back what a crash in the middle of replacing best/ or final/ moved aside
            claim_run_dir(run_dir, resuming=resuming, overwrite=overwrite)
        except CheckpointError as e:
            lock.release()
            problem = str(e)
            if size == 1:
                raise
    if size > 1:
        problem = comm.broadcast_json(problem)
    if problem is not None:
        raise RunDirError(problem)
    try:
        yield
    finally:
        lock.release()
