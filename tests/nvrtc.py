"""NVRTC, the compiler CuPy's RawModule uses, called through ctypes (no CuPy, no GPU): compiles a kernel
file's text for an architecture with the options CuPy adds itself (-ftz=true, the default execution space
on the device, the CUDA headers' directory), so the tests catch what nvcc accepts but NVRTC does not.
libnvrtc comes from the nvidia-cuda-nvrtc wheel (the test extra), a CUDA toolkit, or CUDA_PATH."""

from __future__ import annotations

import ctypes
import glob
import os
import shutil

CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


def _candidates() -> list[str]:
    out = []
    try:
        import nvidia

        for root in nvidia.__path__:
            out += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libnvrtc.so.*")))
            out += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.*")))
    except ImportError:
        pass
    for home in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            out += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")))
    return [p for p in out if ".alt." not in p and "builtins" not in p]


def cuda_include() -> str | None:
    """The directory holding cuda_fp16.h (a toolkit's, as CuPy finds it at run time)."""
    homes = [os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        homes.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in homes:
        if home and os.path.isfile(os.path.join(home, "include", "cuda_fp16.h")):
            return os.path.join(home, "include")
    return None


def load():
    """The NVRTC library, or None."""
    for path in _candidates():
        try:
            # libnvrtc opens libnvrtc-builtins by name: load the one beside it first (a wheel is on no search path)
            for builtins in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*")):
                if ".alt." not in builtins:
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def compile_cubin(lib, source: str, name: str, options: tuple[str, ...]) -> tuple[bool, str]:
    """(ok, log) of compiling ``source`` with ``options``."""
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None):
        return False, "nvrtcCreateProgram failed"
    try:
        args = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        rc = lib.nvrtcCompileProgram(prog, len(options), args)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        return rc == 0, log.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def version(lib) -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value
