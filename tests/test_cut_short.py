"""A capture cut short by another program while fastcap reads it (logrotate's copytruncate,
a capture tool reusing its file).  Past the new end the rest of the last page reads as zeros
and every later page raises SIGBUS, which ended the process wherever it touched one.  Now the
read stops at the new end with a warning naming it, and nothing read past it is used.

Each case runs in a child process, so that a regression is a failed test (killed by SIGBUS,
or zeros read as frames), not a killed test run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastcap._ffi import native_available

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.skipif(not native_available(),
                                reason="the guard is part of the C module")


def child(code: str, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr}"
    return r


@pytest.mark.parametrize(("name", "cut"), [
    ("all-scenarios.pcapng", 20000),  # inside a block, mid-page
    ("all-scenarios.pcapng", 20480),  # on a page border
    ("all-scenarios.pcapng", 0),
    ("exchange-online-no-client-cert.pcap", 2000),
    ("exchange-online-no-client-cert.pcap", 4096),
])
def test_a_walk_stops_where_the_file_now_ends(tmp_path, name, cut):
    """The first window is walked, then the file is cut; the rest of the walk gives exactly
    the records that end by the cut (those read before it stand), then one warning."""
    r = child("""
        import json, os, shutil, sys
        from fastcap.read.capture import Capture
        src, copy, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
        with Capture(src, window=4) as cap:
            whole = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
        shutil.copy(src, copy)
        with Capture(copy, window=4) as cap:
            windows = cap.windows()
            first = next(windows)
            rows = [(int(o), int(c)) for o, c in zip(first.offset, first.caplen)]
            os.truncate(copy, cut)
            rows += [(int(o), int(c)) for w in windows for o, c in zip(w.offset, w.caplen)]
            warnings = [(w.offset, w.kind, w.message) for w in cap.meta.warnings]
        print(json.dumps([whole, rows, warnings]))
    """, str(EXAMPLES / name), str(tmp_path / name), str(cut))
    whole, rows, warnings = json.loads(r.stdout)
    read_first = rows[:4]
    assert read_first == whole[:4]
    assert rows[4:] == [x for x in whole[4:] if x[0] + x[1] <= cut]
    assert warnings == [[cut, "cut_short", f"the file was cut short while it was read (it has "
                                           f"{cut} bytes now): its bytes from here on were "
                                           f"gone; reading stopped"]]


def ring_halves(tmp_path: Path, src: Path) -> tuple[list[str], Path]:
    """`src`'s frames as two pcap files, the second starting where the first ends (a ring
    buffer, read as one capture): ([the first], the second)."""
    from fastcap.read.capture import Capture
    from fastcap_synth.writers import Record, write_pcap

    data = src.read_bytes()
    with Capture(src) as cap:
        frames = [Record(data[o:o + c], int(t), int(n)) for w in cap.windows()
                  for o, c, t, n in zip(w.offset, w.caplen, w.ts_ns, w.orig_len, strict=True)]
    half = len(frames) // 2
    a, b = tmp_path / "ring-1.pcap", tmp_path / "ring-2.pcap"
    write_pcap(a, frames[:half], nanosecond=True)
    write_pcap(b, frames[half:], nanosecond=True)
    return [str(a)], b


@pytest.mark.parametrize(("jobs", "cut"), [("1", 20000), ("2", 6000), ("2-file", 6000),
                                           ("2-ring", 6000)])
def test_a_scan_whose_file_is_cut_after_its_frames_were_walked(tmp_path, jobs, cut):
    """Cut after the frames were walked and before their payloads were read (one process:
    after the window was selected; -j 2, in 1 KiB ranges: when the first range copies its
    payloads, or, where the ranges leave the payloads in the file, before this process
    maps it to read them, also as the second file of a ring buffer): the sessions are those
    of the file as cut, with the cut's warning, never sessions judged on zeros."""
    src = EXAMPLES / "all-scenarios.pcapng"
    first: list[str] = []
    if jobs == "2-ring":  # the example's frames in two pcap files, the second going on
        first, src = ring_halves(tmp_path, src)
    before = tmp_path / f"before{src.suffix}"
    before.write_bytes(src.read_bytes()[:cut])
    r = child("""
        import os, shutil, sys
        from fastcap import cli, session
        from fastcap.run import ranges, scanner, streamed
        src, path, cut, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        shutil.copy(src, path)
        scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10

        def cutting(real):
            def step(*a, **kw):
                if os.path.getsize(path) > cut and (jobs != "2-ring" or a[4] == path):
                    os.truncate(path, cut)
                return real(*a, **kw)
            return step

        if jobs == "1":
            real_selected = session.iter_selected
            def selected(*a, **kw):
                for sel in real_selected(*a, **kw):
                    if os.path.getsize(path) > cut:
                        os.truncate(path, cut)
                    yield sel
            session.iter_selected = selected
        elif jobs == "2":
            ranges.carried = cutting(ranges.carried)
        else:
            streamed.CARRY_MAX = 0  # payloads stay in the file
            streamed._fed_range = cutting(streamed._fed_range)
        sys.exit(cli.main(["scan", "-j", jobs[0], "--format", "jsonl", *sys.argv[5:], path]))
    """, str(src), str(tmp_path / f"cut{src.suffix}"), str(cut), jobs, *first)
    assert "Traceback" not in r.stderr and r.returncode in (1, 2), r.stderr
    assert f"the file was cut short while it was read (it has {cut} bytes now)" in r.stderr
    cut_sessions = [json.loads(x) for x in r.stdout.splitlines()]
    ref = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "-j", "1", "--format",
                          "jsonl", *first, str(before)], capture_output=True, text=True,
                         timeout=120)
    want = [json.loads(x) for x in ref.stdout.splitlines()]

    def verdicts(sessions):
        return [[v["code"] for v in s["verdicts"]] for s in sessions]

    assert verdicts(cut_sessions) == verdicts(want) and len(want) > 0
