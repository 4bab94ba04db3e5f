"""Data-parallel training over MPI (``mpirun -n 2``) on the CPU: two ranks with batch B train the weights
one rank trains with batch 2B; the ranks stay identical; a stopped job resumes at the same or another world
size; a dead or stuck rank ends the job with a message instead of a hang. And the per-GPU launcher's
process handling (the NCCL path itself needs GPUs: tests/gpu)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from minigrad.io import load_checkpoint
from minigrad.io.metrics import read_metrics

pytest.importorskip("mpi4py")  # the `test` extra installs mpi4py and MPICH; a bare checkout may lack them
MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpirun")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "train.py")
MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 64, "max_seq_len": 16}
TRAINER = {"batch_size": 2, "max_steps": 8, "num_epochs": 0, "eval_interval": 4, "eval_batches": 2,
           "log_interval": 1, "save_interval": 4, "backend": "numpy", "sample_tokens": 0, "learning_rate": 0.01,
           "bucket_mb": 0.02}  # small buckets: several all-reduces per step, overlapped with backward


@pytest.fixture
def files(tmp_path):
    (np.arange(6000) * 7 % 64).astype("<u4").tofile(tmp_path / "d.bin")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": MODEL, "trainer": TRAINER}))
    return tmp_path


def flags(tmp, out, *extra):
    return ["-f", str(tmp / "c.yaml"), "-d", str(tmp / "d.bin"), "--out", str(out), "--headless", *extra]


def mpirun(n, args, **kw):
    return subprocess.run([MPIRUN, "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 600), **kw)


def single(args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)


def step_losses(run):
    return [r["loss"] for r in read_metrics(os.path.join(run, "metrics.jsonl")) if "loss" in r and "event" not in r]


def assert_close_weights(a, b, rtol=1e-4, atol=1e-5):  # atol: lr (0.01) x 1e-3, Adam amplifies rounding
    ca, cb = load_checkpoint(str(a)), load_checkpoint(str(b))
    assert ca.meta["step"] == cb.meta["step"]
    for k in ca.model:
        np.testing.assert_allclose(ca.model[k], cb.model[k], rtol=rtol, atol=atol, err_msg=k)


def test_two_ranks_train_what_one_rank_trains_with_the_doubled_batch(files):
    two = mpirun(2, [TRAIN, *flags(files, files / "two")])
    assert two.returncode == 0, two.stderr
    one = single([TRAIN, *flags(files, files / "one", "--batch-size", "4")])
    assert one.returncode == 0, one.stderr
    assert_close_weights(files / "one" / "final", files / "two" / "final")
    np.testing.assert_allclose(step_losses(files / "two"), step_losses(files / "one"), rtol=1e-5)
    assert "x 2 processes (MPI)" in two.stderr and "= 64 tokens" in two.stderr  # the effective batch
    # rank 0 alone wrote: one metrics log, one set of checkpoints, and nothing else printed by rank 1
    assert sorted(n for n in os.listdir(files / "two") if not n.startswith(".")) == \
        ["best", "final", "metrics.jsonl", "step-00000004"]
    assert two.stderr.count("memory estimate") == 1


SYNC_WORKER = """
import sys, hashlib
sys.path.insert(0, {root!r})
import numpy as np
import minigrad as mg
import nn
from minigrad import distributed, optim

comm = distributed.init()
model = nn.build_model({model!r}, backend="numpy", seed=comm.rank)   # deliberately different starts
for p in model.parameters():
    comm.broadcast_(p.data)                                           # ... made identical, as train.py does
sync = distributed.GradientSync(model.parameters(), comm, bucket_mb=0.01)
opt = optim.AdamW(model.parameters(), lr=1e-2)
rng = np.random.default_rng(100 + comm.rank)                          # each rank its own data
early = []
for step in range(3):
    x = rng.integers(0, 64, (2, 17))
    loss = mg.cross_entropy(model(mg.tensor(x[:, :-1])), mg.tensor(x[:, 1:]))
    sync.arm()
    loss.backward()
    early.append(sync._next)                                          # buckets started before finish()
    sync.finish()
    opt.step(); opt.zero_grad()
digest = hashlib.sha1(b"".join(p.numpy().tobytes() for p in model.parameters())).hexdigest()
same = comm.broadcast_json(digest) == digest
with open(f"{{sys.argv[1]}}/rank{{comm.rank}}.txt", "w") as f:  # (one file each: printed lines may interleave)
    f.write(f"rank {{comm.rank}} identical={{same}} buckets={{len(sync.buckets)}} early={{early}}")
"""


def test_ranks_stay_identical_and_buckets_overlap_backward(files):
    script = SYNC_WORKER.format(root=ROOT, model=MODEL)
    r = mpirun(2, ["-c", script, str(files)])
    assert r.returncode == 0, r.stderr
    lines = [(files / f"rank{k}.txt").read_text() for k in (0, 1)]
    assert [line.split()[2] for line in lines] == ["identical=True", "identical=True"], r.stdout
    buckets = int(lines[0].split("buckets=")[1].split()[0])
    early = json.loads(lines[0].split("early=")[1])
    assert buckets > 2 and all(e >= buckets - 1 for e in early)  # all but the first layers' bucket went early


def wait_for_steps(run, proc, n, timeout=300):
    deadline, path = time.time() + timeout, os.path.join(run, "metrics.jsonl")
    while True:
        assert proc.poll() is None, "the job ended early"
        assert time.time() < deadline, "the job never got going"
        if os.path.exists(path) and sum('"loss"' in line for line in open(path)) >= n:
            return
        time.sleep(0.05)


def test_a_stopped_job_resumes_at_the_same_or_another_world_size(files):
    long = ["--max-steps", "120"]  # long enough that the signal lands mid-run
    straight = mpirun(2, [TRAIN, *flags(files, files / "straight", *long)])
    assert straight.returncode == 0, straight.stderr
    run = files / "split"
    proc = subprocess.Popen([MPIRUN, "-n", "2", sys.executable, TRAIN, *flags(files, run, *long)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_steps(run, proc, 3)
        proc.send_signal(signal.SIGTERM)  # the launcher forwards it to both ranks
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.count("Continue with:") == 1 and "mpirun -n 2 python train.py" in err
    shutil.copytree(run, files / "split1")
    again = mpirun(2, [TRAIN, *flags(files, run, *long, "--resume", "auto")])
    assert again.returncode == 0, again.stderr
    assert_close_weights(files / "straight" / "final", run / "final", rtol=0, atol=0)  # same reductions: bitwise
    # the same checkpoint continued by one process with the doubled batch
    one = single([TRAIN, *flags(files, files / "split1", *long, "--batch-size", "4", "--resume", "auto")])
    assert one.returncode == 0, one.stderr
    assert_close_weights(files / "straight" / "final", files / "split1" / "final", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("how", ["killed", "stuck"])
def test_a_dead_or_stuck_rank_ends_the_job_with_a_message(files, how):
    run = files / "run"
    cmd = [MPIRUN, "-n", "2", sys.executable, TRAIN, *flags(files, run, "--max-steps", "100000"),
           "--set", "trainer.dist_timeout=5"]
    log = open(files / "stderr.txt", "w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_for_steps(run, proc, 10)
        log.seek(0)
        victim = int(re.search(r"rank 1 of 2 \(MPI\): pid (\d+)", log.read()).group(1))
        os.kill(victim, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        start = time.time()
        out, _ = proc.communicate(timeout=60)
        took = time.time() - start
        log.seek(0)
        err = log.read()
    finally:
        proc.kill()
        subprocess.run(["pkill", "-KILL", "-f", "--", f"--out {run} "])
    assert proc.returncode != 0 and took < 40
    if how == "stuck":  # our own watchdog: rank 0 gives up after dist_timeout and says why
        assert "no answer from the other ranks for 5 s" in err and "is intact" in err, err
    else:               # the launcher noticed the death first
        assert "BAD TERMINATION" in out + err or "no answer from the other ranks" in err, out + err
    ckpts = sorted(n for n in os.listdir(run) if n.startswith("step-"))
    assert ckpts and load_checkpoint(str(run / ckpts[-1])).meta["step"] % 4 == 0


def test_the_gpu_launcher_starts_one_worker_per_gpu_and_stops_them_all_when_one_fails(tmp_path, monkeypatch):
    from minigrad.distributed import launch

    monkeypatch.setattr(launch, "new_unique_id", lambda: [7] * 128)  # (creating a real one needs CuPy)
    report = tmp_path / "rank{}.json"
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import json, os, sys, time\n"
        f"e = {{k: os.environ[k] for k in ('{launch.ENV_RANK}', '{launch.ENV_SIZE}', '{launch.ENV_DEVICE}')}}\n"
        f"json.dump({{**e, 'argv': sys.argv[1:]}}, open({str(report)!r}.format(e['{launch.ENV_RANK}']), 'w'))\n"
        "if sys.argv[1:] == ['fail'] and e['MINIGRAD_RANK'] == '1':\n    sys.exit(3)\n"
        "if sys.argv[1:] == ['fail']:\n    time.sleep(60)\n")
    assert launch.launch_local([2, 5], ["ok"], str(worker)) == 0
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(s["MINIGRAD_RANK"], s["MINIGRAD_WORLD_SIZE"], s["MINIGRAD_DEVICE"]) for s in seen] == \
        [("0", "2", "2"), ("1", "2", "5")] and seen[0]["argv"] == ["ok"]
    start = time.time()
    assert launch.launch_local([0, 1], ["fail"], str(worker), grace=5) == 3  # rank 0 is stopped, not waited for
    assert time.time() - start < 30


def test_gpu_worker_command_line_and_bad_gpu_lists():
    from minigrad import distributed

    argv = ["train", "-f", "c.yaml", "--gpus", "0,1", "--max-steps", "5"]
    assert distributed.worker_argv(argv) == ["train", "-f", "c.yaml", "--max-steps", "5", "--backend", "cupy",
                                             "--sync-backend", "nccl"]
    from minigrad.distributed import DistributedError, parse_gpus

    assert parse_gpus("0,2") == [0, 2]
    for bad in ("", "a,b", "1,1", "-1"):
        with pytest.raises(DistributedError, match="--gpus"):
            parse_gpus(bad)
