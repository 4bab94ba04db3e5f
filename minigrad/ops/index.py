"""Indexing ops. Their backward scatters gradients back with ``index_add``, so repeated
indices add up (a kernel, so each backend can supply a fast one)."""

from __future__ import annotations

from ..autograd import Function


class _ScatterBack(Function):
    """An op whose backward adds the output's gradient into zeros of the input's shape at the
    places its forward read (``self.shape``, ``self.dtype``: the input's, set by forward)."""

    def _scatter_back(self, key, g):
        out = self.xp.zeros(self.shape, dtype=self.dtype)
        self.backend.kernel("index_add")(out, key, g)  # out[key] += g, repeated indices adding up
        return out


def _is_basic(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in parts)


class GetItem(_ScatterBack):
    def forward(self, a, key):
        self.shape, self.dtype, self.key = a.shape, a.dtype, key
        return a[key]

    def backward(self, g):
        if not _is_basic(self.key):
            return self._scatter_back(self.key, g)
        out = self.xp.zeros(self.shape, dtype=self.dtype)
        out[self.key] = g  # basic indexing never repeats an element: a plain assignment will do
        return out


def _along_axis_key(xp, idx, axis: int):
    """A fancy-index tuple that addresses ``a[..., idx[...], ...]`` along ``axis`` elementwise."""
    key = []
    for d, n in enumerate(idx.shape):
        if d == axis:
            key.append(idx)
        else:
            shape = [1] * idx.ndim
            shape[d] = n
            key.append(xp.arange(n).reshape(shape))
    return tuple(key)


class Gather(_ScatterBack):
    """take_along_axis / torch.gather: out[i][j] = a[i][idx[i][j]] (for axis=1). As in torch,
    idx may be smaller than ``a`` in the other dimensions (take_along_axis would refuse)."""

    def forward(self, a, idx, axis):
        self.shape, self.dtype = a.shape, a.dtype
        self.key = _along_axis_key(self.xp, idx, axis % a.ndim)
        return a[self.key]

    def backward(self, g):
        return self._scatter_back(self.key, g), None


class ScatterAdd(Function):
    """torch.scatter_add: a copy of ``a`` with src[i][j] added at a[i][idx[i][j]] (axis=1)."""

    def forward(self, a, idx, src, axis):
        self.key = _along_axis_key(self.xp, idx, axis % a.ndim)
        out = a.copy()
        self.backend.kernel("index_add")(out, self.key, src)
        return out

    def backward(self, g):
        return g, None, (g[self.key] if self.needs_grad[2] else None)


class IndexSelect(_ScatterBack):
    def forward(self, a, idx, axis):
        self.shape, self.dtype, self.idx = a.shape, a.dtype, idx
        self.axis = axis % a.ndim
        return self.xp.take(a, idx, axis=self.axis)

    def backward(self, g):
        return self._scatter_back((slice(None),) * self.axis + (self.idx,), g), None


class Embedding(_ScatterBack):
    """weight[ids]: (V, D), ids (...) int -> (..., D). Backward adds rows into a (V, D) grad."""

    def forward(self, weight, ids):
        self.shape, self.dtype, self.ids = weight.shape, weight.dtype, ids
        return weight[ids]

    def backward(self, g):
        flat_ids = self.ids.reshape(-1)                                               # (N,)
        return self._scatter_back(flat_ids, g.reshape(flat_ids.shape[0], -1)), None   # g (..., D) -> (N, D)
