"""Mamba models as model folders: Mamba1/Mamba2 runs pack into folders transformers' MambaForCausalLM /
Mamba2ForCausalLM load with our logits; transformers' own folders load here; Mamba3 and hybrids round-trip
through our own model_type; ``train.py sample`` reads every family's checkpoints."""

import json
import os

import numpy as np
import pytest
from packing_helpers import make_run

import minigrad as mg
import nn
from nn import pack

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {"hidden_size": 32, "num_layers": 2, "mamba_layers": [0, 1], "vocab_size": 300, "max_seq_len": 64}
FAMILIES = {
    "mamba1": {**SMALL, "mamba_d_state": 8},
    "mamba2": {**SMALL, "mamba2_num_heads": 4, "mamba2_head_dim": 16, "mamba2_state_size": 8,
               "mamba2_chunk_size": 8, "mamba2_n_groups": 2},
    "mamba3": {**SMALL, "mamba2_num_heads": 4, "mamba2_head_dim": 16, "mamba2_state_size": 8,
               "mamba2_chunk_size": 8, "mamba3_enabled": True, "mamba3_mimo_rank": 2},
    "hybrid": {**SMALL, "mamba_layers": [1], "num_heads": 4, "mamba2_num_heads": 4, "mamba2_head_dim": 16,
               "mamba2_state_size": 8, "mamba2_chunk_size": 8},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mamba-pack")
    return {name: make_run(root, model={**cfg, "name": f"tiny-{name}"}, trainer={"max_steps": 6, "save_interval": 0},
                           name=name) for name, cfg in FAMILIES.items()}


@pytest.mark.parametrize("name", ["mamba1", "mamba2"])
def test_packed_mamba_loads_in_transformers_with_our_logits(runs, tmp_path, name):
    folder = pack.pack_run(os.path.join(runs[name].run, "final"), str(tmp_path), "me", name, log=lambda m: None)
    hf = json.load(open(os.path.join(folder, "config.json")))
    assert hf["architectures"] == [{"mamba1": "MambaForCausalLM", "mamba2": "Mamba2ForCausalLM"}[name]]
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder).float().eval()
    ours, _ = nn.model_from_checkpoint(os.path.join(runs[name].run, "final"), backend="numpy")
    ids = np.random.default_rng(0).integers(0, 300, (2, 13))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids)).numpy() - theirs).max() <= 1e-4
    # greedy generation there gives our generation's tokens (transformers with its own recurrent cache)
    prompt = ids[:1, :5]
    with torch.no_grad():
        hf_tokens = ref.generate(torch.tensor(prompt), max_new_tokens=12, do_sample=False,
                                 attention_mask=torch.ones_like(torch.tensor(prompt)), pad_token_id=0).numpy()
    np.testing.assert_array_equal(ours.generate(prompt, 12, temperature=0.0), hf_tokens)
    back = nn.from_pretrained(folder)
    assert all(np.array_equal(v, back.state_dict()[k]) for k, v in ours.state_dict().items())


@pytest.mark.parametrize("name", ["mamba3", "hybrid"])
def test_mamba3_and_hybrids_round_trip_through_our_own_model_type(runs, tmp_path, name):
    folder = pack.pack_run(os.path.join(runs[name].run, "final"), str(tmp_path), "me", name, log=lambda m: None)
    hf = json.load(open(os.path.join(folder, "config.json")))
    assert hf["model_type"].startswith("minigrad_") and hf["minigrad_model"]["mamba_layers"]
    ours, _ = nn.model_from_checkpoint(os.path.join(runs[name].run, "final"))
    back = nn.from_pretrained(folder)
    assert all(np.array_equal(v, back.state_dict()[k]) for k, v in ours.state_dict().items())


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_from_pretrained_reads_a_transformers_folder(tmp_path, family):
    torch.manual_seed(0)
    if family == "mamba1":
        ref = transformers.MambaForCausalLM(transformers.MambaConfig(
            vocab_size=60, hidden_size=32, state_size=8, num_hidden_layers=2, time_step_rank=3))
    else:
        ref = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(
            vocab_size=60, hidden_size=32, state_size=8, num_hidden_layers=2, num_heads=8, head_dim=8, n_groups=2,
            chunk_size=8))
    ref.save_pretrained(tmp_path)  # transformers' own folder (no context length; time_step_limit's Infinity)
    ours = nn.from_pretrained(str(tmp_path))
    assert ours.config.mamba.family == family
    ids = np.random.default_rng(1).integers(0, 60, (2, 11))
    with torch.no_grad():
        theirs = ref.float().eval()(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours(mg.tensor(ids)).numpy() - theirs).max() <= 1e-4


def test_from_pretrained_refuses_mamba_settings_it_does_not_have(tmp_path):
    transformers.Mamba2ForCausalLM(transformers.Mamba2Config(
        vocab_size=60, hidden_size=32, state_size=8, num_hidden_layers=1, num_heads=8, head_dim=8,
        n_groups=1)).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "use_bias": True, "time_step_limit": [0.0, 1.0]}))
    with pytest.raises(nn.PretrainedError, match="use_bias = true.*time_step_limit"):
        nn.from_pretrained(str(tmp_path))
