"""One training step of the same Llama model in minigrad (backend "numba") and in three PyTorch peers.

    python bench/train_step.py [--shapes nano small seq1024 ...] [--sides ours torch-sdpa ...] [--steps N]
        [--rounds R] [--json FILE]

A step is forward, mean cross-entropy, backward and an AdamW update, on the same weights and the same
batch, with two threads on every side. The sides (bench/_torch_llama.py):

* ``ours``: minigrad on the numba backend;
* ``torch-llama``: transformers' LlamaForCausalLM, eager attention (materialises (B, H, T, T) scores);
* ``torch-sdpa``: a nanoGPT-style Llama on ``F.scaled_dot_product_attention`` (flash-style on the CPU);
* ``torch-compile``: that model under ``torch.compile`` (inductor; it needs a C++ compiler, and a failure
  to compile is reported in the table, not raised).

Each (shape, side) runs in a process of its own (``--worker``), so its peak resident memory is its own
(the torch sides with glibc's malloc settings, not minigrad's: ``_common.GLIBC_STEADY_STATE``): after a
warm-up step (Numba's and inductor's compilation), free heap pages are handed back, the peak is reset
(Linux's /proc/self/clear_refs) and the RSS high-water mark of the timed steps is reported; it includes
the interpreter, the libraries, weights, gradients and optimizer state. With ``--rounds R`` every side runs R
times, in turn, so a burst of load hits every side; the median step over all rounds is reported. A side
that runs out of memory (or is skipped because it would) says so in its row.

Time ratios are ours ÷ the side's time (below 1: ours is faster); RSS ratios are ours ÷ the side's.
Achieved GFLOP/s counts 6 * (matmul parameters) * tokens plus the attention products (12 * layers * batch
* seq^2 * hidden: QK^T and PV, forward and backward, over the full square), as a fraction of NumPy's
float32 sgemm rate measured in the same run (2048^3).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numpy as np

THREADS = _common.THREADS
NANO = dict(hidden_size=256, num_layers=4, num_heads=4, kv_heads=2, vocab_size=4096)
SMALL = dict(hidden_size=512, num_layers=8, num_heads=8, kv_heads=4, vocab_size=4096)
SHAPES = {  # widths, batch, seq
    "nano": (NANO, 8, 256),
    "small": (SMALL, 4, 512),
    **{f"seq{n}": (NANO, 2, n) for n in (1024, 2048, 4096, 8192)},
}
DEFAULT_SHAPES = ["nano", "small", "seq1024", "seq2048", "seq4096"]
SIDES = ["ours", "torch-llama", "torch-sdpa", "torch-compile"]
LR, WEIGHT_DECAY = 3e-4, 0.1
HERE = os.path.dirname(os.path.abspath(__file__))


def torch_twin(ours):
    """transformers' LlamaForCausalLM holding our model's weights (bench/scan.py uses it too)."""
    import _torch_llama
    return _torch_llama.hf_llama(ours)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 n^3 matmul rate of NumPy, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    return 2 * n ** 3 / min(_timed(lambda: a @ b) for _ in range(repeats)) / 1e9


def model_flops(cfg, batch: int, seq: int, matmul_params: int) -> float:
    """Training FLOPs of one step: 6 per matmul parameter per token, plus attention's products."""
    attention = 12 * cfg.num_layers * batch * seq * seq * cfg.num_heads * cfg.head_dim
    return 6 * matmul_params * batch * seq + attention


# ---- one (shape, side) in its own process ---------------------------------------------------


def _step_ours(model, ids, targets):
    import minigrad as mg

    ids_mg, targets_mg = mg.tensor(ids, backend="numba"), mg.tensor(targets, backend="numba")
    params = list(model.parameters())
    opt = mg.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    def step() -> float:
        for p in params:
            p.grad = None
        loss = mg.cross_entropy(model(ids_mg), targets_mg)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _step_torch(model, ids, targets):
    import torch

    ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets).reshape(-1)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = model(ids_t)
        logits = out.logits if hasattr(out, "logits") else out
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets_t)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def worker(side: str, shape: str, steps: int) -> dict:
    """Build ``side``'s model for ``shape``, warm up, and time ``steps`` steps; peak RSS of those steps."""
    import nn

    widths, batch, seq = SHAPES[shape]
    ours = nn.build_model({**widths, "max_seq_len": seq}, backend="numba" if side == "ours" else "numpy", seed=0)
    cfg = ours.config
    matmul_params = sum(p.size for name, p in ours.named_parameters() if p.ndim == 2 and "embed_tokens" not in name)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab_size, size=(batch, seq))
    targets = rng.integers(0, cfg.vocab_size, size=(batch, seq))
    if side == "ours":
        step = _step_ours(ours, ids, targets)
    else:
        _common.torch_openmp_defaults()
        import _torch_llama
        import torch

        torch.set_num_threads(THREADS)
        model = _torch_llama.hf_llama(ours) if side == "torch-llama" else _torch_llama.SdpaLlama(ours)
        if side == "torch-compile":
            model = torch.compile(model)
        del ours
        gc.collect()
        step = _step_torch(model, ids, targets)
    out = dict(side=side, shape=shape, tokens=batch * seq, flops=model_flops(cfg, batch, seq, matmul_params))
    try:
        out["loss"] = step()  # warm-up: Numba's or inductor's compilation, untimed
    except Exception as e:  # torch.compile without a working compiler, say: a row that says why
        out["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}"
        return out
    out["peak_reset"] = _common.reset_peak_rss()
    out["times"] = [_timed(step) for _ in range(steps)]
    out["peak_rss"] = _common.status_bytes("VmHWM")
    return out


# ---- the driver ---------------------------------------------------------------------------


def _eager_attention_bytes(shape: str) -> int:
    """What transformers' eager attention keeps for backward: scores, probabilities and their float32 copy,
    (B, H, T, T) each, in every layer."""
    widths, batch, seq = SHAPES[shape]
    return 3 * widths["num_layers"] * batch * widths["num_heads"] * seq * seq * 4


def run_worker(side: str, shape: str, steps: int) -> dict:
    if side == "torch-llama":
        import nn
        need, free = _eager_attention_bytes(shape), nn.available_memory()
        if free is not None and need > 0.8 * free:
            return dict(side=side, shape=shape, error=f"skipped: eager attention alone needs ~{need / 2**30:.0f} GiB, "
                                                      f"{free / 2**30:.0f} GiB free")
    env = dict(os.environ, **({} if side == "ours" else _common.GLIBC_STEADY_STATE))  # torch's malloc, not ours
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", side, shape, "--steps", str(steps)],
                          capture_output=True, text=True, cwd=os.path.dirname(HERE), env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else \
            (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
        return dict(side=side, shape=shape, error=f"exit {proc.returncode}: {why}")
    return json.loads(lines[-1])


def merge(runs: list[dict]) -> dict:
    """One row from a side's rounds: every round's steps pooled, the highest peak."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    times = [t for r in ok for t in r["times"]]
    return {**ok[0], "ms": 1e3 * statistics.median(times), "peak_rss": max(r["peak_rss"] for r in ok)}


def print_table(rows: list[dict], peak: float) -> None:
    print(f"\n{'shape':8} {'tokens':>6} {'side':14} {'ms/step':>8} {'tok/s':>7} {'time ours/side':>14} "
          f"{'GF/s':>6} {'%peak':>5} {'peak RSS MiB':>12} {'RSS ours/side':>13}  loss")
    for shape in dict.fromkeys(r["shape"] for r in rows):
        group = [r for r in rows if r["shape"] == shape]
        ours = next((r for r in group if r["side"] == "ours" and "error" not in r), None)
        for r in group:
            if "error" in r:
                print(f"{shape:8} {'':>6} {r['side']:14} {r['error']}")
                continue
            t_ratio = f"{ours['ms'] / r['ms']:13.2f}x" if ours else f"{'-':>14}"
            m_ratio = f"{ours['peak_rss'] / r['peak_rss']:12.2f}x" if ours else f"{'-':>13}"
            gf = r["flops"] / (r["ms"] / 1e3) / 1e9
            print(f"{shape:8} {r['tokens']:6d} {r['side']:14} {r['ms']:8.0f} {r['tokens'] / r['ms'] * 1e3:7.0f} "
                  f"{t_ratio} {gf:6.1f} {100 * gf / peak:4.0f}% {r['peak_rss'] / 2**20:12.0f} {m_ratio}  "
                  f"{r['loss']:.5f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=DEFAULT_SHAPES)
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=SIDES)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side and round (after one warm-up step)")
    ap.add_argument("--rounds", type=int, default=1, help="times every side runs, in turn")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "SHAPE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        ap.error("--steps and --rounds must be at least 1")
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps)))
        return
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"threads={THREADS}  " + "  ".join(f"{k}={v}" for k, v in env.items())
          + f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    peak = sgemm_gflops()
    print(f"sgemm 2048^3: numpy {peak:.0f} GFLOP/s")
    rows = []
    for shape in args.shapes:
        runs: dict[str, list] = {side: [] for side in args.sides}
        for _ in range(args.rounds):
            for side in args.sides:
                runs[side].append(run_worker(side, shape, args.steps))
                print(f"  {shape} {side}: " + (runs[side][-1].get("error") or "done"), flush=True)
        rows += [merge(r) for r in runs.values()]
    print_table(rows, peak)
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "times"} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
