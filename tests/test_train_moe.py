"""Training MLA and MoE models with train.py: the aux loss joins the training loss (weighted by
trainer.load_balance_alpha), the bias update runs after each step, routing statistics reach
metrics.jsonl and the progress line, and the trainer warns when nothing balances the experts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

import minigrad as mg
import nn
import train
from minigrad.io import load_checkpoint
from minigrad.io.metrics import Reporter, read_metrics
from train import load_config

MODEL = dict(hidden_size=32, num_layers=2, num_heads=4, vocab_size=64, max_seq_len=16, intermediate_size=16,
             kv_latent_dim=16, q_latent_dim=16, d_rope=4, num_experts=4, experts_per_tok=2,
             shared_expert_enabled=True)
TRAINER = dict(batch_size=4, max_steps=6, learning_rate=0.01, log_interval=2, eval_interval=3, eval_batches=2,
               save_interval=0, backend="numba", sample_tokens=4, load_balance_alpha=0.01)


@pytest.fixture
def data(tmp_path):
    ids = np.random.default_rng(0).integers(0, 64, 4000)
    path = tmp_path / "tokens.bin"
    ids.astype("<u4").tofile(path)
    return str(path)


def write_config(tmp_path, model=None, **trainer):
    body = {"model": {**MODEL, **(model or {})},
            "trainer": {**TRAINER, "checkpoint_dir": str(tmp_path / "run"), **trainer}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def run(path, data_path):
    cfg = load_config(path, [("trainer.data", data_path, "test")])
    return train.train(cfg, train.RunOptions(headless=True))


def test_routing_statistics_reach_metrics_jsonl(tmp_path, data):
    summary = run(write_config(tmp_path), data)
    assert summary["step"] == 6 and np.isfinite(summary["val_loss"])
    records = read_metrics(os.path.join(tmp_path, "run", "metrics.jsonl"))
    steps = [r for r in records if "loss" in r and "event" not in r]
    assert [r["step"] for r in steps] == [2, 4, 6]
    for r in steps:
        moe = r["moe"]
        assert set(moe["expert_tokens"]) == {"0", "1"}                    # one count list per MoE layer
        # two training steps of 4 x 16 tokens, each to 2 experts, per layer; nothing dropped
        assert all(sum(c) == 2 * 64 * 2 and len(c) == 4 for c in moe["expert_tokens"].values())
        assert moe["dropped_tokens"] == 0 and moe["aux_loss"] > 0 and moe["load_imbalance"] >= 1


def test_dropped_tokens_are_counted_in_metrics(tmp_path, data):
    run(write_config(tmp_path, model={"capacity_factor": 0.5}), data)
    steps = [r for r in read_metrics(os.path.join(tmp_path, "run", "metrics.jsonl")) if "moe" in r]
    assert all(r["moe"]["dropped_tokens"] > 0 for r in steps)


def test_aux_loss_is_added_to_the_training_loss_with_its_weight():
    model = nn.build_model(MODEL, backend="numpy", seed=1)
    x = np.random.default_rng(0).integers(0, 64, (4, 17))
    batch = [(x[:, :-1], x[:, 1:])]
    grads = {}
    for alpha in (0.0, 0.5):
        model.zero_grad()
        loss = train.accumulate_gradients(model, batch, "numpy", aux_weight=alpha)
        grads[alpha] = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()
    model(mg.tensor(x[:, :-1], backend="numpy"))
    model.auxiliary_loss().backward()
    for name, p in model.named_parameters():  # d(ce + 0.5 aux) = d ce + 0.5 d aux, parameter by parameter
        aux = p.grad.numpy() if p.grad is not None else 0.0
        np.testing.assert_allclose(grads[0.5][name], grads[0.0][name] + 0.5 * aux, rtol=1e-4, atol=1e-7,
                                   err_msg=name)
    assert np.abs(grads[0.5]["model.layers.1.mlp.gate.weight"] - grads[0.0]["model.layers.1.mlp.gate.weight"]
                  ).max() > 1e-5 and np.isfinite(loss)


def test_bias_update_moves_the_router_bias_during_training(tmp_path, data):
    path = write_config(tmp_path, model={"router_score": "sigmoid", "moe_balance": "bias_update"},
                        load_balance_alpha=0.0)
    cfg = load_config(path, [("trainer.data", data, "test")])
    assert not any("load_balance_alpha" in w for w in cfg.warnings)  # bias balancing needs no aux loss
    run(path, data)
    state = load_checkpoint(os.path.join(tmp_path, "run", "final")).model
    bias = state["model.layers.1.mlp.gate.e_score_correction_bias"]
    # six steps of +-0.001 per expert: each bias is a multiple of 0.001 within +-0.006, and some moved
    assert np.abs(bias).max() <= 0.006 + 1e-6 and np.abs(bias).max() >= 0.001 - 1e-6
    np.testing.assert_allclose(bias * 1000, np.round(bias * 1000), atol=1e-3)


def test_trainer_warns_when_nothing_balances_the_experts(tmp_path):
    cfg = load_config(write_config(tmp_path, load_balance_alpha=0.0))
    assert any("nothing keeps the experts balanced" in w for w in cfg.warnings)
    cfg = load_config(write_config(tmp_path, model={"experts_per_tok": 1}))
    assert any("expert collapse" in w for w in cfg.warnings)
    cfg = load_config(write_config(tmp_path, model={"moe_balance": "none"}))
    assert any("does nothing with model.moe_balance = 'none'" in w for w in cfg.warnings)
    assert not load_config(write_config(tmp_path)).warnings


def test_progress_line_shows_the_load_imbalance():
    import io

    out = io.StringIO()
    reporter = Reporter(10, 0, headless=False, stream=out)
    reporter.step(1, 2.5, 1000.0, 1e-3, {"imbalance": "1.23"})
    assert reporter.bar.postfix is not None and "imbalance=1.23" in reporter.bar.postfix
    reporter.close()


def test_resume_of_a_bias_balanced_mla_moe_run_is_bitwise(tmp_path, data):
    """The router bias is a persistent buffer: it is checkpointed with the weights, and a resumed run
    goes on exactly as an uninterrupted one (routing, bias steps and all)."""
    model = {"router_score": "sigmoid", "moe_balance": "bias_update", "capacity_factor": 1.0}
    kw = dict(max_steps=6, save_interval=3, gradient_accumulation=2, sample_tokens=0)
    (tmp_path / "a").mkdir()
    straight = load_config(write_config(tmp_path / "a", model=model, **kw), [("trainer.data", data, "test")])
    train.train(straight, train.RunOptions(headless=True))

    class Interrupt(Exception):
        pass

    def stop_at_3(model, step):
        if step == 3:
            raise Interrupt
    (tmp_path / "b").mkdir()
    split = load_config(write_config(tmp_path / "b", model=model, **kw), [("trainer.data", data, "test")])
    with pytest.raises(Interrupt):
        train.train(split, train.RunOptions(headless=True), after_backward=stop_at_3)
    train.train(split, train.RunOptions(headless=True, resume="auto"))
    a, b = (load_checkpoint(os.path.join(tmp_path, d, "run", "final")) for d in ("a", "b"))
    assert any(np.abs(v).max() > 0 for k, v in a.model.items() if k.endswith("e_score_correction_bias"))
    for k in a.model:
        assert np.array_equal(a.model[k], b.model[k]), k
