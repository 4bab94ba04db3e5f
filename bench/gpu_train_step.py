"""One training step of the same ~125M-parameter Llama (seq 1024) in minigrad on CuPy and in PyTorch eager
CUDA (transformers' LlamaForCausalLM with SDPA attention), in float32 with TF32 matmuls and in bfloat16
(float32 master weights on both sides: minigrad's MixedPrecision, torch.autocast), as ratios in one run.

    python bench/gpu_train_step.py [--steps N] [--batch B] [--precisions tf32,bf16] [--profile] [--json FILE]

A step is forward, mean cross-entropy, backward, gradient clipping at 1.0 and an AdamW update, on the same
weights and the same batch. Steps are timed with CUDA synchronisation after each, the two sides
alternating; the median is reported as tokens/s and as achieved FLOP/s (6 * matmul parameters * tokens
plus the causal attention products, 6 * layers * batch * seq^2 * hidden) over the GPU's matmul peak,
measured in the same run (8192^3 cuBLAS products in TF32 and in bfloat16). ``--profile`` adds, for
minigrad, the time each fused kernel takes per step (each call timed with CUDA events: the profiled
step is slower than the plain one). Without a GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import minigrad as mg  # noqa: E402  (first: its process-wide settings)

MODEL = dict(hidden_size=768, num_layers=12, num_heads=12, kv_heads=12, ffn_size=2048, vocab_size=32000,
             max_seq_len=1024, tie_word_embeddings=False)
LR, WEIGHT_DECAY, CLIP = 3e-4, 0.1, 1.0


def matmul_peak(cp, dtype, n: int = 8192, repeats: int = 5) -> float:
    """Best-of-``repeats`` n^3 cuBLAS rate in FLOP/s for ``dtype`` (float32 runs with TF32 enabled)."""
    a = cp.random.standard_normal((n, n), dtype=cp.float32).astype(dtype)
    b = cp.random.standard_normal((n, n), dtype=cp.float32).astype(dtype)
    a @ b
    cp.cuda.Device().synchronize()
    best = min(_timed(cp, lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(cp, fn) -> float:
    cp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    fn()
    cp.cuda.Device().synchronize()
    return time.perf_counter() - t0


def model_flops(model, batch: int, seq: int) -> float:
    c = model.config
    matmul = sum(p.size for name, p in model.named_parameters() if p.ndim == 2 and "embed_tokens" not in name)
    return 6 * matmul * batch * seq + 6 * c.num_layers * batch * seq * seq * c.num_heads * c.head_dim


def ours_step(model, precision: str, ids, targets):
    """A closure running one minigrad training step; returns the loss."""
    from minigrad import optim

    amp = optim.MixedPrecision(model, "bfloat16", optim.LossScaler(enabled=False)) if precision == "bf16" else None
    params = amp.masters if amp else model.parameters()
    opt = optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    if amp:
        amp.attach(opt)
    x, y = mg.tensor(ids, backend="cupy"), mg.tensor(targets, backend="cupy")

    def step() -> float:
        loss = mg.cross_entropy(model(x), y)
        if amp:
            amp.backward(loss)
            amp.unscale_and_clip(CLIP)
            amp.step()
            amp.zero_grad()
        else:
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            opt.zero_grad()
        return loss.item()
    return step


def torch_step(ours, precision: str, ids, targets):
    import torch
    import transformers

    c = ours.config
    cfg = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.ffn_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.n_kv_heads,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        attn_implementation="sdpa")
    model = transformers.LlamaForCausalLM(cfg).float()
    model.load_state_dict({n: torch.from_numpy(w) for n, w in ours.state_dict().items()})
    model = model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    x, y = torch.from_numpy(ids).cuda(), torch.from_numpy(targets).cuda().reshape(-1)

    def step() -> float:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def profile(cp, backend, step) -> dict[str, float]:
    """ms per step in each fused kernel (CUDA events around every call), and the step's total."""
    from kernels.contracts import CONTRACTS

    spent = dict.fromkeys(CONTRACTS, 0.0)
    originals = {name: backend.kernel(name) for name in CONTRACTS}

    def timed(name, fn):
        def call(*a, **k):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            out = fn(*a, **k)
            stop.record()
            stop.synchronize()
            spent[name] += cp.cuda.get_elapsed_time(start, stop)
            return out
        return call
    backend._bound.update({n: timed(n, f) for n, f in originals.items()})
    try:
        total = _timed(cp, step) * 1e3
    finally:
        backend._bound.update(originals)
    return {"step_ms": total, **{n: v for n, v in spent.items() if v}}


def run(cp, precision: str, batch: int, steps: int, want_profile: bool) -> dict:
    import numpy as np
    import torch

    import nn

    mg.backend.set_tf32(True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rng = np.random.default_rng(0)
    ids = rng.integers(0, MODEL["vocab_size"], size=(batch, MODEL["max_seq_len"]))
    targets = rng.integers(0, MODEL["vocab_size"], size=(batch, MODEL["max_seq_len"]))
    ours = nn.build_model(MODEL, backend="cupy", seed=0)
    flops = model_flops(ours, batch, MODEL["max_seq_len"])
    sides = {"torch": torch_step(ours, precision, ids, targets), "minigrad": ours_step(ours, precision, ids, targets)}
    first = {k: f() for k, f in sides.items()}  # warm-up: CuPy compiles its kernels here (cached on disk after)
    for f in sides.values():
        f()
    times = {k: [] for k in sides}
    for _ in range(steps):
        for k, f in sides.items():
            sync = torch.cuda.synchronize if k == "torch" else cp.cuda.Device().synchronize
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    tokens = batch * MODEL["max_seq_len"]
    row = {"precision": precision, "batch": batch, "tokens_per_step": tokens, "params": ours.num_parameters(),
           "first_loss": first}
    for k, ts in times.items():
        t = statistics.median(ts)
        row[k] = {"ms": t * 1e3, "tokens_per_s": tokens / t, "flops_per_s": flops / t}
    row["ratio_minigrad_over_torch"] = row["minigrad"]["tokens_per_s"] / row["torch"]["tokens_per_s"]
    if want_profile:
        row["minigrad_profile_ms"] = profile(cp, mg.get_backend("cupy"), sides["minigrad"])
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side, after two warm-up steps")
    ap.add_argument("--batch", type=int, default=8, help="sequences of 1024 tokens per step")
    ap.add_argument("--precisions", default="tf32,bf16", help="comma-separated: tf32 (float32), bf16")
    ap.add_argument("--profile", action="store_true", help="also time minigrad's fused kernels per step")
    ap.add_argument("--json", metavar="FILE", help="write the results there as JSON")
    args = ap.parse_args(argv)
    precisions = args.precisions.split(",")
    bad = [p for p in precisions if p not in ("tf32", "bf16")]
    if bad or args.steps < 1 or args.batch < 1:
        print(f"error: --precisions {args.precisions} / --steps {args.steps} / --batch {args.batch}: expected "
              "tf32 and/or bf16 and positive counts", file=sys.stderr)
        return 2
    reason = mg.backend.cuda_unavailable()
    if reason is not None:
        print(f"bench/gpu_train_step.py needs a GPU: {reason}", file=sys.stderr)
        return 2
    import cupy as cp

    mg.backend.set_tf32(True)
    peaks = {"tf32": matmul_peak(cp, cp.float32), "bf16": matmul_peak(cp, mg.optim.amp.bfloat16())}
    print(f"{cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}: matmul peak (8192^3) "
          f"TF32 {peaks['tf32'] / 1e12:.0f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.0f} TFLOP/s")
    rows = []
    for p in precisions:
        r = run(cp, p, args.batch, args.steps, args.profile)
        r["matmul_peak_flops_per_s"] = peaks[p]
        rows.append(r)
        m, t = r["minigrad"], r["torch"]
        print(f"{p}: minigrad {m['tokens_per_s']:,.0f} tok/s ({m['ms']:.1f} ms, "
              f"{m['flops_per_s'] / peaks[p]:.0%} of peak) | torch {t['tokens_per_s']:,.0f} tok/s ({t['ms']:.1f} ms, "
              f"{t['flops_per_s'] / peaks[p]:.0%} of peak) | minigrad / torch {r['ratio_minigrad_over_torch']:.2f}x"
              f" | first loss {r['first_loss']['minigrad']:.4f} vs {r['first_loss']['torch']:.4f}")
        if args.profile:
            prof = r["minigrad_profile_ms"]
            print("  profile (ms/step): " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                       sorted(prof.items(), key=lambda kv: -kv[1])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peaks": peaks, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
