"""Stage 3: TCP reassembly of the selected flows, window by window, with bounded memory.

The work happens in C (csrc/reassembly.c) or in `PyReassemblerCore` below, its pure-Python
twin; both follow the same rules step for step so results never depend on the backend.  They
emit `RawConn` records; everything after that (sorting the segment map, finding gaps, deciding
which side is the client) is shared numpy code here, so it cannot drift between backends.

Rules both cores implement (per direction of a connection):
- Stream offset 0 is ISN+1, or the first sequence number seen when the SYN was not captured;
  32-bit sequence numbers extend to 64-bit offsets relative to the highest offset reached, so
  wrap-around is invisible.  Bytes below offset 0 are dropped and counted (`before_start`).
- Bytes taken in order (below `rcv`, a receiver's RCV.NXT) keep their first copy.  The
  segment that reaches past `rcv` is taken in order: its bytes replace differing bytes held
  from out-of-order segments (as Linux delivers them and tshark's follow shows them), and
  `rcv` moves past it and the held bytes joining it; an acknowledgement from the peer moves
  it past held bytes below the acknowledged number (the receiver has them).  Among
  out-of-order copies that differ, as `rcv` moves past them, the segment held first among
  those covering `rcv` gives its bytes up to its end, and so on (tshark's follow; held
  segments are recorded, up to HOLD_MAX per direction and no more than the segment map
  holds, with a copy of their bytes when they differ from the first copy stored, while the
  copies stay within the direction's byte cap).  The segment map then names, per byte, the
  frame whose copy is stored.  A segment starting below the highest offset reached is
  out-of-order when it fills bytes not seen before, else a retransmission; a segment whose
  already-stored bytes differ from its own counts one conflicting overlap.
- Keep-alives (0 or 1 byte at highest-1) are counted, not stored.  Zero-window probes (1 byte
  at highest while the peer advertises window 0) are counted and their byte held: stored as
  the probe's when the sender goes on after it (a receiver whose window had opened kept it),
  dropped when it comes again as data.  RST payloads are ignored, and so are bytes past a
  direction's first FIN (nothing is sent after it: a receiver ignores them; tshark's follow
  drops only those starting past the FIN's sequence number).  A FIN ending before offset 0
  (an earlier connection's on the 4-tuple, before this one's ISN) is not the direction's.
- A segment (not a SYN) starting over WINDOW_MAX bytes past the highest offset reached is
  outside any receive window: dropped whole, data, FIN and ACK, and counted (`beyond`).
- Only the first `cap` bytes are stored; beyond, bytes are counted in `seen_bytes`.  Gaps are
  reported for the stored part only, so losses past the cap (or after the last data/FIN seen)
  are invisible.
- A SYN that neither repeats the direction's ISN nor matches the peer's SYN-ACK (which may
  acknowledge data the SYN carried, TCP Fast Open) starts a new connection on the same flow; a bare
  SYN answering the peer's bare SYN (simultaneous open) does not, unless an RST came between them.
  From an end not yet begun, a segment whose ACK lies before the end of the peer's SYN (or over
  WINDOW_MAX past what the peer sent) is dropped (RFC 9293 3.10.7.3: a FIN of the connection
  the 4-tuple held before, sent again).
  A connection closes on an RST its receiver took, as far as the capture tells (`_rst_taken`:
  exactly at the peer's RCV.NXT, known where it acknowledged all the RST's sender sent; one at the
  end of unacknowledged data too, as the end it nearly always is; data or an acknowledgement past it
  while the connection lingers undoes it), or when both FINs are acknowledged; it stays attached to
  its flow for `linger_ns` of capture time (so late ACKs and RSTs land in it) and is then handed on.
  An RST finding no connection on its flow starts none; nor does a segment without payload of the
  closed connection the flow last held (a SYN repeating that direction's ISN, or no SYN and a
  sequence number within that direction's sequence space), nor a retransmission of its data,
  closed on FINs or an RST (no SYN or RST, its bytes all acknowledged by the peer, an RST's
  acknowledgement too, and below its FIN if any, its acknowledgement within what the peer
  sent): such segments are counted (`late`).  Any other
  segment with payload that goes on with a connection an RST closed before both FINs were
  acknowledged (no SYN, its sequence number
  within or at the end of its direction's space, its acknowledgement within the peer's or up to
  WINDOW_MAX past it, bytes the capture missed) starts a
  connection naming the closed one (`after_first`, `after_rst`: the RST was lost or not acted on
  past the capture point, and tshark keeps one stream; for an end it saw no bytes from, that
  connection keeps the record it went on from, so a part past its own RST names it in turn).
  The records of closed connections are kept in TOMB_GROUPS groups of at most TOMB_WAYS, a
  flow's group its id modulo TOMB_GROUPS: a flow's close replaces its own record, a full
  group gives its oldest up, so memory is fixed and a record gives way only to TOMB_WAYS
  later closes of its group's flows.
  Over `budget` accounted bytes or `max_open` connections, the least recently active connections are
  handed on early, marked `evicted`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .._ffi import REASM_ACCT, use_native
from ..options import DEFAULT_CAP as DEFAULT_CAP
from ..options import DEFAULT_PORTS
from ..options import MAX_CAP as MAX_CAP
from ..read.frames import NO_TS
from ..select.flows import FlowTable
from ..select.fragments import FRAG_ROW, Datagram, Defragmenter
from .core_c import NativeReassemblerCore, ReassemblerCore
from .raw import RawConn, RawDir

DEFAULT_BUDGET = 128 << 20  # accounted bytes held at once; ~25k open connections with data
DEFAULT_MAX_OPEN = 100_000
DEFAULT_MAX_SEGMENTS = 16_384
DEFAULT_LINGER_NS = 1_000_000_000
# closed connections remembered: TOMB_GROUPS groups (a flow's: its id modulo TOMB_GROUPS) of
# TOMB_WAYS records each (FC_TOMB_GROUPS, FC_TOMB_WAYS in csrc/reassembly.c)
TOMB_GROUPS = 1024
TOMB_WAYS = 64
TOMB_SLOTS = TOMB_GROUPS * TOMB_WAYS
# how far past a direction's highest offset a segment may start (FC_WINDOW_MAX in C)
WINDOW_MAX = 1 << 28
# the reasons `Reassembler.skipped` counts segments under, as a scan's totals show them
LATE = "TCP segments of a connection already closed and handed on (late)"
BEYOND_WINDOW = ("TCP segments beyond any receive window (sequence number over 256 MiB "
                 "ahead)")

# Accounting constants (enum fc_reasm_acct in csrc/fastcap.h): the C core uses the same ones,
# so both evict at the same frame.
CONN_OVERHEAD = REASM_ACCT["CONN_OVERHEAD"]
SEG_BYTES = REASM_ACCT["SEG_BYTES"]
DATA_INIT = REASM_ACCT["DATA_INIT"]
SEG_INIT = REASM_ACCT["SEG_INIT"]
HOLD_BYTES = REASM_ACCT["HOLD_BYTES"]
HOLD_INIT = REASM_ACCT["HOLD_INIT"]
HOLD_MAX = REASM_ACCT["HOLD_MAX"]

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_TOMB_FREE, _TOMB_SPENT, _TOMB_LIVE = 0, 1, 2  # a closed connection's record (see rtomb in C)
_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


# Zeek's endpoint states, as far as its end of a connection goes (_zeek_end): closed by a FIN,
# reset, and its close reported (TCP_Endpoint::did_close)
_Z_FIN, _Z_RST, _Z_DONE = 1, 2, 4
ZEEK_CLOSE_DELAY_NS = 5 * 10**9  # init-bare.zeek's tcp_close_delay
# its tcp_inactivity_timeout: a connection quiet that long is removed (on the mail ports
# conn/inactivity.zeek leaves it as it is)
ZEEK_INACTIVITY_NS = 300 * 10**9


def _acked_first(me: _Dir, flags: int) -> bool:
    """Is this SYN-ACK the opening of a direction that so far sent only bare ACKs (no
    SYN, data, FIN or RST)?  Some stacks acknowledge a SYN before they answer it with their
    SYN-ACK; the ACK's sequence number (often the ISN, or anything) then set the direction's
    base, which the SYN-ACK replaces (ack_before_synack in C).  tshark keeps the one stream."""
    return (bool(flags & _ACK) and me.nxt == 0 and not me.fin_seen and me.rst_frame < 0
            and not me.hold)


# --- shared input/output types ------------------------------------------------------------


class _TcpColumns(Protocol):
    @property
    def seq(self) -> np.ndarray: ...
    @property
    def ack(self) -> np.ndarray: ...
    @property
    def flags(self) -> np.ndarray: ...
    @property
    def window(self) -> np.ndarray: ...
    @property
    def hdr_len(self) -> np.ndarray: ...
    @property
    def payload_len(self) -> np.ndarray: ...
    @property
    def payload_caplen(self) -> np.ndarray: ...


class SelectedColumns(Protocol):
    """What FrameCols.of reads of a selection.SelectedFrames window, named here rather than
    imported: selection reads the capture, a stage before this one."""

    @property
    def frame_no(self) -> np.ndarray: ...
    @property
    def ts_ns(self) -> np.ndarray: ...
    @property
    def flow(self) -> np.ndarray: ...
    @property
    def from_a(self) -> np.ndarray: ...
    @property
    def payload_file_off(self) -> np.ndarray: ...
    @property
    def tcp(self) -> _TcpColumns: ...


@dataclass
class FrameCols:
    """The columns a core reads, one row per usable TCP frame (see SelectedFrames)."""

    frame_no: np.ndarray
    ts_ns: np.ndarray
    flow: np.ndarray
    from_a: np.ndarray
    payload_file_off: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    window: np.ndarray
    payload_len: np.ndarray
    payload_caplen: np.ndarray
    # where each frame's record ends in the file (None: not known, the payload's end taken):
    # a file cut short before it drops the frame (`tcp.feed.within`); no core reads it
    record_end: np.ndarray | None = None

    @classmethod
    def of(cls, sel: SelectedColumns) -> FrameCols:
        """Drop rows whose TCP header could not be decoded (decode zeroes them, hdr_len 0):
        a zero sequence number would otherwise become a stream's origin."""
        t = sel.tcp
        cols = cls(sel.frame_no, sel.ts_ns, sel.flow, sel.from_a, sel.payload_file_off, t.seq,
                   t.ack, t.flags, t.window, t.payload_len, t.payload_caplen,
                   getattr(sel, "record_end", None))
        ok = np.asarray(t.hdr_len) >= 20
        if ok.all():
            return cols
        return _rows(cols, ok)

    def __len__(self) -> int:
        return len(self.frame_no)


# the columns a core reads, in the order of its rows
CORE_COLS = tuple(f for f in FrameCols.__dataclass_fields__ if f != "record_end")


# --- shared output types (RawDir and RawConn, what the cores emit, are in rawconn.py) ------


@dataclass(eq=False)
class StreamDir:
    """One direction's byte stream.  Bytes inside gaps are zero: never trust them."""

    data: bytes
    gaps: list[tuple[int, int]]  # (stream_offset, size), sorted, within [0, len(data))
    seg_offset: np.ndarray  # int64, sorted
    seg_len: np.ndarray  # int32
    seg_frame: np.ndarray  # int64
    seen_bytes: int  # highest stream offset reached (may exceed len(data) when capped)
    capped: bool
    isn: int | None
    syn_frame: int | None
    fin_frame: int | None
    rst_frame: int | None
    before_start: int = 0  # payload bytes sent before offset 0 (mid-connection start), dropped
    untraced: int = 0  # stored bytes without a segment-map entry (map full)
    first_syn: int = -1  # its first segment: 1 a SYN (or SYN-ACK), 0 none, -1 no segment
    # frame_at's lookup table (seg_offset, seg_len, seg_frame as lists), built on first use
    _seg_lists: tuple[list[int], list[int], list[int]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def _lists(self) -> tuple[list[int], list[int], list[int]]:
        """The segment map as Python lists, made on first use (the arrays never change)."""
        if self._seg_lists is None:
            self._seg_lists = (
                self.seg_offset.tolist(), self.seg_len.tolist(), self.seg_frame.tolist())
        return self._seg_lists

    def frame_at(self, offset: int) -> int | None:
        """Wireshark frame number that supplied the stored byte at `offset`, if known.

        Called once per SMTP/TLS event, with scalars: `np.searchsorted` and numpy scalar
        indexing cost microseconds each, so the segment map is copied once into Python lists
        (cached on first use; the arrays are never modified after construction) and searched
        with `bisect`.
        """
        starts, lens, frames = self._lists()
        i = bisect_right(starts, offset) - 1
        if i >= 0 and offset < starts[i] + lens[i]:
            return frames[i]
        return None

    def frames_at(self, offsets: Iterable[int | None]) -> list[int | None]:
        """``frame_at`` of each offset (None stays None), in one call: a TLS handshake asks
        for a few dozen, and the call per offset was most of what each cost."""
        starts, lens, frames = self._lists()
        out: list[int | None] = []
        append = out.append
        for offset in offsets:
            if offset is None:
                append(None)
                continue
            i = bisect_right(starts, offset) - 1
            append(frames[i] if i >= 0 and offset < starts[i] + lens[i] else None)
        return out

    def contiguous_end(self, start: int = 0) -> int:
        """End of the gap-free run beginning at `start` (== start when start is in a gap)."""
        ends = [g + n for g, n in self.gaps]
        i = bisect_right(ends, start)
        end = self.gaps[i][0] if i < len(self.gaps) else len(self.data)
        return max(start, min(end, len(self.data)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamDir):
            return NotImplemented
        return (self.data == other.data and self.gaps == other.gaps
                and np.array_equal(self.seg_offset, other.seg_offset)
                and np.array_equal(self.seg_len, other.seg_len)
                and np.array_equal(self.seg_frame, other.seg_frame)
                and (self.seen_bytes, self.capped, self.isn, self.syn_frame, self.fin_frame,
                     self.rst_frame, self.before_start, self.untraced)
                == (other.seen_bytes, other.capped, other.isn, other.syn_frame,
                    other.fin_frame, other.rst_frame, other.before_start, other.untraced))


@dataclass
class Connection:
    """One TCP connection, oriented client -> server."""

    index: int  # 0-based, order of first frame
    flow: int
    client_addr: bytes  # 16 bytes; IPv4 as ::ffff:a.b.c.d
    client_port: int
    server_addr: bytes
    server_port: int
    client_by: str  # "syn" | "port" | "first"
    first_frame: int
    last_frame: int
    first_ts_ns: int
    last_ts_ns: int
    frames: int
    c2s: StreamDir
    s2c: StreamDir
    retransmissions: int
    conflicting_overlaps: int
    keepalives: int
    zero_window_probes: int
    out_of_order: int
    evicted: bool
    # it goes on with a connection on its flow closed on an RST (the RST lost or not taken
    # past the capture point): that connection's first frame and the RST's frame
    after_reset: tuple[int, int] | None = None
    # the first frame Zeek reads as another connection's: at or past tcp_close_delay after
    # an RST or FIN closed it in Zeek's eyes (see _zeek_end), or after tcp_inactivity_timeout
    # without a frame; None: none
    zeek_cut: int | None = None


def _gaps(bits: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """Runs of unfilled bytes; unpacks the map only when it is not all ones (the usual case)."""
    if bits is None:
        return []
    full = n // 8
    raw = bits.tobytes()
    if not raw[:full].strip(b"\xff") and (n % 8 == 0 or raw[full] == (1 << n % 8) - 1):
        return []
    padded = np.zeros(n + 2, np.int8)
    padded[1:-1] = np.unpackbits(bits, count=n, bitorder="little") ^ 1  # 1 where missing
    edges = np.diff(padded)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (stops - starts).tolist(), strict=True))


def _latest_wins(so: np.ndarray, sl: np.ndarray,
                 sf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A segment map in arrival order whose later pieces replaced bytes of earlier ones (the
    segment taken in order over differing held bytes), cut so that each byte is named once,
    by the frame whose copy is stored; sorted by offset."""
    starts: list[int] = []  # the bytes named so far, latest first: sorted, disjoint runs
    ends: list[int] = []
    out: list[tuple[int, int, int]] = []
    for off, n, fr in zip(reversed(so.tolist()), reversed(sl.tolist()), reversed(sf.tolist()),
                          strict=True):
        end, pos = off + n, off
        i = bisect_right(ends, off)
        while pos < end and i < len(starts) and starts[i] < end:
            if starts[i] > pos:
                out.append((pos, starts[i] - pos, fr))
            pos = max(pos, ends[i])
            i += 1
        if pos < end:
            out.append((pos, end - pos, fr))
        j, k = bisect_left(ends, off), bisect_right(starts, end)
        if j < k:
            off, end = min(off, starts[j]), max(end, ends[k - 1])
        starts[j:k], ends[j:k] = [off], [end]
    out.sort()
    return (np.array([o for o, _, _ in out], np.int64), np.array([n for _, n, _ in out], np.int32),
            np.array([f for _, _, f in out], np.int64))


def _stream_dir(raw: RawDir, replaced: bool) -> StreamDir:
    """`replaced`: the connection counted a conflicting overlap, so pieces of the segment
    map may name bytes a later piece replaced (see store in csrc/reassembly.c)."""
    so, sl, sf = raw.seg_off, raw.seg_len, raw.seg_frame
    if len(so) > 1 and not raw.seg_sorted and not (so[1:] >= so[:-1]).all():
        order = np.argsort(so, kind="stable")
        so, sl, sf = so[order], sl[order], sf[order]
    if replaced and len(so) > 1 and (so[1:] < so[:-1] + sl[:-1]).any():
        so, sl, sf = _latest_wins(raw.seg_off, raw.seg_len, raw.seg_frame)
    return StreamDir(
        data=raw.data,
        gaps=_gaps(raw.filled_bits, len(raw.data)),
        seg_offset=so,
        seg_len=sl,
        seg_frame=sf,
        seen_bytes=raw.seen_bytes,
        capped=raw.seen_bytes > len(raw.data),
        isn=raw.isn, syn_frame=raw.syn_frame, fin_frame=raw.fin_frame,
        rst_frame=raw.rst_frame, before_start=raw.before_start, untraced=raw.untraced,
        first_syn=raw.first_syn)


def _known(ts: int) -> int:
    """A connection's time; 0 (unknown, as a capture without timestamps has it) when none of
    its frames carried one."""
    return 0 if ts == NO_TS else ts


def _connection(raw: RawConn, flows: FlowTable, server_ports: frozenset[int]) -> Connection:
    """Orient the connection: the SYN sender (or SYN-ACK receiver), else the side not on a
    server port, else the sender of the first frame."""
    key = flows.keys[raw.flow]
    if raw.syn_dir >= 0:
        client, by = raw.syn_dir, "syn"
    elif raw.synack_dir >= 0:
        client, by = 1 - raw.synack_dir, "syn"
    else:
        a_srv, b_srv = key.a_port in server_ports, key.b_port in server_ports
        client, by = ((1 if a_srv else 0), "port") if a_srv != b_srv else (raw.first_dir,
                                                                             "first")
    ends = [(key.a_addr, key.a_port), (key.b_addr, key.b_port)]
    (caddr, cport), (saddr, sport) = ends[client], ends[1 - client]
    return Connection(
        index=raw.index, flow=raw.flow, client_addr=caddr, client_port=cport,
        server_addr=saddr, server_port=sport, client_by=by, first_frame=raw.first_frame,
        last_frame=raw.last_frame, first_ts_ns=_known(raw.first_ts_ns),
        last_ts_ns=_known(raw.last_ts_ns),
        frames=raw.frames, c2s=_stream_dir(raw.dirs[client], raw.conflicting_overlaps > 0),
        s2c=_stream_dir(raw.dirs[1 - client], raw.conflicting_overlaps > 0),
        retransmissions=raw.retransmissions,
        conflicting_overlaps=raw.conflicting_overlaps, keepalives=raw.keepalives,
        zero_window_probes=raw.zero_window_probes, out_of_order=raw.out_of_order,
        evicted=raw.evicted,
        after_reset=None if raw.after_first < 0 else (raw.after_first, raw.after_rst),
        zeek_cut=None if raw.zeek_cut < 0 else raw.zeek_cut)


def _rows(cols: FrameCols, sel: slice | np.ndarray) -> FrameCols:
    """The rows `sel` of every column (a column not known stays so)."""
    return FrameCols(*(None if (c := getattr(cols, f)) is None else np.asarray(c)[sel]
                       for f in FrameCols.__dataclass_fields__))


def _segment_row(d: Datagram) -> tuple[FrameCols, bytes]:
    """A completed datagram's TCP segment as one row over its own bytes."""
    seg = d.segment
    hl = (seg[12] >> 4) * 4
    n = len(seg) - hl

    def one(v, dtype) -> np.ndarray:
        return np.array([v], dtype)

    u32 = np.uint32
    return FrameCols(one(d.frame_no, np.int64), one(d.ts_ns, np.int64), one(d.flow, np.int64),
                     one(d.from_a, bool), one(hl, np.int64),
                     one(int.from_bytes(seg[4:8], "big"), u32),
                     one(int.from_bytes(seg[8:12], "big"), u32),
                     one(int.from_bytes(seg[12:14], "big") & 0x1FF, np.uint16),
                     one(int.from_bytes(seg[14:16], "big"), np.uint16),
                     one(n, np.int32), one(n, np.int32)), seg


class Reassembler:
    """Feed it `SelectedFrames` windows in capture order; collect `Connection`s.

    `buf` is the capture's memory map (payload bytes are read from it in place), `flows` the
    FlowTable that numbered the flows.  Hold the Capture open while feeding.

    IP fragment rows among the frames (`select.fragments`) go to its `defrag`, here above
    both cores, so every path that feeds a reassembler puts the same datagrams together;
    each completed datagram reaches the core as one segment in its completing frame's place.
    """

    def __init__(self, buf, flows: FlowTable, *, server_ports: Iterable[int] = DEFAULT_PORTS,
                 cap: int = DEFAULT_CAP, budget: int = DEFAULT_BUDGET,
                 max_open: int = DEFAULT_MAX_OPEN, backend: str = "auto",
                 max_segments: int = DEFAULT_MAX_SEGMENTS,
                 linger_ns: int = DEFAULT_LINGER_NS) -> None:
        if not 0 <= cap <= MAX_CAP:
            raise ValueError(f"cap must be within 0..{MAX_CAP}")
        if not 1 <= max_open <= 1 << 28:
            raise ValueError("max_open must be within 1..2**28")
        if max_segments < 0 or linger_ns < 0:
            raise ValueError("max_segments and linger_ns must not be negative")
        self.flows = flows
        self.server_ports = frozenset(int(p) for p in server_ports)
        self._core = get_reassembler_core(backend, buf, cap=cap, budget=budget,
                                          max_open=max_open, max_segments=max_segments,
                                          linger_ns=linger_ns)
        self.backend: str = self._core.name
        self._buf = buf
        self.defrag = Defragmenter()  # the IP fragment rows among the frames fed

    def feed(self, sel: SelectedColumns) -> list[Connection]:
        """Process one window; return the connections finished so far (closed and lingered,
        superseded by a new SYN, or evicted), ordered by index."""
        return list(self.feed_iter(sel))

    def feed_iter(self, sel: SelectedColumns) -> Iterator[Connection]:
        """Like feed, one connection at a time, so a window that evicts thousands of
        connections holds one copy of them; exhaust it before feeding the next window."""
        return self.feed_cols_iter(FrameCols.of(sel))

    def feed_cols_iter(self, cols: FrameCols) -> Iterator[Connection]:
        """Like feed_iter, for columns already cut to usable rows (`FrameCols.of`).  IP
        fragment rows (`select.fragments`) go to the defragmenter; each datagram they
        complete is fed as a segment of its own in its completing frame's place."""
        flags = np.asarray(cols.flags)
        if not (len(flags) and (flags & FRAG_ROW).any()):
            for raw in self._core.feed_iter(cols):
                yield _connection(raw, self.flows, self.server_ports)
            return
        at = 0
        for i in np.flatnonzero(flags & FRAG_ROW).tolist():
            if i > at:
                yield from self._fed(_rows(cols, slice(at, i)))
            at = i + 1
            got = self._defragment(cols, i)
            if got is not None:
                seg, side = got
                self._core.rebind(side)
                try:
                    yield from self._fed(seg)
                finally:
                    self._core.rebind(self._buf)
        if at < len(cols):
            yield from self._fed(_rows(cols, slice(at, len(cols))))

    def _fed(self, cols: FrameCols) -> Iterator[Connection]:
        for raw in self._core.feed_iter(cols):
            yield _connection(raw, self.flows, self.server_ports)

    def _defragment(self, cols: FrameCols, i: int) -> tuple[FrameCols, bytes] | None:
        """Fragment row i given to the defragmenter: the segment it completes, as one row
        whose payload lies in the bytes returned with it."""
        d = self.defrag.add_row(cols, i, self._buf)
        return None if d is None or not d.usable else _segment_row(d)

    def finish(self) -> list[Connection]:
        """End of capture: every connection still held, ordered by index."""
        return list(self.drain())

    def drain(self) -> Iterator[Connection]:
        """End of capture, one connection at a time in index order: memory stays bounded
        by what the reassembler held, however many connections were open."""
        self.defrag.finish()
        for raw in self._core.finish_iter():
            yield _connection(raw, self.flows, self.server_ports)

    def evict_before(self, number: int) -> Iterator[Connection]:
        """Hand over now, in index order, every connection held whose index is below
        `number` (marked evicted unless it had closed): for a caller that will not wait for
        connections begun before some point.  Their later frames start new connections."""
        for raw in self._core.evict_before_iter(number):
            yield _connection(raw, self.flows, self.server_ports)

    def rebind(self, buf) -> None:
        """Payload offsets of the frames fed next refer to `buf`: a stream's next piece.
        Stored bytes are copies, so the previous piece may go."""
        self._buf = buf
        self._core.rebind(buf)

    @property
    def mem(self) -> int:
        """Accounted bytes of the connections held now (what `budget` bounds)."""
        return self._core.mem

    @property
    def open_connections(self) -> int:
        return self._core.open

    @property
    def late_segments(self) -> int:
        """Segments without payload of a closed connection already handed on, dropped
        rather than made a connection of their own."""
        return self._core.late

    @property
    def beyond_window(self) -> int:
        """Segments dropped whole because they start over WINDOW_MAX bytes past their
        direction's highest offset, where no receiver would take them."""
        return self._core.beyond

    @property
    def skipped(self) -> Counter:
        """The segments dropped so far, by reason (those with a count), for a scan's
        `skipped` totals."""
        return Counter({reason: n for reason, n in ((LATE, self._core.late),
                                                     (BEYOND_WINDOW, self._core.beyond)) if n})

    def close(self) -> None:
        self._buf = b""
        self._core.close()

    def __enter__(self) -> Reassembler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the pure-Python twin of csrc/reassembly.c ---------------------------------------------


class _Dir:
    __slots__ = ("data", "filled", "dcap", "seg_off", "seg_len", "seg_frame", "segcap",
                 "nxt", "rcv", "before_start", "untraced", "syn_frame", "fin_frame", "rst_frame",
                 "first_syn",
                 "base", "isn", "fin_seq", "synack_ack", "win", "has_base", "has_isn",
                 "fin_seen", "fin_acked", "win_known", "syn_ack_seen", "zwp", "fin_off",
                 "acked", "rst_acked", "hold", "holdcap", "hold_copied", "hold_mixed")

    def __init__(self) -> None:
        self.data = bytearray()
        self.filled = bytearray()  # one byte per stored byte: 0/1 (C uses a bitmap)
        self.dcap = 0
        self.seg_off: list[int] = []
        self.seg_len: list[int] = []
        self.seg_frame: list[int] = []
        self.segcap = 0
        self.nxt = 0
        self.rcv = 0  # where the bytes taken in order end (see store in C)
        self.before_start = self.untraced = 0
        self.syn_frame = self.fin_frame = self.rst_frame = -1
        self.first_syn = -1  # its first segment: 1 a SYN, 0 none (first_syn in C)
        self.base = self.isn = self.fin_seq = self.synack_ack = self.win = 0
        self.has_base = self.has_isn = self.fin_seen = self.fin_acked = False
        self.win_known = self.syn_ack_seen = False
        self.zwp: tuple[int, int, bytes] | None = None  # a probe's (offset, frame, byte)
        self.fin_off = 0  # stream offset of the first FIN (when fin_seen)
        self.acked: int | None = None  # highest stream offset the peer acknowledged
        self.rst_acked = -1  # the highest one an RST of the peer's it took acknowledged
        # segments held out of order, in arrival order: [start, end, frame, copy or None]
        # (see hold_add in C); hold_mixed: one of them differs from the bytes stored under it
        self.hold: list[tuple[int, int, int, bytes | None]] = []
        self.holdcap = self.hold_copied = 0  # hold_copied: bytes in the records' copies
        self.hold_mixed = False

    def mem(self) -> int:
        return self.dcap + ((self.dcap + 63) // 64) * 8 + self.segcap * SEG_BYTES


class _Conn:
    __slots__ = ("d", "index", "flow", "first_frame", "last_frame", "first_ts", "last_ts",
                 "frames", "retrans", "conflicts", "keepalives", "zwp", "ooo", "close_ts",
                 "mem", "first_dir", "syn_dir", "synack_dir", "rst", "closed", "evicted",
                 "rst_dir", "rst_at", "after_first", "after_rst", "zst", "zdl", "zcut")

    def __init__(self, index: int, flow: int, fno: int, ts: int, dir_: int) -> None:
        self.d = (_Dir(), _Dir())
        self.index, self.flow = index, flow
        self.first_frame = self.last_frame = fno
        self.first_ts = self.last_ts = ts
        self.frames = 0
        self.retrans = self.conflicts = self.keepalives = self.zwp = self.ooo = 0
        self.close_ts = 0
        self.mem = CONN_OVERHEAD
        self.first_dir, self.syn_dir, self.synack_dir = dir_, -1, -1
        self.rst = self.closed = self.evicted = False
        # the reset recorded: its direction (-1 none, -2 one that stays), stream offset
        self.rst_dir, self.rst_at = -1, 0
        self.after_first = self.after_rst = -1  # resumes a reset connection (_tomb_resumed)
        # Zeek's view of its end (_zeek_end): each end's state bits, when Zeek removes the
        # connection (NO_TS: not yet due), the first frame at or past then (-1: none)
        self.zst = [0, 0]
        self.zdl, self.zcut = NO_TS, -1


class PyReassemblerCore:
    """Pure-Python reassembler: same rules, same accounting, same output as the C core."""

    name = "python"

    def __init__(self, buf, *, cap: int, budget: int, max_open: int, max_segments: int,
                 linger_ns: int) -> None:
        mv = memoryview(buf)
        self._buf = mv if (mv.format == "B" and mv.ndim == 1) else mv.cast("B")
        self._cap, self._budget, self._max_open = cap, budget, max_open
        self._max_segs, self._linger = max_segments, linger_ns
        self._flows: dict[int, _Conn] = {}
        self._lru: OrderedDict[int, _Conn] = OrderedDict()  # least recently active first
        self._linger_q: OrderedDict[int, _Conn] = OrderedDict()  # oldest close first
        self._done: list[_Conn] = []
        # group (flow id modulo TOMB_GROUPS) -> [its records, where the oldest is once it
        # holds TOMB_WAYS]; a record: [flow, state (_TOMB_FREE, _SPENT or _LIVE), then per
        # direction (has_base, base, span, has_isn, isn, fin, acked), then (first frame, RST
        # frame) if an RST closed it, else None] (see rtomb in C)
        self._tombs: dict[int, list] = {}
        self.late = 0
        self.beyond = 0  # segments dropped as out of any receive window
        self._next_index = 0
        self._now: int | None = None
        self.mem = 0

    @property
    def open(self) -> int:
        return len(self._lru)

    def rebind(self, buf) -> None:
        mv = memoryview(buf)
        self._buf = mv if (mv.format == "B" and mv.ndim == 1) else mv.cast("B")

    def close(self) -> None:
        self._buf = memoryview(b"")
        self._flows.clear()
        self._lru.clear()
        self._linger_q.clear()
        self._done.clear()
        self._tombs.clear()

    # -- bookkeeping (mirrors conn_finish / conn_new / the feed loop in C) -------------------
    def _finish(self, c: _Conn, evicted: bool) -> None:
        del self._lru[c.index]
        if c.closed:
            del self._linger_q[c.index]
        del self._flows[c.flow]
        self.mem -= c.mem
        c.evicted = evicted and not c.closed
        self._done.append(c)
        if c.closed:
            rsts = [d.rst_frame for d in c.d if d.rst_frame >= 0]
            # as in C: not after both FINs were acknowledged, or sent before any RST of theirs
            by_rst = c.rst and not (c.d[0].fin_acked and c.d[1].fin_acked) and not all(
                d.fin_frame >= 0 and not 0 <= d.rst_frame < d.fin_frame for d in c.d)
            # going on past an RST, an end it saw no bytes from keeps the record it went on
            # from, unless later closes of its group took its place (as in C)
            old = self._tomb_find(c.flow)
            carried = old if old is not None and c.after_first >= 0 else None
            if old is not None:
                old[1] = _TOMB_FREE  # replaced by the record written now, the newest
            self._tomb_put(c.flow, [c.flow, _TOMB_LIVE, *(
                carried[2 + k] if carried is not None and not d.has_base else
                (d.has_base, d.base, min(d.nxt + d.fin_seen, _M32), d.has_isn, d.isn,
                 int(d.fin_seen), min(max(0, d.rst_acked, -1 if d.acked is None else d.acked),
                                      _M32))
                for k, d in enumerate(c.d)),
                (c.first_frame, min(rsts, default=-1)) if by_rst else None])

    def _tomb_find(self, flow: int) -> list | None:
        """The record of `flow`, live or spent (tomb_find in C)."""
        g = self._tombs.get(flow % TOMB_GROUPS)
        if g is not None:
            for t in g[0]:
                if t[1] != _TOMB_FREE and t[0] == flow:
                    return t
        return None

    def _tomb_put(self, flow: int, rec: list) -> None:
        """Write `rec` into `flow`'s group: in a place never used, else in the oldest
        record's (tomb_place in C)."""
        g = self._tombs.setdefault(flow % TOMB_GROUPS, [[], 0])
        if len(g[0]) < TOMB_WAYS:
            g[0].append(rec)
        else:
            g[0][g[1]] = rec
            g[1] = (g[1] + 1) % TOMB_WAYS

    def _tomb_late(self, flow: int, d: int, seq: int, ack: int, flags: int, plen: int) -> bool:
        """A late bare segment, or a data retransmission, of the closed connection this flow
        last held (see tomb_late in C)."""
        t = self._tomb_find(flow)
        if t is None or t[1] != _TOMB_LIVE:
            return False
        has_base, base, span, has_isn, isn, fin, acked = t[2 + d]
        if plen > 0:  # its bytes all acknowledged, below a FIN (span counts it)
            end = ((seq - base) & _M32) + plen
            if flags & (_SYN | _RST) or not has_base or end > acked or end > span - fin:
                return False
            peer_has_base, peer_base, peer_span = t[3 - d][:3]
            return not flags & _ACK or not peer_has_base or (ack - peer_base) & _M32 <= peer_span
        if flags & _SYN:
            return has_isn and seq == isn
        return has_base and (seq - base) & _M32 <= span

    def _tomb_resumed(self, flow: int, d: int, seq: int, ack: int, flags: int,
                      plen: int) -> tuple[int, int]:
        """(first frame, RST frame) of the connection closed on an RST that this segment goes
        on with, else (-1, -1) (see tomb_resumed in C)."""
        t = self._tomb_find(flow)
        if (t is None or t[1] != _TOMB_LIVE or t[4] is None or plen <= 0
                or flags & (_SYN | _RST)):
            return -1, -1
        has_base, base, span = t[2 + d][:3]
        if not has_base or (seq - base) & _M32 > span:
            return -1, -1
        has_base, base, span = t[3 - d][:3]
        if flags & _ACK and has_base and (ack - base) & _M32 > span + WINDOW_MAX:
            return -1, -1
        return t[4]

    def feed(self, fc: FrameCols) -> list[RawConn]:
        cols = zip(*(np.asarray(getattr(fc, f)).tolist() for f in CORE_COLS), strict=True)
        buf_len = len(self._buf)
        for fno, ts, flow, from_a, foff, seq, ack, flags, win, plen, caplen in cols:
            d = 0 if from_a else 1
            plen = max(plen, 0)
            caplen = min(max(caplen, 0), plen)
            if foff < 0 or foff > buf_len:
                caplen = 0
            else:
                caplen = min(caplen, buf_len - foff)
            dated = ts != NO_TS  # a frame without a time moves no clock
            if dated and (self._now is None or ts > self._now):
                self._now = ts
            while self._linger_q:
                head = next(iter(self._linger_q.values()))
                # no frame with a time yet: the clock stands at 0, as the C core's; the gap
                # taken unsigned, as the C core takes it (a connection closed before any
                # frame had a time, then a first time before 1970, is past its linger)
                if ((self._now or 0) - head.close_ts) & _M64 <= self._linger:
                    break
                self._finish(head, False)
            c = self._flows.get(flow)
            if (c is not None and flags & _SYN and not flags & _RST
                    and not self._syn_same(c, d, seq, ack, flags, plen)):
                self._finish(c, False)
                c = None
            if c is None:
                if flags & _RST:  # a reset starts no connection (see the C core)
                    continue
                if self._tomb_late(flow, d, seq, ack, flags, plen):
                    self.late += 1
                    continue
                after = self._tomb_resumed(flow, d, seq, ack, flags, plen)
                if len(self._lru) >= self._max_open:
                    self._finish(next(iter(self._lru.values())), True)
                t = self._tomb_find(flow)
                if t is not None:
                    t[1] = _TOMB_SPENT  # a new connection on the flow (as conn_new in C)
                c = _Conn(self._next_index, flow, fno, ts, d)
                c.after_first, c.after_rst = after
                self._next_index += 1
                self._flows[flow] = c
                self._lru[c.index] = c
                self.mem += CONN_OVERHEAD
            else:
                self._lru.move_to_end(c.index)
            c.frames += 1
            c.last_frame = fno
            if c.zcut < 0 and dated and c.last_ts != NO_TS and (
                    ts - c.last_ts >= ZEEK_INACTIVITY_NS):
                c.zcut = fno  # Zeek's inactivity timer removed it (Session::InactivityTimer)
            if dated:
                if c.first_ts == NO_TS:
                    c.first_ts = ts
                c.last_ts = ts
            if c.zcut < 0 and (flags & (_RST | _FIN) or c.zdl != NO_TS):  # else a no-op
                self._zeek_end(c, d, fno, ts if dated else c.last_ts, flags)
            self._process(c, d, fno, seq, ack, flags, win, plen, caplen, foff)
            ended = c.rst or (c.d[0].fin_acked and c.d[1].fin_acked)
            if not c.closed and ended:
                c.closed = True
                c.close_ts = 0 if self._now is None else self._now  # as the C core's clock
                self._linger_q[c.index] = c
            elif c.closed and not ended:  # a reset undone (_rst_undone)
                c.closed = False
                del self._linger_q[c.index]
            while self.mem > self._budget:
                victim = next(iter(self._lru.values()))
                if victim is c:
                    break
                self._finish(victim, True)
        return self._take_done()

    def finish(self) -> list[RawConn]:
        for c in list(self._lru.values()):
            self._finish(c, False)
        return self._take_done()

    def finish_iter(self) -> Iterator[RawConn]:
        return iter(sorted(self.finish(), key=lambda r: r.index))

    def evict_before_iter(self, index: int) -> Iterator[RawConn]:
        for c in list(self._lru.values()):
            if c.index < index:
                self._finish(c, True)
        return iter(sorted(self._take_done(), key=lambda r: r.index))

    def feed_iter(self, cols: FrameCols) -> Iterator[RawConn]:
        return iter(sorted(self.feed(cols), key=lambda r: r.index))

    @staticmethod
    def _syn_same(c: _Conn, d: int, seq: int, ack: int, flags: int, plen: int) -> bool:
        me, peer = c.d[d], c.d[1 - d]
        if me.has_base and (me.has_isn or not _acked_first(me, flags)):
            return me.base == (seq + 1) & _M32
        if flags & _ACK:  # with TCP Fast Open, acknowledging the data of the peer's SYN
            return (not peer.has_base or ack == peer.base
                    or (peer.has_isn and (ack - peer.base) & _M32 <= peer.nxt))
        if peer.has_isn and not peer.syn_ack_seen:  # simultaneous open, unless reset since
            return not c.rst
        return (peer.has_isn and peer.syn_ack_seen
                and (peer.synack_ack - seq - 1) & _M32 <= plen)

    @staticmethod
    def _rst_taken(c: _Conn, d: int, seq: int, ack: int, flags: int) -> int:
        """Did the receiver take this reset, as far as the capture tells: 0 no, 1 it cannot
        tell (taken all the same), 2 yes (rst_taken in C).

        A receiver resets only on an RST at exactly its RCV.NXT (RFC 5961 3.2, RFC 9293
        3.10.7.4); below it the RST is out of its window, past it a challenge ACK answers it.
        RCV.NXT lies between what the receiver last acknowledged and the end of what this
        direction sent: an RST outside that span is not taken, and where the two meet
        (everything acknowledged) an RST there is taken.  At the end of data not yet
        acknowledged the capture cannot tell whether the data arrived; the RST is taken all
        the same, as the end it nearly always is (a reply or a TLS alert with an RST right
        behind it, before the peer's delayed ACK): held open, each such connection would
        hold back the sessions after it until the capture ends.  Frames after it that show
        it was not the end undo it while the connection lingers (`_rst_undone`).  From an
        end that sent nothing but resets, the peer's opening tells: its SYN is taken back by
        an RST acknowledging it (SYN-SENT), its SYN-ACK by one at the sequence number that
        SYN-ACK acknowledged (SYN-RECEIVED)."""
        me, peer = c.d[d], c.d[1 - d]
        if not me.has_base:
            if not peer.has_isn:
                return 1
            if peer.syn_ack_seen:
                return 2 if seq == peer.synack_ack else 0
            return 2 if flags & _ACK and (ack - peer.isn - 1) & _M32 <= peer.nxt else 0
        sent = max(me.nxt, me.fin_off + 1) if me.fin_seen else me.nxt
        if me.acked is not None and me.acked > sent:
            sent = me.acked  # the receiver had bytes the capture missed
        at = me.nxt + _s32(seq - me.base - me.nxt)
        if (me.acked is not None and at < me.acked) or at > sent or (me.has_isn and at < 0):
            return 0  # outside the span, or before the ISN (an earlier connection's)
        return 2 if me.acked == sent else 1

    @staticmethod
    def _zeek_end(c: _Conn, d: int, fno: int, ts: int, flags: int) -> None:
        """Where Zeek ends the connection (zeek_end in C): ZEEK_CLOSE_DELAY after an end
        closes it, whatever fastcap makes of that RST or FIN (TCPSessionAdapter's
        UpdateStateMachine and ConnectionClosed: an RST from an end not reset, or not
        closed with its peer, closes that end and completes the close; a FIN closes its end,
        and completes the close once the peer closed or sent nothing).  Each close that
        completes it sets Zeek's ConnDeleteTimer anew; a frame at or past that time comes
        after Zeek removed the connection (its timers expire before the packet is read),
        and begins another Zeek connection there (`zcut`)."""
        if c.zdl != NO_TS and ts != NO_TS and ts >= c.zdl:
            c.zcut = fno
            return
        me, peer = c.zst[d], c.zst[1 - d]
        if flags & _RST:
            if me & _Z_RST or (me & _Z_FIN and peer & (_Z_FIN | _Z_RST) == _Z_FIN):
                return  # reset already, or both ends closed by FINs (UpdateClosedState)
            me |= _Z_RST
        elif flags & _FIN:
            if me & (_Z_RST | _Z_FIN):
                return
            me |= _Z_FIN
            if peer & _Z_FIN:  # the peer's FIN then RST: a normal close after all
                peer &= ~_Z_RST
        else:
            return
        c.zst[1 - d] = peer
        if me & _Z_DONE:
            c.zst[d] = me
            return
        c.zst[d] = me | _Z_DONE
        if me & _Z_RST or peer & _Z_DONE or c.d[1 - d].first_syn < 0:
            c.zdl = NO_TS if ts == NO_TS else ts + ZEEK_CLOSE_DELAY_NS

    @staticmethod
    def _rst_undone(c: _Conn) -> None:
        """A reset recorded that the frames after it show was not the end (rst_undone in
        C): forgotten, and the connection open again, not handed on 1 s after the RST."""
        c.d[c.rst_dir].rst_frame = -1
        c.rst, c.rst_dir = False, -1

    # -- per frame (mirrors process / store in C) -----------------------------------------
    def _process(self, c: _Conn, d: int, fno: int, seq: int, ack: int, flags: int, win: int,
                 plen: int, caplen: int, foff: int) -> None:
        me, peer = c.d[d], c.d[1 - d]
        if me.first_syn < 0:
            me.first_syn = 1 if flags & _SYN else 0
        if flags & _RST:
            taken = self._rst_taken(c, d, seq, ack, flags)
            if not taken:
                return  # the connection goes on
            if c.rst_dir == -1 and c.d[0].rst_frame < 0 and c.d[1].rst_frame < 0:
                c.rst_dir = d if me.has_base else -2
                c.rst_at = me.nxt + _s32(seq - me.base - me.nxt) if me.has_base else 0
            elif c.rst_dir != d:
                c.rst_dir = -2  # both ends reset, or the first unplaced: none is undone
            if me.rst_frame < 0:
                me.rst_frame = fno
            if flags & _ACK and peer.has_base:  # what the RST's sender had received
                peer.rst_acked = max(peer.rst_acked, peer.nxt + _s32(ack - peer.base - peer.nxt))
            c.rst = True
            return
        if not flags & _SYN and me.has_base and _s32(seq - me.base - me.nxt) > WINDOW_MAX:
            self.beyond += 1  # out of any receive window (see FC_WINDOW_MAX in C)
            return
        if (not flags & _SYN and not me.has_base and peer.has_isn and flags & _ACK
                and (ack - peer.base) & _M32 > peer.nxt + WINDOW_MAX):
            return  # not acceptable to the peer: its ACK before the SYN (see process in C)
        if flags & _ACK and peer.has_base:
            a = peer.nxt + _s32(ack - peer.base - peer.nxt)
            if peer.acked is None or a > peer.acked:
                peer.acked = a
            if c.rst_dir == 1 - d and a > c.rst_at:
                self._rst_undone(c)  # the receiver has bytes past the reset
        if flags & _ACK and peer.fin_seen and _s32(ack - peer.fin_seq - 1) >= 0:
            peer.fin_acked = True
        if peer.rcv < peer.nxt and flags & _ACK:  # bytes held: peer.base is known
            self._settle(c, peer, peer.nxt + _s32(ack - peer.base - peer.nxt))
        me.win, me.win_known = win, True
        sdata = seq
        if flags & _SYN:
            if flags & _ACK:
                if c.synack_dir < 0:
                    c.synack_dir = d
            elif c.syn_dir < 0:
                c.syn_dir = d
            if me.has_isn:
                c.retrans += 1
            else:
                if me.has_base:  # after bare ACKs (_acked_first): what acknowledged them goes
                    me.acked = None
                me.base, me.has_base = (seq + 1) & _M32, True
                me.isn, me.has_isn = seq, True
                me.syn_frame = fno
                if flags & _ACK:
                    me.syn_ack_seen, me.synack_ack = True, ack
            sdata = (seq + 1) & _M32
        elif not me.has_base:
            me.base, me.has_base = seq, True
        e = me.nxt
        o = e + _s32(sdata - me.base - e)
        if c.rst_dir == d and plen > 0 and o + plen > c.rst_at:
            self._rst_undone(c)  # its sender went on past the reset
        plain = not flags & (_SYN | _FIN)
        if plain and plen <= 1 and o == e - 1:
            c.keepalives += 1
            return
        if me.fin_seen:  # nothing is sent after a FIN: bytes past it are not the stream's
            room = max(me.fin_off - o, 0)
            plen, caplen = min(plen, room), min(caplen, room)
        if plain and plen == 1 and o == e and peer.win_known and peer.win == 0:
            c.zwp += 1  # the byte is held until settled (see the C core)
            me.zwp = (o, fno, bytes(self._buf[foff:foff + 1])) if caplen > 0 else None
            return
        if me.zwp is not None and o > me.zwp[0]:  # the sender went on after the probe's byte
            (zo, zf, zb), me.zwp = me.zwp, None
            self._store(c, me, zo, 1, 1, 0, zf, zb)
        elif me.zwp is not None and o + plen > me.zwp[0]:  # the byte comes again as data
            me.zwp = None
        if plen > 0:
            self._store(c, me, o, plen, caplen, foff, fno)
        if flags & _FIN:
            if not me.fin_seen and o + plen >= 0:  # not one ending before the first byte
                me.fin_seen = True
                me.fin_seq = (sdata + plen) & _M32
                me.fin_frame = fno
                me.fin_off = o + plen
            if o + plen <= me.fin_off:
                me.nxt = max(me.nxt, o + plen)

    @staticmethod
    def _held_end(me: _Dir, at: int, lim: int) -> int:
        """The in-order point moved past the held bytes that join it (see held_end in C)."""
        lim = min(lim, me.dcap)
        if at >= lim:
            return at
        q = me.filled.find(0, at, lim)
        return lim if q < 0 else q

    def _settle(self, c: _Conn, me: _Dir, a: int) -> None:
        """The peer acknowledged up to offset `a`: move past the held bytes below it (see
        settle in C)."""
        lim = min(me.nxt, me.dcap)
        while me.rcv < lim:
            f = me.filled.find(1, me.rcv, lim)
            if f < 0 or f >= a:
                return
            self._advance(c, me, f, lim)

    def _hold_add(self, c: _Conn, me: _Dir, lo: int, hi: int, fno: int,
                  copy: bytes | None) -> None:
        """Record a segment held out of order (see hold_add in C: within the segment map's
        limit, its copies within the direction's byte cap)."""
        if copy is not None and me.hold_copied + hi - lo > self._cap:
            return
        limit = min(self._max_segs, HOLD_MAX)
        if len(me.hold) == me.holdcap:
            if me.holdcap >= limit:
                return
            ncap = min(me.holdcap * 2 if me.holdcap else HOLD_INIT, limit)
            grow = (ncap - me.holdcap) * HOLD_BYTES
            me.holdcap = ncap
            c.mem += grow
            self.mem += grow
        me.hold.append((lo, hi, fno, copy))
        if copy is not None:
            me.hold_copied += hi - lo
            c.mem += hi - lo
            self.mem += hi - lo

    def _advance(self, c: _Conn, me: _Dir, p: int, lim: int) -> None:
        """The bytes taken in order reach `p`: move past the held bytes joining it, where
        held segments differ as tshark's follow does (see advance in C)."""
        if me.hold_mixed:
            lim = min(lim, me.dcap)
            while True:
                nxt = lim
                for start, end, fno, copy in me.hold:
                    if start <= p < end:
                        if copy is not None and me.data[p:end] != copy[p - start:]:
                            if self._seg_room(me):
                                me.data[p:end] = copy[p - start:]
                                self._seg_add(c, me, p, end - p, fno)
                        p = end
                        break
                    if p < start < nxt:
                        nxt = start
                else:  # bytes no record covers (records past HOLD_MAX): their first copy
                    q = self._held_end(me, p, nxt)
                    if q == p:
                        break
                    p = q
        else:
            p = self._held_end(me, p, lim)
        me.rcv = p
        kept = []
        for h in me.hold:
            if h[1] > p:
                kept.append(h)
            elif h[3] is not None:
                me.hold_copied -= h[1] - h[0]
                c.mem -= h[1] - h[0]
                self.mem -= h[1] - h[0]
        me.hold = kept
        if not kept:
            me.hold_mixed = False

    def _store(self, c: _Conn, me: _Dir, o: int, n: int, caplen: int, foff: int,
               fno: int, src=None) -> None:
        """Mirrors store in C: bytes below `rcv` keep their first copy, the segment taken in
        order replaces differing held bytes (while the segment map has room)."""
        e, end = me.nxt, o + n
        if o < 0:
            me.before_start += min(end, 0) - o
        lo, hi = max(o, 0), min(o + caplen, self._cap)
        in_order = 0 <= me.rcv - o < caplen  # caplen <= n: it ends past rcv too
        w = me.rcv if in_order else hi  # bytes from w on replace differing held ones
        new_below = 0
        conflict = False
        if lo < hi:
            self._reserve(c, me, hi)
            data, filled = me.data, me.filled
            src = self._buf if src is None else src
            pos = lo
            while pos < hi:
                if filled[pos]:
                    q = filled.find(0, pos, hi)
                    q = hi if q < 0 else q
                    if pos < w < q:
                        q = w
                    if pos >= w:
                        if data[pos:q] != src[foff + pos - o:foff + q - o]:
                            conflict = True
                            if self._seg_room(me):
                                data[pos:q] = src[foff + pos - o:foff + q - o]
                                self._seg_add(c, me, pos, q - pos, fno)
                    elif not conflict and data[pos:q] != src[foff + pos - o:foff + q - o]:
                        conflict = True
                else:
                    q = filled.find(1, pos, hi)
                    q = hi if q < 0 else q
                    data[pos:q] = src[foff + pos - o:foff + q - o]
                    filled[pos:q] = b"\x01" * (q - pos)
                    self._seg_add(c, me, pos, q - pos, fno)
                    if pos < e:
                        new_below += min(q, e) - pos
                pos = q
        c.conflicts += conflict
        if o > me.rcv and lo < hi:  # held out of order
            copy = bytes(src[foff + lo - o:foff + hi - o]) if conflict else None
            self._hold_add(c, me, lo, hi, fno, copy)
            me.hold_mixed |= conflict
        if o < e:
            if new_below > 0:
                c.ooo += 1
            else:
                c.retrans += 1
        me.nxt = max(me.nxt, end)
        if in_order:
            self._advance(c, me, end, e)

    def _seg_room(self, me: _Dir) -> bool:
        """Whether the segment map can take one more entry (once full, it stays full)."""
        return len(me.seg_off) < me.segcap or me.segcap < self._max_segs

    def _reserve(self, c: _Conn, me: _Dir, need: int) -> None:
        if need <= me.dcap:
            return
        ncap = me.dcap or DATA_INIT
        while ncap < need:
            ncap *= 2
        ncap = min(ncap, self._cap)
        before = me.mem()
        me.data.extend(bytes(ncap - me.dcap))
        me.filled.extend(bytes(ncap - me.dcap))
        me.dcap = ncap
        c.mem += me.mem() - before
        self.mem += me.mem() - before

    def _seg_add(self, c: _Conn, me: _Dir, off: int, n: int, fno: int) -> None:
        if me.seg_frame and me.seg_frame[-1] == fno and me.seg_off[-1] + me.seg_len[-1] == off:
            me.seg_len[-1] += n
            return
        if len(me.seg_off) == me.segcap:
            if me.segcap >= self._max_segs:
                me.untraced += n
                return
            ncap = min(me.segcap * 2 if me.segcap else SEG_INIT, self._max_segs)
            grow = (ncap - me.segcap) * SEG_BYTES
            me.segcap = ncap
            c.mem += grow
            self.mem += grow
        me.seg_off.append(off)
        me.seg_len.append(n)
        me.seg_frame.append(fno)

    # -- output -----------------------------------------------------------------------------
    def _take_done(self) -> list[RawConn]:
        out = [self._raw(c) for c in self._done]
        self._done.clear()
        return out

    def _raw(self, c: _Conn) -> RawConn:
        dirs = []
        for me in c.d:
            seen = max(me.nxt, 0)
            n = min(seen, self._cap)
            have = min(n, me.dcap)
            bits = np.zeros((n + 7) // 8, np.uint8)
            packed = np.packbits(np.frombuffer(me.filled, np.uint8)[:have], bitorder="little")
            bits[:len(packed)] = packed
            dirs.append(RawDir(
                data=bytes(me.data[:have]) + bytes(n - have), filled_bits=bits,
                seg_off=np.array(me.seg_off, np.int64),
                seg_len=np.array(me.seg_len, np.int32),
                seg_frame=np.array(me.seg_frame, np.int64),
                seen_bytes=seen, before_start=me.before_start, untraced=me.untraced,
                isn=me.isn if me.has_isn else None,
                syn_frame=None if me.syn_frame < 0 else me.syn_frame,
                fin_frame=None if me.fin_frame < 0 else me.fin_frame,
                rst_frame=None if me.rst_frame < 0 else me.rst_frame,
                first_syn=me.first_syn))
        return RawConn(
            index=c.index, flow=c.flow, first_frame=c.first_frame, last_frame=c.last_frame,
            first_ts_ns=c.first_ts, last_ts_ns=c.last_ts, frames=c.frames,
            retransmissions=c.retrans, conflicting_overlaps=c.conflicts,
            keepalives=c.keepalives, zero_window_probes=c.zwp, out_of_order=c.ooo,
            evicted=c.evicted, first_dir=c.first_dir, syn_dir=c.syn_dir,
            synack_dir=c.synack_dir, after_first=c.after_first, after_rst=c.after_rst,
            zeek_cut=c.zcut, dirs=(dirs[0], dirs[1]))


def get_reassembler_core(backend: str, buf, *, cap: int, budget: int, max_open: int,
                         max_segments: int, linger_ns: int) -> ReassemblerCore:
    """Reassembler core for `backend` (auto/native/python), like get_walker for the walk."""
    kw = dict(cap=cap, budget=budget, max_open=max_open, max_segments=max_segments,
              linger_ns=linger_ns)
    if use_native(backend):
        return NativeReassemblerCore(buf, **kw)
    return PyReassemblerCore(buf, **kw)
