"""One file split among workers — `scan -j N` (`fastcap.run.streamed`: workers read ranges, this
process judges) and executors such as Dask (`fastcap.run.split`: workers judge too): whatever
the split points, the sessions and the file summary must equal those of the one-process scan."""

from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.judge.judging import analyzer_for
from fastcap.read.capture import Capture, WalkState
from fastcap.run import ranges, scanner, split, streamed
from fastcap.run.scanner import judge_options, scan
from fastcap.run.workers import PoolExecutor, SerialExecutor
from fastcap.session import MAX_HELD

from .corpus import corpus_params
from .gencap import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CA = str(EXAMPLES / "test-root.pem")


def _result(path, **kw):
    run = scan(path, ca_file=CA, **kw)
    sessions = [s.to_dict() for s in run]
    return sessions, run.summary.to_dict()


def _split(path, parts, jobs=3, executor=None):
    return _result(path, jobs=jobs, executor=executor or SerialExecutor(),
                   parts=parts)


def _streamed(path, parts, workers=False, jobs=3, progress=None):
    """What `scan -j N` gives (sessions and summary), with ranges read here or by workers."""
    options = judge_options(ca_file=CA)
    summary, out, sessions = scanner._Tally(str(path)), [], []
    for s in streamed.iter_scan(path, options, analyzer_for(options), jobs=jobs,
                                parts=parts, workers=workers, out=out, progress=progress):
        scanner._count(summary, s, MAX_HELD)
        sessions.append(s.to_dict())
    scanner._totals(summary, out[0].counters, [out[0].meta])
    return sessions, summary.frozen().to_dict()


_HOW = {"split": _split, "streamed": _streamed}  # flows dealt to workers / judged here


def _plan(path, parts):
    with Capture(path) as cap:
        return ranges.plan(cap, parts, {25}, min_bytes=1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """Generated captures (background traffic + SMTP sessions), pcap and pcapng."""
    return generate(tmp_path_factory.mktemp("gen"), size="3M", sessions=60, seed=5)


@pytest.mark.parametrize("path", corpus_params())
@pytest.mark.parametrize("how", ["split", "streamed"])
def test_every_corpus_file_splits_to_the_same_result(path, how):
    split = _HOW[how]
    try:
        whole = _result(path)
    except Exception as e:  # not a capture at all: the split scan must fail the same way
        with pytest.raises(type(e)):
            split(path, 5)
        return
    for parts in (2, 5, 17):
        assert split(path, parts) == whole, f"{parts} ranges"


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("how", ["split", "streamed"])
def test_generated_capture_at_many_split_points(generated, fmt, how):
    path = generated[fmt]
    whole = _result(path)
    assert len(whole[0]) == 60
    for parts in (2, 3, 8, 29, 101):
        assert _HOW[how](path, parts) == whole, f"{parts} ranges"
    # Ranges found their own starts: no range had to be read again from its neighbour's end.
    tasks = _plan(path, 8)
    results = [ranges.read_range(t) for t in tasks]
    assert ranges.stitch(tasks, results).reread == 0
    assert [r.frames for r in results] and all(r.frames > 0 for r in results)


def test_zeros_over_the_first_record_do_not_misguide_the_ranges(generated, tmp_path):
    """A pcap whose first record header is zeros (a hole, stamped 1970 as Wireshark reads
    it): the time guide of later ranges comes from the first record, and a guide of 1970
    made every range refuse the real records it met and be read again from its neighbour."""
    data = bytearray(generated["pcap"].read_bytes())
    data[24:24 + 300] = bytes(300)
    path = tmp_path / "zeros.pcap"
    path.write_bytes(bytes(data))
    whole = _result(path)
    assert whole[1]["unreadable"] and whole[1]["sessions"] >= 59
    tasks = _plan(path, 8)
    assert ranges.stitch(tasks, [ranges.read_range(t) for t in tasks]).reread == 0
    assert _split(path, 8) == whole


def _records(data: bytes) -> list[int]:
    """Offsets of a little-endian pcap's records."""
    off, out = 24, []
    while off + 16 <= len(data):
        out.append(off)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    return out


def test_a_garbage_record_before_damage_does_not_misguide_the_resync(generated, tmp_path):
    """Where a hole ends inside a record header, the walk reads one garbage record (stamped
    with whatever bytes follow the hole: 1980 here) and stops at the corrupt header its
    length lands on.  The resync checks record times against the last records that carried
    a packet; guided by the garbage one alone, it refused every real record after it and
    the rest of the file was lost.  It resumes at the first sound record, however the file
    is cut into ranges."""
    data = bytearray(generated["pcap"].read_bytes())
    recs = _records(bytes(data))
    k = len(recs) // 2
    j = next(i for i in range(k + 20, len(recs) - 1) if recs[i + 1] - recs[i] > 400)
    land = recs[j] + 200  # inside record j's data
    struct.pack_into("<IIII", data, recs[k], 315532800, 0, land - recs[k] - 16,
                     land - recs[k] - 16)  # 1980-01-01, spanning records k .. j
    data[land:land + 16] = b"\xff" * 16  # the header it lands on is corrupt
    path = tmp_path / "garbage.pcap"
    path.write_bytes(bytes(data))
    whole = _result(path)
    assert whole[1]["unreadable"] == [[land, recs[j + 1]]]
    assert whole[1]["frames"] == k + 1 + len(recs) - (j + 1)
    for parts in (3, 29, 101):
        assert _split(path, parts) == whole, f"{parts} ranges"
        assert _streamed(path, parts) == whole, f"{parts} ranges"


def test_a_resync_after_one_record_relies_on_the_start_state(generated, tmp_path):
    """A range's walk that meets damage after a single record with a packet judges times by
    that record and the one before it, which only the start state knew: the range is then
    read again from its predecessor's exact end state (`start_used`)."""
    data = bytearray(generated["pcap"].read_bytes())
    recs = _records(bytes(data))
    k = len(recs) // 2
    data[recs[k + 1]:recs[k + 1] + 16] = b"\xff" * 16
    path = tmp_path / "one.pcap"
    path.write_bytes(bytes(data))
    sec = struct.unpack_from("<I", data, recs[k])[0]
    for read, used in ((1, True), (2, False)):
        with Capture(path) as cap:
            at = recs[k + 1 - read]
            for _ in cap.windows(WalkState(at, 1, ref_s=sec, prev_s=sec), stop=recs[k + 3]):
                pass
            assert cap.start_used is used, read


def test_packet_blocks_naming_a_lost_interface_are_one_warning(generated, tmp_path):
    """A pcapng whose interface block was lost: every packet block names an interface its
    section lacks.  Each is skipped and counted, and the warning is told once (not one line
    per packet, millions in a large file), however the file is cut into ranges."""
    data = generated["pcapng"].read_bytes()
    (shb_len,) = struct.unpack_from("<I", data, 4)
    (idb_len,) = struct.unpack_from("<I", data, shb_len + 4)
    path = tmp_path / "no-idb.pcapng"
    path.write_bytes(data[:shb_len] + data[shb_len + idb_len:])
    whole = _result(path)
    assert len(whole[1]["warnings"]) == 1 and "interface 0" in whole[1]["warnings"][0]
    with Capture(generated["pcapng"]) as cap:
        packets = sum(len(w) for w in cap.windows())
    assert whole[1]["skipped"] == {"packet block with unknown interface": packets}
    for parts in (3, 17):
        for how in _HOW.values():
            assert how(path, parts) == whole, f"{parts} ranges"


def test_a_section_header_with_a_damaged_trailer_is_read_on(generated, tmp_path):
    """Only the section header's trailing length is damaged: its byte order and length
    lead to a sound block, so the section is read (a resync could only look for the next
    section header, and this file has none: every packet was lost).  Whole, in ranges and
    decompressed in small pieces alike; with the next block unsound too, it is not."""
    data = bytearray(generated["pcapng"].read_bytes())
    (shb_len,) = struct.unpack_from("<I", data, 4)
    struct.pack_into("<I", data, shb_len - 4, 0)
    path = tmp_path / "trailer.pcapng"
    path.write_bytes(bytes(data))
    whole, intact = _result(path), _result(generated["pcapng"])
    assert whole[0] == intact[0] and len(whole[0]) == 60
    assert whole[1]["warnings"] == [f"{path}: section header block trailing length mismatch "
                                    "(its length leads to a sound block: read on) at offset 0"]
    for parts in (3, 17):
        for how in _HOW.values():
            assert how(path, parts) == whole, f"{parts} ranges"
    # decompressed 256 bytes at a time, the block after a 240-byte header straddles the
    # first piece's end: the header waits for it
    comment = struct.pack("<HH", 1, 204) + b"c" * 204 + bytes(4)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 240, 0x1A2B3C4D, 1, 0, -1) + comment
    packed = tmp_path / "trailer.pcapng.gz"
    packed.write_bytes(gzip.compress(shb + bytes(4) + bytes(data[shb_len:])))
    assert [s.to_dict()["client"] for s in scan(packed, ca_file=CA, piece=256)] == [
        s["client"] for s in whole[0]]
    struct.pack_into("<I", data, shb_len + 4, 7)  # the next block's length: unsound
    path.write_bytes(bytes(data))
    assert _result(path)[0] == []


@pytest.mark.parametrize("field", ["byte-order magic", "length", "both"])
def test_a_section_header_with_a_damaged_magic_or_length_is_read_on(generated, tmp_path,
                                                                      field):
    """A section header whose byte-order magic is damaged is read in the one byte order in
    which its length, trailer and next block agree; one whose length is damaged, in the
    byte order its magic gives, from the next well-framed block on.  Either way the
    section is read, whole and in ranges; with both damaged, nothing tells its byte order
    and it is lost, as before."""
    data = bytearray(generated["pcapng"].read_bytes())
    (shb_len,) = struct.unpack_from("<I", data, 4)
    if field != "length":
        data[8:12] = b"\x4d\x3c\x2b\x00"
    if field != "byte-order magic":
        struct.pack_into("<I", data, 4, 0x7FFFFFF1)
    path = tmp_path / "shb.pcapng"
    path.write_bytes(bytes(data))
    whole, intact = _result(path), _result(generated["pcapng"])
    if field == "both":
        assert whole[0] == [] and len(whole[1]["warnings"]) == 1
        return
    assert whole[0] == intact[0] and len(whole[0]) == 60
    (warning,) = whole[1]["warnings"]
    assert warning.startswith(f"{path}: ") and "read on" in warning
    assert ("little-endian" in warning) == (field == "byte-order magic")
    assert whole[1]["unreadable"] == ([] if field == "byte-order magic" else [[0, shb_len]])
    for parts in (3, 17):
        for how in _HOW.values():
            assert how(path, parts) == whole, f"{parts} ranges"


def _damaged(src: Path, dst: Path, seed: int) -> Path:
    """Garbage inserted at a few places, and a few length fields overwritten."""
    data = bytearray(src.read_bytes())
    rnd = random.Random(seed)
    for _ in range(3):
        at = rnd.randrange(64, len(data))
        data[at:at] = rnd.randbytes(rnd.randrange(1, 5000))
    for _ in range(3):
        at = rnd.randrange(64, len(data) - 4)
        data[at:at + 4] = rnd.randbytes(4)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("how", ["split", "streamed"])
def test_damaged_capture_splits_to_the_same_result(generated, tmp_path, fmt, seed, how):
    path = _damaged(generated[fmt], tmp_path / f"d.{fmt}", seed)
    whole = _result(path)
    assert whole[1]["unreadable"] or whole[1]["warnings"]  # the damage was noticed
    for parts in (4, 13, 64):
        assert _HOW[how](path, parts) == whole, f"{parts} ranges"


def test_new_sections_mid_file_are_read_again_exactly(generated, tmp_path):
    """Two pcapng files back to back: a second section with its own interfaces.  Ranges
    beyond it start with the wrong guess and must be re-read from the exact state."""
    one = generated["pcapng"].read_bytes()
    two = (EXAMPLES / "all-scenarios.pcapng").read_bytes()
    path = tmp_path / "sections.pcapng"
    path.write_bytes(two + one + two)
    whole = _result(path)
    assert whole[1]["sessions"] >= 60 + 9
    tasks = _plan(path, 12)
    st = ranges.stitch(tasks, [ranges.read_range(t) for t in tasks])
    assert st.reread > 0 and st.meta.sections == 3
    assert _split(path, 12) == whole


def _time_warp(src: Path, dst: Path) -> Path:
    """Every 40th record of a little-endian pcap moved 30 s into the past."""
    data = bytearray(src.read_bytes())
    off, k = 24, 0
    while off + 16 <= len(data):
        sec, _frac, incl, _orig = struct.unpack_from("<IIII", data, off)
        if k % 40 == 39:
            struct.pack_into("<I", data, off, sec - 30)
        off += 16 + incl
        k += 1
    dst.write_bytes(bytes(data))
    return dst


def test_timestamps_going_backwards_reassemble_in_one_process(generated, tmp_path):
    path = _time_warp(generated["pcap"], tmp_path / "warp.pcap")
    whole = _result(path)
    options = judge_options(ca_file=CA)
    res = split.split_scan(path, options, jobs=3, executor=SerialExecutor(),
                              parts=5)
    assert res.phase_two == "timestamps go backwards"
    assert _split(path, 5) == whole
    res = split.split_scan(generated["pcap"], options, jobs=3,
                           executor=SerialExecutor(), parts=5)
    assert res.phase_two == "split"


def test_worker_processes_give_the_same_result(generated):
    for fmt in ("pcap", "pcapng"):
        whole = _result(generated[fmt])
        with PoolExecutor(2) as ex:
            assert _split(generated[fmt], 4, jobs=2, executor=ex) == whole
        assert _result(generated[fmt], jobs=2) == whole  # its own pool, one range per job


def test_flows_are_dealt_whole_and_balanced(generated):
    tasks = _plan(generated["pcap"], 3)
    st = ranges.stitch(tasks, [ranges.read_range(t) for t in tasks])
    options = judge_options()
    chain = split._chain([str(generated["pcap"])], [st], [0])
    flow_tasks = split._flow_tasks(chain, 3, options)
    keys = [{(k.a_addr, k.a_port, k.b_addr, k.b_port) for k in t.keys.values()}
            for t in flow_tasks]
    assert len(flow_tasks) == 3 and not (keys[0] & keys[1] or keys[1] & keys[2])
    assert sum(len(t.cols) for t in flow_tasks) == len(st.cols)
    sizes = [len(t.cols) for t in flow_tasks]
    assert max(sizes) < 2 * min(sizes)


def test_cli_one_file_with_jobs_matches_one_process(generated):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--ca-file", CA,
                               "--format", "json", *args], capture_output=True, text=True,
                              timeout=300)

    one = run("-j", "1", str(generated["pcapng"]))
    two = run("-j", "2", str(generated["pcapng"]))
    assert one.returncode == two.returncode and one.stdout == two.stdout
    assert len(json.loads(two.stdout)["files"][0]["sessions"]) == 60


# -- streamed: workers read ranges, this process reassembles and judges as they arrive ----------


def test_streamed_sections_and_time_warps(generated, tmp_path):
    one = generated["pcapng"].read_bytes()
    two = (EXAMPLES / "all-scenarios.pcapng").read_bytes()
    sections = tmp_path / "sections.pcapng"
    sections.write_bytes(two + one + two)
    assert _streamed(sections, 12) == _result(sections)
    warp = _time_warp(generated["pcap"], tmp_path / "warp.pcap")
    assert _streamed(warp, 5) == _result(warp)


def test_streamed_with_worker_processes(generated):
    for fmt in ("pcap", "pcapng"):
        assert _streamed(generated[fmt], 6, workers=True, jobs=2) == _result(generated[fmt])


def _twice(src: Path, dst: Path) -> Path:
    """A little-endian pcap's records 10 ms apart, then the same records again 1000 s
    later: sessions span many seconds, and every one of the first copy is over long before
    the second begins."""
    data = src.read_bytes()
    body = bytearray(data[24:])
    off, k = 0, 0
    while off + 16 <= len(body):
        incl = struct.unpack_from("<I", body, off + 8)[0]
        struct.pack_into("<II", body, off, 1_700_000_000 + k // 100, k % 100 * 10_000)
        off += 16 + incl
        k += 1
    later = bytearray(body)
    off = 0
    while off + 16 <= len(later):
        sec, _frac, incl, _orig = struct.unpack_from("<IIII", later, off)
        struct.pack_into("<I", later, off, sec + 1000)
        off += 16 + incl
    dst.write_bytes(data[:24] + bytes(body) + bytes(later))
    return dst


def test_sessions_stream_out_before_the_file_is_read(generated, tmp_path):
    """Memory stays bounded: sessions are handed on while later ranges are still unread."""
    path = _twice(generated["pcap"], tmp_path / "twice.pcap")
    whole = _result(path)
    # sessions of one certificate and day at many capture times: judged in any order, the
    # same words (workers judging in their own order gave other times in the detail)
    assert _streamed(path, 16) == whole and _split(path, 7) == whole
    done: list[int] = []
    options = judge_options(ca_file=CA)
    first = next(streamed.iter_scan(path, options, analyzer_for(options), jobs=2,
                                    parts=16, workers=False,
                                    progress=lambda d, t: done.append((d, t))))
    assert first.number == 1
    assert done and done[-1][0] < 0.75 * done[-1][1]  # well before the end


def test_the_generated_pair_starts_together_and_scans_apart(generated):
    """The pcap and pcapng of one generated traffic start at one instant, however long the
    first took to write: one command given both reads two captures, not a ring of two."""
    firsts = [next(iter(scan(generated[f]))).first_ts_ns for f in ("pcap", "pcapng")]
    assert abs(firsts[0] - firsts[1]) < 10**9
    paths = [generated["pcap"], generated["pcapng"]]
    together = list(scanner.scan_files(paths, jobs=1))
    for r, p in zip(together, paths, strict=True):
        assert [s.to_dict() for s in r.sessions] == [s.to_dict() for s in scan(p)]
