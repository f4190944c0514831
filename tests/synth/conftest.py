"""The tshark and capinfos helpers the generator tests check their output against."""

from __future__ import annotations

import shutil
import subprocess

import pytest


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
