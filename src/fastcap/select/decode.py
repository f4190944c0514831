"""Vectorized link/IP/TCP header decode for one window of frames.

Rows of the few common layouts are read at fixed offsets (`layouts`); the general decode below
handles every other row and is the reference those fixed reads must agree with.

Every step is a whole-array numpy operation over the rows still in play.  Python loops only over
small bounded sets: link types, VLAN depth (<= 4), IPv6 extension headers (<= 8), a few common
header offsets, and blocks/chunks of rows.

Speed comes from reading each row's cache lines once: on big windows a short sample decode finds
which (offset, width) fields the bulk of the rows will need, those are copied out chunk by chunk
while the chunk is in cache (`_prefetch`), and the decode then works on narrow contiguous columns,
a 64k-row block at a time so temporaries stay in cache too.  Rows whose header offsets differ
(VLAN or not, IPv4 or IPv6) are not split apart: each common offset is read as a column and
picked per row (`_Reader._per_row`); rare offsets gather bytes.

Results never depend on the slab width W: a row whose headers run past W but not past its caplen
is marked internally (`_WIDE`) and decoded again, by the same code, from a wider slab cut from
`buf`.  Bytes past caplen never matter: every field is used only after a caplen check covers it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from .iproute import route_end
from .layouts import Layout, parts
from .layouts import fields as layout_fields

__all__ = ["Headers", "Status", "TcpFields", "decode_headers", "decode_tcp"]


class Status(IntEnum):
    """Per-frame outcome; the first failing check in header order wins."""

    OK = 0
    UNSUPPORTED_LINKTYPE = 1
    TRUNCATED_L2 = 2  # link header cut by caplen
    NOT_IP = 3  # ARP, 802.3 length field, unknown NULL/LOOP family... (normal, not an error)
    TRUNCATED_L3 = 4  # IP header cut by caplen
    BAD_IP = 5  # wrong version, IHL < 5, total length < header
    TRUNCATED_L4 = 6  # TCP/UDP header or IPv6 extension chain cut
    BAD_L4 = 7  # TCP data offset < 5, or TCP/UDP header longer than the IP packet
    LONG_CHAIN = 8  # IPv6 extension chain longer than the _MAX_EXT headers walked


_WIDE = np.uint8(255)  # internal status: needs bytes past the slab width, re-read from buf

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12
LINKTYPE_RAW_14 = 14  # OpenBSD's DLT_RAW, as written in some files: Wireshark reads it as raw IP
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# linktype -> (offset of the protocol field, header length before any VLAN tag)
_ETHER_LIKE = {LINKTYPE_ETHERNET: (12, 14), LINKTYPE_LINUX_SLL: (14, 16),
               LINKTYPE_LINUX_SLL2: (0, 20)}


def ether_header_len(linktype: int) -> int:
    """Bytes before the first VLAN tag or payload of an Ethernet-like link type, else -1."""
    return _ETHER_LIKE.get(linktype, (0, -1))[1]


_SUPPORTED = (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL,
              LINKTYPE_LOOP, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_RAW, LINKTYPE_IPV4,
              LINKTYPE_IPV6)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
_TPIDS = (0x8100, 0x88A8, 0x9100)
_MAX_VLAN = 8
_MAX_EXT = 8
_WIDE_STEP = 512  # first re-read width for rows whose headers run past the slab
# Deepest byte any read can touch: 52 bytes of link header (SLL2 and 8 VLAN tags), 40 of IPv6,
# 8 extension headers of at most 2048 bytes each, then 20 bytes of TCP (IPv4's 60-byte header
# and 1,028-byte AH lie well inside).  The last re-read uses this width at most.
_MAX_HDR = 52 + 40 + _MAX_EXT * 2048 + 64

_PREFETCH_MIN_ROWS = 1 << 15  # smaller windows fit in cache; direct column reads are fine
_BLOCK = 1 << 16  # rows decoded together
_CHUNK = 4096  # rows per prefetch step: the chunk's cache lines stay in L2 while copied
_TCP_CHUNK = 32768  # decode_tcp rows per step
_SAMPLE = 256
_MIN_GROUP = 512  # (split groups) rows sharing an offset get strided column reads
_MAX_PICK = 4  # per-row offsets: values read as whole columns; rows at other offsets gather


def _lut(values: tuple[int, ...]) -> np.ndarray:
    t = np.zeros(256, bool)
    t[list(values)] = True
    t.flags.writeable = False
    return t


_IPPROTO_AH = 51
_EXT = _lut((0, 43, 44, 51, 60, 135, 139, 140))  # IPv6 headers the walk steps over
_NO_L4 = _lut((0, 43, 44, 50, 51, 59, 60, 135, 139, 140))  # ip_proto values with no L4 header

ALL = slice(None)
Sel = slice | np.ndarray  # ALL, or int64 row indices

_FMT = {"u1": np.dtype(np.uint8), "u2": np.dtype(">u2"), "u4": np.dtype(">u4"),
        "u8": np.dtype(">u8"), "l4": np.dtype("<u4")}
_NATIVE = {"u1": np.dtype(np.uint8), "u2": np.dtype(np.uint16), "u4": np.dtype(np.uint32),
           "u8": np.dtype(np.uint64), "l4": np.dtype(np.uint32)}


@dataclass
class Headers:
    """Decoded headers, one entry per frame of the window (see `decode_headers`)."""

    status: np.ndarray  # uint8 Status
    l3: np.ndarray  # uint8: 0 none, 4 IPv4, 6 IPv6
    ethertype: np.ndarray  # uint16 after VLAN tags; NULL/LOOP mapped; 0 for raw IP
    vlan_depth: np.ndarray  # uint8
    l3_off: np.ndarray  # int32, -1 if none
    ip_proto: np.ndarray  # uint8, after IPv6 extension headers
    l4_off: np.ndarray  # int32, -1 if none/unknown
    ip_end: np.ndarray  # int32 l3_off + length the IP header declares, -1 if none
    frag: np.ndarray  # uint8: 0 none, 1 first fragment, 2 non-first fragment
    sport: np.ndarray  # uint16, 0 unless has_ports
    dport: np.ndarray  # uint16
    has_ports: np.ndarray  # bool: TCP/UDP row whose first 4 L4 bytes were captured

    @classmethod
    def empty(cls, n: int) -> Headers:
        return cls(
            status=np.zeros(n, np.uint8), l3=np.zeros(n, np.uint8),
            ethertype=np.zeros(n, np.uint16), vlan_depth=np.zeros(n, np.uint8),
            l3_off=np.full(n, -1, np.int32), ip_proto=np.zeros(n, np.uint8),
            l4_off=np.full(n, -1, np.int32), ip_end=np.full(n, -1, np.int32),
            frag=np.zeros(n, np.uint8), sport=np.zeros(n, np.uint16),
            dport=np.zeros(n, np.uint16), has_ports=np.zeros(n, bool),
        )

    def __len__(self) -> int:
        return len(self.status)

    @property
    def is_tcp(self) -> np.ndarray:
        """TCP rows with ports captured (not a non-first fragment); status may still be bad."""
        return self.has_ports & (self.ip_proto == 6)

    @property
    def is_udp(self) -> np.ndarray:
        return self.has_ports & (self.ip_proto == 17)

    def _slice(self, start: int, stop: int) -> Headers:
        """Views of rows start:stop; writing through them fills this object."""
        return Headers(*(getattr(self, f.name)[start:stop] for f in fields(self)))

    def take(self, rows: np.ndarray) -> Headers:
        """The headers of the given rows (copies), in that order."""
        return Headers(*(getattr(self, f.name)[rows] for f in fields(self)))

    def _put(self, rows: np.ndarray, other: Headers) -> None:
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)


@dataclass
class TcpFields:
    """TCP details for selected rows.  Rows whose status is not OK (header cut or malformed)
    get addresses and ports only: the other fields are 0, payload_off = l4_off."""

    rows: np.ndarray  # int64 row indices into the window
    src_addr: np.ndarray  # uint8 (k, 16): IPv6, or IPv4 as ::ffff:a.b.c.d
    dst_addr: np.ndarray  # uint8 (k, 16)
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    seq: np.ndarray  # uint32
    ack: np.ndarray  # uint32
    flags: np.ndarray  # uint16, 9 bits FIN..NS
    window: np.ndarray  # uint16
    hdr_len: np.ndarray  # uint8, data offset * 4
    payload_off: np.ndarray  # int32, frame-relative
    payload_len: np.ndarray  # int32, ip_end - payload_off (Ethernet padding is not payload)
    payload_caplen: np.ndarray  # int32, payload bytes actually captured
    snapped: np.ndarray  # bool, payload_caplen < payload_len

    def __len__(self) -> int:
        return len(self.rows)


# --- byte access -------------------------------------------------------------------------------


class _Reader:
    """Reads a big-endian (or 'l4' little-endian) field of the rows `sel` at byte `pos`.

    A scalar `pos` reads one strided column (or a prefetched copy of it).  Per-row offsets
    mostly take a few values (VLAN or not, IPv4 or IPv6...): each common value is read as a
    column and picked per row, which beats splitting the rows; rarer offsets gather bytes from
    the flat slab.  Bytes at or past the slab width read as 0.  `seen`, when given, counts rows
    per (pos, fmt) so a sample decode can pick prefetch fields.
    """

    def __init__(self, slab: np.ndarray, cols: dict | None = None,
                 seen: Counter | None = None) -> None:
        self.slab = slab
        self.flat = slab.reshape(-1)
        self.n, self.width = slab.shape
        self.cols = cols or {}
        self.seen = seen

    def read(self, sel: Sel, pos: int | np.ndarray, fmt: str) -> np.ndarray:
        if isinstance(pos, np.ndarray):
            return self._per_row(sel, pos, fmt)
        pos = int(pos)
        col = self.cols.get((pos, fmt))
        if col is not None:
            return col[sel]
        if self.seen is not None:
            self.seen[(pos, fmt)] += self.n if isinstance(sel, slice) else len(sel)
        dt = _FMT[fmt]
        if pos + dt.itemsize <= self.width:
            view = np.ndarray((self.n,), dt, self.slab, pos, (self.width,))
            return view[sel].astype(_NATIVE[fmt], copy=False)
        count = self.n if isinstance(sel, slice) else len(sel)
        out = np.zeros(count, _NATIVE[fmt])
        for i in range(min(dt.itemsize, self.width - pos)):
            out |= self.slab[sel, pos + i].astype(out.dtype) << _shift(fmt, i)
        return out

    def _per_row(self, sel: Sel, pos: np.ndarray, fmt: str) -> np.ndarray:
        if not len(pos):
            return np.zeros(0, _NATIVE[fmt])
        vals, counts = np.unique(pos[::max(1, len(pos) // 64)], return_counts=True)
        out, hit = None, None
        for v in vals[np.argsort(-counts, kind="stable")[:_MAX_PICK]].tolist():
            col, m = self.read(sel, v, fmt), pos == v
            out, hit = (col, m) if out is None else (np.where(m, col, out), hit | m)
        if hit.all():
            return out
        i = np.flatnonzero(~hit)
        out = np.array(out)  # may be a prefetched column: never write into it
        out[i] = self._gather(_rows_of(sel, self.n)[i], pos[i], fmt)
        return out

    def _gather(self, rows: np.ndarray, pos: np.ndarray, fmt: str) -> np.ndarray:
        size = _FMT[fmt].itemsize
        if self.seen is not None:
            for p, c in zip(*np.unique(pos, return_counts=True), strict=True):
                self.seen[(int(p), fmt)] += int(c)
        start = rows * self.width + pos
        past = self.flat.size == 0 or int(pos.max()) + size > self.width
        out = np.zeros(len(rows), _NATIVE[fmt])
        for i in range(size):
            if past:
                b = self.flat[np.minimum(start + i, max(self.flat.size - 1, 0))] \
                    if self.flat.size else np.zeros(len(rows), np.uint8)
                b = np.where(pos + i < self.width, b, np.uint8(0))
            else:
                b = self.flat[start + i]
            out |= b.astype(out.dtype) << _shift(fmt, i)
        return out


def _shift(fmt: str, i: int) -> int:
    return 8 * i if fmt == "l4" else 8 * (_FMT[fmt].itemsize - 1 - i)


def _rows_of(sel: Sel, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) if isinstance(sel, slice) else sel


def _narrow(sel: Sel, mask: np.ndarray) -> Sel:
    """The rows of `sel` where `mask` (aligned with sel) holds; ALL stays ALL when it all holds."""
    if isinstance(sel, slice):
        return ALL if mask.all() else np.flatnonzero(mask)
    return sel[np.flatnonzero(mask)]  # (boolean indexing is several times slower)


def _select(mask: np.ndarray) -> Sel | None:
    if not mask.any():
        return None
    return ALL if mask.all() else np.flatnonzero(mask)


def _groups(sel: Sel, pos: np.ndarray, n: int, split: bool = False
            ) -> list[tuple[Sel, int | np.ndarray]]:
    """Rows and their header offset: one scalar when all agree, else per-row offsets (the reader
    copes), or with `split` big groups with scalar offsets plus a per-row remainder.

    Split candidates come from a strided sample, so at most 16 are tried.
    """
    p0 = int(pos[0])
    if (pos == p0).all():
        return [(sel, p0)]
    if not split:
        return [(sel, pos)]
    rows = _rows_of(sel, n)
    sample = pos[::max(1, len(pos) // 256)]
    vals, counts = np.unique(sample, return_counts=True)
    need = max(_MIN_GROUP, len(pos) >> 4)
    out: list[tuple[Sel, int | np.ndarray]] = []
    rest = np.ones(len(pos), bool)
    for v in vals[counts * 16 >= len(sample)].tolist():
        m = pos == v
        if np.count_nonzero(m) >= need:
            out.append((rows[np.flatnonzero(m)], v))
            rest &= ~m
    if rest.any():
        i = np.flatnonzero(rest)
        out.append((rows[i], pos[i]))
    return out


def _first_failure(m: int, checks: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """uint8 status of each row: the code of the first check (header order) that holds."""
    st = np.zeros(m, np.uint8)
    for cond, code in reversed(checks):
        if cond.any():
            np.putmask(st, cond, code)
    return st


def _wide(cap: np.ndarray, end: int | np.ndarray, width: int) -> np.ndarray | None:
    """Rows that must read up to `end` when that lies past the slab but inside caplen."""
    if int(np.max(end)) <= width:
        return None
    w = (end > width) & (cap > width)
    return w if w.any() else None


@dataclass
class _Ctx:
    rd: _Reader
    cap: np.ndarray  # int32 caplen
    h: Headers
    wire: np.ndarray | None = None  # int64 orig_len, when known (IPv4 total length 0: TSO)

    @property
    def width(self) -> int:
        return self.rd.width


# --- link layer --------------------------------------------------------------------------------


def _link(ctx: _Ctx, lt: np.ndarray) -> None:
    n = len(lt)
    first = int(lt[0])
    if (lt == first).all():
        groups = [(first, ALL)]
    else:
        groups, known = [], np.zeros(n, bool)
        for t in _SUPPORTED:
            m = lt == t
            if m.any():
                groups.append((t, np.flatnonzero(m)))
                known |= m
        ctx.h.status[~known] = Status.UNSUPPORTED_LINKTYPE
    for t, sel in groups:
        if t in _ETHER_LIKE:
            _ether_like(ctx, sel, *_ETHER_LIKE[t])
        elif t in (LINKTYPE_NULL, LINKTYPE_LOOP):
            _af_family(ctx, sel, t)
        elif t in (LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
            _raw(ctx, sel, t)
        else:
            ctx.h.status[sel] = Status.UNSUPPORTED_LINKTYPE


def _is_tpid(et: np.ndarray) -> np.ndarray:
    return (et == _TPIDS[0]) | (et == _TPIDS[1]) | (et == _TPIDS[2])


def _l3_of(et: np.ndarray) -> np.ndarray:
    return (et == ETH_IPV4).view(np.uint8) * np.uint8(4) \
        + (et == ETH_IPV6).view(np.uint8) * np.uint8(6)


def _ether_like(ctx: _Ctx, sel: Sel, et_pos: int, hlen: int) -> None:
    """Ethernet, SLL, SLL2: protocol field, then up to 4 stacked VLAN tags."""
    h, cap, width = ctx.h, ctx.cap[sel], ctx.width
    m = len(cap)
    et = ctx.rd.read(sel, et_pos, "u2")
    bad = cap < hlen  # TRUNCATED_L2
    wide = _wide(cap, hlen, width)
    depth = None
    l3 = _l3_of(et)
    ip = l3 != 0
    if not ip.all() and (tag := _is_tpid(et)).any():
        et, depth = et.copy(), np.zeros(m, np.uint8)
        wide = np.zeros(m, bool) if wide is None else wide.copy()
        idx = np.flatnonzero(tag & ~bad & ~wide)
        for i in range(_MAX_VLAN):
            end = hlen + 4 * (i + 1)  # this tag's TCI + the next protocol field
            c = cap[idx]
            cut = c < end
            w = _wide(c, end, width)
            if w is not None:
                wide[idx[np.flatnonzero(w)]] = True
                cut |= w
            if cut.any():
                bad[idx[np.flatnonzero(c < end)]] = True
                idx = idx[np.flatnonzero(~cut)]
            nxt = ctx.rd.read(_sub(sel, idx), end - 2, "u2")
            et[idx] = nxt
            depth[idx] = i + 1
            idx = idx[np.flatnonzero(_is_tpid(nxt))]
            if not idx.size:
                break
        if not wide.any():
            wide = None
        l3 = _l3_of(et)
        ip = l3 != 0
    drop = bad if wide is None else bad | wide
    if drop.any():
        et = np.where(drop, np.uint16(0), et)
        l3 = np.where(drop, np.uint8(0), l3)
        if depth is not None:
            depth = np.where(drop, np.uint8(0), depth)
        ip &= ~drop
    if not ip.all():  # status stays OK (0) on the IP rows
        st = (~ip).view(np.uint8) * np.uint8(Status.NOT_IP)
        np.putmask(st, bad, Status.TRUNCATED_L2)
        if wide is not None:
            np.putmask(st, wide, _WIDE)
        h.status[sel] = st
    h.ethertype[sel] = et
    h.l3[sel] = l3
    if depth is not None:
        h.vlan_depth[sel] = depth
    l3_off = hlen if depth is None else depth.astype(np.int32) * 4 + hlen
    if ip.all():
        h.l3_off[sel] = l3_off
    elif ip.any():
        i = np.flatnonzero(ip)
        h.l3_off[_sub(sel, i)] = l3_off if depth is None else l3_off[i]


def _sub(sel: Sel, idx: np.ndarray) -> np.ndarray:
    """Window rows for positions `idx` within the group `sel`."""
    return idx if isinstance(sel, slice) else sel[idx]


def _af_family(ctx: _Ctx, sel: Sel, t: int) -> None:
    """BSD NULL (family in the capturing host's byte order) and OpenBSD LOOP (big-endian)."""
    h, cap = ctx.h, ctx.cap[sel]
    fam = ctx.rd.read(sel, 0, "l4" if t == LINKTYPE_NULL else "u4")
    if t == LINKTYPE_NULL:
        swap = fam > 0xFFFF
        if swap.any():
            fam = np.where(swap, fam.byteswap(), fam)
    is4 = fam == 2
    is6 = (fam == 10) | (fam == 24) | (fam == 28) | (fam == 30)
    l3 = is4.view(np.uint8) * np.uint8(4) + is6.view(np.uint8) * np.uint8(6)
    et = is4.view(np.uint8) * np.uint16(ETH_IPV4) + is6.view(np.uint8) * np.uint16(ETH_IPV6)
    st = (l3 == 0).view(np.uint8) * np.uint8(Status.NOT_IP)
    bad = cap < 4
    wide = _wide(cap, 4, ctx.width)
    drop = bad if wide is None else bad | wide
    if drop.any():
        np.putmask(st, bad, Status.TRUNCATED_L2)
        if wide is not None:
            np.putmask(st, wide, _WIDE)
        l3 = np.where(drop, np.uint8(0), l3)
        et = np.where(drop, np.uint16(0), et)
    h.status[sel] = st
    h.ethertype[sel] = et
    h.l3[sel] = l3
    ip = l3 != 0
    if ip.any():
        h.l3_off[_narrow(sel, ip)] = 4


def _raw(ctx: _Ctx, sel: Sel, t: int) -> None:
    """Raw IP: 228/229 fix the version; 12/14/101 take it from the first nibble."""
    h = ctx.h
    if t == LINKTYPE_IPV4 or t == LINKTYPE_IPV6:
        h.l3[sel] = 4 if t == LINKTYPE_IPV4 else 6
        h.l3_off[sel] = 0
        return
    cap = ctx.cap[sel]
    nib = ctx.rd.read(sel, 0, "u1") >> 4
    l3 = (nib == 4).view(np.uint8) * np.uint8(4) + (nib == 6).view(np.uint8) * np.uint8(6)
    bad = cap < 1
    wide = _wide(cap, 1, ctx.width)
    st = _first_failure(len(cap), [(bad, Status.TRUNCATED_L3), (l3 == 0, Status.BAD_IP)])
    if wide is not None:
        np.putmask(st, wide, _WIDE)
    l3 = np.where(st != 0, np.uint8(0), l3)
    h.status[sel] = st
    h.l3[sel] = l3
    ip = l3 != 0
    if ip.any():
        h.l3_off[_narrow(sel, ip)] = 0


# --- network layer -----------------------------------------------------------------------------


def _network(ctx: _Ctx) -> None:
    h = ctx.h
    ok = h.status == 0
    for version, fn in ((4, _ipv4), (6, _ipv6)):
        sel = _select(ok & (h.l3 == version))
        if sel is not None:
            for g, off in _groups(sel, h.l3_off[sel], len(h)):
                fn(ctx, g, off)


def _ipv4(ctx: _Ctx, sel: Sel, off: int | np.ndarray) -> None:
    h, rd, cap = ctx.h, ctx.rd, ctx.cap[sel]
    # The first 8 bytes as one word (IPv6 reads the same one: a v4/v6 mix shares the column).
    w = rd.read(sel, off, "u8")  # version/IHL, TOS, total length, ident, flags/frag offset
    proto = rd.read(sel, off + 9, "u1")
    vhl = (w >> 56).astype(np.uint8)
    tot = ((w >> 32) & 0xFFFF).astype(np.int32)
    if ctx.wire is not None and not tot.all():
        # A capture on a host with TCP segmentation offload holds the segment before the NIC
        # fills in its length: Wireshark (ip.tso_support, on by default) takes the frame's.
        room = np.clip(ctx.wire[sel] - off, 0, 0x7FFFFFFF).astype(np.int32)
        tot = np.where(tot == 0, room, tot)
    if (vhl == 0x45).all():  # the usual header: version 4, no options
        ihl: int | np.ndarray = 20
        checks = [(cap < off + 20, Status.TRUNCATED_L3), (tot < 20, Status.BAD_IP)]
    else:
        ihl = (vhl & 0x0F).astype(np.int32) * 4
        checks = [
            (cap <= off, Status.TRUNCATED_L3),
            ((vhl >> 4) != 4, Status.BAD_IP),
            (cap < off + 20, Status.TRUNCATED_L3),
            (ihl < 20, Status.BAD_IP),
            (cap < off + ihl, Status.TRUNCATED_L3),
            (tot < ihl, Status.BAD_IP),
        ]
    i = _mark(ctx, sel, _first_failure(len(cap), checks), cap, off + 10)
    if i is not None:
        if not i.size:
            return
        sel = _sub(sel, i)
        tot, w, proto = tot[i], w[i], proto[i]
        if isinstance(ihl, np.ndarray):
            ihl = ihl[i]
        if isinstance(off, np.ndarray):
            off = off[i]
    h.ip_proto[sel] = proto
    h.ip_end[sel] = tot + off
    l4 = ihl + off
    x = (w & 0x3FFF).astype(np.uint16)  # MF + offset: 0 whole, MF alone first, else non-first
    if x.any():
        frag = (x != 0).view(np.uint8) * np.uint8(2) - (x == 0x2000).view(np.uint8)
        h.frag[sel] = frag
        l4 = np.where(frag == 2, np.int32(-1), l4)
    h.l4_off[sel] = l4
    if (proto == _IPPROTO_AH).any():
        _ipv4_ah(ctx, _rows_of(sel, len(h)), proto, np.broadcast_to(l4, proto.shape))


def _ipv4_ah(ctx: _Ctx, rows: np.ndarray, proto: np.ndarray, l4: np.ndarray) -> None:
    """Step over IPv4's Authentication Header (RFC 4302), as IPv6's chain steps over it:
    Wireshark reads the TCP segment after it (transport mode), or the IP packet (tunnel mode,
    which `tunnels` opens).  An AH cut short, or longer than its packet, stays `ip_proto` 51."""
    h = ctx.h
    j = np.flatnonzero((proto == _IPPROTO_AH) & (l4 >= 0))
    if not len(j):  # only fragments after the first: no header to step over
        return
    r, p = rows[j], l4[j].astype(np.int32)
    c = ctx.cap[r]
    w = _wide(c, p + 2, ctx.width)
    if w is not None:  # decoded again from a wider slab
        h.status[r[w]] = _WIDE
        r, p, c = r[~w], p[~w], c[~w]
    have = c >= p + 2
    r, p = r[have], p[have]
    nxt = ctx.rd.read(r, p, "u1")
    end = p + ((ctx.rd.read(r, p + 1, "u1").astype(np.int32) + 2) << 2)
    ok = end <= h.ip_end[r]
    r, nxt, end = r[ok], nxt[ok], end[ok]
    h.ip_proto[r] = nxt
    h.l4_off[r] = np.where(_NO_L4[nxt], np.int32(-1), end)


def _mark(ctx: _Ctx, sel: Sel, st: np.ndarray, cap: np.ndarray,
          need_end: int | np.ndarray) -> np.ndarray | None:
    """Record failed checks (and rows whose header runs past the slab) in h.status.

    Returns None when every row passed, else the indices (within sel) of the rows that did.
    """
    wide = _wide(cap, need_end, ctx.width)
    if wide is not None:
        np.putmask(st, wide, _WIDE)
    if not st.any():
        return None
    ctx.h.status[sel] = st
    return np.flatnonzero(st == 0)


def _ipv6(ctx: _Ctx, sel: Sel, off: int | np.ndarray) -> None:
    h, rd, cap = ctx.h, ctx.rd, ctx.cap[sel]
    w = rd.read(sel, off, "u8")  # version, class, flow label, payload length, next, hops
    plen = ((w >> 16) & 0xFFFF).astype(np.int32)
    nh = (w >> 8).astype(np.uint8)
    st = _first_failure(len(cap), [
        (cap <= off, Status.TRUNCATED_L3),
        ((w >> 60) != 6, Status.BAD_IP),
        (cap < off + 40, Status.TRUNCATED_L3),
    ])
    i = _mark(ctx, sel, st, cap, off + 8)
    if i is not None:
        if not i.size:
            return
        sel = _sub(sel, i)
        plen, nh, cap = plen[i], nh[i], cap[i]
        if isinstance(off, np.ndarray):
            off = off[i]
    h.ip_end[sel] = plen + (off + 40)
    ext = _EXT[nh]
    if not ext.any():
        h.ip_proto[sel] = nh
        l4 = off + 40
        stop = _NO_L4[nh]
        if stop.any():
            l4 = np.where(stop, np.int32(-1), np.int32(l4) if np.ndim(l4) == 0 else l4)
        h.l4_off[sel] = l4
        return
    # Walk the extension chain of the rows that have one; each step shrinks the set.
    m = len(nh)
    first, nh = nh, nh.copy()
    pos = np.zeros(m, np.int32) + (off + 40)
    frag = np.zeros(m, np.uint8)
    st = np.zeros(m, np.uint8)
    rows = _rows_of(sel, len(h))
    idx = np.flatnonzero(ext)
    for _ in range(_MAX_EXT):
        r, p, c, t = rows[idx], pos[idx], cap[idx], nh[idx]
        nxt = rd.read(r, p, "u1")
        hl = rd.read(r, p + 1, "u1").astype(np.int32)
        fo = rd.read(r, p + 2, "u2")
        isfrag = t == 44
        size = np.where(isfrag, 8, np.where(t == 51, (hl + 2) << 2, (hl + 1) << 3))
        cut = c < p + size
        w = _wide(c, p + 4, ctx.width)
        if w is not None:
            st[idx[np.flatnonzero(w)]] = _WIDE
            cut &= ~w
        st[idx[np.flatnonzero(cut)]] = Status.TRUNCATED_L4
        go = ~cut if w is None else ~cut & ~w
        nonfirst = go & isfrag & (fo >= 8)
        frag[idx[np.flatnonzero(go & isfrag & (fo < 8) & ((fo & 1) == 1))]] = 1
        frag[idx[np.flatnonzero(nonfirst)]] = 2
        g = np.flatnonzero(go)
        nh[idx[g]] = nxt[g]
        pos[idx[g]] = p[g] + size[g]
        idx = idx[np.flatnonzero(go & ~nonfirst)]
        idx = idx[np.flatnonzero(_EXT[nh[idx]])]
        if not idx.size:
            break
    else:
        st[idx] = Status.LONG_CHAIN  # longer chain than we walk: not cut, not decoded
    if (j := np.flatnonzero((plen == 0) & (first == 0) & (st == 0))).size:
        _jumbo(ctx, sel, j, off, cap, st)
    l4 = np.where(_NO_L4[nh] | (frag == 2) | (st != 0), np.int32(-1), pos)
    if st.any():
        i = np.flatnonzero(st)
        h.status[_sub(sel, i)] = st[i]
    h.ip_proto[sel] = nh
    h.frag[sel] = frag
    h.l4_off[sel] = l4


def _jumbo(ctx: _Ctx, sel: Sel, j: np.ndarray, off: int | np.ndarray, cap: np.ndarray,
           st: np.ndarray) -> None:
    """A jumbogram (RFC 2675: payload length 0, a Jumbo Payload option first in the hop-by-hop
    header, as Linux's BIG TCP sends) is as long as that option says, as Wireshark reads it.

    `j` are the rows (within sel) of payload length 0 whose chain, starting with hop-by-hop,
    was walked (so its first 8 bytes are captured); rows whose option lies past the slab are
    marked in `st` to be read again."""
    p = (off if np.ndim(off) == 0 else off[j]) + 40
    c = cap[j]
    w = _wide(c, p + 8, ctx.width)
    if w is not None:
        st[j[np.flatnonzero(w)]] = _WIDE
        keep = np.flatnonzero(~w)
        j, c, p = j[keep], c[keep], p if np.ndim(p) == 0 else p[keep]
    if not j.size:
        return
    r = _sub(sel, j)
    opt = ctx.rd.read(r, p + 2, "u2")  # option type 0xC2, length 4
    size = ctx.rd.read(r, p + 4, "u4").astype(np.int64)
    ok = (opt == 0xC204) & (size > 0xFFFF)  # under 64 KiB is no valid jumbogram
    if ok.any():
        k = np.flatnonzero(ok)
        end = np.minimum(size[k] + p if np.ndim(p) == 0 else size[k] + p[k], 0x7FFFFFFF)
        ctx.h.ip_end[r[k]] = end.astype(np.int32)


# --- transport layer ---------------------------------------------------------------------------


def _transport(ctx: _Ctx) -> None:
    h = ctx.h
    p = h.ip_proto
    sel = _select((h.status == 0) & (h.l4_off >= 0) & ((p == 6) | (p == 17)))
    if sel is not None:
        for g, off in _groups(sel, h.l4_off[sel], len(h)):
            _l4(ctx, g, off)


def _l4(ctx: _Ctx, sel: Sel, off: int | np.ndarray) -> None:
    h, rd, cap = ctx.h, ctx.rd, ctx.cap[sel]
    tcp = h.ip_proto[sel] == 6
    all_tcp = bool(tcp.all())
    ip_end = h.ip_end[sel]
    ports = rd.read(sel, off, "u4")
    hl = (rd.read(sel, off + 12, "u1") >> 4).astype(np.int32) * 4
    if all_tcp:
        end = hl + off
        cut = cap < off + 20
        checks = [(cut, Status.TRUNCATED_L4), (hl < 20, Status.BAD_L4),
                  (end > ip_end, Status.BAD_L4), (cap < end, Status.TRUNCATED_L4)]
    else:
        end = np.where(tcp, hl, 8) + off
        cut = cap < np.where(tcp, 20, 8) + off
        checks = [(cut, Status.TRUNCATED_L4), (tcp & (hl < 20), Status.BAD_L4),
                  (end > ip_end, Status.BAD_L4), (cap < end, Status.TRUNCATED_L4)]
    st = _first_failure(len(cap), checks)
    has = cap >= off + 4 if cut.any() else None  # None: all ports captured
    wide = _wide(cap, off + 13, ctx.width)
    if wide is not None:
        np.putmask(st, wide, _WIDE)
        has = ~wide if has is None else has & ~wide
    if st.any():
        h.status[sel] = st
    sport = (ports >> 16).astype(np.uint16)
    dport = ports.astype(np.uint16)
    if has is not None and not has.all():
        sport = np.where(has, sport, np.uint16(0))
        dport = np.where(has, dport, np.uint16(0))
    h.sport[sel] = sport
    h.dport[sel] = dport
    h.has_ports[sel] = True if has is None else has


# --- driver ------------------------------------------------------------------------------------


def _run(rd: _Reader, cap: np.ndarray, lt: np.ndarray, h: Headers,
         wire: np.ndarray | None = None) -> None:
    if len(cap):
        ctx = _Ctx(rd, cap, h, wire)
        _link(ctx, lt)
        _network(ctx)
        _transport(ctx)


def _hot_fields(slab: np.ndarray, cap: np.ndarray, lt: np.ndarray) -> list[tuple[int, str]]:
    """Fields (offset, format) that a sample of the window reads for at least 1/8 of its rows."""
    idx = np.unique(np.linspace(0, len(cap) - 1, _SAMPLE).astype(np.int64))
    rd = _Reader(np.ascontiguousarray(slab[idx]), seen=Counter())
    _run(rd, cap[idx], lt[idx], Headers.empty(len(idx)))
    return [k for k, c in rd.seen.items() if c * 8 >= len(idx)]


def _prefetch(slab: np.ndarray, keys: list[tuple[int, str]]) -> dict:
    """Copy the given fields of every row out as native columns, one cache-sized chunk at a
    time, so each row's cache lines come from memory once."""
    n, width = slab.shape
    cols = {k: np.empty(n, _NATIVE[k[1]]) for k in keys if k[0] + _FMT[k[1]].itemsize <= width}
    if not cols:
        return cols
    items = [(pos, _FMT[fmt], col) for (pos, fmt), col in cols.items()]
    for s in range(0, n, _CHUNK):
        sub = slab[s:s + _CHUNK]
        m = len(sub)
        for pos, dt, col in items:
            np.copyto(col[s:s + m], np.ndarray((m,), dt, sub, pos, (width,)))
    return cols


def _decode(slab: np.ndarray, cap: np.ndarray, lt: np.ndarray, prefetch: bool,
            wire: np.ndarray | None = None) -> Headers:
    """Decode block by block so each block's narrow temporaries stay in cache; the prefetch
    fields are chosen once per window."""
    n = len(cap)
    h = Headers.empty(n)
    keys = _hot_fields(slab, cap, lt) if prefetch and n else []
    for s in range(0, n, _BLOCK):
        sub = slab[s:s + _BLOCK]
        rd = _Reader(sub, _prefetch(sub, keys) if keys else None)
        _run(rd, cap[s:s + _BLOCK], lt[s:s + _BLOCK], h._slice(s, s + _BLOCK),
             None if wire is None else wire[s:s + _BLOCK])
    return h


def _as_cap(caplen: np.ndarray) -> np.ndarray:
    """caplen as int32 (a view when possible); absurd values clamp at 2**31 - 1."""
    c = np.asarray(caplen)
    if c.dtype == np.uint32 or c.dtype == np.int32:
        v = c.view(np.int32)
        if not len(v) or v.min() >= 0:
            return v
    return np.clip(c.astype(np.int64), 0, 0x7FFFFFFF).astype(np.int32)


def _check(slab: np.ndarray, caplen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    slab = np.asarray(slab)
    if slab.dtype != np.uint8 or slab.ndim != 2:
        raise ValueError("slab must be a 2-D uint8 array")
    if len(np.asarray(caplen)) != len(slab):
        raise ValueError("caplen and slab disagree on the number of rows")
    return np.ascontiguousarray(slab), _as_cap(caplen)


def _cut_rows(buf: np.ndarray, start: np.ndarray, width: int, limit: np.ndarray) -> np.ndarray:
    """(k, width) bytes buf[start:start+width] per row, zero at and past each row's `limit`
    (a count of bytes from start).  Batched so the index matrix stays small."""
    k = len(start)
    out = np.zeros((k, width), np.uint8)
    if not k or not width:
        return out
    if int((start + np.minimum(limit, width)).max()) > len(buf):
        raise ValueError("a frame runs past the end of buf (offset/caplen disagree with buf)")
    col = np.arange(width, dtype=np.int64)
    step = max(1, (1 << 22) // width)
    last = len(buf) - 1
    for s in range(0, k, step):
        idx = start[s:s + step, None] + col
        keep = col < limit[s:s + step, None]
        if last < 0:
            continue
        np.minimum(idx, last, out=idx)
        out[s:s + step] = np.where(keep, buf[idx], np.uint8(0))
    return out


def _buf_args(buf: np.ndarray | None, offset: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if buf is None or offset is None:
        raise ValueError("headers run past the slab width: pass buf and offset to re-read them")
    buf = np.asarray(buf)
    if buf.dtype != np.uint8 or buf.ndim != 1:
        raise ValueError("buf must be a 1-D uint8 array")
    return buf, np.asarray(offset, dtype=np.int64)


def decode_headers(slab: np.ndarray, caplen: np.ndarray, linktype: np.ndarray, *,
                   buf: np.ndarray | None = None,
                   offset: np.ndarray | None = None,
                   orig_len: np.ndarray | None = None) -> Headers:
    """Decode link, IP and TCP/UDP headers of every row of a window.

    `slab` (n, W) uint8 holds the first min(caplen, W) bytes of each frame.  Rows whose headers
    run past W (but not past caplen) are re-read from `buf[offset:]`; without buf that raises.
    Rows of a common layout (`layouts`) are read at fixed offsets, the others decoded in full.
    """
    slab, cap = _check(slab, caplen)
    lt = _as_linktype(linktype, len(cap))
    h = Headers.empty(len(cap))
    common = np.zeros(len(cap), bool)
    found: dict[Layout, list[np.ndarray]] = {}
    for part in parts(slab, cap, lt):
        rows = part.window_rows(np.flatnonzero(part.ok))
        found.setdefault(part.layout, []).append(rows)
        common[rows] = True
    for lay, rows_ in found.items():
        rows = np.concatenate(rows_)
        fill_common(h, rows, slab, rows, lay)
    rest = np.flatnonzero(~common)
    if rest.size:
        off = None if offset is None else np.asarray(offset)[rest]
        sub = slab if rest.size == len(cap) else slab[rest]
        wire = None if orig_len is None else np.asarray(orig_len)[rest]
        h._put(rest, _decode_general(sub, cap[rest], lt[rest], buf, off, wire))
    return h


def _as_linktype(linktype: np.ndarray, n: int) -> np.ndarray:
    lt = np.asarray(linktype).astype(np.int32, copy=False)
    if len(lt) != n:
        raise ValueError("linktype and slab disagree on the number of rows")
    return lt


def fill_common(h: Headers, dst: np.ndarray, slab: np.ndarray, rows: np.ndarray,
                lay: Layout) -> None:
    """Write into entries `dst` of h the headers of window rows `rows`, which have layout
    `lay` (status and frag stay OK and 0, as Headers.empty has them)."""
    if len(rows):
        for name, value in layout_fields(slab, rows, lay).items():
            getattr(h, name)[dst] = value


def _decode_general(slab: np.ndarray, cap: np.ndarray, lt: np.ndarray, buf, offset,
                    wire: np.ndarray | None = None) -> Headers:
    """Every link type and layout, with re-reads past the slab width (see decode_headers);
    `wire`, each frame's orig_len, gives an IPv4 total length of 0 its TSO meaning."""
    n, width = slab.shape
    if wire is not None:
        wire = np.asarray(wire).astype(np.int64)
    h = _decode(slab, cap, lt, prefetch=n >= _PREFETCH_MIN_ROWS, wire=wire)
    while True:
        rows = np.flatnonzero(h.status == _WIDE)
        if not rows.size:
            return h
        if width >= _MAX_HDR:
            raise AssertionError("headers deeper than the deepest supported chain")
        buf_, off = _buf_args(buf, offset)
        c = cap[rows]
        # _WIDE implies caplen > width, so each round widens; two rounds cover any chain.
        width = int(min(c.max(), _WIDE_STEP if width < _WIDE_STEP else _MAX_HDR))
        wide = _cut_rows(buf_, off[rows], width, c.astype(np.int64))
        h._put(rows, _decode(wide, c, lt[rows], prefetch=False,
                             wire=None if wire is None else wire[rows]))


# --- TCP details -------------------------------------------------------------------------------


def _slices(slab: np.ndarray, rows: np.ndarray, start: int, length: int) -> np.ndarray:
    """slab[rows, start:start+length] as (k, length), each row copied as one void item."""
    n, width = slab.shape
    items = np.ndarray((n,), np.dtype((np.void, length)), slab, start, (width,))
    return items[rows].view(np.uint8).reshape(len(rows), length)


def _block(slab: np.ndarray, cap: np.ndarray, rows: np.ndarray, start: np.ndarray, length: int,
           buf: np.ndarray | None, offset: np.ndarray | None) -> np.ndarray:
    """(k, length) bytes of each row from frame offset `start`; bytes past the slab width come
    from buf (zero past caplen).  Callers only use bytes caplen covers."""
    n, width = slab.shape
    k = len(rows)
    if not k:
        return np.zeros((0, length), np.uint8)
    s0 = int(start[0])
    if s0 + length <= width and (start == s0).all():
        return _slices(slab, rows, s0, length)
    out = np.zeros((k, length), np.uint8)
    c = cap[rows].astype(np.int64)
    start = start.astype(np.int64)
    inside = start + length <= width
    far = np.flatnonzero(~inside)
    beyond = c[far] > width
    if beyond.any():
        b, off = _buf_args(buf, offset)
        f = far[beyond]
        out[f] = _cut_rows(b, off[rows[f]] + start[f], length, c[f] - start[f])
    f = far[~beyond]  # the slab holds all that caplen allows
    if f.size:
        out[f] = _cut_rows(slab.reshape(-1), rows[f] * width + start[f], length,
                           np.minimum(c[f], width) - start[f])
    sel = _select(inside)
    if sel is not None:
        for g, pos in _groups(sel, start[sel], k, split=True):
            if isinstance(pos, np.ndarray):
                out[g] = _cut_rows(slab.reshape(-1), rows[g] * width + pos, length,
                                   np.full(len(pos), length))
            else:
                out[g] = _slices(slab, rows[g], pos, length)
    return out


_FFFF0000 = np.frombuffer(b"\0\0\xff\xff", np.uint32)[0]  # bytes 8..11 of ::ffff:a.b.c.d


def _routed(dst: np.ndarray, slab: np.ndarray, cap: np.ndarray, rows: np.ndarray,
            l3: np.ndarray, at: np.ndarray, buf: np.ndarray | None,
            offset: np.ndarray | None) -> None:
    """Put into `dst` rows `at` the destination of their IPv4 headers (at frame byte `l3`
    of frames `rows`) where a source route names another (`iproute.route_end`)."""
    blk = _block(slab, cap, rows, l3.astype(np.int64), 60, buf, offset)
    room = cap[rows].astype(np.int64) - l3
    for i in range(len(at)):
        ihl = int(blk[i, 0] & 0x0F) * 4
        end = route_end(blk[i, 20:ihl].tobytes()) if ihl <= room[i] else None
        if end is not None:
            dst[at[i], 12:16] = blk[i, 20 + end:24 + end]


def _addresses(src32: np.ndarray, dst32: np.ndarray, at: Sel, blk: np.ndarray, v6: bool) -> None:
    """Copy source/destination addresses from the start of each block row, word by word."""
    m, width = blk.shape
    if not m:
        return
    words = 4 if v6 else 1
    for j in range(words):
        for out, base in ((src32, 0), (dst32, 4 * words)):
            out[at, 4 - words + j] = np.ndarray((m,), np.uint32, blk, base + 4 * j, (width,))


def _be(blk: np.ndarray, pos: int, fmt: str) -> np.ndarray:
    """Native copy of the big-endian field at byte `pos` of every row of a (k, L) block."""
    k, width = blk.shape
    if not k:
        return np.zeros(0, _NATIVE[fmt])
    return np.ndarray((k,), _FMT[fmt], blk, pos, (width,)).astype(_NATIVE[fmt])


_LAYOUT_GROUPS = 8  # decode_tcp: layouts read as blocks; rows of any other go field by field


def _layout_groups(key: np.ndarray) -> list[tuple[Sel, int | None]]:
    """Rows by layout key: each of the few keys a strided sample shows gets its own group
    (scalar key, one block read); rows of the keys it missed come last, with None."""
    k0 = int(key[0])
    if (key == k0).all():
        return [(ALL, k0)]
    vals, counts = np.unique(key[::max(1, len(key) // 256)], return_counts=True)
    out: list[tuple[Sel, int | None]] = []
    rest = np.ones(len(key), bool)
    for v in vals[np.argsort(-counts, kind="stable")[:_LAYOUT_GROUPS]].tolist():
        m = key == v
        out.append((np.flatnonzero(m), v))
        rest &= ~m
    if rest.any():
        out.append((np.flatnonzero(rest), None))
    return out


def decode_tcp(slab: np.ndarray, caplen: np.ndarray, headers: Headers, rows: np.ndarray, *,
               buf: np.ndarray | None = None, offset: np.ndarray | None = None,
               aligned: bool = False, orig_len: np.ndarray | None = None) -> TcpFields:
    """TCP fields, addresses and payload extent of the given rows (which must be `is_tcp`).

    With `orig_len` (each window row's length on the wire), the payload ends where the frame
    does when the IP header claims more, as Wireshark's does.

    `headers` describe the whole window, or with `aligned` just `rows` (headers[i] is row
    rows[i]), as when only some rows were decoded.
    Rows go in cache-sized chunks; when a chunk shares one layout (IP version and distance from
    the addresses to the TCP header) each row's header bytes come out as one block.
    """
    slab, cap = _check(slab, caplen)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    k = len(rows)
    if aligned and len(headers) != k:
        raise ValueError("aligned headers must have one entry per row")
    if not (headers.is_tcp if aligned else headers.is_tcp[rows]).all():
        raise ValueError("decode_tcp rows must be TCP rows (Headers.is_tcp)")
    cat = ALL if k == len(cap) and (rows == np.arange(k)).all() else rows  # skip the gathers
    at = ALL if aligned else cat  # the rows' entries in headers
    v6 = headers.l3[at] == 6
    lo = headers.l3_off[at] + np.where(v6, 8, 12).astype(np.int32)  # first address byte
    l4o = headers.l4_off[at]
    # layout: where the block starts, the TCP offset within it, and the version
    key = (lo.astype(np.int64) << 32) | ((l4o - lo) * 2 + v6).astype(np.int64)
    src = np.zeros((k, 16), np.uint8)
    dst = np.zeros((k, 16), np.uint8)
    src32, dst32 = src.view(np.uint32), dst.view(np.uint32)  # (k, 4): one word per column
    seq, ack = np.empty(k, np.uint32), np.empty(k, np.uint32)
    off_flags, window = np.empty(k, np.uint16), np.empty(k, np.uint16)
    for s in range(0, k, _TCP_CHUNK):
        e = min(k, s + _TCP_CHUNK)
        part = slice(s, e)
        for g, lay in _layout_groups(key[part]):
            ix = part if isinstance(g, slice) else s + g
            if lay is not None:  # one layout: addresses and TCP header in one block
                d = (lay & 0xFFFFFFFF) >> 1
                blk = _block(slab, cap, rows[ix], lo[ix], d + 20, buf, offset)
                _addresses(src32, dst32, ix, blk, bool(lay & 1))
            else:  # rows of rare layouts: addresses and TCP header as separate blocks
                d = 0
                blk = _block(slab, cap, rows[ix], l4o[ix], 20, buf, offset)
                for six in (False, True):
                    i = ix[np.flatnonzero(v6[ix] == six)]
                    if i.size:
                        a = _block(slab, cap, rows[i], lo[i], 32 if six else 8, buf, offset)
                        _addresses(src32, dst32, i, a, six)
            seq[ix] = _be(blk, d + 4, "u4")
            ack[ix] = _be(blk, d + 8, "u4")
            off_flags[ix] = _be(blk, d + 12, "u2")
            window[ix] = _be(blk, d + 14, "u2")
    v4 = _select(~v6)
    if v4 is not None:  # ::ffff:a.b.c.d
        src32[v4, 2] = dst32[v4, 2] = _FFFF0000
    # IPv4 options (rare): a source route's last address is the destination, as Wireshark
    # reads it (`iproute`)
    opt = np.flatnonzero(~v6 & (l4o - lo > 8))
    if opt.size:
        _routed(dst, slab, cap, rows[opt], headers.l3_off[at][opt], opt, buf, offset)
    hdr_len = ((off_flags >> 12) << 2).astype(np.uint8)
    flags = off_flags & 0x1FF
    ip_end, c = headers.ip_end[at], cap[cat]
    if orig_len is not None:
        wire = np.maximum(np.asarray(orig_len)[cat].astype(np.int64), c)  # never below caplen
        ip_end = np.minimum(ip_end, np.minimum(wire, 0x7FFFFFFF)).astype(np.int32)
    payload_off = l4o + hdr_len
    payload_len = ip_end - payload_off
    payload_caplen = np.maximum(np.minimum(ip_end, c) - payload_off, 0)
    bad = headers.status[at] != Status.OK
    if bad.any():  # header cut or malformed: only addresses and ports are meaningful
        for a in (seq, ack, flags, window, hdr_len, payload_len, payload_caplen):
            np.putmask(a, bad, 0)
        payload_off = np.where(bad, l4o, payload_off)
    return TcpFields(
        rows=rows, src_addr=src, dst_addr=dst,
        sport=headers.sport[at].copy(), dport=headers.dport[at].copy(),
        seq=seq, ack=ack, flags=flags, window=window, hdr_len=hdr_len,
        payload_off=payload_off, payload_len=payload_len, payload_caplen=payload_caplen,
        snapped=payload_caplen < payload_len,
    )
