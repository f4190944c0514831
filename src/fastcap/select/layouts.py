"""The few header layouts nearly every frame has, checked at fixed byte offsets.

Ethernet, untagged or under one 802.1Q tag, then IPv4 without options and not a fragment, or
IPv6 without extension headers, then a TCP or UDP header that is complete and fits the declared
IP length.  For such a row every field sits at a known offset, so four column reads of the slab
(64-bit words, a byte, the 32-bit port word) tell whether the row has the layout and give all
that the row's headers hold.  A row that fails any check is left to the general decoder, which
stays the reference: a row passing here gets exactly what it would report.

Reads stop at byte 70 (TCP data offset under a tag and IPv6), inside the slab when its width is
at least `MIN_WIDTH`; every check that matters is covered by caplen, so bytes past caplen never
decide anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["LAYOUTS", "MIN_WIDTH", "Layout", "Part", "fields", "parts"]

MIN_WIDTH = 72  # deepest byte read: 18 + 40 + 12 (data offset under a tag and IPv6)
CHUNK = 32768  # rows per step: few numpy calls, temporaries still in cache
_SAMPLE = 256  # rows whose link words pick the layout read as whole columns

_U64 = np.uint64
_LINK = 12  # the link word starts at the (outer) EtherType field


def _word(start: int, size: int, fields: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(mask, value) over the little-endian load of `size` bytes from `start`, from
    {byte offset: (mask, value)}."""
    mask = value = 0
    for pos, (m, v) in fields.items():
        assert start <= pos < start + size
        shift = 8 * (pos - start)
        mask |= m << shift
        value |= v << shift
    return mask, value


@dataclass(frozen=True, slots=True)
class Layout:
    """One common layout: `base` is the IP header's offset (14, or 18 under a tag)."""

    tagged: bool
    v6: bool
    link: tuple[np.generic, np.generic]  # word at byte 12: EtherType(s) and the IP version
    ip: tuple[np.uint64, np.uint64, np.uint64]  # word at base + 2: (mask, TCP value, UDP value)

    @property
    def base(self) -> int:
        return 18 if self.tagged else 14

    @property
    def hdr(self) -> int:
        """IP header length: no options, no extension headers."""
        return 40 if self.v6 else 20

    @property
    def ethertype(self) -> int:
        return 0x86DD if self.v6 else 0x0800

    @property
    def link_type(self) -> type:
        """The link word: 4 bytes untagged (12..15), 8 under a tag (12..19)."""
        return np.uint64 if self.tagged else np.uint32


def _layout(tagged: bool, v6: bool) -> Layout:
    base = 18 if tagged else 14
    et = (0x86, 0xDD) if v6 else (0x08, 0x00)
    link = {base - 2: (0xFF, et[0]), base - 1: (0xFF, et[1]),
            base: (0xF0, 0x60) if v6 else (0xFF, 0x45)}  # version 6, or version 4 with IHL 5
    if tagged:
        link |= {12: (0xFF, 0x81), 13: (0xFF, 0x00)}  # one 802.1Q tag
    if v6:  # next header right after the fixed header (no extension headers)
        proto = {base + 6: 0xFF}
        nh = base + 6
    else:  # flags/fragment offset without DF: MF or an offset makes a fragment
        proto = {base + 6: 0x3F, base + 7: 0xFF, base + 9: 0xFF}
        nh = base + 9
    mask, _ = _word(base + 2, 8, {p: (m, 0) for p, m in proto.items()})
    tcp = _word(base + 2, 8, {nh: (0xFF, 6)})[1]
    udp = _word(base + 2, 8, {nh: (0xFF, 17)})[1]
    lt = np.uint64 if tagged else np.uint32
    lm, lv = _word(_LINK, 8 if tagged else 4, link)
    return Layout(tagged, v6, (lt(lm), lt(lv)), (_U64(mask), _U64(tcp), _U64(udp)))


LAYOUTS = tuple(_layout(t, v) for t in (False, True) for v in (False, True))


def _col(s: np.ndarray, pos: int, dt: type) -> np.ndarray:
    """Column of type dt (little-endian load) at byte `pos` of each row: a strided view."""
    return s[:, pos:pos + np.dtype(dt).itemsize].view(dt)[:, 0]


@dataclass(frozen=True, slots=True)
class Part:
    """Rows of a window tested against one layout.

    The rows are `rows` (window rows), or when that is None the `len(ok)` rows from `start` on;
    the other arrays align with them and matter only where `ok` holds."""

    layout: Layout
    start: int
    rows: np.ndarray | None
    ok: np.ndarray  # bool: the row has this layout
    tcp: np.ndarray  # bool: TCP (else UDP)
    ports: np.ndarray  # uint32: source and destination port as loaded (bytes swapped)

    def window_rows(self, at: np.ndarray) -> np.ndarray:
        """Window rows of the entries `at`."""
        return at + self.start if self.rows is None else self.rows[at]


def _test(s: np.ndarray, c: np.ndarray, lay: Layout, ok: np.ndarray | None) -> tuple:
    """(ok, tcp, ports) of the rows of slab `s` (caplen `c`) against `lay`; `ok`, when given,
    holds the rows allowed to match (Ethernet ones)."""
    l4 = lay.base + lay.hdr
    m = (_col(s, _LINK, lay.link_type) & lay.link[0]) == lay.link[1]
    if ok is not None:
        m &= ok
    w = _col(s, lay.base + 2, _U64).copy()
    p = w & lay.ip[0]
    tcp = p == lay.ip[1]
    m &= tcp | (p == lay.ip[2])
    room = w.view(">u2")[1 if lay.v6 else 0::4].astype(np.int32)  # the IP length field
    if not lay.v6:
        room -= 20  # transport bytes the IP header declares...
    np.minimum(room, c - l4, out=room)  # ... and that were captured
    d = _col(s, l4 + 12, np.uint8).copy()  # TCP data offset (UDP: payload, unused)
    hl = (d >> 2) & 0x3C
    m &= np.where(tcp, (d >= 0x50) & (hl <= room), room >= 8)
    return m, tcp, _col(s, l4, np.uint32).copy()


def fields(slab: np.ndarray, rows: np.ndarray, lay: Layout) -> dict[str, np.ndarray | int]:
    """The headers of window rows known to have layout `lay`, read at its fixed offsets:
    what the general decoder reports for them (status OK, not a fragment)."""
    base = lay.base
    l4 = base + lay.hdr
    be16 = np.dtype(">u2")
    proto = _col(slab, base + (6 if lay.v6 else 9), np.uint8)[rows]
    ip_len = _col(slab, base + (4 if lay.v6 else 2), be16)[rows].astype(np.int32)
    ip_end = ip_len + (base + (40 if lay.v6 else 0))
    ports = _col(slab, l4, np.dtype(">u4"))[rows]
    return dict(l3=6 if lay.v6 else 4, ethertype=lay.ethertype, vlan_depth=int(lay.tagged),
                l3_off=base, ip_proto=proto, l4_off=l4, ip_end=ip_end,
                sport=(ports >> 16).astype(np.uint16), dport=ports.astype(np.uint16),
                has_ports=True)


def _order(slab: np.ndarray, eth: np.ndarray | None) -> list[Layout]:
    """Layouts seen in a sample of rows, most frequent first (the first is read as whole
    columns, the others only on the rows it missed); [] when the sample has none."""
    n = len(slab)
    idx = np.arange(0, n, max(1, n // _SAMPLE), dtype=np.int64)
    if eth is not None:
        idx = idx[eth[idx]]
    s = slab[idx]
    hits = [int(np.count_nonzero((_col(s, _LINK, lay.link_type) & lay.link[0]) == lay.link[1]))
            for lay in LAYOUTS]
    if not max(hits, default=0):
        return []
    first = int(np.argmax(hits))
    return [LAYOUTS[first]] + [lay for i, lay in enumerate(LAYOUTS) if i != first]


def parts(slab: np.ndarray, cap: np.ndarray, lt: np.ndarray) -> Iterator[Part]:
    """Test every row of a window against the common layouts.

    `slab` (n, W) uint8 with stride 1 along a row, `cap` int32 caplen, `lt` link types.  The
    layout most rows have is tested on the whole slab a chunk at a time; the rows it misses are
    gathered and tested against the others.  Each row passes in at most one part.  Yields
    nothing when no row can have a common layout (narrow slab, no Ethernet rows, or none in
    the sample): the caller then decodes every row the general way."""
    n, width = slab.shape
    if n == 0 or width < MIN_WIDTH or slab.strides[1] != 1:
        return
    eth: np.ndarray | None = None
    if not (lt == 1).all():
        eth = lt == 1
        if not eth.any():
            return
    order = _order(slab, eth)
    if not order:
        return
    misses = []
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        part = Part(order[0], a, None,
                    *_test(slab[a:b], cap[a:b], order[0], None if eth is None else eth[a:b]))
        yield part
        miss = np.flatnonzero(~part.ok)
        if miss.size:
            misses.append(miss + a)
    if not misses:
        return
    rest = np.concatenate(misses)
    sub, sub_cap = slab[rest], cap[rest]  # gathered once, then narrowed layout by layout
    sub_eth = None if eth is None else eth[rest]
    for lay in order[1:]:
        ok, tcp, ports = _test(sub, sub_cap, lay, sub_eth)
        if not ok.any():
            continue
        yield Part(lay, 0, rest, ok, tcp, ports)
        left = np.flatnonzero(~ok)
        if not left.size:
            return
        rest, sub, sub_cap = rest[left], sub[left], sub_cap[left]
        if sub_eth is not None:
            sub_eth = sub_eth[left]
