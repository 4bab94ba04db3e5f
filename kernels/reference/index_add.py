"""``index_add``'s reference kernel: the scatter that every indexing op's backward uses
(minigrad/ops/index.py). The spec that kernels/cpu/index_add.py is held to."""

from __future__ import annotations


def index_add(xp, out, key, src):
    """out[key] += src, with repeated indices in ``key`` adding up (in place)."""
    xp.add.at(out, key, src)
    return out
