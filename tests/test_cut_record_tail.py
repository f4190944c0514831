"""A file cut short while it is read, the cut landing in the tail of a pcapng block: past
its packet data, in its padding, options or trailing length.  The file cut there before the
scan drops that block as truncated; the scan of the file cut during it kept the block
because its payload (and its packet data) ended before the cut, and fed the payload."""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path

import pytest

from .test_cut_short import EXAMPLES, NO_C, child, cut_message, cut_while_fed
from .test_cut_short import pytestmark as pytestmark  # the guard is the C module's

SRC = EXAMPLES / "all-scenarios.pcapng"


def tail_cut(path: Path, after: int, least: int) -> int:
    """An offset inside the tail of the first Enhanced Packet Block past `after` holding at
    least `least` bytes of packet data: one byte past its packet data."""
    data, off = path.read_bytes(), 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if btype == 6 and off > after:
            (caplen,) = struct.unpack_from("<I", data, off + 20)
            if caplen >= least and off + 28 + caplen + 1 < off + blen:
                return off + 28 + caplen + 1
        off += blen
    raise AssertionError("no such block")


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_cut_in_a_blocks_tail_while_a_batch_is_fed_drops_the_block(tmp_path, jobs,
                                                                     without_c):
    """Cut as the batch reaching past the cut is read: the block the cut lands in (a
    certificate's) is not fed, as in the file cut before; one warning names the cut."""
    cut_while_fed(tmp_path, tail_cut(SRC, 19000, 1000), jobs, without_c)


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
def test_a_cut_in_a_blocks_tail_while_the_walk_goes_on_drops_the_block(tmp_path, without_c):
    """The first window walked, then the file cut in a block's tail: the walk gives the
    frames of the file cut there before, not the block the cut lands in."""
    cut = tail_cut(SRC, 19000, 1000)
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap.read.capture import Capture
        src, copy, before, cut = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        with open(src, "rb") as f, open(before, "wb") as g:
            g.write(f.read()[:cut])
        with Capture(before) as cap:
            want = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
        shutil.copy(src, copy)
        with Capture(copy, window=4) as cap:
            windows = cap.windows()
            rows = [(int(o), int(c)) for o, c in zip(*(lambda w: (w.offset, w.caplen))(
                next(windows)))]
            os.truncate(copy, cut)
            rows += [(int(o), int(c)) for w in windows for o, c in zip(w.offset, w.caplen)]
            kinds = [w.kind for w in cap.meta.warnings]
        print(json.dumps([want, rows, kinds]))
    """), str(SRC), str(tmp_path / "cut.pcapng"), str(tmp_path / "before.pcapng"), str(cut))
    want, rows, kinds = json.loads(r.stdout)
    assert rows == want and kinds == ["cut_short"]


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
def test_a_cut_after_a_batch_was_copied_leaves_what_it_read_standing(tmp_path, without_c):
    """The file cut once the batch's payloads were copied out and the file's end looked at
    again, as the reassembler takes them: nothing can tell the cut before those rows are
    fed, so they stand (read whole before the cut), and the sessions are the whole file's,
    not the file's cut there beforehand; the cut is still told, once, at its offset (README:
    what was read before a cut stands)."""
    cut = tail_cut(SRC, 19000, 1000)
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap.run import scanner
        from fastcap.tcp import reassembly
        src, path, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
        backend = "python" if sys.argv[4] == "1" else "native"
        real_feed = reassembly.Reassembler.feed_cols_iter
        def fed(self, cols):  # the copy is taken and looked at: now the cut comes
            if os.path.exists(path) and os.path.getsize(path) > cut:
                os.truncate(path, cut)
            return real_feed(self, cols)

        def found(p, hook):
            reassembly.Reassembler.feed_cols_iter = fed if hook else real_feed
            run = scanner.scan(p, jobs=1, backend=backend)
            got = list(run)
            summary = run.summary
            return ([[s.number, [v.code for v in s.verdicts]] for s in got],
                    [w.replace(p, "FILE") for w in summary.warnings])

        whole = found(src, False)
        shutil.copy(src, path)
        print(json.dumps([found(path, True), whole]))
    """), str(SRC), str(tmp_path / "cut.pcapng"), str(cut), str(int(without_c)))
    assert r.stdout, r.stderr
    (got, warnings), (whole, _) = json.loads(r.stdout)
    assert got == whole and len(got) > 0
    assert warnings == [cut_message(cut)]


@pytest.mark.parametrize("without_c", [False, True], ids=["native", "no-C"])
def test_a_cut_in_a_blocks_tail_once_its_window_was_walked_drops_the_block(tmp_path,
                                                                          without_c):
    """The window holding the block was walked whole, then the file cut in the block's tail
    before the window was handed on: the window kept the block, its packet data ending
    before the cut.  Now it gives the frames of the file cut there before."""
    cut = tail_cut(SRC, 19000, 1000)
    r = child((NO_C if without_c else "") + textwrap.dedent("""
        import json, os, shutil, sys
        from fastcap.read.capture import Capture
        src, copy, before, cut = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        with open(src, "rb") as f, open(before, "wb") as g:
            g.write(f.read()[:cut])
        with Capture(before, window=4) as cap:
            want = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
        shutil.copy(src, copy)
        real = Capture._emit
        def emit(self, win, n, off):  # walked, not yet handed on: now the cut comes
            if n and int(win.offset[n - 1]) + int(win.caplen[n - 1]) >= cut - 1:
                if os.path.getsize(copy) > cut:
                    os.truncate(copy, cut)
            return real(self, win, n, off)
        Capture._emit = emit
        with Capture(copy, window=4) as cap:
            cap.read_ahead = False
            rows = [(int(o), int(c)) for w in cap.windows() for o, c in zip(w.offset, w.caplen)]
            kinds = [w.kind for w in cap.meta.warnings]
        print(json.dumps([want, rows, kinds]))
    """), str(SRC), str(tmp_path / "cut.pcapng"), str(tmp_path / "before.pcapng"), str(cut))
    want, rows, kinds = json.loads(r.stdout)
    assert rows == want and kinds == ["cut_short"]
