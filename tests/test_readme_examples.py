"""README's examples, run as a reader copies them: the Python API snippets run as written,
so README cannot drift from what the program does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EVIDENCE = ROOT / "tests" / "data" / "evidence"


PYTHON_API = README.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
# README's placeholder names, and the files of the checkout that stand in for them
STAND_INS = {
    "big.pcapng": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "ring_00001.pcapng": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "ring_00002.pcapng": ROOT / "examples" / "all-scenarios.pcapng",
    "capture.pcap": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "SEND20260310-1.LOG": EVIDENCE / "SEND20260310-1.LOG",
    "inbound.json": EVIDENCE / "inbound-connector.json",
}


@pytest.mark.parametrize("n", range(len(re.findall(r"```python\n", PYTHON_API))))
def test_python_api_snippet_runs_as_written(n):
    """Each snippet on its own, in a fresh interpreter (one freezes the collector), with the
    checkout's files for the placeholder names."""
    code = re.findall(r"```python\n(.*?)```", PYTHON_API, re.S)[n]
    for name, path in STAND_INS.items():
        code = code.replace(f'"{name}"', repr(str(path)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
