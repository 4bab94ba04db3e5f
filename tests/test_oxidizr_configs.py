"""Oxidizr's hybrid configs (configs/oxidizr/, unchanged copies of its files: Mamba2 or Mamba3 layers plus
MLA + MoE attention blocks) train with ``python train.py -f configs/oxidizr/X.yaml``: each for a few steps at
reduced ``--set`` sizes, and nano-start at its own size. (The three pure-Mamba ones are trained the same way
in tests/test_train_mamba.py; test_config.py checks that all six are the seed files unchanged.)
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYBRIDS = ["nano-start.yaml", "nano.yaml", "nano_mamba3_hybrid.yaml"]
CONFIGS = [os.path.join(ROOT, "configs", "oxidizr", name) for name in HYBRIDS]
# Smaller widths that keep each config's shape constraints (num_heads divides hidden_size; Mamba2's
# hidden_size * expand == num_heads * head_dim), a small vocabulary and short sequences.
SMALL_384 = ["model.hidden_size=96", "model.mamba2_num_heads=12", "model.mamba2_state_size=16",
             "model.mamba2_chunk_size=16"]
SMALL_MLA = ["model.kv_latent_dim=32", "model.q_latent_dim=32", "model.d_rope=8", "model.intermediate_size=64"]
REDUCED = {
    "nano-start.yaml": ["model.hidden_size=64", "model.mamba2_num_heads=8", "model.mamba2_state_size=16",
                        "model.mamba2_chunk_size=16", *SMALL_MLA],
    "nano.yaml": [*SMALL_384, *SMALL_MLA],
    "nano_mamba3_hybrid.yaml": [*SMALL_384, *SMALL_MLA],
}
SHORT_RUN = ["trainer.max_steps=3", "trainer.num_epochs=0", "trainer.eval_batches=2", "trainer.save_interval=0",
             "trainer.sample_tokens=0"]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tokens.bin"
    np.random.default_rng(0).integers(0, 512, 20000).astype("<u4").tofile(path)
    return str(path)


def _train(path: str, tokens: str, out, sets: list[str]) -> list[dict]:
    argv = ["-f", path, "-d", tokens, "--out", str(out), "--headless"] + [a for s in sets for a in ("--set", s)]
    assert train.main(argv) == 0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_trains_at_reduced_sizes(path, tokens, tmp_path):
    sets = REDUCED[os.path.basename(path)] + ["model.vocab_size=512", "model.max_seq_len=32"]
    records = _train(path, tokens, tmp_path / "run", sets + SHORT_RUN)
    done = records[-1]
    assert done["event"] == "done" and done["step"] == 3 and np.isfinite(done["val_loss"])
    moe = next(r["moe"] for r in records if "moe" in r)
    with open(path) as f:
        model = yaml.safe_load(f)["model"]
    attention_layers = sorted(set(range(model["num_layers"])) - set(model["mamba_layers"]))
    assert sorted(map(int, moe["expert_tokens"])) == attention_layers  # MoE in every attention block


def test_nano_start_trains_at_its_own_size(tokens, tmp_path):
    """Oxidizr's nano-start as written (vocabulary 100,315, batch 4 x 2 of 64 tokens), a few steps."""
    path = os.path.join(ROOT, "configs", "oxidizr", "nano-start.yaml")
    records = _train(path, tokens, tmp_path / "run", ["trainer.max_steps=2", "trainer.num_epochs=0",
                                                      "trainer.eval_batches=1", "trainer.sample_tokens=0"])
    done = records[-1]
    assert done["event"] == "done" and done["step"] == 2 and np.isfinite(done["val_loss"])
    step = next(r for r in records if "moe" in r)
    assert list(step["moe"]["expert_tokens"]) == ["3"]  # layers 0-2 are Mamba2, layer 3 MLA + MoE
    # both steps (the one log line is at the end), 2 micro-batches of 4 x 64 tokens each, top-1
    assert sum(step["moe"]["expert_tokens"]["3"]) == 2 * 2 * 4 * 64 * 1
