"""Run by tests/test_memory_estimate.py in a fresh process: the peak RSS of a few training steps of a
model, next to the estimate train.py prints for it. Prints one JSON line.

    python tests/rss_probe.py '{"hidden_size": 192, ...}' BATCH SEQ_LEN STEPS

Every kernel is compiled first, on a small model of the same kind, so that the measured peak holds
the training steps and not Numba's compiler; the peak is then reset (Linux's /proc/self/clear_refs)
and measured from the resident size at that point.
"""

from __future__ import annotations

import gc
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import minigrad as mg  # noqa: E402
import nn  # noqa: E402
import train  # noqa: E402


def status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def train_steps(model_cfg: dict, batch: int, seq_len: int, steps: int) -> nn.CausalLM:
    """The trainer's step: forward and backward (with the aux loss), clipping, AdamW, the MoE hook."""
    trainer = {k: spec.default for k, spec in train.TRAINER_KEYS.items()}
    model = nn.build_model(model_cfg, backend="numba")
    optimizer = train.build_optimizer(list(model.named_parameters()), trainer)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.integers(0, model_cfg["vocab_size"], (batch, seq_len + 1))
        train.accumulate_gradients(model, [(x[:, :-1], x[:, 1:])], "numba", aux_weight=0.01)
        mg.optim.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        model.after_step()
    return model


def small_twin(cfg: dict) -> dict:
    """The same kinds of layers at toy sizes (same kernels, same dtypes)."""
    out = {**cfg, "hidden_size": 32, "num_heads": 4, "vocab_size": 64, "intermediate_size": 16,
           "num_layers": min(cfg["num_layers"], 2), "first_dense_layers": min(cfg.get("first_dense_layers", 0), 1)}
    for key, small in (("kv_latent_dim", 8), ("q_latent_dim", 8), ("d_rope", 4)):
        if cfg.get(key):
            out[key] = small
    for key in ("mla_nope_head_dim", "mla_v_head_dim", "dense_intermediate_size", "kv_heads", "mamba2_num_heads",
                "mamba2_head_dim"):  # (Mamba2's heads follow from the width by default)
        out.pop(key, None)
    out["mamba_layers"] = [i for i in cfg.get("mamba_layers", []) if i < out["num_layers"]]
    return out


def main() -> None:
    cfg, batch, seq_len, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    train_steps(small_twin(cfg), 2, 8, 2)
    gc.collect()
    base = status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak, to the current resident size
    model = train_steps(cfg, batch, seq_len, steps)
    peak = status_bytes("VmHWM") - base
    estimate = nn.training_memory(model.config, model.num_parameters(), batch, seq_len, "adamw")
    print(json.dumps({"peak": peak, "estimate": sum(estimate.values()), "parts": estimate}))


if __name__ == "__main__":
    main()
