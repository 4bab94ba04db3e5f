"""Training off the CPU. On the CPU: the whole trainer (prefetching uploads, mixed precision, checkpoints,
evaluation, resume, generation) runs on the strict backend, whose arrays refuse conversion to NumPy as
CuPy's do, so any step that reaches past the backend seam fails here; its checkpoints resume on NumPy.
On a GPU (marked gpu): the same on CuPy, losses equal the CPU's within float32 rounding, f16 and bf16
runs track float32, a GPU checkpoint resumes on the CPU and the other way round."""

from __future__ import annotations

import numpy as np
import pytest
from test_train import config, data, losses, run  # noqa: F401  (data is a fixture)

import minigrad as mg
import nn
import train
from minigrad.data import BatchStream, HostToDevice, WindowSampler
from minigrad.data.tokens import open_tokens
from minigrad.io import load_checkpoint


@pytest.fixture
def on_strict(monkeypatch):
    """train.py resolving every backend to "strict" (the CuPy stand-in of tests/strict_backend.py)."""
    monkeypatch.setattr(train, "pick_backend", lambda name, log: "strict")
    yield
    mg.set_default_backend("numpy")


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_the_trainer_runs_on_a_backend_that_refuses_numpy_and_resumes_on_numpy(tmp_path, data, on_strict, dtype):  # noqa: F811
    summary = run(config(tmp_path, "dev"), data, max_steps=6, save_interval=3, eval_interval=3, prefetch=2,
                  gradient_accumulation=2, dtype=dtype, log_grad_norms=True)
    assert summary["step"] == 6 and np.isfinite(summary["val_loss"])
    ckpt = load_checkpoint(str(tmp_path / "dev" / "final"))
    assert ckpt.meta["backend"] == "strict" and all(v.dtype == np.float32 for v in ckpt.model.values())
    model = nn.build_model(ckpt.meta["config"]["model"], backend="strict")
    model.load_state_dict(ckpt.model)
    out = model.generate(np.array([[1, 2, 3]]), max_new_tokens=4, temperature=0.8, top_k=5)
    assert np.asarray(out).shape == (1, 7)
    mg.set_default_backend("numpy")


def test_a_strict_checkpoint_continues_on_numpy(tmp_path, data, monkeypatch):  # noqa: F811
    monkeypatch.setattr(train, "pick_backend", lambda name, log: "strict")
    run(config(tmp_path, "a"), data, max_steps=4, save_interval=2, eval_interval=0)
    monkeypatch.undo()
    mg.set_default_backend("numpy")
    run(config(tmp_path, "a"), data, resume="auto", max_steps=8, save_interval=2, eval_interval=0)
    assert [s for s, _ in losses(str(tmp_path / "a"))] == list(range(1, 9))


def test_batch_stream_uploads_give_the_same_batches_and_cursor(data):  # noqa: F811
    files, strict = open_tokens(data, 17), mg.get_backend("strict")
    plain = BatchStream(WindowSampler(files, 16, 4, seed=3))
    want = [plain.next() for _ in range(3)]
    for prefetch in (0, 2):
        moved = BatchStream(WindowSampler(files, 16, 4, seed=3), prefetch, HostToDevice(strict))
        for hx, hy in want:
            x, y = moved.next()
            assert strict.is_array(x) and strict.is_array(y)
            np.testing.assert_array_equal(strict.to_numpy(x), hx)
            np.testing.assert_array_equal(strict.to_numpy(y), hy)
        assert moved.state_dict() == plain.state_dict()
        moved.close()


# ---- on a GPU -------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cupy_training_equals_the_cpu_and_its_checkpoint_resumes_on_the_cpu(tmp_path, data):  # noqa: F811
    run(config(tmp_path, "cpu"), data, max_steps=10, eval_interval=5, backend="numpy")
    run(config(tmp_path, "gpu"), data, max_steps=10, eval_interval=5, backend="cupy", prefetch=2, save_interval=5)
    a, b = losses(str(tmp_path / "cpu")), losses(str(tmp_path / "gpu"))
    assert [s for s, _ in a] == [s for s, _ in b]
    np.testing.assert_allclose([x for _, x in b], [x for _, x in a], rtol=2e-4)
    assert load_checkpoint(str(tmp_path / "gpu" / "final")).meta["backend"] == "cupy"
    run(config(tmp_path, "gpu"), data, resume=str(tmp_path / "gpu" / train.step_dir_name(5)), max_steps=10,
        eval_interval=5, backend="numba")  # GPU step-5 -> CPU, to the same step 10
    c = losses(str(tmp_path / "gpu"))
    np.testing.assert_allclose([x for _, x in c][-5:], [x for _, x in a][-5:], rtol=2e-4)
    run(config(tmp_path, "cpu"), data, resume="auto", max_steps=14, eval_interval=0, backend="cupy")  # CPU -> GPU
    mg.set_default_backend("numpy")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_precision_on_the_gpu_tracks_float32(tmp_path, data, dtype):  # noqa: F811
    run(config(tmp_path, "f32"), data, max_steps=30, eval_interval=0, backend="cupy")
    summary = run(config(tmp_path, dtype), data, max_steps=30, eval_interval=0, backend="cupy", dtype=dtype)
    a, b = losses(str(tmp_path / "f32")), losses(str(tmp_path / dtype))
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < (0.05 if dtype == "f16" else 0.15)
    assert summary["non_finite_steps"] == 0
    mg.set_default_backend("numpy")


@pytest.mark.gpu
def test_host_to_device_uploads_on_a_stream(data):  # noqa: F811
    import cupy

    up = HostToDevice(mg.get_backend("cupy"))
    x = np.arange(24, dtype=np.int64).reshape(4, 6)
    dx, dy = up((x, x + 1))
    assert isinstance(dx, cupy.ndarray) and (cupy.asnumpy(dy) == x + 1).all()


@pytest.mark.skipif(mg.backend.cuda_unavailable() is None, reason="a GPU is here: the bench runs instead")
def test_the_gpu_bench_refuses_cleanly_without_a_gpu():
    import subprocess
    import sys

    from test_train import ROOT

    r = subprocess.run([sys.executable, "bench/gpu_train_step.py", "--steps", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "needs a GPU" in r.stderr and "Traceback" not in r.stderr
