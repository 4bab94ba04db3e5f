"""The README.md model card of a packed model, and its loss-curve PNG.

The card opens with the YAML front matter the Hub reads (library_name, license, tags, datasets,
pipeline_tag), then says what the model is (architecture, sizes, parameter count), what it was trained on,
for how long, how well (final train and validation losses, the curve) and how to load it. The curve needs
matplotlib (the ``plot`` extra); without it the card says so instead.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from .config import ModelConfig

CURVE = "loss_curve.png"


@dataclass
class CardFacts:
    repo_id: str
    family: str                 # "Llama-style", ...
    hf_class: str
    in_transformers: bool
    cfg: ModelConfig
    parameters: int
    step: int
    checkpoint: str             # which checkpoint was packed (final, best, step-N)
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    tokens_seen: int | None
    data: str                   # what the run was trained on, in words
    trainer: dict[str, Any]
    license: str = "mit"
    datasets: list[str] = field(default_factory=list)
    curve: bool = False         # loss_curve.png was written
    curve_note: str = ""        # why not, when it was not
    init_from: str | None = None  # the model folder the run started from (train.py --init-from)


def read_curve(metrics_path: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train (step, loss), validation (step, loss)) from metrics.jsonl; lines a crash cut short are skipped."""
    train, val = [], []
    try:
        with open(metrics_path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError):
        return train, val
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or "event" in rec or not isinstance(rec.get("step"), int):
            continue
        loss, val_loss = rec.get("loss"), rec.get("val_loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            train.append((rec["step"], float(loss)))
        elif isinstance(val_loss, (int, float)) and math.isfinite(val_loss):  # eval records carry val_loss alone
            val.append((rec["step"], float(val_loss)))
    return train, val


def plot_curve(metrics_path: str, png_path: str, mark_step: int) -> str:
    """Write the loss curve; returns '' or, when no PNG was written, the reason (for the card)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed (pip install 'minigrad[plot]'), so no loss-curve image was drawn"
    train, val = read_curve(metrics_path)
    if not train and not val:
        return f"{metrics_path} holds no losses, so no loss-curve image was drawn"
    fig = Figure(figsize=(7, 4), dpi=100)  # the object API: no pyplot, no global backend switch
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", markersize=3)
    ax.axvline(mark_step, color="gray", linestyle=":", label=f"packed: step {mark_step}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    return ""


def _num(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def front_matter(f: CardFacts) -> str:
    meta = {"library_name": "transformers" if f.in_transformers else "minigrad", "license": f.license,
            "tags": ["minigrad", f.hf_class.removesuffix("ForCausalLM").lower(), "causal-lm", "text-generation"],
            "pipeline_tag": "text-generation"}
    if f.datasets:
        meta["datasets"] = list(f.datasets)
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def architecture_table(f: CardFacts) -> str:
    c = f.cfg
    rows = [("class", f"`{f.hf_class}`"), ("parameters", f"{f.parameters:,}"), ("hidden size", c.hidden_size),
            ("layers", c.num_layers), ("attention heads", c.num_heads), ("key/value heads", c.n_kv_heads),
            ("SwiGLU width", c.ffn_size), ("vocabulary", c.vocab_size), ("context", c.max_seq_len),
            ("RoPE base", c.rope_theta), ("RMSNorm eps", c.rms_norm_eps),
            ("tied embeddings", "yes" if c.tie_word_embeddings else "no")]
    return "| | |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def usage(f: CardFacts) -> str:
    if not f.in_transformers:
        return f"```python\nimport nn  # minigrad\n\nmodel = nn.from_pretrained(\"path/to/{f.repo_id}\")\n```\n"
    return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"tok = AutoTokenizer.from_pretrained(\"{f.repo_id}\")\n"
            f"model = AutoModelForCausalLM.from_pretrained(\"{f.repo_id}\")\n"
            "inputs = tok(\"<|endoftext|>def \", return_tensors=\"pt\")  # documents start after end-of-text\n"
            "print(tok.decode(model.generate(**inputs, max_new_tokens=60)[0]))\n```\n")


def training(f: CardFacts) -> str:
    t = f.trainer
    tokens = f"{f.tokens_seen:,} tokens" if f.tokens_seen else "an unknown number of tokens"
    return (f"- data: {f.data}\n- steps: {f.step:,} ({tokens}); this is the `{f.checkpoint}` checkpoint\n"
            f"- optimizer: {t.get('optimizer')}, peak learning rate {t.get('learning_rate')}, "
            f"{t.get('lr_schedule')} schedule, {t.get('warmup_steps')} warmup steps\n"
            f"- batch: {t.get('batch_size')} x {t.get('gradient_accumulation')} windows of "
            f"{t.get('seq_len') or f.cfg.max_seq_len} tokens\n- the full config is `training_config.json`\n")


def results(f: CardFacts) -> str:
    curve = f"![loss curve]({CURVE})" if f.curve else f"(No loss curve: {f.curve_note}.)"
    return (f"| | loss (nats) |\n| --- | --- |\n| train, last logged step | {_num(f.train_loss)} |\n"
            f"| validation, this checkpoint | {_num(f.val_loss)} |\n"
            f"| validation, best of the run | {_num(f.best_val_loss)} |\n\n{curve}\n")


def model_card(f: CardFacts) -> str:
    start = f"from the weights of `{os.path.basename(f.init_from)}`" if f.init_from else "from scratch"
    return (front_matter(f) + f"\n# {f.repo_id.split('/')[-1]}\n\n"
            f"A {f.family} causal language model ({f.parameters:,} parameters) trained {start} with minigrad "
            "(`python train.py`), a NumPy-first educational training framework.\n\n"
            f"## Architecture\n\n{architecture_table(f)}\n## Training\n\n{training(f)}\n"
            f"## Results\n\n{results(f)}\n## Use\n\n{usage(f)}\n"
            "The tokenizer is a byte-level BPE; `<|endoftext|>` separates documents and is the bos/eos token.\n")
