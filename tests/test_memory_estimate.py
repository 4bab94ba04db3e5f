"""The memory estimate train.py prints before training, against the peak resident memory of a few real
training steps (tests/rss_probe.py, in a fresh process): within 25% for Llama-style, MLA, MoE and hybrid
Mamba + MLA + MoE models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = dict(hidden_size=192, num_heads=4, vocab_size=4096, max_seq_len=128, intermediate_size=384, num_layers=4)
CASES = {
    "llama-gqa": dict(kv_heads=2),
    "mla-moe-shared": dict(kv_latent_dim=96, q_latent_dim=64, d_rope=16, num_experts=8, experts_per_tok=2,
                           shared_expert_enabled=True, first_dense_layers=1),
    "gqa-moe-sigmoid-capacity": dict(kv_heads=2, num_experts=8, experts_per_tok=2, router_score="sigmoid",
                                     moe_balance="bias_update", capacity_factor=1.25),
    # Oxidizr's hybrid shape: Mamba2 layers and MLA + MoE attention blocks
    "hybrid-mamba2-mla-moe": dict(mamba_layers=[0, 2], mamba2_num_heads=6, mamba2_head_dim=64, mamba2_state_size=32,
                                  mamba2_chunk_size=32, kv_latent_dim=96, q_latent_dim=64, d_rope=16, num_experts=8,
                                  experts_per_tok=2, shared_expert_enabled=True),
}


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("case", list(CASES))
def test_memory_estimate_is_within_25_percent_of_peak_rss(case):
    cfg = {**BASE, **CASES[case]}
    out = subprocess.run([sys.executable, os.path.join(HERE, "rss_probe.py"), json.dumps(cfg), "8", "128", "3"],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = result["estimate"] / result["peak"]
    assert result["peak"] > 100 * 2**20  # the model's memory, not the interpreter's, dominates what is measured
    assert 0.75 <= ratio <= 1.25, f"{case}: estimate {result['estimate'] / 2**20:.0f} MiB vs peak RSS " \
                                  f"{result['peak'] / 2**20:.0f} MiB ({result['parts']})"
