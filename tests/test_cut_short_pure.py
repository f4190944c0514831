"""A capture cut short while it is read, by an install without the C module: no fault of a
page past the new end is answered there, and touching one (SIGBUS) ended the process.  Now
the pages past a cut are made zeros once it is seen, before each window is walked and each
batch of payloads is read, and the pure-Python read tells the cut as the native one does.

Each case runs in a child process where fastcap._native cannot be imported, so that a
regression is a failed test (killed by SIGBUS), not a killed test run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PURE = 'import sys\nsys.modules["fastcap._native"] = None  # an install without a compiler\n'


def pure_child(code: str, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", PURE + textwrap.dedent(code), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr}"
    return r


@pytest.mark.parametrize(("name", "cut"), [
    ("all-scenarios.pcapng", 20000),  # inside a block, mid-page
    ("all-scenarios.pcapng", 20480),  # on a page border
    ("all-scenarios.pcapng", 0),
    ("exchange-online-no-client-cert.pcap", 4096),
])
def test_a_pure_walk_stops_where_the_file_now_ends(tmp_path, name, cut):
    """The first window is walked, then the file is cut: the records that end by the cut,
    then the cut's warning at its offset, as with the C module."""
    r = pure_child("""
        import json, os, shutil
        from fastcap import _ffi
        from fastcap.read.capture import Capture
        src, copy, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
        assert not _ffi.native_available()
        with Capture(src, window=4) as cap:
            whole = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
        shutil.copy(src, copy)
        with Capture(copy, window=4) as cap:
            windows = cap.windows()
            first = next(windows)
            rows = [(int(o), int(c)) for o, c in zip(first.offset, first.caplen)]
            os.truncate(copy, cut)
            rows += [(int(o), int(c)) for w in windows for o, c in zip(w.offset, w.caplen)]
            warnings = [(w.offset, w.kind) for w in cap.meta.warnings]
        print(json.dumps([whole, rows, warnings]))
    """, str(EXAMPLES / name), str(tmp_path / name), str(cut))
    whole, rows, warnings = json.loads(r.stdout)
    assert rows[:4] == whole[:4]
    assert rows[4:] == [x for x in whole[4:] if x[0] + x[1] <= cut]
    assert warnings == [[cut, "cut_short"]]


def test_pure_flows_dealt_to_an_executor_read_the_file_as_cut(tmp_path):
    """The executor path's phase two maps the file again for the payloads; cut just before
    it feeds them, the first batch touched the pages past the new end.  Now the sessions
    are those of the file as cut, with the cut's warning at its offset."""
    cut = 20000
    src = EXAMPLES / "all-scenarios.pcapng"
    before = tmp_path / "before.pcapng"
    before.write_bytes(src.read_bytes()[:cut])
    r = pure_child("""
        import json, os, shutil
        from fastcap.run import scanner, split
        from fastcap.run.workers import SerialExecutor
        src, path, before, cut = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        shutil.copy(src, path)
        real_fed = split.fed
        def fed(*a):
            if os.path.getsize(path) > cut:
                os.truncate(path, cut)
            return real_fed(*a)
        split.fed = fed

        def verdicts(found):
            return [[v.code for v in s.verdicts] for s in found.sessions]

        with SerialExecutor() as ex:
            (got,) = scanner.scan_files([path], executor=ex, jobs=2, parts=4)
        (want,) = scanner.scan_files([before], jobs=1)
        print(json.dumps([verdicts(got), verdicts(want), got.error, got.summary.warnings]))
    """, str(src), str(tmp_path / "cut.pcapng"), str(before), str(cut))
    got, want, error, warnings = json.loads(r.stdout)
    assert error is None and got == want and len(want) > 0
    (warning,) = warnings
    assert warning.startswith(f"{tmp_path / 'cut.pcapng'}: the file was cut short while it "
                              f"was read (it has {cut} bytes now)")
    assert warning.endswith(f" at offset {cut}")
