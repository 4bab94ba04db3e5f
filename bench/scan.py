"""The Mamba scans, forward + backward, and Mamba2 training steps, in minigrad and in PyTorch.

    python bench/scan.py [--part kernels|models|all] [--repeats N] [--torch-repeats N]

Kernels (float32, two threads everywhere, one run):

* Mamba1 selective scan, batch 4, seq 512, d_inner 512, d_state 16: our Numba kernel, its NumPy twin, and
  PyTorch's sequential reference (transformers' ``mamba_selective_scan`` slow path, autograd for the backward).
* Mamba2 SSD, the same 2048 tokens, 8 heads x 64, state 64, chunk 64: Numba, the NumPy twin, and transformers'
  ``mamba2_chunk_scan`` (their pure-torch path, also chunked).

Each is timed as forward + backward, best of ``--repeats`` (wall clock; the last column compares CPU
seconds), except torch's sequential scan (about a minute a run on 2 cores): best of ``--torch-repeats``.
The floor is the time the kernel's exp() calls alone would take at this machine's exp throughput, measured in
the same run (``fast_exp`` over an in-cache array on the same threads): the scan makes 2 exp per (token,
channel, state entry) in all (forward, and the backward's recomputation); the SSD makes one per entry of each
chunk's causal decay mask and per step, twice. The SSD is bound by multiply-adds, not exp, so it is also shown
against the float32 GEMM rate NumPy reaches (2048^3) for its multiply-adds.

Models: training tokens/s (forward, cross-entropy, backward, AdamW) of a pure Mamba2 model and the Llama nano
model of ``bench/train_step.py`` with (about) the same parameter count, at seq 256 (batch 8) and seq 1024
(batch 2), beside transformers' Mamba2ForCausalLM and LlamaForCausalLM holding the same weights.

A bench may unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE together before NumPy loads; this one reports them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numba
import numpy as np
import torch
import transformers

import kernels.cpu as cpu
import minigrad as mg
import nn
from kernels.cpu._fast_math import fast_exp
from kernels.reference import KERNELS as REFERENCE

THREADS = _common.THREADS
SCAN = dict(batch=4, seq=512, d_inner=512, d_state=16, chunk=64)
SSD = dict(batch=4, seq=512, heads=8, head_dim=64, d_state=64, chunk=64)


def best_of(fn, repeats: int, cpu: list | None = None) -> float:
    """Best wall-clock time of ``repeats`` runs; the best CPU time (all threads) is appended to ``cpu``."""
    fn()  # warm-up (Numba's compile or cache load)
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if cpu is not None:
        cpu.append(min(cpu_times))
    return min(times)


@numba.njit(parallel=True, cache=True)
def _exps(x, out, reps):  # pragma: no cover - compiled
    for t in numba.prange(out.shape[0]):
        o = out[t]
        for r in range(reps):
            xs = x[r % x.shape[0]]
            for j in range(xs.shape[0]):
                o[j] = fast_exp(xs[j])


def exp_throughput() -> float:
    """fast_exp calls per second over all threads, on in-cache data (the compute floor of exp)."""
    x = -np.random.default_rng(0).random((4, 4096)).astype(np.float32) * 5
    out = np.zeros((numba.get_num_threads(), 4096), np.float32)
    reps = 2000
    return out.size * reps / best_of(lambda: _exps(x, out, reps), 5)


def sgemm_rate() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048 ** 3 / best_of(lambda: a @ a, 3)


def scan_case():
    s = SCAN
    rng = np.random.default_rng(0)
    b, t, d, n = s["batch"], s["seq"], s["d_inner"], s["d_state"]
    u = rng.standard_normal((b, t, d), dtype=np.float32)
    delta = (rng.random((b, t, d), dtype=np.float32) * 0.1).astype(np.float32)
    A = -np.exp(rng.standard_normal((d, n)).astype(np.float32))
    B, C = rng.standard_normal((b, t, n), dtype=np.float32), rng.standard_normal((b, t, n), dtype=np.float32)
    g = rng.standard_normal((b, t, d), dtype=np.float32)
    exps = 2 * b * t * d * n

    def ours(table, xp_args):
        def run():
            y, last, starts = table["selective_scan_forward"](*xp_args, u, delta, A, B, C, None, s["chunk"])
            table["selective_scan_backward"](*xp_args, g, u, delta, A, B, C, starts, s["chunk"])
        return run

    tu, td, tA, tB, tC = (torch.tensor(v, requires_grad=True) for v in (u.transpose(0, 2, 1), delta.transpose(0, 2, 1),
                                                                      A, B.transpose(0, 2, 1), C.transpose(0, 2, 1)))
    tg = torch.from_numpy(g.transpose(0, 2, 1).copy())
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    def theirs():
        for v in (tu, td, tA, tB, tC):
            v.grad = None
        (mamba_selective_scan(tu, td, tA, tB, tC) * tg).sum().backward()

    return ours(cpu.KERNELS, ()), ours(REFERENCE, (np,)), theirs, exps, None


def ssd_case():
    s = SSD
    rng = np.random.default_rng(1)
    b, t, h, p, n, q = s["batch"], s["seq"], s["heads"], s["head_dim"], s["d_state"], s["chunk"]
    x = rng.standard_normal((b, t, 1, h, p), dtype=np.float32)
    dt = (rng.random((b, t, h), dtype=np.float32) * 0.1 + 0.001).astype(np.float32)
    A = -np.arange(1, h + 1, dtype=np.float32)
    a = dt * A
    B, C = (rng.standard_normal((b, t, 1, 1, n), dtype=np.float32) for _ in range(2))
    g = rng.standard_normal(x.shape, dtype=np.float32)
    nc = -(-t // q)
    tri = q * (q + 1) // 2
    exps = 2 * b * h * nc * (tri + q)
    macs = b * h * nc * (tri * (n + p) + 2 * q * p * n + tri * (3 * n + 2 * p) + 5 * q * p * n)   # fwd + bwd

    def ours(table, xp_args):
        def run():
            y, last, starts = table["ssd_forward"](*xp_args, x, a, B, C, q, None)
            table["ssd_backward"](*xp_args, g, x, a, B, C, q, starts)
        return run

    from transformers.models.mamba2.modeling_mamba2 import mamba2_chunk_scan
    tx, tdt, tA = torch.tensor(x[:, :, 0], requires_grad=True), torch.tensor(dt, requires_grad=True), torch.tensor(
        A, requires_grad=True)
    tB, tC = torch.tensor(B[:, :, 0], requires_grad=True), torch.tensor(C[:, :, 0], requires_grad=True)
    tg = torch.from_numpy(g[:, :, 0].copy())

    def theirs():
        for v in (tx, tdt, tA, tB, tC):
            v.grad = None
        (mamba2_chunk_scan(tx, tdt, tA, tB, tC, q) * tg).sum().backward()

    return ours(cpu.KERNELS, ()), ours(REFERENCE, (np,)), theirs, exps, 2 * macs


def kernels_part(repeats: int, torch_repeats: int) -> None:
    rate, peak = exp_throughput(), sgemm_rate()
    print(f"exp throughput (fast_exp, {THREADS} threads, in cache): {rate / 1e9:.2f} G/s; "
          f"numpy sgemm 2048^3: {peak / 1e9:.0f} GFLOP/s")
    print(f"{'fwd+bwd':12} {'numba ms':>9} {'numpy ms':>9} {'torch ms':>9} {'numpy/numba':>11} {'torch/numba':>11} "
          f"{'exp floor ms':>12} {'x floor':>7} {'gemm floor ms':>13} {'x gemm':>6} {'cpu numpy/numba':>15}")
    for name, case in (("mamba1 scan", scan_case), ("mamba2 ssd", ssd_case)):
        numba_run, numpy_run, torch_run, exps, flops = case()
        cpu: list[float] = []  # CPU seconds, which another process's load disturbs less than wall time
        t_numba = best_of(numba_run, repeats, cpu)
        t_numpy = best_of(numpy_run, max(1, repeats // 2), cpu)
        t_torch = best_of(torch_run, torch_repeats if name == "mamba1 scan" else repeats)
        floor = exps / rate
        gemm = f"{1e3 * flops / peak:13.1f} {t_numba / (flops / peak):5.1f}x" if flops else f"{'-':>13} {'-':>6}"
        print(f"{name:12} {1e3 * t_numba:9.1f} {1e3 * t_numpy:9.1f} {1e3 * t_torch:9.1f} {t_numpy / t_numba:10.1f}x "
              f"{t_torch / t_numba:10.1f}x {1e3 * floor:12.2f} {t_numba / floor:6.1f}x {gemm} {cpu[1] / cpu[0]:14.1f}x")


# ---- models ---------------------------------------------------------------------------------------------

LLAMA = dict(hidden_size=256, num_layers=4, num_heads=4, kv_heads=2, vocab_size=4096)   # bench/train_step.py nano
MAMBA2 = dict(hidden_size=256, vocab_size=4096, mamba2_head_dim=64, mamba2_state_size=64, mamba2_chunk_size=64,
              mamba2_expand=2, mamba2_n_groups=1, mamba2_conv_kernel=4)


def mamba2_layers_matching(llama_params: int) -> int:
    """The number of Mamba2 layers whose model is closest in parameters to the Llama nano model."""
    def count(layers):
        cfg = {**MAMBA2, "num_layers": layers, "mamba_layers": list(range(layers))}
        return nn.parameter_count(nn.model_config(cfg))
    return min(range(1, 16), key=lambda k: abs(count(k) - llama_params))


def torch_mamba2(ours: nn.CausalLM) -> torch.nn.Module:
    c, d = ours.config, ours.config.mamba
    cfg = transformers.Mamba2Config(vocab_size=c.vocab_size, hidden_size=c.hidden_size, state_size=d.d_state,
                                    num_hidden_layers=c.num_layers, expand=d.d_inner // c.hidden_size,
                                    conv_kernel=d.d_conv, num_heads=d.num_heads, head_dim=d.head_dim,
                                    n_groups=d.n_groups, chunk_size=d.chunk, layer_norm_epsilon=c.rms_norm_eps,
                                    tie_word_embeddings=c.tie_word_embeddings)
    model = transformers.Mamba2ForCausalLM(cfg).float()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()},
                          strict=not c.tie_word_embeddings)
    return model.train()


def step_pair(ours: nn.CausalLM, ref: torch.nn.Module, batch: int, seq: int, steps: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 4096, (batch, seq)), rng.integers(0, 4096, (batch, seq))
    ids_mg, targets_mg = mg.tensor(ids, backend="numba"), mg.tensor(targets, backend="numba")
    params = list(ours.parameters())
    opt = mg.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets).reshape(-1)
    opt_t = torch.optim.AdamW(ref.parameters(), lr=3e-4, weight_decay=0.1)

    def step_ours():
        for p in params:
            p.grad = None
        mg.cross_entropy(ours(ids_mg), targets_mg).backward()
        opt.step()

    def step_torch():
        opt_t.zero_grad(set_to_none=True)
        logits = ref(ids_t).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets_t).backward()
        opt_t.step()

    step_ours(), step_torch()
    t_ours, t_torch = [], []
    for _ in range(steps):  # alternate, so a burst of load from elsewhere hits both
        t0 = time.perf_counter()
        step_ours()
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step_torch()
        t_torch.append(time.perf_counter() - t0)
    return batch * seq / statistics.median(t_ours), batch * seq / statistics.median(t_torch)


def models_part(steps: int) -> None:
    import train_step  # bench/train_step.py: the Llama twin

    print(f"{'model':8} {'params':>9} {'seq':>5} {'batch':>5} {'ours tok/s':>10} {'torch tok/s':>11} "
          f"{'ours/torch':>10}")
    for seq, batch in ((256, 8), (1024, 2)):
        llama = nn.build_model({**LLAMA, "max_seq_len": seq}, backend="numba")
        layers = mamba2_layers_matching(llama.num_parameters())
        mamba = nn.build_model({**MAMBA2, "num_layers": layers, "mamba_layers": list(range(layers)),
                                "max_seq_len": seq}, backend="numba")
        for name, ours, ref in (("llama", llama, train_step.torch_twin(llama)), ("mamba2", mamba, torch_mamba2(mamba))):
            tok, tok_t = step_pair(ours, ref, batch, seq, steps)
            print(f"{name:8} {ours.num_parameters():9,d} {seq:5d} {batch:5d} {tok:10.0f} {tok_t:11.0f} "
                  f"{tok / tok_t:9.2f}x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["kernels", "models", "all"], default="all")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each kernel (best is shown)")
    ap.add_argument("--torch-repeats", type=int, default=1, help="timed runs of torch's sequential scan")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per model and side")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={THREADS}  load average {load:.2f}  " + "  ".join(f"{k}={v}" for k, v in env.items()))
    if args.part in ("kernels", "all"):
        kernels_part(args.repeats, args.torch_repeats)
    if args.part in ("models", "all"):
        models_part(args.steps)


if __name__ == "__main__":
    main()
