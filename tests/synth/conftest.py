"""Make ``fastcap.synth`` importable from a source checkout and share the tshark helper."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_SRC = Path(__file__).resolve().parents[2] / "src"
try:
    import fastcap.synth  # noqa: F401
except ImportError:  # not installed (or an install without synth): use the checkout
    sys.modules.pop("fastcap", None)
    sys.path.insert(0, str(_SRC))


def _run_tool(tool: str, *args: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} not installed; it is the oracle for this test")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def run_tshark():
    """Run tshark with arguments, return stdout lines (skips when tshark is missing)."""

    def run(*args: str) -> list[str]:
        return _run_tool("tshark", "-n", *args).splitlines()

    return run


@pytest.fixture
def run_capinfos():
    """Run capinfos with arguments, return stdout (skips when capinfos is missing)."""

    def run(*args: str) -> str:
        return _run_tool("capinfos", *args)

    return run
