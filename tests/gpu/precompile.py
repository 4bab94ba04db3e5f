"""Compile every CUDA module the GPU tests and the benchmark use, in parallel processes, into CuPy's disk
cache (CUPY_CACHE_DIR), so the test processes that follow load them instead of compiling one by one.

    python tests/gpu/precompile.py [--jobs N] [--list]

Then one training step of a tiny Llama on CuPy in each dtype, to fill the cache with CuPy's own kernels.
Prints one line per module (file, variant, seconds) and per step; exits 1 if any module fails to compile
(its compiler log is printed) or a step fails, 2 without a GPU. ``--list`` prints the modules only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

HEAD_DIMS = (4, 5, 6, 8, 16, 32, 64)  # the tests' attention shapes and the models'
DTYPES = ("float32", "float64", "float16", "bfloat16")


def modules() -> list[tuple[str, tuple[str, ...]]]:
    from kernels.cuda import MODULES
    from kernels.cuda import attention as att

    out = {v for m in MODULES for v in m.compile_variants()}
    for dt in DTYPES:
        for d in HEAD_DIMS:
            out.add(("attention_forward.cu", att.forward_config(1, 1, 1, d, dt)[1]))
            cfgs = att.backward_configs(1, 1, 1, 1, 1, d, dt)
            out.add(("attention_backward_dq.cu", cfgs["dq"][1]))
            out.add(("attention_backward_dkdv.cu", cfgs["dkdv"][1]))
    return sorted(out)


def compile_one(job: tuple[str, tuple[str, ...]]) -> tuple[str, tuple[str, ...], float, str | None]:
    import cupy

    from kernels.cuda import _runtime

    file, options = job
    start = time.perf_counter()
    try:
        cupy.RawModule(code=_runtime.source(file), options=_runtime.COMPILE_OPTIONS + options).compile()
        return file, options, time.perf_counter() - start, None
    except Exception as e:  # a compile error: its log is in the message
        return file, options, time.perf_counter() - start, str(e)


def warm_step(dtype: str) -> tuple[str, float, str | None]:
    """One training step of a tiny Llama on CuPy in ``dtype``: fills CuPy's cache with the elementwise and
    reduction kernels (its own, compiled on first use) that the model tests use, before they run."""
    import numpy as np

    import minigrad as mg
    import nn
    from minigrad import optim

    start = time.perf_counter()
    try:
        cfg = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "kv_heads": 2, "vocab_size": 64, "max_seq_len": 16}
        model = nn.build_model(cfg, backend="cupy")
        amp = optim.MixedPrecision(model, dtype) if dtype in ("float16", "bfloat16") else None
        if dtype == "float64":
            model.to(dtype=np.float64)
        opt = optim.AdamW(amp.masters if amp else model.parameters())
        if amp:
            amp.attach(opt)
        ids = mg.tensor(np.arange(30).reshape(2, 15) % 64, backend="cupy")
        loss = mg.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
        if amp:
            amp.backward(loss)
            amp.unscale_and_clip(1.0)
            amp.step()
        else:
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return dtype, time.perf_counter() - start, None
    except Exception as e:  # reported; the tests will show it too
        return dtype, time.perf_counter() - start, f"{type(e).__name__}: {e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    jobs = modules()
    if args.list:
        print("\n".join(f"{f} {' '.join(o)}" for f, o in jobs))
        return 0
    import minigrad

    reason = minigrad.backend.cuda_unavailable()
    if reason:
        print(f"precompile needs a GPU: {reason}", file=sys.stderr)
        return 2
    start, failed = time.perf_counter(), 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for file, options, seconds, error in pool.map(compile_one, jobs):
            print(f"{'FAIL' if error else 'ok  '} {seconds:5.1f}s {file} {' '.join(options)}")
            if error:
                failed += 1
                print(error[-3000:])
    print(f"{len(jobs)} modules, {failed} failed, {time.perf_counter() - start:.0f}s with {args.jobs} processes")
    with ProcessPoolExecutor(max_workers=4) as pool:
        for dtype, seconds, error in pool.map(warm_step, ("float32", "float64", "float16", "bfloat16")):
            print(f"{'FAIL' if error else 'ok  '} {seconds:5.1f}s a tiny Llama's training step on CuPy in {dtype}"
                  + (f": {error[-2000:]}" if error else ""))
            failed += bool(error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
