"""NCCL communicator (through CuPy's ``cupy.cuda.nccl``): one process per GPU, gradients all-reduced on the
GPU on a CUDA stream of their own, so the reduction of one bucket runs while backward computes the next.

The communicator is made from a NCCL unique id that rank 0 creates and shares: over MPI when the job was
started by ``mpirun`` (one process per GPU, across machines), or through the environment when
``train.py --gpus 0,1,2,3`` started the processes itself (``minigrad.distributed.launch``).
"""

from __future__ import annotations

import time
from typing import Any

from .communicator import Communicator, DistributedError, Work


def _nccl():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise DistributedError("--sync-backend nccl needs CuPy with NCCL: pip install 'minigrad[gpu]'") from e
    return cupy, nccl


def new_unique_id() -> list[int]:
    """A fresh NCCL unique id, as a list of ints (JSON- and environment-friendly)."""
    return list(_nccl()[1].get_unique_id())


class NCCLCommunicator(Communicator):
    name = "NCCL"

    def __init__(self, rank: int, size: int, unique_id: list[int], device: int, timeout: float = 300.0):
        cupy, nccl = _nccl()
        self.cupy, self.nccl = cupy, nccl
        self.rank, self.size, self.timeout, self.device = rank, size, timeout, device
        cupy.cuda.Device(device).use()
        self.comm = nccl.NcclCommunicator(size, tuple(unique_id), rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._types = {"float32": nccl.NCCL_FLOAT32, "float16": nccl.NCCL_FLOAT16, "float64": nccl.NCCL_FLOAT64,
                       "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8, "int32": nccl.NCCL_INT32}
        if hasattr(nccl, "NCCL_BFLOAT16"):
            self._types["bfloat16"] = nccl.NCCL_BFLOAT16

    def _device_array(self, buf: Any) -> tuple[Any, bool]:
        """(a device array, whether it is a copy of a host one): host buffers (small control messages) go
        through the GPU and back."""
        if isinstance(buf, self.cupy.ndarray):
            return buf, False
        return self.cupy.asarray(buf), True

    def _type(self, arr: Any) -> int:
        name = str(arr.dtype)
        if name not in self._types:
            raise DistributedError(f"NCCL cannot reduce arrays of dtype {name}")
        return self._types[name]

    def _sync(self, what: str) -> None:
        """Wait for the stream, giving up (and aborting NCCL, which would otherwise hang) after the timeout."""
        deadline = time.monotonic() + self.timeout
        while not self.stream.done:
            if time.monotonic() > deadline:
                self.comm.abort()
                raise DistributedError(f"rank {self.rank}: no answer from the other ranks for {self.timeout:.0f} s "
                                       f"while waiting for {what} (did a rank die?)")
            time.sleep(1e-4)
        self.comm.check_async_error()

    def allreduce_async_(self, buf: Any) -> Work:
        arr, copied = self._device_array(buf)
        self.stream.wait_event(self.cupy.cuda.get_current_stream().record())  # after the gradients are written
        self.comm.allReduce(arr.data.ptr, arr.data.ptr, arr.size, self._type(arr), self.nccl.NCCL_SUM,
                            self.stream.ptr)
        return _StreamWork(self, arr if copied else None, buf)

    def allreduce_(self, buf: Any) -> Any:
        self.allreduce_async_(buf).wait()
        return buf

    def broadcast_(self, buf: Any, root: int = 0) -> Any:
        arr, copied = self._device_array(buf)
        self.stream.wait_event(self.cupy.cuda.get_current_stream().record())
        self.comm.bcast(arr.data.ptr, arr.size, self._type(arr), root, self.stream.ptr)
        self._sync(f"a broadcast from rank {root}")
        if copied:
            buf[...] = self.cupy.asnumpy(arr)
        return buf

    def barrier(self) -> None:
        self.allreduce_(self.cupy.zeros(1, dtype=self.cupy.float32))


class _StreamWork(Work):
    def __init__(self, comm: NCCLCommunicator, device_copy: Any, host: Any):
        self.comm, self.device_copy, self.host = comm, device_copy, host

    def wait(self) -> None:
        self.comm._sync("a gradient all-reduce")
        # the default stream must not read the bucket before the reduction is done
        self.comm.cupy.cuda.get_current_stream().wait_event(self.comm.stream.record())
        if self.device_copy is not None:
            self.host[...] = self.comm.cupy.asnumpy(self.device_copy)
