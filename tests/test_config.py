"""Config loading and validation: every bad input gets one message naming the file and the key."""

import glob
import os
import subprocess
import sys

import pytest

from minigrad.config import ConfigError, parse_set
from train import check_vocab, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "seeds", "oxidizr-configs", "*.yaml")))
OXIDIZR_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "oxidizr", "*.yaml")))  # copied unchanged
OUR_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
PURE_MAMBA = {"nano_mamba2.yaml", "nano_mamba3.yaml", "nano_mamba3_mimo.yaml"}  # built; the rest need MLA / MoE

TINY = """
model:
  hidden_size: 32
  num_layers: 2
  num_heads: 4
  kv_heads: 2
  vocab_size: 300
  max_seq_len: 16
trainer:
  batch_size: 2
  max_steps: 3
"""


def write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def error_of(path, overrides=()):
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides))
    return str(e.value)


def test_tiny_config_loads_with_defaults_filled(tmp_path):
    cfg = load_config(write(tmp_path, TINY))
    assert cfg.model["hidden_size"] == 32 and cfg.model["kv_heads"] == 2
    assert cfg.trainer["learning_rate"] == 3e-4 and cfg.trainer["optimizer"] == "adamw"
    assert cfg.seq_len == 16  # trainer.seq_len null -> model.max_seq_len
    # what the model builder gets: only keys that are set
    assert "kv_latent_dim" not in cfg.model_args() and "mamba_layers" not in cfg.model_args()


@pytest.mark.parametrize("path", OUR_CONFIGS, ids=os.path.basename)
def test_our_configs_load_and_are_supported(path):
    cfg = load_config(path)
    assert cfg.model["vocab_size"] > 0


def test_oxidizr_configs_are_copied_unchanged():
    assert len(OXIDIZR_CONFIGS) == 6
    if not SEED_CONFIGS:
        pytest.skip("Oxidizr's seed configs are not beside this checkout")
    ours = {os.path.basename(p): open(p, "rb").read() for p in OXIDIZR_CONFIGS}
    assert ours == {os.path.basename(p): open(p, "rb").read() for p in SEED_CONFIGS}


@pytest.mark.parametrize("path", OXIDIZR_CONFIGS, ids=os.path.basename)
def test_oxidizr_configs_load_with_every_part_built(path):
    cfg = load_config(path)  # Mamba, MLA and MoE are all built: nothing is refused
    assert cfg.model["hidden_size"] > 0
    if os.path.basename(path) in PURE_MAMBA:
        assert cfg.model["mamba_layers"] == list(range(8))
    else:  # the hybrids: Mamba layers plus MLA + MoE attention blocks
        assert cfg.model["kv_latent_dim"] and cfg.model["num_experts"] and cfg.model["mamba_layers"]


def test_null_unbuilt_keys_are_accepted(tmp_path):
    path = write(tmp_path, TINY.replace("model:\n", "model:\n  kv_latent_dim: null\n  mamba_layers: []\n"
                                        "  num_experts: null\n"))
    assert load_config(path).model["mamba_layers"] == []


def test_unknown_key_gets_did_you_mean(tmp_path):
    path = write(tmp_path, TINY.replace("num_layers", "num_layer"))
    msg = error_of(path)
    assert path in msg and "model.num_layer" in msg and "did you mean 'num_layers'" in msg


def test_unknown_trainer_key_and_section(tmp_path):
    msg = error_of(write(tmp_path, TINY + "  learning_rat: 0.1\n"))
    assert "trainer.learning_rat" in msg and "did you mean 'learning_rate'" in msg
    msg = error_of(write(tmp_path, TINY + "traner:\n  seed: 1\n", "b.yaml"))
    assert "unknown section 'traner'" in msg and "did you mean 'trainer'" in msg


@pytest.mark.parametrize("line, key, expect", [
    ("  hidden_size: big", "model.hidden_size", "must be an integer"),
    ("  hidden_size: 32.5", "model.hidden_size", "must be an integer"),
    ("  num_layers: true", "model.num_layers", "must be an integer"),
    ("  tie_word_embeddings: 1", "model.tie_word_embeddings", "true or false"),
    ("  rope_theta: fast", "model.rope_theta", "must be a number"),
    ("  mamba_layers: 3", "model.mamba_layers", "must be a list"),
    ("  num_heads: 0", "model.num_heads", "at least 1"),
])
def test_wrong_types_and_ranges_in_model(tmp_path, line, key, expect):
    body = TINY.replace("model:\n", "model:\n" + line + "\n")
    # a later duplicate of the same key would win in YAML; put ours last in the section instead
    body = "\n".join(x for x in body.splitlines() if not (x.split(":")[0] == line.split(":")[0] and x != line))
    msg = error_of(write(tmp_path, body))
    assert key in msg and expect in msg and "cfg.yaml" in msg


@pytest.mark.parametrize("line, key, expect", [
    ("  learning_rate: fast", "trainer.learning_rate", "must be a number"),
    ("  betas: [0.9]", "trainer.betas", "list of 2"),
    ("  betas: [0.9, 1.5]", "trainer.betas", "[0, 1)"),
    ("  optimizer: adam", "trainer.optimizer", "did you mean 'adamw'"),
    ("  lr_schedule: cosin", "trainer.lr_schedule", "one of cosine, wsd, constant"),
    ("  batch_size: -1", "trainer.batch_size", "at least 1"),
    ("  grad_clip: -1.0", "trainer.grad_clip", "at least 0"),
    ("  dtype: f64", "trainer.dtype", "one of f32, f16, bf16"),
    ("  dtype: bf16", "trainer.dtype", "needs the GPU"),  # backend numba (the default) runs on the CPU
    ("  min_lr: 1.0", "trainer.min_lr", "above trainer.learning_rate"),
])
def test_wrong_types_and_values_in_trainer(tmp_path, line, key, expect):
    # a key written twice is refused: drop TINY's own line for the key under test
    body = "\n".join(x for x in TINY.splitlines() if x.split(":")[0] != line.split(":")[0])
    msg = error_of(write(tmp_path, body + "\n" + line + "\n"))
    assert key in msg and expect in msg and "cfg.yaml" in msg


def test_float_written_without_a_dot_is_a_float(tmp_path):
    # PyYAML reads 1e-3 as a string; a number-shaped string for a float key is taken as the number
    assert load_config(write(tmp_path, TINY + "  learning_rate: 1e-3\n")).trainer["learning_rate"] == 1e-3


def test_impossible_shapes_name_the_keys(tmp_path):
    msg = error_of(write(tmp_path, TINY.replace("hidden_size: 32", "hidden_size: 30")))
    assert "model.hidden_size" in msg and "num_heads" in msg and "divisible" in msg
    msg = error_of(write(tmp_path, TINY.replace("kv_heads: 2", "kv_heads: 3")))
    assert "model.kv_heads" in msg and "does not divide" in msg
    msg = error_of(write(tmp_path, TINY + "  seq_len: 17\n"))
    assert "trainer.seq_len" in msg and "max_seq_len = 16" in msg
    msg = error_of(write(tmp_path, TINY.replace("max_steps: 3", "max_steps: 0\n  num_epochs: 0")))
    assert "no end" in msg


def test_vocab_below_the_data_names_key_and_file(tmp_path):
    cfg = load_config(write(tmp_path, TINY))
    check_vocab(cfg, 299, "d.bin")
    with pytest.raises(ConfigError) as e:
        check_vocab(cfg, 300, "d.bin")
    assert "model.vocab_size" in str(e.value) and "d.bin" in str(e.value) and "301" in str(e.value)


def test_overrides_typed_and_attributed(tmp_path):
    path = write(tmp_path, TINY)
    key, value = parse_set("trainer.learning_rate=0.01")
    cfg = load_config(path, [(key, value, "--set trainer.learning_rate=0.01"), ("seed", 7, "--seed 7"),
                             ("model.tie_word_embeddings", parse_set("x=true")[1], "--set")])
    assert cfg.trainer["learning_rate"] == 0.01 and cfg.trainer["seed"] == 7 and cfg.model["tie_word_embeddings"]
    msg = error_of(path, [("model.hidden_size", parse_set("k=abc")[1], "--set model.hidden_size=abc")])
    assert "model.hidden_size (from --set model.hidden_size=abc) must be an integer" in msg
    msg = error_of(path, [("hiden_size", 3, "--set hiden_size=3")])
    assert "did you mean 'hidden_size'" in msg
    with pytest.raises(ConfigError):
        parse_set("no-equals-sign")


def test_yaml_syntax_error_and_missing_file(tmp_path):
    msg = error_of(write(tmp_path, "model:\n  hidden_size: [1,\n"))
    assert "not valid YAML" in msg and "line" in msg
    assert "not found" in error_of(str(tmp_path / "nope.yaml"))


def test_cli_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path):
    path = write(tmp_path, TINY.replace("num_heads", "num_head"))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-f", path], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {path}: unknown key model.num_head; did you mean 'num_heads'?"]


def test_cli_bad_flag_value_exits_2(tmp_path, capsys):
    import train

    path = write(tmp_path, TINY)
    assert train.main(["-f", path, "--set", "trainer.optimizer=sgd"]) == 2
    err = capsys.readouterr().err
    assert "trainer.optimizer (from --set trainer.optimizer=sgd)" in err and path in err
    assert train.main(["train", "-f", path, "--seq-len", "64"]) == 2
    assert "trainer.seq_len (from --seq-len 64) = 64 is above model.max_seq_len = 16" in capsys.readouterr().err


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    body = TINY.replace("num_layers: 2", "num_layer: 2").replace("num_heads: 4", "num_heads: four")
    body = body.replace("max_steps: 3", "max_steps: 3\n  optimizer: adam\n  learnin_rate: 0.1\n  grad_clip: -1")
    body += "traner:\n  seed: 1\n"
    msg = error_of(write(tmp_path, body))
    assert msg.startswith(f"{tmp_path / 'cfg.yaml'}: 6 problems:")
    for part in ("unknown key model.num_layer; did you mean 'num_layers'", "model.num_heads must be an integer",
                 "trainer.optimizer must be one of", "unknown key trainer.learnin_rate",
                 "trainer.grad_clip must be at least 0", "unknown section 'traner'"):
        assert part in msg, part


@pytest.mark.parametrize("line, expect", [
    ("  mamba2_num_heads: 8", "model.mamba2_num_heads set but model.mamba_layers is empty"),
    ("  mamba_d_state: 16", "model.mamba_d_state set but model.mamba_layers is empty"),
    ("  mamba3_mimo_rank: 2", "model.mamba3_mimo_rank set but model.mamba3_enabled is not"),
    ("  experts_per_tok: 2", "model.experts_per_tok set but model.num_experts is not"),
])
def test_keys_that_do_nothing_here_are_warned_about(tmp_path, line, expect):
    cfg = load_config(write(tmp_path, TINY.replace("model:\n", f"model:\n{line}\n")))
    assert any(expect in w for w in cfg.warnings), cfg.warnings


def test_trainer_keys_that_do_nothing_are_warned_about(tmp_path):
    cfg = load_config(write(tmp_path, TINY + "  load_balance_alpha: 0.01\n  group_size: 4\n"))
    assert any("trainer.load_balance_alpha is set but the model has no experts" in w for w in cfg.warnings)
    assert any("GRPO" in w for w in cfg.warnings)
    assert not load_config(write(tmp_path, TINY, "quiet.yaml")).warnings


def test_a_mamba1_typo_is_never_pointed_at_a_mamba2_key(tmp_path):
    msg = error_of(write(tmp_path, TINY.replace("model:\n", "model:\n  mamba_d_stat: 16\n")))
    assert "did you mean 'mamba_d_state'" in msg
    msg = error_of(write(tmp_path, TINY.replace("model:\n", "model:\n  mamba_state_size: 16\n")))
    assert "mamba2_" not in msg and "unknown key model.mamba_state_size" in msg


def test_non_finite_numbers_are_refused(tmp_path):
    msg = error_of(write(tmp_path, TINY + "  learning_rate: .nan\n"))
    assert "trainer.learning_rate must be a finite number" in msg
    msg = error_of(write(tmp_path, TINY), [("trainer.learning_rate", float("inf"), "--lr inf")])
    assert "trainer.learning_rate (from --lr inf) must be a finite number" in msg


@pytest.mark.parametrize("device, backend, expect", [
    ("gpu", None, "cupy"), ("cpu", None, "numba"), ("cpu", "numpy", "numpy"), (None, "numpy", "numpy"),
    (None, None, "numba")])
def test_target_device_and_backend_are_one_choice(tmp_path, device, backend, expect):
    lines = "".join(f"  {k}: {v}\n" for k, v in (("target_device", device), ("backend", backend)) if v)
    cfg = load_config(write(tmp_path, TINY + lines))
    assert cfg.trainer["backend"] == expect and "target_device" not in cfg.trainer


def test_target_device_contradicting_the_backend_is_refused(tmp_path):
    msg = error_of(write(tmp_path, TINY + "  target_device: gpu\n  backend: numpy\n"))
    assert "trainer.backend = 'numpy' does not run on trainer.target_device = 'gpu'" in msg


@pytest.mark.parametrize("argv", [["grpo"], ["grpo", "--group-size", "4"], ["-f", "CFG", "grpo"],
                                  ["-f", "CFG", "--headless", "grpo"]])
def test_subcommands_not_built_yet_say_so_by_name(tmp_path, capsys, monkeypatch, argv):
    """The mechanism for a subcommand that is announced but not built (pack, push and export were, once)."""
    import train

    monkeypatch.setitem(train.NOT_BUILT_YET, "grpo", "GRPO fine-tuning")
    argv = [write(tmp_path, TINY) if a == "CFG" else a for a in argv]
    assert train.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: train.py grpo: GRPO fine-tuning is not built yet"


@pytest.mark.parametrize("argv,command", [(["pack", "--out", "R"], "pack"), (["-f", "CFG", "pack"], "pack"),
                                          (["--private", "push", "--dry-run"], "push"),
                                          (["-f", "CFG", "export", "--gguf", "m.gguf"], "export")])
def test_pack_push_and_export_are_subcommands_in_either_position(tmp_path, argv, command):
    import train

    argv = [write(tmp_path, TINY) if a == "CFG" else a for a in argv]
    assert train.with_subcommand(argv)[0] == command
    assert "not built yet" not in train.build_parser().format_help()
    assert train.build_parser().parse_args(["pack", "--checkpoint-dir", "R"]).out == "R"  # Oxidizr's spelling
