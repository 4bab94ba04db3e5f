"""train.py export --gguf: the file read back with the gguf package's GGUFReader (every tensor, its shape and
type, the metadata llama.cpp reads, the tokenizer) and with transformers' own GGUF loader, which undoes the
q/k permutation its own way; neither reader is ours."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from packing_helpers import make_run  # noqa: E402

import minigrad as mg  # noqa: E402
import nn  # noqa: E402
import train  # noqa: E402
from minigrad.data.tokenizer import EOT, load_tokenizer  # noqa: E402

TEXT = "def norm(self):\n    return  (self.x ** 2)  # é ü 日本\t!"
PER_BLOCK = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = make_run(tmp_path_factory.mktemp("gguf"))
    base.f32, base.f16 = os.path.join(base.root, "m.gguf"), os.path.join(base.root, "m16.gguf")
    assert train.main(["export", "--out", base.run, "--checkpoint", "final", "--gguf", base.f32]) == 0
    assert train.main(["export", "--out", base.run, "--checkpoint", "final", "--gguf", base.f16, "--f16"]) == 0
    base.model, _ = nn.model_from_checkpoint(os.path.join(base.run, "final"), backend="numpy")
    return base


def field(reader, key):
    return reader.fields[key].contents()


def test_metadata_is_what_llama_cpp_reads(exported):
    c = exported.model.config
    for path, file_type in ((exported.f32, 0), (exported.f16, 1)):
        r = gguf.GGUFReader(path)
        expect = {"general.architecture": "llama", "general.file_type": file_type, "llama.block_count": c.num_layers,
                  "llama.context_length": c.max_seq_len, "llama.embedding_length": c.hidden_size,
                  "llama.feed_forward_length": c.ffn_size, "llama.attention.head_count": c.num_heads,
                  "llama.attention.head_count_kv": c.n_kv_heads, "llama.rope.freq_base": c.rope_theta,
                  "llama.vocab_size": c.vocab_size, "llama.rope.dimension_count": c.head_dim,
                  "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2"}
        assert {k: field(r, k) for k in expect} == expect
        assert field(r, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(c.rms_norm_eps, rel=1e-6)
        eot = load_tokenizer(exported.tokenizer).token_to_id(EOT)
        assert field(r, "tokenizer.ggml.bos_token_id") == field(r, "tokenizer.ggml.eos_token_id") == eot


def test_every_tensor_has_its_gguf_name_shape_and_type(exported):
    c, ours = exported.model.config, exported.model.state_dict()
    want = {"token_embd.weight", "output_norm.weight", "output.weight"} | {
        f"blk.{i}.{n}.weight" for i in range(c.num_layers) for n in PER_BLOCK}
    for path, half in ((exported.f32, False), (exported.f16, True)):
        tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
        assert set(tensors) == want and len(tensors) == len(ours)
        for t in tensors.values():
            kind = "F16" if half and len(t.shape) == 2 else "F32"  # norms stay float32
            assert t.tensor_type.name == kind, t.name
        # GGUF lists dimensions fastest-first (ne0 = columns): the reverse of the row-major shape
        assert list(tensors["token_embd.weight"].shape) == [c.hidden_size, c.vocab_size]
        assert list(tensors["blk.0.attn_k.weight"].shape) == [c.hidden_size, c.n_kv_heads * c.head_dim]
        assert list(tensors["blk.1.ffn_down.weight"].shape) == [c.ffn_size, c.hidden_size]


def gguf_weights_by_transformers(path):
    """transformers' GGUF loader: llama.cpp names mapped back, q/k un-permuted by its LlamaTensorProcessor."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    hf_cfg = load_gguf_checkpoint(path, return_tensors=False)["config"]
    config = transformers.LlamaConfig(**{k: v for k, v in hf_cfg.items() if k not in ("model_type",
                                                                                         "_model_name_or_path")})
    model = transformers.LlamaForCausalLM(config).float().eval()
    tensors = load_gguf_checkpoint(path, return_tensors=True, model_to_load=model)["tensors"]
    return model, {k: np.asarray(v) for k, v in tensors.items()}


def test_transformers_reads_the_gguf_back_to_our_weights_and_logits(exported):
    ours = exported.model.state_dict()
    for path, half in ((exported.f32, False), (exported.f16, True)):
        ref, weights = gguf_weights_by_transformers(path)
        assert set(weights) == set(ours)
        for k, w in ours.items():
            expect = w.astype(np.float16) if half and w.ndim == 2 else w  # f16: exactly our weights, rounded
            assert np.array_equal(weights[k], expect), k
        ref.load_state_dict({k: torch.tensor(v.astype(np.float32)) for k, v in weights.items()})
        ids = np.random.default_rng(0).integers(0, 290, size=(2, 30))
        with torch.no_grad():
            theirs = ref(torch.tensor(ids)).logits.numpy()
        diff = np.abs(exported.model(mg.tensor(ids, backend="numpy")).numpy() - theirs).max()
        assert diff <= (5e-2 if half else 1e-4), diff


def test_q_and_k_rows_are_in_llama_cpps_interleaved_rotary_layout(exported):
    """llama.cpp rotates adjacent rows (2i, 2i+1) of each head; transformers rotates rows i and i + head_dim/2."""
    c, ours = exported.model.config, exported.model.state_dict()
    tensors = {t.name: t.data for t in gguf.GGUFReader(exported.f32).tensors}
    d = c.head_dim
    for ours_name, gguf_name, heads in (("self_attn.q_proj", "attn_q", c.num_heads),
                                        ("self_attn.k_proj", "attn_k", c.n_kv_heads)):
        hf, g = ours[f"model.layers.1.{ours_name}.weight"], tensors[f"blk.1.{gguf_name}.weight"]
        for h in range(heads):
            for i in range(d // 2):
                assert np.array_equal(g[h * d + 2 * i], hf[h * d + i])
                assert np.array_equal(g[h * d + 2 * i + 1], hf[h * d + d // 2 + i])
    assert np.array_equal(tensors["blk.0.attn_v.weight"], ours["model.layers.0.self_attn.v_proj.weight"])


def test_the_gguf_tokenizer_encodes_like_ours(exported):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    r = gguf.GGUFReader(exported.f32)
    tokens, types, merges = (field(r, f"tokenizer.ggml.{k}") for k in ("tokens", "token_type", "merges"))
    ours = load_tokenizer(exported.tokenizer)
    assert len(tokens) == exported.model.config.vocab_size  # padded to the model's vocabulary
    assert types[ours.token_to_id(EOT)] == gguf.TokenType.CONTROL
    assert all(types[i] == gguf.TokenType.UNUSED for i in range(ours.get_vocab_size(), len(tokens)))
    with open(exported.tokenizer) as f:
        assert [m.split(" ") for m in merges] == [list(m) for m in json.load(f)["model"]["merges"]]
    vocab = {t: i for i, t in enumerate(tokens) if types[i] != gguf.TokenType.UNUSED}
    rebuilt = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
    rebuilt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rebuilt.decoder = decoders.ByteLevel()
    ids = ours.encode(TEXT, add_special_tokens=False).ids
    assert rebuilt.encode(TEXT).ids == ids and rebuilt.decode(ids) == TEXT
    # and transformers' GGUF tokenizer converter, which also adds the bos token llama.cpp is told to add
    hf = transformers.AutoTokenizer.from_pretrained(os.path.dirname(exported.f32),
                                                    gguf_file=os.path.basename(exported.f32))
    assert hf.encode(TEXT, add_special_tokens=False) == ids and hf.encode(TEXT)[0] == ours.token_to_id(EOT)


def test_a_tied_transformers_folder_exports_without_an_output_tensor(exported, tmp_path):
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "tied")
    shutil.copy(exported.tokenizer, tmp_path / "tied" / "tokenizer.json")
    out = str(tmp_path / "tied.gguf")
    assert train.main(["export", "--checkpoint", str(tmp_path / "tied"), "--gguf", out]) == 0
    names = {t.name for t in gguf.GGUFReader(out).tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # llama.cpp reuses the embedding
    _, weights = gguf_weights_by_transformers(out)
    ours = nn.from_pretrained(str(tmp_path / "tied")).state_dict()
    assert all(np.array_equal(weights[k], v) for k, v in ours.items())
