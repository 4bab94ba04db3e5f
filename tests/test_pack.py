"""train.py pack and nn.from_pretrained against transformers: a packed run loads in transformers offline with
equal logits, greedy tokens and tokenization; transformers' own folders load into minigrad; --init-from starts
a run from one. The references are transformers' classes, never our own output."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from packing_helpers import make_run  # noqa: E402

import minigrad as mg  # noqa: E402
import nn  # noqa: E402
import train  # noqa: E402
from minigrad.data.tokenizer import EOT, load_tokenizer  # noqa: E402
from minigrad.io import load_checkpoint  # noqa: E402
from nn import pack  # noqa: E402

FILES = {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "training_config.json", "loss_curve.png", "README.md"}
TEXT = "def norm(self):\n    return  (self.x ** 2)  # é ü 日本\t!"


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    base = make_run(tmp_path_factory.mktemp("pack"))
    out = os.path.join(base.root, "hf")
    assert train.main(["pack", "--out", base.run, "--checkpoint", "final", "--username", "me", "--name", "tiny",
                       "--output", out]) == 0
    base.folder = os.path.join(out, "me", "tiny")
    return base


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_pack_writes_a_transformers_folder_with_a_model_card(packed):
    assert set(os.listdir(packed.folder)) == FILES
    config = transformers.AutoConfig.from_pretrained(packed.folder)
    assert type(config).__name__ == "LlamaConfig" and config.architectures == ["LlamaForCausalLM"]
    eot = load_tokenizer(packed.tokenizer).token_to_id(EOT)
    assert (config.bos_token_id, config.eos_token_id, config.tie_word_embeddings) == (eot, eot, False)
    with open(os.path.join(packed.folder, "README.md")) as f:
        card = f.read()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-generation"
    assert {"license", "tags"} <= set(front) and "llama" in front["tags"]
    meta = load_checkpoint(os.path.join(packed.run, "final")).meta
    params = nn.from_pretrained(packed.folder).num_parameters()
    for fact in (f"{params:,} parameters", "## Architecture", f"steps: {meta['step']}", "![loss curve](loss_curve.png)",
                 f"{meta['metrics']['val_loss']:.4f}", f"{meta['metrics']['loss']:.4f}", "prepared from"):
        assert fact in card, fact
    with open(os.path.join(packed.folder, "training_config.json")) as f:
        assert json.load(f)["model"] == meta["config"]["model"]
    with open(os.path.join(packed.folder, "loss_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_pack_finds_the_run_through_the_config_as_sample_does(packed, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": yaml.safe_load(open(packed.cfg))["model"],
                                   "trainer": {"checkpoint_dir": packed.run}}))
    assert train.main(["pack", "-f", str(cfg), "--checkpoint", "best", "--username", "me", "--output",
                       str(tmp_path)]) == 0
    best = load_checkpoint(os.path.join(packed.run, "best"))
    with open(tmp_path / "me" / "tiny-pack" / "training_config.json") as f:  # named after model.name
        assert json.load(f)["step"] == best.meta["step"]


def test_transformers_gives_our_logits_and_greedy_tokens(packed, capsys):
    ref = transformers.AutoModelForCausalLM.from_pretrained(packed.folder).eval()
    ours, _ = nn.model_from_checkpoint(os.path.join(packed.run, "final"), backend="numpy")
    ids = np.random.default_rng(0).integers(0, 290, size=(2, 40))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    diff = np.abs(ours(mg.tensor(ids, backend="numpy")).numpy() - theirs).max()
    assert diff <= 1e-4, diff

    tok = transformers.AutoTokenizer.from_pretrained(packed.folder)
    prompt = [tok.eos_token_id] + tok.encode("def ", add_special_tokens=False)
    with torch.no_grad():
        # (an explicit mask: with eos_token_id=None, generate would take the leading end-of-text id for padding)
        hf = ref.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                          max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=tok.eos_token_id).numpy()
    assert np.array_equal(ours.generate(np.array([prompt]), 24, temperature=0), hf)

    # the command line: `sample --temperature 0` prints the text transformers' greedy tokens decode to
    capsys.readouterr()
    assert train.main(["sample", "--out", packed.run, "--checkpoint", "final", "--temperature", "0", "--prompt",
                       "def ", "--max-new-tokens", "24", "--backend", "numpy"]) == 0
    new = hf[0, len(prompt):].tolist()
    new = new[:new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
    assert capsys.readouterr().out == "def " + tok.decode(new) + "\n"


def test_auto_tokenizer_encodes_and_decodes_like_ours(packed):
    tok = transformers.AutoTokenizer.from_pretrained(packed.folder)
    ours = load_tokenizer(packed.tokenizer)
    assert isinstance(tok, transformers.PreTrainedTokenizerFast)
    ids = ours.encode(TEXT, add_special_tokens=False).ids
    assert tok.encode(TEXT) == ids and tok.decode(ids) == ours.decode(ids) == TEXT
    assert tok.eos_token == tok.bos_token == EOT and tok.eos_token_id == ours.token_to_id(EOT)


def test_from_pretrained_round_trips_a_packed_folder(packed):
    ours, _ = nn.model_from_checkpoint(os.path.join(packed.run, "final"), backend="numpy")
    back = nn.from_pretrained(packed.folder, backend="numpy")
    a, b = ours.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ids = np.arange(30)[None] % 290
    assert np.array_equal(ours(mg.tensor(ids)).numpy(), back(mg.tensor(ids)).numpy())


def random_llama(tied: bool, kv: int, seed: int = 0):
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=88, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=kv, max_position_embeddings=64,
                                   rms_norm_eps=1e-6, rope_theta=500.0, tie_word_embeddings=tied)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():  # norms away from 1, so they matter
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 1 else 0.05) + (1.0 if p.ndim == 1 else 0.0))
    return model


@pytest.mark.parametrize("tied,kv,dtype,shard", [(False, 2, "float32", None), (True, 6, "float32", None),
                                                 (False, 3, "bfloat16", None), (True, 2, "float32", "40KB")])
def test_from_pretrained_reads_a_transformers_save_pretrained_folder(tmp_path, tied, kv, dtype, shard):
    saved = random_llama(tied, kv).to(getattr(torch, dtype))
    saved.save_pretrained(tmp_path, **({"max_shard_size": shard} if shard else {}))
    assert (os.path.exists(tmp_path / "model.safetensors.index.json")) == bool(shard)
    # the reference: a float32 model holding the saved weights (bfloat16 widens to float32 exactly); not
    # saved.float(), whose rotary inv_freq buffer went through bfloat16 too
    ref = random_llama(tied, kv)
    ref.load_state_dict({k: v.float() for k, v in saved.state_dict().items()})
    ours = nn.from_pretrained(str(tmp_path), backend="numpy")
    assert ours.config.tie_word_embeddings == tied and ours.config.n_kv_heads == kv
    assert ours.config.rope_theta == 500.0 and ours.config.rms_norm_eps == 1e-6
    ids = np.random.default_rng(1).integers(0, 300, size=(2, 17))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids, backend="numpy")).numpy() - theirs).max() <= 1e-4


def test_from_pretrained_refuses_what_it_cannot_build(tmp_path):
    random_llama(False, 2).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "hidden_act": "gelu", "attention_bias": True}))
    with pytest.raises(nn.PretrainedError, match="hidden_act = 'gelu'.*attention_bias = True"):
        nn.from_pretrained(str(tmp_path))
    path.write_text(json.dumps({**cfg, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(nn.PretrainedError, match="'GPT2LMHeadModel' is not one minigrad can load"):
        nn.from_pretrained(str(tmp_path))


def test_init_from_starts_a_fresh_run_from_the_folders_weights(packed, tmp_path):
    hf = tmp_path / "hf-model"
    random_llama(False, 2).save_pretrained(hf)
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"hidden_size": 48}, "trainer": {
        "batch_size": 2, "max_steps": 2, "learning_rate": 0.0, "eval_interval": 0, "eval_batches": 1,
        "save_interval": 0, "backend": "numpy", "sample_tokens": 0, "seq_len": 16}}))
    run = str(tmp_path / "ft")
    assert train.main(["-f", str(cfg), "-d", packed.data, "--out", run, "--init-from", str(hf), "--headless"]) == 0
    final = load_checkpoint(os.path.join(run, "final"))
    start = nn.from_pretrained(str(hf)).state_dict()
    assert all(np.array_equal(final.model[k], start[k]) for k in start)  # learning rate 0: still the folder's
    assert final.meta["init_from"] == str(hf) and final.meta["config"]["model"]["num_heads"] == 6
    # and it trains: a few steps with a real learning rate, from the packed run's own folder
    run2 = str(tmp_path / "ft2")
    assert train.main(["-d", packed.data, "--out", run2, "--init-from", packed.folder, "--max-steps", "3",
                       "--backend", "numpy", "--seq-len", "32", "--set", "trainer.eval_batches=1", "--headless"]) == 0
    assert load_checkpoint(os.path.join(run2, "final")).meta["step"] == 3


def test_init_from_refuses_a_model_section_that_disagrees(packed, tmp_path, capsys):
    code = train.main(["-f", packed.cfg, "-d", packed.data, "--out", str(tmp_path / "r"), "--init-from",
                       packed.folder, "--set", "model.hidden_size=64", "--set", "model.rope_theta=99"])
    err = capsys.readouterr().err
    assert code == 2 and "disagrees with --init-from" in err
    assert "model.hidden_size (from --set model.hidden_size=64) 64 vs 32" in err and "model.rope_theta" in err


def test_without_matplotlib_the_card_says_why_there_is_no_curve(packed, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    folder = pack.pack_run(os.path.join(packed.run, "final"), str(tmp_path), "me", "nocurve", log=lambda m: None)
    assert set(os.listdir(folder)) == FILES - {"loss_curve.png"}
    card = open(os.path.join(folder, "README.md")).read()
    assert "No loss curve: matplotlib is not installed" in card and "![loss curve]" not in card


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_checkpoint_choice_pick_list_and_headless_order(packed, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(packed.run, run)
    out = io.StringIO()
    assert pack.choose_checkpoint(None, run, Terminal("3\n"), out) == os.path.join(run, "step-00000020")
    listing = out.getvalue()
    assert "1) final" in listing and "2) best" in listing and "val loss" in listing and "ago" in listing
    assert pack.choose_checkpoint(None, run, Terminal("x\n\n"), io.StringIO()) == os.path.join(run, "final")
    assert pack.choose_checkpoint(None, run, io.StringIO()) == os.path.join(run, "final")  # not a terminal
    shutil.rmtree(os.path.join(run, "final"))
    assert pack.choose_checkpoint(None, run, io.StringIO()) == os.path.join(run, "best")
    shutil.rmtree(os.path.join(run, "best"))
    assert pack.choose_checkpoint(None, run, io.StringIO()) == os.path.join(run, "step-00000020")
    assert pack.choose_checkpoint("10", run) == os.path.join(run, "step-00000010")


def test_a_failed_repack_leaves_the_earlier_folder_intact(packed, tmp_path, monkeypatch):
    ckpt = os.path.join(packed.run, "final")
    folder = pack.pack_run(ckpt, str(tmp_path), "me", "m", log=lambda m: None)
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", os.path.join(folder, "README.md"))

    monkeypatch.setattr(pack, "model_card", disk_full)
    with pytest.raises(train.CheckpointWriteError, match="No space left on device.*is intact"):
        pack.pack_run(ckpt, str(tmp_path), "me", "m", log=lambda m: None)
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before
    assert os.listdir(tmp_path / "me") == ["m"]  # no temporary folder left behind


def test_a_family_of_our_own_model_type_slots_in_as_one_table_entry(packed, tmp_path, monkeypatch):
    """What a hybrid or Mamba3 entry will be: our own model_type, the model section inside config.json."""
    from nn import pretrained

    own = pretrained.Architecture(
        "llama", "MinigradTestForCausalLM", "minigrad_test", nn.CausalLM,
        pretrained.own_config_to_hf("MinigradTestForCausalLM", "minigrad_test"), pretrained.own_config_from_hf,
        lambda s, c: dict(s), lambda w, c: dict(w), in_transformers=False)
    monkeypatch.setitem(pretrained.ARCHITECTURES, "llama", own)
    folder = pack.pack_run(os.path.join(packed.run, "final"), str(tmp_path), "me", "own", log=lambda m: None)
    hf = json.load(open(os.path.join(folder, "config.json")))
    assert hf["model_type"] == "minigrad_test" and hf["minigrad_model"]["hidden_size"] == 32
    assert "library_name: minigrad" in open(os.path.join(folder, "README.md")).read()
    back = nn.from_pretrained(folder)
    ours, _ = nn.model_from_checkpoint(os.path.join(packed.run, "final"))
    assert all(np.array_equal(v, back.state_dict()[k]) for k, v in ours.state_dict().items())
