"""Our Mamba1 and Mamba2 against transformers' MambaForCausalLM and Mamba2ForCausalLM (their pure-torch path
on the CPU, float32): the same state_dict loads one to one, and the logits and every parameter's gradient
agree."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import minigrad as mg  # noqa: E402
import nn  # noqa: E402

VOCAB = 97


def perturbed(model):
    """transformers' init leaves norms at 1, D at 1 and A_log at log(1..N): perturb everything so that
    every parameter matters and a transposed or misplaced one shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "dt_bias", "dt_proj.bias")):
                p.add_(torch.randn_like(p) * 0.2)
            elif p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.3 + 1.0)
            else:
                p.copy_(torch.randn_like(p) * 0.1)
    return model


def mamba1_pair(tied, backend):
    hf = transformers.MambaConfig(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                                  conv_kernel=4, time_step_rank=3, tie_word_embeddings=tied)
    ours = dict(vocab_size=VOCAB, hidden_size=32, num_layers=2, mamba_layers=[0, 1], mamba_d_state=8, mamba_d_conv=4,
                mamba_expand=2, mamba_dt_rank=3, tie_word_embeddings=tied, max_seq_len=64)
    return transformers.MambaForCausalLM(hf), nn.build_model(ours, backend=backend)


def mamba2_pair(tied, backend, groups, chunk):
    hf = transformers.Mamba2Config(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                                   conv_kernel=4, num_heads=8, head_dim=8, n_groups=groups, chunk_size=chunk,
                                   tie_word_embeddings=tied)
    ours = dict(vocab_size=VOCAB, hidden_size=32, num_layers=2, mamba_layers=[0, 1], mamba2_state_size=8,
                mamba2_conv_kernel=4, mamba2_expand=2, mamba2_num_heads=8, mamba2_head_dim=8, mamba2_n_groups=groups,
                mamba2_chunk_size=chunk, tie_word_embeddings=tied, max_seq_len=64)
    return transformers.Mamba2ForCausalLM(hf), nn.build_model(ours, backend=backend)


CASES = [
    # (family, tied, n_groups, chunk, seq): sequence lengths that are not a multiple of the chunk
    ("mamba1", False, 1, None, 13),
    ("mamba1", True, 1, None, 6),
    ("mamba2", False, 1, 4, 13),
    ("mamba2", True, 2, 4, 11),
    ("mamba2", False, 4, 5, 12),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("family,tied,groups,chunk,seq", CASES)
def test_logits_and_grads_match_transformers(backend, family, tied, groups, chunk, seq):
    torch.manual_seed(0)
    ref, ours = mamba1_pair(tied, backend) if family == "mamba1" else mamba2_pair(tied, backend, groups, chunk)
    ref = perturbed(ref.float()).train()
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})  # strict: names map 1:1

    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, VOCAB, size=(3, seq)), rng.integers(0, VOCAB, size=(3, seq))
    out = ref(torch.tensor(ids))
    ref_loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, VOCAB), torch.tensor(targets).reshape(-1))
    ref_loss.backward()
    logits = ours(mg.tensor(ids, backend=backend))
    loss = mg.cross_entropy(logits, mg.tensor(targets, backend=backend))
    loss.backward()

    assert np.abs(logits.numpy() - out.logits.detach().numpy()).max() <= 1e-4
    assert abs(loss.item() - ref_loss.item()) <= 1e-5
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    ours_grads = dict(ours.named_parameters())
    assert set(ours_grads) == set(ref_grads)
    for name, p in ours_grads.items():
        g, rg = p.grad.numpy(), ref_grads[name]
        rel = np.abs(g - rg).max() / max(np.abs(rg).max(), 1e-12)
        assert rel <= 1e-4, f"{name}: relative gradient error {rel:.2e}"


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_greedy_generation_matches_transformers(family):
    """Their cached generation against ours (our cache: conv state + SSM state, one recurrent step a token)."""
    torch.manual_seed(1)
    ref, ours = mamba1_pair(False, "numpy") if family == "mamba1" else mamba2_pair(False, "numpy", 2, 4)
    ref = perturbed(ref.float()).eval()
    with torch.no_grad():  # larger weights: well-separated logits, no near-ties in the argmax
        for p in ref.parameters():
            if p.ndim == 2:
                p.mul_(5)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    prompt = np.array([[4, 1, 30, 2, 77]])
    theirs = ref.generate(torch.tensor(prompt), max_new_tokens=10, do_sample=False, min_new_tokens=10,
                          pad_token_id=0, eos_token_id=None).numpy()
    assert np.array_equal(ours.generate(prompt, 10, temperature=0), theirs)


def test_initialisation_follows_transformers():
    """A_log = log(1..N), D = 1, softplus(dt bias) within [dt_min, dt_max], conv bias 0; what transformers sets."""
    m = nn.build_model(dict(vocab_size=50, hidden_size=32, num_layers=2, mamba_layers=[0, 1]), seed=3)
    mixer = m.backbone.layers[0].mixer
    np.testing.assert_allclose(mixer.A_log.numpy(), np.log(np.arange(1, 17))[None].repeat(64, 0), rtol=1e-6)
    assert (mixer.D.numpy() == 1).all() and (mixer.conv1d.bias.numpy() == 0).all()
    dt = np.log1p(np.exp(mixer.dt_proj.bias.numpy()))
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.std() > 0.01
    bound = 2 ** -0.5   # dt_rank = ceil(32 / 16) = 2: uniform within +-dt_rank^-0.5
    assert np.abs(mixer.dt_proj.weight.numpy()).max() <= bound
    m2 = nn.build_model(dict(vocab_size=50, hidden_size=32, num_layers=1, mamba_layers=[0], mamba2_head_dim=16))
    mixer2 = m2.backbone.layers[0].mixer
    np.testing.assert_allclose(mixer2.A_log.numpy(), np.log([1.0, 2.0, 3.0, 4.0]), rtol=1e-6)
    assert 1e-3 * 0.999 <= np.log1p(np.exp(mixer2.dt_bias.numpy())).min()
