"""Faults during a run lose nothing already written: stop signals save and resume bitwise, a full disk
leaves earlier checkpoints and no temporary directory, a crash while replacing best/ keeps a loadable
best/, a used or busy run directory is refused untouched, a closed stdout does not end the run, and a
run whose every step is non-finite stops without replacing good checkpoints."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

import train
from minigrad.io import load_checkpoint
from minigrad.io.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "train.py")
MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 64, "max_seq_len": 16}
TRAINER = {"batch_size": 2, "max_steps": 30, "eval_interval": 10, "eval_batches": 1, "log_interval": 1,
           "save_interval": 0, "backend": "numpy", "sample_tokens": 0, "learning_rate": 0.01}


@pytest.fixture
def files(tmp_path):
    (np.arange(4000) * 7 % 64).astype("<u4").tofile(tmp_path / "d.bin")  # learnable: the val loss improves
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": MODEL, "trainer": TRAINER}))
    return tmp_path


def argv(tmp, out, *extra):
    return ["-f", str(tmp / "c.yaml"), "-d", str(tmp / "d.bin"), "--out", str(out), "--headless", *extra]


def same_weights(a, b):
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.meta["step"] == cb.meta["step"]
    for k in ca.model:
        assert np.array_equal(ca.model[k], cb.model[k]), k
    for k in ca.optimizer:
        assert np.array_equal(ca.optimizer[k], cb.optimizer[k]), k


def wait_for_steps(run, proc, n, timeout=90):
    """Block until the run's metrics.jsonl holds ``n`` step records."""
    deadline = time.time() + timeout
    path = os.path.join(run, "metrics.jsonl")
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the run never got going"
        if os.path.exists(path):
            with open(path) as f:
                if sum('"loss"' in line for line in f) >= n:
                    return
        time.sleep(0.02)


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_stop_signal_saves_and_resume_is_bitwise_equal(files, sig, status):
    steps = ["--max-steps", "600"]  # long enough that the signal lands mid-run
    assert train.main(argv(files, files / "straight", *steps)) == 0
    run = files / "split"
    proc = subprocess.Popen([sys.executable, TRAIN, *argv(files, run, *steps)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_for_steps(run, proc, 3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err and "--resume auto" in err and "checkpoint" in err
    saved = [n for n in os.listdir(run) if n.startswith("step-")]  # save_interval 0: saved because of the signal
    assert len(saved) == 1 and not os.path.exists(run / "final")
    assert train.main(argv(files, run, *steps, "--resume", "auto")) == 0
    same_weights(files / "straight" / "final", run / "final")
    assert not os.path.exists(run / ".lock")


def test_a_second_signal_exits_at_once(tmp_path):
    script = "\n".join([
        "import os, signal, sys, time", f"sys.path.insert(0, {ROOT!r})", "from minigrad.io import StopSignals",
        "with StopSignals(print) as stop:", "    os.kill(os.getpid(), signal.SIGTERM)",
        "    assert stop.signum == signal.SIGTERM", "    os.kill(os.getpid(), signal.SIGTERM)", "    time.sleep(30)"])
    start = time.time()
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 143 and time.time() - start < 20
    assert "send it again to exit at once" in r.stdout and "SIGTERM again: exiting now" in r.stderr


def test_disk_full_while_saving_keeps_earlier_checkpoints(files, monkeypatch, capsys):
    import minigrad.io.checkpoint as checkpoint

    write = checkpoint._write_file
    run = files / "run"

    def full_disk_at_step_20(path, data):
        if ".tmp-step-00000020-" in path and path.endswith("optimizer.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        write(path, data)

    monkeypatch.setattr(checkpoint, "_write_file", full_disk_at_step_20)
    assert train.main(argv(files, run, "--set", "trainer.save_interval=10")) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and ".tmp-step-00000020-" in err and "Traceback" not in err
    assert sorted(n for n in os.listdir(run) if not n.endswith(".jsonl") and n != "tokenizer.json") == \
        ["best", "step-00000010"]  # no temporary directory, nothing else touched
    assert load_checkpoint(str(run / "step-00000010")).meta["step"] == 10
    # resuming on the still-full disk (metrics.jsonl cannot be rewritten): a message, not a traceback
    real_open = open

    def full_open(path, mode="r", *a, **k):
        if str(path).endswith("metrics.jsonl.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_open)
    assert train.main(argv(files, run, "--resume", "auto")) == 1
    assert "metrics.jsonl.tmp: No space left on device" in capsys.readouterr().err


def test_a_real_full_disk_keeps_earlier_checkpoints(files):
    """The same on a 800 KiB tmpfs (in a private mount namespace): two checkpoints fit, the third does not."""
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {files}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine cannot mount a tmpfs (the injected-ENOSPC test above covers the logic)")
    disk = files / "disk"
    disk.mkdir()
    run = disk / "run"
    flags = " ".join(argv(files, run, "--set", "trainer.save_interval=10", "--set", "trainer.eval_interval=0"))
    check = (f"import sys; sys.path.insert(0, {ROOT!r}); from minigrad.io import load_checkpoint as load; "
             f"print('loads', load({str(run / 'step-00000010')!r}).meta['step'], "
             f"load({str(run / 'step-00000020')!r}).meta['step'])")
    script = (f"mount -t tmpfs -o size=800k tmpfs {disk} && {sys.executable} {TRAIN} {flags}; echo exit=$?; "
              f"ls -a {run}; {sys.executable} -c \"{check}\"; {sys.executable} {TRAIN} {flags} --resume auto; "
              "echo resumed=$?")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=180)
    assert "exit=1" in r.stdout and "No space left on device" in r.stderr and "Traceback" not in r.stderr, r.stderr
    listing = r.stdout.split("exit=1", 1)[1]
    assert "step-00000010" in listing and "step-00000020" in listing and ".tmp-" not in listing
    assert "loads 10 20" in r.stdout and "resumed=1" in r.stdout


CRASH_BETWEEN_RENAMES = """
import os, sys
sys.path.insert(0, {root!r})
import minigrad.io.checkpoint as checkpoint
rename = os.rename

def crash_after_moving_best_aside(src, dst):
    rename(src, dst)
    if os.path.basename(dst).startswith(".old-best-") and {armed!r}:
        os._exit(9)  # the process dies between the two renames

checkpoint.os.rename = crash_after_moving_best_aside
import train
sys.exit(train.main(sys.argv[1:]))
"""


def test_a_crash_between_the_renames_of_best_keeps_a_loadable_best(files):
    run = files / "run"
    flags = argv(files, run, "--set", "trainer.save_interval=10", "--set", "trainer.eval_interval=1")
    r = subprocess.run([sys.executable, "-c", CRASH_BETWEEN_RENAMES.format(root=ROOT, armed=True), *flags],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 9
    left = sorted(os.listdir(run))
    assert "best" not in left and any(n.startswith(".old-best-") for n in left)  # the only copy, moved aside
    r = subprocess.run([sys.executable, TRAIN, *flags, "--resume", "auto"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert 1 <= load_checkpoint(str(run / "best")).meta["step"] <= 30
    assert not [n for n in os.listdir(run) if n.startswith((".old-", ".tmp-"))]


def snapshot(run):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(run) for f in fs}


def test_a_fresh_run_into_a_used_directory_is_refused_untouched(files, capsys):
    run = files / "run"
    assert train.main(argv(files, run)) == 0
    before = snapshot(run)
    assert train.main(argv(files, run)) == 2
    assert "continue it with --resume auto, or pass --overwrite" in capsys.readouterr().err
    assert snapshot(run) == before
    assert train.main(argv(files, run, "--overwrite", "--set", "trainer.max_steps=5")) == 0
    assert load_checkpoint(str(run / "final")).meta["step"] == 5


def test_two_runs_at_once_the_second_is_refused_and_a_stale_lock_is_taken_over(files):
    run = files / "run"
    long_run = argv(files, run, "--set", "trainer.max_steps=100000", "--epochs", "0")  # (no epoch limit)
    first = subprocess.Popen([sys.executable, TRAIN, *long_run], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_steps(run, first, 2)
        before = snapshot(run)
        second = subprocess.run([sys.executable, TRAIN, *argv(files, run, "--resume", "auto")], capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2 and f"another run (pid {first.pid})" in second.stderr, second.stderr
        # Nothing of the first run's was removed. (A checkpoint it was writing at the snapshot, in a .tmp-*
        # directory, has since been renamed into place by the first run itself.)
        written = {path for path in before if not os.path.basename(os.path.dirname(path)).startswith(".tmp-")}
        assert written <= set(snapshot(run))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    lock = json.loads((run / ".lock").read_text())
    assert lock["pid"] == first.pid  # left behind by the killed run: stale
    r = subprocess.run([sys.executable, TRAIN, *argv(files, run, "--resume", "auto", "--set", "trainer.max_steps=3")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_headless_output_into_a_pipe_that_closes_does_not_end_the_run(files):
    run = files / "run"
    cmd = " ".join([sys.executable, TRAIN, *argv(files, run)]) + " | head -n 2 > /dev/null; exit ${PIPESTATUS[0]}"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(str(run / "final")).meta["step"] == 30
    assert read_metrics(str(run / "metrics.jsonl"))[-1]["event"] == "done"


def test_all_non_finite_steps_stop_the_run_and_keep_good_checkpoints(files):
    run = files / "run"
    assert train.main(argv(files, run, "--set", "trainer.max_steps=10")) == 0
    final_before = load_checkpoint(str(run / "final"))
    cfg = train.load_config(str(files / "c.yaml"), [("trainer.data", str(files / "d.bin"), "t"),
                                                    ("trainer.checkpoint_dir", str(run), "t"),
                                                    ("trainer.max_steps", 40, "t"),
                                                    ("trainer.max_non_finite_steps", 5, "t")])

    def poison(model, step):
        next(iter(model.parameters())).grad.data[...] = np.nan

    with pytest.raises(train.TrainingError, match="the last 5 steps all had a non-finite loss or gradient"):
        train.train(cfg, train.RunOptions(resume="auto", headless=True), after_backward=poison)
    final_after = load_checkpoint(str(run / "final"))
    assert final_after.meta["step"] == 10
    for k, v in final_before.model.items():
        assert np.array_equal(v, final_after.model[k])
    assert not os.path.exists(run / ".lock")


def test_weights_that_turn_non_finite_never_replace_a_good_final(files, capsys):
    run = files / "run"
    assert train.main(argv(files, run, "--set", "trainer.max_steps=10")) == 0
    good = load_checkpoint(str(run / "final"))
    cfg = train.load_config(str(files / "c.yaml"), [("trainer.data", str(files / "d.bin"), "t"),
                                                    ("trainer.checkpoint_dir", str(run), "t"),
                                                    ("trainer.max_steps", 14, "t")])

    def blow_up(model, step):
        if step == 12:
            model.model.norm.weight.data[0] = np.inf  # an update that overflowed, say

    summary = train.train(cfg, train.RunOptions(resume="auto", headless=True), after_backward=blow_up)
    assert summary["checkpoint"] is None and "not saving final/: the weights are not finite" in capsys.readouterr().err
    after = load_checkpoint(str(run / "final"))
    assert after.meta["step"] == 10 and all(np.array_equal(v, after.model[k]) for k, v in good.model.items())


def test_resuming_onto_other_data_says_so(files, capsys):
    run = files / "run"
    assert train.main(argv(files, run, "--set", "trainer.max_steps=5", "--set", "trainer.save_interval=5")) == 0
    (np.arange(4000) * 5 % 64).astype("<u4").tofile(files / "other.bin")
    flags = ["-f", str(files / "c.yaml"), "-d", str(files / "other.bin"), "--out", str(run), "--headless"]
    assert train.main(flags + ["--resume", "auto", "--max-steps", "8"]) == 0
    assert "was trained on other data than" in capsys.readouterr().err
