"""Train a language model with minigrad, from a YAML config, on the command line.

    python train.py                                  # configs/nano-start.yaml on the embedded corpus
    python train.py -f my.yaml -d data/my.bin --max-steps 2000 --set trainer.learning_rate=1e-3
    python train.py prepare-data --text corpus/ --vocab-size 4096 --output data/mine
    python train.py sample --checkpoint latest --prompt "def " --max-new-tokens 100
    python train.py pack --username me            # hf/me/NAME/: a transformers folder with a model card
    python train.py push --model hf/me/NAME       # to the Hugging Face Hub (HF_TOKEN)
    python train.py export --gguf model.gguf      # for llama.cpp

Reading order: the ``trainer:`` section's schema (the model section's is ``nn/config.py``), the config
loader, then ``train()`` — the loop: set the learning rate, forward and backward over the micro-batches,
clip the global gradient norm, step the optimizer, and every so often log, evaluate and save. The
functions before it set a run up (data, model, optimizer, resume) and save it; the command line is last.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import minigrad as mg  # first: importing minigrad applies the process-wide settings before NumPy loads

# isort: split
import numpy as np

import nn
from minigrad import distributed, optim
from minigrad.config import ConfigError, Key, Problems, describe, merge_sources, parse_set, read_yaml
from minigrad.data import BatchStream, DataError, HostToDevice, WindowSampler, eval_batches, unigram_entropy
from minigrad.data.dataset import Datasets, describe_files, ensure_default_data, open_datasets
from minigrad.data.tokenizer import load_tokenizer
from minigrad.io import (
    CheckpointError,
    CheckpointWriteError,
    StopSignals,
    check_run_meta,
    find_latest,
    hold_run_dir,
    load_checkpoint,
    non_finite,
    resolve_checkpoint,
    rotate,
    save_checkpoint,
    step_dir_name,
)
from minigrad.io.metrics import MetricsLog, NullLog, Reporter, fmt_bytes, say
from minigrad.random import rng_states, set_rng_states

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "nano-start.yaml")

# ---- the trainer: section, its schema (the model: section's is nn/config.py) ---------------

TRAINER_KEYS: dict[str, Key] = {
    "backend": Key("str", "numba", "array backend: numpy or numba (CPU), cupy (GPU; without one, numba)",
                   choices=("numpy", "numba", "cupy")),
    "target_device": Key("str", None, "Oxidizr's spelling of the backend: cpu = numba, gpu = cupy", nullable=True,
                         choices=("cpu", "gpu")),
    "dtype": Key("str", "f32", "compute precision: f32, or f16 / bf16 with float32 master weights (f16 with "
                 "dynamic loss scaling; bf16 on a GPU only)", choices=("f32", "f16", "bf16")),
    "tf32": Key("bool", False, "cupy backend: float32 matmuls on TF32 tensor cores (faster, ~1e-3 relative)"),
    "loss_scale_growth_interval": Key("int", 2000, "f16: good steps in a row before the loss scale doubles",
                                      minimum=1),
    "seed": Key("int", 0, "seeds initialisation, data order and sampling", minimum=0),
    "data": Key("str", None, "a .bin token file or a directory; null = the embedded corpus", nullable=True),
    "val_data": Key("str", None, "validation tokens; null = val.bin beside the data, or a held-out tail",
                    nullable=True),
    "seq_len": Key("int", None, "tokens per training window; null = model.max_seq_len", nullable=True, minimum=1),
    "batch_size": Key("int", 8, "windows per micro-batch", minimum=1),
    "gradient_accumulation": Key("int", 1, "micro-batches summed into one optimizer step", minimum=1),
    "max_steps": Key("int", 0, "optimizer steps to run (0 = no limit)", minimum=0),
    "num_epochs": Key("int", 1, "passes over the training tokens (0 = no limit)", minimum=0),
    "optimizer": Key("str", "adamw", "adamw, lion or muon", choices=("adamw", "lion", "muon")),
    "learning_rate": Key("float", 3e-4, "peak learning rate", minimum=0.0),
    "min_lr": Key("float", None, "learning rate at the end of the decay; null = learning_rate / 10",
                  nullable=True, minimum=0.0),
    "lr_schedule": Key("str", "cosine", "cosine, wsd (warmup-stable-decay) or constant",
                       choices=("cosine", "wsd", "constant")),
    "warmup_steps": Key("int", 0, "steps of linear warmup from 0", minimum=0),
    "decay_fraction": Key("float", 0.2, "wsd: fraction of the steps spent decaying", minimum=0.0),
    "adamw_lr": Key("float", None, "muon: AdamW's lr for embeddings, lm_head and norms; null = learning_rate / 10",
                    nullable=True, minimum=0.0),
    "weight_decay": Key("float", 0.1, "decoupled weight decay (not on 1-D tensors or embeddings)", minimum=0.0),
    "betas": Key("floats", [0.9, 0.95], "AdamW/Lion betas", length=2),
    "grad_clip": Key("float", 1.0, "clip the global gradient norm to this (0 = off)", minimum=0.0),
    "log_interval": Key("int", 10, "steps between log lines", minimum=1),
    "eval_interval": Key("int", 100, "steps between validation runs (0 = only at the end)", minimum=0),
    "eval_batches": Key("int", 20, "batches per validation run", minimum=1),
    "early_stopping_patience": Key("int", 0, "stop after this many evals without improvement (0 = off)",
                                   minimum=0),
    "checkpoint_dir": Key("str", "checkpoints", "the run directory (checkpoints and metrics.jsonl)"),
    "save_interval": Key("int", 500, "steps between checkpoints (0 = only best and final)", minimum=0),
    "max_checkpoints": Key("int", 10, "step checkpoints kept (best and final are kept besides)", minimum=1),
    "prefetch": Key("int", 0, "batches prepared ahead by a background thread", minimum=0),
    "fail_on_non_finite": Key("bool", False, "stop on a NaN/Inf loss or gradient instead of skipping"),
    "max_non_finite_steps": Key("int", 20, "stop after this many skipped (NaN/Inf) steps in a row (0 = never)",
                                minimum=0),
    "log_grad_norms": Key("bool", False, "write per-layer gradient norms to metrics.jsonl"),
    "sample_prompt": Key("str", "def ", "prompt of the sample printed at the end"),
    "sample_tokens": Key("int", 120, "tokens generated for that sample (0 = none)", minimum=0),
    # data-parallel training (mpirun -n N, or --gpus 0,1,...)
    "sync_backend": Key("str", "cpu", "how gradients are averaged across processes: cpu (MPI) or nccl (GPUs)",
                        choices=("cpu", "nccl")),
    "dist_timeout": Key("float", 300.0, "seconds a process waits for the others before giving up", minimum=1.0),
    "bucket_mb": Key("float", 25.0, "MiB of gradients per all-reduce bucket", minimum=0.0),
    "grad_exchange_dtype": Key("str", "f32", "precision gradients travel in: f32, f16 or bf16",
                               choices=("f32", "f16", "bf16")),
    "overlap_comm": Key("bool", True, "all-reduce gradient buckets while backward still runs"),
    "load_balance_alpha": Key("float", 0.0, "MoE: weight of the load-balancing (aux) loss added to the training "
                              "loss", minimum=0.0),
    # Oxidizr keys accepted for compatibility; they do nothing until GRPO exists.
    "group_size": Key("int", None, "GRPO rollouts per prompt (unused)", nullable=True),
    "beta_kl": Key("float", None, "GRPO KL weight (unused)", nullable=True),
}
SECTIONS = {"model": nn.MODEL_KEYS, "trainer": TRAINER_KEYS}
DEVICE_BACKENDS = {"cpu": ("numba", "numpy"), "gpu": ("cupy",)}  # target_device -> backends (first: implied)


@dataclass
class Config:
    """A checked config: ``model`` and ``trainer`` hold every key (defaults filled in)."""

    model: dict[str, Any]
    trainer: dict[str, Any]
    source: str = "<defaults>"
    origins: dict[str, str] = field(default_factory=dict)  # "trainer.lr" -> "--lr" for overridden keys
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"model": dict(self.model), "trainer": dict(self.trainer)}

    def model_args(self) -> dict[str, Any]:
        """The model section as nn.build_model takes it: the keys that are set."""
        return {k: v for k, v in self.model.items() if v is not None and v != []}

    @property
    def seq_len(self) -> int:
        return self.trainer["seq_len"] or self.model["max_seq_len"]

    def label(self, dotted: str) -> str:
        """'section.key', naming the flag if the value came from the command line."""
        origin = self.origins.get(dotted)
        return dotted + (f" (from {origin})" if origin else "")

    def label_model(self, key: str) -> str:
        return self.label(f"model.{key}")


def load_config(path: str | None, overrides: list[tuple[str, Any, str]] = (), check_supported: bool = True,
                init_from: tuple[nn.ModelConfig, str] | None = None) -> Config:
    """Read, override and check a config; every problem of the file is reported in one ConfigError.
    ``overrides``: (key, value, origin) with origin the flag that set it; keys dotted or bare.
    ``init_from``: (model config, folder) of --init-from, whose model the run takes (see model_from_folder)."""
    cfg = Config({}, {}, path or "<defaults>")
    problems = Problems(cfg.source)
    values, cfg.origins = merge_sources(read_yaml(path) if path else {}, SECTIONS, overrides, problems,
                                        hints={"model": nn.config.suggest_key})
    if init_from is not None:
        values["model"] = model_from_folder(values["model"], *init_from, cfg, problems)
    model_cfg = nn.config.read_model_section(values["model"], problems, cfg.label_model)
    for k, spec in TRAINER_KEYS.items():
        cfg.trainer[k] = problems.coerce(cfg.label(f"trainer.{k}"), spec, values["trainer"].get(k, spec.default))
    if model_cfg is not None:
        cfg.model = {k: getattr(model_cfg, k) for k in nn.MODEL_KEYS}
        nn.check_model(model_cfg, problems, cfg.label_model, check_supported)
        if not problems.errors:
            _check_trainer(cfg, "backend" in values["trainer"], problems, check_supported)
    problems.raise_if_any()
    cfg.warnings = [f"{cfg.source}: {w}" for w in problems.warnings]
    return cfg


def model_from_folder(given: dict, folder_cfg: nn.ModelConfig, folder: str, cfg: Config, problems: Problems) -> dict:
    """--init-from FOLDER: the run's model is the folder's. A model key that the config file or --set gives
    must agree with the folder (one error names every key that does not); keys not given come from it."""
    mine = nn.config.read_model_section(given, Problems(cfg.source))  # bad values: reported by the real read
    if mine is None:
        return given
    effective = {"kv_heads": lambda c: c.n_kv_heads, "intermediate_size": lambda c: c.ffn_size}
    differ = []
    for k in given:
        get = effective.get(k, lambda c, k=k: getattr(c, k))
        if k != "name" and get(mine) != get(folder_cfg):
            differ.append(f"{cfg.label_model(k)} {get(mine)!r} vs {get(folder_cfg)!r}")
    if differ:
        problems.error(f"the model section disagrees with --init-from {folder} ({'; '.join(differ)}: config vs "
                       "folder); remove those keys (the folder's model is used) or make them match")
    return {**folder_cfg.to_dict(), **({"name": given["name"]} if "name" in given else {})}


def _check_trainer(cfg: Config, backend_given: bool, problems: Problems, check_supported: bool) -> None:
    """Checks that span keys of the trainer section (and the model's lengths)."""
    m, t, lab = cfg.model, cfg.trainer, cfg.label
    device = t.pop("target_device")  # one source of truth: trainer.backend
    if device is not None:
        if backend_given and t["backend"] not in DEVICE_BACKENDS[device]:
            problems.error(f"{lab('trainer.backend')} = {t['backend']!r} does not run on "
                           f"{lab('trainer.target_device')} = {device!r}")
        elif not backend_given:
            t["backend"] = DEVICE_BACKENDS[device][0]
    if t["seq_len"] is not None and t["seq_len"] > m["max_seq_len"]:
        problems.error(f"{lab('trainer.seq_len')} = {t['seq_len']} is above model.max_seq_len = {m['max_seq_len']}")
    if t["min_lr"] is not None and t["min_lr"] > t["learning_rate"]:
        problems.error(f"{lab('trainer.min_lr')} = {t['min_lr']} is above trainer.learning_rate = "
                       f"{t['learning_rate']}")
    if t["max_steps"] == 0 and t["num_epochs"] == 0:
        problems.error(f"{lab('trainer.max_steps')}: trainer.max_steps and trainer.num_epochs are both 0, "
                       "so the run has no end; set one of them")
    if t["decay_fraction"] > 1:
        problems.error(f"{lab('trainer.decay_fraction')} = {t['decay_fraction']} must be at most 1")
    if not all(0.0 <= b < 1.0 for b in t["betas"]):
        problems.error(f"{lab('trainer.betas')} = {t['betas']} must each be in [0, 1)")
    if t["load_balance_alpha"] and not m["num_experts"]:
        problems.warn(f"{lab('trainer.load_balance_alpha')} is set but the model has no experts: it does nothing")
    elif m["num_experts"] and m["moe_balance"] == "aux_loss" and not t["load_balance_alpha"]:
        problems.warn(f"{lab('trainer.load_balance_alpha')} = 0 with model.moe_balance = 'aux_loss': nothing keeps "
                      "the experts balanced (set load_balance_alpha, e.g. 0.01, or moe_balance: bias_update)")
    elif m["num_experts"] and m["moe_balance"] == "none" and t["load_balance_alpha"]:
        problems.warn(f"{lab('trainer.load_balance_alpha')} does nothing with model.moe_balance = 'none'")
    if t["group_size"] is not None or t["beta_kl"] is not None:
        problems.warn("trainer.group_size / trainer.beta_kl configure GRPO, which minigrad does not do: ignored")
    if check_supported and t["dtype"] == "bf16" and t["backend"] != "cupy":
        problems.error(f"{lab('trainer.dtype')} = 'bf16' needs the GPU (trainer.backend = cupy): NumPy has no "
                       "bfloat16 arithmetic (ml_dtypes' computes matmuls in float32); use f16 or f32 on the CPU")
    if t["tf32"] and t["backend"] != "cupy":
        problems.warn(f"{lab('trainer.tf32')} only changes the cupy backend's float32 matmuls: it does nothing on "
                      f"{t['backend']!r}")


def check_vocab(cfg: Config, max_token: int, data_path: str) -> None:
    """The data's largest token id must be a row of the embedding."""
    if max_token >= cfg.model["vocab_size"]:
        raise ConfigError(f"{cfg.source}: {cfg.label('model.vocab_size')} = {cfg.model['vocab_size']} is too small "
                          f"for {data_path}, whose largest token id is {max_token} (needs vocab_size >= "
                          f"{max_token + 1})")


# ---- setting a run up ----------------------------------------------------------------------

class TrainingError(RuntimeError):
    """The run cannot go on (non-finite losses, under --fail-on-non-finite or for too many steps in a row)."""


class Interrupted(Exception):
    """A stop signal ended the run after a checkpoint was written (exit status 128 + signal number)."""

    def __init__(self, signal_name: str, status: int, step: int, path: str | None, root: bool = True, world: int = 1):
        super().__init__(f"{signal_name} at step {step}")
        self.signal_name, self.status, self.step, self.path = signal_name, status, step, path
        self.root, self.world = root, world


@dataclass
class RunOptions:
    """How to run, as opposed to what to train (that is the config)."""

    data_dir: str = "data"        # where the embedded corpus is prepared
    resume: str | None = None     # a checkpoint path, "auto", or None
    headless: bool = False
    overwrite: bool = False       # a fresh run may replace another run's checkpoints in its directory
    skip_memory_check: bool = False
    init_from: str | None = None  # a model folder whose weights a fresh run starts from
    init_state: dict[str, np.ndarray] | None = None  # its weights, read (and checked) before anything starts


@dataclass
class Run:
    """What a training run holds from step to step: the loop in train() reads and updates it."""

    cfg: Config
    log: Callable[[str], None]
    backend: str
    data: Datasets
    entropy: float
    model: nn.Module
    optimizer: optim.Optimizer
    sampler: WindowSampler
    val_batches: list
    total_steps: int
    stop_reason: str
    comm: distributed.Communicator = field(default_factory=distributed.Communicator)
    sync: distributed.GradientSync | None = None  # averages gradients over the processes (none for one)
    amp: optim.MixedPrecision | None = None  # f16/bf16: float32 master weights and the loss scale
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stream: BatchStream | None = None   # batches (and the data cursor), metrics.jsonl and the terminal:
    metrics: MetricsLog | None = None   # opened by start() once the run directory exists
    reporter: Reporter | None = None
    step: int = 0
    best_val: float = math.inf
    bad_evals: int = 0
    elapsed: float = 0.0
    resumed: bool = False
    init_from: str | None = None          # the model folder the weights started from (--init-from)
    last: dict[str, Any] = field(default_factory=dict)  # the latest logged metrics, saved with checkpoints
    val_loss: float | None = None
    val_step: int = -1
    non_finite: int = 0
    non_finite_streak: int = 0
    overflows: int = 0                     # f16 steps skipped because the scaled gradients overflowed
    saved_step: int = -1                   # the step of the newest step-N checkpoint
    interrupted: int | None = None         # the stop signal that ended the loop
    window: tuple[float, int] = (0.0, 0)  # seconds and steps since the last log line
    progress: dict[str, str] = field(default_factory=dict)  # extra fields of the progress line (MoE imbalance)

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one optimizer step, over every process of the job."""
        t = self.cfg.trainer
        return t["batch_size"] * t["gradient_accumulation"] * self.comm.size * self.cfg.seq_len

    @property
    def tokens_per_s(self) -> float:
        return self.window[1] * self.tokens_per_step / max(self.window[0], 1e-9)


def pick_backend(name: str, log: Callable[[str], None]) -> str:
    """The backend asked for, except cupy without a usable GPU: then numba, with a warning."""
    if name != "cupy":
        return name
    reason = mg.backend.cuda_unavailable()
    if reason is None:
        return "cupy"
    log(f"warning: GPU requested but {reason}; falling back to the CPU (numba backend)")
    return "numba"


def check_memory(cfg: Config, opts: RunOptions, log: Callable[[str], None]) -> None:
    """Estimate the memory the run needs from the config alone and refuse, before allocating anything,
    a run that cannot fit in the RAM this machine has free (--skip-memory-check overrides)."""
    t, model_cfg = cfg.trainer, nn.model_config(cfg.model_args(), cfg.source)
    n = nn.parameter_count(model_cfg)
    mem = nn.training_memory(model_cfg, n, t["batch_size"], cfg.seq_len, t["optimizer"], backend=t["backend"])
    total = sum(mem.values())
    log("memory estimate: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in mem.items())
        + f"; total about {fmt_bytes(total)} ({n:,} parameters)")
    free = nn.available_memory()
    if free is not None and total > free and not opts.skip_memory_check and t["backend"] != "cupy":
        raise ConfigError(f"{cfg.source}: this model needs about {fmt_bytes(total)} to train ({n:,} parameters, "
                          f"batch {t['batch_size']} x {cfg.seq_len}) but the machine has {fmt_bytes(free)} free; "
                          "shrink the model or the batch, or pass --skip-memory-check")


def open_data(cfg: Config, opts: RunOptions, log: Callable[[str], None]) -> tuple[Datasets, float]:
    """Open and check every token file (and the tokenizer) before anything is built; the training
    tokens' unigram entropy."""
    t = cfg.trainer
    train_path = t["data"] or ensure_default_data(opts.data_dir, cfg.model["vocab_size"], log)
    data = open_datasets(train_path, t["val_data"], cfg.seq_len)
    check_vocab(cfg, data.max_token_train, data.train_path)
    check_vocab(cfg, data.max_token_val, data.val_path)
    if data.tokenizer_path:
        load_tokenizer(data.tokenizer_path)  # a corrupt tokenizer.json is found now, not after the run
    entropy = data.meta.get("unigram_entropy_nats")  # prepared data carries it; otherwise count
    if not isinstance(entropy, (int, float)):
        entropy = unigram_entropy(data.train)
    log(f"data: train {describe_files(data.train)} ({data.train_path}), val {describe_files(data.val)} "
        f"({data.val_path}); unigram entropy of train {entropy:.3f} nats")
    return data, entropy


def build_optimizer(named_params: list, t: dict[str, Any]) -> optim.Optimizer:
    """The optimizer over (name, parameter) pairs: the model's, or its float32 masters under mixed precision."""
    lr, wd, betas = t["learning_rate"], t["weight_decay"], tuple(t["betas"])
    if t["optimizer"] == "adamw":
        return optim.AdamW(optim.decay_groups(named_params, wd), lr=lr, betas=betas, weight_decay=wd)
    if t["optimizer"] == "lion":
        return optim.Lion(optim.decay_groups(named_params, wd), lr=lr, betas=betas, weight_decay=wd)
    adamw_lr = t["adamw_lr"] if t["adamw_lr"] is not None else lr / 10
    return optim.MuonWithAdamW(named_params, lr=lr, weight_decay=wd, adamw_lr=adamw_lr,
                               adamw_betas=betas, adamw_weight_decay=wd)


def precision(cfg: Config, model: nn.Module, backend: str, log: Callable[[str], None]):
    """TF32 on the GPU if asked for; for f16/bf16, the model cast to it with float32 master weights (None for
    f32). bf16 where this machine cannot run it is a ConfigError."""
    t = cfg.trainer
    if t["tf32"] and backend == "cupy":
        mg.backend.set_tf32(True)
    if t["dtype"] == "f32":
        return None
    if t["dtype"] == "bf16":
        problem = optim.amp.bf16_problem(mg.get_backend(backend))
        if problem:
            raise ConfigError(f"{cfg.source}: {cfg.label('trainer.dtype')} = 'bf16': {problem}")
    scaler = optim.LossScaler(growth_interval=t["loss_scale_growth_interval"], enabled=t["dtype"] == "f16")
    log(f"mixed precision: {optim.amp.LOW_PRECISION[t['dtype']]} compute, float32 master weights"
        + (f", loss scale {scaler.scale:g}" if scaler.enabled else ""))
    return optim.MixedPrecision(model, optim.amp.LOW_PRECISION[t["dtype"]], scaler)


def count_steps(cfg: Config, steps_per_epoch: int, log: Callable[[str], None]) -> tuple[int, str]:
    """How many optimizer steps the run takes, and which limit ends it."""
    t = cfg.trainer
    by_epochs = math.ceil(t["num_epochs"] * steps_per_epoch) if t["num_epochs"] else None
    if not t["max_steps"]:
        return by_epochs, "epochs"
    if by_epochs is not None and by_epochs < t["max_steps"]:
        log(f"note: trainer.num_epochs = {t['num_epochs']} ends the run after {by_epochs} steps, before "
            f"trainer.max_steps = {t['max_steps']} (pass --epochs 0 to train by steps alone)")
        return by_epochs, "epochs"
    return t["max_steps"], "max_steps"


def setup(cfg: Config, opts: RunOptions, log: Callable[[str], None], comm: distributed.Communicator) -> Run:
    """Data, model, optimizer and schedule for ``cfg``; the state of a checkpoint if resuming. In a
    data-parallel job every process does this, and ends with rank 0's weights."""
    t = cfg.trainer
    for w in cfg.warnings:
        log(f"warning: {w}")
    check_memory(cfg, opts, log)
    backend = pick_backend(t["backend"], log)
    mg.set_default_backend(backend)
    data, entropy = open_data(cfg, opts, log)
    model = nn.build_model(cfg.model_args(), backend=backend, seed=t["seed"], where=cfg.source)
    model.train()
    amp = precision(cfg, model, backend, log)
    sampler = WindowSampler(data.train, cfg.seq_len, t["batch_size"], seed=t["seed"], shard=(comm.rank, comm.size))
    per_step = t["batch_size"] * t["gradient_accumulation"] * comm.size  # windows an optimizer step takes
    steps_per_epoch = max(1, sampler.windows_per_epoch // per_step)
    total_steps, stop_reason = count_steps(cfg, steps_per_epoch, log)
    optimizer = build_optimizer(amp.named_masters() if amp else list(model.named_parameters()), t)
    if amp:
        amp.attach(optimizer)
    run = Run(cfg, log, backend, data, entropy, model, optimizer, sampler,
              eval_batches(data.val, cfg.seq_len, t["batch_size"], t["eval_batches"]), total_steps, stop_reason,
              comm=comm, amp=amp)
    world = f" x {comm.size} processes ({comm.name})" if comm.size > 1 else ""
    log(f"model: {model.num_parameters():,} parameters ({cfg.model.get('name') or cfg.source}); backend {backend}; "
        f"{total_steps} steps of {t['batch_size']} x {t['gradient_accumulation']}{world} x {cfg.seq_len} = "
        f"{run.tokens_per_step:,} tokens ({steps_per_epoch} steps per epoch)")
    if opts.resume:
        run_dir = t["checkpoint_dir"]
        path = find_latest(run_dir) if opts.resume == "auto" else resolve_checkpoint(opts.resume, run_dir)
        if path is None:
            log(f"--resume auto: no checkpoint in {run_dir}/ yet, starting " + ("from --init-from" if opts.init_from
                                                                               else "from scratch"))
        else:
            resume(run, path)
            log(f"resumed from {path} at step {run.step}")
    if opts.init_from:
        run.init_from = os.path.abspath(opts.init_from)
        if not run.resumed:  # a resumed run has its own weights; --init-from only starts a fresh one
            init_from_folder(run, opts.init_from, opts.init_state)
    if comm.size > 1:  # every process starts from rank 0's weights (and they stay identical: same updates)
        for p in model.parameters():
            comm.broadcast_(p.data)
        run.run_id = comm.broadcast_json(run.run_id)
        exchange = {"f32": None, "f16": "float16", "bf16": "bfloat16"}[t["grad_exchange_dtype"]]
        run.sync = distributed.GradientSync(model.parameters(), comm, t["bucket_mb"], exchange, t["overlap_comm"])
    return run


def init_from_folder(run: Run, folder: str, state: dict[str, np.ndarray]) -> None:
    """The weights of a packed or transformers model folder (read and checked by cmd_train)."""
    nn.pretrained.load_weights(run.model, state, folder)
    if run.amp is not None:  # f16/bf16: the folder's weights are the float32 masters, the model their rounding
        run.amp.load_state_dict(state)
    theirs = os.path.join(folder, "tokenizer.json")
    mine = run.data.tokenizer_path
    if mine and os.path.isfile(theirs) and not same_file_contents(mine, theirs):
        run.log(f"warning: the data were tokenized with {mine}, not with {theirs}: the model will read token ids "
                "it was not trained on")
    run.log(f"initialised the weights from {folder}")


def same_file_contents(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def resume(run: Run, path: str) -> None:
    """Weights, optimizer state, data cursor, RNG states and bookkeeping from checkpoint ``path``, after
    checking that it is a finite checkpoint of this model (and saying so if the data differ)."""
    ckpt = load_checkpoint(path)
    check_run_meta(ckpt.meta, path)
    bad = non_finite(ckpt.model)
    if bad:
        raise CheckpointError(f"{path}: its weights are not finite ({', '.join(bad[:3])}); resume from an "
                              "earlier checkpoint")
    try:
        theirs = nn.model_config(ckpt.meta["config"]["model"], f"{path}/meta.json", check_supported=False)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    differ = nn.config_differences(theirs, run.model.config)
    if differ:
        raise CheckpointError(f"{path}: was trained with another model ({'; '.join(differ)}: checkpoint vs "
                              "config); resume with the config it was trained with")
    if ckpt.meta.get("data_fingerprint") not in (None, run.data.fingerprint()):
        run.log(f"warning: {path} was trained on other data than {run.data.train_path}; continuing on this data")
    try:
        run.model.load_state_dict(ckpt.model)
        if run.amp is not None:  # the checkpoint's float32 weights are the masters (of any dtype's run)
            run.amp.load_state_dict(ckpt.model)
            run.amp.scaler.load_state_dict(ckpt.meta.get("amp") or {"enabled": False})
        run.optimizer.load_state(ckpt.optimizer, ckpt.meta["optimizer"])
        run.sampler.load_state_dict(ckpt.meta["data_cursor"])
        set_rng_states(ckpt.meta["rng"])
    except (nn.StateDictError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: does not fit this config: {e}") from None
    s = ckpt.meta["train_state"]
    run.step, run.bad_evals, run.elapsed = ckpt.meta["step"], s["bad_evals"], s["elapsed"]
    run.best_val = math.inf if s["best_val_loss"] is None else s["best_val_loss"]
    run.run_id = ckpt.meta.get("run_id") or run.run_id
    run.resumed, run.saved_step = True, run.step


def start(run: Run, opts: RunOptions) -> None:
    """Open the run directory: its tokenizer copy, metrics.jsonl, the batch stream and the terminal output
    (rank 0's alone in a data-parallel job)."""
    t, root = run.cfg.trainer, run.comm.is_root
    if run.data.tokenizer_path and root:
        shutil.copyfile(run.data.tokenizer_path, os.path.join(t["checkpoint_dir"], "tokenizer.json"))
    run.metrics = (MetricsLog(os.path.join(t["checkpoint_dir"], "metrics.jsonl"),
                              resume_step=run.step if run.resumed else None) if root else NullLog())
    backend = mg.get_backend(run.backend)  # off the CPU, batches reach the device on the prefetch thread
    run.stream = BatchStream(run.sampler, t["prefetch"], HostToDevice(backend) if backend.device != "cpu" else None)
    run.reporter = Reporter(run.total_steps, run.step, opts.headless, silent=not root)


def save(run: Run, name: str) -> str | None:
    """Checkpoint ``name`` of the run directory: weights, optimizer state and everything resume() reads.
    Weights that are not finite are never saved (they would replace a good best/ or final/). Only rank 0
    writes (every process holds the same weights)."""
    weights = run.amp.state_dict() if run.amp is not None else run.model.state_dict()  # float32 either way
    if run.comm.size > 1:
        run.comm.check_identical(weights, f"checkpoint {name!r}")
    bad = non_finite(weights)  # (the same on every process: they hold the same weights)
    if bad:
        run.reporter.info(f"step {run.step}: not saving {name}/: the weights are not finite ({', '.join(bad[:3])})")
        return None
    if name.startswith("step-"):
        run.saved_step = run.step  # on every process, so all agree whether an interrupted step needs a save
    if not run.comm.is_root:
        return None
    meta = {"step": run.step, "run_id": run.run_id, "config": run.cfg.to_dict(), "config_source": run.cfg.source,
            "optimizer": run.optimizer.state_meta(), "data_cursor": run.stream.state_dict(), "rng": rng_states(),
            "train_state": {"best_val_loss": None if math.isinf(run.best_val) else run.best_val,
                            "bad_evals": run.bad_evals, "elapsed": run.elapsed},
            "metrics": run.last, "backend": run.backend, "tokens_seen": run.step * run.tokens_per_step,
            "data_fingerprint": run.data.fingerprint(), "init_from": run.init_from,
            "amp": run.amp.scaler.state_dict() if run.amp is not None else None,
            "tokenizer": "../tokenizer.json" if run.data.tokenizer_path else None}
    path = save_checkpoint(run.cfg.trainer["checkpoint_dir"], name, weights, run.optimizer.state_arrays(), meta)
    run.reporter.event({"event": "checkpoint", "step": run.step, "path": path})
    return path


# ---- pieces of a training step -------------------------------------------------------------

def accumulate_gradients(model: nn.Module, micro_batches: list[tuple[np.ndarray, np.ndarray]],
                         backend: str, sync: distributed.GradientSync | None = None,
                         amp: optim.MixedPrecision | None = None, aux_weight: float = 0.0) -> float:
    """Forward and backward over ``k`` micro-batches, each loss scaled by 1/k, so the summed
    gradients equal those of one batch k times larger. An MoE model's load-balancing loss is added,
    ``aux_weight`` times. Returns the mean cross-entropy (without the aux loss, so it stays comparable).
    With ``sync`` (a data-parallel job), the last backward also averages the gradients over the processes.
    With ``amp`` (f16/bf16) each backward is of the loss times the loss scale."""
    k = len(micro_batches)
    total = 0.0
    for i, (x, y) in enumerate(micro_batches):
        logits = model(mg.Tensor(x, backend=backend))                # (B, T, vocab)
        loss = mg.cross_entropy(logits, mg.Tensor(y, backend=backend))
        aux = model.auxiliary_loss() if aux_weight else None
        objective = loss if aux is None else loss + aux * aux_weight
        if sync is not None and i == k - 1:
            sync.arm()  # buckets are all-reduced as their gradients become final in this backward
        part = objective if k == 1 else objective * (1.0 / k)
        amp.backward(part) if amp is not None else part.backward()
        total += loss.item()
    if sync is not None:
        sync.finish()
    return total / k


def evaluate(model: nn.Module, batches: list[tuple[np.ndarray, np.ndarray]], backend: str,
             comm: distributed.Communicator | None = None) -> float:
    """Mean cross-entropy over fixed validation batches, without building a graph. In a data-parallel job
    each process takes every size-th batch and the sums are added up, so all get the same number."""
    comm = comm or distributed.Communicator()
    model.eval()
    with mg.no_grad():
        losses = [mg.cross_entropy(model(mg.Tensor(x, backend=backend)), mg.Tensor(y, backend=backend)).item()
                  for x, y in batches[comm.rank::comm.size]]
    model.train()
    if comm.size == 1:
        return float(np.mean(losses))
    total = comm.allreduce_(np.array([sum(losses), len(losses)], dtype=np.float64))
    return float(total[0] / total[1])


def clip_and_step(run: Run, loss: float, max_norm: float) -> tuple[float, bool, bool]:
    """Clip the global gradient norm and step, unless the loss or the gradient is NaN/Inf (that step is skipped,
    not applied). Returns (the true gradient norm, whether the step was taken, whether it was an f16 overflow:
    finite loss, non-finite scaled gradients, a loss scale that can still shrink)."""
    amp = run.amp
    if amp is None:
        grad_norm = optim.clip_grad_norm_(run.model.parameters(), max_norm)
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        if finite:
            run.optimizer.step()
        run.optimizer.zero_grad()
        return grad_norm, finite, False
    grad_norm = amp.unscale_and_clip(max_norm)
    finite = math.isfinite(loss) and math.isfinite(grad_norm)
    overflow = not finite and math.isfinite(loss) and not amp.scaler.at_minimum
    amp.step(finite)
    amp.zero_grad()
    return grad_norm, finite, overflow


def note_overflow(run: Run) -> None:
    """An f16 step whose scaled gradients overflowed: skipped and the scale halved (the loss scaler's job, so
    it does not count towards trainer.max_non_finite_steps)."""
    run.overflows += 1
    rec = {"event": "overflow", "step": run.step, "loss_scale": run.amp.scaler.scale}
    run.metrics.write(rec)
    run.reporter.event(rec)


def grad_norms_by_layer(model: nn.Module, amp: optim.MixedPrecision | None = None) -> dict[str, float]:
    """L2 norm of the gradients of each block (model.layers.N) and of each other parameter (unscaled)."""
    groups: dict[str, list] = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        group = ".".join(parts[:3]) if parts[:2] == ["model", "layers"] else name.removesuffix(".weight")
        groups.setdefault(group, []).append(p)
    scale = amp.scaler.scale if amp is not None else 1.0
    return {k: optim.grad_norm(ps) / scale for k, ps in groups.items() if any(p.grad is not None for p in ps)}


def skip_non_finite(run: Run, loss: float, grad_norm: float) -> None:
    """A step whose loss or gradient is NaN/Inf was not applied: record it; stop under --fail-on-non-finite,
    or once ``trainer.max_non_finite_steps`` steps in a row were skipped (the weights are unchanged since)."""
    run.non_finite += 1
    run.non_finite_streak += 1
    rec = {"event": "non_finite", "step": run.step, "loss": loss, "grad_norm": grad_norm}
    run.metrics.write(rec)
    run.reporter.event(rec)
    run.reporter.info(f"step {run.step}: non-finite loss {loss} / gradient norm {grad_norm}; update skipped")
    t = run.cfg.trainer
    if t["fail_on_non_finite"]:
        raise TrainingError(f"step {run.step}: non-finite loss {loss} or gradient norm {grad_norm} "
                            "(--fail-on-non-finite)")
    if t["max_non_finite_steps"] and run.non_finite_streak >= t["max_non_finite_steps"]:
        raise TrainingError(f"step {run.step}: the last {run.non_finite_streak} steps all had a non-finite loss or "
                            f"gradient (trainer.max_non_finite_steps); stopping with the weights of step "
                            f"{run.step - run.non_finite_streak}. Lower the learning rate or check the data")


def log_step(run: Run, loss: float, lr: float, grad_norm: float, layer_norms: dict | None) -> None:
    """A metrics line (and a JSON event when headless) for the step just taken."""
    cursor = run.stream.state_dict()  # (not the sampler's: a prefetch thread may be using it)
    run.last = {"step": run.step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": run.tokens_per_s,
                "epoch": round(cursor["epoch"] + cursor["index"] / max(1, run.sampler.windows_per_epoch), 4),
                "elapsed": round(run.elapsed, 3)}
    if layer_norms is not None:
        run.last["grad_norms"] = layer_norms
    moe = run.model.routing_stats(run.comm.allreduce_)  # MoE: tokens per expert, drops, aux loss since the last line
    if moe is not None:
        run.last["moe"] = moe
        run.progress = {"imbalance": f"{moe['load_imbalance']:.2f}"}
    run.metrics.write(run.last)
    run.reporter.event({"event": "step", **run.last})
    run.window = (0.0, 0)


def validate(run: Run, loss: float) -> bool:
    """Evaluate and keep ``best/`` up to date; True when early stopping says the run should end."""
    run.val_loss, run.val_step = evaluate(run.model, run.val_batches, run.backend, run.comm), run.step
    improved = run.val_loss < run.best_val
    run.best_val, run.bad_evals = (run.val_loss, 0) if improved else (run.best_val, run.bad_evals + 1)
    rec = {"step": run.step, "val_loss": run.val_loss, "best_val_loss": run.best_val,
           "elapsed": round(run.elapsed, 3)}
    run.metrics.write(rec)
    run.reporter.event({"event": "eval", **rec})
    run.reporter.info(f"step {run.step}: val loss {run.val_loss:.4f} (best {run.best_val:.4f}); "
                      f"train loss {loss:.4f}")
    run.last = {**run.last, "val_loss": run.val_loss}
    if improved:
        save(run, "best")
    patience = run.cfg.trainer["early_stopping_patience"]
    if patience and run.bad_evals >= patience and run.step < run.total_steps:
        run.reporter.info(f"early stopping: no improvement in {patience} evaluations")
        run.stop_reason = "early_stopping"
        return True
    return False


# ---- the training run ----------------------------------------------------------------------

def train(cfg: Config, opts: RunOptions, after_backward: Callable[[nn.Module, int], None] | None = None) -> dict:
    """Run the training the config describes, holding the run directory's lock. ``after_backward(model,
    step)`` is called with the gradients in place before clipping (a hook for experiments and tests).
    Under ``mpirun`` (or ``--gpus``) every process runs this; rank 0 alone owns the run directory."""
    comm = distributed.init(cfg.trainer["sync_backend"], cfg.trainer["dist_timeout"])
    if comm.size > 1:  # which process is which, for whoever has to find a stuck one
        _stderr_print(f"rank {comm.rank} of {comm.size} ({comm.name}): pid {os.getpid()} on {socket.gethostname()}")
    quiet = not comm.is_root
    log = (lambda m: None) if quiet else _stderr_print if opts.headless else say  # headless: stdout is JSON
    try:
        with hold_run_dir(cfg.trainer["checkpoint_dir"], opts.resume is not None, opts.overwrite, comm):
            run = setup(cfg, opts, log, comm)
            start(run, opts)
            with StopSignals(run.reporter.info) as stop:
                try:
                    loop(run, stop, after_backward)
                finally:
                    run.stream.close()
                    run.reporter.close()
            if run.interrupted is not None:
                name, status = signal.Signals(run.interrupted).name, 128 + run.interrupted
                path = save(run, step_dir_name(run.step)) if run.saved_step != run.step else \
                    find_latest(cfg.trainer["checkpoint_dir"]) if comm.is_root else None
                run.metrics.write({"event": "interrupted", "step": run.step, "signal": name, "checkpoint": path})
                run.metrics.close()
                raise Interrupted(name, status, run.step, path, comm.is_root, comm.size)
            return finish(run)
    except distributed.DistributedError as e:  # another process is gone: say so, then end the whole job
        _stderr_print(f"error: {e}; the last complete checkpoint in {cfg.trainer['checkpoint_dir']} is intact")
        if comm.size == 1:
            raise
        comm.abort(1)
        os._exit(1)  # (should MPI_Abort return before the launcher ends this process)
    finally:
        comm.close()


def loop(run: Run, stop: StopSignals, after_backward=None) -> None:
    """The training loop: until the last step, an early stop, or a stop signal."""
    t, model, optimizer = run.cfg.trainer, run.model, run.optimizer
    min_lr_ratio = (t["min_lr"] if t["min_lr"] is not None else t["learning_rate"] / 10) / (t["learning_rate"] or 1)
    while run.step < run.total_steps:
        if run.comm.any(stop.signum is not None):  # a stop signal: every process stops after the same step
            run.interrupted = stop.signum or signal.SIGTERM
            return
        t0 = time.perf_counter()
        lr = optim.set_lr(optimizer, run.step, t["warmup_steps"], run.total_steps, t["lr_schedule"],
                          min_lr_ratio, t["decay_fraction"])
        batches = [run.stream.next() for _ in range(t["gradient_accumulation"])]
        loss = run.comm.mean(accumulate_gradients(model, batches, run.backend, run.sync, run.amp,  # fwd + bwd
                                                  t["load_balance_alpha"]))
        if after_backward is not None:
            after_backward(model, run.step)
        log_now = (run.step + 1) % t["log_interval"] == 0 or run.step + 1 == run.total_steps
        layer_norms = grad_norms_by_layer(model, run.amp) if log_now and t["log_grad_norms"] else None
        grad_norm, finite, overflow = clip_and_step(run, loss, t["grad_clip"] or math.inf)
        if finite:
            model.after_step(run.comm.allreduce_)  # MoE: DeepSeek-V3's bias balancing (moe_balance: bias_update)
        run.step += 1
        dt = time.perf_counter() - t0
        run.elapsed, run.window = run.elapsed + dt, (run.window[0] + dt, run.window[1] + 1)
        if finite:
            run.non_finite_streak = 0
        elif overflow:
            note_overflow(run)
        else:
            skip_non_finite(run, loss, grad_norm)
        run.reporter.step(1, loss, run.tokens_per_s, lr, run.progress)
        if log_now:
            log_step(run, loss, lr, grad_norm, layer_norms)
        at_end = run.step == run.total_steps
        if (t["eval_interval"] and run.step % t["eval_interval"] == 0) or at_end:
            if validate(run, loss):  # early stopping
                return
        if t["save_interval"] and run.step % t["save_interval"] == 0 and not at_end:
            if save(run, step_dir_name(run.step)):  # (every process takes part; rank 0 writes)
                rotate(t["checkpoint_dir"], t["max_checkpoints"], run.run_id)


def finish(run: Run) -> dict:
    """Save final/, write the summary, print it and a generated sample."""
    t = run.cfg.trainer
    if run.val_step != run.step:  # no evaluation at the last step (a resumed, already finished run): measure it
        run.val_loss = evaluate(run.model, run.val_batches, run.backend, run.comm)
        run.last = {**run.last, "step": run.step, "val_loss": run.val_loss}
    final_path = save(run, "final")
    if run.comm.is_root:
        rotate(t["checkpoint_dir"], t["max_checkpoints"], run.run_id)
    summary = {"event": "done", "step": run.step, "stop": run.stop_reason, "final_loss": run.last.get("loss"),
               "val_loss": run.val_loss, "best_val_loss": run.best_val, "unigram_entropy": run.entropy,
               "tokens_per_s": run.step * run.tokens_per_step / max(run.elapsed, 1e-9),
               "elapsed": round(run.elapsed, 3), "non_finite_steps": run.non_finite, "checkpoint": final_path}
    if run.amp is not None:
        summary.update(overflow_steps=run.overflows, loss_scale=run.amp.scaler.scale)
    run.metrics.write(summary)
    run.metrics.close()
    run.reporter.event(summary)
    run.log(f"done: {run.step} steps in {run.elapsed:.1f}s ({summary['tokens_per_s']:,.0f} tokens/s); val loss "
            f"{run.val_loss:.4f} (best {run.best_val:.4f}) vs unigram entropy {run.entropy:.4f} nats; "
            f"checkpoint {final_path}")
    if t["sample_tokens"] and run.data.tokenizer_path and run.comm.is_root:
        text = nn.generate_text(run.model, load_tokenizer(run.data.tokenizer_path), t["sample_prompt"],
                                t["sample_tokens"], temperature=0.8, top_k=40, seed=t["seed"], log=run.log)
        run.log("sample:\n" + text)
        summary["sample"] = text
    return summary


def _stderr_print(message: str) -> None:
    say(message, sys.stderr)


# ---- the command line ----------------------------------------------------------------------

SUBCOMMANDS = ("train", "prepare-data", "sample", "pack", "push", "export")
NOT_BUILT_YET: dict[str, str] = {}  # subcommand -> what it will do: listed in --help, refused by main() until built
FINETUNE_CONFIG = os.path.join(HERE, "configs", "finetune.yaml")  # -f's default with --init-from: no model section
# Named flags and the config keys they set (an explicit flag wins over the file and --set).
FLAG_KEYS = {"data": "trainer.data", "val_data": "trainer.val_data", "target_device": "trainer.target_device",
             "backend": "trainer.backend", "seq_len": "trainer.seq_len", "batch_size": "trainer.batch_size",
             "grad_accum": "trainer.gradient_accumulation", "max_steps": "trainer.max_steps",
             "epochs": "trainer.num_epochs", "lr": "trainer.learning_rate", "seed": "trainer.seed",
             "prefetch": "trainer.prefetch", "dtype": "trainer.dtype", "max_checkpoints": "trainer.max_checkpoints",
             "out": "trainer.checkpoint_dir", "log_grad_norms": "trainer.log_grad_norms", "tf32": "trainer.tf32",
             "fail_on_non_finite": "trainer.fail_on_non_finite", "sync_backend": "trainer.sync_backend"}


def config_overrides(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    out = []
    for item in args.set or []:
        key, value = parse_set(item)
        out.append((key, value, f"--set {item}"))
    for attr, key in FLAG_KEYS.items():
        value = getattr(args, attr, None)
        if value is not None and value is not False:
            flag = "--" + attr.replace("_", "-")
            out.append((key, value, f"{flag} {value}" if value is not True else flag))
    return out


def cmd_train(args: argparse.Namespace) -> int:
    if args.help_config:
        print("\n".join(describe(name, keys) for name, keys in SECTIONS.items()))
        return 0
    start = nn.from_pretrained(args.init_from, backend="numpy") if args.init_from else None  # checked up front
    path = args.config or (FINETUNE_CONFIG if start else DEFAULT_CONFIG)
    cfg = load_config(path, config_overrides(args), init_from=(start.config, args.init_from) if start else None)
    if args.gpus:  # one worker per GPU, each running this same command without --gpus
        gpus = distributed.parse_gpus(args.gpus)
        return distributed.launch_local(gpus, distributed.worker_argv(args.argv), script=os.path.abspath(__file__))
    train(cfg, RunOptions(data_dir=args.data_dir, resume=args.resume, headless=args.headless,
                          overwrite=args.overwrite, skip_memory_check=args.skip_memory_check,
                          init_from=args.init_from, init_state=start.state_dict() if start else None))
    return 0


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from minigrad.data.tokenizer import prepare_from_text

    prepare_from_text(args.text, args.vocab_size, args.output, args.seq_len, args.replace_bad_bytes)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    nn.check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    run_dir = args.out or load_config(args.config, check_supported=False).trainer["checkpoint_dir"]
    path = resolve_checkpoint(args.checkpoint, run_dir)
    model, ckpt = nn.model_from_checkpoint(path, backend=args.backend or "numba")
    tok_path = args.tokenizer or nn.tokenizer_beside(ckpt.path)
    if tok_path is None:
        raise CheckpointError(f"{ckpt.path}: no tokenizer.json with this run; pass --tokenizer FILE")
    tokenizer = load_tokenizer(tok_path)
    print(f"# {ckpt.path} (step {ckpt.meta['step']})", file=sys.stderr)
    say(nn.generate_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                         args.top_p, args.seed, log=_stderr_print))
    return 0


def run_dir_of(args: argparse.Namespace) -> str:
    """The run directory: --out (or Oxidizr's --checkpoint-dir), else the config's trainer.checkpoint_dir."""
    return args.out or load_config(args.config, check_supported=False).trainer["checkpoint_dir"]


def cmd_pack(args: argparse.Namespace) -> int:
    from nn.pack import choose_checkpoint, pack_run

    path = choose_checkpoint(args.checkpoint, run_dir_of(args))
    folder = pack_run(path, args.output, args.username, args.name, args.tokenizer, args.license, args.dataset,
                      log=_stderr_print)
    say(f"packed {path} into {folder}/: " + ", ".join(sorted(os.listdir(folder))))
    say(f"load it with transformers' AutoModelForCausalLM.from_pretrained({folder!r}); upload it with: "
        f"python train.py push --model {shlex.quote(folder)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nn.gguf_export import require_gguf
    from nn.pack import check_gguf_target, choose_checkpoint, export_run

    require_gguf()
    check_gguf_target(args.gguf)
    path = args.checkpoint if args.checkpoint and os.path.isfile(os.path.join(args.checkpoint, "config.json")) \
        else choose_checkpoint(args.checkpoint, run_dir_of(args))
    info = export_run(path, args.gguf, args.tokenizer, args.f16)
    say(f"exported {path} to {info['path']}: {info['tensors']} tensors, {fmt_bytes(info['bytes'])}, "
        f"{'f16' if info['f16'] else 'f32'}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from minigrad.io import hub

    folder = hub.choose_packed(args.model, args.hf_dir)
    if args.dry_run:
        say(hub.dry_run_report(folder, args.private))
        return 0
    token, _ = hub.hub_setting("HF_TOKEN")
    if not token:
        raise hub.HubError("no Hugging Face token: set HF_TOKEN in the environment or in a .env file here "
                           f"({os.path.abspath('.env')}: HF_TOKEN=hf_...); --dry-run needs none")
    say(f"pushed {folder} to {hub.push(folder, args.private, token, _stderr_print)}")
    return 0


def add_packing_parsers(sub) -> None:
    """pack, export and push: their flags (the bodies are nn/pack.py, nn/gguf_export.py, minigrad/io/hub.py)."""
    pk = sub.add_parser("pack", help="package a checkpoint as a transformers model folder with a model card")
    ex = sub.add_parser("export", help="write a checkpoint as a GGUF file for llama.cpp (Llama-architecture models)")
    for p in (pk, ex):
        p.add_argument("--checkpoint", default=None, metavar="PATH|latest|best|final|STEP", help="default: a pick "
                       "list on a terminal; else final, else best, else the latest")
        p.add_argument("--out", "--checkpoint-dir", dest="out", metavar="RUN", help="run directory (default: the "
                       "config's checkpoint_dir)")
        p.add_argument("-f", "--config", default=DEFAULT_CONFIG, help="config whose checkpoint_dir holds the run")
        p.add_argument("--tokenizer", metavar="FILE", help="tokenizer.json (default: the run's)")
    pk.add_argument("--name", help="model name (default: model.name, else the run directory's name)")
    pk.add_argument("--username", help="Hub user or organisation (default: HF_USERNAME from the environment or "
                    ".env, else 'local')")
    pk.add_argument("--output", default="hf", metavar="DIR", help="where USER/NAME/ is written (default: hf)")
    pk.add_argument("--license", default="mit", help="license id for the model card (default: mit)")
    pk.add_argument("--dataset", action="append", metavar="HUB_ID", help="a Hub dataset the model was trained on, "
                    "for the card (repeatable)")
    pk.set_defaults(func=cmd_pack)
    ex.add_argument("--gguf", required=True, metavar="FILE", help="the .gguf file to write")
    ex.add_argument("--f16", action="store_true", help="float16 matrices (norms stay float32); default float32")
    ex.set_defaults(func=cmd_export)
    pu = sub.add_parser("push", help="upload a packed model folder to the Hugging Face Hub")
    pu.add_argument("--model", metavar="hf/USER/NAME", help="the packed folder (default: the only one under "
                    "--hf-dir, or a pick list on a terminal)")
    pu.add_argument("--hf-dir", default="hf", metavar="DIR", help="where pack wrote its folders (default: hf)")
    pu.add_argument("--private", action="store_true", help="create the repository as private")
    pu.add_argument("--dry-run", action="store_true", help="list what would be uploaded, and where; upload nothing")
    pu.set_defaults(func=cmd_push)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description="Train, prepare data for, sample from, pack, push and "
                                "export minigrad language models. With no subcommand, 'train' is meant.",
                                epilog="Each subcommand has its own flags: python train.py train --help")
    sub = p.add_subparsers(dest="command")
    tr = sub.add_parser("train", help="train a model (the default)")
    tr.add_argument("-f", "--config", help="YAML config (default: configs/nano-start.yaml; with --init-from, "
                    "configs/finetune.yaml)")
    tr.add_argument("-d", "--data", help="a .bin token file or a directory of .bin shards (default: the embedded "
                    "corpus, the Python standard library, prepared in --data-dir)")
    tr.add_argument("--val-data", help="validation tokens (default: val.bin beside --data, or its last 5%%)")
    tr.add_argument("--data-dir", default="data", help="where the embedded corpus is prepared (default: data)")
    tr.add_argument("--target-device", choices=("cpu", "gpu"), help="cpu = --backend numba, gpu = --backend cupy "
                    "(which falls back to the CPU when there is no GPU)")
    tr.add_argument("--backend", choices=("numpy", "numba", "cupy"), help="array backend (default: numba)")
    tr.add_argument("--seq-len", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    tr.add_argument("--max-steps", type=int, help="optimizer steps (0 = no limit)")
    tr.add_argument("--epochs", type=int, help="passes over the training tokens (0 = no limit)")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--prefetch", type=int, metavar="N", help="prepare N batches ahead on a background thread")
    tr.add_argument("--resume", metavar="PATH|auto", help="continue from a checkpoint, or the newest one")
    tr.add_argument("--init-from", metavar="FOLDER", help="start from the weights of a packed or transformers "
                    "(LlamaForCausalLM) folder; its model is used, and model keys the config sets must match it")
    tr.add_argument("--headless", action="store_true", help="JSON lines on stdout instead of a progress bar")
    tr.add_argument("--dtype", choices=("f32", "f16", "bf16"), help="f16/bf16: half-precision compute with float32 "
                    "master weights (f16 with dynamic loss scaling; bf16 on a GPU only)")
    tr.add_argument("--tf32", action="store_true", help="cupy backend: float32 matmuls on TF32 tensor cores")
    tr.add_argument("--max-checkpoints", type=int, metavar="N", help="step checkpoints kept (besides best, final)")
    tr.add_argument("--out", metavar="DIR", help="run directory (overrides trainer.checkpoint_dir)")
    tr.add_argument("--log-grad-norms", action="store_true", help="per-layer gradient norms into metrics.jsonl")
    tr.add_argument("--fail-on-non-finite", action="store_true", help="stop on a NaN/Inf loss or gradient")
    tr.add_argument("--overwrite", action="store_true", help="start a fresh run in a directory that holds "
                    "another run's checkpoints, deleting them")
    tr.add_argument("--skip-memory-check", action="store_true", help="train even when the memory estimate is "
                    "above the RAM this machine has free")
    tr.add_argument("--gpus", metavar="0,1,...", help="data-parallel training on these GPUs, one worker process "
                    "each (NCCL); across machines use mpirun instead")
    tr.add_argument("--sync-backend", choices=("cpu", "nccl"), help="how gradients are averaged across processes: "
                    "cpu (MPI, under mpirun) or nccl")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any config key, e.g. "
                    "--set model.hidden_size=128 (repeatable)")
    tr.add_argument("--help-config", action="store_true", help="list every config key and exit")
    tr.set_defaults(func=cmd_train)

    pd = sub.add_parser("prepare-data", help="train a BPE tokenizer and write tokenizer.json, train.bin, val.bin")
    pd.add_argument("--text", metavar="FILE|DIR", help=".txt or .jsonl (\"text\" field) file, or a directory of "
                    "them (default: the embedded corpus)")
    pd.add_argument("--vocab-size", type=int, default=4096)
    pd.add_argument("--output", metavar="DIR", default="data")
    pd.add_argument("--seq-len", type=int, default=256, help="the training window the data is for: a validation "
                    "split shorter than one window is refused (default: 256, configs/nano-start.yaml's)")
    pd.add_argument("--replace-bad-bytes", action="store_true", help="read text that is not valid UTF-8 with "
                    "U+FFFD for the bad bytes, instead of refusing it")
    pd.set_defaults(func=cmd_prepare_data)

    sa = sub.add_parser("sample", help="generate text from a checkpoint")
    sa.add_argument("--checkpoint", default="latest", metavar="PATH|latest|best|final|STEP")
    sa.add_argument("--prompt", default="")
    sa.add_argument("--max-new-tokens", type=int, default=100)
    sa.add_argument("--temperature", type=float, default=0.8)
    sa.add_argument("--top-k", type=int, default=None)
    sa.add_argument("--top-p", type=float, default=None)
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--tokenizer", metavar="FILE", help="tokenizer.json (default: the run's)")
    sa.add_argument("--backend", choices=("numpy", "numba", "cupy"))
    sa.add_argument("-f", "--config", default=DEFAULT_CONFIG, help="config whose checkpoint_dir holds the run")
    sa.add_argument("--out", metavar="DIR", help="run directory (overrides the config's checkpoint_dir)")
    sa.set_defaults(func=cmd_sample)

    add_packing_parsers(sub)
    for name, what in NOT_BUILT_YET.items():  # listed in --help; main() answers them before parsing
        sub.add_parser(name, help=f"{what} (not built yet)")
    return p


def with_subcommand(argv: list[str]) -> list[str]:
    """Oxidizr's legacy form: flags without a subcommand mean train, and a subcommand written after
    the flags (``-f cfg.yaml pack``) is still that subcommand."""
    if argv and argv[0] in (*SUBCOMMANDS, *NOT_BUILT_YET, "-h", "--help"):
        return argv
    for i, word in enumerate(argv):
        takes_value = i > 0 and argv[i - 1].startswith("-") and "=" not in argv[i - 1] and argv[i - 1] not in (
            "--headless", "--log-grad-norms", "--fail-on-non-finite", "--help-config", "--overwrite", "--tf32",
            "--skip-memory-check", "--private", "--dry-run", "--f16")
        if (word in SUBCOMMANDS or word in NOT_BUILT_YET) and not takes_value:
            return [word, *argv[:i], *argv[i + 1:]]
    return ["train", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = with_subcommand(list(sys.argv[1:] if argv is None else argv))
    if argv[0] in NOT_BUILT_YET:
        print(f"error: train.py {argv[0]}: {NOT_BUILT_YET[argv[0]]} is not built yet", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError) as e:  # bad input: a config, data, checkpoint or flag
        _stderr_print(f"error: {e}")
        return 2
    except distributed.DistributedError as e:  # (a single process: its message was not printed yet)
        _stderr_print(f"error: {e}")
        return 1
    except (TrainingError, CheckpointWriteError) as e:
        _stderr_print(f"error: {e}")
        return 1
    except OSError as e:  # a fault while writing (disk full, permissions): name the file, no traceback
        _stderr_print(f"error: {e.filename or 'writing'}: {e.strerror or e}")
        return 1
    except Interrupted as e:
        if not e.root:  # rank 0 speaks for a data-parallel job
            return e.status
        again = argv + ([] if "--resume" in argv else ["--resume", "auto"])
        where = f"checkpoint {e.path}" if e.path else "no checkpoint could be written"
        launcher = f"mpirun -n {e.world} " if e.world > 1 else ""
        command = f"{launcher}python train.py " + " ".join(shlex.quote(a) for a in again)
        _stderr_print(f"{e.signal_name}: stopped at step {e.step}; {where}. Continue with:\n  {command}")
        return e.status
    except KeyboardInterrupt:  # Ctrl-C before training started (nothing to save yet)
        _stderr_print("interrupted before training started")
        return 130


if __name__ == "__main__":
    sys.exit(main())
