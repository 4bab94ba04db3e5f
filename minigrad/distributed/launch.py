"""Starting a data-parallel job: which communicator this process belongs to, and the launcher that
``train.py --gpus 0,1,2,3`` uses to start one worker process per GPU itself.

* Started by ``mpirun``/``mpiexec`` (MPI's variables in the environment): an MPI job. With
  ``sync_backend="nccl"`` the gradients go through NCCL (one GPU per rank, the NCCL id shared over MPI),
  otherwise through MPI on the host.
* Started by :func:`launch_local` (``MINIGRAD_RANK`` etc. in the environment): a NCCL job on this machine.
* Otherwise: a single process (the size-1 communicator).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from .communicator import Communicator, DistributedError
from .mpi import MPICommunicator, launched_by_mpi
from .nccl import NCCLCommunicator, new_unique_id

ENV_RANK, ENV_SIZE, ENV_DEVICE, ENV_NCCL_ID = ("MINIGRAD_RANK", "MINIGRAD_WORLD_SIZE", "MINIGRAD_DEVICE",
                                               "MINIGRAD_NCCL_ID")


def init(sync_backend: str = "cpu", timeout: float = 300.0) -> Communicator:
    """The communicator of this process (see the module docstring)."""
    if ENV_SIZE in os.environ:
        rank, size = int(os.environ[ENV_RANK]), int(os.environ[ENV_SIZE])
        return NCCLCommunicator(rank, size, json.loads(os.environ[ENV_NCCL_ID]), int(os.environ[ENV_DEVICE]),
                                timeout)
    if launched_by_mpi():
        mpi = MPICommunicator(timeout)
        if sync_backend != "nccl":
            return mpi
        unique_id = mpi.broadcast_json(new_unique_id() if mpi.is_root else None)
        local = int(os.environ.get("MPI_LOCALRANKID", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", mpi.rank)))
        return NCCLCommunicator(mpi.rank, mpi.size, unique_id, local, timeout)
    if sync_backend == "nccl":
        raise DistributedError("--sync-backend nccl needs several processes: start them with --gpus 0,1,... "
                               "or with mpirun")
    return Communicator()


def parse_gpus(text: str) -> list[int]:
    """'0,1,3' -> [0, 1, 3]; a DistributedError naming the value otherwise."""
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        gpus = []
    if not gpus or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise DistributedError(f"--gpus {text}: expected distinct GPU numbers such as 0,1,2,3")
    return gpus


def launch_local(gpus: list[int], argv: list[str], script: str, grace: float = 30.0) -> int:
    """Run ``script argv`` once per GPU (rank i on ``gpus[i]``) with the NCCL id in the environment; wait for
    them all. When one fails, the others are stopped (SIGTERM, then SIGKILL after ``grace`` seconds) and its
    exit status is returned."""
    env = {**os.environ, ENV_SIZE: str(len(gpus)), ENV_NCCL_ID: json.dumps(new_unique_id())}
    procs = [subprocess.Popen([sys.executable, script, *argv],
                              env={**env, ENV_RANK: str(rank), ENV_DEVICE: str(gpu)})
             for rank, gpu in enumerate(gpus)]
    status = 0
    try:
        while procs:
            for p in list(procs):
                code = p.poll()
                if code is None:
                    continue
                procs.remove(p)
                if code != 0 and status == 0:
                    status = code if code > 0 else 128 - code
                    _stop(procs, grace)
            time.sleep(0.05)
    except KeyboardInterrupt:  # forward Ctrl-C: each worker saves and exits
        _stop(procs, grace, signal.SIGINT)
        status = 130
    return status


def _stop(procs: list, grace: float, sig: int = signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def worker_argv(argv: list[str]) -> list[str]:
    """The command line of a ``--gpus`` worker: the same flags without --gpus, on the cupy backend with NCCL."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--gpus":
            skip = True
        elif not a.startswith("--gpus="):
            out.append(a)
    return out + ["--backend", "cupy", "--sync-backend", "nccl"]
