"""Data-parallel training across processes, GPUs and machines, behind one small interface.

    comm = minigrad.distributed.init("cpu")          # MPI under mpirun, else a single process
    sync = minigrad.distributed.GradientSync(model.parameters(), comm)
    sync.arm(); loss.backward(); sync.finish()       # gradients averaged over the processes

MPI (mpi4py) on CPU, NCCL through CuPy on GPU; no transport of our own. See ``communicator`` for the
interface, ``grad_sync`` for the overlapped bucketed all-reduce, ``launch`` for how a job starts.
"""

from .communicator import Communicator, DistributedError, SingleProcess, Work
from .grad_sync import GradientSync
from .launch import init, launch_local, parse_gpus, worker_argv

__all__ = ["Communicator", "DistributedError", "SingleProcess", "Work", "GradientSync", "init", "launch_local",
           "parse_gpus", "worker_argv"]
