"""The Mamba side of a model: the block (pre-norm residual around a mixer) and, for a model whose layers
are all Mamba blocks, the backbone with transformers' ``MambaModel`` / ``Mamba2Model`` names:

    backbone.embeddings, backbone.layers.{i}.norm, backbone.layers.{i}.mixer.*, backbone.norm_f

so a state_dict maps one to one onto ``MambaForCausalLM`` and ``Mamba2ForCausalLM``. In a hybrid (some layers
attention) the Mamba blocks sit in the Llama stack with the same inner names: ``model.layers.{i}.norm``,
``model.layers.{i}.mixer.*``.
"""

from __future__ import annotations

from minigrad import Tensor
from minigrad.backend import Backend

from .cache import ModelCache
from .config import ModelConfig
from .layers import Embedding, RMSNorm
from .mamba import MambaMixer
from .mamba2 import Mamba2Mixer
from .mamba3 import Mamba3Mixer
from .module import Module, ModuleList

MIXERS = {"mamba1": MambaMixer, "mamba2": Mamba2Mixer, "mamba3": Mamba3Mixer}


class MambaBlock(Module):
    """x + mixer(rms_norm(x)): a Mamba layer has no MLP of its own."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, backend: Backend):
        super().__init__()
        dims = cfg.mamba
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)
        kw = {} if dims.family == "mamba1" else {"eps": cfg.rms_norm_eps}
        self.mixer = MIXERS[dims.family](dims, layer_idx, backend, **kw)

    def forward(self, x: Tensor, cos=None, sin=None, cache=None) -> Tensor:
        # cos, sin: the attention blocks' rotary tables, passed to every block of a hybrid stack; unused here
        return x + self.mixer(self.norm(x), cache)

    def new_cache(self, batch: int, max_len: int, dtype):
        return self.mixer.new_cache(batch, dtype)  # a fixed-size state, whatever the length


class MambaBackbone(Module):
    """Embedding, Mamba blocks and the final norm of a pure Mamba model (transformers' ``backbone.``)."""

    def __init__(self, cfg: ModelConfig, backend: Backend):
        super().__init__()
        self.embeddings = Embedding(cfg.vocab_size, cfg.hidden_size, backend=backend)
        self.layers = ModuleList([MambaBlock(cfg, i, backend) for i in range(cfg.num_layers)])
        self.norm_f = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, backend=backend)

    @property
    def embed_tokens(self) -> Embedding:
        return self.embeddings

    def forward(self, ids: Tensor, cache: ModelCache | None = None) -> Tensor:
        x = self.embeddings(ids)                                          # (B, T, hidden)
        for i, block in enumerate(self.layers):
            x = block(x, cache=None if cache is None else cache.for_layer(i))
        if cache is not None:
            cache.advance(ids.shape[1])
        return self.norm_f(x)
