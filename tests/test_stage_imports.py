"""benchmarks/_fastcap_stage.py times work, not imports: nothing is imported once its clock
has started, on a capture that carries certificates (their checks load the X.509 code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLE = PROJECT / "examples" / "all-scenarios.pcapng"

# The stage's main() with the clock's first reading noting which modules were loaded then.
_PROBE = """
import json, sys, time
sys.path.insert(0, {bench!r})
import _fastcap_stage as stage
loaded, real = [], time.perf_counter
def clock():
    if not loaded:
        loaded.append(set(sys.modules))
    return real()
stage.time.perf_counter = clock
sys.argv = ["stage", {capture!r}, {stage!r}, "native"]
stage.main()
print(json.dumps(sorted(set(sys.modules) - loaded[0])))
"""


@pytest.mark.parametrize("stage", ["scan", "sessions", "select", "reassemble"])
def test_no_import_after_the_clock_starts(stage: str, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    # A machine's first scan writes the trust store's parse to the cache (tempfile, shutil and
    # the rest loaded for that, inside the clock, as part of the store's first load); every
    # later run, compare.py's included, reads it back. Check those.
    subprocess.run([sys.executable, str(PROJECT / "benchmarks" / "_fastcap_stage.py"),
                    str(EXAMPLE), "scan", "native"], env=env, check=True, capture_output=True,
                   timeout=120)
    assert list(tmp_path.rglob("*")), "the first run wrote no cache"
    code = _PROBE.format(bench=str(PROJECT / "benchmarks"), capture=str(EXAMPLE), stage=stage)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result, late = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert result["seconds"] > 0 and result.get("scanned_sessions", 1) > 0
    # a codec the interpreter loads on its first use (a certificate name in UTF-16) is no
    # import of the scan's
    assert [m for m in late if not m.startswith("encodings.")] == []
