"""pcapng blocks whose two length fields agree but leave no room for the block's fixed
fields (a 12-byte Name Resolution Block, a 16-byte Interface Statistics Block, a custom
block without its Private Enterprise Number): tshark calls the file damaged and stops there.
fastcap says so in one line naming the file and the block's offset, and reads on; the
frames before it are tshark's, and the block takes no frame number.  Before, the walk
counted the first two as sound blocks without a word and numbered the others as frames."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from fastcap.read.capture import Capture

from .test_undated import _block

SHORT = [(0x4, 12), (0x5, 12), (0x5, 20), (0xA, 16), (0x9, 32), (0xBAD, 12),
         (0x40000BAD, 12)]


def _capture(path: Path, btype: int, body_len: int, at: int = 5, packets: int = 12) -> int:
    """A pcapng of `packets` packets with a block of `btype` (`body_len` zero bytes of body)
    before packet `at`; returns the block's offset."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 65535))]
    where = 0
    for i in range(packets):
        if i == at:
            where = sum(map(len, out))
            out.append(struct.pack("<II", btype, 12 + body_len) + bytes(body_len)
                       + struct.pack("<I", 12 + body_len))
        pkt = bytes(14 + i)
        out.append(_block(6, struct.pack("<IIIII", 0, 0, 1000 + i, len(pkt), len(pkt)) + pkt))
    path.write_bytes(b"".join(out))
    return where


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("btype,blen", SHORT)
def test_a_block_shorter_than_its_fixed_fields_is_named_and_stepped_over(tmp_path, backend,
                                                                        btype, blen):
    path = tmp_path / "short.pcapng"
    at = _capture(path, btype, blen - 12)
    with Capture(path, backend=backend) as cap:
        frames = [f for w in cap.windows() for f in w.frame_no.tolist()]
        warnings = cap.meta.warnings
        assert cap.meta.other_records == {} or sum(cap.meta.other_records.values()) == 0
    assert frames == list(range(1, 13))
    assert [(w.kind, w.offset) for w in warnings] == [("corrupt_block", at)]
    line = str(warnings[0])
    assert str(path) in line and f"offset {at}" in line and "\n" not in line
    assert f"{blen} bytes is shorter than its fixed fields" in line


@pytest.mark.parametrize("btype,blen", [(0x4, 16), (0x5, 24), (0x77, 12)])
def test_blocks_of_their_least_length_read_without_a_word(tmp_path, btype, blen):
    path = tmp_path / "least.pcapng"
    _capture(path, btype, blen - 12)
    for backend in ("native", "python"):
        with Capture(path, backend=backend) as cap:
            assert sum(len(w.frame_no) for w in cap.windows()) == 12
            assert list(cap.meta.warnings) == []


@pytest.mark.parametrize("btype,blen", SHORT)
def test_tshark_calls_the_file_damaged_at_the_block_fastcap_names(tmp_path, btype, blen,
                                                                  tshark):
    """Where fastcap warns, tshark stops, after the same five frames."""
    path = tmp_path / "short.pcapng"
    _capture(path, btype, blen - 12)
    run = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True)
    assert run.stdout.split() == ["1", "2", "3", "4", "5"]
    assert "damaged" in run.stderr or "cut short" in run.stderr
    ok = tmp_path / "ok.pcapng"
    _capture(ok, 0x77, 0)
    assert subprocess.run([tshark, "-r", str(ok)], capture_output=True).stdout.count(b"\n") == 12


@pytest.mark.parametrize("backend", ["native", "python"])
def test_many_short_blocks_are_one_line_and_a_count(tmp_path, backend):
    """A file of many such blocks: one warning (the first's offset), each one counted."""
    path = tmp_path / "many.pcapng"
    at = _capture(path, 0x5, 4, at=2)
    data = path.read_bytes()
    block = data[at:at + 16]
    path.write_bytes(data[:at] + block * 500 + data[at + 16:])
    with Capture(path, backend=backend) as cap:
        assert sum(len(w.frame_no) for w in cap.windows()) == 12
        assert [(w.kind, w.offset) for w in cap.meta.warnings] == [("corrupt_block", at)]
        assert cap.meta.skipped["corrupt interface statistics block"] == 500


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_run_of_short_blocks_costs_one_walk_call(tmp_path, backend, monkeypatch):
    """After the first is told, the reader steps over a run of short blocks itself: handed
    back by the walk one by one, each cost a walk call (a file of nothing else read at
    0.2 MB/s).  Every one is still counted, and a sound block after them is read."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 65535))]
    for i in range(3):
        out += [struct.pack("<III", 4 if k % 2 else 5, 12, 12) for k in range(1000)]
        pkt = bytes(14 + i)
        out.append(_block(6, struct.pack("<IIIII", 0, 0, 1000 + i, len(pkt), len(pkt)) + pkt))
    path = tmp_path / "runs.pcapng"
    path.write_bytes(b"".join(out))
    with Capture(path, backend=backend) as cap:
        calls = []
        walk = cap.walker.walk_pcapng
        monkeypatch.setattr(cap.walker, "walk_pcapng",
                            lambda *a, **k: calls.append(1) or walk(*a, **k))
        frames = [f for w in cap.windows() for f in w.frame_no.tolist()]
        meta = cap.meta
    assert frames == [1, 2, 3]
    assert meta.skipped["corrupt name resolution block"] == 1500  # the told ones too
    assert meta.skipped["corrupt interface statistics block"] == 1500
    assert [w.offset for w in meta.warnings] == [sum(map(len, out[:2])),
                                                 sum(map(len, out[:2])) + 12]
    assert len(calls) < 20


def test_a_file_read_in_pieces_tells_each_type_once(tmp_path):
    """An executor's tasks read a file in byte ranges, each with its own reader: their
    warnings, joined, tell the first short block of each type only, as one walk does."""
    from fastcap.run.scanner import scan, scan_files
    from fastcap.run.workers import SerialExecutor

    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 65535))]
    for i in range(40):
        out += [struct.pack("<III", 4, 12, 12)] * 2000
        pkt = bytes(14 + i)
        out.append(_block(6, struct.pack("<IIIII", 0, 0, 1000 + i, len(pkt), len(pkt)) + pkt))
    path = tmp_path / "pieces.pcapng"
    path.write_bytes(b"".join(out))
    run = scan(path)
    list(run)
    whole = run.summary
    assert len([w for w in whole.warnings if "shorter than its fixed fields" in w]) == 1
    (r,) = scan_files([path], parts=5, jobs=2, executor=SerialExecutor())
    assert r.summary.to_dict() == whole.to_dict()
