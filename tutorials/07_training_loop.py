# %% [markdown]
# # 07 · Training a language model: the loop, then `python train.py`
#
# Step 04 trained an MLP with a hand-written SGD update. Training a language model is the
# same four moves (forward, backward, update, clear) with three upgrades:
#
# - **the data** is a stream of tokens, cut into windows; the model predicts each next token;
# - **the optimizer** is AdamW, which scales each parameter's step by a running estimate of
#   its gradient's size (so every parameter moves at a similar pace), and shrinks weights a
#   little each step (weight decay);
# - **the learning rate** follows a schedule: a short warmup, then a cosine decay.
#
# We write that loop (about 30 lines), train a tiny Llama on Python source code read as raw
# bytes, and then run **exactly the same training** through `python train.py`, and check that
# it reports the same losses. The target, asserted at the end: the validation loss falls
# **below 2.6 nats**, well under the ≈ 2.9 nats of the best guess that ignores context.

# %%
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import _common
import numpy as np

import minigrad as mg
import nn
from minigrad import optim
from minigrad.data import TokenFile, WindowSampler, eval_batches, split_tail, unigram_entropy, write_tokens

VAL_LOSS_TARGET = 2.6
quick = _common.is_quick()
steps = 100 if quick else 1000

# %% [markdown]
# ## The data: bytes as tokens
#
# The simplest tokenizer is none at all: every byte is a token, so the vocabulary is the 256
# byte values. (`python train.py prepare-data` trains a BPE tokenizer instead, which packs
# several characters into a token; bytes keep this step free of any download or training.)
#
# The text is the source of Python's own `argparse` module, about 100 KB, present wherever
# Python is. As `train.py` does when it gets no separate validation file, the last 5 % of the
# tokens are held out to measure the loss on text the model never trained on.
#
# The **unigram entropy** is the loss of the best model that ignores context (it just knows
# how often each byte occurs). A model that beats it has learned something about context.

# %%
with open(argparse.__file__, "rb") as f:
    text = f.read()
tokens = np.frombuffer(text, dtype=np.uint8).astype(np.uint32)  # one token per byte: ids 0..255
print(f"{len(tokens):,} tokens from {argparse.__file__}")
print("a peek:", repr(bytes(tokens[2000:2080].astype(np.uint8)).decode("utf-8", "replace")))

SEQ_LEN, BATCH = 64, 8  # windows of 64 tokens (+1 for the shifted targets), 8 windows per step
train_files, val_files = split_tail([TokenFile("argparse.py", tokens)], 0.05, SEQ_LEN + 1)
entropy = unigram_entropy(train_files)
print(f"train {sum(map(len, train_files)):,} tokens, validation {sum(map(len, val_files)):,}; "
      f"unigram entropy {entropy:.3f} nats (uniform guessing: ln 256 = {math.log(256):.3f})")
_common.check("the target is below the unigram entropy", VAL_LOSS_TARGET < entropy)

# %% [markdown]
# `WindowSampler` cuts the training tokens into windows of `SEQ_LEN + 1` (from a random offset)
# and hands them out in a random order, a new order each epoch, all seeded. A batch is the
# inputs `x` (the first `SEQ_LEN` tokens of each window) and the targets `y` (the same window
# shifted by one): at every position, the model is asked for the next byte.

# %%
x, y = WindowSampler(train_files, SEQ_LEN, BATCH, seed=0).next_batch()
print("x", x.shape, x.dtype, "y", y.shape, y.dtype)
_common.check("targets are the inputs shifted by one", np.array_equal(x[:, 1:], y[:, :-1]))

# %% [markdown]
# ## The model and the optimizer
#
# A model like step 06's. The hyperparameters are the ones that matter most; `decay_groups`
# puts weight decay on the matrices only (not on norm weights, not on the embedding, whose
# rare rows would otherwise shrink between the steps that use them).

# %%
MODEL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 256, "max_seq_len": SEQ_LEN}
LR, MIN_LR_RATIO, WARMUP, BETAS, WEIGHT_DECAY, GRAD_CLIP, SEED = 3e-3, 0.1, 20, (0.9, 0.95), 0.1, 1.0, 0
LOG_EVERY = 25 if quick else 100

model = nn.build_model(MODEL, seed=SEED)
optimizer = optim.AdamW(optim.decay_groups(model.named_parameters(), WEIGHT_DECAY), lr=LR, betas=BETAS,
                        weight_decay=WEIGHT_DECAY)
print(f"{model.num_parameters():,} parameters; {steps} steps of {BATCH} x {SEQ_LEN} tokens")

# %% [markdown]
# The validation loss is measured on a fixed set of held-out windows, without recording a
# graph (`no_grad`), in `eval` mode.

# %%
val_batches = eval_batches(val_files, SEQ_LEN, BATCH, n_batches=20)


def validation_loss(model: nn.CausalLM) -> float:
    model.eval()
    with mg.no_grad():
        losses = [mg.cross_entropy(model(mg.tensor(vx)), mg.tensor(vy)).item() for vx, vy in val_batches]
    model.train()
    return float(np.mean(losses))


# %% [markdown]
# ## The loop
#
# Per step: set the learning rate from the schedule; forward; loss; backward; **clip** the
# gradient (if the gradients of all parameters together are longer than `GRAD_CLIP`, scale
# them down to that length: one unlucky batch cannot throw the weights far); update; clear.

# %%
sampler = WindowSampler(train_files, SEQ_LEN, BATCH, seed=SEED)
losses, grad_norms, val_curve = [], [], []
start = time.perf_counter()
for step in range(steps):
    optim.set_lr(optimizer, step, WARMUP, steps, "cosine", MIN_LR_RATIO)  # warmup, then cosine to LR/10
    x, y = sampler.next_batch()  # (B, T) inputs and (B, T) next-token targets
    logits = model(mg.tensor(x))  # (B, T, 256)
    loss = mg.cross_entropy(logits, mg.tensor(y))
    loss.backward()
    grad_norms.append(optim.clip_grad_norm_(model.parameters(), GRAD_CLIP))  # the norm before clipping
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
    if (step + 1) % LOG_EVERY == 0 or step + 1 == steps:
        val_curve.append((step + 1, validation_loss(model)))
        print(f"step {step + 1:5d}  loss {losses[-1]:.3f}  val {val_curve[-1][1]:.3f}  "
              f"lr {optimizer.param_groups[0]['lr']:.2e}  |grad| {grad_norms[-1]:.2f}")
seconds = time.perf_counter() - start
print(f"{steps} steps in {seconds:.1f} s ({steps * BATCH * SEQ_LEN / seconds:,.0f} tokens/s)")

# %%
final_val = val_curve[-1][1]
print(f"validation loss {final_val:.3f} nats (target < {VAL_LOSS_TARGET}; unigram entropy {entropy:.3f})")
_common.check(f"the validation loss fell below {VAL_LOSS_TARGET} nats", final_val < VAL_LOSS_TARGET)
_common.check("the training loss went down", np.mean(losses[-10:]) < losses[0] - 2.0)

# %% [markdown]
# What does a loss of about 2 nats per byte look like? Let the model continue a prompt (step
# 08 explains the sampling knobs). Expect Python-flavoured noise: common words, indentation,
# `self.`; training longer (full mode) and on more text gets further.

# %%
prompt = np.frombuffer(b"    def ", dtype=np.uint8).astype(np.int64)
sample = model.generate(prompt, max_new_tokens=48, temperature=0.8, top_k=20, seed=0)
print(repr(bytes(sample[0].astype(np.uint8)).decode("utf-8", "replace")))

# %% [markdown]
# ## The same run through `python train.py`
#
# `train.py` is this loop plus what a long run needs: a YAML config checked before anything
# starts, checkpoints it can resume from, a progress bar, periodic validation and logs. Give it
# the same model, the same hyperparameters, the same seed and the same tokens (as a `.bin` file
# of unsigned 32-bit little-endian ids, the format `train.py` reads) and it must make the same
# steps. Two flags for this tutorial:
#
# - `--headless` prints one JSON record per line instead of a progress bar;
# - `--log-grad-norms` adds each layer's gradient norm to those records (as in step 06).
#
# We ask for the `numpy` backend to match the loop above: `train.py`'s default on a CPU is
# `numba`, whose compiled kernels are faster on larger models and agree to float32 rounding.

# %%
out = _common.out_dir()
data_path = os.path.join(out, "07_argparse_bytes.bin")
config_path = os.path.join(out, "07_tiny.yaml")
run_dir = os.path.join(out, "07_run")
write_tokens(data_path, tokens)
config_text = f"""# written by tutorials/07_training_loop.py
model:
  hidden_size: {MODEL['hidden_size']}
  num_layers: {MODEL['num_layers']}
  num_heads: {MODEL['num_heads']}
  vocab_size: {MODEL['vocab_size']}
  max_seq_len: {MODEL['max_seq_len']}
trainer:
  batch_size: {BATCH}
  learning_rate: {LR}
  min_lr: {LR * MIN_LR_RATIO}
  lr_schedule: cosine
  warmup_steps: {WARMUP}
  betas: [{BETAS[0]}, {BETAS[1]}]
  weight_decay: {WEIGHT_DECAY}
  grad_clip: {GRAD_CLIP}
  seed: {SEED}
  num_epochs: 0          # let --max-steps decide the length
  log_interval: 1        # a record every step, to compare with ours
  eval_interval: {LOG_EVERY}
  eval_batches: 20
  save_interval: 0       # checkpoints: only best and final
  sample_tokens: 0       # no tokenizer for raw bytes, so no text sample at the end
"""
with open(config_path, "w") as f:
    f.write(config_text)
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time
command = [sys.executable, os.path.join(_common.REPO_ROOT, "train.py"), "-f", config_path, "-d", data_path,
           "--max-steps", str(steps), "--backend", "numpy", "--out", run_dir, "--headless", "--log-grad-norms"]
print("$ python train.py " + " ".join(os.path.relpath(a) if os.path.isabs(a) else a for a in command[2:]))
proc = subprocess.run(command, capture_output=True, text=True, cwd=_common.REPO_ROOT)
print(proc.stderr.strip())  # headless: messages on stderr, JSON records on stdout
_common.check("python train.py finished", proc.returncode == 0)

# %% [markdown]
# Everything the run reported is also in `metrics.jsonl` in the run directory, one JSON object
# per line: step records (`loss`, `lr`, `grad_norm`, `grad_norms` per layer), validation
# records (`val_loss`) and a final `done` summary. Read it back:

# %%
with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
step_records = [r for r in records if "loss" in r and "step" in r and "event" not in r]
val_records = [r for r in records if "val_loss" in r and "event" not in r]
done = next(r for r in records if r.get("event") == "done")
print(f"{len(step_records)} step records, {len(val_records)} validation records; done: "
      f"{ {k: done[k] for k in ('step', 'stop', 'val_loss', 'unigram_entropy')} }")
print("one step record:", {k: (round(v, 4) if isinstance(v, float) else v)
                           for k, v in step_records[-1].items() if k != "grad_norms"})
print("its grad_norms:", {k: round(v, 4) for k, v in step_records[-1]["grad_norms"].items()})

cli_losses = np.array([r["loss"] for r in step_records])
difference = np.abs(cli_losses - np.array(losses)).max()
print(f"largest per-step loss difference, train.py vs our loop: {difference:.1e}")
_common.check("train.py made the same steps as our loop", len(cli_losses) == steps and difference < 1e-4)
_common.check(f"train.py's validation loss is below {VAL_LOSS_TARGET} too", done["val_loss"] < VAL_LOSS_TARGET)
_common.check("train.py logged a gradient norm for every layer",
              set(step_records[0]["grad_norms"]) == {"model.embed_tokens", "model.norm", "lm_head"}
              | {f"model.layers.{i}" for i in range(MODEL["num_layers"])})

# %% [markdown]
# ## Pictures: the loss and the gradient norms per layer
#
# The gradient norms show training from the inside. In the first steps the `lm_head`
# dominates while the model learns which bytes are common (the loss drops fast towards the
# unigram entropy); then the blocks, which learn context, take a larger share. The spikes
# are batches the model found surprising: clipping keeps them from throwing the weights far.

# %%
layer_names = list(step_records[0]["grad_norms"])
norms_by_layer = {name: [r["grad_norms"][name] for r in step_records] for name in layer_names}
plt = _common.pyplot()
if plt is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    ax1.plot(range(1, steps + 1), losses, label="train (our loop)", alpha=0.7)
    ax1.plot([r["step"] for r in step_records], cli_losses, "--", label="train (train.py)", alpha=0.7)
    ax1.plot(*zip(*val_curve), "o-", label="validation")
    ax1.axhline(entropy, color="gray", linestyle=":", label=f"unigram entropy {entropy:.2f}")
    ax1.axhline(VAL_LOSS_TARGET, color="red", linestyle=":", label=f"target {VAL_LOSS_TARGET}")
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy (nats)")
    ax1.legend()
    for name, values in norms_by_layer.items():
        ax2.plot([r["step"] for r in step_records], values, label=name)
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("|grad| before clipping")
    ax2.set_title("train.py --log-grad-norms")
    ax2.legend(fontsize=8)
    _common.save(fig, "07_training.png")

# %% [markdown]
# The run directory also holds checkpoints (`best/`, `final/`: `model.safetensors`,
# `optimizer.safetensors`, `meta.json`); `python train.py sample --checkpoint PATH` generates
# from one, and `--resume auto` continues a run where it stopped.
#
# **Next:** `08_sampling_and_kv_cache.py`: how generation picks tokens, and how a KV cache
# avoids recomputing the whole prefix for every new token.
