"""TCP reassembly: streams come back byte-exact, gaps and conflicts are reported where they are,
limits hold, and the C core and its pure-Python twin agree on every field."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap._ffi import native_available
from fastcap.select.flows import FlowKey, FlowTable
from fastcap.tcp.reassembly import (
    CONN_OVERHEAD,
    HOLD_BYTES,
    HOLD_MAX,
    SEG_BYTES,
    TOMB_GROUPS,
    TOMB_SLOTS,
    TOMB_WAYS,
    WINDOW_MAX,
    Connection,
    Reassembler,
)

from .corpus import CORPUS

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BACKENDS = ["python", "native"] if native_available() else ["python"]
CLIENT, SERVER = b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1]), b"\0" * 10 + b"\xff\xff" + bytes(
    [10, 0, 0, 2])


# --- building SelectedFrames-shaped windows without a capture file -------------------------


@dataclass
class Frame:
    flow: int
    from_a: bool
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 65535
    caplen: int | None = None  # captured payload bytes (snapped frames), default all
    ts_ns: int | None = None


@dataclass
class Tcp:  # the TcpFields columns the reassembler reads
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    window: np.ndarray
    payload_len: np.ndarray
    payload_caplen: np.ndarray
    hdr_len: np.ndarray


@dataclass
class Sel:  # SelectedFrames layout
    frame_no: np.ndarray
    ts_ns: np.ndarray
    flow: np.ndarray
    from_a: np.ndarray
    payload_file_off: np.ndarray
    tcp: Tcp

    def __len__(self) -> int:
        return len(self.frame_no)

    def rows(self, lo: int, hi: int) -> Sel:
        t = self.tcp
        return Sel(self.frame_no[lo:hi], self.ts_ns[lo:hi], self.flow[lo:hi],
                   self.from_a[lo:hi], self.payload_file_off[lo:hi],
                   Tcp(t.seq[lo:hi], t.ack[lo:hi], t.flags[lo:hi], t.window[lo:hi],
                       t.payload_len[lo:hi], t.payload_caplen[lo:hi], t.hdr_len[lo:hi]))


def build(frames: list[Frame]) -> tuple[bytes, Sel]:
    """A 'file' holding every payload (after some junk) and the matching column window."""
    buf, offs = bytearray(b"\xee" * 13), []
    for f in frames:
        offs.append(len(buf))
        buf += f.payload
    n = len(frames)

    def col(get, dtype):
        return np.array([get(f) for f in frames], dtype).reshape(n)

    tcp = Tcp(col(lambda f: f.seq & M32, np.uint32), col(lambda f: f.ack & M32, np.uint32),
              col(lambda f: f.flags, np.uint16), col(lambda f: f.window, np.uint16),
              col(lambda f: len(f.payload), np.int32),
              col(lambda f: len(f.payload) if f.caplen is None else f.caplen, np.int32),
              np.full(n, 20, np.uint8))
    ts = [f.ts_ns if f.ts_ns is not None else i * 1000 for i, f in enumerate(frames)]
    return bytes(buf), Sel(np.arange(1, n + 1, dtype=np.int64), np.array(ts, np.int64),
                           col(lambda f: f.flow, np.int64), col(lambda f: f.from_a, bool),
                           np.array(offs, np.int64), tcp)


def flow_table(n: int = 1, client_port: int = 40000, server_port: int = 25) -> FlowTable:
    ft = FlowTable()
    for i in range(n):  # endpoint a is the client in every flow built here
        ft.keys.append(FlowKey(CLIENT, client_port + i, SERVER, server_port))
    return ft


def run(frames: list[Frame], backend: str, *, flows: FlowTable | None = None,
        windows: list[int] | None = None, evict: int | None = None,
        late: list[int] | None = None, beyond: list[int] | None = None,
        **kw) -> list[Connection]:
    """Feed `frames` in `windows`; after the first window, with `evict`, hand over the
    connections numbered below it.  `late` gets the count of late segments dropped,
    `beyond` that of segments dropped as beyond any receive window."""
    buf, sel = build(frames)
    flows = flows or flow_table(1 + max((f.flow for f in frames), default=0))
    r = Reassembler(buf, flows, backend=backend, **kw)
    out, lo = [], 0
    for size in windows or [len(frames)]:
        out += r.feed(sel.rows(lo, lo + size))
        lo += size
        if evict is not None:
            out += list(r.evict_before(evict))
            evict = None
    out += r.feed(sel.rows(lo, len(frames)))
    out += r.finish()
    if late is not None:
        late.append(r.late_segments)
    if beyond is not None:
        beyond.append(r.beyond_window)
    r.close()
    return out


def run_both(frames: list[Frame], **kw) -> list[Connection]:
    """Run every available backend, insist they agree, return the result."""
    results = [run(frames, b, **kw) for b in BACKENDS]
    for other in results[1:]:
        assert other == results[0]
    return results[0]


def handshake(isn_c: int, isn_s: int, flow: int = 0) -> list[Frame]:
    return [Frame(flow, True, isn_c, 0, SYN), Frame(flow, False, isn_s, isn_c + 1, SYN | ACK),
            Frame(flow, True, isn_c + 1, isn_s + 1, ACK)]


def closing(isn_c: int, isn_s: int, n_c: int, n_s: int, flow: int = 0) -> list[Frame]:
    fc, fs = isn_c + 1 + n_c, isn_s + 1 + n_s
    return [Frame(flow, True, fc, fs, FIN | ACK), Frame(flow, False, fs, fc + 1, FIN | ACK),
            Frame(flow, True, fc + 1, fs + 1, ACK)]


def data_frames(stream: bytes, pieces: list[tuple[int, int]], isn: int, peer_isn: int,
                from_client: bool, flow: int = 0) -> list[Frame]:
    return [Frame(flow, from_client, isn + 1 + a, peer_isn + 1, ACK | PSH, stream[a:b])
            for a, b in pieces]


# --- strategies ------------------------------------------------------------------------------

isns = st.one_of(st.integers(2**32 - 3000, 2**32 - 1), st.integers(0, 2**32 - 1))


@st.composite
def streams(draw, min_size: int = 0, max_size: int = 3000) -> bytes:
    """Sizable random bytes (hypothesis alone shrinks binary() to a handful of bytes)."""
    n = draw(st.integers(min_size, max_size))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(n)


@st.composite
def isn_for(draw, n: int) -> int:
    """An ISN whose sequence space wraps inside the stream half of the time."""
    if draw(st.booleans()):
        return (2**32 - 1 - draw(st.integers(0, n))) & M32
    return draw(st.integers(0, 2**32 - 1))


@st.composite
def pieces(draw, n: int, extras: bool = True) -> list[tuple[int, int]]:
    """A segmentation of [0, n) plus, optionally, duplicates and overlapping re-sends."""
    if n == 0:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=25))))
    bounds = [0] + [c for c in cuts if 0 < c < n] + [n]
    out = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if a < b]
    if extras:
        for a, ln in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 400)),
                                   max_size=10)):
            out.append((a, min(a + ln, n)))
    return out


# --- (1) exact reassembly under reordering, duplication, overlap and wrap-around -------------


@SETTINGS
@given(c2s=streams(), s2c=streams(), data=st.data())
def test_reassembles_exactly(c2s, s2c, data):
    isn_c, isn_s = data.draw(isn_for(len(c2s))), data.draw(isn_for(len(s2c)))
    segs = (data_frames(c2s, data.draw(pieces(len(c2s))), isn_c, isn_s, True)
            + data_frames(s2c, data.draw(pieces(len(s2c))), isn_s, isn_c, False))
    segs = data.draw(st.permutations(segs))
    frames = handshake(isn_c, isn_s) + segs + closing(isn_c, isn_s, len(c2s), len(s2c))
    cut = data.draw(st.integers(0, len(frames)))
    (conn,) = run_both(frames, windows=[cut])
    assert conn.c2s.data == c2s and conn.s2c.data == s2c
    assert conn.c2s.gaps == [] and conn.s2c.gaps == []
    assert (conn.client_by, conn.client_port, conn.server_port) == ("syn", 40000, 25)
    assert (conn.c2s.isn, conn.s2c.isn) == (isn_c, isn_s)
    assert (conn.c2s.syn_frame, conn.s2c.syn_frame) == (1, 2)
    assert conn.c2s.fin_frame == len(frames) - 2 and conn.s2c.fin_frame == len(frames) - 1
    assert conn.conflicting_overlaps == 0 and not conn.evicted
    assert (conn.first_frame, conn.last_frame, conn.frames) == (1, len(frames), len(frames))
    for sd in (conn.c2s, conn.s2c):
        assert sd.seen_bytes == len(sd.data) and not sd.capped
        assert np.all(np.diff(sd.seg_offset) > 0)
        assert int(sd.seg_len.sum()) == len(sd.data)  # every stored byte is traced once
        if sd.data:
            assert sd.frame_at(0) is not None and sd.frame_at(len(sd.data)) is None


# --- (2) removed segments leave gaps exactly where the bytes were -----------------------------


@SETTINGS
@given(stream=streams(min_size=1), data=st.data())
def test_gaps_where_bytes_are_missing(stream, data):
    isn = data.draw(isn_for(len(stream)))
    segs = data.draw(pieces(len(stream), extras=False))
    keep = data.draw(st.lists(st.booleans(), min_size=len(segs), max_size=len(segs)))
    snap = data.draw(st.lists(st.integers(0, 3), min_size=len(segs), max_size=len(segs)))
    frames, have, first_frame = [], np.zeros(len(stream), bool), {}
    order = data.draw(st.permutations(range(len(segs))))
    arrival = handshake(isn, 7)
    for i in order:
        if not keep[i]:
            continue
        a, b = segs[i]
        f = Frame(0, True, isn + 1 + a, 8, ACK, stream[a:b])
        if snap[i] == 0 and b - a > 1:  # a snapped frame: only the head was captured
            f.caplen = (b - a) // 2
        arrival.append(f)
        got = slice(a, a + (b - a if f.caplen is None else f.caplen))
        for off in range(got.start, got.stop):
            first_frame.setdefault(off, len(arrival))
        have[got] = True
    frames = arrival + closing(isn, 7, len(stream), 0)
    (conn,) = run_both(frames)
    sd = conn.c2s
    assert len(sd.data) == len(stream)  # the FIN tells where the stream ends
    holes = np.concatenate(([False], ~have, [False])).view(np.int8)
    starts = np.flatnonzero(np.diff(holes) == 1)
    stops = np.flatnonzero(np.diff(holes) == -1)
    assert sd.gaps == list(zip(starts.tolist(), (stops - starts).tolist(), strict=True))
    got = np.frombuffer(sd.data, np.uint8)
    assert np.array_equal(got[have], np.frombuffer(stream, np.uint8)[have])
    assert not got[~have].any()
    for off in range(len(stream)):
        assert sd.frame_at(off) == first_frame.get(off)
    if sd.gaps:
        assert sd.contiguous_end(0) == sd.gaps[0][0]
    else:
        assert sd.contiguous_end(0) == len(stream)


# --- (3) conflicting overlaps: counted; bytes taken in order stay, the in-order copy wins ---


@pytest.mark.parametrize("backend", BACKENDS)
def test_conflicting_overlap_in_order_copy_wins(backend):
    hs = handshake(100, 900)
    a = Frame(0, True, 101, 901, ACK, b"AAAAAAAAAA")
    b = Frame(0, True, 106, 901, ACK, b"bbbbbBBBBB")  # bytes 5..9 differ from a's
    same = Frame(0, True, 103, 901, ACK, b"AAA")  # identical bytes: no conflict
    (conn,) = run(hs + [a, b, same], backend)
    assert conn.c2s.data == b"AAAAAAAAAABBBBB"
    assert conn.conflicting_overlaps == 1 and conn.retransmissions == 2
    assert conn.c2s.frame_at(9) == 4 and conn.c2s.frame_at(10) == 5

    # the other order: b is held out of order, a arrives in order over it and its bytes
    # replace b's (as Linux delivers them and tshark's follow shows them)
    (conn,) = run(hs + [b, a], backend)
    assert conn.c2s.data == b"AAAAAAAAAABBBBB"
    assert conn.conflicting_overlaps == 1 and conn.out_of_order == 1
    assert [conn.c2s.frame_at(i) for i in (0, 9, 10, 14)] == [5, 5, 4, 4]
    assert conn.c2s.seg_offset.tolist() == [0, 10] and conn.c2s.seg_len.tolist() == [10, 5]


def test_held_bytes_settled_by_the_peers_ack_stay():
    """Bytes held past a gap the capture missed are taken once the peer acknowledges them: a
    later segment over the gap and them fills the gap and replaces none of them."""
    hs = handshake(100, 900)
    held = Frame(0, True, 106, 901, ACK, b"HHHHH")
    acked = Frame(0, False, 901, 111, ACK)
    late = Frame(0, True, 101, 901, ACK, b"gggggXXXXX")
    (conn,) = run_both(hs + [held, acked, late])
    assert conn.c2s.data == b"gggggHHHHH" and conn.conflicting_overlaps == 1
    assert [conn.c2s.frame_at(i) for i in (0, 4, 5, 9)] == [6, 6, 4, 4]
    (conn,) = run_both(hs + [held, late])  # no acknowledgement: the late copy is in order
    assert conn.c2s.data == b"gggggXXXXX"
    assert [conn.c2s.frame_at(i) for i in (0, 4, 5, 9)] == [5, 5, 5, 5]


def test_differing_held_copies_settled_by_the_peers_ack():
    """Of two differing copies held past a gap, the one covering the first held byte is
    taken when the peer acknowledges them (tshark's follow: the segment held first among
    those covering the point reached gives its bytes up to its end), and the map names it."""
    hs = handshake(100, 900)
    first = Frame(0, True, 104, 901, ACK, b"AAA")
    lower = Frame(0, True, 103, 901, ACK, b"BBBB")
    acked = Frame(0, False, 901, 107, ACK)
    late = Frame(0, True, 101, 901, ACK, b"ggXXXX")
    (conn,) = run_both(hs + [first, lower, acked, late])
    assert conn.c2s.data == b"ggBBBB" and conn.conflicting_overlaps == 2
    assert [conn.c2s.frame_at(i) for i in range(6)] == [7, 7, 5, 5, 5, 5]
    (conn,) = run_both(hs + [first, lower, late])  # no acknowledgement: the late copy
    assert conn.c2s.data == b"ggXXXX"  # is taken in order over both



@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_segments", [0, 4])
def test_held_copies_stay_within_the_segment_map_and_the_byte_cap(backend, max_segments):
    """Twenty differing copies of one range held past a gap: records of them only as far as
    the segment map may hold them, their copies within the direction's byte cap, so the
    connection stays within its bound however many copies come."""
    cap = 64
    frames = handshake(100, 900) + [Frame(0, True, 111, 901, ACK, bytes([65 + k]) * 40)
                                     for k in range(20)]
    buf, sel = build(frames)
    r = Reassembler(buf, flow_table(1), backend=backend, cap=cap, max_segments=max_segments)
    r.feed(sel.rows(0, len(frames)))
    bound = CONN_OVERHEAD + 2 * (cap + (cap + 63) // 64 * 8 + max_segments * SEG_BYTES
                                 + min(max_segments, HOLD_MAX) * HOLD_BYTES + cap)
    assert r.open_connections == 1 and r.mem <= bound
    (conn,) = r.finish()
    assert conn.c2s.data[10:50] == b"A" * 40  # the first copy, the only one held past the gap
    r.close()

def _follow(segments: list[tuple[int, bytes]]) -> bytes:
    """What tshark's follow makes of one direction's (offset, bytes) segments, without
    acknowledgements: a segment reaching the end so far is taken (past that end), others are
    held; whenever the end moves, the segment held first among those starting at or before it
    gives its bytes past it, until none does."""
    end, out, held = 0, bytearray(), []
    for off, data in segments:
        if off > end:
            held.append((off, data))
            continue
        out += data[end - off:]
        end = max(end, off + len(data))
        while (k := next((k for k, (o, _) in enumerate(held) if o <= end), None)) is not None:
            o, d = held.pop(k)
            out += d[end - o:]
            end = max(end, o + len(d))
    return bytes(out)


@pytest.mark.parametrize("seed", range(4))
def test_differing_held_copies_as_tsharks_follow(seed):
    """Random soups of segments whose copies differ, the client's ISN near the wrap: both
    cores store the bytes tshark's follow shows, and the map names a frame whose copy holds
    each byte."""
    rng = random.Random(seed)
    for _ in range(50):
        n = rng.randint(2, 24)
        bounds = [0, *sorted(rng.sample(range(1, n), rng.randint(0, min(6, n - 1)))), n]
        spans = list(zip(bounds, bounds[1:], strict=False))
        spans += [(a, min(n, a + rng.randint(1, 8))) for a in
                  (rng.randrange(n) for _ in range(rng.randint(0, 8)))]
        rng.shuffle(spans)
        segs = [(a, bytes(rng.choice(b"AB") for _ in range(a, b))) for a, b in spans]
        isn = rng.choice([100, M32 - 10])
        hs = handshake(isn, 900)
        (conn,) = run_both(hs + [Frame(0, True, isn + 1 + a, 901, ACK, d) for a, d in segs])
        assert conn.c2s.data == _follow(segs)
        for i, byte in enumerate(conn.c2s.data):
            a, d = segs[conn.c2s.frame_at(i) - len(hs) - 1]
            assert d[i - a] == byte


def test_full_segment_map_keeps_the_first_copy():
    """With no room left to name the replacing frame, held bytes keep their first copy, so
    the map still names the frame of every byte."""
    hs = handshake(100, 900)
    held = Frame(0, True, 106, 901, ACK, b"HHHHH")
    late = Frame(0, True, 101, 901, ACK, b"gggggXXXXX")
    (conn,) = run_both(hs + [held, late], max_segments=1)
    assert conn.c2s.data == b"gggggHHHHH" and conn.c2s.untraced == 5
    assert conn.c2s.frame_at(5) == 4 and conn.conflicting_overlaps == 1


# --- (4) the same 4-tuple reused with a new SYN ------------------------------------------------


@pytest.mark.parametrize("closed", [True, False])
def test_port_reuse_makes_two_connections(closed):
    first = handshake(1000, 5000) + data_frames(b"EHLO a\r\n", [(0, 8)], 1000, 5000, True)
    if closed:
        first += closing(1000, 5000, 8, 0)
    second = handshake(777_777, 9000) + data_frames(b"HELO b\r\n", [(0, 8)], 777_777, 9000, True)
    second.append(Frame(0, True, 777_777, 0, SYN))  # retransmitted SYN, same ISN: same conn
    conns = run_both(first + second)
    assert [c.index for c in conns] == [0, 1]
    assert conns[0].c2s.data == b"EHLO a\r\n" and conns[1].c2s.data == b"HELO b\r\n"
    assert conns[1].c2s.isn == 777_777 and conns[1].first_frame == len(first) + 1
    assert conns[1].retransmissions == 1 and conns[0].frames == len(first)


def test_reordered_syn_ack_stays_one_connection():
    syn, synack, ack = handshake(50, 60)
    conns = run_both([synack, syn, ack] + data_frames(b"hi", [(0, 2)], 50, 60, True))
    assert len(conns) == 1 and conns[0].client_by == "syn" and conns[0].c2s.data == b"hi"


@pytest.mark.parametrize("reordered", [False, True])
def test_fast_open_syn_data_stays_one_connection(reordered):
    """TCP Fast Open: the SYN carries data and the SYN-ACK acknowledges it, not ISN+1."""
    syn = Frame(0, True, 10, 0, SYN, b"EHLO tfo\r\n")
    synack = Frame(0, False, 20, 21, SYN | ACK, b"220 hi\r\n")
    frames = ([synack, syn] if reordered else [syn, synack]) + [
        Frame(0, True, 21, 29, ACK), Frame(0, False, 29, 21, ACK, b"250 ok\r\n")]
    (conn,) = run_both(frames)
    assert conn.c2s.data == b"EHLO tfo\r\n" and conn.s2c.data == b"220 hi\r\n250 ok\r\n"
    assert conn.client_by == "syn" and conn.c2s.syn_frame == (2 if reordered else 1)


def test_simultaneous_open_stays_one_connection():
    """Both ends send a SYN, then each a SYN-ACK (RFC 9293 3.5): one connection, as tshark
    keeps one stream; a reset between the SYNs still parts them."""
    g, e = b"220 mx ESMTP\r\n", b"EHLO c\r\n"
    frames = [Frame(0, True, 1000, 0, SYN), Frame(0, False, 5000, 0, SYN),
              Frame(0, True, 1000, 5001, SYN | ACK), Frame(0, False, 5000, 1001, SYN | ACK),
              Frame(0, False, 5001, 1001, ACK | PSH, g),
              Frame(0, True, 1001, 5001 + len(g), ACK | PSH, e)]
    (conn,) = run_both(frames)
    assert conn.frames == 6 and conn.client_by == "syn" and conn.client_port == 40000
    assert conn.c2s.data == e and conn.s2c.data == g and conn.s2c.syn_frame == 2
    reset = [Frame(0, True, 1000, 0, SYN), Frame(0, False, 0, 1001, RST | ACK),
             Frame(0, False, 5000, 0, SYN)]
    assert [c.frames for c in run_both(reset)] == [2, 1]


def test_reset_without_connection_starts_none():
    """An RST minutes after the connection closed (the linger is over) or with nothing held
    for its flow joins nothing and starts nothing: a session of a lone RST has nothing to
    read, and tshark counts it in the closed connection's stream."""
    frames = handshake(1, 2) + closing(1, 2, 0, 0) + [
        Frame(0, False, 4, 0, RST, ts_ns=300_000_000_000), Frame(1, True, 9, 0, RST | ACK)]
    for c in frames[:-2]:
        c.ts_ns = 1000
    (conn,) = run_both(frames, flows=flow_table(2))
    assert conn.frames == 6 and conn.s2c.rst_frame is None


def test_late_segments_of_closed_connection_start_none():
    """A FIN and its ACK resent after the linger, or a SYN retried with the same ISN after an
    RST, land in no connection and are counted, as tshark keeps them in the closed stream;
    a SYN with a new ISN, a segment with payload, or a bare one outside the old sequence
    space still starts a connection."""
    late_s = 3_000_000_000
    first = (handshake(1000, 5000) + data_frames(b"EHLO a\r\n", [(0, 8)], 1000, 5000, True)
             + closing(1000, 5000, 8, 0))
    for f in first:
        f.ts_ns = 1000
    fc, fs = 1000 + 1 + 8, 5000 + 1
    resent = [Frame(0, False, fs, fc + 1, FIN | ACK, ts_ns=late_s),
              Frame(0, True, fc + 1, fs + 1, ACK, ts_ns=late_s),
              Frame(0, True, fc + 1, fs + 1, ACK, ts_ns=late_s)]  # a keep-alive's place too
    for backend in BACKENDS:
        late: list[int] = []
        (conn,) = run(first + resent, backend, late=late)
        assert conn.frames == len(first) and late == [3]
        late = []
        after = [Frame(0, True, 700_000, 0, SYN, ts_ns=late_s + 1),  # port reuse, new ISN
                 Frame(0, True, 700_001, 9, ACK, ts_ns=late_s + 2)]
        conns = run(first + resent + after, backend, late=late)
        assert [c.frames for c in conns] == [len(first), 2] and late == [3]
        late = []
        far = [Frame(0, True, fc + 100_000, fs + 1, ACK, ts_ns=late_s),  # outside: a new one
               Frame(0, True, fc + 1, fs + 1, ACK | PSH, b"x", ts_ns=late_s + 1)]
        conns = run(first + far, backend, late=late)
        assert [c.frames for c in conns] == [len(first), 2] and late == [0]
        late = []
        retry = [Frame(0, True, 1000, 0, SYN, ts_ns=0),
                 Frame(0, False, 0, 1001, RST | ACK, ts_ns=1),
                 Frame(0, True, 1000, 0, SYN, ts_ns=late_s),
                 Frame(0, False, 0, 1001, RST | ACK, ts_ns=late_s + 1)]
        (conn,) = run(retry, backend, late=late)
        assert conn.frames == 2 and late == [1]


def test_late_data_retransmission_of_fin_closed_connection_starts_none():
    """A data segment of a connection closed on FINs resent after the linger, its bytes all
    below its direction's FIN and its acknowledgement within what the peer sent, is a
    retransmission tshark keeps in the closed stream: counted late, no new connection.  One
    reaching the FIN's place or past it, or one acknowledging bytes the peer never sent, still
    starts one."""
    late_s = 3_000_000_000
    ehlo, quit_, ok = b"EHLO a\r\n", b"QUIT\r\n", b"250 ok\r\n"
    n_c, n_s = len(ehlo + quit_), len(ok)
    first = (handshake(1000, 5000) + data_frames(ehlo + quit_, [(0, 8), (8, n_c)], 1000, 5000,
                                                 True)
             + data_frames(ok, [(0, n_s)], 5000, 1000, False) + closing(1000, 5000, n_c, n_s))
    for f in first:
        f.ts_ns = 1000
    fs_end = 5000 + 1 + n_s + 1  # the server's FIN acknowledged
    resent = [Frame(0, True, 1001, fs_end, ACK | PSH, ehlo, ts_ns=late_s),
              Frame(0, True, 1001 + 8, 5001, ACK | PSH, quit_[:4], ts_ns=late_s + 1),
              Frame(0, False, 5001, 1001 + n_c + 1, ACK | PSH, ok, ts_ns=late_s + 2),
              Frame(0, True, 1003, 0, PSH, ehlo[2:], ts_ns=late_s + 3)]  # no ACK flag
    for backend in BACKENDS:
        late: list[int] = []
        (conn,) = run(first + resent, backend, late=late)
        assert conn.frames == len(first) and late == [len(resent)]
        assert conn.c2s.data == ehlo + quit_ and conn.s2c.data == ok
    fc = 1001 + n_c  # the client's FIN
    for extra in (Frame(0, True, fc - 2, fs_end, ACK | PSH, b"\r\nX", ts_ns=late_s),
                  Frame(0, True, fc, fs_end, ACK | PSH, b"X", ts_ns=late_s),
                  Frame(0, True, 1001, fs_end + 1, ACK | PSH, ehlo, ts_ns=late_s),
                  Frame(0, True, 1001, fs_end, SYN | ACK, ehlo, ts_ns=late_s)):
        for backend in BACKENDS:
            late = []
            conns = run(first + [extra], backend, late=late)
            assert [c.frames for c in conns] == [len(first), 1] and late == [0]


def test_late_data_retransmission_of_rst_closed_connection_starts_none():
    """After a close on an RST, data resent after the linger whose bytes the peer had all
    acknowledged (an RST's acknowledgement counts), below its FIN if it sent one, and whose
    acknowledgement lies within what the peer sent holds nothing new: tshark keeps it in the
    closed stream (no SYN, no new stream), so it is counted late, as after a close on FINs.
    Data going on past that, bytes the peer never acknowledged (the RST may have come before
    the receiver got them), or an acknowledgement of bytes the peer never sent, still starts
    a connection naming the closed one."""
    late_s = 3_000_000_000
    ehlo, ok = b"EHLO a\r\n", b"250 ok\r\n"
    unacked = (handshake(1000, 5000) + data_frames(ehlo, [(0, 8)], 1000, 5000, True)
               + [Frame(0, False, 5001, 1009, ACK | PSH, ok),
                  Frame(0, False, 5009, 1009, RST | ACK)])
    reset = unacked[:-1] + [Frame(0, True, 1009, 5009, ACK), unacked[-1]]
    finned = unacked[:-1] + [Frame(0, True, 1009, 5009, FIN | ACK),
                             Frame(0, False, 5009, 1010, RST | ACK)]
    resent = [Frame(0, True, 1001, 5001, ACK | PSH, ehlo, ts_ns=late_s),
              Frame(0, True, 1003, 5009, ACK | PSH, ehlo[2:6], ts_ns=late_s + 1),
              Frame(0, False, 5001, 1009, ACK | PSH, ok, ts_ns=late_s + 2)]
    for first in (unacked, reset, finned):
        for f in first:
            f.ts_ns = 1000
    for first in (reset, finned):
        for backend in BACKENDS:
            late: list[int] = []
            (conn,) = run(first + resent, backend, late=late)
            assert conn.frames == len(first) and late == [len(resent)]
            assert conn.c2s.data == ehlo and conn.s2c.data == ok
    for first, extra in ((reset, Frame(0, True, 1005, 5009, ACK | PSH, b"a\r\nQUIT")),
                         (finned, Frame(0, True, 1005, 5009, ACK | PSH, b"a\r\nQUIT")),
                         (reset, Frame(0, True, 1001, 5010, ACK | PSH, ehlo)),
                         (unacked, resent[2])):
        extra.ts_ns = late_s
        for backend in BACKENDS:
            late = []
            conns = run(first + [extra], backend, late=late)
            assert [c.frames for c in conns] == [len(first), 1] and late == [0]
            assert conns[1].after_reset == (1, len(first))  # (first frame, RST frame)


def test_segment_beyond_any_receive_window_is_dropped():
    """A segment whose sequence number lies over WINDOW_MAX bytes past the highest offset its
    direction reached (damage, another connection's) is dropped whole and counted, as a
    receiver drops what is outside its window: it neither makes the rest of the stream a
    gap nor ends it with a FIN, and the data after it reassembles.  Up to WINDOW_MAX ahead
    it is taken (a capture that lost that much, say)."""
    ehlo, quit_ = b"EHLO a\r\n", b"QUIT\r\n"
    far = 1 + len(ehlo) + 1_000_000_000
    frames = (handshake(1000, 5000) + data_frames(ehlo, [(0, 8)], 1000, 5000, True)
              + [Frame(0, True, 1000 + far, 5001, ACK | PSH, b"GARBAGE\r\n"),
                 Frame(0, True, 1000 + far + 20, 5001, FIN | ACK)]
              + [Frame(0, True, 1001 + len(ehlo), 5001, ACK | PSH, quit_)]
              + closing(1000, 5000, len(ehlo + quit_), 0))
    for backend in BACKENDS:
        beyond: list[int] = []
        (conn,) = run(frames, backend, beyond=beyond)
        assert conn.c2s.data == ehlo + quit_ and conn.c2s.gaps == []
        assert conn.c2s.seen_bytes == len(ehlo + quit_) and not conn.c2s.capped
        assert conn.c2s.fin_frame == len(frames) - 2 and conn.frames == len(frames)
        assert beyond == [2]
    edge = 1 + len(ehlo) + WINDOW_MAX  # the furthest a segment may start and be taken
    for ahead, dropped in ((edge, 0), (edge + 1, 1)):
        frames = (handshake(1000, 5000) + data_frames(ehlo, [(0, 8)], 1000, 5000, True)
                  + [Frame(0, True, 1000 + ahead, 5001, ACK | PSH, b"x")])
        for backend in BACKENDS:
            beyond = []
            (conn,) = run(frames, backend, beyond=beyond, cap=64)
            assert beyond == [dropped]
            assert conn.c2s.seen_bytes == (len(ehlo) if dropped else WINDOW_MAX + len(ehlo) + 1)


def test_closed_connections_remembered_per_flow_group():
    """The records of closed connections are kept in TOMB_GROUPS groups of TOMB_WAYS, a
    flow's group its id modulo TOMB_GROUPS: flows 0 and TOMB_SLOTS (65,536 ids apart, as a
    busy capture numbers a connection closed late and one first seen long after it) both keep
    their records, so the late ACK of each is counted late, as tshark keeps it in its closed
    connection's stream.  A record gives way only once TOMB_WAYS later closes of its group's
    flows came (memory stays fixed): then its late segments start a connection again."""
    group = [k * TOMB_GROUPS for k in range(TOMB_WAYS + 1)]
    for closed in ([0, TOMB_SLOTS], group):
        frames = []
        for flow in closed:
            frames += handshake(1000, 5000, flow) + closing(1000, 5000, 0, 0, flow)
        for f in frames:
            f.ts_ns = 1000
        resent = [Frame(flow, True, 1002, 5002, ACK, ts_ns=3_000_000_000)
                  for flow in (closed[0], closed[-1])]
        flows = flow_table(closed[-1] + 1)
        for backend in BACKENDS:
            late: list[int] = []
            conns = run(frames + resent, backend, flows=flows, late=late)
            gone = closed is group  # flow 0's record gave way to TOMB_WAYS later closes
            assert [(c.flow, c.frames) for c in conns] == [(f, 6) for f in closed] + [
                (0, 1)] * gone
            assert late == [2 - gone]


def test_closed_connection_records_grow_with_the_flows():
    """The records start small and grow as flows close: flows closed after thousands of
    others keep their records, and flows 1,024 apart (in one group) keep one each, as in a
    table of TOMB_SLOTS from the start."""
    frames = []
    for flow in (1, 1025, 3000, 40000):
        frames += handshake(1000, 5000, flow) + closing(1000, 5000, 0, 0, flow)
    for f in frames:
        f.ts_ns = 1000
    resent = [Frame(flow, True, 1002, 5002, ACK, ts_ns=3_000_000_000)
              for flow in (3000, 1, 40000)]
    flows = flow_table(40001)
    for backend in BACKENDS:
        late: list[int] = []
        conns = run(frames + resent, backend, flows=flows, late=late)
        assert [(c.flow, c.frames) for c in conns] == [(1, 6), (1025, 6), (3000, 6), (40000, 6)]
        assert late == [3]


@pytest.mark.parametrize("flow", [-1, 2**63 - 1, -2**63, 2**32])
def test_closed_connection_records_take_any_flow_id(flow):
    """The cores take any int64 flow id (the C API's type), not only those a FlowTable
    hands out: a closed connection's record names its flow without arithmetic on the id
    (flow + 1 overflowed at the largest, and -1 + 1 read as an empty record), so its late
    segments are told apart alike in both cores, and the sanitizer build finds no overflow."""
    from fastcap.tcp.reassembly import FrameCols, get_reassembler_core

    frames = handshake(1000, 5000, flow) + closing(1000, 5000, 0, 0, flow)
    for f in frames:
        f.ts_ns = 1000
    frames += [Frame(flow, True, 1002, 5002, ACK, ts_ns=3_000_000_000),  # late: dropped
               Frame(flow, True, 1002, 5002, ACK | PSH, b"x", ts_ns=3_000_000_001)]
    buf, sel = build(frames)
    got = []
    for backend in BACKENDS:
        core = get_reassembler_core(backend, buf, cap=1 << 16, budget=1 << 30, max_open=16,
                                    max_segments=64, linger_ns=10**9)
        raws = core.feed(FrameCols.of(sel)) + core.finish()
        got.append(([(r.index, r.flow, r.first_frame, r.frames) for r in raws], core.late))
        core.close()
    assert got[0] == ([(0, flow, 1, 6), (1, flow, 8, 1)], 1)
    assert all(g == got[0] for g in got)


@pytest.mark.parametrize("crossing", [False, True])
def test_bytes_past_fin_are_not_stored(crossing):
    """Nothing is sent after a FIN: a segment past it (a bogus or injected one) adds neither
    bytes nor a one-byte gap where the FIN's sequence number stands, as a receiver ignores it
    (tshark's follow drops the one starting past the FIN, not the one crossing it); a
    segment ending before the FIN still fills its place."""
    e = b"EHLO c\r\n"
    late = (Frame(0, True, 2 + len(e) - 2, 3, ACK | PSH, b"c\r\nQUIT") if crossing
            else Frame(0, True, 3 + len(e), 3, ACK | PSH, b"QUIT\r\n"))
    frames = handshake(1, 2) + [Frame(0, True, 2, 3, ACK | PSH, e[:4]),
                                Frame(0, True, 6, 3, ACK | PSH | FIN, e[4:]), late,
                                Frame(0, True, 2, 3, ACK | PSH, e[:4])]
    (conn,) = run_both(frames)
    assert conn.c2s.data == e and conn.c2s.gaps == [] and conn.c2s.seen_bytes == len(e)
    assert conn.c2s.fin_frame == 5


# --- (5) capture starting mid-connection; who is the client -----------------------------------


@pytest.mark.parametrize("server_ports, client_by, client_port", [
    (frozenset({25}), "port", 40000), (frozenset({9999}), "first", 25)])
def test_mid_connection_start(server_ports, client_by, client_port):
    frames = [  # no SYN: the server's reply is the first frame seen
        Frame(0, False, 5000, 3000, ACK | PSH, b"250 OK\r\n"),
        Frame(0, True, 3000, 5008, ACK | PSH, b"DATA\r\n"),
        Frame(0, True, 2990, 5008, ACK | PSH, b"0123456789"),  # before the first seq seen
        Frame(0, False, 5008, 3006, ACK | PSH, b"354 go\r\n"),
    ]
    (conn,) = run_both(frames, server_ports=server_ports)
    assert (conn.client_by, conn.client_port) == (client_by, client_port)
    c2s, s2c = (conn.c2s, conn.s2c) if client_by == "port" else (conn.s2c, conn.c2s)
    assert c2s.data == b"DATA\r\n" and s2c.data == b"250 OK\r\n354 go\r\n"
    assert c2s.isn is None and c2s.syn_frame is None and c2s.before_start == 10


def test_keepalive_and_zero_window_probe():
    hs = handshake(10, 20)
    frames = hs + [
        Frame(0, True, 11, 21, ACK, b"abcd"),
        Frame(0, True, 14, 21, ACK, b"d"),  # keep-alive with one (old) byte
        Frame(0, True, 14, 21, ACK),  # keep-alive without data
        Frame(0, False, 21, 15, ACK, window=0),  # server's window closes
        Frame(0, True, 15, 21, ACK, b"e"),  # zero-window probe: counted, not stored
        Frame(0, False, 21, 15, ACK, window=100),
        Frame(0, True, 15, 21, ACK, b"efg"),
    ]
    (conn,) = run_both(frames)
    assert conn.c2s.data == b"abcdefg"
    assert (conn.keepalives, conn.zero_window_probes, conn.retransmissions) == (2, 1, 0)


def test_zero_window_probe_accepted():
    """A receiver whose window has opened keeps the probe's byte and acknowledges it; the
    sender goes on after it and never sends it again (Wireshark's Follow TCP Stream shows it)."""
    hs = handshake(10, 20)
    frames = hs + [
        Frame(0, True, 11, 21, ACK, b"EHLO a\r\n"),
        Frame(0, False, 21, 19, ACK, window=0),
        Frame(0, True, 19, 21, ACK, b"Q"),  # probe
        Frame(0, False, 21, 20, ACK, window=100),  # accepted
        Frame(0, True, 20, 21, ACK, b"UIT\r\n"),
    ]
    (conn,) = run_both(frames)
    assert conn.c2s.data == b"EHLO a\r\nQUIT\r\n" and conn.c2s.gaps == []
    assert conn.c2s.frame_at(8) == 6
    assert (conn.zero_window_probes, conn.retransmissions, conn.out_of_order) == (1, 0, 0)
    (alone,) = run_both(frames[:-2])  # a probe the capture shows nothing after
    assert alone.c2s.data == b"EHLO a\r\n"
    refused = frames[:-2] + [Frame(0, False, 21, 19, ACK, window=100),
                             Frame(0, True, 19, 21, ACK, b"QUIT\r\n")]
    (conn,) = run_both(refused)  # the byte comes again: the resend's frame supplies it
    assert conn.c2s.data == b"EHLO a\r\nQUIT\r\n" and conn.c2s.frame_at(8) == 8
    assert (conn.zero_window_probes, conn.retransmissions, conn.conflicting_overlaps) == (1, 0, 0)


@pytest.mark.parametrize("case", ["taken", "past unacknowledged data", "past its start"])
def test_reset_closes_only_where_its_receiver_took_it(case):
    """An RST at exactly what the receiver acknowledged, with nothing of its sender's
    unacknowledged, is taken: the connection closes, and a frame 3 s later starts another.
    At the end of data not yet acknowledged (a QUIT, an alert, and an RST before the peer's
    delayed ACK) it is taken too, so the connection is handed on, not held to the capture's
    end.  Past anything its sender sent it is not taken (a challenge ACK answers it) and not
    recorded: the connection goes on."""
    quit_ = b"QUIT\r\n"
    frames = handshake(1000, 5000) + data_frames(quit_, [(0, 6)], 1000, 5000, True)
    if case == "taken":
        frames.append(Frame(0, False, 5001, 1007, ACK))
    at = {"taken": 1007, "past unacknowledged data": 1007, "past its start": 1107}[case]
    frames += [Frame(0, True, at, 5001, RST | ACK),
               Frame(0, False, 5001, 1007, ACK | PSH, b"221 bye\r\n", ts_ns=3 * 10**9)]
    conns = run_both(frames)
    rst = len(frames) - 1
    if case != "past its start":
        assert [(c.frames, c.c2s.rst_frame) for c in conns] == [(rst, rst), (1, None)]
    else:
        (conn,) = conns
        assert conn.frames == len(frames) and conn.s2c.data == b"221 bye\r\n"
        assert conn.c2s.rst_frame is None


def test_rst_and_linger():
    frames = handshake(1, 2) + [Frame(0, False, 3, 2, RST | ACK, ts_ns=10_000),
                                Frame(0, True, 2, 3, ACK, b"x", ts_ns=10_500),  # late, lingers
                                Frame(1, True, 50, 0, SYN, ts_ns=5_000_000_000)]
    for backend in BACKENDS:
        buf, sel = build(frames)
        r = Reassembler(buf, flow_table(2), backend=backend)
        done = r.feed(sel)
        assert [c.index for c in done] == [0]  # expired by the later frame of flow 1
        assert done[0].s2c.rst_frame == 4 and done[0].frames == 5 and done[0].c2s.data == b"x"
        rest = r.finish()
        assert [c.index for c in rest] == [1]


# --- (6) limits: per-direction cap, global budget, connections held ---------------------------


def test_cap():
    stream = bytes(range(256)) * 20
    frames = handshake(5, 6) + data_frames(stream, [(i, i + 100) for i in range(0, 5120, 100)],
                                           5, 6, True)
    (conn,) = run_both(frames, cap=1000)
    assert len(conn.c2s.data) == 1000 and conn.c2s.data == stream[:1000]
    assert conn.c2s.capped and conn.c2s.seen_bytes == 5120 and conn.c2s.gaps == []
    assert int(conn.c2s.seg_len.sum()) == 1000


def test_budget_and_max_open_evict_least_recent():
    n = 12
    frames = []
    for i in range(n):  # 12 connections open at once, each sending 3000 bytes
        frames += handshake(100 * i, 7, flow=i)
    for i in range(n):
        frames += data_frames(bytes([i]) * 3000, [(0, 1500), (1500, 3000)], 100 * i, 7, True,
                              flow=i)
    for backend in BACKENDS:
        buf, sel = build(frames)
        r = Reassembler(buf, flow_table(n), backend=backend, budget=30_000, max_open=8)
        out = []
        for lo in range(0, len(frames), 5):
            out += r.feed(sel.rows(lo, lo + 5))
            assert r.open_connections <= 8
            assert r.mem <= 30_000
        out += r.finish()
        evicted = [c for c in out if c.evicted]
        assert evicted and all(len(c.c2s.data) <= 3000 for c in out)
        complete = [c for c in out if c.c2s.data == bytes([c.flow]) * 3000]
        assert complete  # the recent ones survive intact
    run_both(frames, budget=30_000, max_open=8)


# --- (7) adversarial: 10^5 one-byte segments in reverse order ---------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_reverse_one_byte_segments(backend):
    n = 100_000
    stream = bytes(random.Random(1).randbytes(n))
    frames = handshake(2**32 - 50_000, 1) + data_frames(
        stream, [(i, i + 1) for i in range(n - 1, -1, -1)], 2**32 - 50_000, 1, True)
    (conn,) = run(frames, backend)
    assert conn.c2s.data == stream and conn.c2s.gaps == []
    assert conn.out_of_order == n - 1
    assert len(conn.c2s.seg_offset) + conn.c2s.untraced == n


# --- fuzz: the twins agree on arbitrary junk --------------------------------------------------


@st.composite
def junk_frames(draw) -> list[Frame]:
    out = []
    seqs = [draw(isns) for _ in range(4)]
    for _ in range(draw(st.integers(0, 60))):
        flow, from_a = draw(st.integers(0, 2)), draw(st.booleans())
        base = seqs[(flow * 2 + from_a) % 4]
        seq = base + draw(st.integers(-40, 300)) if draw(st.integers(0, 9)) else draw(isns)
        payload = draw(st.binary(max_size=120))
        out.append(Frame(flow, from_a, seq, draw(st.sampled_from([0, base + 1, seqs[0]])),
                         draw(st.sampled_from([ACK, ACK, ACK | PSH, SYN, SYN | ACK, FIN | ACK,
                                               RST, RST | ACK, FIN, 0, 0x3F])),
                         payload, window=draw(st.sampled_from([0, 512, 65535])),
                         caplen=draw(st.one_of(st.none(), st.integers(-5, 200))),
                         ts_ns=draw(st.integers(0, 3_000_000))))
    return out


@pytest.mark.skipif(not native_available(), reason="fastcap._native is not built")
@SETTINGS
@given(frames=junk_frames(), cap=st.sampled_from([0, 1, 64, 2048, 5000]),
       budget=st.sampled_from([0, 3000, 1 << 20]), max_open=st.integers(1, 4),
       max_segments=st.sampled_from([0, 2, 16, 1000]),
       linger_ns=st.sampled_from([0, 1_000_000]), cut=st.integers(0, 60),
       evict=st.one_of(st.none(), st.integers(0, 6)))
def test_twins_agree_on_junk(frames, cap, budget, max_open, max_segments, linger_ns, cut,
                             evict):
    late: list[int] = []
    beyond: list[int] = []
    kw = dict(cap=cap, budget=budget, max_open=max_open, max_segments=max_segments,
              linger_ns=linger_ns, windows=[cut], evict=evict, late=late, beyond=beyond)
    nat, py = run(frames, "native", **kw), run(frames, "python", **kw)
    assert nat == py and late[0] == late[1] and beyond[0] == beyond[1]
    assert sorted(c.index for c in py) == list(range(len(py)))
    for c in py:
        for sd in (c.c2s, c.s2c):
            assert len(sd.data) <= cap and sd.capped == (sd.seen_bytes > cap)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evict_before_hands_over_only_earlier_connections(backend):
    """Connections numbered below the point come out at once (evicted if still open, not if
    closed and lingering); later ones stay held, and an evicted flow's next frames begin a
    new connection."""
    frames = (handshake(100, 200, flow=0) + closing(100, 200, 0, 0, flow=0)
              + handshake(300, 400, flow=1) + handshake(500, 600, flow=2))
    buf, sel = build(frames + [Frame(1, True, 301, 401, ACK | PSH, b"late")])
    r = Reassembler(buf, flow_table(3), backend=backend, linger_ns=10**12)
    assert r.feed(sel.rows(0, len(frames))) == []  # the closed one lingers
    out = list(r.evict_before(2))
    assert [(c.index, c.evicted) for c in out] == [(0, False), (1, True)]
    assert r.open_connections == 1
    assert r.feed(sel.rows(len(frames), len(frames) + 1)) == []  # opens connection 3
    rest = r.finish()
    assert [(c.index, c.flow, c.c2s.data) for c in rest] == [(2, 2, b""), (3, 1, b"late")]
    r.close()


def test_window_boundaries_do_not_matter():
    rng = random.Random(7)
    stream = rng.randbytes(3000)
    segs = [(i, min(i + rng.randint(1, 200), 3000)) for i in range(0, 3000, 150)]
    rng.shuffle(segs)
    frames = (handshake(9, 99) + data_frames(stream, segs, 9, 99, True)
              + closing(9, 99, 3000, 0) + handshake(12345, 99))
    ref = run_both(frames)
    for b in BACKENDS:
        assert run(frames, b, windows=[1] * len(frames)) == ref
        assert run(frames, b, windows=[7, 3, 11]) == ref


def test_bad_file_offsets_are_clamped():
    buf, sel = build(handshake(1, 2) + [Frame(0, True, 2, 3, ACK, b"hello")])
    sel.payload_file_off[-1] = len(buf) - 2  # the payload would run past the end of the file
    results = []
    for backend in BACKENDS:
        r = Reassembler(buf, flow_table(), backend=backend)
        results.append(r.feed(sel) + r.finish())
    assert results[0][0].c2s.data == buf[-2:] + b"\0\0\0"
    assert results[0][0].c2s.gaps == [(2, 3)]
    assert all(r == results[0] for r in results)


def test_undecodable_rows_are_ignored():
    frames = [Frame(0, True, 0, 0, 0)] + handshake(500, 600) + [
        Frame(0, True, 501, 601, ACK, b"MAIL")]
    buf, sel = build(frames)
    sel.tcp.hdr_len[0] = 0  # what decode reports for a cut or malformed TCP header
    for backend in BACKENDS:
        r = Reassembler(buf, flow_table(), backend=backend)
        (conn,) = r.feed(sel) + r.finish()
        assert conn.c2s.data == b"MAIL" and conn.first_frame == 2 and conn.frames == 4


# --- the whole pipeline on synthesized captures ------------------------------------------------


@pytest.mark.parametrize("v6", [False, True])
def test_pipeline_synthesized_pcap(tmp_path, v6):
    pytest.importorskip("fastcap.select.decode")
    from fastcap_synth.packets import tcp_frame
    from fastcap_synth.writers import Record, write_pcap

    rng = random.Random(3)
    cli, srv = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
    c2s = b"EHLO client.example\r\n" + rng.randbytes(3000)
    s2c = b"220 mx.example ESMTP\r\n" + rng.randbytes(2000)
    isn_c, isn_s = 2**32 - 1000, 77
    frames = handshake(isn_c, isn_s)
    segs = (data_frames(c2s, [(i, min(i + 500, len(c2s))) for i in range(0, len(c2s), 500)],
                        isn_c, isn_s, True)
            + data_frames(s2c, [(i, min(i + 700, len(s2c))) for i in range(0, len(s2c), 700)],
                          isn_s, isn_c, False))
    rng.shuffle(segs)
    dup = next(f for f in segs if not f.from_a)  # one retransmission
    frames += segs + [dup] + closing(isn_c, isn_s, len(c2s), len(s2c))
    recs = []
    for i, f in enumerate(frames):
        src, dst, sp, dp = (cli, srv, 51000, 25) if f.from_a else (srv, cli, 25, 51000)
        raw = tcp_frame(src, dst, sp, dp, f.seq & M32, f.ack & M32, f.flags, f.payload)
        recs.append(Record(raw, 1_700_000_000 * 10**9 + i * 1000))
    snapped = next(i for i, f in enumerate(frames) if f.from_a and len(f.payload) == 500)
    recs[snapped] = Record(recs[snapped].data[:-100], recs[snapped].ts_ns,
                           len(recs[snapped].data))  # the capture lost the last 100 bytes
    path = tmp_path / "s.pcap"
    write_pcap(path, recs)
    results = [_pipeline(path, frozenset({25}), b) for b in BACKENDS]
    assert all(r == results[0] for r in results)
    (conn,) = results[0]
    gap_at = frames[snapped].seq - isn_c - 1 + 400
    assert conn.c2s.gaps == [(gap_at, 100)]
    holed = c2s[:gap_at] + bytes(100) + c2s[gap_at + 100:]
    assert conn.c2s.data == holed and conn.s2c.data == s2c
    assert conn.retransmissions == 1 and conn.client_port == 51000
    want = ipaddress.ip_address(cli)
    want = want.packed if v6 else b"\0" * 10 + b"\xff\xff" + want.packed
    assert conn.client_addr == want
    assert conn.c2s.frame_at(0) == 4 + segs.index(next(f for f in segs if f.from_a and
                                                          f.seq == isn_c + 1))


def test_pipeline_tso_zero_ip_length(tmp_path):
    """A capture taken on a sender with TCP segmentation offload (an Exchange server's own
    capture, say) holds its large segments with IPv4 total length 0: like Wireshark's
    ip.tso_support, on by default, the frame's length stands in, and the bytes are kept."""
    pytest.importorskip("fastcap.select.decode")
    from fastcap_synth.packets import ETH_P_IP, ether, ipv4, tcp, tcp_frame
    from fastcap_synth.writers import Record, write_pcap

    cli, srv = "10.0.0.1", "10.0.0.2"
    c2s = b"EHLO client.example\r\n" + random.Random(4).randbytes(6000)
    frames = handshake(100, 900) + data_frames(c2s, [(0, 21), (21, len(c2s))], 100, 900, True)
    frames += closing(100, 900, len(c2s), 0)
    recs = []
    for i, f in enumerate(frames):
        src, dst, sp, dp = (cli, srv, 51000, 25) if f.from_a else (srv, cli, 25, 51000)
        if len(f.payload) > 1000:  # the offloaded segment, as the sender's capture holds it
            seg = tcp(sp, dp, f.seq, f.ack, f.flags, f.payload, src=src, dst=dst)
            raw = ether(ipv4(seg, 6, src, dst, total_length=0), ETH_P_IP)
        else:
            raw = tcp_frame(src, dst, sp, dp, f.seq, f.ack, f.flags, f.payload)
        recs.append(Record(raw, 1_700_000_000 * 10**9 + i * 1000))
    path = tmp_path / "tso.pcap"
    write_pcap(path, recs)
    results = [_pipeline(path, frozenset({25}), b) for b in BACKENDS]
    assert all(r == results[0] for r in results)
    (conn,) = results[0]
    assert conn.c2s.data == c2s and conn.c2s.gaps == []
    assert conn.c2s.frame_at(21) == 5


@pytest.mark.parametrize("declared", ["pcap", "pcapng", None])
def test_pipeline_fcs_is_not_payload(tmp_path, declared):
    """Ethernet frames captured with their FCS: where the file declares it (pcap's FCS bits,
    pcapng's if_fcslen), the FCS is taken off before IP as tshark does, so neither a header
    claiming more than the frame holds nor TSO's total length 0 turns it into payload, and
    the claimed length stops at the frame's end; undeclared, tshark reads it as payload too."""
    pytest.importorskip("fastcap.select.decode")
    import struct
    import zlib

    from fastcap_synth.packets import ETH_P_IP, ether, ipv4, tcp, tcp_frame
    from fastcap_synth.writers import PcapngWriter, Record, pcap_fcs_bits, write_pcap

    cli, srv = "10.0.0.1", "10.0.0.2"
    e1, e2 = b"EHLO client.example\r\n", b"QUIT\r\n"
    raws = [tcp_frame(cli, srv, 51000, 25, 100, 0, SYN),
            tcp_frame(srv, cli, 25, 51000, 900, 101, SYN | ACK),
            tcp_frame(cli, srv, 51000, 25, 101, 901, ACK)]
    seg = tcp(51000, 25, 101, 901, ACK | PSH, e1, src=cli, dst=srv)
    raws.append(ether(ipv4(seg, 6, cli, srv, total_length=20 + len(seg) + 8), ETH_P_IP))
    seg = tcp(51000, 25, 101 + len(e1), 901, ACK | PSH, e2, src=cli, dst=srv)
    raws.append(ether(ipv4(seg, 6, cli, srv, total_length=0), ETH_P_IP))
    recs = [Record(r + struct.pack("<I", zlib.crc32(r)), 1_700_000_000 * 10**9 + i * 1000)
            for i, r in enumerate(raws)]
    path = tmp_path / ("f.pcapng" if declared == "pcapng" else "f.pcap")
    if declared == "pcapng":
        with PcapngWriter(path) as w:
            w.interface(1, options=[(13, bytes([4]))])
            for r in recs:
                w.epb(0, r.data, ts_ns=r.ts_ns)
    else:
        write_pcap(path, recs, fcs_bits=pcap_fcs_bits(2) if declared else 0)
    results = [_pipeline(path, frozenset({25}), b) for b in BACKENDS]
    assert all(r == results[0] for r in results)
    (conn,) = results[0]
    if declared:
        assert conn.c2s.data == e1 + e2 and conn.c2s.gaps == []
        assert conn.out_of_order == conn.conflicting_overlaps == 0
    else:  # the FCS of frame 4 is payload, and its first copy wins over QUIT's first bytes
        assert conn.c2s.data[:len(e1) + 4] == e1 + recs[3].data[-4:]
        assert conn.conflicting_overlaps == 1


# --- (8) real captures -------------------------------------------------------------------------


def _pipeline(path: Path, ports: frozenset[int], backend: str, **kw) -> list[Connection]:
    pytest.importorskip("fastcap.select.decode")
    from fastcap import Capture
    from fastcap.select.selection import iter_selected

    flows = FlowTable()
    with Capture(path, backend=backend, window=16) as cap:
        r = Reassembler(cap.buffer, flows, server_ports=ports, backend=backend, **kw)
        out = []
        for sel in iter_selected(cap, ports, flows=flows):
            out += r.feed(sel)
        out += r.finish()
        r.close()
    return out


def _corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus file {path} not found")
    return path


def test_corpus_smtp():
    results = [_pipeline(_corpus("zeek__smtp.pcap"), frozenset({25}), b) for b in BACKENDS]
    assert all(r == results[0] for r in results)
    conns = results[0]
    assert len(conns) == 2
    for c in conns:
        assert c.server_port == 25 and c.client_by == "syn"
        assert c.s2c.data.startswith(b"220") and c.c2s.data[:4] in (b"EHLO", b"HELO")
        assert c.c2s.gaps == [] and c.s2c.gaps == []
        banner_frame = c.s2c.frame_at(0)
        assert banner_frame is not None and banner_frame < c.c2s.frame_at(0)
    assert conns[0].s2c.frame_at(0) == 6 and conns[1].s2c.frame_at(0) == 66


def test_corpus_fragmented_tls():
    results = [_pipeline(_corpus("zeek__tls-fragmented-handshake.pcap"), frozenset({4433}), b,
                         cap=1 << 20) for b in BACKENDS]
    assert all(r == results[0] for r in results)
    (conn,) = results[0]
    assert conn.client_port == 61454 and conn.server_port == 4433
    assert conn.c2s.data[:1] == b"\x16" and conn.s2c.data[:1] == b"\x16"  # TLS handshake
    assert conn.s2c.gaps == [] and len(conn.s2c.data) > 339_629
    assert b"Bro" in conn.s2c.data


def test_corpus_smtp_matches_tshark_follow(tshark):
    """Wireshark's own reassembly ("Follow TCP Stream") gives the same bytes."""
    import subprocess

    path = _corpus("zeek__smtp.pcap")
    streams = []
    for i in range(8):
        lines = subprocess.run([tshark, "-r", str(path), "-q", "-z", f"follow,tcp,raw,{i}"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        start = next((k for k, ln in enumerate(lines) if ln.startswith("Node 1:")), None)
        if start is None:
            continue
        sent = {0: b"", 1: b""}  # tshark indents node 1's data with a tab
        for ln in lines[start + 1:]:
            if ln.startswith("==="):
                break
            sent[1 if ln.startswith("\t") else 0] += bytes.fromhex(ln.strip())
        streams.append((sent[0], sent[1]))
    conns = _pipeline(path, frozenset({25}), BACKENDS[-1])
    assert len(conns) == 2
    for c in conns:
        assert (c.c2s.data, c.s2c.data) in streams


@pytest.mark.skipif(not native_available(), reason="fastcap._native is not built")
def test_done_connections_are_released_one_by_one():
    """drain() copies each finished connection out of C and frees its buffers before the
    next, so the end of a capture never holds every connection twice."""
    from fastcap.tcp.core_c import NativeReassemblerCore
    from fastcap.tcp.reassembly import FrameCols

    frames = []
    for k in range(3):
        frames += handshake(100, 900, flow=k) + data_frames(b"x" * 50, [(0, 50)], 100, 900,
                                                             True, flow=k)
    buf, sel = build(frames)
    core = NativeReassemblerCore(buf, cap=4096, budget=1 << 20, max_open=100,
                                 max_segments=64, linger_ns=10**9)
    assert list(core.feed_iter(FrameCols.of(sel.rows(0, len(frames))))) == []
    avail = core.ffi.new("int64_t *")
    got = []
    for conn in core.finish_iter():
        got.append(conn.index)
        assert conn.dirs[0].data == b"x" * 50
        i = [core.lib.fc_reasm_done_data(core._r, j, 0, avail) != core.ffi.NULL or avail[0]
             for j in range(3)]
        assert i.count(False) == len(got)  # exactly the ones handed over are freed
    assert got == [0, 1, 2]
    core.close()


def _reset_then_more(rng: random.Random, flow: int) -> list[Frame]:
    """A connection (opened or joined late) that sends some data, an RST at, below or past
    its sender's next sequence number, then segments of every kind near the old sequence
    numbers: the cases where a later connection may name the closed one."""
    ic, is_ = rng.randrange(2**32), rng.randrange(2**32)
    out = handshake(ic, is_, flow) if rng.random() < 0.7 else []
    nxt = [ic + 1, is_ + 1]
    for _ in range(rng.randint(0, 4)):
        k, n = rng.randint(0, 1), rng.randint(1, 20)
        out.append(Frame(flow, k == 0, nxt[k], nxt[1 - k], ACK | PSH, bytes(n)))
        nxt[k] += n
    k = rng.randint(0, 1)
    out.append(Frame(flow, k == 0, nxt[k] + rng.choice([0, 0, -3, 5]), nxt[1 - k], RST | ACK))
    for _ in range(rng.randint(1, 3)):
        k = rng.randint(0, 1)
        out.append(Frame(flow, k == 0, nxt[k] + rng.choice([0, 0, -2, 3, -100]),
                         nxt[1 - k] + rng.choice([0, 0, -1, 2, 500]),
                         rng.choice([ACK | PSH, PSH, ACK, ACK | FIN, SYN]),
                         bytes(rng.choice([0, 1, 4]))))
    return out


@pytest.mark.skipif(not native_available(), reason="fastcap._native is not built")
def test_twins_agree_on_connections_going_on_after_a_reset():
    """Both cores name the same closed connection (its first frame, the RST's frame) in a
    connection going on with it after its linger, with flows interleaved, the open cap and
    zero linger in play; and some do name one."""
    rng, named = random.Random(11), 0
    for _ in range(150):
        flows = [_reset_then_more(rng, f) for f in range(rng.randint(1, 3))]
        frames, t = [], 0
        while flows:
            i = rng.randrange(len(flows))
            if not flows[i]:
                flows.pop(i)
                continue
            t += rng.choice([10, 1000, 2_000_000])
            f = flows[i].pop(0)
            frames.append(Frame(f.flow, f.from_a, f.seq % 2**32, f.ack % 2**32, f.flags,
                                f.payload, ts_ns=t))
        got = run_both(frames, linger_ns=rng.choice([0, 1_000_000]), max_open=rng.randint(1, 4))
        for c in got:
            if c.after_reset is not None:
                named += 1
                first, rst = c.after_reset
                assert first < rst < c.first_frame
    assert named > 10


def test_closed_connections_of_flows_sharing_a_record_slot_are_never_mixed_up():
    """The records of connections closed on an RST are kept in groups by flow id modulo
    TOMB_GROUPS: flows 0 and TOMB_SLOTS share one.  Both close on an RST with the same
    sequence numbers, then both go on after the linger: the later part of each flow names its
    own closed connection, never the other flow's."""
    ic, is_, t = 1000, 5000, 10**6
    frames = []
    for flow in (0, TOMB_SLOTS):
        frames += [Frame(flow, True, ic, is_ + 1, ACK | PSH, b"EHLO x\r\n", ts_ns=t),
                   Frame(flow, False, is_ + 1, ic + 8, ACK | PSH, b"250 ok\r\n", ts_ns=t),
                   Frame(flow, True, ic + 8, is_ + 9, RST | ACK, ts_ns=t)]
    frames += [Frame(flow, True, ic + 8, is_ + 9, ACK | PSH, b"QUIT\r\n", ts_ns=3 * 10**9)
               for flow in (0, TOMB_SLOTS)]
    got = run_both(frames, flows=flow_table(TOMB_SLOTS + 1))
    assert [c.frames for c in got] == [3, 3, 1, 1]
    own = [(c.first_frame, c.c2s.rst_frame) for c in got[:2]]
    assert got[3].flow == TOMB_SLOTS and got[3].after_reset == own[1]
    assert got[2].flow == 0 and got[2].after_reset == own[0]


def test_connection_evicted_then_going_on_names_no_session():
    """A connection evicted under the open-connection cap never closed: it leaves no record,
    so its later frames start a connection that names no earlier one (`after_reset` is for
    dialogues going on past an RST) and none of them is counted late."""
    ic, is_ = 1000, 5000
    frames = (handshake(ic, is_) + [Frame(0, True, ic + 1, is_ + 1, ACK | PSH, b"EHLO x\r\n"),
                                    Frame(0, False, is_ + 1, ic + 9, ACK | PSH, b"250 ok\r\n")]
              + [Frame(1, True, 7000, 0, SYN),
                 Frame(0, True, ic + 9, is_ + 9, ACK | PSH, b"QUIT\r\n"),
                 Frame(0, False, is_ + 9, ic + 15, ACK)])
    for backend in BACKENDS:
        late: list[int] = []
        conns = run(frames, backend, flows=flow_table(2), late=late, max_open=1)
        assert [(c.flow, c.frames, c.evicted) for c in conns] == [
            (0, 5, True), (1, 1, True), (0, 2, False)]
        assert [c.after_reset for c in conns] == [None] * 3 and late == [0]


@pytest.mark.parametrize("fins_acked", [2, 1])
def test_reset_after_both_fins_acknowledged_names_no_later_session(fins_acked):
    """After both FINs are acknowledged the dialogue is over: an RST in the linger (a stack
    resetting after its close) does not make server bytes new 3 s later a dialogue going on
    past that RST, so the session they start names none.  With the client's FIN unanswered
    the RST is what ended the connection, and the later bytes name it.  (The 221 resent,
    bytes the client acknowledged, is a late copy either way: it starts no session.)"""
    ic, is_, t = 1000, 5000, 10**6
    c_end, s_end = ic + 9, is_ + 9  # after "EHLO x\r\n" and "221 ok\r\n"
    frames = [Frame(0, True, ic + 1, is_ + 1, ACK | PSH, b"EHLO x\r\n", ts_ns=t),
              Frame(0, False, is_ + 1, c_end, ACK | PSH, b"221 ok\r\n", ts_ns=t),
              Frame(0, True, c_end, s_end, FIN | ACK, ts_ns=t)]
    if fins_acked == 2:
        frames += [Frame(0, False, s_end, c_end + 1, FIN | ACK, ts_ns=t),
                   Frame(0, True, c_end + 1, s_end + 1, ACK, ts_ns=t)]
    frames += [Frame(0, True, c_end + 1, s_end + fins_acked - 1, RST, ts_ns=t),
               Frame(0, False, is_ + 1, c_end, ACK | PSH, b"221 ok\r\n", ts_ns=2 * 10**9),
               Frame(0, False, s_end + fins_acked - 1, c_end + 1, ACK | PSH, b"250 more\r\n",
                     ts_ns=3 * 10**9)]
    first, later = run_both(frames)  # the resent 221 (frame len - 1): late, in neither
    assert first.frames == len(frames) - 2 and first.c2s.rst_frame == len(frames) - 2
    want = None if fins_acked == 2 else (first.first_frame, first.c2s.rst_frame)
    assert later.first_frame == len(frames) and later.after_reset == want
