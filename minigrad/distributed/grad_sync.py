"""Averaging gradients over the processes of a data-parallel job, overlapped with backward.

The parameters are cut into buckets of about ``bucket_mb`` MiB, in reverse order of registration (the last
layers' gradients are final first in backward). A post-accumulate-grad hook on every parameter marks it
done; as soon as every parameter of the next bucket is done, its gradients are packed into one flat buffer
(in ``exchange_dtype``: float16 or bfloat16 halve the bytes on the wire) and its all-reduce is started,
while backward goes on computing earlier layers. ``finish()`` starts what is left, waits for every bucket
and writes the averages back into ``.grad``. Buckets always go out in index order, on every rank, which
is what MPI and NCCL need (collectives are matched by order).

With gradient accumulation only the last micro-batch's backward is synchronised: ``arm()`` before it.
A size-1 job does nothing at all (no hooks are registered).
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .communicator import Communicator, Work


class GradientSync:
    def __init__(self, params: list[Tensor], comm: Communicator, bucket_mb: float = 25.0,
                 exchange_dtype: Any = None, overlap: bool = True):
        self.comm, self.overlap = comm, overlap
        self.params = [p for p in params if p.requires_grad]
        self.exchange_dtype = exchange_dtype
        self.armed = False
        self.buckets: list[list[Tensor]] = []
        if comm.size == 1 or not self.params:
            return
        limit, current, size = bucket_mb * 2**20, [], 0
        for p in reversed(self.params):
            current.append(p)
            size += p.size * p.data.itemsize
            if size >= limit:
                self.buckets.append(current)
                current, size = [], 0
        if current:
            self.buckets.append(current)
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        self._removers = [p.register_post_accumulate_grad_hook(self._done) for p in self.params] if overlap else []

    def arm(self) -> None:
        """The next backward is the one to synchronise (the last micro-batch of the step)."""
        if not self.buckets:
            return
        self.armed = True
        self._missing = [len(b) for b in self.buckets]
        self._next = 0                                   # the next bucket to start
        self._flight: list[tuple[Any, Work]] = []        # (flat buffer, its all-reduce) per started bucket

    def _done(self, p: Tensor) -> None:
        if not self.armed:
            return
        self._missing[self._bucket_of[id(p)]] -= 1
        while self._next < len(self.buckets) and self._missing[self._next] == 0:
            self._start(self._next)

    def _start(self, i: int) -> None:
        bucket = self.buckets[i]
        xp = bucket[0].backend.xp
        dtype = self.exchange_dtype or bucket[0].dtype
        parts = [(p.grad.data if p.grad is not None else xp.zeros(p.shape, p.dtype)).reshape(-1) for p in bucket]
        # one more value per parameter: 1 where this rank has a gradient, so a parameter no rank used (an
        # expert nobody was routed to) keeps no gradient, as in a single process, instead of a zero one
        parts.append(xp.asarray([0.0 if p.grad is None else 1.0 for p in bucket], dtype=dtype))
        flat = xp.concatenate([a.astype(dtype, copy=False) for a in parts])  # (sum of sizes + len(bucket),)
        self._flight.append((flat, self.comm.allreduce_async_(flat)))
        self._next += 1

    def finish(self) -> None:
        """Wait for every bucket and replace each gradient by its mean over the processes."""
        if not self.armed:
            return
        while self._next < len(self.buckets):  # unused parameters, or no overlap: start the rest, in order
            self._start(self._next)
        for bucket, (flat, work) in zip(self.buckets, self._flight):
            work.wait()
            used = bucket[0].backend.to_numpy(flat[-len(bucket):])  # one small copy per bucket
            start = 0
            for p, any_rank in zip(bucket, used):
                n = p.size
                if any_rank > 0:
                    avg = flat[start:start + n].reshape(p.shape) / self.comm.size   # (the sum over ranks) / size
                    p.grad = Tensor._from_array(avg.astype(p.dtype, copy=False), p.backend)
                    p._grad_owned = True
                else:
                    p.grad = None
                start += n
        self.armed = False
        self._flight = []

    def remove(self) -> None:
        for r in getattr(self, "_removers", []):
            r()
        self._removers = []
