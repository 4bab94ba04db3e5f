"""What generation keeps between steps, one object per layer, each owned by its kind of block.

    cache = model.new_cache(batch)        # one layer cache per block: block.new_cache(batch, max_len, dtype)
    logits = model(prompt, cache)         # the prompt, all at once
    logits = model(next_token, cache)     # then one token per call: each layer reads and updates its own state

* ``AttentionCache``: the keys and values of the positions so far (B, max_len, KV, D); ``append`` writes
  the new ones and returns views of all of them.
* ``nn.mla.LatentCache``: an MLA layer's compressed latents and shared rotary keys, with AttentionCache's
  interface.
* ``MambaCache``: a Mamba layer's recurrent state: the last K-1 inputs of its causal conv and its SSM state
  (plus, for Mamba3, what the trapezoidal rule and the rotation carry from the previous step). Its size does
  not grow with the sequence.

``ModelCache.for_layer(i)`` is what block i is handed; ``ModelCache.length`` is the number of positions
seen, advanced by the model after each call.
"""

from __future__ import annotations

from typing import Any

from minigrad import Tensor


class AttentionCache:
    """Keys and values of one attention layer, preallocated to ``max_len`` positions."""

    def __init__(self, batch: int, max_len: int, kv_heads: int, head_dim: int, backend, dtype):
        shape = (batch, max_len, kv_heads, head_dim)                     # (B, S, KV, D)
        self.k = backend.xp.zeros(shape, dtype=dtype)
        self.v = backend.xp.zeros(shape, dtype=dtype)
        self.backend, self.length, self.max_len = backend, 0, max_len

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values; return those of every position so far."""
        end = self.length + k.shape[1]
        if end > self.max_len:
            raise ValueError(f"KV cache is full ({self.max_len} positions)")
        self.k[:, self.length:end] = k.data
        self.v[:, self.length:end] = v.data
        self.length = end
        return Tensor._from_array(self.k[:, :end], self.backend), Tensor._from_array(self.v[:, :end], self.backend)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class MambaCache:
    """One Mamba layer's recurrent state, as named backend arrays (zeros before the first token):
    ``conv`` (B, K-1, C) the conv's last inputs, ``ssm`` the SSM state, and whatever else the mixer
    declares (Mamba3: ``prev_k``, ``prev_v``, ``angle``)."""

    def __init__(self, backend, dtype, **shapes: tuple[int, ...]):
        self.backend = backend
        self.states: dict[str, Any] = {name: backend.xp.zeros(s, dtype=dtype) for name, s in shapes.items()}

    def get(self, name: str) -> Tensor:
        return Tensor._from_array(self.states[name], self.backend)

    def set(self, name: str, value: Tensor) -> None:
        self.states[name][...] = value.data

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.states.values())


class ModelCache:
    """The layer caches of a whole model and the number of positions seen so far."""

    def __init__(self, layers: list):
        self.layers, self.length = list(layers), 0

    def for_layer(self, i: int):
        return self.layers[i]

    def advance(self, n: int) -> None:
        self.length += n

    @property
    def nbytes(self) -> int:
        """Bytes the layer caches hold (allocated for their max_len)."""
        return sum(layer.nbytes for layer in self.layers)


class KVCache(ModelCache):
    """A cache for a model whose layers are all attention blocks, built from its shapes (as before the
    layer caches existed); ``k`` and ``v`` list each layer's arrays."""

    def __init__(self, num_layers: int, batch: int, max_len: int, kv_heads: int, head_dim: int, backend,
                 dtype="float32"):
        super().__init__([AttentionCache(batch, max_len, kv_heads, head_dim, backend, dtype)
                          for _ in range(num_layers)])
        self.backend, self.max_len = backend, max_len

    @classmethod
    def for_model(cls, model, batch: int = 1, max_len: int | None = None) -> ModelCache:
        """An empty cache shaped for ``model`` (any CausalLM: each block makes its own layer cache)."""
        return model.new_cache(batch, max_len)

    @property
    def k(self) -> list:
        return [layer.k for layer in self.layers]

    @property
    def v(self) -> list:
        return [layer.v for layer in self.layers]
