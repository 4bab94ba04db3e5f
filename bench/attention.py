"""Causal attention alone, forward and backward, by sequence length: the numba backend's kernels
against PyTorch's ``F.scaled_dot_product_attention`` (flash-style on the CPU), and the memory each adds.

    python bench/attention.py [--seqs 256 1024 ...] [--sides numba torch-sdpa] [--repeats N] [--batch B]

Nano widths (4 query heads, 2 kv heads, head size 64), float32, two threads on both sides. Each (side,
seq) runs in a process of its own (torch's with glibc's malloc settings, ``_common.GLIBC_STEADY_STATE``):
after one untimed call (Numba's compilation), free heap pages are handed back, the peak RSS is reset and
``extra MiB`` is how far the timed calls raise it above the inputs (what the forward saves for backward,
plus both passes' scratch). Times are medians of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numpy as np

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 64
SIDES = ["numba", "torch-sdpa"]


def _ours(q, k, v, g, scale):
    import minigrad as mg

    be = mg.get_backend("numba")
    fwd, bwd = be.kernel("attention_forward"), be.kernel("attention_backward")
    state = {}

    def forward():
        state["out"], state["saved"] = fwd(q, k, v, scale, 0)

    def backward():
        return bwd(g, q, k, v, state.pop("saved"), scale, 0)
    return forward, backward


def _torch(q, k, v, g, scale):
    import torch

    torch.set_num_threads(_common.THREADS)
    # torch's natural layout, (B, H, T, D)
    qt, kt, vt = (torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1, 3))).requires_grad_() for a in (q, k, v))
    gt = torch.from_numpy(np.ascontiguousarray(g.transpose(0, 2, 1, 3)))
    state = {}

    def forward():
        state["out"] = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True, scale=scale,
                                                                        enable_gqa=True)

    def backward():
        state.pop("out").backward(gt)
        qt.grad = kt.grad = vt.grad = None
    return forward, backward


def worker(side: str, batch: int, seq: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((batch, seq, HEADS, HEAD_DIM), dtype=np.float32)
    k, v = (rng.standard_normal((batch, seq, KV_HEADS, HEAD_DIM), dtype=np.float32) for _ in range(2))
    g = rng.standard_normal(q.shape, dtype=np.float32)
    forward, backward = (_ours if side == "numba" else _torch)(q, k, v, g, 1 / math.sqrt(HEAD_DIM))
    forward()
    backward()  # warm-up: compilation
    _common.reset_peak_rss()
    base = _common.status_bytes("VmRSS")
    t_fwd, t_bwd = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        backward()
        t_bwd.append(time.perf_counter() - t1)
        t_fwd.append(t1 - t0)
    return dict(side=side, seq=seq, fwd_ms=1e3 * statistics.median(t_fwd), bwd_ms=1e3 * statistics.median(t_bwd),
                extra=_common.status_bytes("VmHWM") - base)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seqs", nargs="+", type=int, default=[256, 512, 1024, 2048, 4096, 8192])
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=SIDES)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "SEQ"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.batch, int(args.worker[1]), args.repeats)))
        return
    print(f"batch {args.batch}, {HEADS} heads, {KV_HEADS} kv heads, head size {HEAD_DIM}, float32, "
          f"{_common.THREADS} threads; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'seq':>6} {'side':11} {'fwd ms':>8} {'bwd ms':>8} {'total ms':>9} {'extra MiB':>10}")
    rows = []
    for seq in args.seqs:
        for side in args.sides:
            env = dict(os.environ, **({} if side == "numba" else _common.GLIBC_STEADY_STATE))
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", side, str(seq), "--batch",
                                   str(args.batch), "--repeats", str(args.repeats)], capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                print(f"{seq:6d} {side:11} failed (exit {proc.returncode}): "
                      f"{(proc.stderr.strip().splitlines() or [''])[-1][:100]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{seq:6d} {side:11} {r['fwd_ms']:8.1f} {r['bwd_ms']:8.1f} {r['fwd_ms'] + r['bwd_ms']:9.1f} "
                  f"{r['extra'] / 2**20:10.0f}", flush=True)
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
