"""benchmarks/startup_parts.py: the command it times inside is the real one, it times every
dataclass fastcap makes in it, and its experiment reuses every method's code."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import startup_parts

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "exchange-online-no-client-cert.pcap"

# Every dataclass defined in a fastcap module the command has loaded, by its module and
# qualified name (a slotted one is made again: the class in its module is the one named).
_LOADED = r"""
import dataclasses, sys
from fastcap.cli import main
sys.argv = ["fastcap", "scan", "-j", "1", "--format", "jsonl", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
found = set()
todo = [v for name, m in list(sys.modules.items()) if name.startswith("fastcap")
        for v in vars(m).values() if isinstance(v, type)]
while todo:
    c = todo.pop()
    if c.__module__.startswith("fastcap") and "__dataclass_fields__" in vars(c):
        found.add(f"{c.__module__}.{c.__qualname__}")
    todo.extend(v for v in vars(c).values() if isinstance(v, type) and v is not c
                and v.__qualname__.startswith(c.__qualname__ + "."))
print(sorted(found), file=sys.stderr)
"""


def test_it_times_every_dataclass_the_command_loads(tmp_path: Path) -> None:
    _took, got = startup_parts.inside(str(EXAMPLE), "", str(tmp_path / "report.json"))
    loaded = subprocess.run([sys.executable, "-c", _LOADED, str(EXAMPLE)],
                            capture_output=True, text=True, check=True)
    expected = ast.literal_eval(loaded.stderr.strip().splitlines()[-1])
    assert sorted(got["names"]) == expected
    assert got["count"] == len(expected) > 50
    assert 0 < got["methods"] < got["classes"] < got["total"]


def test_the_command_timed_inside_writes_what_the_command_writes(tmp_path: Path) -> None:
    cmd = ["scan", "-j", "1", "--format", "jsonl", str(EXAMPLE)]
    plain = subprocess.run([sys.executable, "-m", "fastcap.cli", *cmd],
                           capture_output=True, text=True, check=False)
    timed = subprocess.run(
        [sys.executable, "-c", startup_parts._INSIDE, str(tmp_path / "r.json"), "", *cmd],
        capture_output=True, text=True, check=False)
    assert plain.stdout and timed.stdout == plain.stdout
    assert json.loads(plain.stdout.splitlines()[0])["verdicts"]


def test_the_experiment_reuses_the_code_of_every_method(tmp_path: Path) -> None:
    report, cache = str(tmp_path / "report.json"), str(tmp_path / "methods.marshal")
    _took, first = startup_parts.inside(str(EXAMPLE), cache, report)
    # every class's methods compiled: one text each (Python 3.11, 3.12) or one a class (3.13)
    assert first["compiled"] >= first["count"] > 50
    assert Path(cache).stat().st_size > 0
    _took, again = startup_parts.inside(str(EXAMPLE), cache, report)
    assert again["compiled"] == 0 and again["load"] > 0
    assert sorted(again["names"]) == sorted(first["names"])


def test_a_run_that_writes_no_report_stops_the_script(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"classes": 1.0}')  # an earlier run's, which must not be read again
    monkeypatch.setattr(startup_parts, "PY", shutil.which("false") or "false")
    with pytest.raises(SystemExit, match="wrote no report"):
        startup_parts.inside(str(EXAMPLE), "", str(report))
