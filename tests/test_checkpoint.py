"""Checkpoint directories: exact round trips, atomic replacement, rotation, choosing the newest
complete one, and a process SIGKILLed mid-write leaving a loadable latest checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from minigrad.io import CheckpointError, find_latest, load_checkpoint, resolve_checkpoint, rotate, save_checkpoint
from minigrad.io.checkpoint import list_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arrays(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}


def save(run, name, step):
    return save_checkpoint(str(run), name, arrays(step), {"0.exp_avg": np.full(4, step, np.float32)},
                           {"step": step, "rng": {"state": 2**100 + step}})


def test_round_trip_is_exact_and_uses_safetensors(tmp_path):
    path = save(tmp_path, "step-00000007", 7)
    assert sorted(os.listdir(path)) == ["meta.json", "model.safetensors", "optimizer.safetensors"]
    ck = load_checkpoint(path)
    for k, v in arrays(7).items():
        np.testing.assert_array_equal(ck.model[k], v)
        assert ck.model[k].dtype == v.dtype
    assert ck.meta == {"step": 7, "rng": {"state": 2**100 + 7}}  # big ints (PCG64 state) survive JSON
    np.testing.assert_array_equal(load_file(os.path.join(path, "model.safetensors"))["w"], arrays(7)["w"])
    assert load_checkpoint(os.path.join(path, "model.safetensors")).path == path  # a file means its directory


def test_replacing_best_keeps_one_complete_copy(tmp_path):
    save(tmp_path, "best", 1)
    save(tmp_path, "best", 2)
    assert load_checkpoint(str(tmp_path / "best")).meta["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["best"]  # no temporary or old directories left


def test_latest_skips_incomplete_temporary_and_corrupt(tmp_path):
    for s in (2, 4, 6):
        save(tmp_path, f"step-{s:08d}", s)
    os.remove(tmp_path / "step-00000006" / "meta.json")          # incomplete
    (tmp_path / ".tmp-step-00000008-123").mkdir()                # a killed save's leftovers
    assert find_latest(str(tmp_path)).endswith("step-00000004")
    with open(tmp_path / "step-00000004" / "model.safetensors", "r+b") as f:
        f.truncate(20)                                           # corrupt: falls back to the one before
    assert find_latest(str(tmp_path)).endswith("step-00000002")
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        load_checkpoint(str(tmp_path / "step-00000006"))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(str(tmp_path / "step-00000004"))
    assert find_latest(str(tmp_path / "nothing-here")) is None


def test_final_counts_as_newest_when_it_is(tmp_path):
    save(tmp_path, "step-00000010", 10)
    save(tmp_path, "final", 12)
    save(tmp_path, "best", 11)
    assert find_latest(str(tmp_path)).endswith("final")
    assert resolve_checkpoint("latest", str(tmp_path)).endswith("final")
    assert resolve_checkpoint("best", str(tmp_path)) == str(tmp_path / "best")
    assert resolve_checkpoint("10", str(tmp_path)) == str(tmp_path / "step-00000010")


def test_rotation_keeps_newest_and_best_final(tmp_path):
    for s in range(1, 6):
        save(tmp_path, f"step-{s:08d}", s)
    save(tmp_path, "best", 2)
    save(tmp_path, "final", 5)
    (tmp_path / ".tmp-step-00000009-999999").mkdir()
    rotate(str(tmp_path), keep=2)
    assert [s for s, _ in list_checkpoints(str(tmp_path))] == [4, 5]
    assert sorted(os.listdir(tmp_path)) == ["best", "final", "step-00000004", "step-00000005"]


TINY = """
model: {hidden_size: 32, num_layers: 2, num_heads: 4, kv_heads: 2, vocab_size: 64, max_seq_len: 16}
trainer: {batch_size: 2, max_steps: 6, save_interval: 2, eval_interval: 0, eval_batches: 1, log_interval: 1,
          learning_rate: 0.01, backend: numpy, sample_tokens: 0}
"""


# train.py with checkpoint writes patched: the save at step 4 stops for two minutes after its first file
PAUSED_AT_STEP_4 = f"""
import pathlib, sys, time
sys.path.insert(0, {ROOT!r})
import minigrad.io.checkpoint as checkpoint
write = checkpoint._write_file

def write_then_pause(path, data):
    write(path, data)
    if ".tmp-step-00000004-" in path and path.endswith("model.safetensors"):
        pathlib.Path(path).parent.parent.joinpath(".paused-4").touch()
        time.sleep(120)

checkpoint._write_file = write_then_pause
import train
sys.exit(train.main(sys.argv[1:]))
"""


def test_sigkill_while_writing_a_checkpoint_leaves_a_loadable_latest(tmp_path):
    np.random.default_rng(0).integers(0, 64, 3000).astype("<u4").tofile(tmp_path / "d.bin")
    (tmp_path / "c.yaml").write_text(TINY)
    run = tmp_path / "run"
    flags = ["-f", str(tmp_path / "c.yaml"), "-d", str(tmp_path / "d.bin"), "--out", str(run), "--headless"]
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_AT_STEP_4, *flags], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not (run / ".paused-4").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the training process never reached the checkpoint at step 4"
            time.sleep(0.05)
        assert (run / f".tmp-step-00000004-{proc.pid}" / "model.safetensors").exists()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    latest = find_latest(str(run))
    assert latest == str(run / "step-00000002")
    ck = load_checkpoint(latest)
    assert ck.meta["step"] == 2 and ck.model and ck.optimizer
    # and training resumes from it to the end, sweeping the half-written directory away
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *flags, "--resume", "auto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout.strip().splitlines()[-1])
    assert done["event"] == "done" and done["step"] == 6
    assert not [n for n in os.listdir(run) if n.startswith(".tmp-")]
