"""Payloads carried with the selected frames (`tcp.carry`): reassembling carried columns
against the carried bytes must give exactly the connections that the original columns give
against the file, with either core, whatever the offsets and lengths claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.read.capture import Capture
from fastcap.read.guard import guarded_map
from fastcap.run import ranges
from fastcap.select.flows import FlowKey, FlowTable
from fastcap.tcp import carry, feed
from fastcap.tcp.reassembly import FrameCols, Reassembler

ROOT = Path(__file__).resolve().parents[1]
ALL = ROOT / "examples" / "all-scenarios.pcapng"
PORTS = {25, 465, 587}
BACKENDS = ["python", "native"]


def _conns(buf, cols: FrameCols, flows: FlowTable, backend: str) -> list[tuple]:
    """Everything a connection tells the later stages, in index order."""
    out = []
    with Reassembler(buf, flows, server_ports=PORTS, backend=backend) as r:
        got = [c for done in feed.fed(r, cols) for c in done] + list(r.drain())
    for c in sorted(got, key=lambda c: c.index):
        dirs = [(d.data, d.gaps, d.seg_offset.tolist(), d.seg_len.tolist(),
                 d.seg_frame.tolist(), d.seen_bytes, d.capped, d.isn, d.before_start,
                 d.untraced) for d in (c.c2s, c.s2c)]
        out.append((c.index, c.first_frame, c.last_frame, c.frames, c.retransmissions,
                    c.conflicting_overlaps, c.out_of_order, c.evicted, dirs))
    return out


def _read(path: Path, limit: int) -> ranges.RangeResult:
    with Capture(str(path)) as cap:
        (task,) = ranges.plan(cap, 1, PORTS, min_bytes=1, carry=limit)
    return ranges.read_range(task)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_range_read_with_its_payloads_reassembles_as_from_the_file(backend):
    plain, carried = _read(ALL, 0), _read(ALL, carry.CARRY_MAX)
    assert plain.payload is None and carried.payload is not None
    assert len(carried.payload) < ALL.stat().st_size  # only the selected frames' bytes
    flows = FlowTable()
    flows.keys = list(plain.flow_keys)
    from_file = _conns(guarded_map(str(ALL))[0], plain.cols, flows, backend)
    assert len(from_file) > 5 and any(c[8][0][0] for c in from_file)
    flows = FlowTable()
    flows.keys = list(carried.flow_keys)
    assert _conns(carried.payload, carried.cols, flows, backend) == from_file


def test_payloads_over_the_limit_stay_in_the_file():
    plain = _read(ALL, 0)
    need = int(carry.readable_lengths(plain.cols, ALL.stat().st_size).sum())
    assert need > 0
    over, exact = _read(ALL, need - 1), _read(ALL, need)
    assert over.payload is None and exact.payload is not None and len(exact.payload) == need
    for f in FrameCols.__dataclass_fields__:
        assert np.array_equal(getattr(over.cols, f), getattr(plain.cols, f)), f


_LENS = st.integers(-3, 40)


@st.composite
def _frames(draw):
    """One connection's frames over a random buffer, with offsets and lengths that may lie:
    past the buffer's end, negative, captured longer than the payload."""
    size = draw(st.integers(0, 120))
    buf = bytes(draw(st.binary(min_size=size, max_size=size)))
    n = draw(st.integers(1, 12))
    rows, seq = [], [1000, 5000]
    for i in range(n):
        d = draw(st.integers(0, 1))
        plen, caplen = draw(_LENS), draw(_LENS)
        off = draw(st.one_of(st.integers(0, size + 5), st.integers(-4, -1)))
        flags = 0x02 if i == 0 else 0x18
        rows.append((i + 1, 10 * i, 0, d == 0, off, seq[d], seq[1 - d], flags, 100,
                     plen, caplen))
        seq[d] += max(plen, 0) if draw(st.booleans()) else 0  # some retransmitted
    cols = FrameCols(*(np.asarray(v, t) for v, t in zip(zip(*rows, strict=True), (
        np.int64, np.int64, np.int64, bool, np.int64, np.uint32, np.uint32, np.uint16,
        np.uint16, np.int32, np.int32), strict=True)))
    return buf, cols


@settings(max_examples=150, deadline=None)
@given(case=_frames(), backend=st.sampled_from(BACKENDS))
def test_carried_bytes_are_what_the_cores_read_from_the_buffer(case, backend):
    buf, cols = case
    key = FlowKey(bytes(16), 1234, bytes(15) + b"\x01", 25)
    moved = carry.carried(cols, buf, backend=backend)
    assert moved is not None
    assert len(moved.payload) == int(carry.readable_lengths(cols, len(buf)).sum())
    flows_a, flows_b = FlowTable(), FlowTable()
    flows_a.keys, flows_b.keys = [key], [key]
    assert (_conns(moved.payload, moved.cols, flows_b, backend)
            == _conns(buf, cols, flows_a, backend))


def test_a_range_read_is_frozen_and_its_slim_copy_keeps_its_totals():
    """A range handed back by a worker is not changed after it is read: a file's list of
    ranges holds `slim()` copies once their frames are fed, and `ended_replaced` a copy
    that ends the file, the range read staying as it was."""
    import dataclasses

    from fastcap.read.guard import FileReplaced

    res = _read(ALL, carry.CARRY_MAX)
    assert len(res.cols) > 0 and res.flow_keys and res.payload is not None
    for name, value in (("cols", None), ("meta", None), ("payload", None)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, name, value)
    slim = res.slim()
    assert (len(slim.cols), slim.flow_keys, slim.payload) == (0, [], None)
    assert (slim.index, slim.start, slim.end, slim.frames, slim.meta, slim.counters) == (
        res.index, res.start, res.end, res.frames, res.meta, res.counters)
    ended = ranges.ended_replaced(res, FileReplaced(str(ALL)))
    assert [w.kind for w in ended.meta.warnings] == [w.kind for w in res.meta.warnings] + [
        "replaced"]
    assert ended.meta.warnings[-1].offset == res.end.offset and len(ended.cols) == len(res.cols)


@st.composite
def _rows(draw):
    """A buffer and rows within it (any offset for a row of length 0), in any order."""
    size = draw(st.integers(0, 200))
    buf = draw(st.binary(min_size=size, max_size=size))
    off, lengths = [], []
    for _ in range(draw(st.integers(0, 30))):
        o = draw(st.integers(0, size))
        n = draw(st.integers(0, size - o))
        off.append(o if n else draw(st.integers(-5, size + 5)))
        lengths.append(n)
    return buf, np.asarray(off, np.int64), np.asarray(lengths, np.int64)


@settings(max_examples=200, deadline=None)
@given(case=_rows(), backend=st.sampled_from(BACKENDS))
def test_the_gather_gives_each_rows_bytes_in_row_order(case, backend, request):
    if backend == "native":
        request.getfixturevalue("require_native")
    buf, off, lengths = case
    want = b"".join(buf[o: o + n] for o, n in zip(off.tolist(), lengths.tolist(), strict=True))
    got = carry.gathered(buf, off, lengths, backend)
    assert got == want


@pytest.mark.parametrize(("off", "n"), [(-1, 2), (9, 2), (11, 0 + 1), (3, -1)])
def test_a_row_outside_the_buffer_is_refused_not_read(backend, off, n):
    """Rows come from `readable_lengths`, which keeps them inside; one that is not is an
    error naming it, whichever copies, never a read outside the mapping."""
    buf = bytes(range(10))
    off_a, len_a = np.asarray([0, off], np.int64), np.asarray([4, n], np.int64)
    with pytest.raises(ValueError, match=r"payload row 1 \("):
        carry.gathered(buf, off_a, len_a, backend)


def test_the_c_gather_stops_at_a_row_outside_its_buffer(require_native):
    """The C copy checks every row itself too: -(i + 1) for the first one outside, the
    rows before it written, nothing past its output."""
    from fastcap import _ffi

    ffi, lib = _ffi.ffi, _ffi.lib
    buf, out = bytes(range(10)), bytearray(6)

    def gather(off, lengths, out_len):
        a, b = np.asarray(off, np.int64), np.asarray(lengths, np.int64)
        return lib.fc_gather(ffi.from_buffer("uint8_t[]", buf), len(buf),
                             ffi.from_buffer("int64_t[]", a), ffi.from_buffer("int64_t[]", b),
                             len(a), ffi.from_buffer("uint8_t[]", out), out_len)

    assert gather([2, 99, 8], [3, 0, 2], 6) == 5 and bytes(out[:5]) == b"\2\3\4\x08\x09"
    for off, lengths, out_len in (([0, 9], [1, 2], 6), ([0, -1], [1, 1], 6),
                                  ([0, 0], [1, -1], 6), ([0, 4], [4, 4], 6)):
        out[:] = bytes(6)
        assert gather(off, lengths, out_len) == -2
        assert bytes(out) == buf[: lengths[0]] + bytes(6 - lengths[0])  # the first row only
