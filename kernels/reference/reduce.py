"""Reductions: sum and max over some axes, the specs of the numba backend's threaded twins
(``kernels/cpu/reduce.py``). ``axes`` is a sorted tuple of non-negative axes (all of them for a full
reduction); max is NaN where its slice holds a NaN, as NumPy's is."""

from __future__ import annotations


def sum(xp, a, axes, keepdims=False):  # noqa: A001 - the op's name
    return a.sum(axis=axes, keepdims=keepdims)


def max(xp, a, axes, keepdims=False):  # noqa: A001 - the op's name
    return a.max(axis=axes, keepdims=keepdims)
