"""An MLA + MoE model trained data-parallel (``mpirun -n 2``): with DeepSeek-V3's bias balancing the two
ranks sum their expert loads before each bias step, so two ranks of batch B train what one rank trains with
batch 2B, router biases included, and the metrics count the tokens of both ranks."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from minigrad.io.metrics import read_metrics

pytest.importorskip("mpi4py")

from test_distributed import TRAIN, assert_close_weights, flags, mpirun, single, step_losses  # noqa: E402

MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "vocab_size": 64, "max_seq_len": 16,
         "intermediate_size": 16, "kv_latent_dim": 16, "d_rope": 4, "num_experts": 4, "experts_per_tok": 2,
         "router_score": "sigmoid", "moe_balance": "bias_update", "bias_update_rate": 0.01}
TRAINER = {"batch_size": 2, "max_steps": 6, "num_epochs": 0, "eval_interval": 3, "eval_batches": 2,
           "log_interval": 3, "save_interval": 0, "backend": "numpy", "sample_tokens": 0, "learning_rate": 0.01}


@pytest.fixture
def files(tmp_path):
    (np.random.default_rng(0).integers(0, 64, 6000)).astype("<u4").tofile(tmp_path / "d.bin")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": MODEL, "trainer": TRAINER}))
    return tmp_path


def test_two_ranks_balance_experts_as_one_rank_with_the_doubled_batch(files):
    two = mpirun(2, [TRAIN, *flags(files, files / "two")])
    assert two.returncode == 0, two.stderr
    one = single([TRAIN, *flags(files, files / "one", "--batch-size", "4")])
    assert one.returncode == 0, one.stderr
    assert_close_weights(files / "one" / "final", files / "two" / "final")  # router biases among them
    np.testing.assert_allclose(step_losses(files / "two"), step_losses(files / "one"), rtol=1e-5)
    counts = [[r["moe"]["expert_tokens"] for r in read_metrics(str(files / run / "metrics.jsonl")) if "moe" in r]
              for run in ("one", "two")]
    assert counts[0] == counts[1] and sum(counts[1][0]["1"]) == 3 * 4 * 16 * 2  # 3 steps x 4 x 16 tokens x k
