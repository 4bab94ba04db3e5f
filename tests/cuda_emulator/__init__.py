"""Run kernels/cuda's CUDA C on the CPU: each (file, variant) is built with g++ into a shared library,
with emu.h force-included (threads as fibers, barriers and warp shuffles as scheduling points) and
include/ standing in for cuda_fp16.h and cuda_bf16.h. ``install(monkeypatch)`` swaps the launchers'
``_runtime._module`` (CuPy's RawModule) for :class:`EmulatedModule`, so ``kernels.cuda.KERNELS[name]``
called with NumPy arrays runs the very .cu code, launch configuration and argument marshalling included,
and the tests hold it to its NumPy twin without a GPU.

What it does not show: speed, races between blocks (one block runs at a time), and the GPU's fast math
(CUDA's exp and erf differ from the C library's by an ulp or two: the tests' tolerances allow it).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from kernels.cuda import _runtime

HERE = os.path.dirname(os.path.abspath(__file__))
CXX = shutil.which("g++")
BUILD_DIR = os.path.join(tempfile.gettempdir(), "minigrad-cuda-emulator")
CTYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
          np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.float32): ctypes.c_float,
          np.dtype(np.float64): ctypes.c_double}
REVERSE = [False]  # run each block's threads last to first (another interleaving at the barriers)


def _wrappers(source: str) -> str:
    """An extern "C" launch function per kernel: (grid, block, reverse, args) as cuLaunchKernel takes them."""
    out = ['#include <cstdio>\nstatic char emu_message[4096];\nextern "C" const char* emu_error() '
           '{ return emu_message; }']
    for name, sig in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', source):
        params = _runtime.parse_params(" ".join(sig.split()))
        call = ", ".join(f"*({p.ctype}*)args[{i}]" for i, p in enumerate(params))
        out.append(f'extern "C" int emu_launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
                   f'unsigned by, unsigned bz, int reverse, void** args) {{\n'
                   f'  try {{ emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, reverse, [&] {{ {name}({call}); }});'
                   f' return 0; }}\n  catch (const std::exception& e) {{ std::snprintf(emu_message, sizeof emu_message,'
                   f' "%s", e.what()); return 1; }}\n}}')
    return "\n".join(out)


def build(file: str, options: tuple[str, ...]) -> str:
    """The shared library of one variant of ``file`` (built once, kept in BUILD_DIR by content hash)."""
    source = _runtime.source(file)
    with open(os.path.join(HERE, "emu.h")) as f:
        emu = f.read()
    text = source + "\n" + _wrappers(source)
    key = hashlib.sha256("\0".join([emu, text, *options]).encode()).hexdigest()[:20]
    lib = os.path.join(BUILD_DIR, f"{os.path.splitext(file)[0]}-{key}.so")
    if not os.path.exists(lib):
        os.makedirs(BUILD_DIR, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "kernel.cpp")
            with open(src, "w") as f:
                f.write(text)
            tmp_lib = os.path.join(tmp, "kernel.so")
            proc = subprocess.run([CXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-w", "-I",
                                   os.path.join(HERE, "include"), "-include", os.path.join(HERE, "emu.h"), *options,
                                   src, "-o", tmp_lib],
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode:
                raise RuntimeError(f"g++ could not build {file} {' '.join(options)}:\n{proc.stderr[-4000:]}")
            os.replace(tmp_lib, lib)
    return lib


class EmulatedModule:
    """CuPy RawModule's face (get_function(name)(grid, block, args, shared_mem=...)) over the emulator."""

    def __init__(self, file: str, options: tuple[str, ...]):
        self.lib = ctypes.CDLL(build(file, options))
        self.lib.emu_error.restype = ctypes.c_char_p

    def get_function(self, name: str):
        fn = getattr(self.lib, f"emu_launch_{name}")

        def launch(grid, block, args, shared_mem=0):
            assert shared_mem == 0, "the kernels use static shared memory only"
            holders = []
            for a in args:
                if isinstance(a, np.ndarray):
                    holders.append(ctypes.c_void_p(a.ctypes.data))
                else:
                    holders.append(CTYPES[np.dtype(type(a))](a))
            pointers = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p)
                                                           for h in holders])
            if fn(*[ctypes.c_uint(v) for v in (*grid, *block)], ctypes.c_int(int(REVERSE[0])), pointers):
                raise RuntimeError(f"{name}: {self.lib.emu_error().decode()}")
        return launch


_LOADED: dict[tuple[str, tuple[str, ...]], EmulatedModule] = {}


def module(file: str, options: tuple[str, ...]) -> EmulatedModule:
    key = (file, options)
    if key not in _LOADED:
        _LOADED[key] = EmulatedModule(file, options)
    return _LOADED[key]


def install(monkeypatch) -> None:
    """Launch kernels/cuda's kernels on the emulator for the rest of the test."""
    monkeypatch.setattr(_runtime, "_module", module)
