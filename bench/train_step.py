"""One training step of the same Llama model in minigrad (backend "numba") and in PyTorch eager.

    python bench/train_step.py [--shape nano|small|both] [--steps N]

A step is forward, mean cross-entropy, backward and an AdamW update, on the same weights and
the same batch, with two threads on both sides. The two are timed alternately (so a busy
machine slows both alike) and the median step of each is reported as tokens/s, with the
ratio ours / torch. Achieved GFLOP/s counts 6 * (matmul parameters) * tokens plus the
attention products (12 * layers * batch * seq^2 * hidden: QK^T and PV, forward and backward,
over the full square, as both sides compute it), as a fraction of NumPy's float32 sgemm peak
measured in the same run (2048^3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common  # first: thread counts, sys.path and minigrad's process settings, before NumPy loads
import numpy as np
import torch
import transformers

import minigrad as mg
import nn

THREADS = _common.THREADS
SHAPES = {
    "nano": dict(model=dict(hidden_size=256, num_layers=4, num_heads=4, kv_heads=2, vocab_size=4096,
                            max_seq_len=256), batch=8, seq=256),
    "small": dict(model=dict(hidden_size=512, num_layers=8, num_heads=8, kv_heads=4, vocab_size=4096,
                             max_seq_len=512), batch=4, seq=512),
}
LR, WEIGHT_DECAY = 3e-4, 0.1


def torch_twin(ours: nn.CausalLM) -> torch.nn.Module:
    """transformers' LlamaForCausalLM (eager attention) holding our model's weights."""
    c = ours.config
    cfg = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.ffn_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.n_kv_heads,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        attn_implementation="eager")
    model = transformers.LlamaForCausalLM(cfg).float()
    weights = {name: torch.from_numpy(p.numpy().copy()) for name, p in ours.named_parameters()}
    model.load_state_dict(weights, strict=not c.tie_word_embeddings)
    return model.train()


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best-of-``repeats`` float32 n^3 matmul rate of NumPy and of torch, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    rates = []
    for fn in (lambda: a @ b, lambda: ta @ tb):
        fn()
        best = min(_timed(fn) for _ in range(repeats))
        rates.append(2 * n ** 3 / best / 1e9)
    return rates[0], rates[1]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def model_flops(model: nn.CausalLM, batch: int, seq: int) -> float:
    """Training FLOPs of one step: 6 per matmul parameter per token, plus attention's products."""
    c = model.config
    matmul_params = sum(p.size for name, p in model.named_parameters()
                        if p.ndim == 2 and "embed_tokens" not in name)
    if c.tie_word_embeddings:
        matmul_params += c.vocab_size * c.hidden_size  # the embedding doubles as lm_head
    attention = 12 * c.num_layers * batch * seq * seq * c.num_heads * c.head_dim
    return 6 * matmul_params * batch * seq + attention


def run_shape(name: str, steps: int, peak: float) -> dict:
    spec = SHAPES[name]
    batch, seq = spec["batch"], spec["seq"]
    ours = nn.build_model(spec["model"], backend="numba", seed=0)
    ref = torch_twin(ours)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, ours.config.vocab_size, size=(batch, seq))
    targets = rng.integers(0, ours.config.vocab_size, size=(batch, seq))

    ids_mg, targets_mg = mg.tensor(ids, backend="numba"), mg.tensor(targets, backend="numba")
    params = list(ours.parameters())
    opt = mg.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    def step_ours() -> float:
        for p in params:
            p.grad = None
        loss = mg.cross_entropy(ours(ids_mg), targets_mg)
        loss.backward()
        opt.step()
        return loss.item()

    ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets).reshape(-1)
    opt_t = torch.optim.AdamW(ref.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def step_torch() -> float:
        opt_t.zero_grad(set_to_none=True)
        logits = ref(ids_t).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets_t)
        loss.backward()
        opt_t.step()
        return loss.item()

    loss_ours, loss_torch = step_ours(), step_torch()  # warm-up (and Numba's compile) untimed
    times_ours, times_torch = [], []
    for _ in range(steps):
        times_ours.append(_timed(step_ours))
        times_torch.append(_timed(step_torch))
    t_ours, t_torch = statistics.median(times_ours), statistics.median(times_torch)
    flops = model_flops(ours, batch, seq)
    return dict(shape=name, tokens=batch * seq, loss_ours=loss_ours, loss_torch=loss_torch,
                tok_ours=batch * seq / t_ours, tok_torch=batch * seq / t_torch,
                gf_ours=flops / t_ours / 1e9, gf_torch=flops / t_torch / 1e9, peak=peak,
                ms_ours=t_ours * 1e3, ms_torch=t_torch * 1e3)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=["nano", "small", "both"], default="both")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up step)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}")
    torch.set_num_threads(THREADS)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"threads={THREADS}  " + "  ".join(f"{k}={v}" for k, v in env.items()))
    np_peak, torch_peak = sgemm_gflops()
    print(f"sgemm 2048^3: numpy {np_peak:.0f} GFLOP/s, torch {torch_peak:.0f} GFLOP/s")
    shapes = ["nano", "small"] if args.shape == "both" else [args.shape]
    rows = [run_shape(s, args.steps, np_peak) for s in shapes]
    print(f"{'shape':6} {'tokens':>6} {'ours ms':>8} {'torch ms':>8} {'ours tok/s':>10} {'torch tok/s':>11} "
          f"{'ours/torch':>10} {'ours GF/s':>9} {'% peak':>6} {'torch GF/s':>10}  loss ours/torch")
    for r in rows:
        print(f"{r['shape']:6} {r['tokens']:6d} {r['ms_ours']:8.0f} {r['ms_torch']:8.0f} {r['tok_ours']:10.0f} "
              f"{r['tok_torch']:11.0f} {r['tok_ours'] / r['tok_torch']:9.2f}x {r['gf_ours']:9.1f} "
              f"{100 * r['gf_ours'] / r['peak']:5.0f}% {r['gf_torch']:10.1f}  "
              f"{r['loss_ours']:.5f}/{r['loss_torch']:.5f}")


if __name__ == "__main__":
    main()
