import functools
import os
import sys

# Let the tests run from a plain checkout as well as from an installed package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# minigrad first, before anything imports NumPy: its process-wide settings (minigrad/_process.py).
import minigrad  # noqa: E402,F401

# isort: split
import numpy  # noqa: E402

# isort: split
import pytest  # noqa: E402
import strict_backend  # noqa: E402,F401  (registers the "strict" backend)

from minigrad.backend import Backend, register_backend  # noqa: E402

# The numba backend with its threshold at 0: every op, at every size, goes through its kernels (the threaded
# twins of add, exp, sum, softmax, ...), so the op tests below hold those kernels to torch too.
register_backend(Backend("numba-kernels", numpy, "cpu",
                         kernels=lambda: minigrad.get_backend("numba").fast_kernels, kernel_min_size=0,
                         row_kernel_min_size=0))

NO_GPU = "no GPU: cupy backend cases skipped"


@functools.cache
def gpu_missing() -> str | None:
    return minigrad.backend.cuda_unavailable()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU (skipped, with the others, where there is none)")


def _on_gpu(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(v, str) and v == "cupy" for v in params.values()) or bool(item.get_closest_marker("gpu"))


def pytest_collection_modifyitems(config, items):
    """MINIGRAD_GPU_ONLY=1 (tests/gpu/run_device_checks.sh): keep only the cases that run on the GPU."""
    if os.environ.get("MINIGRAD_GPU_ONLY") == "1":
        keep = [i for i in items if _on_gpu(i)]
        config.hook.pytest_deselected(items=[i for i in items if not _on_gpu(i)])
        items[:] = keep


def pytest_runtest_setup(item):
    """Every case on the cupy backend (a parameter whose value is "cupy") and every test marked gpu skips here,
    with one reason, when this machine has no usable GPU: one line in pytest -rs, whatever the count."""
    if _on_gpu(item) and gpu_missing():
        pytest.skip(NO_GPU)


@pytest.fixture(params=["numpy", "strict", "numba-kernels", "cupy"])
def backend(request):
    """Run a test on NumPy, on the strict backend (arrays that refuse conversion to NumPy), on the numba
    backend's kernels at every size, and on CuPy (GPU)."""
    return request.param
