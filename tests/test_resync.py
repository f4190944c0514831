"""After a corrupt block or record, reading resumes at the next good one and reports the
unreadable byte range; every frame outside that range is still read, on both backends."""

from __future__ import annotations

import gzip
import io
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.read import resync
from fastcap_synth.writers import PcapngWriter, Record, write_pcap
from tests.test_walk import unpadded_pcapng, walk
from tests.workcount import Tally, metered, python_calls

PAYLOADS = [bytes([65 + i]) * (40 + 8 * i) for i in range(6)]
T0 = 1_700_000_000 * 10**9


def pcapng_bytes(tmp_path, payloads=PAYLOADS) -> tuple[bytes, list[int]]:
    """A one-interface pcapng and the offset of each EPB."""
    path = tmp_path / "src.pcapng"
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        for i, p in enumerate(payloads):
            w.epb(0, p, ts_units=T0 // 1000 + i)
    raw = path.read_bytes()
    offs, off = [], 0
    while off < len(raw):
        btype, blen = (int.from_bytes(raw[off + k : off + k + 4], "little") for k in (0, 4))
        if btype == 6:
            offs.append(off)
        off += blen
    return raw, offs


def block_offsets(raw: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each block of a little-endian pcapng."""
    out, off = [], 0
    while off < len(raw):
        blen = int.from_bytes(raw[off + 4 : off + 8], "little")
        out.append((off, blen))
        off += blen
    return out


def pcap_bytes(tmp_path, payloads=PAYLOADS) -> tuple[bytes, list[int]]:
    path = tmp_path / "src.pcap"
    write_pcap(path, [Record(p, T0 + i * 10**6) for i, p in enumerate(payloads)])
    raw = path.read_bytes()
    offs, off = [], 24
    for p in payloads:
        offs.append(off)
        off += 16 + len(p)
    return raw, offs


def read(tmp_path, backend, data: bytes, suffix: str):
    path = tmp_path / f"x.{suffix}"
    path.write_bytes(data)
    cols, meta = walk(path, backend)
    slabs = [bytes(r[: min(c, 32)]) for r, c in zip(cols["slab"], cols["caplen"], strict=True)]
    return slabs, meta


@pytest.mark.parametrize("bad_len", [13, 0, 8, 0x7FFFFFF0, 0xFFFFFFFC, "off_by_4"])
def test_pcapng_corrupt_length_skips_one_block(tmp_path, backend, bad_len):
    raw, offs = pcapng_bytes(tmp_path)
    data = bytearray(raw)
    at = offs[2]
    old = int.from_bytes(data[at + 4 : at + 8], "little")
    new = old + 4 if bad_len == "off_by_4" else bad_len
    data[at + 4 : at + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for i, p in enumerate(PAYLOADS) if i != 2]
    assert list(meta.unreadable) == [(at, offs[3])]
    (w,) = meta.warnings
    assert w.kind == "corrupt_block" and w.offset == at
    assert w.message.endswith(f"resumed at offset {offs[3]}, past {offs[3] - at} unreadable bytes")
    assert str(w).endswith(f"{offs[3] - at} unreadable bytes at offset {at}")


@pytest.mark.parametrize("junk", [1, 3, 4, 1001])
def test_pcapng_garbage_between_blocks_of_any_length(tmp_path, backend, junk):
    raw, offs = pcapng_bytes(tmp_path)
    noise = random.Random(junk).randbytes(junk)
    data = raw[: offs[3]] + noise + raw[offs[3] :]
    slabs, meta = read(tmp_path, backend, data, "pcapng")
    assert slabs == [p[:32] for p in PAYLOADS]
    assert list(meta.unreadable) == [(offs[3], offs[3] + junk)]


def test_pcapng_caplen_beyond_block_loses_only_that_block(tmp_path, backend):
    raw, offs = pcapng_bytes(tmp_path)
    data = bytearray(raw)
    data[offs[1] + 20 : offs[1] + 24] = (5000).to_bytes(4, "little")  # EPB captured length
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for i, p in enumerate(PAYLOADS) if i != 1]
    assert [w.kind for w in meta.warnings] == ["corrupt_packet"]
    assert meta.skipped["corrupt packet block"] == 1 and list(meta.unreadable) == []


def test_pcapng_corrupt_second_section_header(tmp_path, backend):
    raw, offs = pcapng_bytes(tmp_path, PAYLOADS[:2])
    data = bytearray(raw + raw)
    data[len(raw) + 8 : len(raw) + 12] = b"\0\0\0\0"  # byte-order magic of section 2
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    # Its length, trailer and next block agree in one byte order only: section 2 is read.
    assert slabs == [p[:32] for p in PAYLOADS[:2]] * 2
    (w,) = meta.warnings
    assert (w.kind, w.offset, meta.sections, meta.unreadable) == (
        "corrupt_block", len(raw), 2, ())
    assert "little-endian: read on" in w.message
    data[len(raw) + 4: len(raw) + 8] = b"\0\0\0\0"  # its length too: no byte order is told
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    # Section 2's interface is read into section 1, so its packets are still found.
    assert slabs == [p[:32] for p in PAYLOADS[:2]] * 2
    assert meta.warnings[0].kind == "corrupt_block"
    assert meta.unreadable[0][0] == len(raw)


def test_pcapng_truncated_tail_is_still_truncated(tmp_path, backend):
    raw, offs = pcapng_bytes(tmp_path)
    slabs, meta = read(tmp_path, backend, raw[:-10], "pcapng")
    assert slabs == [p[:32] for p in PAYLOADS[:-1]]
    assert [w.kind for w in meta.warnings] == ["truncated_block"] and list(meta.unreadable) == []


@pytest.mark.parametrize("field,value", [(8, 0xFFFFFFFF), (8, 300000), (8, 70000)])
def test_pcap_corrupt_record_header_resyncs(tmp_path, backend, field, value):
    raw, offs = pcap_bytes(tmp_path)
    data = bytearray(raw)
    at = offs[2]
    data[at + field : at + field + 4] = value.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcap")
    assert slabs == [p[:32] for i, p in enumerate(PAYLOADS) if i != 2]
    assert list(meta.unreadable) == [(at, offs[3])]
    assert meta.warnings[0].kind == "corrupt_record" and meta.warnings[0].offset == at


@pytest.mark.parametrize("shift", [0, 4, 9])
def test_a_hole_of_zeros_reads_as_empty_frames_then_the_records_after_it(tmp_path, backend,
                                                                          shift):
    """Zeros over a record header and beyond (a disk's lost block): Wireshark reads each 16
    zero bytes as a frame of length 0 stamped 1970, so they count as frames here too; such a
    frame must not become the guide the resync checks record times against, or every real
    record after the hole is refused (reading stopped) or met 4 bytes off, where the
    microseconds field passes for seconds of January 1970."""
    payloads = [bytes([65 + i % 26]) * (40 + 8 * (i % 7)) for i in range(40)]
    raw, offs = pcap_bytes(tmp_path, payloads)
    data = bytearray(raw)
    at = offs[20] + shift
    data[at:at + 100] = bytes(100)
    cols, meta = walk_bytes(tmp_path, backend, bytes(data))
    after = [i for i, o in enumerate(offs) if o >= at + 100]  # records whole after it
    want = [T0 + i * 10**6 for i in after]
    past = [int(t) for o, t, n in zip(cols["offset"], cols["ts_ns"], cols["orig_len"],
                                      strict=True) if n and o - 16 >= at + 100]
    assert past == want  # every record after the hole, with its own time, and no other


def walk_bytes(tmp_path, backend, data: bytes):
    path = tmp_path / "hole.pcap"
    path.write_bytes(data)
    return walk(path, backend)


def test_pcap_truncated_last_record_is_not_resynced(tmp_path, backend):
    raw, offs = pcap_bytes(tmp_path)
    slabs, meta = read(tmp_path, backend, raw[:-5], "pcap")
    assert slabs == [p[:32] for p in PAYLOADS[:-1]]
    assert [w.kind for w in meta.warnings] == ["truncated_record"]


def test_megabytes_of_garbage_cost_linear_vectorized_work(tmp_path, backend, monkeypatch):
    raw, offs = pcapng_bytes(tmp_path)
    junk = np.random.default_rng(1).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    data = raw[: offs[1]] + junk + raw[offs[1] :]
    probed = Tally(len(data), "offsets given the vectorized byte test")  # each once at most
    metered(monkeypatch, resync, "_length_probe", probed, lambda _buf, _a, n, *_: n)
    # ~350 calls for these 8 MB; a Python step per offset (or per few) would be millions
    with python_calls(1000 + len(data) // 16384):
        slabs, meta = read(tmp_path, backend, data, "pcapng")
    assert probed.count >= len(junk)  # the garbage was searched, by the metered test
    assert slabs == [p[:32] for p in PAYLOADS]
    assert list(meta.unreadable) == [(offs[1], offs[1] + len(junk))]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_corruption_keeps_every_block_outside_the_damage(tmp_path, data):
    """Overwrite a random span inside one EPB: all other packets are still read."""
    raw, offs = pcapng_bytes(tmp_path)
    i = data.draw(st.integers(0, len(offs) - 1))
    end = offs[i + 1] if i + 1 < len(offs) else len(raw)
    a = data.draw(st.integers(offs[i], end - 1))
    b = data.draw(st.integers(a + 1, min(end, a + 8)))
    noise = data.draw(st.binary(min_size=b - a, max_size=b - a))
    mutated = raw[:a] + noise + raw[b:]
    slabs_n, meta_n = read(tmp_path, "native", mutated, "pcapng")
    slabs_p, meta_p = read(tmp_path, "python", mutated, "pcapng")
    assert slabs_n == slabs_p
    assert [str(w) for w in meta_n.warnings] == [str(w) for w in meta_p.warnings]
    others = [p[:32] for k, p in enumerate(PAYLOADS) if k != i]
    # The damaged block itself may still read as one (altered) packet, in its place.
    assert slabs_n == others or slabs_n[:i] + slabs_n[i + 1 :] == others


def test_block_len_rejects_bad_trailers_and_takes_unknown_types():
    buf = np.zeros(64, np.uint8)
    buf[0:4] = np.frombuffer((6).to_bytes(4, "little"), np.uint8)
    buf[4:8] = np.frombuffer((32).to_bytes(4, "little"), np.uint8)
    assert resync.pcapng_block_len(buf, 0, 64, False) == 0  # trailer is 0, not 32
    buf[28:32] = np.frombuffer((32).to_bytes(4, "little"), np.uint8)
    assert resync.pcapng_block_len(buf, 0, 64, False) == 32
    assert resync.pcapng_block_len(buf, 0, 64, True) == 0  # wrong byte order
    buf[0:4] = np.frombuffer((0x77).to_bytes(4, "little"), np.uint8)
    assert resync.pcapng_block_len(buf, 0, 64, False) == 32  # skipped by length, as tshark
    buf[0:4] = np.frombuffer((0x0A0D0D0A).to_bytes(4, "little"), np.uint8)
    assert resync.pcapng_block_len(buf, 0, 64, False) == 0  # a section header, magic bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_search_steps_do_not_change_where_reading_resumes(tmp_path, data):
    """Growing steps (small first, for the usual nearby record) find the same first offset
    as any other stepping, on pcap and pcapng, from any start inside damaged data."""
    payloads = [bytes(data.draw(st.binary(min_size=1, max_size=90))) for _ in range(8)]
    junk = data.draw(st.binary(max_size=300))
    for make, find in ((pcap_bytes, "pcap"), (pcapng_bytes, "pcapng")):
        raw, _ = make(tmp_path, payloads)
        cut = data.draw(st.integers(0, len(raw)))
        buf = np.frombuffer(raw[:cut] + junk + raw[cut:], np.uint8)
        start = data.draw(st.integers(0, len(buf)))
        got = set()
        for first, chunk in ((resync.FIRST_CHUNK, resync.CHUNK), (1, 7), (16, 16), (4, 64)):
            old = resync.FIRST_CHUNK, resync.CHUNK
            resync.FIRST_CHUNK, resync.CHUNK = first, chunk
            try:
                if find == "pcap":
                    got.add(resync.next_pcap_record(buf, start, len(buf), False, False,
                                                    262144, 1, 2**32 - 1))
                else:
                    got.add(resync.next_pcapng_block(buf, start, len(buf), False))
            finally:
                resync.FIRST_CHUNK, resync.CHUNK = old
        assert len(got) == 1, got
        hit = got.pop()
        assert hit is None or start <= hit < len(buf)


@pytest.mark.parametrize("i", [0, 3])
@pytest.mark.parametrize("extra", range(1, 9))
def test_a_length_that_reaches_the_next_blocks_own_length_loses_no_other_block(
        tmp_path, backend, i, extra):
    """An EPB of 72 bytes whose length field reads 77 (or 78, 79, 80) rounds up to 80, and
    the word at 76, where its trailer would be, is the next EPB's own length (80): the
    damaged block must not swallow the next block's header, or that block is lost too."""
    raw, offs = pcapng_bytes(tmp_path)
    at, length = offs[i], offs[i + 1] - offs[i]
    data = bytearray(raw)
    data[at + 4 : at + 8] = (length + extra).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for k, p in enumerate(PAYLOADS) if k != i]
    assert list(meta.unreadable) == [(at, offs[i + 1])]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]


def test_a_length_that_reaches_a_later_blocks_own_length_loses_no_other_block(tmp_path,
                                                                              backend):
    """Two small blocks then one of exactly their joint length plus 8: the first's length
    damaged to that reads the third block's length as its trailer, past the second."""
    payloads = [b"a" * 4, b"b" * 4, b"c" * 48, b"d" * 20]
    raw, offs = pcapng_bytes(tmp_path, payloads)
    assert offs[2] - offs[0] + 8 == offs[3] - offs[2] == 80
    data = bytearray(raw)
    data[offs[0] + 4 : offs[0] + 8] = (80).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for p in payloads[1:]]
    assert list(meta.unreadable) == [(offs[0], offs[1])]


@pytest.mark.parametrize("new", [220, 4096, 1 << 20])
def test_a_sound_looking_length_past_the_end_still_reads_the_last_block(tmp_path, backend,
                                                                        new):
    """The last block but one, its length damaged to one that runs past the end of the file
    (of a known type, a multiple of 4: what a file cut inside that block would show): the
    last block, framed whole and 4-byte aligned from it, ends exactly at the end of the file
    and is read, where a file cut inside the block would hold no such block."""
    raw, offs = pcapng_bytes(tmp_path)
    at = offs[-2]
    data = bytearray(raw)
    data[at + 4 : at + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for k, p in enumerate(PAYLOADS) if k != len(offs) - 2]
    assert list(meta.unreadable) == [(at, offs[-1])]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]


@pytest.mark.parametrize("new", [57, 58, 59])
def test_an_unpadded_length_that_reaches_a_later_field_loses_no_other_block(tmp_path,
                                                                           backend, new):
    """An EPB of 36 bytes whose length reads 57 rounds up to 60, where the next EPB's
    captured length (57) stands: a length left unpadded is only taken where a block header
    with a sane length (or the end of the file) follows it."""
    first_block_alone_lost(tmp_path, backend, [b"a", b"b" * 57, b"c" * 20], new)


def first_block_alone_lost(tmp_path, backend, payloads: list[bytes], new: int) -> None:
    """The first EPB's length field damaged to `new`: every other packet is read, and only
    the first block's bytes are unreadable."""
    raw, offs = pcapng_bytes(tmp_path, payloads)
    data = bytearray(raw)
    data[offs[0] + 4 : offs[0] + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for p in payloads[1:]]
    assert list(meta.unreadable) == [(offs[0], offs[1])]


def test_an_unpadded_block_before_a_damaged_header_is_still_read(tmp_path, backend):
    """A writer that leaves the padding out of both lengths (an EPB of 61 bytes of data says
    93, not 96), and the block after it damaged: the unpadded block is sound and still read,
    as Wireshark reads it."""
    raw, at = unpadded_pcapng(tmp_path / "unpadded.pcapng")
    raw[at + 100 : at + 104] = (0xFFFFFFF0).to_bytes(4, "little")  # the next block's length
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [b"a" * 20, b"b" * 32, b"c" * 20]
    assert list(meta.unreadable) == [(at + 96, at + 112)]


@pytest.mark.parametrize("payloads,new", [([b"a", b"b" * 57, b"c" * 20], 60),
                                          ([b"a" * 53, b"b" * 113], 116)])
def test_a_length_that_reaches_a_later_field_loses_no_other_block(tmp_path, backend,
                                                                   payloads, new):
    """A length damaged to one a field of the next EPB passes the trailer check for (its
    captured length 57 or original length 113, rounded up): the damaged EPB's own data ends
    where its own trailer and the next block's header still stand, so it is damage."""
    first_block_alone_lost(tmp_path, backend, payloads, new)


def _walked(cap, start=None, stop=None) -> list[tuple[int, int]]:
    return [(int(f), int(c)) for w in cap.windows(start, stop)
            for f, c in zip(w.frame_no, w.caplen, strict=True)]


@pytest.mark.parametrize("new", [57, 60])
def test_a_damaged_length_is_judged_alike_whatever_the_range_or_piece_end(tmp_path, backend,
                                                                         new):
    """The first block's length damaged to reach the next EPB's captured length (57, or 60
    rounded): whether it is damage is told from bytes past its end (the next block's header
    and trailer).  A range (-j) or stream piece ending among those bytes must not change the
    verdict: the walk asks for the rest, as for a block cut by the end."""
    from fastcap.read.capture import Capture
    from fastcap.read.stream import StreamCapture

    payloads = [bytes([70 + i]) * 60 for i in range(4)] + [b"a", b"b" * 57, b"c" * 20]
    raw, offs = pcapng_bytes(tmp_path, payloads)
    data = bytearray(raw)
    at = offs[4]
    data[at + 4 : at + 8] = new.to_bytes(4, "little")
    path = tmp_path / "x.pcapng"
    path.write_bytes(bytes(data))
    gz = tmp_path / "x.pcapng.gz"
    gz.write_bytes(gzip.compress(bytes(data)))
    with Capture(path, backend=backend) as cap:
        whole = _walked(cap), cap.meta.unreadable
    assert [c for _, c in whole[0]] == [60] * 4 + [57, 20]
    assert list(whole[1]) == [(at, offs[5])]
    for end in range(at + 56, offs[6] + 4, 3):
        with Capture(path, backend=backend) as cap:
            first, state, lost = _walked(cap, stop=end), cap.end_state, cap.meta.unreadable
        with Capture(path, backend=backend) as cap:
            ranged = first + _walked(cap, start=state), lost + cap.meta.unreadable
        assert ranged == whole, f"range ending at {end - at}"
        with StreamCapture(gz, backend=backend, piece=end) as cap:
            streamed = _walked(cap), cap.meta.unreadable
        assert streamed == whole, f"piece ending at {end - at}"


_BEFORE = {  # a block other than a packet block, written before the EPB its length reaches
    "nrb": lambda w: w.nrb([("10.0.0.1", "a.exampl")]),
    "isb": lambda w: w.isb(0, 5),
    "custom": lambda w: w.custom(32473, b"fuzz"),
    "local": lambda w: w.raw_block(0x80000001, b"abcd"),
    "dsb": lambda w: w.dsb(0x544C534B, b"abcd"),
}


def after_block(kind: str, lengths: list[tuple[int, int]], passed: int | None = None
                ) -> bytes:
    """An EPB of 8 bytes, a block of `kind`, a block of type `passed` with 20 bytes of body
    if given, then EPBs of these captured and original lengths and a last one of 12 bytes."""
    out = io.BytesIO()
    with PcapngWriter(out) as w:
        w.section()
        w.interface(1)
        w.epb(0, b"z" * 8, ts_units=1)
        _BEFORE[kind](w)
        if passed is not None:
            w.raw_block(passed, b"q" * 20)
        for i, (caplen, orig) in enumerate(lengths):
            w.epb(0, bytes([97 + i]) * caplen, ts_units=2 + i, orig_len=orig)
        w.epb(0, b"y" * 12, ts_units=9)
    return out.getvalue()


@pytest.mark.parametrize("kind", sorted(_BEFORE))
@pytest.mark.parametrize("field", [20, 24])
@pytest.mark.parametrize("short", [0, 3])
def test_a_non_packet_length_that_reaches_a_later_field_loses_no_other_block(
        tmp_path, backend, kind, field, short):
    """A name resolution, statistics, custom, local or secrets block whose length field is
    damaged to what the next EPB's captured length (at 20) or original length (at 24)
    rounds up to reads that field as its trailer.  tshark takes it whole, then stops at the
    next EPB's packet data ("total block length ... is too large", or "total block lengths
    ... don't match"): every packet after it is lost.  Only the damaged block is lost
    here: the block whose original trailer ends where a block begins that reaches past its
    damaged end, trailer matching, swallowed that block."""
    at, blen = block_offsets(after_block(kind, [(4, 4)]))[3]
    new = blen + field + 4  # where the field stands, 4 bytes on: the trailer it is read as
    lengths = (new - short,) * 2 if field == 20 else (4, new - short)
    raw = bytearray(after_block(kind, [lengths]))
    assert block_offsets(bytes(raw))[3] == (at, blen)
    raw[at + 4 : at + 8] = (new - short).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert [len(s) for s in slabs] == [8, min(32, lengths[0]), 12]
    assert list(meta.unreadable) == [(at, at + blen)]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]


def test_a_section_header_length_that_reaches_the_interface_snaplen_loses_no_block(tmp_path,
                                                                                   backend):
    """A section header with options whose length is damaged to what the interface block
    after it has for snap length (at 12) reads that as its trailer: taken whole, the
    interface is lost and every packet of the section with it (tshark reads none: "total
    block length 8 of an unknown block type").  Its byte order is sound: reading goes on at
    the interface block."""
    def build(snaplen: int) -> bytearray:
        out = io.BytesIO()
        with PcapngWriter(out) as w:
            w.section(options=[(4, b"userappl-x")])
            w.interface(1, snaplen=snaplen)
            for p in PAYLOADS[:3]:
                w.epb(0, p, ts_units=1)
        return bytearray(out.getvalue())

    shb = block_offsets(bytes(build(0)))[0][1]
    raw = build(shb + 16)
    raw[4:8] = (shb + 16).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [p[:32] for p in PAYLOADS[:3]]
    assert list(meta.unreadable) == [(0, shb)] and meta.sections == 1


def test_reading_resumes_at_a_block_whose_lengths_leave_out_the_padding(tmp_path, backend):
    """A writer that leaves the padding out of both length fields (an EPB of 41 bytes of
    data says 73, not 76) writes every block so: Wireshark reads them rounded up, and so
    does the walk.  After a damaged length the search for the next block must take them
    too, or nothing after the damage is read.  (tshark stops at the damage: it never
    resumes.)"""
    payloads = [bytes([65 + i]) * (41 + 4 * i) for i in range(5)]
    raw, offs = pcapng_bytes(tmp_path, payloads)
    data = bytearray(raw)
    for at, p in zip(offs, payloads, strict=True):
        blen = int.from_bytes(data[at + 4 : at + 8], "little")
        for field in (at + 4, at + blen - 4):
            data[field : field + 4] = (32 + len(p)).to_bytes(4, "little")
    data[offs[2] + 4 : offs[2] + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(data), "pcapng")
    assert slabs == [p[:32] for i, p in enumerate(payloads) if i != 2]
    assert list(meta.unreadable) == [(offs[2], offs[3])]


@pytest.mark.parametrize("last", ["isb", "nrb", "custom"])
def test_a_block_shorter_than_a_section_header_ends_a_chain_at_the_end(tmp_path, backend,
                                                                       last):
    """A damaged EPB, a sound one, then a last block shorter than the smallest section
    header (a statistics block of 24 bytes, an empty name resolution block of 16, a custom
    one of 16) ending the file: that block, as the sound EPB's successor, must be found, or
    the EPB is lost with the damaged one (tshark stops at the damage)."""
    out = io.BytesIO()
    with PcapngWriter(out) as w:
        w.section()
        w.interface(1)
        for p in PAYLOADS[:3]:
            w.epb(0, p, ts_units=1)
        {"isb": lambda: w.isb(0, 2), "nrb": lambda: w.nrb([]),
         "custom": lambda: w.custom(32473, b"")}[last]()
    raw = bytearray(out.getvalue())
    blocks = block_offsets(bytes(raw))
    assert blocks[-1][1] < 28
    at = blocks[3][0]
    raw[at + 4 : at + 8] = bytes(4)
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [p[:32] for p in (PAYLOADS[0], PAYLOADS[2])]
    assert list(meta.unreadable) == [(at, blocks[4][0])]


@pytest.mark.parametrize("kind", sorted(_BEFORE))
def test_a_length_that_passes_a_sound_block_to_a_later_field_loses_no_other_block(
        tmp_path, backend, kind):
    """The block's length damaged to reach past a sound EPB of 36 bytes to the captured
    length of the one after (tshark takes it whole and stops): the sound EPB, framed wholly
    inside it, is passed, and the block that reaches past its damaged end found; both EPBs
    are read."""
    at, blen = block_offsets(after_block(kind, [(4, 4), (4, 4)]))[3]
    new = blen + 36 + 24  # the second EPB's captured length, 4 bytes on
    raw = bytearray(after_block(kind, [(4, 4), (new, new)]))
    raw[at + 4 : at + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert [len(s) for s in slabs] == [8, 4, 32, 12]
    assert list(meta.unreadable) == [(at, at + blen)]


@pytest.mark.parametrize("kind", ["nrb", "custom"])
@pytest.mark.parametrize("sound", [1, 4, 5, 9])
def test_a_length_that_passes_many_sound_blocks_to_a_later_field_loses_no_other_block(
        tmp_path, backend, kind, sound):
    """As above, past `sound` EPBs of 36 bytes, however many: tshark takes the damaged
    block whole and stops at the block after it; here only its own bytes are lost, and
    each EPB it passed over is read."""
    at, blen = block_offsets(after_block(kind, [(4, 4)] * (sound + 1)))[3]
    new = blen + 36 * sound + 24  # the last EPB's captured length, 4 bytes on
    raw = bytearray(after_block(kind, [(4, 4)] * sound + [(new, new)]))
    raw[at + 4 : at + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert [len(s) for s in slabs] == [8] + [4] * sound + [32, 12]
    assert list(meta.unreadable) == [(at, at + blen)]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]


def _epb(data: bytes, ts: int):
    """A step of `_written`: an EPB on interface 0."""
    return lambda w: w.epb(0, data, ts_units=ts)


def _written(*steps) -> bytes:
    """A one-interface pcapng whose blocks after the interface are written by `steps`."""
    out = io.BytesIO()
    with PcapngWriter(out) as w:
        w.section()
        w.interface(1)
        for step in steps:
            step(w)
    return out.getvalue()


@pytest.mark.parametrize("unpadded", [False, True])
def test_a_file_cut_inside_a_block_of_unpadded_length_is_cut_not_damaged(tmp_path, backend,
                                                                         unpadded):
    """An EPB whose packet data holds a whole EPB 1 byte in, the file cut where that one
    ends: tshark says the file is "cut short in the middle of a packet" whether or not the
    cut block's lengths leave out the padding (93, not 96), and reads one packet.  The block
    held in its data must not be read as the block reading resumes at."""
    held = _written(_epb(b"q" * 20, 5))[-52:]
    payload = b"x" + held + b"y" * 8
    raw = bytearray(_written(_epb(b"a" * 20, 1), _epb(payload, 2)))
    at, blen = block_offsets(bytes(raw))[3]
    if unpadded:
        for f in (at + 4, at + blen - 4):
            raw[f : f + 4] = (32 + len(payload)).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw[: at + 29 + len(held)]), "pcapng")
    assert slabs == [b"a" * 20]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("truncated_block", at)]
    assert list(meta.unreadable) == []


@pytest.mark.parametrize("after", [[0x80000001, "epb"], ["epb", 0x80000001, "epb"],
                                   [0x00000101, "epb"], ["epb", 0x00000101],
                                   [0x80000001], [0x80000001, 0x00000BAD, "epb"],
                                   [0x80000001, 0x00000101, "epb"],
                                   [0x80000001, 0x80000002, 0x00000101, 0x00000BAD],
                                   [0x80000001, 0x80000002], [0x00AB0001, "epb"],
                                   [0x0A0B0C0D, 0x00AB0001, "epb"], [0x12345678]])
def test_reading_resumes_at_a_sound_block_of_a_type_it_does_not_know(tmp_path, backend, after):
    """After a damaged length, blocks of types the reader does not know (a local type, one
    not yet assigned) with matching lengths are sound blocks, which a reader skips by their
    length as tshark does: reading resumes at the first, and the packet before one is read
    (a sound EPB is known as such by the block that follows it).  So too for a run of them
    that ends in a block of a known type or at the end of the file: tshark and the pcapng
    spec skip each by its length, so the first is as sound as the last.  Whatever its type's
    bytes (0x00AB0001 has neither 0x00 nor 0x0D where every known type has one)."""
    def block(i: int, kind):
        if kind == "epb":
            return _epb(bytes([99 + i]) * 24, 3 + i)
        if kind == 0x00000BAD:
            return lambda w: w.custom(32473, b"fuzz")
        return lambda w: w.raw_block(kind, b"abcdefgh")

    raw = bytearray(_written(_epb(b"a" * 20, 1), _epb(b"b" * 20, 2),
                             *(block(i, kind) for i, kind in enumerate(after))))
    blocks = block_offsets(bytes(raw))
    at = blocks[3][0]
    raw[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [b"a" * 20] + [bytes([99 + i]) * 24 for i, k in enumerate(after)
                                   if k == "epb"]
    assert list(meta.unreadable) == [(at, blocks[4][0])]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]
    for kind in after:
        if isinstance(kind, int) and kind != 0x00000BAD:
            assert meta.block_counts[f"type 0x{kind:08x}"] == after.count(kind)


def _streamed(path, backend, piece=None):
    """Frames, unreadable ranges and warnings of a capture read whole, or streamed in pieces
    of `piece` bytes."""
    from fastcap.read.capture import Capture
    from fastcap.read.stream import StreamCapture

    with (Capture(path, backend=backend) if piece is None
          else StreamCapture(path, backend=backend, piece=piece)) as cap:
        frames = _walked(cap)
        meta = cap.meta
    return frames, meta.unreadable, [(w.kind, w.offset, w.message) for w in meta.warnings]


def _holding_blocks() -> bytes:
    """Packet data that holds two whole EPBs (a pcapng file sent over TCP, say), 1 byte in."""
    return b"x" + _written(_epb(b"p" * 8, 7), _epb(b"q" * 8, 8))[-80:] + b"yyy"


@pytest.mark.parametrize("damage", ["magic", "magic idb", "trailer", "trailer idb", "length",
                                    "epb"])
def test_a_damaged_block_is_judged_alike_wherever_a_piece_ends(tmp_path, backend, damage):
    """A second section whose header's byte-order magic, trailer or length is damaged (read
    on where the block after it is framed), or a damaged EPB (reading resumes at the next
    block followed by a framed one, here one whose packet data holds two framed blocks):
    whether a block is where reading goes on is told from its bytes and the next block's,
    so a stream piece ending anywhere inside them must not change what is read: the search
    must not pass on into the packet data for want of them (" idb": the interface block
    after the section header is damaged too, so the header is not read on)."""
    payloads = PAYLOADS[:5] if damage != "epb" else [*PAYLOADS[:3], _holding_blocks(),
                                                     PAYLOADS[4]]
    raw, offs = pcapng_bytes(tmp_path, payloads)
    data = bytearray(raw + raw)
    at = len(raw) if damage != "epb" else offs[2] + len(raw)
    shb = block_offsets(raw)[0][1]
    if damage.endswith(" idb"):
        data[at + shb + 4 : at + shb + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    if damage.startswith("magic"):
        data[at + 8 : at + 12] = bytes(4)
    elif damage.startswith("trailer"):
        data[at + shb - 4 : at + shb] = bytes(4)
    elif damage == "length":
        data[at + 4 : at + 8] = (shb + 1000).to_bytes(4, "little")
    else:
        data[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "x.pcapng"
    path.write_bytes(bytes(data))
    gz = tmp_path / "x.pcapng.gz"
    gz.write_bytes(gzip.compress(bytes(data)))
    whole = _streamed(path, backend)
    assert len(whole[0]) == (9 if damage == "epb" else 10)
    nxt = len(raw) + (shb + 20 if damage != "epb" else offs[4] + 16)
    for end in range(at + 1, nxt + 80, 3):
        assert _streamed(gz, backend, end) == whole, f"piece ending at {end - at}"


@pytest.mark.parametrize("kind", ["nrb", "custom", "local"])
@pytest.mark.parametrize("passed", [0x80000001, 0x00000101])
def test_a_length_that_passes_a_block_of_unknown_type_to_a_later_field_loses_no_block(
        tmp_path, backend, kind, passed):
    """As above, the block passed over of a type the reader does not know (a local one,
    one not yet assigned): a reader skips it by its length, as tshark does, so it is as
    sound as a known one; the EPB after it, reaching past the damaged end, is read."""
    at, blen = block_offsets(after_block(kind, [(4, 4)], passed))[3]
    new = blen + 32 + 24  # the EPB's captured length, 4 bytes on
    raw = bytearray(after_block(kind, [(new, new)], passed))
    raw[at + 4 : at + 8] = new.to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert [len(s) for s in slabs] == [8, 32, 12]
    assert list(meta.unreadable) == [(at, at + blen)]
    assert meta.block_counts[f"type 0x{passed:08x}"] == 1  # the damaged block is not counted


def test_a_run_of_unknown_blocks_in_packet_data_is_not_where_reading_resumes(tmp_path,
                                                                            backend):
    """Blocks of unknown types framed in packet data, a run of them that ends in no known
    block (more data follows): reading resumes at the block after the packet, not at them,
    where the damage also reached that packet's trailer."""
    held = _written(lambda w: w.raw_block(0x80000001, b"abcdefgh"),
                    lambda w: w.raw_block(0x80000002, b"ijklmnop"))[-40:]
    raw = bytearray(_written(_epb(b"a" * 20, 1), _epb(b"b" * 20, 2),
                             _epb(b"x" + held + b"yyy", 3), _epb(b"c" * 24, 4)))
    blocks = block_offsets(bytes(raw))
    at, (hold, hlen) = blocks[3][0], blocks[4]
    raw[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    raw[hold + hlen - 4 : hold + hlen] = bytes(4)
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [b"a" * 20, b"c" * 24]
    assert list(meta.unreadable) == [(at, blocks[5][0])]
    assert not [k for k in meta.block_counts if k.startswith("type ")]


@pytest.mark.parametrize("damaged", ["epb", 0x80000002])
@pytest.mark.parametrize("kind", [0x80000001, 0x00000101, 0x00000BAD, "epb"])
@pytest.mark.parametrize("extra", [5, 8])
def test_a_length_that_reaches_the_own_length_of_a_block_of_any_type_loses_no_other_block(
        tmp_path, backend, damaged, kind, extra):
    """A block of 52 bytes (an EPB, or one of a local type) whose length reads 57 to 60, the
    next block 60 bytes long: its length stands where the damaged block's trailer would.
    tshark takes the damaged block whole and stops in the next one; whatever that block's
    type (one the reader does not know is skipped by its length, as tshark skips it), it is
    sound, and reading resumes there: only the damaged block is lost."""
    def block(t, size: int, i: int):
        if t == "epb":
            return _epb(bytes([99 + i]) * (size - 32), 3 + i)
        if t == 0x00000BAD:
            return lambda w: w.custom(32473, b"u" * (size - 16))
        return lambda w: w.raw_block(t, b"v" * (size - 12))

    raw = bytearray(_written(_epb(b"a" * 20, 1), block(damaged, 52, 0), block(kind, 60, 1),
                             _epb(b"z" * 24, 9)))
    blocks = block_offsets(bytes(raw))
    (at, alen), (nxt, nlen) = blocks[3], blocks[4]
    assert (alen, nlen) == (52, 60)
    raw[at + 4 : at + 8] = (alen + extra).to_bytes(4, "little")
    slabs, meta = read(tmp_path, backend, bytes(raw), "pcapng")
    assert slabs == [b"a" * 20] + ([bytes([100]) * 28] if kind == "epb" else []) + [b"z" * 24]
    assert list(meta.unreadable) == [(at, nxt)]
    assert [(w.kind, w.offset) for w in meta.warnings] == [("corrupt_block", at)]
    if isinstance(kind, int) and kind != 0x00000BAD:
        assert meta.block_counts[f"type 0x{kind:08x}"] == 1
    assert not [k for k in meta.block_counts if k == "type 0x80000002"]
