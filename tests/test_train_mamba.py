"""Mamba models through train.py: our example configs train (the loss falls) and resume, Oxidizr's pure-Mamba
configs train at reduced sizes from the command line, and ``train.py sample`` generates from a Mamba run."""

import os
import subprocess
import sys

import numpy as np
import pytest

import nn
import train
from minigrad.io import load_checkpoint
from minigrad.io.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = ["mamba1", "mamba2", "mamba3", "hybrid-mamba2"]
OXIDIZR_PURE_MAMBA = ["nano_mamba2", "nano_mamba3", "nano_mamba3_mimo"]
# Oxidizr's sizes (hidden 384, 8 layers, vocab 128354) cut down to a test's: 8 layers kept, widths shrunk
SMALL = ["model.hidden_size=32", "model.vocab_size=300", "model.max_seq_len=32", "model.mamba2_num_heads=4",
         "model.mamba2_head_dim=16", "model.mamba2_state_size=16", "model.mamba2_chunk_size=8",
         "trainer.target_device=cpu", "trainer.batch_size=2", "trainer.eval_batches=1", "trainer.sample_tokens=4"]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """Tokens where each id fixes the next (a permutation cycle) with 10% noise, ids < 64."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(64)
    ids = np.empty(4000, dtype=np.int64)
    ids[0] = 0
    noise = rng.random(len(ids)) < 0.1
    for i in range(1, len(ids)):
        ids[i] = rng.integers(64) if noise[i] else perm[ids[i - 1]]
    path = tmp_path_factory.mktemp("mamba-data") / "tokens.bin"
    ids.astype("<u4").tofile(path)
    return str(path)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared data directory (tokenizer.json, train.bin, val.bin) with a 300-token vocabulary."""
    d = tmp_path_factory.mktemp("mamba-text")
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and a dog ran far from home".split()
    (d / "t.txt").write_text("\n".join(" ".join(rng.choice(words, 10)) for _ in range(300)))
    assert train.main(["prepare-data", "--text", str(d / "t.txt"), "--vocab-size", "300", "--seq-len", "16",
                       "--output", str(d / "data")]) == 0
    return str(d / "data")


def run(path, data, out, **trainer):
    overrides = [("trainer.data", data, "test"), ("trainer.checkpoint_dir", str(out), "test")]
    overrides += [(f"trainer.{k}", v, "test") for k, v in trainer.items()]
    cfg = train.load_config(path, overrides)
    return cfg, train.train(cfg, train.RunOptions(headless=True))


@pytest.mark.parametrize("name", OURS)
def test_our_mamba_configs_train_and_the_loss_falls(tmp_path, tokens, name):
    kw = dict(max_steps=12, batch_size=4, seq_len=32, learning_rate=0.01, warmup_steps=2, eval_interval=0,
              eval_batches=1, save_interval=0, log_interval=1, sample_tokens=0, backend="numba")
    cfg, summary = run(os.path.join(ROOT, "configs", f"{name}.yaml"), tokens, tmp_path / "run", **kw)
    assert cfg.model["mamba_layers"] and summary["step"] == 12 and summary["non_finite_steps"] == 0
    losses = [r["loss"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if "loss" in r
              and "event" not in r]
    assert losses[-1] < losses[0] - 1.0, losses          # from ~log(4096): the unused ids drop out at once
    ckpt = load_checkpoint(str(tmp_path / "run" / "final"))
    model = nn.build_model(ckpt.meta["config"]["model"])
    model.load_state_dict(ckpt.model)                     # the checkpoint rebuilds the same model
    assert model.generate(np.array([[1, 2, 3]]), 5, temperature=0).shape == (1, 8)


@pytest.mark.parametrize("name", OXIDIZR_PURE_MAMBA)
def test_oxidizr_pure_mamba_configs_train_from_the_command_line(tmp_path, prepared, name):
    sets = [a for kv in SMALL for a in ("--set", kv)]
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-f",
                        os.path.join(ROOT, "configs", "oxidizr", f"{name}.yaml"), "-d", prepared, "--out", str(out),
                        "--max-steps", "2", "--headless", *sets], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sample:" in r.stderr
    meta = load_checkpoint(str(out / "final")).meta
    assert meta["step"] == 2 and meta["config"]["model"]["mamba_layers"] == list(range(8))
    if name == "nano_mamba3_mimo":
        assert meta["config"]["model"]["mamba3_mimo_rank"] == 4
        s = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "sample", "--out", str(out),
                            "--checkpoint", "latest", "--prompt", "the cat", "--max-new-tokens", "4",
                            "--backend", "numba"], capture_output=True, text=True, timeout=120)
        assert s.returncode == 0, s.stderr
        assert s.stdout.startswith("the cat")
