"""MPI communicator (mpi4py): CPU processes on one or many machines, started by ``mpirun -n N``.

Collectives run on host NumPy arrays. Each one is started non-blocking and then polled, so that a rank
that died (its peers wait forever in a blocking MPI call) is noticed within ``timeout`` seconds: the waiting
rank raises DistributedError, and the trainer exits with a message instead of hanging.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .communicator import Communicator, DistributedError, Work

# Environment variables an MPI launcher sets in every process it starts (MPICH/Hydra, Open MPI, Slurm's PMI).
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def launched_by_mpi() -> bool:
    return any(v in os.environ for v in LAUNCHER_VARIABLES)


class MPICommunicator(Communicator):
    name = "MPI"

    def __init__(self, timeout: float = 300.0):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise DistributedError("this job was started by an MPI launcher, but mpi4py is not installed: "
                                   "pip install 'minigrad[dist]'") from e
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        # a failed peer surfaces as an exception here (turned into our message) rather than an abort inside MPI
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank, self.size, self.timeout = self.comm.Get_rank(), self.comm.Get_size(), timeout
        # Gradient buckets are reduced on one background thread (in the order they were started, as MPI needs)
        # while backward goes on in the main one; that needs an MPI built for MPI_THREAD_MULTIPLE.
        self._worker = (ThreadPoolExecutor(1, thread_name_prefix="minigrad-mpi")
                        if MPI.Query_thread() >= MPI.THREAD_MULTIPLE else None)

    def _wait(self, request: Any, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 1e-5
        while not self._test(request, what):
            if time.monotonic() > deadline:
                raise DistributedError(f"rank {self.rank}: no answer from the other ranks for {self.timeout:.0f} s "
                                       f"while waiting for {what} (did a rank die?)")
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def _test(self, request: Any, what: str) -> bool:
        try:
            return request.Test()
        except self.MPI.Exception as e:
            raise DistributedError(f"rank {self.rank}: {what} failed: {e.Get_error_string()} (did a rank die?)") \
                from None

    def allreduce_(self, buf: Any) -> Any:
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), "a gradient all-reduce")
        return buf

    def allreduce_async_(self, buf: Any) -> Work:
        if self._worker is None:
            return super().allreduce_async_(buf)
        return _Pending(self._worker.submit(self.allreduce_, buf), self.timeout, self.rank)

    def broadcast_(self, buf: Any, root: int = 0) -> Any:
        self._wait(self.comm.Ibcast(buf, root=root), f"a broadcast from rank {root}")
        return buf

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier(), "the other ranks at a barrier")

    def abort(self, code: int = 1) -> None:
        """End every process of the job (after a rank gave up waiting)."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(1.0)  # MPI_Abort tears the job down at once: let the launcher forward what this rank just said
        self.comm.Abort(code)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)


class _Pending(Work):
    def __init__(self, future: Future, timeout: float, rank: int):
        self.future, self.timeout, self.rank = future, timeout, rank

    def wait(self) -> None:
        try:
            self.future.result(timeout=self.timeout + 5)  # the collective itself gives up after timeout
        except FutureTimeout:
            raise DistributedError(f"rank {self.rank}: a gradient all-reduce did not finish in {self.timeout:.0f} s "
                                   "(did a rank die?)") from None
