"""Hostile input to every command, one class at a time: each ends with exit status 2, one message that
names the offending file, key or value, and no traceback. (Faults during a run, signals and full disks
are tests/test_faults.py.)

Each case is a function ``(ctx) -> (argv, needle)``: it may write files under ``ctx.tmp``, and the test runs
``train.main(argv)`` in this process; an exception escaping main() is a traceback and fails the case.
A few cases also run as real subprocesses (the last test) to see the command line itself.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file, save_file

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "kv_heads": 2, "vocab_size": 300, "max_seq_len": 16}
TRAINER = {"batch_size": 2, "max_steps": 2, "eval_interval": 0, "eval_batches": 1, "log_interval": 1,
           "save_interval": 0, "backend": "numpy", "sample_tokens": 0}


def write_config(path, model=None, trainer=None, text=None):
    body = text if text is not None else yaml.safe_dump(
        {"model": {**MODEL, **(model or {})}, "trainer": {**TRAINER, **(trainer or {})}})
    with open(path, "w") as f:
        f.write(body)
    return str(path)


TEXT = ("the cat sat on the mat and the dog ran far from home. " * 80).encode()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Prepared data (tokenizer.json, train.bin, val.bin), a config and one finished run (for resume, sample)."""
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "t.txt").write_bytes(TEXT)
    assert train.main(["prepare-data", "--text", str(tmp / "t.txt"), "--vocab-size", "270", "--seq-len", "16",
                       "--output", str(tmp / "prepared")]) == 0
    cfg = write_config(tmp / "c.yaml")
    run = tmp / "run"
    assert train.main(["-f", cfg, "-d", str(tmp / "prepared"), "--out", str(run), "--headless"]) == 0
    return SimpleNamespace(root=tmp, cfg=cfg, data=str(tmp / "prepared"), run=str(run))


@pytest.fixture
def ctx(base, tmp_path):
    return SimpleNamespace(**vars(base), tmp=tmp_path)


def train_argv(ctx, *extra, cfg=None, data=None):
    return ["-f", cfg or ctx.cfg, "-d", data or ctx.data, "--out", str(ctx.tmp / "out"), "--headless", *extra]


def copy_run(ctx) -> str:
    """A copy of the finished run whose checkpoint a case may damage."""
    dst = str(ctx.tmp / "run")
    shutil.copytree(ctx.run, dst)
    return dst


def sample_argv(run, *extra):
    return ["sample", "--out", run, "--checkpoint", "final", "--max-new-tokens", "2", "--backend", "numpy", *extra]


# ---- configs -------------------------------------------------------------------------------

def config_case(text=None, model=None, trainer=None, extra=(), needle=None):
    def case(ctx):
        path = write_config(ctx.tmp / "bad.yaml", model, trainer, text)
        return train_argv(ctx, *extra, cfg=path), needle or "bad.yaml"
    return case


def binary_config(ctx):
    path = ctx.tmp / "bin.yaml"
    path.write_bytes(b"model:\n  hidden_size: \xff\xfe32\n")
    return train_argv(ctx, cfg=str(path)), "bin.yaml: not UTF-8 text (byte 22"


def fifo_config(ctx):
    path = str(ctx.tmp / "fifo.yaml")
    os.mkfifo(path)
    return train_argv(ctx, cfg=path), "fifo.yaml: is not a regular file"


def directory_config(ctx):
    return train_argv(ctx, cfg=str(ctx.tmp)), "is a directory"


def missing_config(ctx):
    return train_argv(ctx, cfg=str(ctx.tmp / "nope.yaml")), "nope.yaml: config file not found"


CONFIG_CASES = {
    "not_utf8": binary_config,
    "empty": config_case(text="", needle="bad.yaml: the file is empty"),
    "only_comments": config_case(text="# nothing here\n", needle="the file is empty"),
    "repeated_model_key": config_case(text="model:\n  hidden_size: 32\n  hidden_size: 64\n",
                                      needle="key 'hidden_size' appears twice (lines 2 and 3)"),
    "repeated_trainer_key": config_case(text="trainer:\n  seed: 1\n  batch_size: 2\n  seed: 2\n",
                                        needle="key 'seed' appears twice"),
    "repeated_section": config_case(text="model: {}\ntrainer: {}\nmodel: {}\n", needle="key 'model' appears twice"),
    "top_level_list": config_case(text="- 1\n- 2\n", needle="expected a mapping"),
    "yaml_syntax": config_case(text="model:\n  hidden_size: [1,\n", needle="not valid YAML (line"),
    "section_not_mapping": config_case(text="model: 5\n", needle="section 'model' must be a mapping"),
    "unknown_section": config_case(text="modle: {}\n", needle="unknown section 'modle'"),
    "nan_lr": config_case(text=yaml.safe_dump({"model": MODEL, "trainer": TRAINER}) + "  learning_rate: .nan\n",
                          needle="trainer.learning_rate must be a finite number"),
    "inf_lr": config_case(trainer={"learning_rate": math.inf}, needle="trainer.learning_rate must be a finite"),
    "negative_seed_in_file": config_case(trainer={"seed": -5}, needle="trainer.seed must be at least 0, got -5"),
    "string_for_int": config_case(model={"num_layers": "two"}, needle="model.num_layers must be an integer"),
    "bool_for_int": config_case(model={"num_heads": True}, needle="model.num_heads must be an integer"),
    "bad_float_text": config_case(trainer={"learning_rate": "1e-3x"}, needle="trainer.learning_rate must be a number"),
    "betas_length": config_case(trainer={"betas": [0.9]}, needle="trainer.betas must be a list of 2"),
    "mamba_layers_type": config_case(model={"mamba_layers": 3}, needle="model.mamba_layers must be a list"),
    "huge_num_layers": config_case(model={"num_layers": 10**30}, needle="but the machine has"),
    "huge_hidden": config_case(model={"hidden_size": 10**8, "num_heads": 4}, needle="--skip-memory-check"),
    "huge_vocab": config_case(model={"vocab_size": 10**12}, needle="this model needs about"),
    "huge_batch": config_case(trainer={"batch_size": 10**9}, needle="batch 1000000000 x 16"),
    "fifo": fifo_config,
    "directory": directory_config,
    "missing": missing_config,
}

# ---- command-line values -------------------------------------------------------------------

CLI_CASES = {
    "lr_inf": lambda ctx: (train_argv(ctx, "--lr", "inf"), "trainer.learning_rate (from --lr inf) must be a finite"),
    "lr_overflow": lambda ctx: (train_argv(ctx, "--lr", "1e400"), "(from --lr inf) must be a finite number"),
    "lr_nan": lambda ctx: (train_argv(ctx, "--lr", "nan"), "(from --lr nan) must be a finite number"),
    "negative_seed": lambda ctx: (train_argv(ctx, "--seed", "-1"), "trainer.seed (from --seed -1) must be at least 0"),
    "zero_batch": lambda ctx: (train_argv(ctx, "--batch-size", "0"), "trainer.batch_size (from --batch-size 0)"),
    "seq_len_too_long": lambda ctx: (train_argv(ctx, "--seq-len", "64"), "trainer.seq_len (from --seq-len 64) = 64"),
    "set_unknown_key": lambda ctx: (train_argv(ctx, "--set", "trainer.lr=0.1"), "unknown key trainer.lr"),
    "set_no_equals": lambda ctx: (train_argv(ctx, "--set", "trainer.seed"), "--set trainer.seed: expected key=value"),
    "set_bad_choice": lambda ctx: (train_argv(ctx, "--set", "trainer.optimizer=sgd"), "trainer.optimizer"),
    "device_vs_backend": lambda ctx: (train_argv(ctx, "--target-device", "gpu", "--backend", "numpy"),
                                      "does not run on trainer.target_device"),
}

# ---- data files and run directories --------------------------------------------------------


def data_case(make, needle):
    def case(ctx):
        path = make(ctx)
        return train_argv(ctx, data=path), needle if "{" not in needle else needle.format(path=path)
    return case


def raw_file(name, data):
    def make(ctx):
        p = ctx.tmp / name
        p.write_bytes(data)
        return str(p)
    return make


def fifo_data(ctx):
    p = str(ctx.tmp / "pipe.bin")
    os.mkfifo(p)
    return p


def empty_dir(ctx):
    (ctx.tmp / "empty").mkdir()
    return str(ctx.tmp / "empty")


def unreadable_data(ctx, monkeypatch):
    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(np, "memmap", denied)
    return train_argv(ctx), f"{ctx.data}/train.bin: cannot read the token file (Permission denied)"


def ids_above_vocab(ctx):
    p = ctx.tmp / "big.bin"
    np.arange(400, dtype="<u4").tofile(p)
    return train_argv(ctx, data=str(p)), f"too small for {p}"


def val_ids_above_vocab(ctx):
    p = ctx.tmp / "val.bin"
    np.arange(400, dtype="<u4").tofile(p)
    return train_argv(ctx, "--val-data", str(p)), f"model.vocab_size = 300 is too small for {p}"


def corrupt_tokenizer(ctx):
    d = ctx.tmp / "prepared"
    d.mkdir()
    shutil.copy(os.path.join(ctx.data, "train.bin"), d / "train.bin")
    (d / "tokenizer.json").write_text("{ not a tokenizer")
    return train_argv(ctx, data=str(d)), f"{d / 'tokenizer.json'}: cannot read tokenizer"


def out_is_a_file(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["-f", ctx.cfg, "-d", ctx.data, "--out", str(ctx.tmp / "f")], "must be a directory, but a file is there"


def out_not_creatable(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["-f", ctx.cfg, "-d", ctx.data, "--out", str(ctx.tmp / "f" / "run")], "cannot be created"


DATA_CASES = {
    "missing": data_case(lambda ctx: str(ctx.tmp / "nope.bin"), "{path}: no such file or directory"),
    "empty_dir": data_case(empty_dir, "holds no .bin token files"),
    "fifo": data_case(fifo_data, "{path}: is not a regular file or a directory"),
    "dev_zero": data_case(lambda ctx: "/dev/zero", "/dev/zero: is not a regular file or a directory"),
    "odd_size": data_case(raw_file("odd.bin", b"\x01\x02\x03"), "{path}: size 3 bytes is not a multiple of 4"),
    "empty_file": data_case(raw_file("e.bin", b""), "{path}: file is empty"),
    "too_short": data_case(raw_file("s.bin", b"\x01\x00\x00\x00" * 5), "{path}: holds 5 tokens"),
    "ids_above_vocab": ids_above_vocab,
    "val_ids_above_vocab": val_ids_above_vocab,
    "val_missing": lambda ctx: (train_argv(ctx, "--val-data", str(ctx.tmp / "v.bin")), "v.bin: no such file"),
    "corrupt_tokenizer": corrupt_tokenizer,
    "out_is_a_file": out_is_a_file,
    "out_not_creatable": out_not_creatable,
}

# ---- checkpoints: train --resume and sample -------------------------------------------------


def damaged(edit, command="resume"):
    def case(ctx):
        run = copy_run(ctx)
        needle = edit(os.path.join(run, "final"))
        argv = (["-f", ctx.cfg, "-d", ctx.data, "--out", run, "--resume", os.path.join(run, "final"), "--headless"]
                if command == "resume" else sample_argv(run))
        return argv, needle
    return case


def edit_meta(change):
    def edit(ckpt):
        path = os.path.join(ckpt, "meta.json")
        with open(path) as f:
            meta = json.load(f)
        needle = change(meta)
        with open(path, "w") as f:
            json.dump(meta, f)
        return needle
    return edit


def meta_text(text):
    def edit(ckpt):
        with open(os.path.join(ckpt, "meta.json"), "w") as f:
            f.write(text)
        return "unreadable checkpoint"
    return edit


def nan_weights(ckpt):
    path = os.path.join(ckpt, "model.safetensors")
    w = load_file(path)
    w["model.norm.weight"][0] = np.nan
    save_file(w, path)
    return "its weights are not finite (model.norm.weight)"


def other_model_weights(ckpt):
    path = os.path.join(ckpt, "model.safetensors")
    w = load_file(path)
    w["model.norm.weight"] = np.ones(7, np.float32)
    save_file(w, path)
    return "model.norm.weight: checkpoint (7,) vs model (32,)"


def drop(key):
    return edit_meta(lambda m: (m.pop(key), f"'{key}' is missing")[1])


def other_config(ctx):
    run = copy_run(ctx)
    cfg = write_config(ctx.tmp / "wide.yaml", model={"rope_theta": 500.0})
    return (["-f", cfg, "-d", ctx.data, "--out", run, "--resume", "auto", "--headless"],
            "model.rope_theta 10000.0 vs 500.0")


def fresh_run_into_used_dir(ctx):
    run = copy_run(ctx)
    return ["-f", ctx.cfg, "-d", ctx.data, "--out", run, "--headless"], "continue it with --resume auto"


def locked_by_a_live_process(ctx):
    run = copy_run(ctx)
    with open(os.path.join(run, ".lock"), "w") as f:
        json.dump({"pid": os.getppid(), "host": __import__("socket").gethostname(), "started": None}, f)
    return (["-f", ctx.cfg, "-d", ctx.data, "--out", run, "--resume", "auto"],
            f"another run (pid {os.getppid()}) is training in this directory")


CHECKPOINT_CASES = {
    "resume_missing_path": lambda ctx: (train_argv(ctx, "--resume", str(ctx.tmp / "gone")), "gone: no such checkpoint"),
    "resume_incomplete": damaged(lambda c: (os.remove(os.path.join(c, "meta.json")), "missing meta.json")[1]),
    "resume_meta_not_json": damaged(meta_text("{ broken")),
    "resume_meta_not_object": damaged(edit_meta(lambda m: (m.clear(), "'step' is missing")[1])),
    "resume_meta_no_train_state": damaged(drop("train_state")),
    "resume_meta_no_rng": damaged(drop("rng")),
    "resume_meta_step_string": damaged(edit_meta(lambda m: (m.update(step="5"), "'step' must be int, got str")[1])),
    "resume_meta_negative_step": damaged(edit_meta(lambda m: (m.update(step=-3), "'step' must be >= 0")[1])),
    "resume_meta_bad_cursor": damaged(edit_meta(lambda m: (m.update(data_cursor={"epoch": "x"}),
                                                           "'data_cursor' needs integer")[1])),
    "resume_meta_bad_train_state": damaged(edit_meta(lambda m: (m["train_state"].update(bad_evals=None),
                                                                "'train_state' needs")[1])),
    "resume_nan_weights": damaged(nan_weights),
    "resume_other_weights": damaged(other_model_weights),
    "resume_corrupt_safetensors": damaged(lambda c: (open(os.path.join(c, "model.safetensors"), "r+b").truncate(10),
                                                     "unreadable checkpoint")[1]),
    "resume_other_config": other_config,
    "fresh_run_into_used_dir": fresh_run_into_used_dir,
    "locked_by_live_process": locked_by_a_live_process,
    "sample_meta_no_config": damaged(drop("config"), "sample"),
    "sample_meta_not_json": damaged(meta_text("[1, 2"), "sample"),
    "sample_nan_weights": damaged(nan_weights, "sample"),
    "sample_other_weights": damaged(other_model_weights, "sample"),
}

# ---- sample flags ---------------------------------------------------------------------------


def sample_flag(*flags, needle):
    return lambda ctx: (sample_argv(ctx.run, *flags), needle)


def sample_no_tokenizer(ctx):
    run = copy_run(ctx)
    os.remove(os.path.join(run, "tokenizer.json"))
    return sample_argv(run), "no tokenizer.json with this run"


def sample_corrupt_tokenizer(ctx):
    run = copy_run(ctx)
    (ctx.tmp / "tok.json").write_text("nope")
    return sample_argv(run, "--tokenizer", str(ctx.tmp / "tok.json")), "tok.json: cannot read tokenizer"


SAMPLE_CASES = {
    "max_new_tokens_negative": sample_flag("--max-new-tokens", "-1", needle="--max-new-tokens -1: must be 0 or more"),
    "temperature_negative": sample_flag("--temperature", "-1", needle="--temperature -1.0: must be a finite"),
    "temperature_nan": sample_flag("--temperature", "nan", needle="--temperature nan"),
    "top_p_zero": sample_flag("--top-p", "0", needle="--top-p 0.0: must be in (0, 1]"),
    "top_p_five": sample_flag("--top-p", "5", needle="--top-p 5.0: must be in (0, 1]"),
    "top_k_zero": sample_flag("--top-k", "0", needle="--top-k 0: must be at least 1"),
    "no_checkpoint": lambda ctx: (["sample", "--out", str(ctx.tmp)], "no complete checkpoint"),
    "step_missing": lambda ctx: (sample_argv(ctx.run)[:4] + ["99"], "step-00000099: no such checkpoint"),
    "no_tokenizer": sample_no_tokenizer,
    "corrupt_tokenizer": sample_corrupt_tokenizer,
}

# ---- prepare-data ---------------------------------------------------------------------------


def prepare(ctx, name, data, *extra):
    p = ctx.tmp / name
    p.write_bytes(data)
    return ["prepare-data", "--text", str(p), "--output", str(ctx.tmp / "prep"), "--seq-len", "8", *extra]


PREPARE_CASES = {
    "txt_not_utf8": lambda ctx: (prepare(ctx, "a.txt", TEXT + b"\xff\xfe" + TEXT),
                                 f"a.txt: not UTF-8 text (byte offset {len(TEXT)}"),
    "jsonl_not_utf8": lambda ctx: (prepare(ctx, "a.jsonl", b'{"text": "ok"}\n{"text": "\xc3("}\n'),
                                   "a.jsonl: not UTF-8 text (line 2, byte offset 25"),
    "jsonl_bad_json": lambda ctx: (prepare(ctx, "b.jsonl", b'{"text": "ok"}\n{oops\n'), "b.jsonl:2: not valid JSON"),
    "jsonl_no_text": lambda ctx: (prepare(ctx, "c.jsonl", b'{"body": "x"}\n'), 'c.jsonl:1: expected an object'),
    "vocab_far_above": lambda ctx: (prepare(ctx, "t.txt", TEXT, "--vocab-size", "4096"),
                                    "--vocab-size 4096: "),
    "vocab_below_bytes": lambda ctx: (prepare(ctx, "t.txt", TEXT, "--vocab-size", "100"), "--vocab-size 100"),
    "vocab_zero": lambda ctx: (prepare(ctx, "t.txt", TEXT, "--vocab-size", "0"), "--vocab-size 0: must be at least 1"),
    "val_too_short": lambda ctx: (prepare(ctx, "t.txt", TEXT, "--vocab-size", "270", "--seq-len", "4000"),
                                  "fewer than one window of --seq-len 4000"),
    "output_is_a_file": lambda ctx: (prepare(ctx, "t.txt", TEXT)[:-4] + ["--output", prepare(ctx, "t.txt", TEXT)[2]],
                                     "--output must be a directory"),
    "text_missing": lambda ctx: (["prepare-data", "--text", str(ctx.tmp / "none.txt")], "none.txt: no such file"),
    "text_dir_without_text": lambda ctx: (["prepare-data", "--text", str(ctx.tmp)], "no .txt or .jsonl files"),
}

# ---- pack, export, push and --init-from --------------------------------------------------------


def pack_argv(run, *extra, command="pack"):
    tail = ["--output", "OUT"] if command == "pack" else []
    return [command, "--out", run, "--checkpoint", "final", *tail, *extra]


def packing(command="pack", *extra, edit=None, needle="", fresh=False):
    """A pack/export command on a copy of the finished run (damaged by ``edit(final_dir)`` if given)."""
    def case(ctx):
        run = copy_run(ctx) if (edit or fresh) else ctx.run
        found = edit(os.path.join(run, "final")) if edit else needle
        argv = [str(ctx.tmp / "hf") if a == "OUT" else a for a in pack_argv(run, *extra, command=command)]
        return argv, found or needle
    return case


def mamba_meta(ckpt):
    return edit_meta(lambda m: (m["config"]["model"].update(mamba_layers=[0, 1]), "")[1])(ckpt)


def no_run_tokenizer(ckpt):
    os.remove(os.path.join(os.path.dirname(ckpt), "tokenizer.json"))
    return "no tokenizer.json with this run; pass --tokenizer FILE"


def unwritable_gguf(ctx, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(ctx.tmp) else real(p, mode, **k))
    return pack_argv(ctx.run, "--gguf", str(ctx.tmp / "m.gguf"), command="export"), "is not writable"


def model_folder(ctx, config=None, weights=None, extra=None):
    """A transformers-style folder for --init-from: a config.json for MODEL (or ``config``), and weights."""
    import nn

    d = ctx.tmp / "folder"
    d.mkdir()
    body = config if config is not None else json.dumps(nn.arch_llama.config_to_hf(nn.model_config(MODEL), 0, 0))
    (d / "config.json").write_text(body)
    if weights is not None:
        (d / "model.safetensors").write_bytes(weights)
    for name, data in (extra or {}).items():
        (d / name).write_bytes(data)
    return str(d)


def init_from(make, needle, *extra):
    def case(ctx):
        folder = make(ctx)
        return train_argv(ctx, "--init-from", folder, *extra), needle if "{" not in needle else needle.format(
            folder=folder)
    return case


def run_weights(ctx, edit=None) -> bytes:
    """The finished run's weights as safetensors bytes (changed by ``edit`` if given)."""
    from safetensors.numpy import save

    w = load_file(os.path.join(ctx.run, "final", "model.safetensors"))
    return save(edit(w) if edit else w)


def wrong_shapes(ctx):
    return model_folder(ctx, weights=run_weights(ctx, lambda w: {**w, "model.norm.weight": np.ones(5, np.float32)}))


PACK_CASES = {
    "pack_no_run_dir": lambda ctx: (["pack", "--out", str(ctx.tmp / "nope")], "nope: no such run directory"),
    "pack_empty_run_dir": lambda ctx: (["pack", "--out", str(ctx.tmp)], "no complete checkpoint here"),
    "pack_step_missing": lambda ctx: (["pack", "--out", ctx.run, "--checkpoint", "99"],
                                      "step-00000099: no such checkpoint"),
    "pack_checkpoint_not_a_word": lambda ctx: (["pack", "--out", ctx.run, "--checkpoint", "newest"],
                                               "newest: no such checkpoint"),
    "pack_output_is_a_file": lambda ctx: (pack_argv(ctx.run)[:-2] + ["--output", ctx.cfg],
                                          "--output must be a directory, but a file is there"),
    "pack_bad_name": packing("pack", "--name", "my..model", needle="--name 'my..model': a Hub name"),
    "pack_bad_username": packing("pack", "--username", "me/you", needle="--username 'me/you': a Hub name"),
    "pack_no_tokenizer": packing("pack", edit=no_run_tokenizer),
    "pack_nan_weights": packing("pack", edit=nan_weights),
    "pack_meta_not_json": packing("pack", edit=meta_text("{ broken")),
    "pack_non_llama": packing("pack", edit=mamba_meta, needle="is a Mamba1 (MambaForCausalLM) model, which has no "
                              "converter on this branch yet"),
    "export_non_llama": packing("export", "--gguf", "m.gguf", edit=mamba_meta,
                                needle="GGUF export supports Llama-architecture models; this is a Mamba1"),
    "export_gguf_dir_missing": lambda ctx: (pack_argv(ctx.run, "--gguf", str(ctx.tmp / "no" / "m.gguf"),
                                                      command="export"), "no does not exist"),
    "export_gguf_is_a_dir": lambda ctx: (pack_argv(ctx.run, "--gguf", str(ctx.tmp), command="export"),
                                         "is a directory; name the .gguf file"),
    "export_gguf_unwritable": unwritable_gguf,
    "export_step_missing": lambda ctx: (["export", "--out", ctx.run, "--checkpoint", "7", "--gguf",
                                         str(ctx.tmp / "m.gguf")], "step-00000007: no such checkpoint"),
    "push_missing_folder": lambda ctx: (["push", "--model", str(ctx.tmp / "hf" / "me" / "m")],
                                        "no such packed model folder (--model)"),
    "push_not_packed": lambda ctx: (["push", "--model", ctx.run, "--dry-run"], "not a packed model folder"),
    "init_from_missing": init_from(lambda ctx: str(ctx.tmp / "nope"), "nope: no such model folder"),
    "init_from_no_config": init_from(lambda ctx: str(ctx.tmp), "holds no config.json"),
    "init_from_config_not_json": init_from(lambda ctx: model_folder(ctx, config="{"), "config.json: not readable"),
    "init_from_other_architecture": init_from(
        lambda ctx: model_folder(ctx, config=json.dumps({"architectures": ["GPT2LMHeadModel"]})),
        "'GPT2LMHeadModel' is not one minigrad can load"),
    "init_from_config_key_missing": init_from(
        lambda ctx: model_folder(ctx, config=json.dumps({"architectures": ["LlamaForCausalLM"]})),
        "config.json: key 'hidden_size' is missing"),
    "init_from_pickle_weights": init_from(lambda ctx: model_folder(ctx, extra={"pytorch_model.bin": b"x"}),
                                          "pickle-based weights (.bin/.pt), which minigrad never loads"),
    "init_from_no_weights": init_from(lambda ctx: model_folder(ctx), "holds no model.safetensors"),
    "init_from_corrupt_weights": init_from(lambda ctx: model_folder(ctx, weights=b"\x05\x00garbage"),
                                           "model.safetensors: not a readable safetensors file"),
    "init_from_wrong_shapes": init_from(wrong_shapes, "do not fit its config.json"),
    "init_from_disagreeing_model": init_from(lambda ctx: model_folder(ctx, weights=run_weights(ctx)),
                                             "disagrees with --init-from",
                                             "--set", "model.num_layers=3"),
}

CASES = {f"{group}/{name}": case for group, cases in (
    ("config", CONFIG_CASES), ("cli", CLI_CASES), ("data", DATA_CASES), ("checkpoint", CHECKPOINT_CASES),
    ("sample", SAMPLE_CASES), ("prepare", PREPARE_CASES), ("pack", PACK_CASES)) for name, case in cases.items()}
NEEDS_MONKEYPATCH = {unreadable_data, unwritable_gguf}


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 60, len(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_exits_2_naming_the_culprit(name, ctx, capsys, monkeypatch):
    case = CASES[name]
    argv, needle = case(ctx, monkeypatch) if case in NEEDS_MONKEYPATCH else case(ctx)
    code = train.main(argv)  # an exception escaping here is the traceback a user would see
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr:\n{err}"
    assert needle in err, f"{needle!r} not in:\n{err}"
    assert err.count("error: ") == 1, err


def test_unreadable_data_file_is_named(ctx, capsys, monkeypatch):
    argv, needle = unreadable_data(ctx, monkeypatch)
    assert train.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_bad_bytes_can_be_replaced_on_request(ctx):
    argv = prepare(ctx, "a.txt", TEXT + b"\xff" + TEXT, "--vocab-size", "270", "--replace-bad-bytes")
    assert train.main(argv) == 0
    assert sorted(os.listdir(ctx.tmp / "prep")) == ["meta.json", "tokenizer.json", "train.bin", "val.bin"]


@pytest.mark.parametrize("name", ["config/not_utf8", "data/dev_zero", "checkpoint/resume_meta_no_train_state",
                                  "sample/top_p_five", "pack/export_non_llama", "pack/init_from_pickle_weights"])
def test_the_command_line_itself_prints_one_line_and_no_traceback(name, ctx):
    argv, needle = CASES[name](ctx)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *argv], capture_output=True, text=True,
                       timeout=120, cwd=ctx.tmp)
    assert r.returncode == 2 and "Traceback" not in r.stderr and needle in r.stderr, r.stderr
