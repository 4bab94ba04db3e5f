"""Data-parallel scaling on this machine, and what it implies for GPUs and nodes.

    python bench/scaling.py [--steps N]

1. Training tokens/s of the same model through ``train.py``: one process, then two MPI ranks
   (``mpirun -n 2``) with gradient buckets all-reduced while backward runs (overlap) and after it
   (``overlap_comm: false``). Each rank gets one thread (a 2-core machine holds two ranks); the one-process
   row is given one thread too, and two threads in a second row.
2. The all-reduce bandwidth MPI reaches here (bus bandwidth of a ring: 2 (n-1)/n x bytes / time).
3. From those, the estimated step time of the ~125M Llama at 8 GPUs in one node and at 4 nodes over a
   100 Gb/s network: an all-reduce of the bf16 gradients with the ring formula, against the compute time
   of one step, fully exposed (no overlap) or hidden behind backward (overlap, backward being 2/3 of the
   compute). The GPU numbers are assumptions, printed with the table: nothing here ran on a GPU.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: threads, sys.path, minigrad's process settings)

# isort: split
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = dict(hidden_size=256, num_layers=4, num_heads=4, kv_heads=2, vocab_size=4096, max_seq_len=128)
BANDWIDTH_SCRIPT = """
import time, numpy as np
from mpi4py import MPI
c = MPI.COMM_WORLD
for mb in (1, 8, 32):
    buf = np.ones(mb * 2**18, dtype=np.float32)
    c.Allreduce(MPI.IN_PLACE, buf)
    t = time.perf_counter()
    for _ in range(10):
        c.Allreduce(MPI.IN_PLACE, buf)
    dt = (time.perf_counter() - t) / 10
    if c.rank == 0:
        print(mb, dt, flush=True)
"""


def run_train(tmp: str, ranks: int, threads: int, steps: int, overlap: bool = True) -> float:
    out = os.path.join(tmp, f"run-{ranks}-{threads}-{overlap}")
    shutil.rmtree(out, ignore_errors=True)
    cfg = os.path.join(tmp, "c.yaml")
    batch = 8 // ranks  # the same global batch at every world size
    with open(cfg, "w") as f:
        yaml.safe_dump({"model": MODEL, "trainer": {
            "batch_size": batch, "max_steps": steps, "num_epochs": 0, "eval_interval": 0, "eval_batches": 1,
            "save_interval": 0, "log_interval": 1000, "sample_tokens": 0, "overlap_comm": overlap}}, f)
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "NUMBA_NUM_THREADS")}}
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "-f", cfg, "-d", os.path.join(tmp, "d.bin"), "--out",
           out, "--headless"]
    if ranks > 1:
        cmd = [shutil.which("mpirun") or "mpirun", "-n", str(ranks), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"training failed:\n{r.stderr[-2000:]}")
    done = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")][-1]
    return done["tokens_per_s"]


def bandwidth() -> list[tuple[int, float]]:
    r = subprocess.run([shutil.which("mpirun") or "mpirun", "-n", "2", sys.executable, "-c", BANDWIDTH_SCRIPT],
                       capture_output=True, text=True, timeout=600)
    rows = []
    for line in r.stdout.strip().splitlines():
        mb, dt = line.split()
        rows.append((int(mb), float(dt)))
    return rows


def ring_seconds(nbytes: float, n: int, bus_bytes_per_s: float) -> float:
    """Time of a ring all-reduce of ``nbytes`` over ``n`` participants at a bus bandwidth."""
    return 2 * (n - 1) / n * nbytes / bus_bytes_per_s


def estimate(step_compute_s: float, grad_bytes: float) -> list[tuple[str, float, float, float]]:
    """(setup, all-reduce s, step s without overlap, step s with backward overlap) per configuration."""
    rows = []
    for name, n, bus in (("8 GPUs, one node (NVLink, ~200 GB/s bus)", 8, 200e9),
                         ("4 nodes x 8 GPUs, 100 Gb/s between nodes", 32, 12.5e9)):
        comm = ring_seconds(grad_bytes, n, bus)
        hidden = max(0.0, comm - step_compute_s * 2 / 3)  # backward is about 2/3 of a step
        rows.append((name, comm, step_compute_s + comm, step_compute_s + hidden))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="minigrad-scaling-")
    np.random.default_rng(0).integers(0, MODEL["vocab_size"], 400_000).astype("<u4").tofile(os.path.join(tmp, "d.bin"))
    print(f"model {MODEL}, global batch 8 x {MODEL['max_seq_len']}, {args.steps} steps, numpy backend threads as shown")
    one_1 = run_train(tmp, 1, 1, args.steps)
    one_2 = run_train(tmp, 1, 2, args.steps)
    two = run_train(tmp, 2, 1, args.steps, overlap=True)
    two_no = run_train(tmp, 2, 1, args.steps, overlap=False)
    print("\n| run | tokens/s | vs 1 process, 1 thread |\n| --- | --- | --- |")
    for name, v in (("1 process, 1 thread", one_1), ("1 process, 2 threads", one_2),
                    ("2 MPI ranks x 1 thread, overlap", two), ("2 MPI ranks x 1 thread, no overlap", two_no)):
        print(f"| {name} | {v:,.0f} | {v / one_1:.2f}x |")
    bw = bandwidth()
    print("\n| all-reduce (2 ranks, float32) | time | bus bandwidth |\n| --- | --- | --- |")
    for mb, dt in bw:
        print(f"| {mb} MiB | {dt * 1e3:.2f} ms | {ring_seconds(mb * 2**20, 2, 1) / dt / 1e9:.2f} GB/s |")
    # The 125M Llama (12 layers x 768, seq 1024): 6 N FLOPs a token; a GPU step of 8 x 1024 tokens at an
    # assumed 400 TFLOP/s bf16 and 40% of it achieved. Gradients travel in bf16 (2 bytes each).
    n_params, tokens = 125e6, 8 * 1024
    compute = 6 * n_params * tokens / (400e12 * 0.4)
    print(f"\nestimate for the 125M model, {tokens} tokens per GPU per step, assumed compute {compute * 1e3:.0f} ms "
          "a step (H100/H200-class bf16, 40% of 400 TFLOP/s), bf16 gradients (250 MB):")
    print("| setup | all-reduce | step, no overlap | step, overlapped | scaling efficiency (overlapped) |")
    print("| --- | --- | --- | --- | --- |")
    for name, comm, no, ov in estimate(compute, 2 * n_params):
        print(f"| {name} | {comm * 1e3:.0f} ms | {no * 1e3:.0f} ms | {ov * 1e3:.0f} ms | {compute / ov:.0%} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
