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
import pytest  # noqa: E402
import strict_backend  # noqa: E402,F401  (registers the "strict" backend)


@pytest.fixture(params=["numpy", "strict"])
def backend(request):
    """Run a test on NumPy and on the strict backend (arrays that refuse conversion to NumPy)."""
    return request.param
