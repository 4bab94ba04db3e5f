"""Mixture-of-Experts and MLA speed, reported as ratios measured in one run.

    python bench/moe.py [--part moe|mla|both] [--repeats N]

MoE: one MoE layer's forward + backward (router, routed experts, shared expert; the gradient of
every weight and of the input) in three implementations on the same weights and tokens:

* minigrad on the "numba" backend (the Numba routing kernels; per-expert matmuls in BLAS),
* minigrad on the "numpy" backend (the NumPy twins of the same kernels: the spec),
* PyTorch eager: transformers' DeepseekV3MoE (sigmoid router with the score-correction bias,
  renormalised top-k), its experts as ``grouped_mm`` (torch._grouped_mm, the default of
  DeepseekV3ForCausalLM) and as ``eager`` (a Python loop over experts with index_add_).

Shapes: Oxidizr's nano MoE layer (hidden 384, 4 experts of 1536, top-2, one shared expert) and 8
experts top-2 at hidden 512. Calls alternate between the three, so a busy machine slows them alike;
the median is reported.

MLA: training tokens/s (forward, backward, AdamW) of an MLA model and of a grouped-query model with
the same number of parameters (the MLA model's MLP is widened to match), and their KV-cache bytes
per token.
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
import train

torch.set_num_threads(_common.THREADS)

MOE_SHAPES = {
    "nano": dict(hidden=384, experts=4, top_k=2, inner=1536, shared=1, tokens=512),
    "8x-top2-h512": dict(hidden=512, experts=8, top_k=2, inner=1024, shared=1, tokens=1024),
}


def moe_config(s: dict) -> nn.ModelConfig:
    return nn.model_config(dict(hidden_size=s["hidden"], num_heads=4, num_layers=1, num_experts=s["experts"],
                                experts_per_tok=s["top_k"], intermediate_size=s["inner"],
                                num_shared_experts=s["shared"], shared_expert_enabled=s["shared"] > 0,
                                router_score="sigmoid", router_bias=True, norm_topk_prob=True))


def torch_moe(cfg: nn.ModelConfig, ours: nn.MoE, experts_implementation: str) -> torch.nn.Module:
    """transformers' DeepseekV3MoE holding our layer's weights; its experts run as ``grouped_mm`` (what
    DeepseekV3ForCausalLM picks by default) or ``eager`` (a Python loop over the experts)."""
    hf = transformers.DeepseekV3Config(hidden_size=cfg.hidden_size, moe_intermediate_size=cfg.ffn_size,
                                       n_routed_experts=cfg.num_experts, num_experts_per_tok=cfg.experts_per_tok,
                                       n_shared_experts=cfg.shared_experts, n_group=1, topk_group=1,
                                       norm_topk_prob=True, routed_scaling_factor=1.0, hidden_act="silu")
    hf._experts_implementation = experts_implementation
    layer = transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3MoE(hf).float()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.from_numpy(dict(_named(ours))[name].copy()))
    return layer


def _named(module: nn.Module):
    return [(k, v.numpy()) for k, v in module.named_parameters()]


def outputs_agree(layers: dict, refs: dict, x: np.ndarray) -> float:
    """The largest difference between the implementations' outputs (they must do the same work)."""
    with torch.no_grad():
        outs = [ref(torch.from_numpy(x)).numpy() for ref in refs.values()]
    with mg.no_grad():
        outs += [layer(mg.tensor(x, backend=be)).numpy() for be, layer in layers.items()]
    worst = max(float(np.abs(o - outs[0]).max()) for o in outs) / float(np.abs(outs[0]).max())
    assert worst < 1e-4, f"the implementations disagree: relative difference {worst:.1e}"
    return worst


def moe_step_ours(layer: nn.MoE, x: np.ndarray, g: np.ndarray, backend: str):
    def step():
        t = mg.tensor(x, backend=backend, requires_grad=True)
        (layer(t) * mg.tensor(g, backend=backend)).sum().backward()
        for p in layer.parameters():
            p.grad = None
    return step


def moe_step_torch(layer: torch.nn.Module, x: np.ndarray, g: np.ndarray):
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)

    def step():
        t = tx.clone().requires_grad_(True)
        (layer(t) * tg).sum().backward()
        layer.zero_grad(set_to_none=True)
    return step


def median_times(steps: dict, repeats: int) -> dict[str, float]:
    for fn in steps.values():  # warm up (compiles the Numba kernels, fills allocator pools)
        fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():  # alternate: a burst of load hits every side
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_moe(repeats: int) -> None:
    print("MoE layer, forward + backward (median ms per call; ratios < 1: the first is faster)")
    print(f"{'shape':<14}{'tokens':>7}{'numba ms':>10}{'numpy ms':>10}{'grouped ms':>11}{'eager ms':>10}"
          f"{'numba/numpy':>13}{'numba/grouped':>15}{'numba/eager':>13}")
    for name, s in MOE_SHAPES.items():
        cfg = moe_config(s)
        rng = np.random.default_rng(0)
        layers = {be: nn.MoE(cfg, 0, mg.get_backend(be)) for be in ("numba", "numpy")}
        weights = dict(_named(layers["numba"]))
        for n, p in layers["numpy"].named_parameters():
            p.data = weights[n].copy()
        bias = (rng.standard_normal(s["experts"]) * 0.01).astype(np.float32)
        for layer in layers.values():  # a bias that moves some choices, as after bias-update training
            layer.gate.e_score_correction_bias.data = bias.copy()
        x = rng.standard_normal((1, s["tokens"], s["hidden"])).astype(np.float32)
        g = rng.standard_normal(x.shape).astype(np.float32)
        steps = {"numba": moe_step_ours(layers["numba"], x, g, "numba"),
                 "numpy": moe_step_ours(layers["numpy"], x, g, "numpy")}
        refs = {}
        for impl in ("grouped_mm", "eager"):
            refs[impl] = torch_moe(cfg, layers["numba"], impl)
            refs[impl].gate.e_score_correction_bias.copy_(
                torch.from_numpy(layers["numba"].gate.e_score_correction_bias.numpy()))
            steps[impl] = moe_step_torch(refs[impl], x, g)
        outputs_agree(layers, refs, x)
        t = median_times(steps, repeats)
        ms = {k: v * 1e3 for k, v in t.items()}
        print(f"{name:<14}{s['tokens']:>7}{ms['numba']:>10.1f}{ms['numpy']:>10.1f}{ms['grouped_mm']:>11.1f}"
              f"{ms['eager']:>10.1f}{t['numba'] / t['numpy']:>13.2f}{t['numba'] / t['grouped_mm']:>15.2f}"
              f"{t['numba'] / t['eager']:>13.2f}")


MLA_BASE = dict(hidden_size=256, num_layers=4, num_heads=4, vocab_size=4096, max_seq_len=256)
GQA = {**MLA_BASE, "kv_heads": 2, "intermediate_size": 704}
MLA = {**MLA_BASE, "kv_latent_dim": 128, "q_latent_dim": 128, "d_rope": 32}


def matched_mla() -> dict:
    """The MLA config with its MLP widened so it has the GQA model's parameter count (to within one
    row of the MLP)."""
    target = nn.parameter_count(nn.model_config(GQA))
    base = nn.parameter_count(nn.model_config({**MLA, "intermediate_size": 32}))
    per_unit = 3 * MLA["hidden_size"] * MLA["num_layers"]  # gate, up, down rows per unit of width
    return {**MLA, "intermediate_size": 32 + round((target - base) / per_unit)}


def bench_mla(repeats: int, batch: int = 8, seq: int = 256) -> None:
    configs = {"gqa": GQA, "mla": matched_mla()}
    trainer = {k: spec.default for k, spec in train.TRAINER_KEYS.items()}
    steps, counts = {}, {}
    for name, c in configs.items():
        model = nn.build_model(c, backend="numba")
        opt = train.build_optimizer(list(model.named_parameters()), trainer)
        rng = np.random.default_rng(0)
        x = rng.integers(0, c["vocab_size"], (batch, seq + 1))

        def step(model=model, opt=opt, x=x):
            train.accumulate_gradients(model, [(x[:, :-1], x[:, 1:])], "numba")
            opt.step()
            opt.zero_grad()
        steps[name], counts[name] = step, (model.num_parameters(), nn.kv_cache_bytes_per_token(model.config))
    t = median_times(steps, repeats)
    print(f"\nMLA vs GQA training, batch {batch} x {seq} (forward, backward, AdamW; median step)")
    print(f"{'model':<6}{'parameters':>12}{'tokens/s':>10}{'KV cache B/token':>18}")
    for name in configs:
        print(f"{name:<6}{counts[name][0]:>12,}{batch * seq / t[name]:>10,.0f}{counts[name][1]:>18,}")
    print(f"mla/gqa tokens/s: {t['gqa'] / t['mla']:.2f}")
    kv_cache_table()


def kv_cache_table() -> None:
    """KV-cache bytes per token (float32, every layer attention) of MHA, GQA and MLA for Oxidizr's model
    shapes, measured from the caches that generation allocates."""
    shapes = {"nano-start (h128, 4 layers, 4 heads)": dict(hidden_size=128, num_layers=4, num_heads=4,
                                                            kv_latent_dim=64, q_latent_dim=64, d_rope=8),
              "nano (h384, 8 layers, 6 heads)": dict(hidden_size=384, num_layers=8, num_heads=6,
                                                      kv_latent_dim=192, q_latent_dim=192, d_rope=16)}
    print(f"\nKV cache, bytes per token (all layers){'':<6}{'MHA':>8}{'GQA kv=2':>10}{'MLA':>8}{'MLA/MHA':>9}")
    for name, c in shapes.items():
        mla = {**c, "vocab_size": 64, "max_seq_len": 32}
        dense = {k: v for k, v in mla.items() if k not in ("kv_latent_dim", "q_latent_dim", "d_rope")}
        sizes = []
        for cfg in (dense, {**dense, "kv_heads": 2}, mla):
            model = nn.build_model(cfg)
            sizes.append(model.new_cache(batch=1).nbytes // cfg["max_seq_len"])
        print(f"{name:<44}{sizes[0]:>8,}{sizes[1]:>10,}{sizes[2]:>8,}{sizes[2] / sizes[0]:>9.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("moe", "mla", "both"), default="both")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print(f"threads {_common.THREADS}; load average {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    if args.part in ("moe", "both"):
        bench_moe(args.repeats)
    if args.part in ("mla", "both"):
        bench_mla(args.repeats)


if __name__ == "__main__":
    main()
