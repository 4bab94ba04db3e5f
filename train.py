"""Train a language model with minigrad, from a YAML config, on the command line.

    python train.py                                  # configs/nano-start.yaml on the embedded corpus
    python train.py -f my.yaml -d data/my.bin --max-steps 2000 --set trainer.learning_rate=1e-3
    python train.py prepare-data --text corpus/ --vocab-size 4096 --output data/mine
    python train.py sample --checkpoint latest --prompt "def " --max-new-tokens 100

The training loop itself is ``train()`` below: read a batch, forward, cross-entropy, backward
(``gradient_accumulation`` times), clip the global gradient norm, step the optimizer with the
scheduled learning rate, and every so often log, evaluate and save a checkpoint.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Before NumPy loads OpenBLAS: idle OpenBLAS threads otherwise spin after each call and steal
# the cores from the Numba kernels between matmuls (minigrad sets the same, but too late here).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

import numpy as np  # noqa: E402

import minigrad as mg
import nn
from minigrad import optim
from minigrad.config import ConfigError, check_vocab, load_config
from minigrad.data import BatchStream, DataError, WindowSampler, eval_batches, unigram_entropy
from minigrad.data.dataset import describe_files, ensure_default_data, open_datasets
from minigrad.io import CheckpointError, find_latest, load_checkpoint, resolve_checkpoint, rotate, save_checkpoint
from minigrad.io.metrics import MetricsLog, Reporter

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "nano-start.yaml")
SUBCOMMANDS = ("train", "prepare-data", "sample")


class TrainingError(RuntimeError):
    """The run cannot go on (a non-finite loss under --fail-on-non-finite)."""


@dataclass
class RunOptions:
    """How to run, as opposed to what to train (that is the config)."""

    data_dir: str = "data"        # where the embedded corpus is prepared
    resume: str | None = None     # a checkpoint path, "auto", or None
    headless: bool = False


# ---- pieces of a training step -------------------------------------------------------------

def accumulate_gradients(model: nn.Module, micro_batches: list[tuple[np.ndarray, np.ndarray]],
                         backend: str) -> float:
    """Forward and backward over ``k`` micro-batches, each loss scaled by 1/k, so the summed
    gradients equal those of one batch k times larger. Returns the mean loss."""
    k = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        logits = model(mg.Tensor(x, backend=backend))                # (B, T, vocab)
        loss = mg.cross_entropy(logits, mg.Tensor(y, backend=backend))
        (loss if k == 1 else loss * (1.0 / k)).backward()
        total += loss.item()
    return total / k


def evaluate(model: nn.Module, batches: list[tuple[np.ndarray, np.ndarray]], backend: str) -> float:
    """Mean cross-entropy over fixed validation batches, without building a graph."""
    model.eval()
    with mg.no_grad():
        losses = [mg.cross_entropy(model(mg.Tensor(x, backend=backend)), mg.Tensor(y, backend=backend)).item()
                  for x, y in batches]
    model.train()
    return float(np.mean(losses))


def grad_norms_by_layer(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradients of each block (model.layers.N) and of each other parameter."""
    sums: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        parts = name.split(".")
        group = ".".join(parts[:3]) if parts[:2] == ["model", "layers"] else name.removesuffix(".weight")
        g = p.grad.data
        sums[group] = sums.get(group, 0.0) + float(p.backend.xp.sum(g.astype("float64") ** 2))
    return {k: math.sqrt(v) for k, v in sums.items()}


def build_optimizer(model: nn.Module, t: dict[str, Any]) -> optim.Optimizer:
    lr, wd, betas = t["learning_rate"], t["weight_decay"], tuple(t["betas"])
    if t["optimizer"] == "adamw":
        return optim.AdamW(optim.decay_groups(model.named_parameters(), wd), lr=lr, betas=betas, weight_decay=wd)
    if t["optimizer"] == "lion":
        return optim.Lion(optim.decay_groups(model.named_parameters(), wd), lr=lr, betas=betas, weight_decay=wd)
    adamw_lr = t["adamw_lr"] if t["adamw_lr"] is not None else lr / 10
    return optim.MuonWithAdamW(model.named_parameters(), lr=lr, weight_decay=wd, adamw_lr=adamw_lr,
                               adamw_betas=betas, adamw_weight_decay=wd)


def memory_estimate(model: nn.Module, cfg, optimizer_name: str) -> dict[str, int]:
    """Bytes for parameters, gradients, optimizer state and the activations autograd keeps for
    one micro-batch (a float32 estimate: layer inputs, q/k/v, attention probabilities, the SwiGLU
    hiddens, and logits with their softmax)."""
    m, b, t = cfg.model, cfg.trainer["batch_size"], cfg.seq_len
    n = model.num_parameters()
    state_per_param = {"adamw": 2, "lion": 1, "muon": 1.5}[optimizer_name]
    h, heads = m["hidden_size"], m["num_heads"]
    kv = (m["kv_heads"] or heads) * (h // heads)
    f = m["intermediate_size"] or -(-(8 * h // 3) // 32) * 32
    per_token_layer = 6 * h + 2 * kv + 3 * f + heads * t
    per_token = m["num_layers"] * per_token_layer + 2 * h + 2 * m["vocab_size"]
    return {"parameters": 4 * n, "gradients": 4 * n, "optimizer state": int(4 * n * state_per_param),
            "activations": 4 * b * t * per_token}


def pick_backend(t: dict[str, Any], log: Callable[[str], None]) -> str:
    """The array backend: as asked, with a warning and the CPU when a GPU is asked for but absent."""
    want = t["backend"] or ("cupy" if t["target_device"] == "gpu" else "numba")
    if want == "cupy":
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                return "cupy"
            reason = "CuPy finds no CUDA device"
        except Exception as e:  # ImportError, or a CUDA runtime error when there is no driver
            reason = f"CuPy is not usable ({type(e).__name__})"
        log(f"warning: GPU requested but {reason}; falling back to the CPU (numba backend)")
        return "numba"
    return want


def numpy_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached}


def set_numpy_rng_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["name"], np.array(s["keys"], dtype=np.uint32), s["pos"], s["has_gauss"], s["cached"]))


def _stderr_print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


# ---- the training run ----------------------------------------------------------------------

def train(cfg, opts: RunOptions, after_backward: Callable[[nn.Module, int], None] | None = None) -> dict:
    """Run the training the config describes. ``after_backward(model, step)`` is called with the
    gradients in place before clipping (a hook for experiments and tests). Returns a summary."""
    t = cfg.trainer
    run_dir = t["checkpoint_dir"]
    log = _stderr_print if opts.headless else print  # headless: stdout carries only JSON
    backend = pick_backend(t, log)
    mg.set_default_backend(backend)
    seq_len, batch, accum = cfg.seq_len, t["batch_size"], t["gradient_accumulation"]

    # Data: open and check every file before building anything.
    train_path = t["data"] or ensure_default_data(opts.data_dir, cfg.model["vocab_size"], log)
    data = open_datasets(train_path, t["val_data"], seq_len)
    check_vocab(cfg, data.max_token, data.train_path)
    entropy = data.meta.get("unigram_entropy_nats")  # prepared data carries it; otherwise count
    if entropy is None:
        entropy = unigram_entropy(data.train)
    log(f"data: train {describe_files(data.train)} ({data.train_path}), val {describe_files(data.val)} "
        f"({data.val_path}); unigram entropy of train {entropy:.3f} nats")

    # Model, optimizer, schedule.
    model = nn.build_model(cfg.model_args(), backend=backend, seed=t["seed"], where=cfg.source)
    model.train()
    optimizer = build_optimizer(model, t)
    sampler = WindowSampler(data.train, seq_len, batch, seed=t["seed"])
    tokens_per_step = batch * accum * seq_len
    windows = sum(max(0, (len(f) - 1) // seq_len) for f in data.train)
    steps_per_epoch = max(1, windows // (batch * accum))
    limits = [t["max_steps"]] if t["max_steps"] else []
    limits += [math.ceil(t["num_epochs"] * steps_per_epoch)] if t["num_epochs"] else []
    total_steps = min(limits)
    if t["max_steps"] and total_steps < t["max_steps"]:
        log(f"note: trainer.num_epochs = {t['num_epochs']} ends the run after {total_steps} steps, before "
            f"trainer.max_steps = {t['max_steps']} (pass --epochs 0 to train by steps alone)")
    min_lr = t["min_lr"] if t["min_lr"] is not None else t["learning_rate"] / 10
    min_lr_ratio = min_lr / t["learning_rate"] if t["learning_rate"] > 0 else 0.0
    val_batches = eval_batches(data.val, seq_len, batch, t["eval_batches"])

    mem = memory_estimate(model, cfg, t["optimizer"])
    log(f"model: {model.num_parameters():,} parameters ({cfg.model.get('name') or cfg.source}); backend {backend}; "
        f"{total_steps} steps of {batch} x {accum} x {seq_len} = {tokens_per_step:,} tokens "
        f"({steps_per_epoch} steps per epoch)")
    log("memory estimate: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in mem.items())
        + f"; total about {fmt_bytes(sum(mem.values()))}")

    # Resume: weights, optimizer state, data cursor, RNG states, bookkeeping.
    step, best_val, bad_evals, elapsed = 0, math.inf, 0, 0.0
    resume_path = None
    if opts.resume:
        resume_path = find_latest(run_dir) if opts.resume == "auto" else resolve_checkpoint(opts.resume, run_dir)
        if resume_path is None:
            log(f"--resume auto: no checkpoint in {run_dir}/ yet, starting from scratch")
    if resume_path:
        ckpt = load_checkpoint(resume_path)
        try:
            model.load_state_dict(ckpt.model)
            optimizer.load_state(ckpt.optimizer, ckpt.meta["optimizer"])
        except (nn.StateDictError, ValueError) as e:
            raise CheckpointError(f"{resume_path}: does not fit this config: {e}") from None
        sampler.load_state_dict(ckpt.meta["data_cursor"])
        mg.default_generator().set_state(ckpt.meta["rng"]["minigrad"])
        set_numpy_rng_state(ckpt.meta["rng"]["numpy"])
        s = ckpt.meta["train_state"]
        step, best_val, bad_evals, elapsed = ckpt.meta["step"], s["best_val_loss"], s["bad_evals"], s["elapsed"]
        best_val = math.inf if best_val is None else best_val
        log(f"resumed from {resume_path} at step {step}")

    os.makedirs(run_dir, exist_ok=True)
    if data.tokenizer_path:
        shutil.copyfile(data.tokenizer_path, os.path.join(run_dir, "tokenizer.json"))
    metrics = MetricsLog(os.path.join(run_dir, "metrics.jsonl"), resume_step=step if resume_path else None)
    stream = BatchStream(sampler, t["prefetch"])
    reporter = Reporter(total_steps, step, opts.headless)

    def checkpoint(name: str, last: dict[str, Any]) -> str:
        meta = {"step": step, "config": cfg.to_dict(), "config_source": cfg.source,
                "optimizer": optimizer.state_meta(), "data_cursor": stream.state_dict(),
                "rng": {"minigrad": mg.default_generator().get_state(), "numpy": numpy_rng_state()},
                "train_state": {"best_val_loss": None if math.isinf(best_val) else best_val,
                                "bad_evals": bad_evals, "elapsed": elapsed},
                "metrics": last, "backend": backend, "tokens_seen": step * tokens_per_step,
                "tokenizer": "../tokenizer.json" if data.tokenizer_path else None}
        path = save_checkpoint(run_dir, name, model.state_dict(), optimizer.state_arrays(), meta)
        reporter.event({"event": "checkpoint", "step": step, "path": path})
        return path

    last: dict[str, Any] = {}
    val_loss, val_step = None, -1
    non_finite = 0
    window_time, window_steps = 0.0, 0
    stop_reason = "max_steps" if t["max_steps"] and total_steps == t["max_steps"] else "epochs"
    try:
        while step < total_steps:
            t0 = time.perf_counter()
            lr = optim.lr_at(step, t["learning_rate"], t["warmup_steps"], total_steps, t["lr_schedule"],
                             min_lr, t["decay_fraction"])
            optim.set_lr(optimizer, step, t["warmup_steps"], total_steps, t["lr_schedule"], min_lr_ratio,
                         t["decay_fraction"])
            loss = accumulate_gradients(model, [stream.next() for _ in range(accum)], backend)
            if after_backward is not None:
                after_backward(model, step)
            log_now = (step + 1) % t["log_interval"] == 0 or step + 1 == total_steps
            layer_norms = grad_norms_by_layer(model) if log_now and t["log_grad_norms"] else None
            grad_norm = optim.clip_grad_norm_(model.parameters(), t["grad_clip"] or math.inf)
            finite = math.isfinite(loss) and math.isfinite(grad_norm)
            if finite:
                optimizer.step()
            optimizer.zero_grad()
            step += 1
            dt = time.perf_counter() - t0
            elapsed += dt
            window_time += dt
            window_steps += 1
            if not finite:
                non_finite += 1
                rec = {"event": "non_finite", "step": step, "loss": loss, "grad_norm": grad_norm}
                metrics.write(rec)
                reporter.event(rec)
                reporter.info(f"step {step}: non-finite loss {loss} / gradient norm {grad_norm}; update skipped")
                if t["fail_on_non_finite"]:
                    raise TrainingError(f"step {step}: non-finite loss {loss} or gradient norm {grad_norm} "
                                        "(--fail-on-non-finite)")
            tok_s = window_steps * tokens_per_step / max(window_time, 1e-9)
            reporter.step(1, loss, tok_s, lr)
            if log_now:
                cursor = stream.state_dict()  # (not the sampler: a prefetch thread may be using it)
                last = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tok_s,
                        "epoch": round(cursor["epoch"] + cursor["index"] / max(1, windows), 4),
                        "elapsed": round(elapsed, 3)}
                if layer_norms is not None:
                    last["grad_norms"] = layer_norms
                metrics.write(last)
                reporter.event({"event": "step", **last})
                window_time, window_steps = 0.0, 0
            at_end = step == total_steps
            if (t["eval_interval"] and step % t["eval_interval"] == 0) or at_end:
                val_loss, val_step = evaluate(model, val_batches, backend), step
                improved = val_loss < best_val
                best_val, bad_evals = (val_loss, 0) if improved else (best_val, bad_evals + 1)
                rec = {"step": step, "val_loss": val_loss, "best_val_loss": best_val, "elapsed": round(elapsed, 3)}
                metrics.write(rec)
                reporter.event({"event": "eval", **rec})
                reporter.info(f"step {step}: val loss {val_loss:.4f} (best {best_val:.4f}); train loss {loss:.4f}")
                last = {**last, "val_loss": val_loss}
                if improved:
                    checkpoint("best", last)
                patience = t["early_stopping_patience"]
                if patience and bad_evals >= patience and not at_end:
                    reporter.info(f"early stopping: no improvement in {patience} evaluations")
                    stop_reason = "early_stopping"
                    break
            if t["save_interval"] and step % t["save_interval"] == 0 and not at_end:
                checkpoint(f"step-{step:08d}", last)
                rotate(run_dir, t["max_checkpoints"])
    finally:
        stream.close()
        reporter.close()
    if val_step != step:  # no evaluation at the last step (a resumed, already finished run): measure it
        val_loss = evaluate(model, val_batches, backend)
        last = {**last, "step": step, "val_loss": val_loss}
    final_path = checkpoint("final", last)
    rotate(run_dir, t["max_checkpoints"])
    summary = {"event": "done", "step": step, "stop": stop_reason, "final_loss": last.get("loss"),
               "val_loss": val_loss, "best_val_loss": best_val, "unigram_entropy": entropy,
               "tokens_per_s": step * tokens_per_step / max(elapsed, 1e-9), "elapsed": round(elapsed, 3),
               "non_finite_steps": non_finite, "checkpoint": final_path}
    metrics.write(summary)
    metrics.close()
    reporter.event(summary)
    out = _stderr_print if opts.headless else print
    out(f"done: {step} steps in {elapsed:.1f}s ({summary['tokens_per_s']:,.0f} tokens/s); val loss {val_loss:.4f} "
        f"(best {best_val:.4f}) vs unigram entropy {entropy:.4f} nats; checkpoint {final_path}")
    if t["sample_tokens"] and data.tokenizer_path:
        text = sample_text(model, load_tokenizer_for(data.tokenizer_path), t["sample_prompt"], t["sample_tokens"],
                           temperature=0.8, top_k=40, seed=t["seed"], log=out)
        out("sample:\n" + text)
        summary["sample"] = text
    return summary


# ---- sampling ------------------------------------------------------------------------------

def load_tokenizer_for(path: str):
    from minigrad.data.tokenizer import load_tokenizer

    return load_tokenizer(path)


def sample_text(model: nn.Module, tok, prompt: str, max_new_tokens: int, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                log: Callable[[str], None] = print) -> str:
    """Generate from ``prompt`` (after an end-of-text token, as documents start in training)."""
    from minigrad.data.tokenizer import EOT

    eot = tok.token_to_id(EOT)
    ids = ([eot] if eot is not None else []) + tok.encode(prompt, add_special_tokens=False).ids
    room = model.config.max_seq_len - len(ids)
    if room <= 0:
        raise ConfigError(f"the prompt is {len(ids)} tokens, no room left within max_seq_len "
                          f"{model.config.max_seq_len}")
    if max_new_tokens > room:
        log(f"note: generating {room} tokens, all that fit in max_seq_len {model.config.max_seq_len}")
        max_new_tokens = room
    out = model.generate(np.array([ids], dtype=np.int64), max_new_tokens, temperature=temperature, top_k=top_k,
                         top_p=top_p, seed=seed)[0, len(ids):].tolist()
    if eot is not None and eot in out:
        out = out[:out.index(eot)]
    return prompt + tok.decode(out)


# ---- the command line ----------------------------------------------------------------------

# Named flags and the config keys they set (an explicit flag wins over the file and --set).
FLAG_KEYS = {"data": "trainer.data", "val_data": "trainer.val_data", "target_device": "trainer.target_device",
             "backend": "trainer.backend", "seq_len": "trainer.seq_len", "batch_size": "trainer.batch_size",
             "grad_accum": "trainer.gradient_accumulation", "max_steps": "trainer.max_steps",
             "epochs": "trainer.num_epochs", "lr": "trainer.learning_rate", "seed": "trainer.seed",
             "prefetch": "trainer.prefetch", "dtype": "trainer.dtype", "max_checkpoints": "trainer.max_checkpoints",
             "out": "trainer.checkpoint_dir", "log_grad_norms": "trainer.log_grad_norms",
             "fail_on_non_finite": "trainer.fail_on_non_finite"}


def config_overrides(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    from minigrad.config import parse_set

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
        from minigrad.config import describe

        print(describe())
        return 0
    cfg = load_config(args.config, config_overrides(args))
    train(cfg, RunOptions(data_dir=args.data_dir, resume=args.resume, headless=args.headless))
    return 0


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from minigrad.data.tokenizer import prepare_data, read_documents

    if args.text is None:
        from minigrad.data import corpus

        docs, source = corpus.stdlib_documents(), "python-stdlib " + corpus.describe()
    else:
        docs, source = read_documents(args.text), os.path.abspath(args.text)
    try:
        prepare_data(docs, args.vocab_size, args.output, source=source)
    except ValueError as e:  # a vocab size too small for a byte-level BPE
        raise DataError(f"--vocab-size {args.vocab_size}: {e}") from None
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    run_dir = args.out or load_config(args.config, check_supported=False).trainer["checkpoint_dir"]
    path = resolve_checkpoint(args.checkpoint, run_dir)
    ckpt = load_checkpoint(path)
    cfg = ckpt.meta["config"]
    tok_path = args.tokenizer
    for cand in (os.path.join(path, "tokenizer.json"), os.path.join(os.path.dirname(path), "tokenizer.json")):
        if tok_path is None and os.path.isfile(cand):
            tok_path = cand
    if tok_path is None:
        raise CheckpointError(f"{path}: no tokenizer.json with this run; pass --tokenizer FILE")
    backend = args.backend or "numba"
    model = nn.build_model({k: v for k, v in cfg["model"].items() if v is not None and v != []}, backend=backend)
    model.load_state_dict(ckpt.model)
    print(f"# {path} (step {ckpt.meta['step']})", file=sys.stderr)
    print(sample_text(model, load_tokenizer_for(tok_path), args.prompt, args.max_new_tokens, args.temperature,
                      args.top_k, args.top_p, args.seed, log=_stderr_print))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description="Train, prepare data for, and sample from minigrad "
                                "language models. With no subcommand, 'train' is meant.",
                                epilog="Each subcommand has its own flags: python train.py train --help")
    sub = p.add_subparsers(dest="command")
    tr = sub.add_parser("train", help="train a model (the default)")
    tr.add_argument("-f", "--config", default=DEFAULT_CONFIG, help="YAML config (default: configs/nano-start.yaml)")
    tr.add_argument("-d", "--data", help="a .bin token file or a directory of .bin shards (default: the embedded "
                    "corpus, the Python standard library, prepared in --data-dir)")
    tr.add_argument("--val-data", help="validation tokens (default: val.bin beside --data, or its last 5%%)")
    tr.add_argument("--data-dir", default="data", help="where the embedded corpus is prepared (default: data)")
    tr.add_argument("--target-device", choices=("cpu", "gpu"), help="gpu falls back to cpu when there is none")
    tr.add_argument("--backend", choices=("numpy", "numba", "cupy"), help="array backend (default: numba on cpu)")
    tr.add_argument("--seq-len", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    tr.add_argument("--max-steps", type=int, help="optimizer steps (0 = no limit)")
    tr.add_argument("--epochs", type=int, help="passes over the training tokens (0 = no limit)")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--prefetch", type=int, metavar="N", help="prepare N batches ahead on a background thread")
    tr.add_argument("--resume", metavar="PATH|auto", help="continue from a checkpoint, or the newest one")
    tr.add_argument("--headless", action="store_true", help="JSON lines on stdout instead of a progress bar")
    tr.add_argument("--dtype", choices=("f32", "f16", "bf16"))
    tr.add_argument("--max-checkpoints", type=int, metavar="N", help="step checkpoints kept (besides best, final)")
    tr.add_argument("--out", metavar="DIR", help="run directory (overrides trainer.checkpoint_dir)")
    tr.add_argument("--log-grad-norms", action="store_true", help="per-layer gradient norms into metrics.jsonl")
    tr.add_argument("--fail-on-non-finite", action="store_true", help="stop on a NaN/Inf loss or gradient")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any config key, e.g. "
                    "--set model.hidden_size=128 (repeatable)")
    tr.add_argument("--help-config", action="store_true", help="list every config key and exit")
    tr.set_defaults(func=cmd_train)

    pd = sub.add_parser("prepare-data", help="train a BPE tokenizer and write tokenizer.json, train.bin, val.bin")
    pd.add_argument("--text", metavar="FILE|DIR", help=".txt or .jsonl (\"text\" field) file, or a directory of "
                    "them (default: the embedded corpus)")
    pd.add_argument("--vocab-size", type=int, default=4096)
    pd.add_argument("--output", metavar="DIR", default="data")
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
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # Oxidizr's legacy form: flags without a subcommand mean train
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, nn.ConfigError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (resume with --resume auto)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
