"""IP fragments of TCP segments, reassembled as Wireshark does with `ip.defragment` and
`ipv6.defragment` on (its default): the segment is read in the frame of the fragment that
completes its datagram, and a datagram never completed gives no segment at all.

Selection (`iter_selected`) keeps each fragment of TCP (the first ones on other ports too,
marked `FRAG_OTHER`: their datagrams are let go, while one whose first fragment never came
is counted as lost), and each fragment of UDP (whose datagram may be a VXLAN or Geneve
tunnel's, `tunnels`; but for those of a datagram let go within its window, which selection
leaves out), as one row among the selected frames, in frame order, marked by
`FRAG_ROW` in its flags.  The row's payload is the packet from its
source address to the end of the IP packet, so the bytes alone say which datagram it
belongs to: copied, carried and renumbered with the other rows, it reaches the process
that reassembles as every other row does.  There one `Defragmenter`, fed the rows in file
order, turns each completed datagram into one TCP segment.  So whatever the byte ranges or
workers, every scan sees the same datagrams.

The rows' other columns: `seq` the fragment's offset in bytes (for a first fragment: where
its TCP header begins within the datagram) in its low bits, and above PROTO_SHIFT its IP
protocol (IPv6: its fragment header's next header), `ack` the datagram's identification as Wireshark
keys it (for IPv4, XORed with the VLAN id it reads first, so datagrams of different VLANs
stay apart; IPv6 keys no VLAN), `window` where the fragment's data begins in the payload;
`flow` and `from_a` the TCP flow of a first fragment (its ports are known), -1 and False
for the others.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from .iproute import route_end

FRAG_ROW = 0x8000  # flags bits of a fragment row (a TCP segment's flags use 9)
FRAG_MF = 0x4000  # more fragments follow
FRAG_FIRST = 0x2000  # offset 0, on a selected port: `flow` and `from_a` are its TCP flow's
FRAG_V6 = 0x1000  # IPv6 (else IPv4)
FRAG_OTHER = 0x0800  # offset 0, on no selected port: its datagram is let go without a word
FRAG_UDP = 0x0400  # after the first, of UDP (maybe a VXLAN or Geneve packet's): its datagram
#                    is not counted lost when its first fragment never came; on a FRAG_OTHER
#                    row too, its first.  A datagram begun by such a row gives way first.

MAX_PENDING = 4096  # datagrams awaiting fragments; the oldest is given up
MAX_DATAGRAM = 65535  # bytes of a datagram's fragmentable part (a fragment past it is dropped)
MAX_FRAGMENTS = 1024  # fragments held per datagram; more are dropped
MAX_HELD = 32 << 20  # bytes held across pending datagrams; the oldest are given up
PIECE_COST = 128  # what holding one fragment costs besides its data, as MAX_HELD counts
MAX_AGE = 65536  # frames after its first fragment a datagram may still be completed in
PROTO_SHIFT = 24  # a row's `seq` holds its IP protocol from this bit, its offset below

NOT_COMPLETED = ("TCP segments on a selected port in IP fragments never completed "
                 "(not reassembled)")
HEADLESS = ("IP fragments of TCP whose first fragment was never seen (port unknown, "
            "not reassembled)")
BAD_HEADER = "malformed TCP header"  # as a whole frame's is counted
SNAPPED = ("IP fragments of TCP segments on a selected port cut by the snap length "
           "(not reassembled)")


@dataclass(frozen=True, slots=True)
class Datagram:
    """A completed datagram's TCP segment (header and data), in the completing frame."""

    frame_no: int
    ts_ns: int
    flow: int
    from_a: bool
    segment: bytes

    @property
    def usable(self) -> bool:
        """Whether its TCP header is whole (data offset 5 or more, within the segment): a
        datagram without one is counted (`BAD_HEADER`) and gives no segment, as a frame
        would not, yet it is on its port as Wireshark reads it."""
        return _header_ok(self.segment)


@dataclass(slots=True)
class _Pending:
    first_frame: int
    pieces: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, data), arrival
    # the bytes covered so far, as disjoint sorted spans [starts[i], ends[i])
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    held: int = 0
    end: int | None = None  # the datagram's length, once its last fragment came
    flow: int = -1  # the first fragment's TCP flow (-1: not seen yet)
    from_a: bool = False
    tcp_at: int = 0
    frames: int = 0  # fragment rows taken, counted when given up
    other: bool = False  # its first fragment is on no selected port: no data is kept
    late: bool = False  # begun after a datagram of its key was put together (late copies)
    udp: bool = False  # of UDP (FRAG_UDP): most such datagrams are no tunnel's, not counted
    proto: int = -1  # the IP protocol of its first fragment, as its flow was read


_Key = tuple[bool, bytes, int]  # IPv6, the addresses, the identification as keyed


def _key(flags: int, raw: bytes, ident: int, skip: int) -> _Key:
    """A row's datagram key, from its payload (`raw`, whose data begins at `skip`): an
    IPv4 one's destination is a source route's last address, as Wireshark reads it."""
    if flags & FRAG_V6:
        return True, raw[:32], ident
    end = route_end(raw[8:skip]) if skip > 8 else None
    return False, raw[:8] if end is None else raw[:4] + raw[8 + end:12 + end], ident


class Defragmenter:
    """Fragment rows (in frame order) in, completed datagrams out, with bounded memory.

    Overlapping fragments are put together as Wireshark does: in order of offset, bytes
    already filled are kept (so a lower offset wins, and at one offset the first copy).
    The datagram's length is set by the first fragment seen without MF; bytes past it are
    dropped.  Fragments of no data, and fragments cut by the snap length, are not taken (as
    Wireshark does not defragment them); a first fragment cut so is counted.  Datagrams
    given up are counted under `skipped` by their frames: those holding a first fragment on
    a selected port, and those whose first fragment never came (they may have been on one),
    unless a datagram of their key, not of UDP, was put together lately (they are its late
    copies) or they are of UDP (most of which carry no tunnel: DNS, NFS...).  A
    datagram put together with a malformed TCP header is counted too.

    Keys meet across protocols as Wireshark's do (an IPv4 identification XORed with its
    protocol, an IPv6 one alone), and Wireshark reads a datagram put together as the
    protocol of the fragment completing it: where that is not the protocol its first
    fragment was read as (an NFS fragment completing an EHLO's), it gives no segment.

    Over a bound, the datagram given up is the oldest of those begun by a fragment of UDP
    (FRAG_UDP), else of those whose first fragment is not there (fragments of TCP on other
    ports never get one), else the oldest; and a datagram of UDP finding the others at the
    bound is not begun.  So a datagram of UDP never pushes another out: selection leaves
    out the rows of one let go within its window only where a walk can tell (not in its
    first MAX_AGE frames, `selection._let_go_udp`), so whether they are fed depends on where
    a walk, a byte range or a ring file begins, and must change nothing for the others.
    Those it leaves out come first fragment first, and a datagram so begun (of UDP, on no
    selected port) is light: it holds no bytes and no bound weighs it, so it pushes none
    out, nor is pushed.  Light ones last MAX_AGE frames at most, begun one a frame."""

    def __init__(self) -> None:
        self._pending: OrderedDict[_Key, _Pending] = OrderedDict()
        # those the bounds weigh: all but the light ones (begun by a first fragment of UDP
        # on no selected port, which hold no bytes), oldest first
        self._weighed: OrderedDict[_Key, None] = OrderedDict()
        self._headless: OrderedDict[_Key, None] = OrderedDict()
        self._udp: OrderedDict[_Key, None] = OrderedDict()  # begun by a fragment of UDP
        # datagrams put together lately -> frame: fragments of theirs that come after are
        # copies (or past the length a last fragment set), not a datagram lost
        self._done: OrderedDict[_Key, int] = OrderedDict()
        self._held = 0
        self.skipped: Counter = Counter()  # reason -> frames, since taken (`take_skipped`)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def held(self) -> int:
        """Bytes accounted to the fragments held now: their data, and PIECE_COST each."""
        return self._held

    def take_skipped(self) -> Counter:
        """The frames given up since the last call, by reason."""
        out, self.skipped = self.skipped, Counter()
        return out

    def _victim(self) -> _Key:
        return next(iter(self._udp or self._headless or self._weighed))

    def _give_up(self, key: _Key) -> None:
        p = self._pending.pop(key)
        self._headless.pop(key, None)
        self._udp.pop(key, None)
        self._weighed.pop(key, None)
        self._held -= p.held
        if p.flow >= 0:
            self.skipped[NOT_COMPLETED] += p.frames
        elif not (p.other or p.late or p.udp):  # maybe on a selected port: it was lost
            self.skipped[HEADLESS] += p.frames

    def _expire(self, frame_no: int) -> None:
        while self._done and next(iter(self._done.values())) + MAX_AGE < frame_no:
            self._done.popitem(last=False)
        while self._pending:
            key, p = next(iter(self._pending.items()))
            if p.first_frame + MAX_AGE >= frame_no:
                break
            self._give_up(key)

    def passed(self, frame_no: int) -> None:
        """Frames up to `frame_no` are all read (a ring buffer file's end): the datagrams
        no later frame may complete (begun MAX_AGE frames before it or more) are given up
        now, so that each counts in the file whose frames ran out its age, not in a later
        one where the next fragment row, or the run's end, happens to come."""
        self._expire(frame_no + 1)

    def finish(self) -> None:
        """End of the capture: every datagram still pending is given up."""
        while self._pending:
            self._give_up(next(iter(self._pending)))

    def add(self, frame_no: int, ts_ns: int, flow: int, from_a: bool, flags: int,
            seq: int, ident: int, skip: int, raw: bytes, length: int) -> Datagram | None:
        """One fragment row: `raw` its captured payload (of `length` bytes on the wire),
        the other arguments its columns.  The datagram it completes, if any."""
        self._expire(frame_no)
        first = bool(flags & FRAG_FIRST)
        if flags & FRAG_OTHER:
            return self._other(frame_no, flags, ident, raw, length - skip, skip)
        if len(raw) < length or skip > length or length < (32 if flags & FRAG_V6 else 8):
            if first and len(raw) < length:
                self.skipped[SNAPPED] += 1
            return None
        data = raw[skip:length]
        proto, seq = seq >> PROTO_SHIFT, seq & ((1 << PROTO_SHIFT) - 1)
        offset = 0 if first else seq
        if not data or offset + len(data) > MAX_DATAGRAM:
            return None
        key = _key(flags, raw, ident, skip)
        p = self._pending_for(key, frame_no, flags)
        if p is None or len(p.pieces) >= MAX_FRAGMENTS or p.other and p.frames >= MAX_FRAGMENTS:
            return None
        p.frames += 1
        p.udp |= bool(flags & FRAG_UDP)
        if first and p.flow < 0 and not p.other:
            p.flow, p.from_a, p.tcp_at, p.proto = flow, from_a, seq, proto
            del self._headless[key]
        if not flags & FRAG_MF and p.end is None:
            p.end = offset + len(data)
        _cover(p, offset, offset + len(data))
        if p.other:  # none of ours: its bytes are not kept, only where they lie
            return self._let_go(key, p)
        p.pieces.append((offset, data))
        p.held += len(data) + PIECE_COST
        self._held += len(data) + PIECE_COST
        while self._held > MAX_HELD and self._weighed:
            victim = self._victim()
            self._give_up(victim)
            if victim == key:
                return None
        return self._complete(key, p, frame_no, ts_ns, proto)

    def _pending_for(self, key: _Key, frame_no: int, flags: int) -> _Pending | None:
        p = self._pending.get(key)
        if p is None:
            udp = bool(flags & FRAG_UDP)
            if udp and flags & FRAG_OTHER:  # light: it holds no bytes, nor weighs
                p = self._pending[key] = _Pending(frame_no)
                return p
            if udp and not self._udp and len(self._weighed) >= MAX_PENDING:
                return None  # the bound is reached by others: none is pushed out for it
            while len(self._weighed) >= MAX_PENDING:
                self._give_up(self._victim())
            p = self._pending[key] = _Pending(frame_no)
            p.late = key in self._done
            self._headless[key] = None
            self._weighed[key] = None
            if udp:
                self._udp[key] = None
        return p

    def _put_together(self, key: _Key, frame_no: int) -> None:
        p = self._pending.pop(key)
        self._headless.pop(key, None)
        self._udp.pop(key, None)
        self._weighed.pop(key, None)
        if p.udp:  # its late copies are of UDP, never counted; a TCP datagram is no copy
            return
        self._done.pop(key, None)
        self._done[key] = frame_no
        if len(self._done) > MAX_PENDING:
            self._done.popitem(last=False)

    def _other(self, frame_no: int, flags: int, ident: int, raw: bytes, size: int,
               skip: int) -> None:
        """A first fragment of TCP on no selected port: its datagram is dropped, and its
        later fragments with it, uncounted.  A first fragment seen before on a selected port
        stays (the first copy's bytes are the datagram's, as for any overlap)."""
        if len(raw) < (32 if flags & FRAG_V6 else 8) or size <= 0 or size > MAX_DATAGRAM:
            return None
        key = _key(flags, raw, ident, skip)
        p = self._pending_for(key, frame_no, flags)
        if p is None or p.flow >= 0 or p.frames >= MAX_FRAGMENTS:
            return None
        if not p.other:
            p.other = True
            self._held -= p.held
            p.held, p.pieces = 0, []
        p.frames += 1
        if not flags & FRAG_MF and p.end is None:
            p.end = size
        _cover(p, 0, size)
        return self._let_go(key, p)

    def _let_go(self, key: _Key, p: _Pending) -> None:
        """A datagram of no selected port is forgotten once all its bytes came."""
        if p.end is not None and p.starts[0] == 0 and p.ends[0] >= p.end:
            self._put_together(key, p.first_frame)
        return None

    def _complete(self, key: _Key, p: _Pending, frame_no: int, ts_ns: int,
                  proto: int) -> Datagram | None:
        if p.end is None or p.flow < 0 or p.starts[0] > 0 or p.ends[0] < p.end:
            return None  # not all there yet
        if proto != p.proto:  # read as another protocol (`Defragmenter`): no segment
            self._put_together(key, frame_no)
            self._held -= p.held
            return None
        pieces = sorted(p.pieces, key=lambda x: x[0])  # stable: arrival order at one offset
        out = bytearray(p.end)
        filled = 0
        for off, data in pieces:
            stop = min(off + len(data), p.end)
            if stop > filled:
                out[filled:stop] = data[filled - off:stop - off]
                filled = stop
        self._put_together(key, frame_no)
        self._held -= p.held
        seg = bytes(out[p.tcp_at:])
        if not _header_ok(seg):
            self.skipped[BAD_HEADER] += 1
        return Datagram(frame_no, ts_ns, p.flow, p.from_a, seg)

    def add_row(self, cols, i: int, buf) -> Datagram | None:
        """Fragment row i of `cols` (FrameCols or SelectedFrames-like columns: frame_no,
        ts_ns, flow, from_a, payload_file_off, and TCP columns in `cols` or `cols.tcp`),
        its payload read from `buf` as a reassembler reads it: no more than its captured
        length, its payload length and what `buf` holds."""
        t = getattr(cols, "tcp", cols)
        off, length = int(cols.payload_file_off[i]), int(t.payload_len[i])
        take = max(0, min(int(t.payload_caplen[i]), length, len(buf) - off))
        with memoryview(buf) as mv:
            raw = bytes(mv[off:off + take]) if off >= 0 else b""
        return self.add(int(cols.frame_no[i]), int(cols.ts_ns[i]), int(cols.flow[i]),
                        bool(cols.from_a[i]), int(t.flags[i]), int(t.seq[i]), int(t.ack[i]),
                        int(t.window[i]), raw, length)


def _cover(p: _Pending, a: int, b: int) -> None:
    """Bytes [a, b) of `p`'s datagram came: merged into its sorted disjoint spans."""
    i, j = bisect_left(p.ends, a), bisect_right(p.starts, b)  # spans it touches
    if i < j:
        a, b = min(a, p.starts[i]), max(b, p.ends[j - 1])
    p.starts[i:j], p.ends[i:j] = [a], [b]


def _header_ok(seg: bytes) -> bool:
    hl = (seg[12] >> 4) * 4 if len(seg) >= 20 else 0
    return 20 <= hl <= len(seg)
