"""Batches of training windows: seeded, epoch-based, resumable, optionally prefetched.

An epoch cuts the tokens into windows of ``seq_len + 1`` (inputs and targets shifted by one),
starting at a random offset, and visits them in a random order. Both come from a generator
seeded by ``(seed, epoch)``, so the whole stream of batches is a pure function of the seed and
a cursor ``(epoch, index)``: saving the cursor in a checkpoint is all that resuming needs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .tokens import TokenFile

Batch = tuple[np.ndarray, np.ndarray]  # inputs (B, T) int64, targets (B, T) int64


class WindowSampler:
    """Random windows over token files, ``batch_size`` at a time, epoch after epoch.

    ``shard=(rank, world_size)``: in data-parallel training every process walks the same stream of batches of
    ``world_size * batch_size`` windows and takes the rank-th slice of each, so the processes see disjoint
    windows, their cursor is one and the same, and a run at any world size is a 1-process run with the
    larger batch, step for step."""

    def __init__(self, files: list[TokenFile], seq_len: int, batch_size: int, seed: int = 0,
                 shard: tuple[int, int] = (0, 1)):
        self.files = files
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.rank, self.world = shard
        self.seed = seed
        self.epoch = 0
        self.index = 0  # windows of this epoch already handed out
        self._layout_epoch = -1

    # ---- the epoch layout --------------------------------------------------------
    def _counts(self, offset: int) -> np.ndarray:
        """Windows per file when windows start at offset, offset + seq_len, ..."""
        return np.array([max(0, (len(f) - 1 - offset) // self.seq_len) for f in self.files], dtype=np.int64)

    def _layout(self) -> None:
        if self._layout_epoch == self.epoch:
            return
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch]))
        offset = int(rng.integers(0, self.seq_len))
        counts = self._counts(offset)
        if counts.sum() == 0:  # files only one window long: no room to shift
            offset, counts = 0, self._counts(0)
        self._offset = offset
        self._ends = np.cumsum(counts)
        self._order = rng.permutation(int(self._ends[-1]))
        self._layout_epoch = self.epoch

    @property
    def windows_per_epoch(self) -> int:
        self._layout()
        return int(self._ends[-1])

    def _window(self, g: int) -> np.ndarray:
        """Window number g of the epoch layout: seq_len + 1 tokens of one file."""
        shard = int(np.searchsorted(self._ends, g, side="right"))
        first = g - (int(self._ends[shard - 1]) if shard else 0)
        start = self._offset + first * self.seq_len
        return self.files[shard].tokens[start:start + self.seq_len + 1]

    # ---- batches -----------------------------------------------------------------
    def next_batch(self) -> Batch:
        rows, mine = [], range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for k in range(self.world * self.batch_size):  # the global batch; this process keeps its slice
            self._layout()
            while self.index >= len(self._order):  # epoch done: the next one reshuffles
                self.epoch += 1
                self.index = 0
                self._layout()
            if k in mine:
                rows.append(self._window(int(self._order[self.index])))
            self.index += 1
        block = np.stack(rows).astype(np.int64)  # (B, T + 1)
        return block[:, :-1], block[:, 1:]

    @property
    def epochs_done(self) -> float:
        """Fractional epochs consumed so far."""
        return self.epoch + self.index / max(1, self.windows_per_epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.seed = int(state.get("seed", self.seed))


def eval_batches(files: list[TokenFile], seq_len: int, batch_size: int, n_batches: int) -> list[Batch]:
    """A fixed set of validation batches: non-overlapping windows spread evenly over the files,
    the same at every evaluation so the numbers are comparable."""
    starts = [(i, s) for i, f in enumerate(files) for s in range(0, len(f) - seq_len, seq_len)]
    want = n_batches * batch_size
    if len(starts) > want:
        pick = np.linspace(0, len(starts) - 1, want).round().astype(np.int64)
        starts = [starts[int(k)] for k in pick]
    rows = max(1, min(batch_size, len(starts)))  # a validation set smaller than a batch: one short batch
    batches = []
    for b in range(0, len(starts) - rows + 1, rows):
        block = np.stack([files[i].tokens[s:s + seq_len + 1] for i, s in starts[b:b + rows]]).astype(np.int64)
        batches.append((block[:, :-1], block[:, 1:]))  # (rows, T) each
    return batches


class HostToDevice:
    """Moves a batch's host arrays onto a backend's device.

    On the cupy backend the arrays are staged in pinned (page-locked) host memory and copied by an
    asynchronous copy on a CUDA stream of their own (non-blocking: it does not wait for, nor hold up,
    the compute stream). Called from the Prefetcher's thread, the copy of the next batch runs while the
    GPU computes on this one; the thread waits for its copy to finish (the training thread does not),
    so a batch it hands over is complete and its pinned buffer may be reused. On other backends it is
    ``backend.asarray``.

    The device arrays come from CuPy's pool on the copy stream. The training loop synchronises once per
    micro-batch (``loss.item()``, after backward), so a batch is freed, and its memory reused by a later
    copy, only after every kernel that reads it has run."""

    def __init__(self, backend):
        self.backend = backend
        self._cupy = None
        if backend.device == "cuda":
            import cupy

            self._cupy = cupy
            self._stream = cupy.cuda.Stream(non_blocking=True)

    def __call__(self, batch: Batch) -> Batch:
        if self._cupy is None:
            return tuple(self.backend.asarray(a) for a in batch)
        cp, out = self._cupy, []
        with self._stream:
            for a in batch:
                pinned = cp.cuda.alloc_pinned_memory(a.nbytes)
                staged = np.frombuffer(pinned, a.dtype, a.size).reshape(a.shape)
                staged[...] = a
                dev = cp.empty(a.shape, dtype=a.dtype)
                dev.set(staged, stream=self._stream)
                out.append((dev, pinned))
            self._stream.record().synchronize()  # this thread waits; the pinned buffers may go after it
        return tuple(dev for dev, _ in out)


class Prefetcher:
    """Draws batches from a sampler on a background thread, ``depth`` ahead of the consumer, and moves
    them to the device there when given ``upload`` (a HostToDevice). Each item carries the sampler's
    state after that batch, so a checkpoint records exactly what the training loop consumed, not what
    the thread ran ahead to."""

    def __init__(self, sampler: WindowSampler, depth: int, upload=None):
        self.sampler = sampler
        self._upload = upload
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="minigrad-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.sampler.next_batch()
                item = (self._upload(batch) if self._upload else batch, self.sampler.state_dict())
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # hand the error to the consumer rather than dying silently
            self._queue.put(e)

    def get(self) -> tuple[Batch, dict[str, int]]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class BatchStream:
    """What the training loop reads: batches plus the cursor after the last one consumed, from the sampler
    directly (prefetch 0) or through a Prefetcher; on the device already when given ``upload``."""

    def __init__(self, sampler: WindowSampler, prefetch: int = 0, upload=None):
        self.sampler = sampler
        self._cursor = sampler.state_dict()
        self._upload = upload
        self._prefetcher = Prefetcher(sampler, prefetch, upload) if prefetch > 0 else None

    def next(self) -> Batch:
        if self._prefetcher is None:
            batch = self.sampler.next_batch()
            self._cursor = self.sampler.state_dict()
            return self._upload(batch) if self._upload else batch
        batch, self._cursor = self._prefetcher.get()
        return batch

    def state_dict(self) -> dict[str, int]:
        return dict(self._cursor)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next()

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
