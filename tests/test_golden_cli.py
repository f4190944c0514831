"""The CLI's output, compared with itself across ways of running the same scan: one process
or worker processes (-j), one capture file or the same capture cut into ring-buffer files.
Verdict texts carry dates (certificate validity), so runs are compared with each other
rather than with stored files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastcap.cli import main

from .test_ring import split_pcap

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CA = str(EXAMPLES / "test-root.pem")
SCENARIOS = str(EXAMPLES / "all-scenarios.pcapng")
EXO = EXAMPLES / "exchange-online-no-client-cert.pcap"
FORMATS = ("json", "jsonl", "csv", "table")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _scan(capsys, files, fmt: str, jobs: int) -> tuple[int, str, str]:
    return _run(capsys, "scan", *map(str, files), "--ca-file", CA, "--format", fmt,
                "-j", str(jobs))


@pytest.fixture(scope="module")
def ring_files(tmp_path_factory) -> list[Path]:
    files, _ = split_pcap(EXO, tmp_path_factory.mktemp("ring"), 2)
    return files


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("bad") / "not-a-capture.pcap"
    p.write_bytes(b"this is no capture file at all" * 4)
    return p


@pytest.mark.parametrize("fmt", FORMATS)
def test_worker_processes_print_what_one_process_prints(capsys, fmt, garbage):
    files = [SCENARIOS, EXO]
    one = _scan(capsys, files, fmt, 1)
    two = _scan(capsys, files, fmt, 2)
    assert one == two
    assert one[0] == 1  # problems found
    assert "exchange_online_peer" in one[1]
    if fmt == "table":  # the problems grouped by cause head the table
        assert one[1].startswith("9 problem(s) in 7 of 10 session(s)\n")
    if fmt == "json":
        assert [p["sessions"] for p in json.loads(one[1])["problems"]][0] == 2
    bad = [_scan(capsys, [*files, garbage], fmt, j) for j in (1, 2)]
    assert bad[0] == bad[1]
    assert bad[0][0] == 2 and "not-a-capture.pcap" in bad[0][2]


@pytest.mark.parametrize("jobs", [1, 2])
def test_ring_files_print_the_sessions_of_the_whole_capture(capsys, ring_files, jobs):
    code, out, _ = _scan(capsys, ring_files, "json", jobs)
    wcode, wout, _ = _scan(capsys, [EXO], "json", jobs)
    assert code == wcode == 1
    got, whole = json.loads(out)["files"], json.loads(wout)["files"]
    assert len(got) == 2 and len(whole) == 1
    (session,) = got[0]["sessions"]  # reported once, in the file where it began
    assert got[1]["sessions"] == []
    assert session["continues_into"] == [str(ring_files[1])]
    assert session["file"] == str(ring_files[0])
    assert {**session, "continues_into": [], "file": str(EXO)} == whole[0]["sessions"][0]
    assert got[0]["summary"]["verdicts"] == whole[0]["summary"]["verdicts"]


def test_ring_files_print_the_same_with_workers(capsys, ring_files):
    for fmt in FORMATS:
        assert _scan(capsys, ring_files, fmt, 1) == _scan(capsys, ring_files, fmt, 2), fmt


def test_stats_and_follow_are_stable(capsys):
    """Commands with no -j: the same output on a second run, and the exit code of today."""
    for argv in (("stats", "--json", SCENARIOS, str(EXO)), ("follow", SCENARIOS, "--session",
                                                            "1")):
        first = _run(capsys, *argv)
        assert first[0] == 0 and first[1]
        assert _run(capsys, *argv) == first
