"""Small helpers shared by the numbered tutorials: quick mode, the output folder, checked
claims and optional matplotlib. Nothing here is needed to understand a tutorial."""

from __future__ import annotations

import os
import sys

TUTORIALS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TUTORIALS_DIR)
if REPO_ROOT not in sys.path:  # so `python tutorials/01_....py` works from a plain checkout
    sys.path.insert(0, REPO_ROOT)

# A tutorial imports this module before NumPy, so minigrad's process-wide settings (minigrad/_process.py)
# come first: idle OpenBLAS threads, for one, would otherwise spin after each matrix product, and
# on a busy 2-core machine that made the training steps several times slower.
import minigrad  # noqa: E402,F401


def is_quick() -> bool:
    """True with the --quick flag or MINIGRAD_QUICK=1: less work, same lessons (used by CI)."""
    return "--quick" in sys.argv or os.environ.get("MINIGRAD_QUICK", "") not in ("", "0")


def out_dir() -> str:
    """Where pictures and files go: MINIGRAD_TUTORIAL_OUT, else tutorials/out/ (git-ignored)."""
    path = os.environ.get("MINIGRAD_TUTORIAL_OUT") or os.path.join(TUTORIALS_DIR, "out")
    os.makedirs(path, exist_ok=True)
    return path


def check(claim: str, ok: bool) -> None:
    """Assert a claim the tutorial makes and print it; the tests look for these lines."""
    if not ok:
        raise AssertionError(f"CHECK {claim}: FAILED")
    print(f"CHECK {claim}: OK")


def pyplot():
    """matplotlib.pyplot drawing to files, or None (with a note) when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        print("note: matplotlib is not installed, so no pictures this time (pip install matplotlib)")
        return None
    if "ipykernel" not in sys.modules:  # a script draws to files only (no display needed);
        matplotlib.use("Agg")  # a notebook keeps its inline pictures
    import matplotlib.pyplot as plt

    return plt


def save(fig, name: str) -> str:
    """Write a matplotlib figure into the output folder and say where."""
    path = os.path.join(out_dir(), name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")
    return path
