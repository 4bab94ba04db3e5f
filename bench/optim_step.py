"""One AdamW step over ~10M float32 parameters: minigrad (numpy reference, Numba kernel) vs
torch.optim.AdamW (its CPU default, the single-tensor loop; foreach=True; fused=True).

    python bench/optim_step.py           # 10.2M parameters, 15 timed rounds
    python bench/optim_step.py --quick   # 0.9M parameters, 5 rounds

Every variant updates the same parameters with the same gradients and hyperparameters; each row is
the median time of one ``step()`` after two warmup steps (the first compiles / allocates state);
the variants take turns, round by round, so load from elsewhere on the machine spreads evenly.
The ratio columns are (time / torch's): below 1 means faster than that torch variant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numpy as np
import torch

import minigrad as mg

THREADS = _common.THREADS


def model_shapes(quick: bool) -> list[tuple[int, ...]]:
    """A small Llama-like parameter set: embedding, per layer 4 attention + 3 MLP matrices and 2 norms
    (10.2M parameters; 0.9M with ``quick``)."""
    d, ff, vocab, layers = (128, 344, 2048, 2) if quick else (384, 1024, 8192, 4)
    shapes = [(vocab, d)]
    for _ in range(layers):
        shapes += [(d, d)] * 4 + [(ff, d), (ff, d), (d, ff)] + [(d,), (d,)]
    return shapes + [(d,)]


def time_interleaved(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each step function. Variants take turns within every round, so a
    burst of load on a shared machine hits all of them rather than one."""
    for step in steps.values():  # warmup: compiles the kernel, allocates optimizer state
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    shapes = model_shapes(args.quick)
    rounds = 5 if args.quick else 15
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 1e-2 for s in shapes]
    n = sum(v.size for v in values)
    kw = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    print(f"AdamW step, {n / 1e6:.1f}M float32 parameters in {len(shapes)} tensors, {THREADS} threads, "
          f"numba layers {os.environ.get('NUMBA_THREADING_LAYER', os.environ['NUMBA_THREADING_LAYER_PRIORITY'])}, "
          f"torch {torch.__version__}")

    steps_by_variant, params_by_variant = {}, {}
    for name, backend in [("minigrad numpy (reference)", "numpy"), ("minigrad numba (kernel)", "numba")]:
        params = [mg.tensor(v, requires_grad=True, backend=backend) for v in values]
        for p, g in zip(params, grads):
            p.grad = mg.tensor(g, backend=backend)
        steps_by_variant[name] = mg.optim.AdamW(params, **kw).step
        params_by_variant[name] = params
    for name, extra in [("torch default (foreach=None, fused=None)", {}), ("torch foreach=True", {"foreach": True}),
                        ("torch fused=True", {"fused": True})]:
        params = [torch.tensor(v, requires_grad=True) for v in values]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        steps_by_variant[name] = torch.optim.AdamW(params, **kw, **extra).step
        params_by_variant[name] = params
    results = time_interleaved(steps_by_variant, rounds)

    base, fused = results["torch default (foreach=None, fused=None)"], results["torch fused=True"]
    print(f"{'variant':44s} {'ms/step':>9s} {'GB/s':>7s} {'vs torch default':>17s} {'vs torch fused':>15s}")
    for name, t in results.items():
        gbs = n * 4 * 7 / t / 1e9  # reads p, g, m, v; writes p, m, v
        print(f"{name:44s} {t * 1e3:9.2f} {gbs:7.2f} {t / base:16.2f}x {t / fused:14.2f}x")
    # every variant took the same steps: the parameters must agree (a timing of wrong work is no timing)
    ref = [p.detach().numpy() for p in params_by_variant["torch default (foreach=None, fused=None)"]]
    for name in ("minigrad numpy (reference)", "minigrad numba (kernel)"):
        diff = max(float(np.abs(p.numpy() - r).max()) for p, r in zip(params_by_variant[name], ref))
        print(f"max |{name} - torch default| over all parameters: {diff:.2e}")

if __name__ == "__main__":
    main()
