"""The command line as a user meets it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import bz2
import json
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "exchange-online-no-client-cert.pcap"


def fastcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_version_names_the_reader():
    r = fastcap("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("fastcap ") and "reader:" in r.stdout


def test_python_dash_m_fastcap_is_the_command():
    """`python -m fastcap` runs what the console script runs, exit code and output alike."""
    args = ["scan", "--ca-file", str(EXAMPLE.with_name("test-root.pem")), "--format", "jsonl",
            str(EXAMPLE)]
    package = subprocess.run([sys.executable, "-m", "fastcap", *args], capture_output=True,
                             text=True, timeout=120)
    module = fastcap(*args)
    assert (package.returncode, package.stdout) == (module.returncode, module.stdout)
    assert package.returncode == 1 and '"no_client_cert"' in package.stdout


def test_stats_on_the_bundled_example():
    r = fastcap("stats", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert "Format:            pcap, little endian" in r.stdout
    assert "Link types:        1(EN10MB)" in r.stdout
    assert "Port(s) 25:        26 frames in 1 flows" in r.stdout
    assert r.stderr == ""


def test_stats_json_is_stable_and_backends_agree():
    docs = []
    for backend in ("auto", "python"):
        r = fastcap("stats", "--json", "--backend", backend, "--ports", "25,587", str(EXAMPLE))
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["errors"] == []
        (f,) = doc["files"]
        f.pop("backend")
        docs.append(f)
    assert docs[0] == docs[1]
    f = docs[0]
    assert f["frames"] == 26 and f["ports"] == [25, 587] and f["selected_flows"] == 1
    assert set(f) >= {"path", "format", "size", "byte_orders", "linktypes", "frames", "packets",
                      "bytes", "first_ts_ns", "last_ts_ns", "ipv4", "ipv6", "tcp", "udp",
                      "other", "selected_frames", "selected_flows", "skipped", "warnings"}


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.pcap", "no such file"),
    (lambda d: d, "directory holds no pcap or pcapng files"),  # as scan says
    (lambda d: (d / "notes.txt").write_text("hello world") and d / "notes.txt",
     "not a pcap or pcapng file (magic 0x68656c6c)"),
    (lambda d: (d / "empty.pcap").write_bytes(b"") or d / "empty.pcap", "empty file"),
    (lambda d: (d / "c.pcap.bz2").write_bytes(bz2.compress(EXAMPLE.read_bytes()))
     and d / "c.pcap.bz2", "a bzip2 file, which fastcap does not unpack (it reads gzip, zstd "
                           "and lz4): unpack it first (magic 0x425a6839)"),
    (lambda d: (d / "c.pcap.xz").write_bytes(lzma.compress(EXAMPLE.read_bytes()))
     and d / "c.pcap.xz", "an xz file, which fastcap does not unpack"),
])
def test_unreadable_input_is_one_line_and_exit_2(tmp_path, make, needle):
    path = make(tmp_path)
    r = fastcap("stats", str(path))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"fastcap: {path}: ") and needle in r.stderr


def test_a_file_named_with_control_characters_is_named_escaped_on_one_line(tmp_path):
    """A log or capture named with an escape sequence or a newline (a name is data too):
    each message stays one line, and nothing reaches the terminal raw."""
    log = tmp_path / "a\x1b[2Jb\nc\x07.log"
    journal = Path(__file__).parent / "data" / "evidence" / "postfix-relay1-journal-short-iso.log"
    log.write_bytes(journal.read_bytes().replace(b"2026-03-10T10:31:16+0100",
                                                 b"2300-03-10T10:31:16+0100"))
    missing = tmp_path / "no\x1b[31mpe.pcap"
    r = fastcap("scan", str(EXAMPLE), str(missing), "--evidence", str(log), "--format", "jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not any(c in r.stderr for c in "\x1b\x07\r")
    lines = r.stderr.splitlines()
    shown = str(tmp_path) + "/a\\x1b[2Jb\\nc\\x07.log"
    assert any(x.startswith(f"fastcap: warning: {shown} line 2: a syslog line with a bad ")
               for x in lines)
    assert any(x.startswith(f"fastcap: {tmp_path}/no\\x1b[31mpe.pcap: ") for x in lines)
    assert all(x.startswith("fastcap: ") for x in lines)


def test_file_names_in_the_table_and_stats_are_escaped_and_never_fail_the_output(tmp_path):
    """Several captures scanned at once are named on standard output (the triage samples,
    the per-file headings, the summary's skipped lines; `stats`' File and Warning lines).
    A name with an escape sequence must not drive the terminal, and one that is not UTF-8
    (bytes 0xff 0x9b: an invalid byte, then the 8-bit CSI) must neither reach it raw nor stop
    a strict UTF-8 output half-way."""
    caps = tmp_path / "caps"
    caps.mkdir()
    data = EXAMPLE.read_bytes()
    (caps / "a\x1b]0;PWNED\x07\x1b[2Jx.pcap").write_bytes(data)
    (caps / "c\x1b[41mcut.pcap").write_bytes(data[:3000])
    with open(os.fsencode(caps) + b"/d\xff\x9b31m.pcap", "wb") as f:
        f.write(data)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    names = [os.fsencode(caps) + b"/" + n for n in sorted(os.listdir(os.fsencode(caps)))]
    for args in (["scan", "-j", "1", str(caps)], ["stats", *names]):
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                           timeout=120, env=env)
        assert r.returncode == 1 and b"Traceback" not in r.stderr, r.stderr
        out = r.stdout.decode("utf-8")
        assert not any(c in out for c in "\x1b\x07\x9b\r") and "\ufffd" not in out
        assert "a\\x1b]0;PWNED\\x07\\x1b[2Jx.pcap" in out
        assert "c\\x1b[41mcut.pcap" in out and "d\\udcff\\udc9b31m.pcap" in out
        if args[0] == "scan":
            assert "== " in out and ("skipped: " in out or "unreadable: " in out)
        else:
            assert "Warning:           " in out


def test_the_progress_line_names_the_file_escaped(monkeypatch):
    """The progress line moves the cursor on purpose (\\r, erase line); the name in it may not."""
    import io

    from fastcap.cli import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    progress = _Progress("a\x1b]0;PWNED\x07b.pcap")
    progress(50, 100)
    progress.done()
    assert term.getvalue().startswith("\ra\\x1b]0;PWNED\\x07b.pcap:  50.0%")
    assert term.getvalue().count("\x1b") == 1 and term.getvalue().endswith("\r\x1b[K")


def test_damaged_file_gives_partial_results_and_exit_1(tmp_path):
    path = tmp_path / "cut.pcap"
    frame = p.tcp_frame("10.0.0.1", "10.0.0.2", 40000, 25, 1, 1, p.ACK, b"x" * 100)
    write_pcap(path, [Record(frame, i * 10**9) for i in range(3)])
    path.write_bytes(path.read_bytes()[:-50])
    r = fastcap("stats", "--json", str(path))
    assert r.returncode == 1
    (f,) = json.loads(r.stdout)["files"]
    assert f["frames"] == 2 and f["selected_frames"] == 2
    offset = 24 + 2 * (16 + len(frame))
    assert f["warning_offsets"] == [offset]
    assert f"at offset {offset}" in r.stderr and "Traceback" not in r.stderr


def test_several_files_continue_past_a_bad_one(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\0" * 64)
    r = fastcap("stats", str(bad), str(EXAMPLE))
    assert r.returncode == 2
    assert "Frames:            26" in r.stdout
    assert "not a pcap or pcapng file (magic 0x00000000)" in r.stderr


def test_bad_ports_is_a_usage_error():
    r = fastcap("stats", "--ports", "99999", str(EXAMPLE))
    assert r.returncode == 2 and "bad port" in r.stderr


@pytest.mark.parametrize(("argv", "prog", "says"), [
    ([], "fastcap", "the following arguments are required: command"),
    (["nope"], "fastcap", "invalid choice: 'nope'"),
    (["scan", "--bogus", "x.pcap"], "fastcap", "unrecognized arguments: --bogus"),
    (["stats"], "fastcap stats", "the following arguments are required: FILE"),
    (["follow", "x.pcap"], "fastcap follow", "required: --session"),
    (["scan", "--trust", "foo", "x.pcap"], "fastcap scan", "argument --trust: invalid choice"),
    (["report", "--log-year", "abc", "x.pcap"], "fastcap report", "not a year: 'abc'"),
    (["scan", "-o", "d", "x.pcap"], "fastcap scan", "-o/--output goes with --format zeek"),
    (["scan", "-j", "0", "x.pcap"], "fastcap scan", "'0' is out of range"),
    (["report", "-v", "-o", "r.html", "x.pcap"], "fastcap report",
     "-v/--details is for scan's table"),
    (["report", "--details", "-o", "r.html", "x.pcap"], "fastcap report",
     "-v/--details is for scan's table"),
    (["follow", "--session", "0", "x.pcap"], "fastcap follow",
     "session number '0' is out of range (at least 1)"),
    (["follow", "--session", "-1", "x.pcap"], "fastcap follow",
     "session number '-1' is out of range (at least 1)"),
    (["scan", "--log-utc-offset", "+14:01", "x.pcap"], "fastcap scan",
     "UTC offset '+14:01' is out of range"),
    (["scan", "--ports", "25,,26", "x.pcap"], "fastcap scan",
     "argument --ports: empty port in '25,,26'"),
    (["scan", "--dask", " ", "x.pcap"], "fastcap scan", "give the scheduler's address"),
    (["scan", "--expect-name", "", "x.pcap"], "fastcap scan", "no name in ''"),
    (["report", "--expect-name", " . ", "x.pcap"], "fastcap report", "no name in ' . '"),
    (["scan", "--join-tolerance", "-1", "x.pcap"], "fastcap scan", "'-1' seconds is negative"),
    (["scan", "--html", "-", "x.pcap"], "fastcap scan", "--html -: standard output carries"),
    (["follow", "--join-window", "-0.5", "--session", "1", "x.pcap"], "fastcap follow",
     "'-0.5' seconds is negative"),
])
def test_a_usage_error_is_one_line_naming_the_help_to_read(capsys, argv, prog, says):
    """argparse would print its usage block (a dozen lines for scan) before the error."""
    from fastcap.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith(f"{prog}: error: ") and says in err
    assert err.rstrip("\n").endswith(f"; see {prog} --help")


@pytest.mark.parametrize(("argv", "dest", "files", "option", "value"), [
    (["scan", "a.pcap", "--format", "csv", "b.pcap"], "files", ["a.pcap", "b.pcap"],
     "format", "csv"),
    (["stats", "a.pcap", "--json", "b.pcap", "c.pcap"], "files", ["a.pcap", "b.pcap", "c.pcap"],
     "json", True),
    (["follow", "a.pcap", "--session", "2", "b.pcap"], "more", ["b.pcap"], "session", 2),
    (["report", "a.pcap", "-o", "r.html", "-"], "files", ["a.pcap", "-"], "output", "r.html"),
    (["scan", "-j", "1", "--", "-odd.pcap", "b.pcap"], "files", ["-odd.pcap", "b.pcap"],
     "jobs", 1),
])
def test_options_may_come_between_the_files(argv, dest, files, option, value):
    """`fastcap scan a.pcap --format csv b.pcap` reads both files, as GNU tools take it;
    after `--` every word is a file."""
    from fastcap.cli import _parser

    args = _parser().parse_args(argv)
    assert getattr(args, dest) == files and getattr(args, option) == value


def test_every_option_is_explained_in_help_and_in_the_readme():
    """`fastcap CMD --help` explains each option, and README.md names each one."""
    import argparse

    from fastcap.cli import _parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, command in _parser().commands.items():
        for action in command._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", readme)
                       for o in action.option_strings), (name, action.option_strings)


def test_report_to_standard_output(tmp_path):
    """`fastcap report CAP -o -` prints the page (as UTF-8), as `-` means for tshark's -w;
    no file named `-` is written."""
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "report", str(EXAMPLE), "-o", "-"],
                       capture_output=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": "ascii",
                            "PYTHONPATH": os.pathsep.join(  # as here, from another directory
                                os.path.abspath(p) for p in sys.path if p)})
    assert r.returncode == 1, r.stderr  # the example's problem, as scan exits
    assert r.stdout.startswith(b"<!DOCTYPE html>") and r.stdout.rstrip().endswith(b"</html>")
    assert b"contoso-com.mail.protection.outlook.com" in r.stdout
    assert list(tmp_path.iterdir()) == []
    assert b"fastcap: wrote standard output (1 session(s)" in r.stderr


def test_follow_takes_a_directory_or_a_pattern_as_scan_does(capsys, tmp_path):
    """The triage names sessions by the files scan expanded from a directory or a pattern;
    follow expands them the same way, so `follow DIR --in FILE --session N` finds them."""
    import shutil

    from fastcap.cli import main

    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(SCENARIOS, ring / "b.pcapng")
    shutil.copy(EXAMPLE, ring / "a.pcap")
    (ring / "notes.txt").write_text("not a capture\n")
    assert main(["scan", "--format", "csv", str(ring)]) == 1
    rows = capsys.readouterr().out.splitlines()[1:]
    want = next(r for r in rows if r.startswith(f"{ring / 'b.pcapng'},3,"))
    for given in ([str(ring)], [str(ring / "*.pcap*")]):
        assert main(["follow", *given, "--in", str(ring / "b.pcapng"), "--session", "3"]) == 0
        out, err = capsys.readouterr()
        first, last = want.split(",")[2:4]
        assert out.startswith(f"Session 3: {want.split(',')[4]} -> {want.split(',')[5]}, "
                              f"frames {first}-{last} ")
    assert main(["follow", str(tmp_path / "none*.pcap"), "--session", "1"]) == 2
    assert "no file matches this pattern" in capsys.readouterr().err


def test_a_usage_error_quoting_a_control_character_escapes_it(capsys):
    from fastcap.cli import main

    with pytest.raises(SystemExit):
        main(["scan", "--trust", "a\x1b[2J\nb", "x.pcap"])
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1 and "\\x1b[2J\\nb" in err


def test_stats_does_not_fault_window_temporaries_in_again(tmp_path):
    """A warm `stats` run does not page-fault each window's numpy temporaries in again, with
    glibc's default allocator (select decodes few rows, so its temporaries stay small);
    counted with getrusage in fresh interpreters, not timed."""
    import os

    if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
        pytest.skip("glibc only")
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("AddressSanitizer replaces glibc's malloc (sanitizer CI step)")
    frame = p.tcp_frame("10.0.0.1", "10.0.0.2", 1025, 80, 1, 1, 0x10, b"x" * 20)
    path = tmp_path / "many.pcap"
    write_pcap(path, (Record(frame, 10**9 + i) for i in range(300_000)))
    probe = ("import resource, sys\n"
             "from fastcap.cli import tune_allocator\n"
             "from fastcap.select.stats import compute_stats\n"
             "tune_allocator() if sys.argv[2] == '1' else None\n"
             "compute_stats(sys.argv[1])\n"
             "got = []\n"
             "for _ in range(3):  # the least of three: the mapping's own faults vary\n"
             "    a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "    compute_stats(sys.argv[1])\n"
             "    got.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a)\n"
             "print(min(got))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    faults = int(subprocess.run([sys.executable, "-c", probe, str(path), "0"], env=env,
                                capture_output=True, text=True, check=True).stdout)
    # here ~130 once warm (~3,500 when every row was decoded); the mapping's own faults vary
    assert faults < 1000, faults


# Python's own buffering of stdout, as a user's shell has it (PYTHONUNBUFFERED would hide
# an output left in the buffer).
_BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

# The thread outlives main(): it ends only once the main thread waits in a join (not after a
# sleep that a loaded machine could outlast), so a run() that skips the join loses its file.
_RUN = """
import atexit, sys, threading, time
from pathlib import Path
from fastcap.cli import run
out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
def late():
    main, end = threading.main_thread().ident, time.monotonic() + 100
    while time.monotonic() < end:
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code.co_name in ("join", "_wait_for_tstate_lock"):
            break
        time.sleep(0.005)
    (out / "thread").write_text("joined")
threading.Thread(target=late).start()
sys.argv[1:] = sys.argv[2:]
run()
"""


def test_the_console_script_ends_as_an_ordinary_exit_would(tmp_path, capsys):
    """run() leaves without the interpreter's teardown: what it must still do is write all
    the output (a pipe is block-buffered, and this report fits in the buffer), keep main's
    exit code, join other threads and run the exit handlers."""
    from fastcap.cli import main

    args = ["scan", str(EXAMPLE)]
    expected = main(args)
    in_process = capsys.readouterr().out
    r = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path), *args], capture_output=True,
                       text=True, timeout=120, env=_BUFFERED)
    assert (r.returncode, r.stdout) == (expected, in_process)
    assert expected == 1 and "no_client_cert" in in_process and len(in_process) < 8192
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"


_THREADS = """
import atexit, os, sys
from pathlib import Path
from fastcap.cli import run
out = Path(sys.argv[1])
atexit.register(lambda: out.write_text(
    f"{len(os.listdir('/proc/self/task'))} {os.environ.get('OPENBLAS_NUM_THREADS')}"))
sys.argv[1:] = sys.argv[2:]
run()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in Linux's /proc")
@pytest.mark.parametrize("users", [None, "2"])
def test_the_console_script_starts_no_blas_threads_unless_the_user_sized_them(tmp_path, users):
    """numpy's OpenBLAS would start busy-waiting threads on import (one per core beyond the
    first); the command line runs in one thread, and a user's own OPENBLAS_NUM_THREADS is
    kept."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if users:
        env["OPENBLAS_NUM_THREADS"] = users
    report = tmp_path / "threads"
    r = subprocess.run([sys.executable, "-c", _THREADS, str(report), "scan", str(EXAMPLE)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1 and "no_client_cert" in r.stdout, r.stderr
    threads, setting = report.read_text().split()
    assert setting == (users or "1")
    if not users:
        assert threads == "1"


@pytest.mark.parametrize("files", [1, 200])
def test_a_reader_that_leaves_early_is_not_an_error(tmp_path, files):
    """``fastcap scan ... | head -c 50``, the reader gone before the last write (200 JSON
    lines) or before the first (one short report, still in the buffer when main returns):
    the closed pipe ends the scan quietly and successfully, as main() treats it."""
    fmt = ["--format", "jsonl"] if files > 1 else []
    proc = subprocess.Popen([sys.executable, "-m", "fastcap.cli", "scan", *fmt,
                             *[str(EXAMPLE)] * files], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_BUFFERED)
    if files > 1:
        assert len(proc.stdout.read(50)) == 50
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Exception" not in err and "Traceback" not in err


SCENARIOS = EXAMPLE.parent / "all-scenarios.pcapng"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize(("argv", "unbuffered"), [
    (("scan", str(EXAMPLE)), False),  # the report still sits in the buffer at the end
    (("scan", "--format", "json", str(SCENARIOS)), False),  # longer: a print fails
    (("scan", "--format", "csv", str(SCENARIOS), str(SCENARIOS)), False),
    (("stats", *[str(SCENARIOS)] * 20), False),
    (("stats", str(SCENARIOS)), True),  # PYTHONUNBUFFERED: the first print fails
    (("follow", str(SCENARIOS), "--session", "1"), True),
])
def test_output_that_cannot_be_written_is_one_line_and_exit_120(argv, unbuffered):
    """Standard output on a full disk, whether the last flush fails or a print before it:
    one line says so, with Python's own exit code."""
    env = {**_BUFFERED, "PYTHONUNBUFFERED": "1"} if unbuffered else _BUFFERED
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", *argv],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                           env=env)
    assert r.returncode == 120, r.stderr
    assert r.stderr.count("fastcap: cannot write the output: [Errno 28]") == 1, r.stderr
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr


def test_a_closed_standard_output_is_not_an_error_for_logs_written_to_files(tmp_path):
    """``fastcap scan --format zeek -o DIR ... >&-``: nothing goes to stdout (None in
    Python), the logs are written and the exit code is the scan's."""
    r = subprocess.run(
        [sys.executable, "-m", "fastcap.cli", "scan", "--format", "zeek", "-o", str(tmp_path),
         str(EXAMPLE)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=120, env=_BUFFERED, preexec_fn=lambda: os.close(1))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smtp.log", "ssl.log", "x509.log"]


def test_log_utc_offset_takes_an_offset_or_an_iana_zone_name():
    import argparse

    from fastcap.cli import _utc_offset
    from fastcap.evidence.logzone import LogZone
    assert [_utc_offset(t) for t in ("+01:00", "-0500", "+2")] == [3600, -18000, 7200]
    assert _utc_offset("Europe/Berlin") == LogZone(0, "Europe/Berlin")
    for bad, said in (("Nowhere/City", "no time zone 'Nowhere/City'"),
                      ("1x", "not a UTC offset or time zone"), ("+15", "out of range")):
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            _utc_offset(bad)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("argv", [
    ("scan", "NOTACAPTURE"),  # exit 2: cannot be read
    ("stats", "NOTACAPTURE"),
    ("scan", "--ports", "x", "NOTACAPTURE"),  # exit 2: usage error
    ("scan", str(EXAMPLE)),  # exit 1: problems found, the summary on stdout
    ("follow", "NOTACAPTURE", "--session", "1"),
])
def test_the_exit_code_does_not_depend_on_whether_stderr_could_be_written(tmp_path, argv):
    """``fastcap ... 2>/dev/full``: the message is lost, the exit code is the one a caller
    would have had with a working stderr (the failed write is not an uncaught error)."""
    bad = tmp_path / "notacapture.txt"
    bad.write_text("not a capture\n")
    argv = [str(bad) if a == "NOTACAPTURE" else a for a in argv]
    cmd = [sys.executable, "-m", "fastcap.cli", *argv]
    want = subprocess.run(cmd, capture_output=True, timeout=120, env=_BUFFERED).returncode
    assert want in (1, 2)
    with open("/dev/full", "w") as full:
        got = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=full, timeout=120,
                             env=_BUFFERED).returncode
    assert got == want


def test_zeek_logs_into_a_file_say_it_is_no_directory(tmp_path):
    """-o with --format zeek names a directory; a file there is named so, in one line."""
    taken = tmp_path / "conn.log"
    taken.write_text("kept\n")
    r = fastcap("scan", "--format", "zeek", "-o", str(taken), str(EXAMPLE))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"fastcap: cannot write Zeek logs in {taken}: it is a file, not a "
                        "directory (-o names the directory the logs go in)\n")
    assert taken.read_text() == "kept\n"
