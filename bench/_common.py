"""What every benchmark does before NumPy, Numba or torch load: pin each library to the same
number of threads (so the two sides of a comparison get the same cores; a value you set
yourself wins), put the repository on sys.path, and import minigrad first, so its
process-wide settings (minigrad/_process.py) are made before NumPy loads OpenBLAS.

A benchmark imports this module before anything else (``import _common``).
"""

from __future__ import annotations

import os
import sys

THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import minigrad  # noqa: E402,F401
