"""The differentiable primitives, grouped by kind. Each is a Function subclass with its
forward and backward side by side; ``minigrad.functional`` wraps them as functions and
``minigrad.tensor`` as operators. Beside the fused softmax, log_softmax, cross_entropy and
logsumexp stand their ``*_simple`` composites from primitive ops, for comparison.

* ``elementwise``: arithmetic, math functions, activations, where/masked_fill/clip, dropout
* ``reduce``: sum, mean, max/min, var, logsumexp
* ``shape``: reshape, permute, broadcast, contiguous, cat/stack/split, tril/triu
* ``index``: getitem, gather, scatter_add, index_select, embedding (backward: ``index_add``)
* ``matmul``: the matrix product
* ``softmax``: softmax, log_softmax
* ``loss``: cross_entropy
"""

from . import elementwise, index, loss, matmul, reduce, shape, softmax

__all__ = ["elementwise", "index", "loss", "matmul", "reduce", "shape", "softmax"]
