"""The CUDA kernels, checked without a GPU (issue 12): every .cu compiles with nvcc for sm_80 and sm_90
(exactly the text CuPy compiles, in every variant the launchers use), stays inside what NVRTC accepts,
has the signatures its Python launcher describes, and every launcher builds valid launches and
argument lists for the shapes it will see. Running the kernels, against their NumPy twins, is
tests/test_kernels_cuda.py (on a GPU)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kernels.cuda import KERNELS, MODULES, _runtime
from kernels.cuda import attention as cuda_attention
from kernels.reference import KERNELS as REFERENCE

CUDA_DIR = _runtime.HERE
CU_FILES = sorted(f for f in os.listdir(CUDA_DIR) if f.endswith(".cu"))
ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc")
DESCRIBED = [k for m in MODULES for k in m.KERNELS]


def _signatures(file: str) -> dict[str, str]:
    """extern "C" kernel name -> its parameter list, from a .cu file."""
    with open(os.path.join(CUDA_DIR, file)) as f:
        text = f.read()
    return {m.group(1): " ".join(m.group(2).split())
            for m in re.finditer(r'extern "C" __global__ void (\w+)\(([^)]*)\)', text)}


def test_every_kernel_of_every_cu_file_is_described_with_its_exact_signature():
    described = {(k.file, k.name): k for k in DESCRIBED}
    found = {(f, name): sig for f in CU_FILES for name, sig in _signatures(f).items()}
    assert set(described) == set(found), set(described) ^ set(found)
    for key, sig in found.items():
        assert described[key].params == _runtime.parse_params(sig), key


def test_the_table_covers_every_contract_and_takes_no_xp():
    import inspect

    from kernels.cuda import NOT_YET, REFERENCE_SUFFICES

    assert set(KERNELS) | NOT_YET | REFERENCE_SUFFICES == set(REFERENCE) and not set(KERNELS) & NOT_YET  # gaps named
    for name, fn in KERNELS.items():
        ref = list(inspect.signature(REFERENCE[name]).parameters)[1:]
        assert list(inspect.signature(fn).parameters) == ref, name


ALLOWED_INCLUDES = {"cuda_fp16.h", "cuda_bf16.h"}
# Names that nvcc's implicit host headers define but NVRTC, which CuPy compiles with, does not.
NOT_IN_NVRTC = re.compile(r"\b(INFINITY|NAN|HUGE_VALF?|M_PI|size_t|assert|std::|printf|malloc)\b")


@pytest.mark.parametrize("file", CU_FILES + [_runtime.COMMON])
def test_sources_stay_inside_what_nvrtc_compiles(file):
    with open(os.path.join(CUDA_DIR, file)) as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        code = line.split("//")[0]
        inc = re.match(r"\s*#\s*include\s*[<\"]([^>\"]+)", code)
        assert inc is None or inc.group(1) in ALLOWED_INCLUDES, f"{file}:{n}: #include {inc.group(1)}"
        assert not NOT_IN_NVRTC.search(code), f"{file}:{n}: {code.strip()}"


def _variants() -> list[tuple[str, tuple[str, ...]]]:
    out = sorted({v for m in MODULES for v in m.compile_variants()})
    assert {f for f, _ in out} == set(CU_FILES)  # every file is compiled in at least one variant
    return out


def _nvcc(file: str, options: tuple[str, ...], arch: str) -> tuple[int, str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, file)
        with open(src, "w") as f:
            f.write(_runtime.source(file))
        start = time.perf_counter()
        proc = subprocess.run([NVCC, f"-arch={arch}", "-cubin", "-o", os.path.join(tmp, "k.cubin"), "-Werror",
                               "all-warnings", "-Xptxas", "-v", *_runtime.COMPILE_OPTIONS, *options, src],
                              capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on this machine")
def test_every_cu_file_compiles_with_nvcc_for_sm80_and_sm90():
    jobs = [(f, opts, arch) for f, opts in _variants() for arch in ARCHS]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda job: _nvcc(*job), jobs))
    failures, shared = [], {}
    for (f, opts, arch), (rc, log, _) in zip(jobs, results):
        if rc:
            failures.append(f"{f} {arch} {' '.join(opts)}:\n{log[-2000:]}")
        for kernel_name, smem in re.findall(r"Compiling entry function '(\w+)'.*?(\d+) bytes smem", log, re.S):
            shared[(f, opts, kernel_name)] = int(smem)
    assert not failures, "\n\n".join(failures)
    assert all(v <= _runtime.MAX_STATIC_SHARED for v in shared.values()), shared
    # ptxas's count of the attention kernels' shared memory is the one attention.py plans its tiles with
    for (f, opts, name), smem in shared.items():
        if f.startswith("attention") and name != "attention_delta":
            d = {o.split("=")[0][2:]: o.split("=")[1] for o in opts}
            acc = 8 if d["ACC_T"] == "double" else 4
            plan = {"attention_forward": cuda_attention.forward_shared_bytes,
                    "attention_backward_dq": cuda_attention.dq_shared_bytes,
                    "attention_backward_dkdv": cuda_attention.dkdv_shared_bytes}[name]
            assert smem == plan(int(d["HEAD_DIM"]), acc, int(d["BLOCK_Q"]), int(d["BLOCK_K"]),
                                int(d.get("V_DIM", d["HEAD_DIM"]))), (f, opts, name)


def test_every_cu_file_compiles_with_nvrtc_as_cupy_compiles_it():
    """NVRTC (CuPy's compiler) has none of the host headers nvcc puts in front of every file: each variant,
    with the options CuPy adds, for sm_80 and sm_90."""
    import nvrtc

    lib, include = nvrtc.load(), nvrtc.cuda_include()
    if lib is None or include is None:
        pytest.skip("no libnvrtc or CUDA headers here (pip install nvidia-cuda-nvrtc; a CUDA toolkit)")
    failures = []
    for f, opts in _variants():
        for arch in ARCHS:
            ok, log = nvrtc.compile_cubin(lib, _runtime.source(f), f, (*_runtime.COMPILE_OPTIONS, *opts,
                                                                        *nvrtc.CUPY_OPTIONS, f"-arch={arch}",
                                                                        f"-I{include}"))
            if not ok or "warning" in log:
                failures.append(f"{f} {arch} {' '.join(opts)}:\n{log[-2000:]}")
    assert not failures, "\n\n".join(failures)


# ---- launches and arguments, for the shapes the models give ------------------------------------------

# (B, T, H, KV, D, hidden, ffn, vocab): the nano config, the ~125M Llama of bench/gpu_train_step.py, a 1B-ish one
SHAPES = [(8, 256, 4, 4, 32, 128, 384, 4096), (8, 1024, 12, 12, 64, 768, 2048, 32000),
          (4, 2048, 32, 8, 64, 2048, 5632, 128256), (1, 1, 12, 4, 64, 768, 2048, 50257)]


@pytest.mark.parametrize("b,t,h,kv,d,hidden,ffn,vocab", SHAPES)
def test_launch_configs_are_valid_and_cover_the_work(b, t, h, kv, d, hidden, ffn, vocab):
    from kernels.cuda import adamw, cross_entropy, erf, index_add, rms_norm, rope, swiglu

    n = b * t
    checks = {
        "rms_norm forward": (rms_norm.forward_config(n, hidden), n),
        "rope": (rope.launch_config(b, t, h, d), n * h * d // 2),
        "swiglu": (swiglu.launch_config(n, ffn), n * ffn),
        "erf": (erf.launch_config(n * ffn), n * ffn),
        "cross_entropy": (cross_entropy.launch_config(n, vocab), n),
        "index_add": (index_add.launch_config(n, hidden), n),
        "adamw": (adamw.launch_config((vocab * hidden, hidden, 3 * hidden * hidden)), None),
    }
    bwd, dw_sum, rows_per_part = rms_norm.backward_config(n, hidden)
    checks["rms_norm backward"], checks["rms_norm dw"] = (bwd, None), (dw_sum, hidden)
    assert bwd.grid[0] * rows_per_part >= n and hidden <= rms_norm.MAX_COLS * bwd.threads
    for dt in ("float32", "float16", "bfloat16", "float64"):
        fwd, _, smem = cuda_attention.forward_config(b, t, h, d, dt)
        checks[f"attention forward {dt}"] = (fwd, None)
        assert fwd.grid[0] * fwd.block[0] >= t and smem <= _runtime.MAX_STATIC_SHARED
        for name, (cfg, _, smem) in cuda_attention.backward_configs(b, t, t, h, kv, d, dt).items():
            checks[f"attention {name} {dt}"] = (cfg, None)
            assert smem <= _runtime.MAX_STATIC_SHARED
    for what, (cfg, work) in checks.items():
        assert not _runtime.check_launch(cfg), (what, _runtime.check_launch(cfg))
        if work is not None:
            per = cfg.grid[0] * cfg.grid[1] * cfg.grid[2] * (cfg.threads if what in ("rope", "swiglu", "erf") else 1)
            assert per >= work if what in ("rope", "swiglu", "erf") else cfg.grid[0] >= work or cfg.threads, what
    assert sum(1 for _ in adamw.chunk_table((5000, 1, 4096))[0]) == 2 + 1 + 1


@pytest.mark.parametrize("bt,t,d,n,k,experts,tokens,hidden", [(8, 1024, 1536, 16, 4, 64, 8192, 768),
                                                                 (1, 1, 5, 64, 8, 256, 1, 7168)])
def test_mamba_and_moe_launch_configs_are_valid(bt, t, d, n, k, experts, tokens, hidden):
    from kernels.cuda import causal_conv1d, moe_dispatch, moe_routing, selective_scan

    dw, dw_sum, rows_per_part = causal_conv1d.dw_config(bt * t, d, k)
    assert dw.grid[1] * rows_per_part >= bt * t and dw.grid[0] * causal_conv1d.CH >= d
    scan = selective_scan.scan_config(bt, d)
    assert scan.grid[0] * scan.threads >= d and scan.grid[1] == bt and selective_scan.max_n(n) >= n
    rank, place = moe_routing.sort_configs(tokens * 8, experts)
    checks = [causal_conv1d.elementwise_config(bt * t * d), dw, dw_sum, scan, selective_scan.sum_config(bt * t * n),
              moe_routing.topk_config(tokens), rank, place, moe_dispatch.rows_config(tokens * 8, hidden),
              moe_dispatch.dot_config(tokens * 8, hidden)]
    for cfg in checks:
        assert not _runtime.check_launch(cfg), (cfg, _runtime.check_launch(cfg))
    assert rank.threads <= 1024 and place.grid[0] * place.threads >= tokens * 8


def test_chunk_table_tiles_every_parameter_exactly():
    from kernels.cuda import adamw

    sizes = (1, adamw.CHUNK, adamw.CHUNK + 1, 3 * adamw.CHUNK - 7)
    param, start = adamw.chunk_table(sizes)
    covered = {i: set() for i in range(len(sizes))}
    for p, s0 in zip(param, start):
        covered[int(p)].update(range(int(s0), min(int(s0) + adamw.CHUNK, sizes[p])))
    assert all(covered[i] == set(range(n)) for i, n in enumerate(sizes))
    assert adamw.launch_config(sizes).grid[0] == len(param)


def test_check_launch_names_what_breaks_cuda_limits():
    bad = _runtime.check_launch(_runtime.Launch((0, 70000, 1), (48, 1, 1), 60000))
    assert len(bad) == 4 and "48 threads" in bad[0]


def test_arguments_are_checked_against_the_signature():
    k = _runtime.kernel("x.cu", "f", "const scalar_t* x_rows, float* y, int n, acc_t eps")
    types = _runtime.types_of(np.float16)
    x, y = np.zeros((4, 6), np.float16)[:, :3], np.zeros(3, np.float32)
    values = _runtime.check_args(k, types, dict(x_rows=x, y=y, n=3, eps=1e-5))
    assert [type(v) for v in values[2:]] == [np.int32, np.float32]  # exact C types, not Python's int64
    with pytest.raises(TypeError, match="x_rows must be a float16 array"):
        _runtime.check_args(k, types, dict(x_rows=x.astype(np.float32), y=y, n=3, eps=1.0))
    with pytest.raises(ValueError, match="y must be C-contiguous"):
        _runtime.check_args(k, types, dict(x_rows=x, y=np.zeros(6, np.float32)[::2], n=3, eps=1.0))
    with pytest.raises(OverflowError, match="n = 4294967296"):
        _runtime.check_args(k, types, dict(x_rows=x, y=y, n=2**32, eps=1.0))
    with pytest.raises(TypeError, match="arguments"):
        _runtime.check_args(k, types, dict(x_rows=x, y=y, n=3))


def _as_rows_reference(a: np.ndarray, width: int):
    from kernels.cpu._layout import as_rows

    r = as_rows(a, width)
    return None if r is None else r[1]


@pytest.mark.parametrize("make", [
    lambda: np.zeros((2, 3, 4, 8)), lambda: np.zeros((6, 40))[:, 8:16].reshape(2, 3, 8),
    lambda: np.zeros((2, 3, 24))[..., :16].reshape(2, 3, 2, 8), lambda: np.zeros((8, 2, 3)).transpose(1, 2, 0),
    lambda: np.zeros((1, 5, 16))[:, ::2], lambda: np.zeros((3, 1, 8)), lambda: np.zeros((4, 10))[::2, :5],
    lambda: np.zeros((2, 4, 10))[:, ::2, :5]])
def test_row_stride_agrees_with_the_numba_kernels_as_rows(make):
    a = make()
    width = a.shape[-1] if a.ndim < 4 else a.shape[-2] * a.shape[-1]
    assert _runtime.row_stride(a.shape, a.strides, a.itemsize, width) == _as_rows_reference(a, width)


# ---- every launcher, run end to end on NumPy arrays with the GPU call replaced by a recorder -----------

class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, file, options):
        rec = self

        class Module:
            def get_function(self, name):
                def run(grid, block, args, shared_mem=0):
                    rec.calls.append((file, name, options, grid, block, args))
                return run
        return Module()


def _launcher_cases(rng, dt):
    r = lambda *s: rng.standard_normal(s).astype(dt)
    low = np.float16 if dt == np.float32 else dt  # float32 masters with float16 gradients and copies
    q, k, v = r(2, 5, 4, 8), r(2, 7, 2, 8), r(2, 7, 2, 8)
    gu, buf = r(6, 10), np.zeros((6, 10), dt)
    return {
        "rms_norm_forward": (r(3, 4, 16), r(16), 1e-5),
        "rms_norm_backward": (r(3, 4, 16), r(3, 4, 16), r(16), r(3, 4, 1)),
        "rope_forward": (r(2, 5, 12)[..., :8].reshape(2, 5, 1, 8), r(5, 8), r(5, 8)),
        "rope_backward": (r(2, 5, 3, 8), r(5, 8), r(5, 8)),
        "swiglu_forward": (gu[:, :5], gu[:, 5:]),
        "swiglu_backward": (r(6, 5), gu[:, :5], gu[:, 5:], (buf[:, :5], buf[:, 5:])),
        "attention_forward": (q, k, v, 0.3, 2),
        "attention_backward": (r(2, 5, 4, 8), q, k, v, None, 0.3, 2),
        "softmax_cross_entropy": (r(4, 9), np.array([0, -100, 8, 3]), -100),
        "index_add": (np.zeros((5, 3), dt), np.array([4, 0, -1, 2]), r(4, 3)),
        "causal_conv1d_forward": (r(2, 5, 6), r(6, 4), r(6), True),
        "causal_conv1d_backward": (r(2, 5, 6), r(2, 5, 6), r(6, 4), None, True),
        "selective_scan_forward": (r(2, 5, 6), r(2, 5, 6), r(6, 3), r(2, 5, 3), r(2, 5, 3), None, 2),
        "selective_scan_backward": (r(2, 5, 6), r(2, 5, 6), r(2, 5, 6), r(6, 3), r(2, 5, 3), r(2, 5, 3),
                                    r(2, 3, 6, 3), 2),
        "moe_topk": (r(5, 8), 2, 4, 2, "top2"),
        "moe_sort_by_expert": (np.array([[3, 0], [3, 1], [0, 3]]), 4, 1),
        "moe_gather": (r(3, 6), np.array([1, 5, 0, 2]), 2),
        "moe_gather_backward": (r(4, 6), np.array([[2, -1], [0, 3], [1, -1]])),
        "moe_combine": (r(4, 6), np.array([[2, -1], [0, 3], [1, -1]]), r(3, 2)),
        "moe_combine_backward": (r(3, 6), r(4, 6), np.array([[2, -1], [0, 3], [1, -1]]), r(3, 2)),
        "erf": (r(3, 8)[:, ::2],),
        "adamw_step": (r(4), r(4), r(4), r(4) ** 2, 1e-3, 0.9, 0.99, 1e-8, 0.1, 2),
        "adamw_step_multi": ([r(4), r(2, 3)], [r(4).astype(low), r(2, 3).astype(low)],  # mixed precision's call
                             [r(4), r(2, 3)], [r(4) ** 2, r(2, 3) ** 2], 1e-3, 0.9, 0.99, 1e-8, 0.1, 2, 0.5,
                             [np.zeros(4, low), np.zeros((2, 3), low)]),
    }


@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16])
def test_every_launcher_builds_launches_its_kernels_accept(monkeypatch, dt):
    """The Python half of every kernel, on NumPy arrays: shapes, dtypes, contiguity and C types of what
    each launcher hands the GPU (check_args raises on any mismatch), with the launch itself recorded."""
    rec = _Recorder()
    monkeypatch.setattr(_runtime, "_module", rec)
    cases = _launcher_cases(np.random.default_rng(0), dt)
    assert set(cases) == set(KERNELS)
    for name, args in cases.items():
        if name == "attention_backward":
            args = args[:4] + (KERNELS["attention_forward"](*args[1:4], 0.3, 2)[1],) + args[5:]
        before = len(rec.calls)
        out = KERNELS[name](*args)
        assert out is not NotImplemented, name
        assert len(rec.calls) > before, name
    kernels_run = {(f, n) for f, n, *_ in rec.calls}
    assert kernels_run == {(k.file, k.name) for k in DESCRIBED}
    # the variant compiled for each call is one the nvcc test compiles, or differs only in the head size
    compiled = {v for m in MODULES for v in m.compile_variants()}
    for f, _, opts, *_ in rec.calls:
        if not f.startswith("attention"):
            assert (f, opts) in compiled, (f, opts)


def test_launchers_decline_what_they_do_not_handle(monkeypatch):
    monkeypatch.setattr(_runtime, "_module", _Recorder())
    ints = np.arange(6).reshape(2, 3)
    assert KERNELS["rms_norm_forward"](ints, np.ones(3, np.int64), 1e-5) is NotImplemented
    assert KERNELS["rope_forward"](np.zeros((1, 2, 1, 5), np.float32), np.zeros((2, 5)), np.zeros((2, 5))) \
        is NotImplemented  # odd head size
    q = np.zeros((1, 2, 2, 8), np.float32)
    assert KERNELS["attention_forward"](q, q, np.zeros((1, 2, 2, 200), np.float32), 1.0, 0) is NotImplemented  # Dv
    assert KERNELS["attention_backward"](q, q, q, q, np.zeros((1, 1, 2, 2, 2)), 1.0, 0) is NotImplemented  # P
    assert KERNELS["index_add"](np.zeros((3, 2), np.float32), (np.array([0]), np.array([1])), np.ones(1, np.float32)) \
        is NotImplemented
    out = np.zeros((4, 6), np.float32).T  # an out= that is not rows: declined before anything is written
    assert KERNELS["swiglu_forward"](np.ones((6, 4), np.float32), np.ones((6, 4), np.float32), out) is NotImplemented
    with pytest.raises(IndexError):
        KERNELS["index_add"](np.zeros((3, 2), np.float32), np.array([3]), np.ones((1, 2), np.float32))
