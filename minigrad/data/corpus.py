"""The embedded default corpus: the Python standard library's own source code.

Every Python installation carries a few megabytes of well-written, consistently styled text,
so ``python train.py`` needs no download. The files are read from the running interpreter's
stdlib directory in sorted order (the same corpus on every run of the same Python), skipping
installed packages, the stdlib's test suites and generated/vendored data, up to a size cap
that keeps the first run's tokenizer training and encoding quick.
"""

from __future__ import annotations

import os
import sys
import sysconfig

DEFAULT_MAX_BYTES = 6_000_000

# Directories that are not the stdlib proper, or are mostly test fixtures or generated tables.
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__",
              "lib2to3", "ensurepip", "pydoc_data", "encodings", "turtledemo", "config-3"}


def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def stdlib_files(root: str | None = None) -> list[str]:
    """Paths of the stdlib's .py files relative to its root, sorted."""
    root = root or stdlib_dir()
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(("config-", "."))]
        rel = os.path.relpath(here, root)
        for name in files:
            if name.endswith(".py") and not name.startswith("test_"):
                found.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(found)


def stdlib_documents(max_bytes: int = DEFAULT_MAX_BYTES, root: str | None = None) -> list[tuple[str, str]]:
    """(relative path, source text) of stdlib files in sorted order until ``max_bytes`` of text."""
    root = root or stdlib_dir()
    docs, total = [], 0
    for rel in stdlib_files(root):
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):  # a stray non-UTF-8 or unreadable file
            continue
        if not text.strip():
            continue
        if total + len(text) > max_bytes:
            break
        docs.append((rel, text))
        total += len(text)
    if not docs:
        raise RuntimeError(f"no Python source found under {root}; pass --data or prepare-data --text")
    return docs


def describe() -> str:
    return f"the Python {sys.version.split()[0]} standard library ({stdlib_dir()})"
