"""What a run reports: ``metrics.jsonl`` in the run directory (always) and the terminal, either a
tqdm bar with loss, tokens/s and ETA, or (``--headless``) one JSON object per line on stdout.

In headless mode stdout carries only JSON, so a program can parse it line by line; every
human-readable message goes to stderr instead. A reader that goes away (``train.py --headless | head``)
does not stop the run: the closed stream is silenced and metrics.jsonl keeps everything.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, TextIO


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Infinity; "nan"/"inf" strings keep the line valid
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null: what is written to it from now on goes nowhere
    (after its reader closed the pipe), instead of raising BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test's StringIO)
        pass


def say(message: str, stream: TextIO | None = None) -> None:
    """print() a line, flushed; a closed pipe silences the stream rather than ending the run."""
    stream = stream or sys.stdout
    try:
        print(message, file=stream, flush=True)
    except BrokenPipeError:
        silence(stream)


class NullLog:
    """What a data-parallel process other than rank 0 writes metrics to: nothing."""

    path = None

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class MetricsLog:
    """Appends records to ``run_dir/metrics.jsonl``, one JSON object per line, flushed each time."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if resume_step is not None:
            self.truncate_after(resume_step)
        elif os.path.exists(path):  # a fresh run in an old directory starts a fresh log
            os.replace(path, path + ".old")
        self._f = open(path, "a", encoding="utf-8")

    def truncate_after(self, step: int) -> None:
        """Drop records from steps after ``step`` (a resumed run rewrites them)."""
        if not os.path.exists(self.path):
            return
        keep = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if rec.get("step", 0) <= step and rec.get("event") != "done":
                    keep.append(line if line.endswith("\n") else line + "\n")
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(_json_value(record)) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Reporter:
    """The terminal side: a tqdm bar, or JSON lines when headless."""

    def __init__(self, total_steps: int, start_step: int, headless: bool, stream: TextIO | None = None,
                 silent: bool = False):
        self.headless = headless or silent
        self.silent = silent  # a data-parallel process other than rank 0: rank 0 reports for the job
        self.out = stream or sys.stdout
        self.bar = None
        if not self.headless:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.1)

    def info(self, message: str) -> None:
        """A human-readable line: above the bar, or on stderr when headless."""
        if self.silent:
            return
        if self.bar is not None:
            try:
                self.bar.write(message, file=self.out)
            except BrokenPipeError:
                silence(self.out)
        else:
            say(message, sys.stderr if self.headless else self.out)

    def event(self, record: dict[str, Any]) -> None:
        """A structured event (step, eval, checkpoint, done): JSON when headless."""
        if self.headless and not self.silent:
            try:
                self.out.write(json.dumps(_json_value(record)) + "\n")
                self.out.flush()
            except BrokenPipeError:
                silence(self.out)

    def step(self, n: int, loss: float, tokens_per_s: float, lr: float, extra: dict[str, str] | None = None) -> None:
        """Advance the bar; ``extra``: more fields for its postfix (an MoE model's load imbalance)."""
        if self.bar is not None:
            try:
                self.bar.update(n)
                self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", lr=f"{lr:.2e}", **(extra or {}),
                                     refresh=False)
            except BrokenPipeError:
                silence(sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fmt_bytes(n: float) -> str:
    """A byte count for people: '512 B', '3.2 MiB', '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
