"""Mixed precision on the CPU (NumPy float16): the loss scaler against torch's GradScaler, one step of
float32 masters against torch.optim.AdamW, small gradients surviving float16, overflow skipping, and the
trainer's --dtype f16: loss curve near float32's, exact resume, checkpoints of float32 weights that
resume in either precision; --dtype bf16 refused off the GPU."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from test_train import config, data, losses, run  # noqa: F401  (data is a fixture)

import minigrad as mg
import nn
import train
from minigrad import optim
from minigrad.io import load_checkpoint
from minigrad.io.metrics import read_metrics

torch = pytest.importorskip("torch")


def test_loss_scale_follows_torch_grad_scaler():
    ours = optim.LossScaler(init_scale=2.0 ** 10, growth_interval=3)
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.0)
    theirs = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    for overflow in [False, False, False, True, False, True, True, False, False, False, False]:
        theirs.scale(p.sum()).backward()
        if overflow:
            p.grad[0] = math.inf
        theirs.step(opt)
        theirs.update()
        p.grad = None
        ours.update(overflow)
        assert ours.scale == theirs.get_scale(), overflow
    state = ours.state_dict()
    again = optim.LossScaler()
    again.load_state_dict(state)
    assert again.state_dict() == state


def _tiny(dtype_model=np.float32, seed=0):
    m = nn.Linear(6, 4, backend="numpy", generator=mg.Generator(seed))
    x = np.random.default_rng(seed).standard_normal((5, 6)).astype(np.float32)
    return m, x


def test_one_mixed_precision_step_equals_torch_adamw_on_float32_masters():
    model, x = _tiny()
    amp = optim.MixedPrecision(model, "float16", optim.LossScaler(init_scale=1024.0))
    assert model.weight.dtype == np.float16 and amp.masters[0].dtype == np.float32
    opt = optim.AdamW(amp.masters, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    amp.attach(opt)
    master0 = amp.masters[0].numpy().copy()
    out = model(mg.tensor(x.astype(np.float16), backend="numpy"))
    loss = (out.astype(np.float32) ** 2).sum()
    amp.backward(loss)
    scaled = model.weight.grad.numpy().astype(np.float32)
    norm = amp.unscale_and_clip(max_norm=0.5)
    true = scaled / 1024.0
    assert norm == pytest.approx(float(np.linalg.norm(true)), rel=1e-6)
    assert amp.step()
    tp = torch.nn.Parameter(torch.tensor(master0))
    tp.grad = torch.tensor(true * min(1.0, 0.5 / (norm + 1e-6)))
    topt = torch.optim.AdamW([tp], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    topt.step()
    np.testing.assert_allclose(amp.masters[0].numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.weight.numpy(), amp.masters[0].numpy().astype(np.float16))
    assert amp.scaler.scale == 1024.0 and amp.scaler.good_steps == 1


def test_loss_scaling_keeps_gradients_float16_would_flush_to_zero():
    grads = {}
    for scale in (1.0, 2.0 ** 16):
        model, x = _tiny()
        amp = optim.MixedPrecision(model, "float16", optim.LossScaler(init_scale=scale, enabled=scale != 1.0))
        amp.attach(optim.AdamW(amp.masters))
        loss = model(mg.tensor(x.astype(np.float16), backend="numpy")).astype(np.float32).sum() * 1e-8
        amp.backward(loss)
        amp.unscale_and_clip()
        grads[scale] = model.weight.grad.numpy().astype(np.float64) / amp.scaler.scale
    true = np.tile(x.sum(axis=0), (4, 1)) * 1e-8  # d loss / d W: each row is the column sums of x
    assert not grads[1.0].any()  # ~1e-8 is below float16's smallest subnormal (6e-8): all zero
    np.testing.assert_allclose(grads[2.0 ** 16], true, rtol=2e-3, atol=1e-11)


def test_an_overflow_skips_the_step_and_halves_the_scale():
    model, x = _tiny()
    amp = optim.MixedPrecision(model, "float16", optim.LossScaler(init_scale=2.0 ** 8))
    opt = optim.AdamW(amp.masters, lr=1e-2)
    amp.attach(opt)
    before = [m.numpy().copy() for m in amp.masters], model.weight.numpy().copy()
    amp.backward(model(mg.tensor(x.astype(np.float16), backend="numpy")).astype(np.float32).sum())
    model.weight.grad.data[0, 0] = np.inf
    assert not math.isfinite(amp.unscale_and_clip(1.0))
    assert not amp.step()
    assert amp.scaler.scale == 2.0 ** 7 and amp.scaler.overflows == 1 and opt.state == {}
    for m, b in zip(amp.masters, before[0]):
        np.testing.assert_array_equal(m.numpy(), b)
    np.testing.assert_array_equal(model.weight.numpy(), before[1])


def test_f16_training_tracks_f32_and_saves_float32_weights(tmp_path, data):  # noqa: F811
    run(config(tmp_path, "f32"), data, max_steps=30, eval_interval=0, save_interval=0)
    summary = run(config(tmp_path, "f16", dtype="f16"), data, max_steps=30, eval_interval=0, save_interval=0)
    a, b = losses(str(tmp_path / "f32")), losses(str(tmp_path / "f16"))
    assert [s for s, _ in a] == [s for s, _ in b]
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 0.05  # float16 rounding, not another run
    assert b[-1][1] < b[0][1] - 1.0
    assert summary["overflow_steps"] == 0 and summary["loss_scale"] == 2.0 ** 16
    ckpt = load_checkpoint(str(tmp_path / "f16" / "final"))
    assert all(v.dtype == np.float32 for v in ckpt.model.values())  # the masters
    assert ckpt.meta["amp"]["scale"] == 2.0 ** 16


def test_f16_resume_is_exact_and_checkpoints_cross_precisions(tmp_path, data):  # noqa: F811
    kw = dict(max_steps=8, save_interval=4, eval_interval=4, dtype="f16")
    run(config(tmp_path, "straight"), data, **kw)

    class Interrupt(Exception):
        pass

    def stop(model, step):
        if step == 4:
            raise Interrupt
    with pytest.raises(Interrupt):
        run(config(tmp_path, "split"), data, after_backward=stop, **kw)
    run(config(tmp_path, "split"), data, resume="auto", **kw)
    a, b = load_checkpoint(str(tmp_path / "straight" / "final")), load_checkpoint(str(tmp_path / "split" / "final"))
    for k in a.model:
        assert np.array_equal(a.model[k], b.model[k]), k
    for k in a.optimizer:
        assert np.array_equal(a.optimizer[k], b.optimizer[k]), k
    assert losses(str(tmp_path / "straight")) == losses(str(tmp_path / "split"))
    assert a.meta["amp"] == b.meta["amp"]
    # an f16 checkpoint continues in float32, and a float32 one in float16
    step4 = str(tmp_path / "straight" / train.step_dir_name(4))
    run(config(tmp_path, "to32"), data, resume=step4, max_steps=6, eval_interval=0, save_interval=0)
    run(config(tmp_path, "to16"), data, resume=str(tmp_path / "to32" / "final"), max_steps=8, eval_interval=0,
        save_interval=0, dtype="f16")
    assert [s for s, _ in losses(str(tmp_path / "to16"))][-1] == 8


def test_an_overflow_in_training_halves_the_scale_and_is_not_a_non_finite_step(tmp_path, data):  # noqa: F811
    def poison(model, step):
        if step == 2:
            next(iter(model.parameters())).grad.data[0, 0] = np.inf
    summary = run(config(tmp_path), data, after_backward=poison, max_steps=5, dtype="f16", eval_interval=0)
    assert summary["overflow_steps"] == 1 and summary["non_finite_steps"] == 0
    assert summary["loss_scale"] == 2.0 ** 15
    events = [r for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if r.get("event") == "overflow"]
    assert [(e["step"], e["loss_scale"]) for e in events] == [(3, 2.0 ** 15)]


def test_bf16_off_the_gpu_is_refused_naming_the_key(tmp_path, data, capsys):  # noqa: F811
    path = config(tmp_path)
    assert train.main(["train", "-f", path, "-d", data, "--dtype", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "trainer.dtype (from --dtype bf16) = 'bf16' needs the GPU" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run")


def test_bf16_casts_the_model_and_keeps_float32_masters_without_loss_scaling():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    model, _ = _tiny()
    w = model.weight.numpy().copy()
    amp = optim.MixedPrecision(model, "bfloat16")
    assert model.weight.dtype == np.dtype(ml_dtypes.bfloat16) and model.weight.requires_grad
    np.testing.assert_array_equal(amp.masters[0].numpy(), w)
    np.testing.assert_array_equal(model.weight.numpy(), w.astype(ml_dtypes.bfloat16))
    assert not amp.scaler.enabled and amp.scaler.scale == 1.0
    assert "needs the cupy backend" in optim.amp.bf16_problem(mg.get_backend("numpy"))
