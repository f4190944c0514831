"""Ring-buffer files (dumpcap -b): a session that goes on from one file into the next is
completed from both and reported once, in the file where it began."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.errors import CaptureError
from fastcap.judge.judging import analyzer_for
from fastcap.run import ranges, streamed
from fastcap.run.scanner import iter_scan_files, judge_options, scan, scan_files
from fastcap.run.workers import SerialExecutor
from fastcap.select.stats import compute_stats
from fastcap.session import MAX_HELD, Session

from .gencap import generate, new_isns

ROOT = Path(__file__).resolve().parents[1]
CA = str(ROOT / "examples" / "test-root.pem")
_ISN_STEP = 0x3A5F1C07  # each copy's sequence numbers moved this far from the last's


def split_pcap(src: Path, out_dir: Path, pieces: int) -> tuple[list[Path], list[int]]:
    """Cut a pcap into `pieces` files of about equal record counts, as dumpcap's ring buffer
    would: (files, frames before each file)."""
    data = src.read_bytes()
    head, off, starts = data[:24], 24, []
    while off + 16 <= len(data):
        starts.append(off)
        (incl,) = struct.unpack_from("<I", data, off + 8)
        off += 16 + incl
    starts.append(off)
    n = len(starts) - 1
    cuts = [n * i // pieces for i in range(pieces + 1)]
    files = []
    for i in range(pieces):
        p = out_dir / f"ring_{i:05d}.pcap"
        p.write_bytes(head + data[starts[cuts[i]]:starts[cuts[i + 1]]])
        files.append(p)
    return files, cuts[:-1]


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    d = tmp_path_factory.mktemp("ring")
    whole = generate(d, size="3M", sessions=60, seed=21)["pcap"]
    files, offsets = split_pcap(whole, d, 4)
    run = scan(whole, ca_file=CA)
    sessions = [s.to_dict() for s in run]
    return whole, files, offsets, sessions


def _ring_scan(files, **kw):
    return scan_files(files, ca_file=CA, **kw)


def test_sessions_across_files_are_reported_once(ring):
    _whole, files, offsets, whole_sessions = ring
    got = _ring_scan(files, jobs=1)
    assert [r.error for r in got] == [None] * len(files)
    assert sum(len(r.sessions) for r in got) == len(whole_sessions)
    spanning = [s for r in got for s in r.sessions if s.continues_into]
    assert spanning, "the cut points fall inside sessions"
    by_first = {s["first_frame"]: s for s in whole_sessions}
    for k, r in enumerate(got):
        assert [s.number for s in r.sessions] == list(range(1, len(r.sessions) + 1))
        for s in r.sessions:
            w = by_first[s.first_frame + offsets[k]]
            d = s.to_dict()
            assert d["continues_into"] == [str(f) for f in files[k + 1:k + 1 + len(
                s.continues_into)]]
            assert s.last_frame + offsets[k] == w["last_frame"]
            same = ("client", "server", "first_ts_ns", "last_ts_ns", "frames", "tcp",
                    "client_cert_check", "server_cert_check")
            assert {f: d[f] for f in same} == {f: w[f] for f in same}
            assert [v["code"] for v in d["verdicts"]] == [v["code"] for v in w["verdicts"]]
    # In the first file, frame numbers are the whole file's: sessions equal to the letter.
    first = [{**s.to_dict(), "continues_into": []} for s in got[0].sessions]
    assert first == whole_sessions[: len(first)]


def test_ring_scan_is_the_same_with_workers(ring):
    _whole, files, _offsets, _ = ring
    one = _ring_scan(files, jobs=1)
    many = _ring_scan(files, jobs=3, parts=5)
    assert [[s.to_dict() for s in r.sessions] for r in one] == \
        [[s.to_dict() for s in r.sessions] for r in many]
    assert [r.summary.to_dict() for r in one] == [r.summary.to_dict() for r in many]


def test_files_that_overlap_in_time_stand_alone(ring):
    _whole, files, _offsets, _ = ring
    got = _ring_scan([files[1], files[1]], jobs=1)
    alone = [s.to_dict() for s in scan(files[1], ca_file=CA)]
    for r in got:
        assert [s.to_dict() for s in r.sessions] == alone
        assert not any(s.continues_into for s in r.sessions)


def test_summaries_count_each_file(ring):
    _whole, files, _offsets, whole_sessions = ring
    got = _ring_scan(files, jobs=1)
    for r, f in zip(got, files, strict=True):
        run = scan(f, ca_file=CA)
        list(run)
        own = run.summary
        assert r.summary.frames == own.frames and r.summary.path == str(f)
    assert sum(r.summary.sessions for r in got) == len(whole_sessions)


def _shift_times(src: Path, dst: Path, seconds: int) -> Path:
    data = bytearray(src.read_bytes())
    off = 24
    while off + 16 <= len(data):
        sec, _frac, incl, _orig = struct.unpack_from("<IIII", data, off)
        struct.pack_into("<I", data, off, sec + seconds)
        off += 16 + incl
    dst.write_bytes(bytes(data))
    return dst


def test_files_far_apart_in_time_stand_alone(ring, tmp_path):
    """A capture taken an hour later is not the same ring buffer, even if a port pair
    repeats: nothing is joined across the pause."""
    _whole, files, _offsets, _ = ring
    later = _shift_times(files[1], tmp_path / "later.pcap", 3600)
    got = _ring_scan([files[0], later], jobs=1)
    assert not any(s.continues_into for r in got for s in r.sessions)
    assert [s.to_dict() for s in got[1].sessions] == [
        s.to_dict() for s in scan(later, ca_file=CA)]
    joined = _ring_scan([files[0], files[1]], jobs=1)
    assert any(s.continues_into for s in joined[0].sessions)


def test_each_run_is_handed_on_before_the_next_is_reassembled(ring, tmp_path):
    """Results stream run by run: the sessions of an earlier run of files are not held while
    a later, separate run is reassembled."""
    from fastcap.run import split
    from fastcap.run.scanner import iter_scan_files

    _whole, files, _offsets, _ = ring
    later = _shift_times(files[1], tmp_path / "later.pcap", 3600)
    seen: list[tuple[str, ...]] = []

    class Recording(SerialExecutor):
        def map(self, fn, items):
            if fn is split.reassemble_flows:
                seen.extend(t.paths for t in items)
            return super().map(fn, items)

    results = iter_scan_files([files[0], files[1], later], executor=Recording(), jobs=2,
                              ca_file=CA)
    first = next(results)
    assert first.path == str(files[0]) and seen
    assert all(p == (str(files[0]), str(files[1])) for p in seen)  # not the later file yet
    rest = list(results)
    assert [r.path for r in rest] == [str(files[1]), str(later)]
    assert seen[-1] == (str(later),)


def _repeated(srcs: list[Path], dst: Path, every_s: int) -> Path:
    """The captures played one after another, `every_s` seconds apart (each as recorded),
    each copy's connections new ones (new ISNs: the same ones again would be a replay of the
    first copy's, one stream each in tshark): one long capture of short sessions."""
    out = bytearray(srcs[0].read_bytes()[:24])
    for i, src in enumerate(srcs):
        data = src.read_bytes()
        off = 24
        while off + 16 <= len(data):
            sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
            pkt = new_isns(data[off + 16: off + 16 + incl], i * _ISN_STEP)
            out += struct.pack("<IIII", sec + i * every_s, usec, incl, orig) + pkt
            off += 16 + incl
    dst.write_bytes(bytes(out))
    return dst


def _without(src: Path, dst: Path, flags: int) -> tuple[Path, int]:
    """The capture without the frames of its first SMTP connection that have any of `flags`
    set (0x05: FIN or RST, so it never ends; 0xFF: all of them); Ethernet, IPv4.  Returns
    (file, its client port)."""
    data = src.read_bytes()
    out, off, ports = bytearray(data[:24]), 24, None
    while off + 16 <= len(data):
        (incl,) = struct.unpack_from("<I", data, off + 8)
        frame = data[off + 16: off + 16 + incl]
        tcp = 14 + (frame[14] & 0x0F) * 4
        pair = frozenset(struct.unpack_from(">HH", frame, tcp)) if frame[23] == 6 else None
        ports = ports or (pair if pair and 25 in pair else None)
        if not (pair == ports and frame[tcp + 13] & flags):
            out += data[off: off + 16 + incl]
        off += 16 + incl
    dst.write_bytes(bytes(out))
    return dst, min(p for p in ports if p != 25)


def _everything(results) -> list:
    return [(r.path, r.error, [s.to_dict() for s in r.sessions], r.summary.to_dict())
            for r in results]


def test_streamed_files_match_the_split_path(ring, tmp_path):
    """Worker processes reading ranges while this process reassembles the files in turn
    (`streamed`) give what dealing flows out to an executor gives, across runs of files
    that go on from one another, a file that is no capture, a file from an hour later and
    one that overlaps the others in time; with the C and the Python reassembler."""
    _whole, files, _offsets, _ = ring
    later = _shift_times(files[1], tmp_path / "later.pcap", 3600)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture " * 40)
    chain = [files[0], files[1], junk, files[2], files[3], later, files[2]]
    want = _everything(scan_files(chain, executor=SerialExecutor(), jobs=2, parts=7,
                                  ca_file=CA))
    assert [w[1] is not None for w in want] == [False, False, True, False, False, False,
                                                False]
    spans = [[s["continues_into"] for s in w[2]] for w in want]
    assert any(spans[0]) and any(spans[3]) and not any(spans[1] + spans[5] + spans[6])
    for kw in ({"jobs": 1}, {"jobs": 3, "parts": 5}, {"jobs": 2, "parts": 9},
               {"jobs": 1, "parts": 4, "backend": "python"}):
        assert _everything(scan_files(chain, ca_file=CA, **kw)) == want, kw


def test_each_file_is_handed_on_once_its_sessions_are_done(ring, tmp_path, monkeypatch):
    """A ring buffer of many files is one run: its first file comes out while the last is
    still unread, so the sessions of files already handed on are not held."""
    long = _repeated([ring[0]] * 8, tmp_path / "long.pcap", 10)
    files, _ = split_pcap(long, tmp_path, 12)
    whole_sessions = list(scan(long, ca_file=CA))
    read: list[str] = []
    real = ranges.read_range

    def recording(task):
        read.append(task.path)
        return real(task)

    monkeypatch.setattr(ranges, "read_range", recording)
    results = iter_scan_files(files, jobs=1, ca_file=CA)
    first = next(results)
    assert first.path == str(files[0]) and first.sessions
    assert any(s.continues_into for s in first.sessions)
    assert str(files[-1]) not in read
    rest = list(results)
    assert [r.path for r in rest] == [str(f) for f in files[1:]]
    assert sum(len(r.sessions) for r in [first, *rest]) == len(whole_sessions)


def test_a_connection_left_open_does_not_hold_every_later_file(ring, tmp_path):
    """A connection whose FIN was lost stays open to the end of the run.  Once more than
    `max_held` sessions wait for it, it is handed on as it is (marked evicted, counted in the
    summary), its file goes out, and the run goes on without holding the later files."""
    open_one, port = _without(ring[0], tmp_path / "open.pcap", 0x05)
    gone, _ = _without(ring[0], tmp_path / "gone.pcap", 0xFF)  # its 4-tuple never comes back
    files, _ = split_pcap(_repeated([open_one] + [gone] * 7, tmp_path / "long.pcap", 10),
                          tmp_path, 12)
    paths = [str(f) for f in files]

    def first_out(max_held):
        read: list[str] = []
        it = iter_scan_files(paths, jobs=1, ca_file=CA, max_held=max_held)
        real = ranges.read_range
        ranges.read_range = lambda t: (read.append(t.path), real(t))[1]
        try:
            first = next(it)
        finally:
            ranges.read_range = real
        return first, read, list(it)

    first, read, rest = first_out(MAX_HELD)  # waits for the open connection
    assert read[-1] == paths[-1]
    kept = [s for r in [first, *rest] for s in r.sessions if s.client.endswith(f":{port}")]
    assert len(kept) == 1 and not kept[0].tcp.evicted and kept[0].tcp.closed_by is None

    first, read, rest = first_out(3)
    assert paths[-1] not in read and first.path == paths[0]
    pieces = [s for r in [first, *rest] for s in r.sessions if s.client.endswith(f":{port}")]
    assert pieces[0] in first.sessions and pieces[0].tcp.evicted
    assert sum(s.frames for s in pieces) == kept[0].frames  # no frame lost or counted twice
    assert [r.path for r in [first, *rest]] == paths
    for r in [first, *rest]:
        assert [s.number for s in r.sessions] == list(range(1, len(r.sessions) + 1))
    assert first.summary.limits == {"sessions handed on before they ended (reassembly memory "
                                    "budget, or over 3 sessions waiting for them)": 1}


def test_a_file_read_alone_holds_as_many_sessions_as_asked(ring, tmp_path):
    """A compressed file given alone is streamed as `scan` reads it, under the `max_held`
    the caller chose: past it, order gives way (as for any single file) and the count of
    sessions out of order names that cap."""
    open_one, port = _without(ring[0], tmp_path / "open.pcap", 0x05)
    gone, _ = _without(ring[0], tmp_path / "gone.pcap", 0xFF)
    long = _repeated([open_one] + [gone] * 3, tmp_path / "long.pcap", 10)
    gz = tmp_path / "long.pcap.gz"
    gz.write_bytes(gzip.compress(long.read_bytes(), 1))
    for held in (MAX_HELD, 3):
        (got,) = scan_files([gz], ca_file=CA, max_held=held)
        numbers = [s.number for s in got.sessions]
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        late = {k: n for k, n in got.summary.limits.items() if "out of number order" in k}
        if held == MAX_HELD:
            assert numbers == sorted(numbers) and late == {}
        else:
            assert numbers != sorted(numbers)
            assert list(late) == ["sessions reported out of number order (over 3 waited for "
                                  "an earlier open connection)"]


def test_a_gzipped_member_is_joined_by_an_executors_run_as_by_one_job(ring, tmp_path,
                                                                     backend):
    """With an executor (what a Dask cluster is to the run), the compressed member of a ring
    is read here and its run reassembled here, whole: the sessions and summaries of `-j 1`,
    the one spanning the member reported once."""
    files = ring[1]
    gz = tmp_path / (files[2].name + ".gz")
    gz.write_bytes(gzip.compress(files[2].read_bytes(), 1))
    paths = [*files[:2], gz, files[3]]

    def facts(results):
        return [([s.to_dict() for s in r.sessions], r.summary.to_dict()) for r in results]

    local = facts(scan_files(paths, ca_file=CA, jobs=1, backend=backend))
    assert any(str(gz) in s["continues_into"] for s in local[1][0])
    with SerialExecutor() as ex:
        got = facts(scan_files(paths, ca_file=CA, executor=ex, jobs=2, parts=3,
                               backend=backend))
    assert got == local


def test_which_connection_is_evicted_does_not_depend_on_the_ranges(tmp_path, monkeypatch):
    """The hold cap is checked at points of the run's rows and at file ends, never where a
    range happens to begin: one job or three over many ranges evict the same connections."""
    whole = generate(tmp_path, size="8M", sessions=1000, seed=3)["pcap"]  # long, and busy
    files, _ = split_pcap(whole, tmp_path, 4)
    monkeypatch.setattr(streamed, "FEED_ROWS", 500)  # checked every 500 rows fed

    def run(**kw):
        got = scan_files(files, ca_file=CA, max_held=3, **kw)
        return [([s.to_dict() for s in r.sessions], r.summary.to_dict()) for r in got]

    one = run(jobs=1)
    assert sum(s["tcp"]["evicted"] for sessions, _ in one for s in sessions) >= 1
    assert run(jobs=1, parts=5) == one
    assert run(jobs=3, parts=7) == one
    gz = files[1].with_name(files[1].name + ".gz")  # one range, whatever -j
    gz.write_bytes(gzip.compress(files[1].read_bytes(), 1))
    files[1] = gz
    assert json.dumps(run(jobs=3, parts=7)).replace(str(gz), str(gz)[:-3]) == json.dumps(one)


def test_a_ranges_sessions_are_handed_on_as_its_batches_are_fed(ring, tmp_path, monkeypatch):
    """A range's judged sessions go out batch by batch, not once the whole range is fed:
    with -j 1 a file is one range, and a 1 GB ring member of 95,000 sessions had them all
    held (some 500 MB) before the first was handed on."""
    long = _repeated([ring[0]] * 6, tmp_path / "long.pcap", 10)  # sessions end throughout
    files, _ = split_pcap(long, tmp_path, 2)  # the second file is held until it is read
    monkeypatch.setattr(streamed, "FEED_ROWS", 500)
    fed: list[int] = []
    real = streamed._batches

    def batches(*a):
        for batch in real(*a):
            fed.append(1)
            yield batch

    monkeypatch.setattr(streamed, "_batches", batches)
    options = judge_options(ca_file=CA)
    out_at: dict[int, set[int]] = {}  # file -> batches fed when each of its sessions came
    for k, item in streamed.iter_file_events([str(f) for f in files], options,
                                             analyzer_for(options), jobs=1):
        if isinstance(item, Session):
            out_at.setdefault(k, set()).add(len(fed))
    assert len(fed) > 4  # several batches per file
    assert len(out_at[0]) > 2  # fed as it was read, and handed on in steps
    assert len(out_at[1]) > 2  # held until read, then fed, and handed on in steps too


def test_file_streams_hand_each_session_on_as_it_is_judged(ring, tmp_path, monkeypatch):
    """iter_file_streams: a file's first session comes before the later files are read,
    summaries are complete once a file's sessions are, and a file whose sessions the caller
    leaves unread does not shift the next file's."""
    from fastcap.run.scanner import iter_file_streams

    files, _ = split_pcap(_repeated([ring[0]] * 8, tmp_path / "long.pcap", 10), tmp_path, 12)
    want = [(r.path, [s.to_dict() for s in r.sessions], r.summary.to_dict())
            for r in scan_files(files, executor=SerialExecutor(), jobs=2, ca_file=CA)]
    read: list[str] = []
    real = ranges.read_range
    monkeypatch.setattr(ranges, "read_range", lambda t: (read.append(t.path), real(t))[1])
    streams = iter_file_streams(files, jobs=1, ca_file=CA)
    fs = next(streams)
    first = next(fs.sessions)
    assert first.number == 1 and str(files[3]) not in read
    got = [(fs.path, [first.to_dict(), *(s.to_dict() for s in fs.sessions)],
            fs.summary.to_dict())]
    skipped = next(streams)  # its sessions left unread
    for fs in streams:
        got.append((fs.path, [s.to_dict() for s in fs.sessions], fs.summary.to_dict()))
    assert skipped.path == want[1][0] and skipped.summary.to_dict() == want[1][2]
    assert got == [want[0], *want[2:]]


def test_every_file_is_judged_while_its_ranges_are_read(ring, tmp_path, monkeypatch):
    """A file's first frame decides its run, and the first range holds it: each file is
    judged as its ranges come, before its last range is read, whether it starts a run (the
    first file; one from an hour later) or goes on from the one before (a ring buffer's
    next file, whose sessions complete those left open)."""
    long = _repeated([ring[0]] * 8, tmp_path / "long.pcap", 10)
    files, _ = split_pcap(long, tmp_path, 3)
    later = _shift_times(files[0], tmp_path / "later.pcap", 3600)
    paths = [str(f) for f in [*files, later]]
    want = _everything(scan_files(paths, executor=SerialExecutor(), jobs=2, ca_file=CA))
    read: list[str] = []
    real = ranges.read_range
    monkeypatch.setattr(ranges, "read_range", lambda t: (read.append(t.path), real(t))[1])
    options = judge_options(ca_file=CA)
    events = streamed.iter_file_events(paths, options, analyzer_for(options), jobs=2,
                                       parts=6, workers=False)
    at_first: dict[int, int] = {}  # ranges of the file read when its first session came
    got: list[list] = [[] for _ in paths]
    for k, item in events:
        if isinstance(item, Session):
            at_first.setdefault(k, read.count(paths[k]))
            got[k].append(item.to_dict())
    assert sorted(at_first) == [0, 1, 2, 3] and max(at_first.values()) < 6
    assert got == [w[2] for w in want]
    assert any(s["continues_into"] for s in got[0]) and not any(s["continues_into"]
                                                                 for s in got[3])


def _fails_in_ring_00000(task):
    """read_range, failing on the third range of ring_00000.pcap."""
    if task.path.endswith("ring_00000.pcap") and task.index == 2:
        raise CaptureError(task.path, "cannot be opened any more")
    return _READ_RANGE(task)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_file_judged_while_read_keeps_its_sessions_when_it_fails(ring, monkeypatch, jobs):
    """When a file judged as its ranges come (the first) cannot be read any more, the
    sessions already judged from its first ranges stay handed on, the file's error follows
    them, and the next file starts a run of its own."""
    _whole, files, _offsets, _ = ring
    monkeypatch.setattr(ranges, "read_range", _fails_in_ring_00000)
    got = _everything(scan_files(files, jobs=jobs, parts=3, ca_file=CA))
    options = judge_options(ca_file=CA)
    told = [(k, type(item).__name__) for k, item in streamed.iter_file_events(
        [str(f) for f in files[:2]], options, analyzer_for(options), jobs=jobs, parts=3,
        workers=False)]
    monkeypatch.setattr(ranges, "read_range", _READ_RANGE)
    alone = _everything(scan_files(files[:1], jobs=1, ca_file=CA))[0][2]
    n = len(got[0][2])
    assert told[:n + 1] == [(0, "Session")] * n + [(0, "SplitScan")]  # then its error
    assert {k for k, _ in told[n + 1:]} == {1}
    kept = got[0][2]
    assert got[0][1] == f"{files[0]}: cannot be opened any more"
    assert 0 < len(kept) < len(alone) and kept[0] == alone[0]
    assert [s["number"] for s in kept] == list(range(1, len(kept) + 1))
    starts = {s["first_frame"]: s for s in alone}
    assert all(s["first_frame"] in starts for s in kept)
    assert got[1:] == _everything(scan_files(files[1:], jobs=1, ca_file=CA))


def test_damaged_ring_files_match_the_split_path(ring, tmp_path):
    """Damage inside a run of files — garbage after the last record, a record header with an
    impossible length, a file cut inside a record, an empty file, a record that claims more
    bytes than the file holds — is read the same way by the streamed path (which also cuts
    each file into ranges here) as by the split path."""
    _whole, files, _offsets, _ = ring
    raw = [f.read_bytes() for f in files]
    tail = tmp_path / "tail.pcap"
    tail.write_bytes(raw[0] + bytes(random_bytes(200_000)))
    bad = bytearray(raw[1])
    struct.pack_into("<I", bad, _record_offset(raw[1], 40) + 8, 0x7FFFFFF0)
    (tmp_path / "bad.pcap").write_bytes(bytes(bad))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[2][: _record_offset(raw[2], 60) + 30])
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    over = bytearray(raw[3])  # a header otherwise sound, its record running past the end
    (snaplen,) = struct.unpack_from("<I", over, 16)
    at, k = 24, 0
    while len(over) - at > snaplen // 2:
        k += 1
        at = _record_offset(raw[3], k)
    struct.pack_into("<II", over, at + 8, snaplen, snaplen)
    (tmp_path / "over.pcap").write_bytes(bytes(over))
    damaged = [tail, tmp_path / "bad.pcap", cut, empty, tmp_path / "over.pcap", files[3]]
    want = _everything(scan_files(damaged, executor=SerialExecutor(), jobs=2, parts=6,
                                  ca_file=CA))
    assert want[3][1] is not None and all(w[1] is None for w in want[:3])
    assert all(w[3]["unreadable"] or w[3]["warnings"] for w in want[:3])
    for kw in ({"jobs": 1, "parts": 6}, {"jobs": 2, "parts": 3}, {"jobs": 1}):
        assert _everything(scan_files(damaged, ca_file=CA, **kw)) == want, kw


def test_a_hole_of_zeros_neither_breaks_the_run_nor_loses_the_file_after_it(ring, tmp_path):
    """Zeros over a record header read as frames of length 0 stamped 1970, as Wireshark
    reads them.  Those frames say nothing of when the file began, so the file still goes on
    from the one before; and the walk resumes at the first sound record after the hole
    (the records the zeros end inside no longer guide it back to 1970)."""
    _whole, files, _offsets, whole_sessions = ring
    raw = bytearray(files[1].read_bytes())
    at = _record_offset(bytes(raw), 40)
    (incl,) = struct.unpack_from("<I", raw, at + 8)
    raw[at:at + 300] = bytes(300)  # ends inside record 40: a header zeros but its length
    holed = tmp_path / files[1].name
    holed.write_bytes(bytes(raw))
    damaged = [files[0], holed, *files[2:]]
    for kw in ({"jobs": 1}, {"jobs": 2, "parts": 5}):
        got = scan_files(damaged, ca_file=CA, **kw)
        assert [s.continues_into[:1] for s in got[0].sessions if s.continues_into] != []
        assert all(s.continues_into[0] == str(holed) for s in got[0].sessions
                   if s.continues_into)
        # 19 headers of zeros are frames (the last with record 40's bytes as its length)
        assert got[1].summary.unreadable == ((at + 19 * 16, at + 16 + incl),)
        assert 0 < sum(len(r.sessions) for r in got) <= len(whole_sessions) + 2
    (stats,) = [compute_stats(holed)]
    assert stats.first_ts_ns == 0  # what Wireshark shows as the first time


def test_a_damaged_time_inside_a_file_does_not_break_the_run(ring, tmp_path):
    """Files meet where the capture tool wrote them: the next file's first frame against
    the previous file's last.  A frame inside the first file whose time damage moved past
    the next file's start, or one inside the next file moved to before the first's end (its
    microseconds zeroed, say), leaves the run whole."""
    _whole, files, _offsets, whole_sessions = ring
    raw0, raw1 = bytearray(files[0].read_bytes()), bytearray(files[1].read_bytes())
    last0 = struct.unpack_from("<I", raw0, _record_offset(bytes(raw0), _records_in(raw0) - 1))
    first1 = struct.unpack_from("<I", raw1, 24)
    struct.pack_into("<I", raw0, _record_offset(bytes(raw0), 40), first1[0] + 2)
    struct.pack_into("<II", raw1, _record_offset(bytes(raw1), 40), last0[0] - 1, 0)
    for damaged in ((raw0, files[1].read_bytes()), (files[0].read_bytes(), raw1)):
        moved = [tmp_path / f.name for f in files[:2]]
        for path, data in zip(moved, damaged, strict=True):
            path.write_bytes(bytes(data))
        for kw in ({"jobs": 1}, {"jobs": 2, "parts": 5}):
            got = scan_files([*moved, *files[2:]], ca_file=CA, **kw)
            assert sum(len(r.sessions) for r in got) == len(whole_sessions)
            assert any(s.continues_into[:1] == (str(moved[1]),) for s in got[0].sessions)


def _records_in(data: bytes) -> int:
    off, n = 24, 0
    while off + 16 <= len(data):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        n += 1
    return n


def random_bytes(n: int) -> bytes:
    import random

    return random.Random(5).randbytes(n)


def _record_offset(data: bytes, index: int) -> int:
    """Offset of record `index` of a little-endian pcap."""
    off = 24
    for _ in range(index):
        (incl,) = struct.unpack_from("<I", data, off + 8)
        off += 16 + incl
    return off


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_file_that_fails_while_read_is_reported_and_the_rest_go_on(ring, monkeypatch, jobs):
    """A file that cannot be read any more once its ranges are under way (deleted or
    replaced since it was planned) is reported as an error of its own, after the sessions
    judged from what was read of it (it went on from the file before, so it was fed as its
    ranges came, and the sessions left open there took in its frames read so far); the
    run ends there, and the files after it are read as usual."""
    _whole, files, _offsets, _ = ring
    assert files[1].name == "ring_00001.pcap"
    monkeypatch.setattr(ranges, "read_range", _fails_in_ring_00001)
    got = _everything(scan_files(files, jobs=jobs, parts=3, ca_file=CA))
    options = judge_options(ca_file=CA)
    with pytest.raises(CaptureError, match="cannot be opened any more"):
        list(streamed.iter_scan(files[1], options, analyzer_for(options), jobs=jobs, parts=3))
    monkeypatch.setattr(ranges, "read_range", _READ_RANGE)
    assert got[1][1] == f"{files[1]}: cannot be opened any more"
    kept, whole = got[1][2], _everything(scan_files(files[:2], jobs=1, ca_file=CA))[1][2]
    assert 0 < len(kept) and [s["number"] for s in kept] == list(range(1, len(kept) + 1))
    # joined to the file before: the connections going on from it are no sessions of its own
    assert {s["first_frame"] for s in kept} <= {s["first_frame"] for s in whole}
    alone = _everything(scan_files(files[:1], jobs=1, ca_file=CA))[0]
    assert got[0][3] == alone[3]  # its totals
    assert [s["first_frame"] for s in got[0][2]] == [s["first_frame"] for s in alone[2]]
    assert all(s["continues_into"] in ([], [str(files[1])]) for s in got[0][2])
    assert got[2:] == _everything(scan_files(files[2:], jobs=1, ca_file=CA))


_READ_RANGE = ranges.read_range


def _fails_in_ring_00001(task):
    """read_range, failing on the second range of ring_00001.pcap (module level, so worker
    processes can be handed it)."""
    if task.path.endswith("ring_00001.pcap") and task.index == 1:
        raise CaptureError(task.path, "cannot be opened any more")
    return _READ_RANGE(task)


def _copies(src: Path, out_dir: Path, n: int) -> list[Path]:
    """`n` copies of one capture: each overlaps the one before in time, so each is a run of
    its own, judged as its ranges are read."""
    copies = [out_dir / f"copy{i}.pcap" for i in range(n)]
    for c in copies:
        c.write_bytes(src.read_bytes())
    return copies


def _recording_begun_walks(monkeypatch) -> list:
    """The captures whose first walk is begun before their turn, in the order begun."""
    from fastcap.read.capture import Capture

    begun: list = []
    real = Capture.walk_first_ahead

    def recording(self, *a):
        begun.append(self)
        return real(self, *a)

    monkeypatch.setattr(Capture, "walk_first_ahead", recording)
    return begun


def test_with_one_job_the_next_file_is_walked_while_this_one_is_judged(ring, tmp_path,
                                                                       monkeypatch):
    """-j 1 reads every range in this process.  The walk of the file after the one whose
    sessions come out is begun before they do (on a thread where a core is spare), so that
    judging one file overlaps walking the next.  One range is begun ahead at most: each is
    begun once the one before it is read.  The sessions are those read without it."""
    _whole, files, _offsets, _ = ring
    copies = _copies(files[0], tmp_path, 3)
    paths = [str(f) for f in copies]
    want = _everything(scan_files(copies, executor=SerialExecutor(), jobs=2, ca_file=CA))
    begun = _recording_begun_walks(monkeypatch)
    steps: list[tuple[str, str]] = []
    real_read = ranges.read_range

    def reading(task):
        steps.append(("read", task.path))
        return real_read(task)

    monkeypatch.setattr(ranges, "read_range", reading)
    real_begin = ranges.BegunRange.__init__

    def beginning(self, task, walk=True):
        steps.append(("begin", task.path))
        real_begin(self, task, walk)

    monkeypatch.setattr(ranges.BegunRange, "__init__", beginning)
    options = judge_options(ca_file=CA)
    at_first: dict[int, list[str]] = {}
    for k, item in streamed.iter_file_events(paths, options, analyzer_for(options), jobs=1):
        if isinstance(item, Session):
            at_first.setdefault(k, [c.path for c in begun])
    assert sorted(at_first) == [0, 1, 2]
    assert all(paths[k + 1] in at_first[k] for k in (0, 1))
    assert steps == [(step, p) for p in paths for step in ("begin", "read")]
    assert all(c._bound is None for c in begun)  # every capture begun is closed
    assert _everything(scan_files(copies, jobs=1, ca_file=CA)) == want


def test_walks_begun_ahead_end_with_the_scan_left_unfinished(ring, tmp_path, monkeypatch):
    """A caller that stops reading mid-way (closing the generator) leaves no walk running
    and no file mapped for the ranges begun ahead of their turn."""
    import threading

    _whole, files, _offsets, _ = ring
    begun = _recording_begun_walks(monkeypatch)
    options = judge_options(ca_file=CA)
    events = streamed.iter_file_events([str(f) for f in _copies(files[0], tmp_path, 4)],
                                       options, analyzer_for(options), jobs=1)
    next(events)
    assert any(c._bound is not None for c in begun)  # a walk begun, its range not read
    events.close()
    assert all(c._bound is None for c in begun)
    assert not [t for t in threading.enumerate() if t.name == "fastcap-walk-ahead"]


def test_follow_numbers_and_follows_a_session_as_the_scan_of_the_ring_does(ring):
    """`follow FILE NEXT... --in F --session N` reads the files as `scan FILE NEXT...` does:
    session N of F is the scan's session N of F (connections carried over from the file
    before take no number of their own), and one that goes on into the next files is shown
    with what it reaches there."""
    _whole, files, _offsets, _ = ring
    paths = [str(f) for f in files]
    got = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", *paths, "--ca-file", CA,
                          "--format", "jsonl"], capture_output=True, text=True, timeout=120)
    sessions = [json.loads(line) for line in got.stdout.splitlines()]
    sessions = [s for s in sessions if "number" in s]
    on = next(s for s in sessions if s["file"] == paths[0] and s["continues_into"])
    later = [s for s in sessions if s["file"] == paths[1]][1:4]
    assert on["tls"] is not None and len(later) == 3
    for s in [on, *later]:
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", "follow", *paths, "--in",
                            s["file"], "--session", str(s["number"])], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        head = r.stdout.splitlines()[0]
        assert head.startswith(f"Session {s['number']}: {s['client']} -> {s['server']}, "
                               f"frames {s['first_frame']}-{s['last_frame']} ({s['frames']} ")
        assert ("continues into" in r.stdout) == bool(s["continues_into"])
        assert "--- TLS" in r.stdout or s["tls"] is None
    alone = subprocess.run([sys.executable, "-m", "fastcap.cli", "follow", paths[0],
                            "--session", str(on["number"])], capture_output=True, text=True,
                           timeout=120)  # its file alone: the frames in it only
    assert f"({on['frames']} frames)" not in alone.stdout.splitlines()[0]


@pytest.mark.parametrize("extra,message", [
    (["missing.pcap"], "missing.pcap: no such file"),
    (["-"], "-: follow reads several files only as regular files"),
    (["--in", "other.pcap"], "--in other.pcap: not a file given"),
])
def test_follow_of_several_files_refuses_what_it_cannot_read_in_one_line(ring, tmp_path,
                                                                          extra, message):
    _whole, files, _offsets, _ = ring
    if extra[0] == "missing.pcap":
        extra = [str(tmp_path / "missing.pcap")]
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "follow", str(files[0]),
                        str(files[1]), *extra, "--session", "1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.rstrip().endswith(message)


def test_a_sessions_frames_across_ring_files_are_those_of_the_whole(ring):
    """The report's `frame N` knows every frame of a session (`frame_runs`): for a session
    that goes on into the next files of a ring they are, numbered on from file to file, the
    frames the same session has in the whole capture."""
    from fastcap.options import DEFAULT_PORTS
    from fastcap.run.frameruns import frame_runs

    whole, files, offsets, _sessions = ring
    whole_sessions = list(scan(whole, ca_file=CA))
    want = dict(zip((s.first_frame for s in whole_sessions),
                    frame_runs(whole, whole_sessions, DEFAULT_PORTS), strict=True))
    spanning = 0
    for k, r in enumerate(_ring_scan(files, jobs=1)):
        later = list(dict.fromkeys(f for s in r.sessions for f in s.continues_into))
        runs = frame_runs(files[k], r.sessions, DEFAULT_PORTS, then=later)
        for s, got in zip(r.sessions, runs, strict=True):
            spanning += bool(s.continues_into)
            assert got is not None and got == want[s.first_frame + offsets[k]], (k, s.number)
    assert spanning
