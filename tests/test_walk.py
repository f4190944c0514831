"""The frame walker (C and Python) returns exactly the records that were written."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap import Capture, CaptureError
from fastcap.read.frames import F_NO_TS, F_OVER_SNAPLEN, F_SNAPPED, record_ends
from fastcap_synth.writers import PcapngWriter, Record, write_pcap

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def walk(path: Path, backend: str, window: int = 3, slab_width: int = 32):
    """All windows concatenated (copies: windows are reused)."""
    cols = {k: [] for k in ("offset", "caplen", "orig_len", "ts_ns", "iface", "frame_no",
                            "flags", "slab")}
    with Capture(path, backend=backend, window=window, slab_width=slab_width) as cap:
        for w in cap.windows():
            for k in cols:
                cols[k].append(getattr(w, k).copy())
        meta = cap.meta
    out = {k: (np.concatenate(v) if v else np.empty(0)) for k, v in cols.items()}
    return out, meta


packet = st.binary(min_size=0, max_size=80)


@st.composite
def pcap_case(draw):
    n = draw(st.integers(0, 12))
    recs = []
    for _ in range(n):
        data = draw(packet)
        extra = draw(st.sampled_from([0, 0, 1, 500]))
        recs.append(Record(data, draw(st.integers(0, 2**32 - 1)) * 10**9
                           + draw(st.integers(0, 10**9 - 1)), len(data) + extra))
    return recs, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from([0, 40, 65535]))


@SETTINGS
@given(case=pcap_case(), window=st.integers(1, 5))
def test_pcap_roundtrip(tmp_path, backend, case, window):
    recs, big, nanos, snaplen = case
    path = tmp_path / "t.pcap"
    write_pcap(path, recs, big_endian=big, nanosecond=nanos, snaplen=snaplen)
    cols, meta = walk(path, backend, window)
    assert meta.format == "pcap" and list(meta.byte_orders) == ["big" if big else "little"]
    assert meta.nanosecond == nanos and list(meta.warnings) == []
    assert len(cols["frame_no"]) == len(recs)
    assert cols["frame_no"].tolist() == list(range(1, len(recs) + 1))
    raw = path.read_bytes()
    for i, r in enumerate(recs):
        sec, frac = divmod(r.ts_ns, 10**9)
        want_ts = sec * 10**9 + (frac if nanos else frac // 1000 * 1000)
        assert cols["ts_ns"][i] == want_ts
        assert cols["caplen"][i] == len(r.data) and cols["orig_len"][i] == r.orig_len
        off = int(cols["offset"][i])
        assert raw[off : off + len(r.data)] == r.data
        head = r.data[:32]
        assert bytes(cols["slab"][i]) == head + b"\0" * (32 - len(head))
        want_flags = (F_SNAPPED if r.orig_len > len(r.data) else 0) | (
            F_OVER_SNAPLEN if snaplen and len(r.data) > snaplen else 0)
        assert cols["flags"][i] == want_flags


def _units_to_ns(units: int, tsresol: int | None, tsoffset: int) -> int:
    if tsresol is None:
        tsresol = 6
    base = Fraction(2) ** (tsresol & 0x7F) if tsresol & 0x80 else Fraction(10) ** tsresol
    ns = (Fraction(units) * 10**9 / base).__floor__() + tsoffset * 10**9
    return max(-(2**63), min(2**63 - 1, ns))


@st.composite
def pcapng_case(draw):
    """Sections (random byte order) with interfaces of random tsresol/tsoffset/linktype and
    packet blocks of every kind, interleaved with blocks the reader must step over."""
    sections = []
    for _ in range(draw(st.integers(1, 3))):
        ifaces = [(draw(st.sampled_from([1, 0, 101, 113, 228])),
                   draw(st.sampled_from([None, 0, 3, 6, 9, 12, 0x80 | 10, 0x80 | 30, 100])),
                   draw(st.sampled_from([None, 0, 1_000_000, -5])),
                   draw(st.sampled_from([0, 0, 48])))
                  for _ in range(draw(st.integers(1, 3)))]
        blocks = []
        for _ in range(draw(st.integers(0, 8))):
            kind = draw(st.sampled_from(["epb", "epb", "epb", "spb", "pb", "nrb", "isb",
                                         "dsb", "custom", "unknown"]))
            blocks.append((kind, draw(st.integers(0, len(ifaces) - 1)), draw(packet),
                           draw(st.integers(0, 2**64 - 1)), draw(st.sampled_from([0, 0, 7]))))
        sections.append((draw(st.booleans()), ifaces, blocks))
    return sections


@SETTINGS
@given(case=pcapng_case(), window=st.integers(1, 5))
def test_pcapng_roundtrip(tmp_path, backend, case, window):
    path = tmp_path / "t.pcapng"
    expected = []  # (frame_no, global_iface, data, orig, ts_ns, flags)
    fno, gbase, n_custom = 1, 0, 0
    linktypes = []
    with PcapngWriter(path) as w:
        for big, ifaces, blocks in case:
            w.section(big_endian=big)
            for lt, res, toff, snap in ifaces:
                w.interface(lt, tsresol=res, tsoffset=toff, snaplen=snap)
                linktypes.append(lt)
            for kind, ifc, data, units, extra in blocks:
                _lt, res, toff, snap = ifaces[ifc]
                orig = len(data) + extra
                if kind in ("epb", "pb"):
                    if kind == "epb":
                        w.epb(ifc, data, ts_units=units, orig_len=orig)
                    else:
                        w.obsolete_pb(ifc, data, ts_units=units, orig_len=orig)
                    flags = (F_SNAPPED if orig > len(data) else 0) | (
                        F_OVER_SNAPLEN if snap and len(data) > snap else 0)
                    expected.append((fno, gbase + ifc, data, orig,
                                     _units_to_ns(units, res, toff or 0), flags))
                    fno += 1
                elif kind == "spb":
                    snap0 = ifaces[0][3]
                    cut = data[:snap0] if snap0 else data
                    w.spb(data, orig_len=len(data))
                    flags = F_NO_TS | (F_SNAPPED if len(cut) < len(data) else 0)
                    expected.append((fno, gbase, cut, len(data), 0, flags))
                    fno += 1
                elif kind == "nrb":
                    w.nrb([])
                elif kind == "isb":
                    w.isb(ifc)
                elif kind == "dsb":
                    w.dsb(0x544C534B, data)
                elif kind == "custom":
                    w.custom(32473, data, copyable=bool(extra))
                    fno += 1
                    n_custom += 1
                else:
                    w.raw_block(0x00000F00 + extra, data + b"\0" * (-len(data) % 4))
            gbase += len(ifaces)
    cols, meta = walk(path, backend, window)
    assert list(meta.warnings) == []
    assert [i.linktype for i in meta.interfaces] == linktypes
    assert meta.sections == len(case)
    assert sum(meta.other_records.values()) == n_custom
    assert len(cols["frame_no"]) == len(expected)
    raw = path.read_bytes()
    for i, (f, g, data, orig, ts, flags) in enumerate(expected):
        assert cols["frame_no"][i] == f
        assert cols["iface"][i] == g
        assert cols["caplen"][i] == len(data) and cols["orig_len"][i] == orig
        assert cols["ts_ns"][i] == ts
        assert cols["flags"][i] == flags
        off = int(cols["offset"][i])
        assert raw[off : off + len(data)] == data


def test_native_and_python_agree_on_random_bytes_after_a_valid_header(require_native):
    """Garbage after a valid header: both walkers stop at the same place with the same rows."""
    rng = np.random.default_rng(7)
    for trial in range(200):
        body = rng.integers(0, 256, rng.integers(0, 400), dtype=np.uint8).tobytes()
        if trial % 2:
            head = io.BytesIO()
            write_pcap(head, [], snaplen=65535)
            data = head.getvalue() + body
            name = "g.pcap"
        else:
            head = io.BytesIO()
            with PcapngWriter(head) as w:
                w.section()
                w.interface(1)
            data = head.getvalue() + body
            name = "g.pcapng"
        p = Path(f"/tmp/fastcap-garbage-{trial}-{name}")
        p.write_bytes(data)
        try:
            a, ma = walk(p, "native", 4)
            b, mb = walk(p, "python", 4)
        finally:
            p.unlink()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
        assert [str(w) for w in ma.warnings] == [str(w) for w in mb.warnings]


def test_truncated_last_record_is_a_warning_with_offset(tmp_path, backend):
    path = tmp_path / "cut.pcap"
    write_pcap(path, [Record(b"a" * 100, 10**9), Record(b"b" * 100, 2 * 10**9)])
    raw = path.read_bytes()
    path.write_bytes(raw[:-30])
    cols, meta = walk(path, backend)
    assert len(cols["frame_no"]) == 1
    (w,) = meta.warnings
    assert w.kind == "truncated_record" and w.offset == 24 + 16 + 100
    assert "needs 116 bytes, 86 remain" in w.message


def test_corrupt_pcapng_block_stops_with_offset(tmp_path, backend):
    path = tmp_path / "bad.pcapng"
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        w.epb(0, b"x" * 60, ts_units=1)
        w.epb(0, b"y" * 60, ts_units=2)
    raw = bytearray(path.read_bytes())
    second = len(raw) - 92  # the last EPB is 28 + 60 + 4 bytes
    raw[second + 4 : second + 8] = (13).to_bytes(4, "little")  # not a multiple of 4
    path.write_bytes(bytes(raw))
    cols, meta = walk(path, backend)
    assert cols["frame_no"].tolist() == [1]
    (w,) = meta.warnings
    assert w.kind == "corrupt_block" and w.offset == second


def unpadded_pcapng(path: Path) -> tuple[bytearray, int]:
    """EPBs of 20, 61 and 20 bytes of data with a local block between the last two, the
    second EPB and the local block written as some writers do, the padding left out of both
    length fields (93 and 13, not 96 and 16); the bytes and the second EPB's offset."""
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        w.epb(0, b"a" * 20, ts_units=1)
        w.epb(0, b"b" * 61, ts_units=2)
        w.raw_block(0x80000001, b"xyz\0")  # a local block type, skipped by length
        w.epb(0, b"c" * 20, ts_units=3)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"b" * 61) - 28
    local = at + 96
    for off, n in ((at, 96), (local, 16)):
        assert int.from_bytes(raw[off + 4: off + 8], "little") == n
        for field in (off + 4, off + n - 4):
            raw[field: field + 4] = (n - 3).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return raw, at


def test_block_lengths_that_leave_out_the_padding_read_as_in_wireshark(tmp_path, backend):
    """Some writers leave the padding out of both length fields (an EPB of 61 bytes says 93,
    not 96); Wireshark rounds them up and reads every frame, so frame numbers stay in step."""
    path = tmp_path / "unpadded.pcapng"
    unpadded_pcapng(path)
    cols, meta = walk(path, backend)
    assert cols["caplen"].tolist() == [20, 61, 20]
    assert cols["frame_no"].tolist() == [1, 2, 3]
    assert list(meta.warnings) == []

def test_a_cut_in_the_padding_of_an_unpadded_block_drops_it_however_found(tmp_path, backend):
    """A file cut inside the padding or trailer of a block whose lengths leave the padding
    out (93, not 96): tshark says it was cut short in the middle of a packet, and the walk of
    the file cut there drops the block as truncated, saying where.  A cut found after the
    walk keeps a frame only where its record ends by the cut (`record_ends`): that end is
    the padded one, so the frames kept are the same however the cut was found."""
    path = tmp_path / "unpadded.pcapng"
    raw, at = unpadded_pcapng(path)
    whole, _ = walk(path, backend)
    ends = record_ends(np.frombuffer(bytes(raw), np.uint8), True, whole["offset"],
                       whole["caplen"], whole["flags"])
    assert ends[1] == at + 96
    for cut in range(at + 28 + 61, at + 97):
        path.write_bytes(bytes(raw[:cut]))
        cols, meta = walk(path, backend)
        assert cols["frame_no"].tolist() == whole["frame_no"][ends <= cut].tolist(), cut
        want = [] if cut == at + 96 else [("truncated_block", at)]
        assert [(w.kind, w.offset) for w in meta.warnings] == want, cut



def test_epb_naming_a_missing_interface_is_skipped_and_reported(tmp_path, backend):
    path = tmp_path / "iface.pcapng"
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        w.epb(0, b"a" * 20, ts_units=1)
        w.raw_block(6, (5).to_bytes(4, "little") + bytes(16) + b"b" * 20)  # interface 5
        w.epb(0, b"c" * 20, ts_units=3)
    cols, meta = walk(path, backend)
    assert cols["caplen"].tolist() == [20, 20]
    assert [w.kind for w in meta.warnings] == ["bad_interface"]
    assert meta.skipped["packet block with unknown interface"] == 1


def test_the_first_of_two_tsresol_options_counts_as_in_wireshark(tmp_path, backend):
    """An interface block with two if_tsresol options (one damaged into the other's code,
    say): Wireshark reads the first, so frame times agree with its only that way."""
    path = tmp_path / "two.pcapng"
    opts = b"".join(bytes([9, 0, 1, 0, res, 0, 0, 0]) for res in (9, 6)) + bytes(4)
    with PcapngWriter(path) as w:
        w.section()
        w.raw_block(1, (1).to_bytes(2, "little") + bytes(2) + (65535).to_bytes(4, "little")
                    + opts)
        w.epb(0, b"a" * 20, ts_units=1_700_000_000_123_456_789)
    cols, _ = walk(path, backend)
    assert cols["ts_ns"].tolist() == [1_700_000_000_123_456_789]


def test_an_interface_option_longer_than_its_block_is_a_warning(tmp_path, backend):
    """The options after it go unread, if_tsresol among them (Wireshark refuses the file):
    frame times may be wrong, so it is said, with the option's offset."""
    path = tmp_path / "opt.pcapng"
    opts = (2).to_bytes(2, "little") + (0xFFF0).to_bytes(2, "little") + b"eth0"  # if_name
    opts += bytes([9, 0, 1, 0, 9, 0, 0, 0]) + bytes(4)  # if_tsresol 9, end of options
    with PcapngWriter(path) as w:
        w.section()
        w.raw_block(1, (1).to_bytes(2, "little") + bytes(2) + (65535).to_bytes(4, "little")
                    + opts)
        w.epb(0, b"a" * 20, ts_units=1_700_000_000_123_456)
    idb = int.from_bytes(path.read_bytes()[4:8], "little")  # after the section header
    cols, meta = walk(path, backend)
    assert cols["ts_ns"].tolist() == [1_700_000_000_123_456_000]  # read as microseconds
    (w,) = meta.warnings
    assert (w.kind, w.offset) == ("corrupt_block", idb + 16)
    assert "option longer than its block" in w.message


def test_many_interface_blocks_keep_each_ones_resolution(tmp_path, backend):
    """Each interface block between packets calls the walk again, and the C walker's table
    grows by the new ones (`benchmarks/adversarial.py` times 50,000: it was rebuilt per call,
    quadratic).  Packets naming early and late interfaces keep each one's time resolution."""
    path = tmp_path / "ifaces.pcapng"
    n = 12_000
    with PcapngWriter(path) as w:
        w.section()
        for i in range(n):
            res = 9 if i % 2 else 6
            w.raw_block(1, (1).to_bytes(2, "little") + bytes(2) + (65535).to_bytes(4, "little")
                        + bytes([9, 0, 1, 0, res, 0, 0, 0]) + bytes(4))
            if i % 1000 == 999:
                for j in (0, 1, i - 1, i):
                    w.epb(j, b"p" * 20, ts_units=1_700_000_000_000_000 * (1000 if j % 2 else 1))
    cols, meta = walk(path, backend, window=64)
    assert len(meta.interfaces) == n and list(meta.warnings) == []
    assert cols["iface"].tolist()[:8] == [0, 1, 998, 999, 0, 1, 1998, 1999]
    assert set(cols["ts_ns"].tolist()) == {1_700_000_000_000_000_000}


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"),
    (b"hello world, not a capture", "not a pcap or pcapng file (magic 0x68656c6c)"),
    (b"\x1f\x8b\x08\x00rest", "is compressed"),
])
def test_not_a_capture(tmp_path, content, message):
    p = tmp_path / "x.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Capture(p)


def test_directory_missing_and_fifo(tmp_path):
    import os

    with pytest.raises(CaptureError, match="is a directory"):
        Capture(tmp_path)
    with pytest.raises(CaptureError, match="no such file"):
        Capture(tmp_path / "nope.pcap")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CaptureError, match="FIFO"):
        Capture(fifo)


def test_input_file_is_never_modified(tmp_path, backend):
    path = tmp_path / "ro.pcap"
    write_pcap(path, [Record(bytes(range(60)), 5 * 10**9)])
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    walk(path, backend)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_offsets_beyond_4_gib(tmp_path, backend):
    """A sparse pcapng whose packet lies past 4 GiB: 64-bit offsets all the way through."""
    from fastcap_synth import packets as p
    from fastcap_synth.writers import PcapngWriter

    path = tmp_path / "huge.pcapng"
    frame = p.tcp_frame("10.0.0.1", "10.0.0.2", 40000, 25, 7, 9, p.ACK, b"EHLO big\r\n")
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        w.epb(0, frame, ts_units=1)
    block = 16 * 1024 * 1024  # the largest block the reader accepts
    with open(path, "r+b") as fh:
        fh.seek(0, 2)
        for _ in range(257):  # 257 x 16 MiB unknown blocks, written as holes
            start = fh.tell()
            fh.write((0x00000F00).to_bytes(4, "little") + block.to_bytes(4, "little"))
            fh.seek(start + block - 4)
            fh.write(block.to_bytes(4, "little"))
        tail = io.BytesIO()
        with PcapngWriter(tail) as w2:
            w2.section()
            w2.interface(1)
            w2.epb(0, frame, ts_units=2)
        fh.write(tail.getvalue())
    assert path.stat().st_size > 2**32
    cols, meta = walk(path, backend, window=4, slab_width=64)
    assert cols["frame_no"].tolist() == [1, 2] and list(meta.warnings) == []
    off = int(cols["offset"][1])
    assert off > 2**32
    with open(path, "rb") as fh:
        fh.seek(off)
        assert fh.read(len(frame)) == frame
    assert bytes(cols["slab"][1][:len(frame[:64])]) == frame[:64]
    assert meta.block_counts["type 0x00000f00"] == 257


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(units=st.integers(0, 2**64 - 1), pow2=st.booleans(),
       exp=st.integers(-(2**31), 2**31 - 1), offset_s=st.integers(-(2**63), 2**63 - 1))
def test_ts_to_ns_twins_agree_on_any_exponent(require_native, units, pow2, exp, offset_s):
    """The C API takes any int32 exponent (if_tsresol itself holds 0..127): no overflow, no
    long loop, and the same answer as the Python twin."""
    from fastcap._native import lib

    from fastcap.read.walkstatus import ts_to_ns

    assert lib.fc_ts_to_ns(units, pow2, exp, offset_s) == ts_to_ns(units, pow2, exp, offset_s)
