"""The kernel tables and the import graph around them (issue 8, part 2).

* Every kernel name runs on the numba backend right after ``import minigrad`` alone, in float32
  and float16 (a fresh interpreter: no ``nn`` imported, nothing registered by side effect), and
  ``import minigrad`` by itself loads neither ``kernels`` nor Numba.
* Every backend's table is a subset of the one contract list; the reference table is that list.
* No module under ``kernels/`` imports minigrad or nn; no module under ``minigrad/`` imports
  ``nn``, ``kernels`` or ``train``, except the documented wiring in ``minigrad/backend.py``.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from kernels.contracts import CONTRACTS
from kernels.cpu import KERNELS as CPU_KERNELS
from kernels.reference import KERNELS as REFERENCE_KERNELS
from minigrad.backend import Backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a fresh interpreter: small valid inputs for every kernel name, called through the numba
# backend and through the reference; prints one JSON line per (name, dtype).
_EVERY_KERNEL = r'''
import json, sys
import minigrad as mg
at_import = sorted(m for m in ("nn", "train", "kernels", "numba") if m in sys.modules)
import numpy as np
from kernels.contracts import CONTRACTS

def cases(dt, rng):
    r = lambda *s: rng.standard_normal(s).astype(dt)
    x, w = r(3, 8), r(8) + 1
    q, k, v = r(2, 3, 4, 4), r(2, 5, 2, 4), r(2, 5, 2, 4)
    p = mg.get_backend("numpy").reference("attention_forward")(q, k, v, 0.5, 2)[1]
    ref = mg.get_backend("numpy").reference
    u, delta, A, Bm, Cm = r(2, 5, 3), np.abs(r(2, 5, 3)) * 0.5, -np.abs(r(3, 4)), r(2, 5, 4), r(2, 5, 4)
    scan_starts = ref("selective_scan_forward")(u, delta, A, Bm, Cm, None, 2)[2]
    xs, a, Bs, Cs = r(2, 5, 1, 4, 3), -np.abs(r(2, 5, 4)) * 0.5, r(2, 5, 1, 2, 4), r(2, 5, 1, 2, 4)
    ssd_starts = ref("ssd_forward")(xs, a, Bs, Cs, 2, None)[2]
    slot_row = np.array([[0, 1], [-1, 2], [3, 4]])  # MoE: 3 tokens' 2 slots, one dropped, in 5 buffer rows
    return {
        "rms_norm_forward": (x, w, 1e-5),
        "rms_norm_backward": (r(3, 8), x, w, (np.abs(r(3, 1)) + 1).astype(dt)),
        "rope_forward": (r(2, 3, 2, 4), r(3, 4), r(3, 4)),
        "rope_backward": (r(2, 3, 2, 4), r(3, 4), r(3, 4)),
        "swiglu_forward": (r(3, 5), r(3, 5)),
        "swiglu_backward": (r(3, 5), r(3, 5), r(3, 5)),
        "attention_forward": (q, k, v, 0.5, 2),
        "attention_backward": (r(2, 3, 4, 4), q, k, v, p, 0.5, 2),
        "softmax_cross_entropy": (r(4, 6), np.array([0, 5, -100, 2]), -100),
        "index_add": (r(5, 3), np.array([0, 4, 4, 1]), r(4, 3)),
        "erf": (r(2, 7),),
        "adamw_step": (r(6), r(6), r(6), np.abs(r(6)), 1e-2, 0.9, 0.99, 1e-8, 0.1, 3),
        "causal_conv1d_forward": (r(2, 5, 3), r(3, 4), r(3), True),
        "causal_conv1d_backward": (r(2, 5, 3), r(2, 5, 3), r(3, 4), r(3), True),
        "selective_scan_forward": (u, delta, A, Bm, Cm, None, 2),
        "selective_scan_backward": (r(2, 5, 3), u, delta, A, Bm, Cm, scan_starts, 2),
        "ssd_forward": (xs, a, Bs, Cs, 2, None),
        "ssd_backward": (r(2, 5, 1, 4, 3), xs, a, Bs, Cs, 2, ssd_starts),
        "adamw_step_multi": ([r(6), r(2, 3)], [r(6), r(2, 3)], [r(6), r(2, 3)], [np.abs(r(6)), np.abs(r(2, 3))],
                             1e-2, 0.9, 0.99, 1e-8, 0.1, 3),
        "moe_topk": (r(6, 4), 2, 2, 1, "top2"),
        "moe_sort_by_expert": (np.array([[0, 2], [2, 1], [3, 2]]), 4, 2),
        "moe_gather": (r(3, 5), np.array([0, 3, 5, 2, 1]), 2),
        "moe_gather_backward": (r(5, 4), slot_row),
        "moe_combine": (r(5, 4), slot_row, r(3, 2)),
        "moe_combine_backward": (r(3, 4), r(5, 4), slot_row, r(3, 2)),
        "add": (r(3, 8), r(8)), "sub": (r(3, 8), r(3, 8)), "mul": (r(3, 8), r(3, 8)), "div": (r(3, 8), w),
        "exp": (r(3, 8),), "log": (np.abs(r(3, 8)) + 0.1,), "tanh": (r(3, 8),), "sigmoid": (r(3, 8),),
        "silu_forward": (r(3, 8),), "tanh_backward": (r(3, 8), r(3, 8)), "sigmoid_backward": (r(3, 8), r(3, 8)),
        "silu_backward": (r(3, 8), r(3, 8), r(3, 8)),
        "sum": (r(3, 8), (1,)), "max": (r(3, 8), (0, 1), True),
        "softmax_forward": (r(3, 8),), "softmax_backward": (r(3, 8), r(3, 8)),
        "log_softmax_forward": (r(3, 8),), "log_softmax_backward": (r(3, 8), r(3, 8)),
        "relu": (r(3, 8),), "relu_backward": (r(3, 8), r(3, 8)),
        "gelu": (r(3, 8),), "gelu_backward": (r(3, 8), r(3, 8)),
    }

def copy(a):
    return a.copy() if isinstance(a, np.ndarray) else [copy(x) for x in a] if isinstance(a, list) else a

def arrays(out, args):  # what to compare: the outputs, or the arrays an in-place kernel writes
    if out is None:  # adamw_step(_multi): param, exp_avg, exp_avg_sq (lists of them)
        out = tuple(x for i in (0, 2, 3) for x in (args[i] if isinstance(args[i], list) else [args[i]]))
    out = out if isinstance(out, tuple) else (out,)
    # A saved state of a kernel's own (the Numba attention's LseState) is no array: compare the outputs
    # (zip stops at the shorter list, so the reference's P goes uncompared with it)
    return [np.asarray(o, dtype=np.float64) for o in out if isinstance(o, np.ndarray)]

numba = mg.get_backend("numba")
for dt in (np.float32, np.float16):
    all_cases = cases(dt, np.random.default_rng(0))
    assert set(all_cases) == set(CONTRACTS), set(CONTRACTS) ^ set(all_cases)
    for name, args in all_cases.items():
        copies = [[copy(a) for a in args] for _ in range(3)]
        own = numba.fast_kernels.get(name)  # None: no Numba twin, the backend runs the reference
        fast = NotImplemented if own is None else own(*copies[0])
        ours = numba.kernel(name)(*copies[1])
        ref = numba.reference(name)(*copies[2])
        worst = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30)) if a.size else 0.0
                    for a, b in zip(arrays(ours, copies[1]), arrays(ref, copies[2])))
        print(json.dumps({"name": name, "dtype": np.dtype(dt).name, "declined": fast is NotImplemented,
                          "rel_err": worst}))
print(json.dumps({"at_import": at_import, "at_end": sorted(m for m in ("nn", "train") if m in sys.modules)}))
'''


def test_every_kernel_runs_on_numba_after_import_minigrad_alone():
    proc = subprocess.run([sys.executable, "-c", _EVERY_KERNEL], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a KeyError (or any other error) ends up here
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    # import minigrad loads no layers, no trainer, and no kernels (so no Numba) until one is asked for
    assert rows.pop() == {"at_import": [], "at_end": []}
    assert {(r["name"], r["dtype"]) for r in rows} == {(n, d) for n in CONTRACTS for d in ("float32", "float16")}
    for r in rows:
        tol = 1e-5 if r["dtype"] == "float32" else 0.0  # float16: the reference itself runs
        assert r["rel_err"] <= tol, r
        # The Numba twins handle float32 themselves; Numba has no float16, so they decline it (the sort by
        # expert takes only integers: it has nothing to decline). The fused multi-tensor AdamW has no Numba
        # twin (AdamW then steps each parameter with adamw_step's).
        float16_declines = r["dtype"] == "float16" and r["name"] != "moe_sort_by_expert"
        # The case hands attention_backward the reference's P, a state the Numba backward does not know (its
        # forward saves a log-sum-exp): it declines, and the reference reads P (SAVED_STATE).
        foreign_state = r["name"] == "attention_backward"
        assert r["declined"] == (float16_declines or foreign_state or r["name"] not in CPU_KERNELS), r


def test_reference_table_is_the_contract_list_and_every_table_a_subset():
    from kernels.cuda import KERNELS as CUDA_KERNELS
    from kernels.cuda import NOT_YET as CUDA_NOT_YET
    from kernels.cuda import REFERENCE_SUFFICES

    assert set(REFERENCE_KERNELS) == set(CONTRACTS)
    assert set(CPU_KERNELS) <= set(CONTRACTS)
    # every kernel has a CUDA twin, or is named as not yet, or as a generic op CuPy runs as it is
    assert set(CUDA_KERNELS) | CUDA_NOT_YET | REFERENCE_SUFFICES == set(CONTRACTS)
    assert not (set(CUDA_KERNELS) & REFERENCE_SUFFICES or CUDA_NOT_YET & REFERENCE_SUFFICES)
    for name, fn in CUDA_KERNELS.items():
        assert "xp" not in inspect.signature(fn).parameters, name
    assert all(isinstance(c, str) and c for c in CONTRACTS.values())
    for name in ("numpy", "numba", "strict"):
        b = mg.get_backend(name)
        assert set(b.fast_kernels) <= set(CONTRACTS), name
        assert set(b.reference_kernels) == set(CONTRACTS), name
    # References take xp first; the fast twins take arrays only.
    for name, fn in REFERENCE_KERNELS.items():
        assert next(iter(inspect.signature(fn).parameters)) == "xp", name
    for name, fn in CPU_KERNELS.items():
        assert "xp" not in inspect.signature(fn).parameters, name


def test_kernel_binds_xp_falls_back_on_not_implemented_and_names_unknown_kernels():
    calls = []

    def ref(xp, a, scale=1.0):
        calls.append("ref")
        return xp.asarray(a) * scale

    def fast(a, scale=1.0):
        calls.append("fast")
        return NotImplemented if a.dtype == np.float16 else a * scale

    b = Backend("toy", np, "cpu", kernels={"scale": fast}, reference={"scale": ref, "only_ref": ref})
    k = b.kernel("scale")
    assert k is b.kernel("scale")  # bound once, cached
    np.testing.assert_array_equal(k(np.ones(2, np.float32), scale=3.0), [3.0, 3.0])
    assert calls == ["fast"]
    np.testing.assert_array_equal(k(np.ones(2, np.float16), scale=2.0), [2.0, 2.0])
    assert calls == ["fast", "fast", "ref"]
    assert inspect.unwrap(k) is fast and inspect.unwrap(b.kernel("only_ref")) is ref
    np.testing.assert_array_equal(b.reference("scale")(np.ones(1)), [1.0])
    with pytest.raises(KeyError, match=r"no kernel named 'nope' \(known: \['only_ref', 'scale'\]\)"):
        b.kernel("nope")


def _imports(path: str) -> list[tuple[str, int]]:
    """(top-level module, line) of every absolute import in a file; relative ones stay inside."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], node.lineno))
    return out


def _python_files(folder: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, folder))
                  for f in fs if f.endswith(".py"))


def test_kernels_import_nothing_from_minigrad_or_nn():
    for path in _python_files("kernels"):
        with open(path) as f:
            text = f.read()
        assert "import_module" not in text and "__import__" not in text, path
        bad = [(m, line) for m, line in _imports(path) if m in ("minigrad", "nn", "train")]
        assert not bad, f"{os.path.relpath(path, ROOT)} imports {bad}"


def test_minigrad_imports_no_layers_kernels_or_trainer_but_the_backend_wiring():
    allowed = {("minigrad/backend.py", "kernels")}  # _reference_table and _numba_table, documented there
    found = set()
    for path in _python_files("minigrad"):
        rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
        with open(path) as f:
            text = f.read()
        assert "import_module" not in text and "__import__" not in text, rel
        for m, line in _imports(path):
            if m in ("nn", "kernels", "train"):
                assert (rel, m) in allowed, f"{rel}:{line} imports {m}"
                found.add((rel, m))
    assert found == allowed


def test_the_cuda_table_imports_without_cupy_or_a_gpu():
    code = ("import sys, minigrad, kernels.cuda as k; b = minigrad.get_backend('numpy'); "
            "print(sorted(m for m in ('cupy', 'numba') if m in sys.modules), "
                "len(k.KERNELS) + len(k.NOT_YET) + len(k.REFERENCE_SUFFICES))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", str(len(CONTRACTS))]
