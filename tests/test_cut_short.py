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


CUT_POINTS = [
    ("all-scenarios.pcapng", 20000),  # inside a block, mid-page
    ("all-scenarios.pcapng", 20480),  # on a page border
    ("all-scenarios.pcapng", 0),
    ("exchange-online-no-client-cert.pcap", 2000),
    ("exchange-online-no-client-cert.pcap", 4096),
]


NO_C = 'import sys\nsys.modules["fastcap._native"] = None  # an install without a compiler\n'


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
@pytest.mark.parametrize(("name", "cut"), CUT_POINTS)
def test_a_walk_stops_where_the_file_now_ends(tmp_path, name, cut, without_c):
    """The first window is walked, then the file is cut; the rest of the walk gives exactly
    the records that end by the cut (those read before it stand), then one warning.  Without
    the C module too: there no fault of a page past the new end is answered, so the pages
    past a cut must be made zeros before the walk touches them (else SIGBUS)."""
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap import _ffi
        from fastcap.read.capture import Capture
        src, copy, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
        assert sys.argv[4] == "0" or not _ffi.native_available()
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
    """), str(EXAMPLES / name), str(tmp_path / name), str(cut), str(int(without_c)))
    whole, rows, warnings = json.loads(r.stdout)
    read_first = rows[:4]
    assert read_first == whole[:4]
    assert rows[4:] == [x for x in whole[4:] if x[0] + x[1] <= cut]
    assert warnings == [[cut, "cut_short", f"the file was cut short while it was read (it has "
                                           f"{cut} bytes now): its bytes from here on were "
                                           f"gone; reading stopped"]]


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
@pytest.mark.parametrize(("name", "window", "cut"),
                         [("all-scenarios.pcapng", 64, 20000),
                          ("all-scenarios.pcapng", 64, 20480),
                          ("exchange-online-no-client-cert.pcap", 12, 3300)])
def test_a_cut_inside_a_window_stops_the_walk_where_the_file_now_ends(tmp_path, name, window,
                                                                        cut, without_c):
    """The file is cut just as the walk of the second window begins, which then reads on
    into the pages past the new end.  Without the C module that was SIGBUS, the look
    between windows coming too late; now both installs answer alike: the records that end
    by the cut, then the cut's warning."""
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap import _ffi
        from fastcap.read.capture import Capture
        src, copy, cut, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
        assert sys.argv[4] == "0" or not _ffi.native_available()
        with Capture(src) as cap:
            whole = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
        shutil.copy(src, copy)
        with Capture(copy, window=window) as cap:
            cap.read_ahead = False
            for kind in ("walk_pcap", "walk_pcapng"):
                def walk(*a, real=getattr(cap.walker, kind), **kw):
                    if a[2] > whole[window - 1][0] and os.path.getsize(copy) > cut:
                        os.truncate(copy, cut)  # the walk of the second window has begun
                    return real(*a, **kw)
                setattr(cap.walker, kind, walk)
            rows = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
            warnings = [(w.offset, w.kind, w.message) for w in cap.meta.warnings]
        print(json.dumps([whole, rows, warnings]))
    """), str(EXAMPLES / name), str(tmp_path / name), str(cut), str(int(without_c)),
              str(window))
    whole, rows, warnings = json.loads(r.stdout)
    # the second window's walk reads on past the page the new end is in
    assert whole[window][0] < cut and whole[2 * window - 1][0] >= cut - cut % 4096 + 4096
    assert rows == [x for x in whole if x[0] + x[1] <= cut]
    assert warnings == [[cut, "cut_short", f"the file was cut short while it was read (it has "
                                           f"{cut} bytes now): its bytes from here on were "
                                           f"gone; reading stopped"]]


@pytest.mark.parametrize("how", ["fault", "sent"])
def test_without_c_a_sigbus_not_of_a_watched_mapping_ends_the_process(tmp_path, how):
    """The fault handler of an install without the C module answers only faults in the
    files it watches: a fault in another mapping of a cut file, or a SIGBUS sent, still ends
    the process as it would without it (not zeros read, not a loop of faults)."""
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(3 * 4096))
    code = NO_C + textwrap.dedent("""
        import mmap, os, signal, sys
        from fastcap.read.capture import Capture
        with Capture(sys.argv[1]) as cap:
            list(cap.windows())
            with open(sys.argv[2], "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            os.truncate(sys.argv[2], 10)
            if sys.argv[3] == "sent":
                os.kill(os.getpid(), signal.SIGBUS)
            print(mm[2 * 4096])
    """)
    r = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "all-scenarios.pcapng"),
                        str(other), how], capture_output=True, text=True, timeout=60)
    # the handler before ends it: the default one by SIGBUS (7), or, where AddressSanitizer
    # is preloaded (the CI's sanitizer step), ASan's, which reports the BUS and aborts (6)
    ended = r.returncode == -7 or (r.returncode == -6 and "AddressSanitizer: BUS" in r.stderr)
    assert ended and r.stdout == "", (r.returncode, r.stdout, r.stderr)


def test_without_c_a_cut_inside_a_batch_of_payloads_reads_as_with_it(tmp_path):
    """One process, one mapping (`scan`, -j 1): the file is cut once the window's rows were
    checked against its end, as the reassembler begins the batch, so the batch reads the
    payloads past the new end.  Without the C module that was SIGBUS; now the install
    reads what the C module's does, sessions and the cut's warning alike."""
    cut = 20000
    code = """
        import json, os, shutil, sys
        from fastcap.run import scanner
        from fastcap.tcp import reassembly
        src, path, cut, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        shutil.copy(src, path)
        real = reassembly.Reassembler.feed_cols_iter
        def feed(self, cols):
            if os.path.getsize(path) > cut:
                os.truncate(path, cut)
            return real(self, cols)
        reassembly.Reassembler.feed_cols_iter = feed
        run = scanner.scan(path, jobs=1, backend=backend)
        got = list(run)
        print(json.dumps([[[s.number, [v.code for v in s.verdicts]] for s in got],
                          [w.replace(path, "FILE") for w in run.summary.warnings]]))
    """
    out = []
    for name, prefix, backend in (("native", "", "native"), ("no-C", NO_C, "python")):
        r = child(prefix + textwrap.dedent(code), str(EXAMPLES / "all-scenarios.pcapng"),
                  str(tmp_path / f"{name}.pcapng"), str(cut), backend)
        out.append(json.loads(r.stdout))
    assert out[0] == out[1] and len(out[0][0]) > 0
    assert out[0][1] == [f"FILE: the file was cut short while it was read (it has {cut} bytes "
                         f"now): its bytes from here on were gone; reading stopped at offset "
                         f"{cut}"]


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


@pytest.mark.parametrize(("jobs", "cut"), [("1", 20000), ("2", 44000), ("2-file", 44000),
                                           ("2-ring", 20000)])
def test_a_scan_whose_file_is_cut_after_its_frames_were_walked(tmp_path, jobs, cut):
    """Cut after the frames were walked and before their payloads were read: in one
    process, after the window was selected; with -j 2 (1 KiB ranges at least), inside the
    last range, when it copies its payloads or, where the ranges leave them in the file,
    before this process reads them from it (also for the second file of a ring buffer).
    Every earlier range was read whole by then, so the outcome does not depend on which
    worker got there first: the sessions are those of the file as cut, with the cut's
    warning, never sessions judged on zeros."""
    src = EXAMPLES / "all-scenarios.pcapng"
    first: list[str] = []
    if jobs == "2-ring":  # the example's frames in two pcap files, the second going on
        first, src = ring_halves(tmp_path, src)
    before = tmp_path / f"before{src.suffix}"
    before.write_bytes(src.read_bytes()[:cut])
    r = child("""
        import os, shutil, sys
        import numpy as np
        from fastcap import cli, session
        from fastcap.run import ranges, scanner, streamed
        src, path, cut, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        shutil.copy(src, path)
        scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10
        size = os.path.getsize(path)

        def cut_now():
            if os.path.getsize(path) > cut:
                os.truncate(path, cut)

        if jobs == "1":
            real_selected = session.iter_selected
            def selected(*a, **kw):
                for sel in real_selected(*a, **kw):
                    cut_now()
                    yield sel
            session.iter_selected = selected
        elif jobs == "2":  # the last range, once walked: its payloads reach past the cut
            real_carried = ranges.carried
            def carried(cols, buffer, *limit_backend):
                if len(cols) and int(np.max(cols.payload_file_off)) > cut:
                    cut_now()
                return real_carried(cols, buffer, *limit_backend)
            ranges.carried = carried
        else:  # payloads stay in the file; cut when the last range of `path` is fed
            streamed.CARRY_MAX = 0
            real_fed = streamed._fed_range
            def fed(reasm, whole, keys, payloads, p, res, *first):
                if p == path and res.end.offset >= size:
                    cut_now()
                return real_fed(reasm, whole, keys, payloads, p, res, *first)
            streamed._fed_range = fed
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


def test_a_range_read_after_the_file_was_cut_before_it_tells_the_cut(tmp_path):
    """Ranges read in turn, here: just before the third range opens the file, the file is
    cut short inside the second, which was read whole.  The third and later ranges start
    past the new end and find nothing, no damage of theirs to tell: the cut is told for
    them, where reading stopped."""
    r = child("""
        import json, os, shutil, sys
        from fastcap.judge.judging import analyzer_for
        from fastcap.options import ScanOptions
        from fastcap.run import ranges, streamed
        src, path = sys.argv[1], sys.argv[2]
        shutil.copy(src, path)
        begins = []
        real_init = ranges.BegunRange.__init__
        def opened(self, task, walk=True):
            begins.append(task.begin)
            if task.index == 2 and os.path.getsize(path) > begins[1] + 10:
                os.truncate(path, begins[1] + 10)
            real_init(self, task, walk)
        ranges.BegunRange.__init__ = opened
        options, out = ScanOptions(), []
        sessions = list(streamed.iter_scan(path, options, analyzer_for(options), jobs=2,
                                           parts=4, workers=False, out=out))
        print(json.dumps([begins, [(w.offset, w.kind, w.message)
                                   for w in out[0].meta.warnings], len(sessions)]))
    """, str(EXAMPLES / "all-scenarios.pcapng"), str(tmp_path / "late.pcapng"))
    begins, warnings, sessions = json.loads(r.stdout)
    ((offset, kind, message),) = warnings
    assert kind == "cut_short" and offset >= begins[2] and sessions > 0
    assert message.startswith(f"the file was cut short while it was read (it has "
                              f"{begins[1] + 10} bytes now)")


@pytest.mark.parametrize("backend", ["native", "python", "no-C"])
@pytest.mark.parametrize("when", ["mapped", "before"])
def test_flows_dealt_to_an_executor_read_the_file_as_cut(tmp_path, backend, when):
    """The way of a Dask cluster (the serial executor standing in for it): phase two reads
    the payloads from the file again.  Cut while it has the file mapped, the pages past the
    new end raised SIGBUS; cut before it maps the file, the payloads past the new end were
    read as missing and the sessions judged on gaps, with no word of the cut.  Either way
    the sessions are now those of the file as cut, with the cut's warning; an install
    without the C module ("no-C") too, whose pages past a cut are made zeros first."""
    cut = 20000
    src = EXAMPLES / "all-scenarios.pcapng"
    before = tmp_path / "before.pcapng"
    before.write_bytes(src.read_bytes()[:cut])
    r = child((NO_C if backend == "no-C" else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap.run import scanner, split
        from fastcap.run.workers import SerialExecutor
        src, path, before, cut, backend, when = sys.argv[1:7]
        cut = int(cut)
        shutil.copy(src, path)

        def cut_now():
            if os.path.getsize(path) > cut:
                os.truncate(path, cut)

        if when == "mapped":  # phase two has the file mapped when it is cut
            real_fed = split.fed
            def fed(*a):
                cut_now()
                return real_fed(*a)
            split.fed = fed
        else:  # cut between phase one and phase two
            real_two = split._phase_two
            def phase_two(*a):
                cut_now()
                return real_two(*a)
            split._phase_two = phase_two

        def verdicts(found):
            return [[v.code for v in s.verdicts] for s in found.sessions]

        with SerialExecutor() as ex:
            (got,) = scanner.scan_files([path], executor=ex, jobs=2, parts=4, backend=backend)
        (want,) = scanner.scan_files([before], jobs=1, backend=backend)
        print(json.dumps([verdicts(got), verdicts(want), got.error, got.summary.warnings]))
    """), str(src), str(tmp_path / "cut.pcapng"), str(before), str(cut),
              "python" if backend == "no-C" else backend, when)
    assert r.stdout, r.stderr
    got, want, error, warnings = json.loads(r.stdout)
    assert error is None and got == want and len(want) > 0
    (warning,) = warnings
    assert warning.startswith(f"{tmp_path / 'cut.pcapng'}: the file was cut short while it "
                              f"was read (it has {cut} bytes now)")
    assert warning.endswith(f" at offset {cut}")


# The start of a child script that changes a file between the reading of its frames and
# the reading of their payloads from it again: the ranges leave their payloads in the file,
# files split at 1 KiB, and `found` gives each scan result's sessions (number and verdict
# codes) and warnings.  Indented as the scripts it begins, for child's dedent.
_PAYLOADS_IN_FILE = """
        import json, os, shutil, sys
        from fastcap.run import scanner, split, streamed
        from fastcap.run.workers import SerialExecutor
        streamed.CARRY_MAX = 0  # the ranges leave their payloads in the file
        scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10

        def found(results):
            return [[[s.number, [v.code for v in s.verdicts]] for s in r.sessions]
                    for r in results], [r.summary.warnings for r in results]
"""


@pytest.mark.parametrize("ring", [False, True])
def test_a_file_replaced_before_its_payloads_are_read_again_is_told(tmp_path, ring):
    """Between reading a file's frames and reading their payloads from it again (the
    executor path's phase two; `-j 2` where the ranges leave their payloads in the file),
    the file is replaced by rename, as dumpcap rotates a ring file, with random bytes of its
    size.  Its payloads were read from the new file, unnoticed: its sessions judged on
    those bytes, no warning.  Now reading that file stops where its payloads begin, with a
    warning naming the file and that offset, and both paths give the same sessions: those
    of the files before it (in a ring buffer), none of its own."""
    src = EXAMPLES / "all-scenarios.pcapng"
    first: list[str] = []
    if ring:
        first, src = ring_halves(tmp_path, src)
    r = child(_PAYLOADS_IN_FILE + """
        src, path, *first = sys.argv[1:]
        replaced = []

        def replace_now():
            if not replaced:
                size = os.path.getsize(path)
                with open(path + ".new", "wb") as f:
                    f.write(os.urandom(size))
                os.replace(path + ".new", path)
                replaced.append(size)

        real_two, real_fed = split._phase_two, streamed._fed_range
        def phase_two(*a):
            replace_now()
            return real_two(*a)
        def fed(reasm, whole, keys, payloads, p, res, *rest):
            if p == path:
                replace_now()
            return real_fed(reasm, whole, keys, payloads, p, res, *rest)
        split._phase_two, streamed._fed_range = phase_two, fed

        out = []
        for how in ("executor", "streamed"):
            shutil.copy(src, path)
            replaced.clear()
            if how == "executor":
                with SerialExecutor() as ex:
                    got = scanner.scan_files([*first, path], executor=ex, jobs=2, parts=4)
            else:
                # one range a file: the file's frames are all read when its first range
                # is fed (no worker opens it after it is replaced)
                got = scanner.scan_files([*first, path], jobs=2, parts=1)
            out.append(found(got))
        out.append(found(scanner.scan_files(first, jobs=1)))
        print(json.dumps(out))
    """, str(src), str(tmp_path / f"swapped{src.suffix}"), *first)
    assert r.stdout, r.stderr
    executor, streamed, before = json.loads(r.stdout)
    assert executor == streamed
    sessions, warnings = executor
    assert sessions[-1] == []
    assert sessions[:-1] == before[0] and len(sessions[:-1]) == len(first)
    (warning,) = warnings[-1]
    path = tmp_path / f"swapped{src.suffix}"
    assert warning.startswith(f"{path}: the file was replaced by another while it was read"), \
        warning
    offset = int(warning.rsplit(" at offset ", 1)[1])
    assert 0 < offset < path.stat().st_size


def test_a_file_replaced_while_workers_read_its_ranges_is_told(tmp_path):
    """-j 2 with worker processes: the file is replaced by rename (random bytes of its size)
    just before a worker opens its third range, once the first two are open.  That range
    read the new file and the whole file was reported "not a pcap or pcapng file", what was
    read of it lost.  Now reading stops where the third range begins, with the warning -j 1
    gives a file replaced under it, and the sessions of the first two ranges stand."""
    src = EXAMPLES / "all-scenarios.pcapng"
    path = tmp_path / "swapped.pcapng"
    r = child("""
        import json, os, shutil, sys, time
        from fastcap import cli
        from fastcap.run import ranges, scanner, streamed
        src, path, flags = sys.argv[1], sys.argv[2], sys.argv[3]
        shutil.copy(src, path)
        scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10
        streamed.RANGES_PER_JOB = 4
        real_init = ranges.BegunRange.__init__
        def opened(self, task, walk=True):
            if task.index == 2:  # once ranges 0 and 1 have the file open
                while not all(os.path.exists(f"{flags}.{i}") for i in (0, 1)):
                    time.sleep(0.01)
                if not os.path.exists(f"{flags}.replaced"):
                    with open(path + ".new", "wb") as f:
                        f.write(os.urandom(os.path.getsize(path)))
                    os.replace(path + ".new", path)
                    open(f"{flags}.replaced", "w").close()
            real_init(self, task, walk)
            open(f"{flags}.{task.index}", "w").close()
        ranges.BegunRange.__init__ = opened
        sys.exit(cli.main(["scan", "-j", "2", "--format", "jsonl", path]))
    """, str(src), str(path), str(tmp_path / "opened"))
    assert "Traceback" not in r.stderr, r.stderr
    assert "not a pcap" not in r.stderr, r.stderr
    warning = f"{path}: the file was replaced by another while it was read"
    (line,) = [x for x in r.stderr.splitlines() if warning in x]
    offset = int(line.rsplit(" at offset ", 1)[1])
    assert 0 < offset < path.stat().st_size
    assert r.stdout.strip(), "the sessions read before the file was replaced are lost"


@pytest.mark.parametrize("how", ["rewritten", "appended"])
def test_a_file_rewritten_in_place_before_its_payloads_are_read_is_told(tmp_path, how):
    """Between reading the frames and reading their payloads from the file again (the
    executor path's phase two; -j 2 where the ranges leave the payloads in the file; `scan`
    between walking a window and feeding it; a range read here, the command's -j 1, between
    walking it and copying its payloads), the same file is written over in place with
    random bytes.  Its payloads were read from them unnoticed.  Now reading stops where
    the payloads begin, told with the offset as for a file replaced; a file only appended
    to (a live capture) reads as before, no warning (-j 1 notes that it grew, as ever)."""
    src = EXAMPLES / "all-scenarios.pcapng"
    path = tmp_path / "rewritten.pcapng"
    r = child(_PAYLOADS_IN_FILE + """
        from fastcap import session
        from fastcap.run import ranges
        src, path, how = sys.argv[1:]
        done = []

        def change_now():
            if not done:
                size = os.path.getsize(path)
                with open(path, "r+b" if how == "rewritten" else "ab") as f:
                    f.write(os.urandom(size if how == "rewritten" else 4096))
                done.append(size)

        real_two, real_fed = split._phase_two, streamed._fed_range
        real_selected, real_range = session.iter_selected, ranges.iter_selected
        def phase_two(*a):
            change_now()
            return real_two(*a)
        def fed(reasm, whole, keys, payloads, p, res, *rest):
            change_now()
            return real_fed(reasm, whole, keys, payloads, p, res, *rest)
        def selected(*a, **kw):  # -j 1: the window is walked and selected, not yet fed
            for sel in real_selected(*a, **kw):
                change_now()
                yield sel
        ways = []
        def selected_range(*a, **kw):  # a range's frames walked, their payloads not copied
            yield from real_range(*a, **kw)
            if ways[-1] == "carried":
                change_now()
        split._phase_two, streamed._fed_range = phase_two, fed
        session.iter_selected, ranges.iter_selected = selected, selected_range

        out = []
        for way in ("executor", "streamed", "one", "carried"):
            shutil.copy(src, path)
            done.clear()
            ways.append(way)
            if way == "executor":
                with SerialExecutor() as ex:
                    out.append(found(scanner.scan_files([path], executor=ex, jobs=2, parts=4)))
            elif way == "streamed":
                out.append(found(scanner.scan_files([path], jobs=2, parts=1)))
            elif way == "carried":  # -j 1 of the command: ranges read here copy payloads
                streamed.CARRY_MAX = 8 << 20
                out.append(found(scanner.scan_files([path], jobs=1)))
                streamed.CARRY_MAX = 0
            else:  # one process, one mapping: `scan`, -j 1
                run = scanner.scan(path, jobs=1)
                got = list(run)
                out.append(found([type("R", (), {"sessions": got, "summary": run.summary})]))
        done.append(0)  # the file as it is, unchanged
        shutil.copy(src, path)
        out.append(found(scanner.scan_files([path], jobs=1)))
        print(json.dumps(out))
    """, str(src), str(path), how)
    assert r.stdout, r.stderr
    executor, streamed, one, carried, whole = json.loads(r.stdout)
    if how == "appended":
        assert executor == streamed == carried == whole
        # one walk of the whole file notes that it grew, as for any live capture
        assert one[0] == whole[0]
        assert [w for w in one[1][0] if "grew to" not in w] == whole[1][0]
        return
    assert executor == streamed == one == carried
    (sessions,), ((warning,),) = executor
    assert sessions == []
    assert warning.startswith(f"{path}: the file was rewritten in place while it was read"), \
        warning
    offset = int(warning.rsplit(" at offset ", 1)[1])
    assert 0 < offset < src.stat().st_size


def test_a_file_replaced_while_an_executor_reads_its_ranges_is_told(tmp_path):
    """The executor path (a Dask cluster; the serial executor standing in for it): the file
    is replaced by rename (random bytes of its size) just before its third range is opened.
    That range's error ended the whole scan, the files beside it and what the first two
    ranges read lost.  Now, as with -j 2, the file ends where the ranges before it ended,
    with the replaced-file warning naming that offset; the sessions of its first ranges
    stand (their payloads read from the file they were, held open since before the ranges
    were read), and the other file of the scan is read as alone."""
    src = EXAMPLES / "all-scenarios.pcapng"
    path, other = tmp_path / "swapped.pcapng", tmp_path / "other.pcapng"
    r = child("""
        import json, os, shutil, sys
        from fastcap.run import ranges, scanner
        from fastcap.run.workers import SerialExecutor
        src, path, other = sys.argv[1:]
        shutil.copy(src, path)
        shutil.copy(src, other)
        real_init = ranges.BegunRange.__init__
        def opened(self, task, walk=True):
            if task.path == path and task.index == 2 and not os.path.exists(path + ".done"):
                with open(path + ".new", "wb") as f:
                    f.write(os.urandom(os.path.getsize(path)))
                os.replace(path + ".new", path)
                open(path + ".done", "w").close()
            real_init(self, task, walk)
        ranges.BegunRange.__init__ = opened

        def found(r):
            return [[s.number, [v.code for v in s.verdicts]] for s in r.sessions], \\
                r.summary.warnings, r.summary.frames, r.error

        with SerialExecutor() as ex:
            got = scanner.scan_files([path, other], executor=ex, jobs=2, parts=4)
        shutil.copy(src, path)
        os.remove(path + ".done")
        (streamed,) = scanner.scan_files([path], jobs=2, parts=4)  # workers, as -j 2
        (alone,) = scanner.scan_files([other], jobs=1)
        print(json.dumps([found(r) for r in (*got, streamed, alone)]))
    """, str(src), str(path), str(other))
    assert "Traceback" not in r.stderr, r.stderr
    swapped, other_got, streamed, alone = json.loads(r.stdout)
    assert other_got == alone
    assert swapped == streamed and len(swapped[0]) > 0  # the first ranges' sessions stand
    _sessions, warnings, frames, error = swapped
    assert error is None and 0 < frames < alone[2]
    (warning,) = warnings
    assert warning.startswith(f"{path}: the file was replaced by another while it was read"), \
        warning
    offset = int(warning.rsplit(" at offset ", 1)[1])
    assert 0 < offset < src.stat().st_size


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_cut_while_a_batch_is_fed_reads_as_the_file_cut_before(tmp_path, jobs, without_c):
    """The file is cut as the payloads of the batch that reaches past the new end begin to
    be read from the mapping (`-j 1`; `-j 2` where the ranges leave their payloads in the
    file).  The guard answers the pages lost with zeros, and the rows past the cut were fed
    on those: sessions judged on zeros, some begun past the cut.  Now the scan gives what
    the file cut before the scan gives, on both installs: the same sessions and verdicts,
    and the one warning naming the cut's offset."""
    cut_while_fed(tmp_path, 20000, jobs, without_c)


def cut_message(cut: int) -> str:
    """The one warning of a file cut short at `cut` while it was read (its name as FILE)."""
    return (f"FILE: the file was cut short while it was read (it has {cut} bytes now): its "
            f"bytes from here on were gone; reading stopped at offset {cut}")


def cut_while_fed(tmp_path: Path, cut: int, jobs: int, without_c: bool) -> None:
    """The example capture cut at `cut` as the batch reaching past it is read: its scan must
    be the file's cut there before it, with the one cut warning."""
    src = EXAMPLES / "all-scenarios.pcapng"
    before = tmp_path / "before.pcapng"
    before.write_bytes(src.read_bytes()[:cut])
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap import _ffi
        from fastcap.run import scanner, streamed
        from fastcap.tcp import carry, feed, reassembly
        src, path, before, cut, jobs = sys.argv[1:6]
        cut, jobs = int(cut), int(jobs)
        backend = "python" if sys.argv[6] == "1" else "native"
        assert backend == "native" or not _ffi.native_available()
        streamed.CARRY_MAX = 0  # the ranges leave their payloads in the file
        scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10
        shutil.copy(src, path)
        def cut_now(cols):  # the payloads of the batch reaching past the cut are read
            if feed.payload_end(cols) > cut and os.path.getsize(path) > cut:
                os.truncate(path, cut)

        # wherever they are read first: copied out of the file, or by the reassembler
        real_copy, real_feed = carry.carried, reassembly.Reassembler.feed_cols_iter
        def copy(cols, *a):
            cut_now(cols)
            return real_copy(cols, *a)
        def fed(self, cols):
            cut_now(cols)
            return real_feed(self, cols)
        feed.carried, reassembly.Reassembler.feed_cols_iter = copy, fed

        def found(p, j):
            run = scanner.scan(p, jobs=j, backend=backend)
            got = list(run)
            return ([[s.number, [v.code for v in s.verdicts]] for s in got],
                    [w.replace(p, "FILE") for w in run.summary.warnings])

        print(json.dumps([found(path, jobs), found(before, 1)]))
    """), str(src), str(tmp_path / "cut.pcapng"), str(before), str(cut), str(jobs),
              str(int(without_c)))
    assert r.stdout, r.stderr
    (got, warnings), (want, _) = json.loads(r.stdout)
    assert got == want and len(want) > 0
    assert warnings == [cut_message(cut)]


def test_a_cut_found_by_the_feed_and_a_later_range_is_told_once(tmp_path):
    """Ranges read in turn here, their payloads left in the file: the file is cut as the
    payloads of the range reaching past the new end are read, so the feed finds the cut
    and the next range, walked after it, stops there and finds it too.  Both told it: two
    identical lines.  Now the file's one cut is told once."""
    cut = 20000
    r = child("""
        import json, os, shutil, sys
        from fastcap.judge.judging import analyzer_for
        from fastcap.options import ScanOptions
        from fastcap.run import streamed
        from fastcap.tcp import carry, feed
        src, path, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
        streamed.CARRY_MAX = 0  # the ranges leave their payloads in the file
        shutil.copy(src, path)
        real_copy = carry.carried
        def copy(cols, *a):
            if feed.payload_end(cols) > cut and os.path.getsize(path) > cut:
                os.truncate(path, cut)
            return real_copy(cols, *a)
        feed.carried = copy
        options, out = ScanOptions(), []
        sessions = list(streamed.iter_scan(path, options, analyzer_for(options), jobs=2,
                                           parts=8, workers=False, out=out))
        print(json.dumps([[(w.offset, w.kind) for w in out[0].meta.warnings], len(sessions)]))
    """, str(EXAMPLES / "all-scenarios.pcapng"), str(tmp_path / "cut.pcapng"), str(cut))
    warnings, sessions = json.loads(r.stdout)
    assert warnings == [[cut, "cut_short"]] and sessions > 0
