"""``train.py pack`` and ``train.py export``: a run's checkpoint as a transformers folder or a GGUF file.

pack writes ``OUTPUT/USER/NAME/``: model.safetensors, config.json and generation_config.json (by the
architecture's entry in ``nn.pretrained.ARCHITECTURES``), the tokenizer as transformers loads it
(tokenizer.json, tokenizer_config.json, special_tokens_map.json), training_config.json (the run's config, from
its meta.json), loss_curve.png (with matplotlib) and README.md, the model card. The folder is written under a
temporary name and renamed into place, replacing an earlier pack of that name only once it is complete.

Which checkpoint: ``--checkpoint`` as ``sample`` has it (a path, latest, best, final or a step number); without
it, a pick list on a terminal, else final, else best, else the latest.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from minigrad.data.tokenizer import EOT, load_tokenizer, transformers_tokenizer_files
from minigrad.io import CheckpointError, CheckpointWriteError, find_latest, resolve_checkpoint, usable_dir
from minigrad.io.checkpoint import is_complete, list_checkpoints, meta_field, replace_dir
from minigrad.io.hub import hub_setting

from .checkpoint import model_from_checkpoint, tokenizer_beside
from .config import ConfigError, ModelConfig, model_config
from .model_card import CURVE, CardFacts, model_card, plot_curve
from .pretrained import FAMILY_NAMES, Architecture, architecture_for, family_of, save_pretrained, write_json

# The Hub's rule for the parts of a repo id: letters, digits, '-', '_', '.'; no '--' or '..'; no '-' or '.'
# at either end; at most 96 characters.
_REPO_PART = re.compile(r"^(?![-.])(?!.*(?:--|\.\.))[A-Za-z0-9._-]{1,96}(?<![-.])$")
GENERATION = {"do_sample": True, "temperature": 0.8, "top_k": 40}  # the sample a finished run prints


@dataclass
class Choice:
    label: str
    path: str
    step: int | None
    val_loss: float | None
    age_s: float


def checkpoint_choices(run_dir: str) -> list[Choice]:
    """final, best, then the step checkpoints newest first: the complete ones."""
    paths = [os.path.join(run_dir, n) for n in ("final", "best")]
    paths = [p for p in paths if is_complete(p)] + [p for _, p in reversed(list_checkpoints(run_dir))]
    out = []
    for p in paths:
        metrics = meta_field(p, "metrics")
        val = metrics.get("val_loss") if isinstance(metrics, dict) else None
        step = meta_field(p, "step")
        out.append(Choice(os.path.basename(p), p, step if isinstance(step, int) else None,
                          val if isinstance(val, (int, float)) else None,
                          time.time() - os.path.getmtime(os.path.join(p, "meta.json"))))
    return out


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def pick(choices: list[Choice], default: int, stdin: TextIO, out: TextIO) -> str:
    """The pick list: one line per checkpoint, a number (or Enter for the default) on stdin."""
    print("checkpoints:", file=out)
    for i, c in enumerate(choices, 1):
        val = f"val loss {c.val_loss:.4f}" if c.val_loss is not None else "no val loss"
        print(f"  {i}) {c.label:<15} step {c.step if c.step is not None else '?':>7}  {val:<18} {_age(c.age_s)}",
              file=out)
    while True:
        print(f"pick a checkpoint [1-{len(choices)}, Enter = {default + 1}]: ", end="", file=out, flush=True)
        answer = stdin.readline()
        if not answer:
            raise CheckpointError("no checkpoint picked (end of input); pass --checkpoint")
        answer = answer.strip()
        if not answer:
            return choices[default].path
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1].path
        print(f"  {answer!r} is not one of 1-{len(choices)}", file=out)


def choose_checkpoint(spec: str | None, run_dir: str, stdin: TextIO | None = None, out: TextIO | None = None) -> str:
    """``spec`` resolved as sample resolves it; with none, a pick list on a terminal, else final/best/latest."""
    if spec:
        return resolve_checkpoint(spec, run_dir)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: no such run directory (pass the run with --out RUN)")
    choices = checkpoint_choices(run_dir)
    if not choices:
        raise CheckpointError(f"{run_dir}: no complete checkpoint here (is it the run directory? pass --out RUN)")
    labels = [c.label for c in choices]
    default = labels.index("final") if "final" in labels else labels.index("best") if "best" in labels else None
    stdin = stdin or sys.stdin
    if stdin is not None and stdin.isatty():
        return pick(choices, default or 0, stdin, out or sys.stderr)
    if default is not None:
        return choices[default].path
    latest = find_latest(run_dir)
    if latest is None:
        raise CheckpointError(f"{run_dir}: no checkpoint that loads")
    return latest


def checkpoint_config(path: str) -> ModelConfig:
    """The model config of a checkpoint, read before the model is built, so that a family without a converter
    is named as such (not as 'not yet supported' by the model builder)."""
    config = meta_field(path, "config")
    section = config.get("model") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        model_from_checkpoint(path)  # raises the precise error: no such checkpoint, incomplete, bad meta.json
        raise CheckpointError(f"{path}: its meta.json holds no model config")
    try:
        return model_config(section, os.path.join(path, "meta.json"), check_supported=False)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def repo_part(value: str, flag: str) -> str:
    if not _REPO_PART.match(value):
        raise ConfigError(f"{flag} {value!r}: a Hub name has letters, digits, '-', '_' and '.' (not at either end, "
                          "no '--' or '..'), at most 96 characters")
    return value


def default_name(cfg: ModelConfig, run_dir: str) -> str:
    """The model's name (model.name), else the run directory's, made a valid Hub name."""
    raw = cfg.name or os.path.basename(os.path.abspath(run_dir)) or "model"
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", raw))).strip("-.")[:96]
    return name or "model"


def describe_data(trainer: dict[str, Any]) -> str:
    """What the run trained on, in words, from the trainer config and the prepared data's meta.json."""
    path = trainer.get("data")
    if not path:
        return "the embedded default corpus: the Python standard library's source code"
    data_dir = path if os.path.isdir(path) else os.path.dirname(path)
    source, tokens = meta_field(data_dir, "source"), meta_field(data_dir, "train_tokens")
    if isinstance(source, str) and os.path.isabs(source):
        source = f"`{os.path.basename(source)}`"  # a public card names the file, not this machine's paths
    extra = f" (prepared from {source}" + (f", {tokens:,} training tokens" if isinstance(tokens, int) else "") + ")"
    return f"`{os.path.basename(os.path.normpath(path))}`" + (extra if source else "")


def _card_facts(repo_id: str, arch: Architecture, model, ckpt, license: str, datasets: list[str]) -> CardFacts:
    meta, metrics = ckpt.meta, ckpt.meta.get("metrics") or {}
    best = (meta.get("train_state") or {}).get("best_val_loss")
    trainer = (meta["config"].get("trainer") or {})
    return CardFacts(repo_id=repo_id, family=FAMILY_NAMES[arch.family], hf_class=arch.hf_class,
                     in_transformers=arch.in_transformers, cfg=model.config, parameters=model.num_parameters(),
                     step=meta["step"], checkpoint=os.path.basename(ckpt.path), train_loss=metrics.get("loss"),
                     val_loss=metrics.get("val_loss"), best_val_loss=best, tokens_seen=meta.get("tokens_seen"),
                     data=describe_data(trainer), trainer=trainer, license=license, datasets=datasets,
                     init_from=meta.get("init_from"))


def _write_folder(tmp: str, model, ckpt, arch: Architecture, tok_path: str, facts: CardFacts) -> None:
    tok = load_tokenizer(tok_path)
    eot = tok.token_to_id(EOT)
    save_pretrained(tmp, model.state_dict(), model.config, eot, eot, GENERATION)
    shutil.copyfile(tok_path, os.path.join(tmp, "tokenizer.json"))
    for name, body in transformers_tokenizer_files(tok, model.config.max_seq_len).items():
        write_json(os.path.join(tmp, name), body)
    write_json(os.path.join(tmp, "training_config.json"),
               {**ckpt.meta["config"], "config_source": ckpt.meta.get("config_source"), "step": ckpt.meta["step"],
                "run_id": ckpt.meta.get("run_id")})
    facts.curve_note = plot_curve(os.path.join(os.path.dirname(ckpt.path), "metrics.jsonl"),
                                  os.path.join(tmp, CURVE), ckpt.meta["step"])
    facts.curve = not facts.curve_note
    with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(facts))


def run_tokenizer(ckpt_path: str, given: str | None, vocab_size: int) -> str:
    """The run's tokenizer.json (or ``--tokenizer``), checked to fit the model's vocabulary."""
    path = given or tokenizer_beside(ckpt_path)
    if path is None:
        raise CheckpointError(f"{ckpt_path}: no tokenizer.json with this run; pass --tokenizer FILE")
    n = load_tokenizer(path).get_vocab_size()
    if n > vocab_size:
        raise CheckpointError(f"{path}: has {n} tokens, more than the model's vocab_size {vocab_size}: it is not "
                              "this run's tokenizer")
    return path


def pack_run(ckpt_path: str, output: str, username: str | None, name: str | None, tokenizer: str | None = None,
             license: str = "mit", datasets: list[str] | None = None, log=print) -> str:
    """Pack checkpoint ``ckpt_path`` into ``output/USER/NAME``; returns the folder."""
    cfg = checkpoint_config(ckpt_path)
    arch = architecture_for(cfg, ckpt_path)
    username = repo_part(username, "--username") if username else None
    name = repo_part(name, "--name") if name else default_name(cfg, os.path.dirname(ckpt_path))
    if username is None:
        found, _ = hub_setting("HF_USERNAME")
        username = repo_part(found, "HF_USERNAME") if found else "local"
    model, ckpt = model_from_checkpoint(ckpt_path, backend="numpy")
    tok_path = run_tokenizer(ckpt.path, tokenizer, cfg.vocab_size)
    usable_dir(output, "--output")
    parent = os.path.join(output, username)
    usable_dir(parent, "--output")
    tmp = os.path.join(parent, f".tmp-{name}-{os.getpid()}")
    facts = _card_facts(f"{username}/{name}", arch, model, ckpt, license, list(datasets or []))
    try:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        _write_folder(tmp, model, ckpt, arch, tok_path, facts)
        replace_dir(parent, name, tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"{e.filename or tmp}: could not write the packed model ({e.strerror or e}); "
                                   f"an earlier {os.path.join(parent, name)} is intact") from None
    if username == "local":
        log("note: no --username and no HF_USERNAME (environment or .env): packed under 'local'; pack again with "
            "--username before pushing")
    return os.path.join(parent, name)


def check_gguf_target(path: str) -> None:
    """Refuse, before any work, a --gguf path that cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ConfigError(f"--gguf {path}: is a directory; name the .gguf file to write")
    if not os.path.isdir(parent):
        raise ConfigError(f"--gguf {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--gguf {path}: the directory {parent} is not writable")


def export_run(spec_path: str, gguf_path: str, tokenizer: str | None = None, f16: bool = False) -> dict:
    """A checkpoint (or a packed/transformers folder) as a GGUF file."""
    from .gguf_export import check_exportable, check_family, write_gguf
    from .pretrained import read_pretrained

    check_gguf_target(gguf_path)
    if os.path.isfile(os.path.join(spec_path, "config.json")) and not os.path.exists(
            os.path.join(spec_path, "meta.json")):  # a packed or transformers folder
        cfg, arch, state = read_pretrained(spec_path)
        check_exportable(arch, spec_path)
        tok_path = tokenizer or os.path.join(spec_path, "tokenizer.json")
        if not os.path.isfile(tok_path):
            raise CheckpointError(f"{spec_path}: no tokenizer.json in this folder; pass --tokenizer FILE")
        name = os.path.basename(os.path.normpath(spec_path))
    else:
        cfg = checkpoint_config(spec_path)
        check_family(family_of(cfg), spec_path)
        arch = architecture_for(cfg, spec_path)
        model, ckpt = model_from_checkpoint(spec_path, backend="numpy")
        state, tok_path = model.state_dict(), run_tokenizer(ckpt.path, tokenizer, cfg.vocab_size)
        name = cfg.name or os.path.basename(os.path.dirname(os.path.abspath(ckpt.path)))
    try:
        return write_gguf(gguf_path, arch, cfg, state, tok_path, f16=f16, name=name)
    except OSError as e:
        raise CheckpointWriteError(f"{e.filename or gguf_path}: could not write the GGUF ({e.strerror or e}); "
                                   "nothing was left behind") from None
