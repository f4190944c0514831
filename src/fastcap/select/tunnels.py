"""Open the tunnels mirrored traffic arrives in, as Wireshark does.

A cloud traffic mirror (AWS, Azure: VXLAN; Geneve), a switch's remote SPAN (ERSPAN over GRE),
an MPLS or PPPoE link, or IP-in-IP carries the mail server's frames inside another packet;
a switch's tag (Cisco MetaData, VN-Tag, E-Tag) sits before their EtherType.
Wireshark's `tcp.port == 25` matches the inner TCP header, so fastcap selects on it too: the
inner frame of each tunnel row is decoded by the same general decoder, at its offset inside the
outer frame, and its offsets are made frame-relative again, so everything after selection reads
the inner headers as it reads any frame's.  Only what Wireshark opens by default is opened, and
only when the tunnel header says plainly what follows (an MPLS payload that is not IP, a GRE of
another version stay counted as not decoded).  An outer packet of IP-in-IP, GRE, VXLAN or
Geneve cut in IP fragments is opened in its first fragment, as far as that holds the inner
headers: selection makes its fragments fragment rows (`fragments`), and
the datagram put together gives the inner TCP segment, as Wireshark opens the tunnel in the
datagram it reassembled.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .decode import (
    ETH_IPV4,
    ETH_IPV6,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_RAW,
    Headers,
    Status,
    _cut_rows,
    _decode_general,
    ether_header_len,
)

__all__ = ["TUNNEL_NAMES", "Opened", "open_tunnels"]

# Tunnel kinds, by code (0: none).  UDP tunnels sit on the ports Wireshark opens by default.
TUNNEL_NAMES = {1: "VXLAN", 2: "Geneve", 3: "GRE", 4: "ERSPAN", 5: "IP-in-IP",
                6: "IPv6-in-IP", 7: "MPLS", 8: "PPPoE", 9: "802.1ah MAC-in-MAC",
                10: "Cisco MetaData", 11: "VN-Tag", 12: "802.1BR E-Tag"}
_VXLAN, _GENEVE, _GRE, _ERSPAN, _IPIP, _IP6IP, _MPLS, _PPPOE, _PBB = range(1, 10)
# Tags a switch puts between the MAC addresses and the EtherType (Cisco TrustSec's MetaData,
# a fabric extender's VN-Tag, 802.1BR's E-Tag): EtherType -> (code, bytes after it before the
# next EtherType).
_TAGS = {0x8909: (10, 6), 0x8926: (11, 4), 0x893F: (12, 6)}
VXLAN_PORT, GENEVE_PORT = 4789, 6081
_DEPTH = 4  # tunnels inside tunnels opened at most this deep
_MAX_LABELS = 8  # MPLS labels read before the bottom of the stack
_ETH_TEB = 0x6558  # Transparent Ethernet Bridging: an Ethernet frame follows
_ERSPAN_2, _ERSPAN_3 = 0x88BE, 0x22EB
_PPP = 0x880B
_INNER_OF = {ETH_IPV4: LINKTYPE_IPV4, ETH_IPV6: LINKTYPE_IPV6, _ETH_TEB: LINKTYPE_ETHERNET}


class Opened(NamedTuple):
    """The rows of a Headers whose frames were opened: `kind` is the outermost tunnel's code
    (TUNNEL_NAMES) per row, 0 where none was; `headers` are the innermost frame's, aligned with
    the input (rows not opened keep their own).  (Immutable: a named tuple, which costs the
    start-up less than a frozen dataclass.)"""

    headers: Headers
    kind: np.ndarray  # uint8


class _Frames:
    """Byte access to the frames of the decoded rows (`at`: their rows in the window): the
    capture's buffer when there is one, else the slab, whose rows then end at its width."""

    def __init__(self, slab: np.ndarray, cap: np.ndarray, at: np.ndarray,
                 buf: np.ndarray | None, offset: np.ndarray | None,
                 wire: np.ndarray | None) -> None:
        width = slab.shape[1]
        self.width = width
        self.cap = np.asarray(cap)[at].astype(np.int64)
        if buf is None or offset is None:
            self.buf = slab.reshape(-1)
            self.off = at * width
            np.minimum(self.cap, width, out=self.cap)
        else:
            self.buf = np.asarray(buf)
            self.off = np.asarray(offset, dtype=np.int64)[at]
        self.wire = None if wire is None else np.asarray(wire)[at].astype(np.int64)

    def peek(self, rows: np.ndarray, at: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(k, n) bytes of each row from frame offset `at` (zero past caplen), and whether
        all n were captured."""
        cap = self.cap[rows]
        limit = cap - at
        start = self.off[rows] + np.minimum(at, cap)  # never past the frame's last byte
        return _cut_rows(self.buf, start, n, np.maximum(limit, 0)), limit >= n


def _u16(b: np.ndarray, i: int) -> np.ndarray:
    return b[:, i].astype(np.int64) << 8 | b[:, i + 1]


def _udp(h: Headers, fr: _Frames, rows: np.ndarray, port: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """VXLAN (RFC 7348) or Geneve (RFC 8926) datagrams on their port: (rows, start, linktype,
    ok)."""
    on = (h.dport[rows] == port) | (h.sport[rows] == port)
    rows = rows[on]
    at = h.l4_off[rows].astype(np.int64) + 8
    b, have = fr.peek(rows, at, 8)
    if port == VXLAN_PORT:  # an Ethernet frame follows, whatever the flags say (as Wireshark)
        return rows, at + 8, np.full(len(rows), LINKTYPE_ETHERNET), have
    proto = _u16(b, 2)
    lt = np.array([_INNER_OF.get(int(x), -1) for x in proto.tolist()], np.int64)
    ok = have & (b[:, 0] >> 6 == 0) & (lt >= 0)
    return rows, at + 8 + (b[:, 0] & 0x3F).astype(np.int64) * 4, lt, ok


def _gre(fr: _Frames, rows: np.ndarray, at: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GRE (RFC 2784/2890; version 1, PPTP's, RFC 2637, with its acknowledgment number)
    carrying IP, Ethernet, PPP or ERSPAN type I, II or III: (start, linktype, ok, erspan)."""
    b, have = fr.peek(rows, at, 4)
    flags, proto = _u16(b, 0), _u16(b, 2)
    v1 = flags & 7 == 1
    ok = have & (flags & 0x4000 == 0) & (flags & 7 <= 1)  # no source route
    start = at + 4 + 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1)
                          + (v1 & (flags & 0x80 != 0)))
    lt = np.array([_INNER_OF.get(int(x), -1) for x in proto.tolist()], np.int64)
    ppp = proto == _PPP
    if ppp.any():  # PPTP: PPP, its address and control bytes and protocol maybe compressed
        q, _ = fr.peek(rows, start, 4)
        full = (q[:, 0] == 0xFF) & (q[:, 1] == 0x03)
        start = np.where(ppp & full, start + 2, start)
        q = np.where(full[:, None], np.roll(q, -2, axis=1), q)
        short = q[:, 0] & 1 == 1  # protocol field compression: one odd byte
        code = np.where(short, q[:, 0], _u16(q, 0))
        start = np.where(ppp, start + np.where(short, 1, 2), start)
        lt = np.where(ppp, np.where(code == 0x21, LINKTYPE_IPV4,
                                    np.where(code == 0x57, LINKTYPE_IPV6, -1)), lt)
    erspan = (proto == _ERSPAN_2) | (proto == _ERSPAN_3)
    if erspan.any():
        # type II (with a sequence number) has an 8-byte header, type I none; type III 12
        # bytes and, with its O flag, an 8-byte platform subheader
        e, e_have = fr.peek(rows, start, 12)
        three = proto == _ERSPAN_3
        skip = np.where(three, 12 + 8 * (e[:, 11] & 1), np.where(flags >> 12 & 1, 8, 0))
        start = np.where(erspan, start + skip, start)
        ok &= ~three | e_have
        lt = np.where(erspan, LINKTYPE_ETHERNET, lt)
    return start, lt, ok & (lt >= 0), erspan


def _ether_payload(h: Headers, lt: np.ndarray, base: np.ndarray, rows: np.ndarray
                   ) -> np.ndarray:
    """Frame offset of what follows the EtherType (after VLAN tags) of link-layer rows whose
    (inner) frame starts at `base`."""
    hlen = np.array([ether_header_len(int(t)) for t in lt[rows].tolist()], np.int64)
    return base[rows] + hlen + 4 * h.vlan_depth[rows].astype(np.int64)


def _mpls(fr: _Frames, rows: np.ndarray, at: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label stack, then IP by its version nibble (what Wireshark assumes first);
    anything else is a pseudowire whose control word Wireshark can only guess at."""
    ok = np.zeros(len(rows), bool)
    pos = at.copy()
    live = np.arange(len(rows))
    for _ in range(_MAX_LABELS):
        b, have = fr.peek(rows[live], pos[live], 5)
        pos[live] += 4
        bottom = have & (b[:, 2] & 1 != 0)
        nib = b[:, 4] >> 4
        ip = ((nib == 4) | (nib == 6)) & (fr.cap[rows[live]] > pos[live])
        ok[live[bottom]] = ip[bottom]
        live = live[have & ~bottom]
        if not live.size:
            break
    return pos, np.full(len(rows), LINKTYPE_RAW), ok


def _find(h: Headers, fr: _Frames, lt: np.ndarray, base: np.ndarray, rows: np.ndarray,
          first_fragments: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (of `rows`) that are a tunnel: (rows, code, inner start, inner linktype); with
    `first_fragments`, first fragments of an IP packet carrying IP, GRE, VXLAN or Geneve too
    (selection makes the later fragments of such packets fragment rows)."""
    found: list[tuple[np.ndarray, int | np.ndarray, np.ndarray, np.ndarray]] = []
    ok = (h.status[rows] == Status.OK) & (h.l4_off[rows] >= 0)
    ip = rows[ok & (h.frag[rows] <= (1 if first_fragments else 0))]
    udp = ip[h.is_udp[ip]]
    for port, code in ((VXLAN_PORT, _VXLAN), (GENEVE_PORT, _GENEVE)):
        r, start, ilt, ok = _udp(h, fr, udp, port)
        found.append((r[ok], code, start[ok], ilt[ok]))
        udp = np.setdiff1d(udp, r)  # a datagram between the two ports is VXLAN, as Wireshark
    proto = h.ip_proto[ip]
    for p, code, ilt in ((4, _IPIP, LINKTYPE_IPV4), (41, _IP6IP, LINKTYPE_IPV6)):
        r = ip[proto == p]
        found.append((r, code, h.l4_off[r].astype(np.int64), np.full(len(r), ilt)))
    r = ip[proto == 47]
    if r.size:
        start, ilt, ok, erspan = _gre(fr, r, h.l4_off[r].astype(np.int64))
        found.append((r[ok], np.where(erspan, _ERSPAN, _GRE)[ok], start[ok], ilt[ok]))
    link = rows[h.status[rows] == Status.NOT_IP]
    et = h.ethertype[link]
    link = link[(et == 0x8847) | (et == 0x8848) | (et == 0x8864) | (et == 0x88E7)
                | np.isin(et, tuple(_TAGS))]
    link = link[np.array([ether_header_len(int(t)) >= 0 for t in lt[link].tolist()], bool)]
    if link.size:
        et = h.ethertype[link]
        at = _ether_payload(h, lt, base, link)
        m = (et == 0x8847) | (et == 0x8848)
        pos, ilt, ok = _mpls(fr, link[m], at[m])
        found.append((link[m][ok], _MPLS, pos[ok], ilt[ok]))
        m = et == 0x8864  # PPPoE session: 6-byte header, then PPP's protocol
        b, have = fr.peek(link[m], at[m], 8)
        ppp = _u16(b, 6)
        ilt = np.where(ppp == 0x21, LINKTYPE_IPV4, np.where(ppp == 0x57, LINKTYPE_IPV6, -1))
        ok = have & (b[:, 0] == 0x11) & (b[:, 1] == 0) & (ilt >= 0)
        found.append((link[m][ok], _PPPOE, at[m][ok] + 8, ilt[ok]))
        m = et == 0x88E7  # 802.1ah: a 4-byte I-TAG, then the customer's Ethernet frame
        found.append((link[m], _PBB, at[m] + 4, np.full(int(m.sum()), LINKTYPE_ETHERNET)))
        for value, (code, size) in _TAGS.items():
            # Decoded as an Ethernet frame whose EtherType is the one after the tag (only the
            # EtherType of an Ethernet header is read): VLAN tags and IP follow as in any frame.
            m = et == value
            found.append((link[m], code, at[m] + size + 2 - 14,
                          np.full(int(m.sum()), LINKTYPE_ETHERNET)))
    out = [(r, np.broadcast_to(np.asarray(c, np.uint8), r.shape), s, t) for r, c, s, t in found
           if len(r)]
    if not out:
        e = np.zeros(0, np.int64)
        return e, np.zeros(0, np.uint8), e, e
    r, c, s, t = (np.concatenate(x) for x in zip(*out, strict=True))
    return r, c, s.astype(np.int64), t.astype(np.int64)


def open_tunnels(h: Headers, slab: np.ndarray, cap: np.ndarray, lt: np.ndarray,
                 rows: np.ndarray | None = None, *, buf: np.ndarray | None = None,
                 offset: np.ndarray | None = None,
                 orig_len: np.ndarray | None = None) -> Opened | None:
    """The innermost headers of `h`'s tunnel rows, or None when no row is a tunnel.

    `slab`, `cap`, `lt`, `offset` and `orig_len` describe the window; `rows` are the window
    rows `h` holds, in order (all of them when None).  `buf` and `offset`, as for
    decode_headers, give the bytes past the slab; without them a frame ends at the slab's width.
    """
    maybe = h.is_udp | (h.status == Status.NOT_IP)
    for p in (4, 41, 47):
        maybe |= h.ip_proto == p
    if not maybe.any():
        return None
    at = np.arange(len(h), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    fr = _Frames(slab, cap, at, buf, offset, orig_len)
    rows = np.flatnonzero(maybe)
    cur, kind, lts = h, None, np.asarray(lt)[at].astype(np.int64)
    base = np.zeros(len(h), np.int64)  # where each row's innermost frame starts
    for depth in range(_DEPTH):
        # an outermost packet's first fragment: the later ones are put together with it
        rows, code, start, ilt = _find(cur, fr, lts, base, rows, depth == 0)
        icap = fr.cap[rows] - start
        keep = icap > 0
        rows, code, start, ilt, icap = rows[keep], code[keep], start[keep], ilt[keep], icap[keep]
        if not len(rows):
            break
        if kind is None:
            kind = np.zeros(len(h), np.uint8)
            cur = h.take(np.arange(len(h)))  # a copy to write the inner headers into
            lts = lts.copy()
        kind[rows] = np.where(kind[rows] == 0, code, kind[rows])
        islab = _cut_rows(fr.buf, fr.off[rows] + start, fr.width, icap)
        wire = None if fr.wire is None else fr.wire[rows] - start
        inner = _decode_general(islab, icap.astype(np.int32), ilt.astype(np.int32), fr.buf,
                                fr.off[rows] + start, wire)
        outer_end = cur.ip_end[rows].astype(np.int64)
        for name in ("l3_off", "l4_off", "ip_end"):
            v = getattr(inner, name)
            setattr(inner, name, np.where(v >= 0, v + start, v).astype(np.int32))
        # the inner packet ends where the outer one does, whatever its own length says
        clip = (outer_end >= 0) & (inner.ip_end > outer_end)
        inner.ip_end[clip] = outer_end[clip]
        cur._put(rows, inner)
        lts[rows] = ilt
        base[rows] = start
    return None if kind is None else Opened(cur, kind)
