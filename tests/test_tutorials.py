"""Every numbered tutorial runs, in quick mode, as a user would run it, and prints the
checks it claims. The tutorials assert their claims themselves; this test also makes sure
no claim silently disappears from the output."""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "[0-9][0-9]_*.py")))


def claimed_checks(path: str) -> list:
    """The claims a tutorial's source makes with _common.check("...", ...)."""
    with open(path) as f:
        source = f.read()
    return re.findall(r'_common\.check\(\s*f?"([^"{]+)"', source)


def test_tutorials_are_found():
    names = [os.path.basename(p)[:2] for p in TUTORIALS]
    assert names[:8] == ["01", "02", "03", "04", "05", "06", "07", "08"], names


@pytest.mark.parametrize("path", TUTORIALS, ids=[os.path.basename(p) for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, MINIGRAD_QUICK="1", MINIGRAD_TUTORIAL_OUT=str(tmp_path))
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run([sys.executable, path, "--quick"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{os.path.basename(path)} failed:\n{output[-3000:]}"
    claims = claimed_checks(path)
    assert len(claims) >= 3, "a tutorial should check what it teaches"
    for claim in claims:
        assert f"CHECK {claim.strip()}" in output and f"CHECK {claim.strip()}: FAILED" not in output, \
            f"{os.path.basename(path)} never printed its check {claim!r}"
    printed_ok = re.findall(r"^CHECK .*: OK$", proc.stdout, flags=re.M)
    assert len(printed_ok) >= len(claims)
