"""Per-op overhead on tiny tensors and throughput on large ones: minigrad (numpy and numba backends)
vs PyTorch CPU eager.

    python bench/op_overhead.py            # both tables (about three minutes on 2 cores)
    python bench/op_overhead.py --table large  # only the large-tensor table
    python bench/op_overhead.py --quick    # fewer repeats, smaller "large" shapes
    python bench/op_overhead.py --profile  # also cProfile minigrad's tiny-op loop

Both libraries do the same work on the same float32 data with the same number of threads.
Each row is the median over repeats of (time of a timed loop / calls in the loop), after a
warmup; minigrad runs each case on its "numpy" backend (plain NumPy) and on its "numba" one.
Tiny rows measure what one op costs beyond its arithmetic (dispatch, graph recording, Python);
large rows measure the arithmetic itself.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import time
from collections.abc import Callable

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numpy as np
import torch

import minigrad as mg

THREADS = _common.THREADS


def loop_length(fn: Callable[[], object], target_s: float) -> int:
    """How many calls of ``fn`` take about ``target_s`` (the doubling also warms it up)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(t, 1e-9)))
        n *= 2


def time_loop(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def compare(fns: list[Callable[[], object]], target_s: float, repeats: int) -> list[float]:
    """Median seconds per call of each function. The loops alternate, so a burst of load from
    another process on the machine slows every side rather than one."""
    lengths = [loop_length(fn, target_s) for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, n, ts in zip(fns, lengths, times):
            ts.append(time_loop(fn, n))
    return [statistics.median(ts) for ts in times]


def tiny_cases(backend: str, rng: np.random.Generator) -> list:
    """(name, minigrad callable on ``backend``, torch callable) on (4, 4) float32 inputs that require
    grad, so both libraries record a graph, as they would during training."""
    a_np, b_np = (rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
    a, b = mg.tensor(a_np, requires_grad=True, backend=backend), mg.tensor(b_np, requires_grad=True, backend=backend)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    w_np = rng.standard_normal((4, 4)).astype(np.float32)
    bias_np = rng.standard_normal(4).astype(np.float32)
    w, bias = (mg.tensor(v, requires_grad=True, backend=backend) for v in (w_np, bias_np))
    tw, tbias = torch.tensor(w_np, requires_grad=True), torch.tensor(bias_np, requires_grad=True)
    x, tx = mg.tensor(a_np, backend=backend), torch.tensor(a_np)  # a plain input

    def mg_step():
        w.grad = bias.grad = None
        ((x @ w + bias).tanh() * 0.5).sum().backward()

    def torch_step():
        tw.grad = tbias.grad = None
        ((tx @ tw + tbias).tanh() * 0.5).sum().backward()

    def mg_no_grad_add():
        with mg.no_grad():
            return a + b

    def torch_no_grad_add():
        with torch.no_grad():
            return ta + tb

    return [
        ("add", lambda: a + b, lambda: ta + tb),
        ("add (no_grad)", mg_no_grad_add, torch_no_grad_add),
        ("mul", lambda: a * b, lambda: ta * tb),
        ("mul by scalar", lambda: a * 0.5, lambda: ta * 0.5),
        ("matmul", lambda: a @ b, lambda: ta @ tb),
        ("exp", lambda: a.exp(), lambda: ta.exp()),
        ("sum", lambda: a.sum(), lambda: ta.sum()),
        ("sum(axis=-1)", lambda: a.sum(axis=-1), lambda: ta.sum(dim=-1)),
        ("reshape", lambda: a.reshape(2, 8), lambda: ta.reshape(2, 8)),
        ("getitem [1:3]", lambda: a[1:3], lambda: ta[1:3]),
        ("softmax", lambda: a.softmax(-1), lambda: ta.softmax(-1)),
        ("fwd+bwd tanh(x@w+b)*.5 sum", mg_step, torch_step),
    ]


def large_cases(backend: str, rng: np.random.Generator, quick: bool) -> list:
    """Throughput cases; the elementwise ones on 1024 x 1024 (4 MB: the arithmetic, not fresh pages)."""
    n_mm, n_ew = (512, 1024) if quick else (2048, 1024)
    sm_shape = (64, 4096)

    def pair(shape):
        arr = rng.standard_normal(shape).astype(np.float32)
        return mg.tensor(arr, backend=backend), torch.tensor(arr)

    (ma, ta), (mb, tb) = pair((n_mm, n_mm)), pair((n_mm, n_mm))
    (ea, tea), (eb, teb), (row, trow) = pair((n_ew, n_ew)), pair((n_ew, n_ew)), pair((n_ew,))
    sx, tsx = pair(sm_shape)
    # fwd+bwd of a layer on a batch: grads flow to the weight, like a training step.
    xs_np = rng.standard_normal((256, 1024)).astype(np.float32)
    ws_np = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
    xl, wl = mg.tensor(xs_np, backend=backend), mg.tensor(ws_np, requires_grad=True, backend=backend)
    txl, twl = torch.tensor(xs_np), torch.tensor(ws_np, requires_grad=True)

    def mg_layer():
        wl.grad = None
        (xl @ wl).tanh().sum().backward()

    def torch_layer():
        twl.grad = None
        (txl @ twl).tanh().sum().backward()

    ew = f"{n_ew}x{n_ew}"
    return [
        (f"matmul {n_mm}x{n_mm}", lambda: ma @ mb, lambda: ta @ tb),
        (f"add {ew}", lambda: ea + eb, lambda: tea + teb),
        (f"mul {ew} by a row", lambda: ea * row, lambda: tea * trow),
        (f"exp {ew}", lambda: ea.exp(), lambda: tea.exp()),
        (f"tanh {ew}", lambda: ea.tanh(), lambda: tea.tanh()),
        (f"silu {ew}", lambda: ea.silu(), lambda: torch.nn.functional.silu(tea)),
        (f"relu {ew}", lambda: ea.relu(), lambda: torch.relu(tea)),
        (f"gelu {ew}", lambda: ea.gelu(), lambda: torch.nn.functional.gelu(tea)),
        (f"sum {ew}", lambda: ea.sum(), lambda: tea.sum()),
        (f"max(axis=-1) {ew}", lambda: ea.max(axis=-1), lambda: tea.amax(dim=-1)),
        ("softmax 64x4096", lambda: sx.softmax(-1), lambda: tsx.softmax(-1)),
        ("log_softmax 64x4096", lambda: sx.log_softmax(-1), lambda: tsx.log_softmax(-1)),
        ("fwd+bwd tanh(256x1024 @ 1024x1024)", mg_layer, torch_layer),
    ]


BACKENDS = ("numpy", "numba")


def run_table(title: str, make_cases: Callable[[str, np.random.Generator], list], target_s: float,
              repeats: int) -> None:
    """One row per case: minigrad on each backend (the same inputs, from the same seed) and torch."""
    per_backend = [make_cases(b, np.random.default_rng(0)) for b in BACKENDS]
    print(f"\n{title}")
    header = (f"{'case':<36} " + " ".join(f"{b + ' us':>10}" for b in BACKENDS) + f" {'torch us':>10} "
              + " ".join(f"{b + '/torch':>12}" for b in BACKENDS))
    print(header)
    print("-" * len(header))
    for rows in zip(*per_backend):
        name, theirs = rows[0][0], rows[0][2]
        *ours, t_theirs = (t * 1e6 for t in compare([r[1] for r in rows] + [theirs], target_s, repeats))
        print(f"{name:<36} " + " ".join(f"{t:>10.1f}" for t in ours) + f" {t_theirs:>10.1f} "
              + " ".join(f"{t / t_theirs:>11.2f}x" for t in ours), flush=True)


def profile_tiny_ops(backend: str, loops: int, top: int) -> None:
    """cProfile a loop over minigrad's tiny cases: where does the per-op overhead go?"""
    cases = tiny_cases(backend, np.random.default_rng(0))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(loops):
        for _, ours, _ in cases:
            ours()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    print(f"\ncProfile of {loops} loops over the tiny cases (minigrad on {backend}), top {top} by own time")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller large shapes")
    p.add_argument("--profile", action="store_true", help="cProfile minigrad's tiny-op loop too")
    p.add_argument("--table", choices=("tiny", "large", "both"), default="both", help="which table to run")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"torch intra-op threads (default {THREADS}; NumPy's BLAS gets OPENBLAS_NUM_THREADS)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    print(f"minigrad {mg.__version__} (numpy {np.__version__}) vs torch {torch.__version__}, "
          f"{args.threads} threads, float32; medians of {repeats} repeats")
    # Other processes on the machine skew timings, torch's threaded kernels most of all.
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.table in ("tiny", "both"):
        run_table("tiny tensors (4, 4), inputs require grad: per-op overhead", tiny_cases,
                  target_s=0.02 if args.quick else 0.1, repeats=repeats)
    if args.table in ("large", "both"):
        run_table("large tensors: throughput", lambda b, rng: large_cases(b, rng, args.quick),
                  target_s=0.1 if args.quick else 0.5, repeats=repeats)
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    if args.profile:
        for backend in BACKENDS:
            profile_tiny_ops(backend, loops=2000 if args.quick else 20000, top=25)


if __name__ == "__main__":
    main()
