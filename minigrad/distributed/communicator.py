"""The one communicator interface the trainer knows, and the single-process one.

A communicator joins the processes of one data-parallel job. The trainer needs very little of it:

* ``rank``, ``size``: who am I, how many are we (rank 0 alone writes checkpoints and metrics);
* ``allreduce_(buf)``: sum a flat array across the processes, in place (averaged gradients);
* ``broadcast_(buf, root)``: copy rank ``root``'s array to every process (initial weights);
* ``barrier()``;
* ``allreduce_async_(buf)``: start the sum and return a :class:`Work` to wait on, so that gradient buckets
  are reduced while backward goes on computing the next ones.

Every collective that waits on other processes takes ``timeout`` seconds at most: a rank that died makes the
others stop with a :class:`DistributedError` naming what they waited for, instead of hanging forever.
A single process is the size-1 communicator, whose collectives do nothing, so the training loop has no
branch for "not distributed".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


class DistributedError(RuntimeError):
    """Another process of the job stopped answering, or the job is set up wrong."""


class Work:
    """A collective in flight: ``wait()`` blocks until it is done (at most the communicator's timeout)."""

    def wait(self) -> None:
        pass


DONE = Work()


class Communicator:
    """The interface (and the size-1 behaviour: every collective is the identity)."""

    rank: int = 0
    size: int = 1
    timeout: float = 300.0
    name = "single process"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_(self, buf: Any) -> Any:
        """Sum ``buf`` (a contiguous 1-D array) over all processes, in place; returns it."""
        return buf

    def allreduce_async_(self, buf: Any) -> Work:
        """Start summing ``buf`` in place and return at once; collectives run in the order they are started
        (the same on every rank). The default waits here."""
        self.allreduce_(buf)
        return DONE

    def broadcast_(self, buf: Any, root: int = 0) -> Any:
        """Overwrite ``buf`` with rank ``root``'s copy, in place; returns it."""
        return buf

    def barrier(self) -> None:
        pass

    def broadcast_json(self, obj: Any = None, root: int = 0) -> Any:
        """Rank ``root``'s JSON-able ``obj`` on every process (a run id, a decision)."""
        if self.size == 1:
            return obj
        data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if self.rank == root else None
        n = self.broadcast_(np.array([0 if data is None else data.size], dtype=np.int64), root)
        out = data.copy() if data is not None else np.zeros(int(n[0]), dtype=np.uint8)
        return json.loads(self.broadcast_(out, root).tobytes().decode())

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on one of them (a stop signal, say)."""
        if self.size == 1:
            return flag
        return bool(self.allreduce_(np.array([1.0 if flag else 0.0]))[0] > 0)

    def mean(self, value: float) -> float:
        """The mean over processes of a host float (a loss, for the log)."""
        if self.size == 1:
            return value
        return float(self.allreduce_(np.array([value], dtype=np.float64))[0] / self.size)

    def check_identical(self, arrays: dict[str, Any], what: str) -> None:
        """Every process of a data-parallel job must hold rank 0's copy of ``arrays`` (the weights: they start
        from rank 0's and get the same averaged updates); a process that drifted is a bug, found here."""
        if self.size == 1:
            return
        digest = hashlib.sha1()
        for k in sorted(arrays):
            digest.update(np.ascontiguousarray(arrays[k]).tobytes())
        ours = digest.hexdigest()
        if self.broadcast_json(ours) != ours:
            raise DistributedError(f"rank {self.rank}: its weights differ from rank 0's at {what}; the processes "
                                   "have drifted apart")

    def abort(self, code: int = 1) -> None:
        """End every process of the job at once (after one gave up on the others). One process: nothing."""

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


SingleProcess = Communicator
