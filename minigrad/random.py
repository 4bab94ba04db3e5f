"""Seeded random numbers. A Generator draws on the host (NumPy's PCG64) and the result is
moved to the tensor's backend, so one seed gives the same numbers on every backend."""

from __future__ import annotations

from typing import Any

import numpy as np


class Generator:
    """A seeded source of random numbers, like ``torch.Generator``."""

    def __init__(self, seed: int = 0):
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        self.seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        return self

    def random(self, shape, dtype=np.float64) -> np.ndarray:
        dtype = np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.float64
        return self._rng.random(shape, dtype=dtype)

    def normal(self, shape, dtype=np.float32) -> np.ndarray:
        return self._rng.standard_normal(shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)

    def integers(self, low: int, high: int, shape) -> np.ndarray:
        return self._rng.integers(low, high, shape, dtype=np.int64)

    def get_state(self) -> dict[str, Any]:
        """The generator's state as JSON-friendly data (for checkpoints)."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state


_DEFAULT = [Generator(0)]


def default_generator() -> Generator:
    return _DEFAULT[0]


def manual_seed(seed: int) -> Generator:
    """Re-seed the global generator (used when no generator= is given)."""
    return _DEFAULT[0].manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """The states of minigrad's default generator and of NumPy's global one, JSON-friendly (for checkpoints)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"minigrad": default_generator().get_state(),
            "numpy": {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached": cached}}


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    default_generator().set_state(states["minigrad"])
    s = states["numpy"]
    np.random.set_state((s["name"], np.array(s["keys"], dtype=np.uint32), s["pos"], s["has_gauss"], s["cached"]))
