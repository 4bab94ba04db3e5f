"""A small finished training run (prepared data with its tokenizer, checkpoints, metrics), for the pack,
export and push tests."""

from __future__ import annotations

import os
from types import SimpleNamespace

import yaml

import train

# Real text with some structure (the model learns it in a few steps, so greedy decoding has clear winners).
TEXT = ("def add(a, b):\n    return a + b\n\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n"
        "        self.y = y\n\n    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n\n") * 60
MODEL = {"name": "tiny-pack", "hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 300,
         "max_seq_len": 64, "intermediate_size": 64}
TRAINER = {"batch_size": 4, "max_steps": 30, "learning_rate": 0.01, "warmup_steps": 3, "eval_interval": 10,
           "eval_batches": 2, "log_interval": 1, "save_interval": 10, "backend": "numpy", "sample_tokens": 0,
           "seq_len": 32}


def make_run(tmp, model=None, trainer=None, name="run") -> SimpleNamespace:
    """prepare-data on TEXT, then a training run into ``tmp/name``."""
    tmp = str(tmp)
    text = os.path.join(tmp, "t.txt")
    with open(text, "w") as f:
        f.write(TEXT)
    data = os.path.join(tmp, "prepared")
    if not os.path.isdir(data):
        assert train.main(["prepare-data", "--text", text, "--vocab-size", "290", "--seq-len", "32",
                           "--output", data]) == 0
    cfg = os.path.join(tmp, f"{name}.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump({"model": {**MODEL, **(model or {})}, "trainer": {**TRAINER, **(trainer or {})}}, f)
    run = os.path.join(tmp, name)
    assert train.main(["-f", cfg, "-d", data, "--out", run, "--headless"]) == 0
    return SimpleNamespace(root=tmp, cfg=cfg, data=data, run=run, tokenizer=os.path.join(data, "tokenizer.json"))
