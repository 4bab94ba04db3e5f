"""The training loop: accumulation, a falling loss, bitwise resume, the non-finite guard,
schedules, checkpoints, metrics, headless output, sampling and the first-run data preparation."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import minigrad as mg
import nn
import train
from minigrad import optim
from minigrad.io import load_checkpoint
from minigrad.io.metrics import read_metrics
from train import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 64, "max_seq_len": 16}
TRAINER = {"batch_size": 4, "max_steps": 8, "learning_rate": 0.01, "warmup_steps": 2, "log_interval": 1,
           "eval_interval": 4, "eval_batches": 2, "save_interval": 4, "backend": "numpy", "sample_tokens": 0}


@pytest.fixture
def data(tmp_path):
    """Tokens where each id fixes the next (a random permutation cycle) with 10% noise: the unigram
    entropy is log(64) nats while a model that learns the bigrams gets far below it."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(64)
    ids = np.empty(6000, dtype=np.int64)
    ids[0] = 0
    noise = rng.random(len(ids)) < 0.1
    for i in range(1, len(ids)):
        ids[i] = rng.integers(64) if noise[i] else perm[ids[i - 1]]
    path = tmp_path / "tokens.bin"
    ids.astype("<u4").tofile(path)
    return str(path)


def config(tmp_path, name="run", model=None, **trainer):
    body = {"model": {**MODEL, **(model or {})}, "trainer": {**TRAINER, "checkpoint_dir": str(tmp_path / name),
                                                             **trainer}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def run(cfg_path, data_path, resume=None, after_backward=None, **overrides):
    cfg = load_config(cfg_path, [("trainer.data", data_path, "test")]
                      + [(f"trainer.{k}", v, "test") for k, v in overrides.items()])
    return train.train(cfg, train.RunOptions(resume=resume, headless=True), after_backward=after_backward)


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if "loss" in r
            and "event" not in r]


def test_gradient_accumulation_equals_one_larger_batch():
    model = nn.build_model(MODEL, backend="numpy", seed=1)
    x = np.random.default_rng(0).integers(0, 64, (8, 17))
    micro = [(x[i:i + 2, :-1], x[i:i + 2, 1:]) for i in range(0, 8, 2)]
    loss_k = train.accumulate_gradients(model, micro, "numpy")
    grads_k = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()
    loss_1 = train.accumulate_gradients(model, [(x[:, :-1], x[:, 1:])], "numpy")
    assert loss_k == pytest.approx(loss_1, rel=1e-6)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(grads_k[n], p.grad.numpy(), rtol=2e-5, atol=1e-8, err_msg=n)


def test_short_run_loss_falls_below_unigram_entropy(tmp_path, data):
    summary = run(config(tmp_path), data, max_steps=80, eval_interval=40, warmup_steps=5)
    first = losses(str(tmp_path / "run"))[0][1]
    assert first == pytest.approx(math.log(64), abs=0.3)          # an untrained model is uniform
    assert summary["unigram_entropy"] == pytest.approx(math.log(64), abs=0.02)
    assert summary["val_loss"] < 0.6 * summary["unigram_entropy"]  # it learned the bigrams
    assert summary["step"] == 80 and summary["non_finite_steps"] == 0


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path, data, backend):
    n = 6
    kw = dict(max_steps=2 * n, save_interval=n, eval_interval=4, gradient_accumulation=2, backend=backend)
    run(config(tmp_path, "straight"), data, **kw)

    class Interrupt(Exception):
        pass

    def stop_at_n(model, step):
        if step == n:  # the (n+1)-th step: checkpoint step-n is on disk, as after a crash
            raise Interrupt

    with pytest.raises(Interrupt):
        run(config(tmp_path, "split"), data, after_backward=stop_at_n, **kw)
    assert not os.path.exists(tmp_path / "split" / "final")
    run(config(tmp_path, "split"), data, resume="auto", prefetch=2, **kw)  # prefetching changes nothing

    a, b = load_checkpoint(str(tmp_path / "straight" / "final")), load_checkpoint(str(tmp_path / "split" / "final"))
    assert a.meta["step"] == b.meta["step"] == 2 * n
    for k in a.model:
        assert np.array_equal(a.model[k], b.model[k]), k
    for k in a.optimizer:
        assert np.array_equal(a.optimizer[k], b.optimizer[k]), k
    la, lb = losses(str(tmp_path / "straight")), losses(str(tmp_path / "split"))
    assert [s for s, _ in la] == list(range(1, 2 * n + 1)) and la == lb
    va = [(r["step"], r["val_loss"]) for r in read_metrics(str(tmp_path / "straight" / "metrics.jsonl"))
          if "val_loss" in r and "event" not in r]
    vb = [(r["step"], r["val_loss"]) for r in read_metrics(str(tmp_path / "split" / "metrics.jsonl"))
          if "val_loss" in r and "event" not in r]
    assert va == vb and len(va) == 3


def test_non_finite_gradient_skips_the_update(tmp_path, data):
    snapshots = {}

    def poison(model, step):
        if step == 3:
            snapshots["before"] = {n: p.numpy().copy() for n, p in model.named_parameters()}
            p = next(iter(model.parameters()))
            p.grad.data[0, 0] = np.nan
        if step == 4:  # the weights the poisoned step left behind
            snapshots["after"] = {n: p.numpy().copy() for n, p in model.named_parameters()}

    summary = run(config(tmp_path), data, after_backward=poison, max_steps=6)
    assert summary["non_finite_steps"] == 1 and summary["step"] == 6
    for k, v in snapshots["before"].items():
        np.testing.assert_array_equal(snapshots["after"][k], v)
    events = [r for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if r.get("event") == "non_finite"]
    assert [e["step"] for e in events] == [4] and events[0]["grad_norm"] == "nan"
    assert all(math.isfinite(p) for _, p in losses(str(tmp_path / "run")))

    with pytest.raises(train.TrainingError, match="step 4: non-finite"):
        run(config(tmp_path, "strict"), data, after_backward=poison, max_steps=6, fail_on_non_finite=True)


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_logged_learning_rates_follow_the_schedule(tmp_path, data, schedule):
    run(config(tmp_path), data, max_steps=10, warmup_steps=3, lr_schedule=schedule, min_lr=0.001)
    lrs = [r["lr"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if "lr" in r]
    assert lrs == [optim.lr_at(s, 0.01, 3, 10, schedule, 0.001, 0.2) for s in range(10)]


def test_grad_norm_logging_per_layer_adds_up_to_the_global_norm(tmp_path, data):
    run(config(tmp_path), data, max_steps=3, log_grad_norms=True, grad_clip=0.0)
    for r in [r for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if "grad_norms" in r]:
        groups = r["grad_norms"]
        assert {"model.layers.0", "model.layers.1", "model.embed_tokens", "model.norm", "lm_head"} == set(groups)
        assert math.sqrt(sum(v * v for v in groups.values())) == pytest.approx(r["grad_norm"], rel=1e-5)


def test_clipping_bounds_the_applied_gradient(tmp_path, data):
    """With clipping at c, each step's Adam input is the clipped gradient; the logged norm is before clipping."""
    seen = []

    def record(model, step):
        seen.append(model)

    run(config(tmp_path), data, max_steps=2, grad_clip=1e-3, after_backward=record)
    norms = [r["grad_norm"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if "grad_norm" in r]
    assert all(n > 1e-3 for n in norms)  # pre-clip norms were larger than the bound
    model = nn.build_model(MODEL, backend="numpy", seed=0)
    x = np.random.default_rng(0).integers(0, 64, (2, 17))
    train.accumulate_gradients(model, [(x[:, :-1], x[:, 1:])], "numpy")
    optim.clip_grad_norm_(model.parameters(), 1e-3)
    total = math.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in model.parameters()))
    assert total == pytest.approx(1e-3, rel=1e-3)


def test_best_checkpoint_rotation_and_early_stopping(tmp_path, data):
    run(config(tmp_path), data, max_steps=12, eval_interval=2, save_interval=2, max_checkpoints=2)
    d = tmp_path / "run"
    assert sorted(n for n in os.listdir(d) if n.startswith("step-")) == ["step-00000008", "step-00000010"]
    evals = [r for r in read_metrics(str(d / "metrics.jsonl")) if "val_loss" in r and "event" not in r]
    best = min(evals, key=lambda r: r["val_loss"])
    assert load_checkpoint(str(d / "best")).meta["step"] == best["step"]
    assert load_checkpoint(str(d / "final")).meta["step"] == 12
    # learning rate 0: the validation loss can never improve, so patience 2 stops after 3 evaluations
    summary = run(config(tmp_path, "stop"), data, max_steps=50, eval_interval=1, learning_rate=0.0,
                  early_stopping_patience=2)
    assert summary["stop"] == "early_stopping" and summary["step"] == 3


def test_epochs_bound_the_run(tmp_path, data):
    # 6000 tokens less the 5% held out: 5700 hold 356 windows of 16; 4 x 2 windows a step -> 44 steps an epoch
    summary = run(config(tmp_path), data, max_steps=0, num_epochs=1, batch_size=4, gradient_accumulation=2,
                  eval_interval=0, save_interval=0)
    assert summary["step"] == 44 and summary["stop"] == "epochs"


def test_cli_headless_run_json_lines_metrics_and_sample(tmp_path):
    """The one subprocess run: `python train.py` on tiny data prepared by `prepare-data`."""
    text = tmp_path / "t.txt"
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and a dog ran far from home".split()
    text.write_text("\n".join(" ".join(rng.choice(words, 10)) for _ in range(300)))
    assert train.main(["prepare-data", "--text", str(text), "--vocab-size", "300", "--seq-len", "16", "--output",
                       str(tmp_path / "d")]) == 0
    cfg = config(tmp_path, model={"vocab_size": 300}, sample_tokens=5)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-f", cfg, "-d", str(tmp_path / "d"),
                        "--max-steps", "3", "--headless", "--target-device", "gpu", "--backend", "cupy"],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # stdout holds nothing but JSON
    assert [e["event"] for e in events if e["event"] == "step"] == ["step"] * 3
    assert events[-1]["event"] == "done" and events[-1]["step"] == 3
    assert "memory estimate: parameters" in r.stderr
    assert ("falling back to the CPU" in r.stderr) == (mg.backend.cuda_unavailable() is not None)
    assert "sample:" in r.stderr
    metrics = read_metrics(str(tmp_path / "run" / "metrics.jsonl"))
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed"} <= set(metrics[0])
    assert any("val_loss" in m for m in metrics)
    assert os.path.isfile(tmp_path / "run" / "tokenizer.json")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "sample", "--out", str(tmp_path / "run"),
                          "--checkpoint", "latest", "--prompt", "the cat", "--max-new-tokens", "4", "--top-k", "5",
                          "--backend", "numpy"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("the cat") and "step 3" in out.stderr


def test_bad_data_file_exits_2_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x01\x00\x00")
    assert train.main(["-f", config(tmp_path), "-d", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: size 3 bytes is not a multiple of 4" in err
    np.arange(100, dtype="<u4").tofile(bad)  # ids up to 99 with vocab 64
    assert train.main(["-f", config(tmp_path), "-d", str(bad)]) == 2
    assert "model.vocab_size = 64 is too small for" in capsys.readouterr().err


def test_first_run_prepares_the_default_corpus_then_reuses_it(tmp_path, monkeypatch, capsys):
    from minigrad.data import corpus, dataset

    full = corpus.stdlib_documents
    monkeypatch.setattr(dataset.corpus, "stdlib_documents", lambda: full(max_bytes=150_000))  # a small slice
    cfg = config(tmp_path, model={"vocab_size": 300})
    argv = ["-f", cfg, "--data-dir", str(tmp_path / "data"), "--max-steps", "2", "--set", "trainer.data=null"]
    assert train.main(argv) == 0
    first = capsys.readouterr().out
    assert "first run: preparing the default corpus" in first
    assert sorted(os.listdir(tmp_path / "data")) == ["meta.json", "tokenizer.json", "train.bin", "val.bin"]
    assert train.main(argv + ["--overwrite"]) == 0  # (a second fresh run into the same directory must say so)
    assert "using the prepared default corpus" in capsys.readouterr().out
