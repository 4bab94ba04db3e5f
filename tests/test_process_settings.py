"""minigrad/_process.py: the process-wide settings ``import minigrad`` makes, here the vector width
Numba compiles for. A user's own Numba target settings must win, and the string we hand Numba must be
one its LLVM takes: a kernel compiled under it gives NumPy's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from llvmlite import binding

from minigrad import _process


@pytest.mark.parametrize("env", [{"NUMBA_CPU_FEATURES": "+avx2"}, {"NUMBA_CPU_NAME": "generic"},
                                 {"NUMBA_ENABLE_AVX": "0"}])
def test_a_users_numba_target_wins(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _process.wide_vector_features() is None


_NUMBA_TARGET = ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME", "NUMBA_ENABLE_AVX")


@pytest.fixture
def no_user_target(monkeypatch):
    """The environment as a user who set no Numba target has it (minigrad set NUMBA_CPU_FEATURES here)."""
    for key in _NUMBA_TARGET:
        monkeypatch.delenv(key, raising=False)


def test_no_wide_vectors_off_x86(monkeypatch, no_user_target):
    monkeypatch.setattr(_process.platform, "machine", lambda: "aarch64")
    assert _process.wide_vector_features() is None


def test_wide_vectors_exactly_where_llvm_sees_avx512(no_user_target):
    features = binding.get_host_cpu_features()
    x86 = _process.platform.machine().lower() in ("x86_64", "amd64")
    got = _process.wide_vector_features()
    if x86 and features.get("avx512f"):
        assert got == features.flatten() + ",-prefer-256-bit"
    else:
        assert got is None


_CHILD = r"""
import json, os, sys
import minigrad  # first, as every entry point does
import numba
import numpy as np

@numba.njit(parallel=True)
def exp_rows(a, out):
    for i in numba.prange(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = np.exp(a[i, j]) + a[i, j]

a = np.linspace(-3, 3, 4 * 1000, dtype=np.float32).reshape(4, 1000)
out = np.empty_like(a)
exp_rows(a, out)
err = float(np.max(np.abs(out - (np.exp(a) + a)) / (np.exp(a) + np.abs(a))))
print(json.dumps({"env": os.environ.get("NUMBA_CPU_FEATURES"), "config": numba.config.CPU_FEATURES, "err": err}))
"""


@pytest.mark.parametrize("users", [None, "+sse2"])
def test_numba_compiles_under_the_setting(no_user_target, users):
    env = dict(os.environ)
    if users is not None:
        env["NUMBA_CPU_FEATURES"] = users
    run = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    child = json.loads(run.stdout.strip().splitlines()[-1])
    expected = users if users is not None else _process.wide_vector_features()
    assert child["env"] == expected and child["config"] == expected
    assert child["err"] < 1e-6
