"""Many files: directories of ring-buffer files and glob patterns, read in first-packet order,
and `scan -j N` across files giving exactly what one process gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fastcap.read.inputs import expand_inputs, first_timestamp
from fastcap_synth.writers import Record, write_pcap

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def ring(tmp_path) -> tuple[Path, list[Path]]:
    """Three capture files whose names sort against their time order, plus a note file."""
    d = tmp_path / "ring"
    d.mkdir()
    order = []
    for name, t0 in (("c.pcap", 3), ("a.pcap", 2), ("b.pcap", 1)):
        p = d / name
        write_pcap(p, [Record(b"\0" * 60, t0 * 10**9 + i) for i in range(3)])
        order.append((t0, p))
    (d / "README.txt").write_text("ring buffer of the mail relay\n")
    return d, [p for _t, p in sorted(order)]


def test_directory_reads_in_first_packet_order(tmp_path):
    d, by_time = ring(tmp_path)
    files, warnings, errors = expand_inputs([str(d)])
    assert files == [str(p) for p in by_time]
    assert warnings == [f"{d / 'README.txt'}: not a pcap or pcapng file; skipped"]
    assert errors == []
    assert [first_timestamp(f) for f in files] == [10**9, 2 * 10**9, 3 * 10**9]


def test_glob_patterns_and_what_matches_nothing(tmp_path):
    d, by_time = ring(tmp_path)
    files, _w, errors = expand_inputs([str(d / "*.pcap"), str(d / "a.pcap")])
    assert files == [str(p) for p in by_time] + [str(d / "a.pcap")]  # explicit names as given
    empty = tmp_path / "empty"
    empty.mkdir()
    files, _w, errors = expand_inputs([str(d / "*.pcapng"), str(empty)])
    assert files == [] and errors == [f"{d / '*.pcapng'}: no file matches this pattern",
                                      f"{empty}: directory holds no pcap or pcapng files"]
    assert expand_inputs([str(tmp_path / "missing.pcap")])[0] == [str(tmp_path / "missing.pcap")]


def test_a_directory_or_file_that_cannot_be_read_is_named_with_why(tmp_path, monkeypatch):
    """As the reader says of a path given itself: permission denied, not "not a capture",
    and a directory that cannot be listed is an error of its own, not a traceback that
    stops the files beside it.  (Tests run as root, whom permissions do not stop: the
    refusals are the operating system's, put in place.)"""
    import fastcap.read.inputs as inputs

    d, by_time = ring(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_listdir, real_open = inputs.os.listdir, open

    def listdir(path):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    def refusing_open(path, *a, **kw):
        if str(path).endswith("b.pcap"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(inputs.os, "listdir", listdir)
    monkeypatch.setattr(inputs, "open", refusing_open, raising=False)
    files, warnings, errors = expand_inputs([str(locked), str(d)])
    assert errors == [f"{locked}: cannot list the directory: Permission denied"]
    assert files == [str(p) for p in by_time if p.name != "b.pcap"]
    assert warnings == [f"{d / 'README.txt'}: not a pcap or pcapng file; skipped",
                        f"{d / 'b.pcap'}: cannot read: Permission denied; skipped"]


def test_stats_takes_directories_and_patterns_as_scan_does(tmp_path):
    d, by_time = ring(tmp_path)
    for arg in (str(d), str(d / "*.pcap")):
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", "stats", "--json", arg],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert [f["path"] for f in json.loads(r.stdout)["files"]] == [str(p) for p in by_time]
    assert r.stderr == "" and "README.txt: not a pcap" in subprocess.run(
        [sys.executable, "-m", "fastcap.cli", "stats", str(d)], capture_output=True,
        text=True, timeout=120).stderr
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "stats", str(d / "*.pcapng")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr == f"fastcap: {d / '*.pcapng'}: no file matches this pattern\n"


def _scan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--ca-file",
                           str(EXAMPLES / "test-root.pem"), *args],
                          capture_output=True, text=True, timeout=300)


def test_jobs_across_files_match_one_process(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i, src in enumerate([EXAMPLES / "all-scenarios.pcapng",
                             EXAMPLES / "exchange-online-no-client-cert.pcap"] * 2):
        shutil.copy(src, d / f"{i}-{src.name}")
    one = _scan("-j", "1", "--format", "jsonl", str(d))
    many = _scan("-j", "3", "--format", "jsonl", str(d))
    assert one.returncode == many.returncode == 1
    assert one.stdout == many.stdout and one.stdout.count("\n") == 2 * (9 + 1)
    files = [json.loads(line)["file"] for line in many.stdout.splitlines()]
    assert files == sorted(files, key=files.index)  # each file's sessions together, in order
    table = _scan("-j", "2", str(d))
    assert table.stdout.count("== ") == 4 and "20 session(s) in 4 file(s)" in table.stdout


def test_unreadable_member_and_bad_pattern_exit_2(tmp_path):
    d, _ = ring(tmp_path)
    (d / "zz.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 10)  # a cut-off header
    r = _scan("-j", "2", "--format", "json", str(d), str(tmp_path / "nothing-*.pcap"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no file matches this pattern" in r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["files"]) == 4 and doc["errors"]
