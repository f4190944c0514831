"""Stage 2 of the pipeline: decode every window's headers, count what is there, and keep only
the TCP frames on the selected ports, each tagged with its flow id and direction.

Everything here is whole-window numpy work; the only Python loop is over windows (and, in
FlowTable, over the few distinct flows a window contains).  Headers are decoded only for the
rows that can matter (`screen`); the others are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..options import DEFAULT_PORTS as DEFAULT_PORTS
from ..read.capture import Capture, WalkState
from ..read.frames import F_NO_TS, F_OVER_SNAPLEN, F_SNAPPED, NO_TS, record_ends
from .checksums import FLOWS_KEPT, add_flow_sums, sample_checksums
from .decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    Headers,
    Status,
    TcpFields,
    _cut_rows,
    decode_headers,
    decode_tcp,
)
from .flows import FlowTable, port_lut
from .fragments import (
    FRAG_FIRST,
    FRAG_MF,
    FRAG_OTHER,
    FRAG_ROW,
    FRAG_UDP,
    FRAG_V6,
    MAX_AGE,
    MAX_DATAGRAM,
    MAX_FRAGMENTS,
    PROTO_SHIFT,
)
from .iproute import destination_at, route_end
from .screen import TUNNEL_PORTS, Ports, Screened, screen
from .tunnels import TUNNEL_NAMES, open_tunnels

_STATUS_REASON = {
    Status.TRUNCATED_L2: "link-layer header cut by snaplen",
    Status.TRUNCATED_L3: "IP header cut by snaplen",
    Status.BAD_IP: "malformed IP header",
    Status.TRUNCATED_L4: "TCP/UDP header cut by snaplen",
    Status.BAD_L4: "malformed TCP header",
    Status.LONG_CHAIN: "IPv6 extension chain longer than 8 headers (not decoded)",
}

# Encapsulations, and tunnels whose header does not say plainly what they carry (`tunnels`),
# that fastcap does not open.  Their frames are counted by name under `skipped`, so a capture
# of such traffic does not read as one that simply holds no SMTP.
_ENCAP_ETHERTYPES = {0x8847: "MPLS", 0x8848: "MPLS", 0x8864: "PPPoE", 0x88E7: "802.1ah MAC-in-MAC"}
_ENCAP_PROTOS = {4: "IP-in-IP", 41: "IPv6-in-IP", 47: "GRE"}
_IPV4_AH = 51  # stepped over by the decoder; still here when cut short or too long
_DEEP_VLAN = "frames under more than 8 VLAN tags (not decoded)"


def _encap(name: str) -> str:
    return f"{name} encapsulation (not decoded)"


_TS_MAX, _TS_MIN = 2**63 - 1, -(2**63)
TIMES_HELD = ("frames timed after 2262-04-11 23:47:16 or before 1677-09-21 UTC, held there "
              "(nanoseconds since 1970 in 64 bits; certificates are judged at that time)")


@dataclass
class FrameCounters:
    """What `stats` reports about every frame, accumulated window by window."""

    packets: int = 0
    bytes: int = 0  # captured bytes (sum of caplen)
    wire_bytes: int = 0  # sum of orig_len
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    # The first and last clock readings in file order, where a ring buffer's files meet: one
    # damaged record's time inside a file does not move them.  A record stamped exactly
    # 1970-01-01 00:00:00 is how a hole of zeros reads (a frame, as Wireshark counts it, but
    # no time of capture).
    first_dated_ns: int | None = None
    last_dated_ns: int | None = None
    ipv4: int = 0
    ipv6: int = 0
    tcp: int = 0
    udp: int = 0
    other: int = 0  # neither IPv4 nor IPv6 (ARP, LLC, unsupported link types...)
    fragments: int = 0
    icmp_about_selected: int = 0  # ICMP errors quoting a TCP header on a selected port
    # small segments on a selected port, IPv6 or under a right IPv4 header checksum, and of
    # those the ones whose TCP checksum is wrong, not offloaded (`checksums`), the first
    # of which begins its frame at byte `checksums_first` (-1: none)
    checksums_sampled: int = 0
    checksums_rewritten: int = 0
    checksums_first: int = -1
    # of those, the sums by flow direction (`checksums.FlowSums`): addresses or payloads
    checksums_flows: dict = field(default_factory=dict)
    snapped: int = 0
    over_snaplen: int = 0
    linktype_frames: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # reason -> frames
    tunnels: Counter = field(default_factory=Counter)  # frames opened, by outermost tunnel
    notes: Counter = field(default_factory=Counter)  # later stages' limits: reason -> count

    def add(self, win, linktype: np.ndarray, hd) -> None:
        """Count a window whose every row was decoded (`hd`, one entry per row)."""
        self.add_window(win, linktype)
        self.add_headers(hd, linktype)

    def add_window(self, win, linktype: np.ndarray) -> None:
        """The per-frame counts that need no headers."""
        n = len(win)
        self.packets += n
        self.bytes += int(win.caplen.sum(dtype=np.int64))
        self.wire_bytes += int(win.orig_len.sum(dtype=np.int64))
        flags = int(np.bitwise_or.reduce(win.flags)) if n else 0  # usually 0: skip the masks
        ts = win.ts_ns
        if flags & F_NO_TS:
            ts = ts[(win.flags & F_NO_TS) == 0]
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            if hi == _TS_MAX or lo == _TS_MIN:  # held at the ends of 64-bit nanoseconds
                self.notes[TIMES_HELD] += int(np.count_nonzero((ts == _TS_MAX)
                                                               | (ts == _TS_MIN)))
            self.first_ts_ns = lo if self.first_ts_ns is None else min(self.first_ts_ns, lo)
            first, last = int(ts[0]), int(ts[-1])
            if not (first and last):  # rare: a hole's zeros
                dated = np.flatnonzero(ts)
                first, last = (int(ts[dated[0]]), int(ts[dated[-1]])) if len(dated) else (0, 0)
            if first and self.first_dated_ns is None:
                self.first_dated_ns = first
            if last:
                self.last_dated_ns = last
            self.last_ts_ns = hi if self.last_ts_ns is None else max(self.last_ts_ns, hi)
        if flags & F_SNAPPED:
            self.snapped += int(np.count_nonzero(win.flags & F_SNAPPED))
        if flags & F_OVER_SNAPLEN:
            self.over_snaplen += int(np.count_nonzero(win.flags & F_OVER_SNAPLEN))
        if n and (linktype == linktype[0]).all():  # the usual case: skip the sort
            self.linktype_frames[int(linktype[0])] += n
        else:
            lts, counts = np.unique(linktype, return_counts=True)
            for lt, c in zip(lts.tolist(), counts.tolist(), strict=True):
                self.linktype_frames[lt] += c

    def add_headers(self, hd, linktype: np.ndarray, tunnel: np.ndarray | None = None) -> None:
        """The per-protocol counts and skip reasons of decoded rows (`linktype` aligned; the
        outermost headers), and `tunnel`, each row's opened tunnel (`tunnels`), if any."""
        n = len(hd)
        l3 = hd.l3
        n4, n6 = int(np.count_nonzero(l3 == 4)), int(np.count_nonzero(l3 == 6))
        self.ipv4 += n4
        self.ipv6 += n6
        self.other += n - n4 - n6
        self.tcp += int(np.count_nonzero(hd.is_tcp))
        self.udp += int(np.count_nonzero(hd.is_udp))
        self.fragments += int(np.count_nonzero(hd.frag))
        bad = hd.status
        if self.fragments:
            # a first fragment's TCP header may end with the fragment: it is read whole
            # from the datagram (`fragments`), and nothing was cut by the snap length
            early = (hd.frag == 1) & ((bad == Status.TRUNCATED_L4) | (bad == Status.BAD_L4))
            if early.any():
                bad = np.where(early, np.uint8(Status.OK), bad)
        if np.any((bad != Status.OK) & (bad != Status.NOT_IP)):
            codes, counts = np.unique(bad, return_counts=True)
            for code, c in zip(codes.tolist(), counts.tolist(), strict=True):
                if code == Status.UNSUPPORTED_LINKTYPE:
                    for lt, k in zip(*np.unique(linktype[bad == code], return_counts=True),
                                     strict=True):
                        self.skipped[f"unsupported link type {int(lt)}"] += int(k)
                elif code in _STATUS_REASON:
                    self.skipped[_STATUS_REASON[Status(code)]] += c
        if tunnel is not None:
            kinds, counts = np.unique(tunnel[tunnel != 0], return_counts=True)
            for kind, c in zip(kinds.tolist(), counts.tolist(), strict=True):
                self.tunnels[TUNNEL_NAMES[kind]] += c
        self._count_encapsulated(hd, None if tunnel is None else tunnel == 0)

    def _count_encapsulated(self, hd, closed: np.ndarray | None) -> None:
        """Well-formed rows (of `closed`, when given) whose content sits in an encapsulation
        fastcap does not open."""
        st, et = hd.status, hd.ethertype
        if closed is not None:
            st = np.where(closed, st, np.uint8(Status.OK))
            et = np.where(closed, et, np.uint16(0))
        found: list[tuple[str, np.ndarray]] = []
        not_ip = st == Status.NOT_IP
        if not_ip.any():
            for value, name in _ENCAP_ETHERTYPES.items():
                found.append((_encap(name), not_ip & (et == value)))
            found.append((_DEEP_VLAN, not_ip & (hd.vlan_depth > 0)
                          & ((et == 0x8100) | (et == 0x88A8) | (et == 0x9100))))
        # a TCP row is no tunnel: the scan's decoded rows, its selected TCP ones, skip the rest
        ip = (st == Status.OK) & (hd.l4_off >= 0) & ~hd.is_tcp
        if closed is not None:
            ip &= closed
        if ip.any():
            p = hd.ip_proto
            for value, name in _ENCAP_PROTOS.items():
                found.append((_encap(name), ip & (p == value)))
            found.append((_encap("IPv4 AH"), ip & (p == _IPV4_AH) & (hd.l3 == 4)))
            udp = ip & hd.is_udp
            if udp.any():
                for port, name in TUNNEL_PORTS.items():  # each frame counted once
                    m = udp & ((hd.dport == port) | (hd.sport == port))
                    found.append((_encap(name), m))
                    udp &= ~m
        for reason, m in found:
            k = int(np.count_nonzero(m))
            if k:
                self.skipped[reason] += k

    def add_screened(self, sc: Screened) -> None:
        """The rows a screen counted without decoding them (all well-formed TCP/UDP)."""
        self.ipv4 += sc.ipv4
        self.ipv6 += sc.ipv6
        self.tcp += sc.tcp
        self.udp += sc.udp


def _icmp_quotes(buf: np.ndarray, offset: np.ndarray, end: np.ndarray, hd, need: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, is IPv6, quoted IP header's and TCP header's file offsets) of the rows that
    are ICMP/ICMPv6 errors quoting a TCP header of which `need` bytes lie before each
    row's `end` (frame bytes), bare or inside the tunnel whose outer packet is quoted (the
    IP header then the innermost one)."""
    l4 = hd.l4_off.astype(np.int64)
    v4 = (hd.l3 == 4) & (hd.ip_proto == 1)
    v6 = (hd.l3 == 6) & (hd.ip_proto == 58)
    rows = np.flatnonzero((v4 | v6) & (l4 >= 0) & (l4 + 8 + 20 + need <= end))
    if len(rows) == 0:
        return rows, np.zeros(0, bool), rows, rows
    base = offset[rows] + l4[rows]
    icmp_type = buf[base]
    inner = base + 8
    is6 = v6[rows]
    err = np.where(is6, (icmp_type >= 1) & (icmp_type <= 4),
                   np.isin(icmp_type, (3, 4, 5, 11, 12)))
    stop = offset[rows] + end[rows]
    ok, proto, tcp_at = _tcp_after(buf, inner, stop, is6, need)
    ok &= err
    tun = np.flatnonzero(err & ~ok & np.isin(proto, _QUOTED_OUTER))
    if len(tun):  # a tunnel's outer packet quoted: tshark opens the tunnel in the quote
        at, at6 = _through_tunnel(buf, inner[tun], stop[tun])
        tun, at, at6 = tun[at >= 0], at[at >= 0], at6[at >= 0]
        t_ok, _, t_tcp = _tcp_after(buf, at, stop[tun], at6, need)
        tun, at, at6, t_tcp = tun[t_ok], at[t_ok], at6[t_ok], t_tcp[t_ok]
        ok[tun], inner[tun], is6[tun], tcp_at[tun] = True, at, at6, t_tcp
    return rows[ok], is6[ok], inner[ok], tcp_at[ok]


def _tcp_after(buf: np.ndarray, inner: np.ndarray, stop: np.ndarray, is6: np.ndarray,
               need: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(holds `need` bytes of a TCP header, protocol after the IP headers, the TCP header's
    file offset) of each IP packet at file offset `inner` (IPv6 where `is6`; 20 bytes
    readable) that runs to `stop` or is cut there; an IPv4 AH header is stepped over."""
    ver = buf[inner] >> 4
    ihl = (buf[inner] & 0x0F).astype(np.int64) * 4
    proto6, at6 = _quoted_v6_upper(buf, inner, stop, is6)
    proto = np.where(is6, proto6, buf[inner + 9])
    tcp_at = np.where(is6, at6, inner + ihl)
    ah = ~is6 & (proto == _IPV4_AH) & (tcp_at + 2 <= stop)  # tshark steps over it
    if ah.any():
        q = np.where(ah, tcp_at, 0)
        proto = np.where(ah, buf[q], proto)
        tcp_at = np.where(ah, tcp_at + ((buf[q + 1].astype(np.int64) + 2) << 2), tcp_at)
    ok = (proto == 6) & np.where(is6, ver == 6, (ver == 4) & (ihl >= 20))
    ok &= tcp_at + need <= stop
    return ok, proto, tcp_at


_QUOTED_OUTER = (4, 17, 41, 47)  # what a quoted tunnel packet may carry
_QUOTE_SLAB = 128  # bytes of a quoted tunnel packet decoded at once; deeper ones re-read


def _through_tunnel(buf: np.ndarray, start: np.ndarray, stop: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(file offset of the innermost IP header, -1 for none; it is IPv6) of each quoted IP
    packet at `start`, cut at `stop`, opened as the walk opens a frame's tunnels.  A quoted
    fragment stays shut, as for a bare TCP quote (`icmp_quotes`): tshark reads no tunnel in
    a later one, and holds a first one quoted whole to reassemble."""
    cap = (stop - start).astype(np.int32)
    lt = np.full(len(start), LINKTYPE_RAW, np.int32)
    slab = _cut_rows(buf, start, _QUOTE_SLAB, cap.astype(np.int64))
    hd = decode_headers(slab, cap, lt, buf=buf, offset=start)
    opened = open_tunnels(hd, slab, cap, lt, buf=buf, offset=start)
    if opened is None:
        return np.full(len(start), -1, np.int64), np.zeros(len(start), bool)
    h = opened.headers
    l3 = h.l3_off.astype(np.int64)
    first = (hd.frag == 0) | ((hd.frag == 1) & (hd.ip_end > cap))
    found = (opened.kind != 0) & first & (l3 >= 0) & (start + l3 + 20 <= stop)
    return np.where(found, start + l3, -1), found & (h.l3 == 6)


# IPv6 headers Wireshark steps over in a quoted packet to reach its TCP header: hop-by-hop,
# routing, destination options, AH, and a fragment header of a datagram sent whole
_QUOTE_EXT6 = np.array((0, 43, 44, 51, 60))


def _quoted_v6_upper(buf: np.ndarray, inner: np.ndarray, stop: np.ndarray,
                     live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per quoted IPv6 header at file offset `inner` (rows of `live`), the protocol after
    its extension headers and where it begins, each header read whole before `stop`.  A
    fragment header other than offset 0 without more fragments ends the walk (-1): tshark
    puts such a quote in no stream, reassembly waiting for the rest."""
    nh = np.where(live, buf[np.where(live, inner + 6, 0)], -1).astype(np.int64)
    at = inner + 40
    for _ in range(8):
        step = np.isin(nh, _QUOTE_EXT6)
        if not step.any():
            break
        whole = step & (at + 8 <= stop)
        q = np.where(whole, at, 0)
        size = np.where(nh == 51, (buf[q + 1].astype(np.int64) + 2) << 2,
                        (buf[q + 1].astype(np.int64) + 1) << 3)
        frag = buf[q + 2].astype(np.int64) << 8 | buf[q + 3]
        size = np.where(nh == 44, np.where(frag & 0xFFF9, -1, 8), size)
        go = whole & (size > 0)
        nh = np.where(go, buf[q], np.where(step, -1, nh)).astype(np.int64)
        at = np.where(go, at + size, at)
    return nh, at


@dataclass(frozen=True, slots=True)
class IcmpQuotes:
    """A window's ICMP/ICMPv6 errors quoting 4 bytes or more of a TCP header that tshark
    reads (`icmp_quotes`), found once for both of a walk's uses of them, a quoted tunnel
    packet opened once: counting those about a selected port (`icmp_quoted_ports`) and
    handing on those in a connection's stream (`icmp_quoted_tcp`)."""

    rows: np.ndarray  # int64 rows of the headers given
    is6: np.ndarray  # bool: the quoted IP header is IPv6
    inner: np.ndarray  # file offset of the quoted (innermost) IP header
    tcp_at: np.ndarray  # ... and of its TCP header
    stop: np.ndarray  # file offset where the error's IP packet (its quote) ends


def icmp_quotes(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray, hd) -> IcmpQuotes:
    """`_icmp_quotes` within each error's IP packet (Ethernet padding is no quote), less
    those whose quoted IPv4 packet is a later fragment, or a first one quoted whole: in
    neither does tshark read a TCP header, the one holding no header, the other held to
    reassemble."""
    end = np.where(hd.ip_end >= 0, np.minimum(hd.ip_end, caplen), caplen).astype(np.int64)
    rows, is6, inner, tcp_at = _icmp_quotes(buf, offset, end, hd, 4)
    stop = offset[rows] + end[rows]
    frag = buf[inner + 6].astype(np.int64) << 8 | buf[inner + 7]
    size = buf[inner + 2].astype(np.int64) << 8 | buf[inner + 3]
    whole = inner + size <= stop
    keep = is6 | (((frag & 0x1FFF) == 0) & ~(((frag & 0x2000) != 0) & whole))
    return IcmpQuotes(rows[keep], is6[keep], inner[keep], tcp_at[keep], stop[keep])


def _ports_at(buf: np.ndarray, tcp_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sport = buf[tcp_at].astype(np.uint16) << 8 | buf[tcp_at + 1]
    dport = buf[tcp_at + 2].astype(np.uint16) << 8 | buf[tcp_at + 3]
    return sport, dport


def icmp_quoted_ports(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray, hd,
                      quotes: IcmpQuotes | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that are ICMP/ICMPv6 errors quoting a TCP header tshark reads (`icmp_quotes`,
    or `quotes` found already), with the quoted ports.

    A "fragmentation needed" or "unreachable" about an SMTP flow matters to the diagnosis
    (path-MTU trouble stalls big certificate flights), and Wireshark's `tcp.port == 25`
    matches these frames too; they are counted apart from the flow's own segments.
    """
    q = icmp_quotes(buf, offset, caplen, hd) if quotes is None else quotes
    return (q.rows, *_ports_at(buf, q.tcp_at))


# Wireshark gives a quoted TCP header the stream of its connection once it reads the
# header's first 16 bytes (ports to window); the 8 bytes an ICMPv4 error must quote are
# too few, and the header stands in no stream.
_STREAM_QUOTE = 16


@dataclass(frozen=True, slots=True)
class QuotedTcp:
    """ICMP/ICMPv6 errors of a window that Wireshark puts in the TCP stream of the
    connection they quote: its endpoints as the quoted header has them."""

    rows: np.ndarray  # int64 window rows
    src_addr: np.ndarray  # uint8 (k, 16): IPv6, or IPv4 as ::ffff:a.b.c.d
    sport: np.ndarray  # uint16
    dst_addr: np.ndarray
    dport: np.ndarray


def icmp_quoted_tcp(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray, hd,
                    quotes: IcmpQuotes | None = None) -> QuotedTcp:
    """The rows (of `hd`'s, headers from the decoder) that are ICMP/ICMPv6 errors quoting
    16 bytes or more of a TCP header inside their IP packet (Ethernet padding is no quote),
    its destination read through a source route as tshark reads it (`iproute`), the quoted
    IPv4 packet no later fragment, nor a first one quoted whole: those tshark
    puts in the quoted connection's `tcp.stream`, so that `frame N` of an error about a
    connection finds its session (of `quotes`, where found already: those of them whose
    quote holds the 16 bytes)."""
    q = icmp_quotes(buf, offset, caplen, hd) if quotes is None else quotes
    k = q.tcp_at + _STREAM_QUOTE <= q.stop
    rows, is6, inner, tcp_at = q.rows[k], q.is6[k], q.inner[k], q.tcp_at[k]
    src = np.zeros((len(rows), 16), np.uint8)
    dst = np.zeros((len(rows), 16), np.uint8)
    v4 = ~is6
    src[v4, 10:12] = dst[v4, 10:12] = 0xFF
    src[v4, 12:] = buf[inner[v4, None] + np.arange(12, 16)]
    # a quoted source-routed packet is about its route's last address, as tshark reads the
    # quote's destination like any IPv4 header's (`iproute`)
    to = destination_at(buf, inner[v4], q.stop[k][v4])
    dst[v4, 12:] = buf[(inner[v4] + to)[:, None] + np.arange(4)]
    src[is6] = buf[inner[is6, None] + np.arange(8, 24)]
    dst[is6] = buf[inner[is6, None] + np.arange(24, 40)]
    sport, dport = _ports_at(buf, tcp_at)
    return QuotedTcp(rows, src, sport, dst, dport)


@dataclass
class SelectedFrames:
    """One window's TCP frames on the selected ports."""

    frame_no: np.ndarray  # int64
    ts_ns: np.ndarray  # int64
    flow: np.ndarray  # int64 flow id (FlowTable index)
    from_a: np.ndarray  # bool: sent by the flow's endpoint a
    payload_file_off: np.ndarray  # int64 file offset of the TCP payload
    tcp: TcpFields
    record_end: np.ndarray | None = None  # int64 file offset just past the frame's record

    def __len__(self) -> int:
        return len(self.frame_no)


def _without_fcs(win, interfaces) -> tuple[np.ndarray, np.ndarray]:
    """Each row's captured and wire lengths without the Ethernet FCS its interface declares
    (pcap's FCS bits, pcapng's if_fcslen): Wireshark takes the FCS off before IP, so it is
    never payload, even when the IP header claims more bytes than the frame holds."""
    fcs = np.array([(i.fcs_len or 0) if i.linktype == LINKTYPE_ETHERNET else 0
                    for i in interfaces] or [0], np.int64)
    if not fcs.any():
        return win.caplen, win.orig_len
    fcs = fcs[win.iface] if len(fcs) > 1 else fcs[0]
    wire = np.maximum(np.maximum(win.orig_len, win.caplen).astype(np.int64) - fcs, 0)
    return np.minimum(win.caplen, wire).astype(win.caplen.dtype), wire


def iter_selected(cap: Capture, ports: Iterable[int] = DEFAULT_PORTS,
                  counters: FrameCounters | None = None,
                  flows: FlowTable | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  start: WalkState | None = None, stop: int | None = None,
                  quoted: Callable[[np.ndarray, np.ndarray], None] | None = None,
                  ) -> Iterator[SelectedFrames]:
    """Walk `cap` (from `start` up to `stop`, see Capture.windows), update `counters`, and
    yield the selected TCP frames window by window.

    `progress(bytes_done, bytes_total)` is called once per window; `quoted(frame numbers,
    flow ids)`, where given, per window that holds ICMP errors a connection on a selected
    port is in as tshark's `tcp.stream` has it (`icmp_quoted_tcp`), before its frames."""
    lut = port_lut(ports)
    matcher = Ports.of(lut)
    flows = flows if flows is not None else FlowTable()
    held, buf = None, None
    same = np.zeros(0, np.int32)  # the link type of every row, when all interfaces share one
    let_go = _LetGo()  # what `_let_go_udp` knows of the walk so far
    for win in cap.windows(start, stop):
        if let_go.begin is None and len(win):
            let_go.begin = int(win.frame_no[0])
        if cap.buffer is not held:  # a stream's windows come from successive pieces
            held = cap.buffer
            buf = np.frombuffer(held, dtype=np.uint8)
        interfaces = cap.interfaces
        lt_of_iface = np.array([i.linktype for i in interfaces] or [0], np.int32)
        if (lt_of_iface == lt_of_iface[0]).all():  # one link type: no per-row gather
            if len(same) < max(len(win), 1) or same[0] != lt_of_iface[0]:
                same = np.full(max(len(win), 1), lt_of_iface[0], np.int32)
            linktype = same[:len(win)]
        else:
            linktype = lt_of_iface[win.iface]
        caplen, wire = _without_fcs(win, interfaces)
        sc = screen(win.slab, caplen, linktype, matcher, buf=buf, offset=win.offset,
                    orig_len=wire)
        hd = sc.headers
        if progress is not None:
            progress(cap.progress_done, cap.progress_size)
        if counters is not None:
            counters.add_window(win, linktype)
            counters.add_headers(hd, linktype[sc.rows],
                                 None if sc.opened is None else sc.opened.kind)
            counters.add_screened(sc)
        # the window's quotes found once for both uses (a quoted tunnel packet opened once)
        quotes = None if counters is None and quoted is None else icmp_quotes(
            buf, win.offset[sc.rows], caplen[sc.rows], sc.inner)
        if counters is not None:
            # a tunnelled error too, as tshark's `tcp.port` opens the tunnel to its quote
            irows, isp, idp = icmp_quoted_ports(buf, win.offset[sc.rows], caplen[sc.rows],
                                                sc.inner, quotes)
            counters.icmp_about_selected += int(np.count_nonzero(lut[isp] | lut[idp]))
        hd, outer = sc.inner, sc.headers
        if quoted is not None:
            _quoted(quoted, buf, win, sc.rows, caplen, hd, lut, flows, quotes)
        on_port = lut[hd.sport] | lut[hd.dport]
        wanted = hd.is_tcp & on_port
        pick = np.flatnonzero(wanted)
        # later fragments of any TCP datagram, and first fragments on other ports (so that
        # a datagram whose first fragment never came is told from one that is not ours);
        # so too of any datagram that may be a tunnel's outer packet (`tunnels`)
        later = ((hd.frag == 2) & (hd.status == Status.OK) & (
            (hd.ip_proto == 6) | ((hd.l3 == 6) & (hd.ip_proto == 60))))
        later |= (hd.frag == 1) & hd.is_tcp & ~on_port
        if outer.frag.any():
            tun = (outer.status == Status.OK) & np.isin(outer.ip_proto, _OUTER_PROTOS)
            later |= tun & ((outer.frag == 2) | ((outer.frag == 1) & ~wanted))
        later = np.flatnonzero(later)
        tags = _outer_tags(sc, linktype)
        if outer.frag.any() or hd.frag.any():
            later = later[~_let_go_udp(buf, win.offset, caplen, wire, sc.rows, win.frame_no,
                                       hd, outer, pick, later, tags, let_go)]
        if len(pick) == 0 and len(later) == 0:
            continue
        rows = sc.rows[pick]
        hp = hd if len(pick) == len(hd) else hd.take(pick)
        tf = decode_tcp(win.slab, caplen, hp, rows, buf=buf, offset=win.offset, aligned=True,
                        orig_len=wire)
        fid, from_a = flows.assign(tf.src_addr, tf.sport, tf.dst_addr, tf.dport)
        file_off = win.offset[rows] + tf.payload_off
        if counters is not None:
            kept = counters.checksums_flows
            got = sample_checksums(buf, win.offset[rows], hp, tf,
                                   max(kept) if len(kept) >= FLOWS_KEPT else None)
            counters.checksums_sampled += got.sampled
            counters.checksums_rewritten += got.rewritten
            # a stream's windows count offsets from their piece's start
            first = got.first + cap.buffer_base if got.first >= 0 else -1
            if first >= 0 and not 0 <= counters.checksums_first < first:
                counters.checksums_first = first
            if got.flows:
                add_flow_sums(counters.checksums_flows, got.flows)
        if len(later) or hp.frag.any() or outer.frag[pick].any():
            rows, tf, fid, from_a, file_off = _with_fragments(
                buf, win.offset, caplen, wire, hd, sc.rows, pick, later, tf, fid, from_a,
                file_off, tags, outer)
        ts = win.ts_ns[rows]  # a copy: fancy indexing
        undated = (win.flags[rows] & F_NO_TS) != 0
        if undated.any():  # a Simple Packet Block's frame: no time, not 1970
            ts[undated] = NO_TS
        yield SelectedFrames(
            frame_no=win.frame_no[rows].copy(),
            ts_ns=ts,
            flow=fid,
            from_a=from_a,
            payload_file_off=file_off,
            tcp=tf,
            record_end=record_ends(buf, cap.format != "pcap", win.offset[rows],
                                   win.caplen[rows], win.flags[rows]),
        )


def _quoted(call: Callable[[np.ndarray, np.ndarray], None], buf: np.ndarray, win,
            sc_rows: np.ndarray, caplen: np.ndarray, hd: Headers, lut: np.ndarray,
            flows: FlowTable, quotes: IcmpQuotes | None = None) -> None:
    """Hand `call` the window's ICMP errors quoting a connection on a selected port, with
    the flow id of the connection quoted."""
    q = icmp_quoted_tcp(buf, win.offset[sc_rows], caplen[sc_rows], hd, quotes)
    on = np.flatnonzero(lut[q.sport] | lut[q.dport])
    if len(on):
        fid, _ = flows.assign(q.src_addr[on], q.sport[on], q.dst_addr[on], q.dport[on])
        call(win.frame_no[sc_rows[q.rows[on]]], fid)


def _outer_tags(sc: Screened, linktype: np.ndarray) -> np.ndarray | None:
    """Per row of `sc`, the VLAN tags of the outer Ethernet header of a tunnelled frame
    (Wireshark reads them before the inner frame's), 0 for the others; None if no row is
    tunnelled."""
    if sc.opened is None:
        return None
    eth = (sc.opened.kind != 0) & (linktype[sc.rows] == LINKTYPE_ETHERNET)
    return np.where(eth, sc.headers.vlan_depth, 0)


_EXT6 = frozenset((0, 43, 60, 135, 139, 140))  # IPv6 headers before a fragment header
_OUTER_PROTOS = (4, 41, 47, 17)  # what a fragmented tunnel's outer packet opened may carry


def _key_vlan(b: bytes, chains: tuple[tuple[int, int], ...]) -> int:
    """The VLAN id Wireshark keys an IPv4 datagram by: that of the first 802.1Q tag (TPID
    0x8100 or 0x9100, not 802.1ad's 0x88A8) with an id other than 0, in the order the
    frame is read; `chains` the (TPID position, number of tags) of each Ethernet header's
    tags, outermost frame first."""
    for at, n in chains:
        for k in range(n):
            p = at + 4 * k
            if p >= 0 and p + 4 <= len(b) and b[p:p + 2] in (b"\x81\x00", b"\x91\x00"):
                vid = int.from_bytes(b[p + 2:p + 4], "big") & 0x0FFF
                if vid:
                    return vid
    return 0


def _local4(a: int, b: int) -> bool:
    """Whether an IPv4 address (its first two bytes) is private (RFC 1918) or link-local,
    where Wireshark keys a datagram by its VLAN too."""
    return a == 10 or a == 172 and b & 0xF0 == 16 or (a, b) in ((192, 168), (169, 254))


def _fragment_fields(buf: np.ndarray, base: int, cap: int, l3: int, v6: bool,
                     chains: tuple[tuple[int, int], ...]
                     ) -> tuple[int, int, int, int, int] | None:
    """(payload start, data start, offset in bytes, MF, identification) of a fragment whose
    IP header starts at frame byte `l3` (frame at file offset `base`), or None when its
    fragment header is not where the decoder's walk found it (cut short).  An IPv4 fragment's
    identification is given as Wireshark keys it, XORed with its protocol, so a TCP and a UDP
    datagram of one identification stay apart, and with its VLAN id (`_key_vlan` of the
    frame's tag `chains`) where its source or destination is private or link-local
    (`_local4`; the destination as Wireshark reads it, `iproute`); IPv6 keys no VLAN."""
    b = buf[base:base + cap].tobytes()
    if not v6:
        if l3 + 20 > cap:
            return None
        ihl = (b[l3] & 0x0F) * 4
        fo = int.from_bytes(b[l3 + 6:l3 + 8], "big")
        end = route_end(b[l3 + 20:l3 + ihl]) if 20 < ihl and l3 + ihl <= cap else None
        dst = l3 + 16 if end is None else l3 + 20 + end  # a source route's last address
        local = _local4(*b[l3 + 12:l3 + 14]) or _local4(*b[dst:dst + 2])
        return l3 + 12, l3 + ihl, (fo & 0x1FFF) * 8, fo & 0x2000, int.from_bytes(
            b[l3 + 4:l3 + 6], "big") ^ b[l3 + 9] ^ (_key_vlan(b, chains) if local else 0)
    nh, p = b[l3 + 6] if l3 + 7 <= cap else -1, l3 + 40
    for _ in range(9):
        if nh == 44:
            if p + 8 > cap:
                return None
            fo = int.from_bytes(b[p + 2:p + 4], "big")
            return l3 + 8, p + 8, fo & 0xFFF8, fo & 1, int.from_bytes(b[p + 4:p + 8], "big")
        if p + 2 > cap or not (nh in _EXT6 or nh == 51):
            return None
        size = (b[p + 1] + 2) << 2 if nh == 51 else (b[p + 1] + 1) << 3
        nh, p = b[p], p + size
    return None


@dataclass
class _LetGo:
    """What `_let_go_udp` knows of a walk's fragment rows: the frame it began at (what the
    defragmenter holds from before it is not known), and the keys of the rows kept lately,
    each with its last frame, oldest first."""

    begin: int | None = None  # the walk's first frame
    kept: dict[bytes, int] = field(default_factory=dict)


def _fragment_row(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray,
                  sc_rows: np.ndarray, hd: Headers, outer: Headers | None,
                  outer_tags: np.ndarray | None, j: int
                  ) -> tuple[Headers, tuple[int, int, int, int, int] | None]:
    """Row j's fragmented packet (the outermost one when that is the packet cut, else the
    innermost), and `_fragment_fields` of it, its key's VLAN read from the tags just before
    its IP header, after those of its outer frame when it is tunnelled (`outer_tags`)."""
    r = int(sc_rows[j])
    g = outer if outer is not None and outer.frag[j] else hd
    l3, depth = int(g.l3_off[j]), int(g.vlan_depth[j])
    chains = ((l3 - 2 - 4 * depth, depth),)
    if g is hd and outer_tags is not None and outer_tags[j]:
        chains = ((12, int(outer_tags[j])), *chains)
    return g, _fragment_fields(buf, int(offset[r]), int(caplen[r]), l3, int(g.l3[j]) == 6,
                               chains)


@dataclass(frozen=True)
class FragmentColumns:
    """Per row given, what `_fragment_row` reads of its fragment, read for all rows at once
    (`fragment_columns`); frame-relative offsets as `_with_fragments` makes its row of it."""

    valid: np.ndarray  # bool: the fragment header is where the decoder found it (a row)
    key: np.ndarray  # (n, 37) uint8: IPv6 or not, identification as keyed, addresses
    offset: np.ndarray  # int64: the fragment's data's offset in its datagram
    mf: np.ndarray  # bool: more fragments follow
    start: np.ndarray  # int64: where the row's payload (the addresses) begins in the frame
    data_at: np.ndarray  # int64: where the fragment's data begins in the frame
    end: np.ndarray  # int64: where the row's payload ends in the frame (the packet's end)
    v6: np.ndarray  # bool


def _vlan_ids(buf: np.ndarray, base: np.ndarray, cap: np.ndarray, at: np.ndarray,
              n: np.ndarray) -> np.ndarray:
    """Per row, the id of the first of its `n` tags from frame byte `at` that is 802.1Q
    (TPID 0x8100 or 0x9100) with an id other than 0, as `_key_vlan` reads one chain; 0 for
    none (tags outside the `cap` captured bytes do not count)."""
    k = np.arange(8)
    p = at[:, None] + 4 * k
    ok = (k < n[:, None]) & (p >= 0) & (p + 4 <= cap[:, None])
    q = base[:, None] + np.where(ok, p, 0)
    tpid = buf[q].astype(np.int32) << 8 | buf[q + 1]
    vid = (buf[q + 2].astype(np.int32) & 0x0F) << 8 | buf[q + 3]
    hit = ok & ((tpid == 0x8100) | (tpid == 0x9100)) & (vid != 0)
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), vid[np.arange(len(at)), first], 0)


_EXT6_STEP = np.array(sorted(_EXT6 | {51}))


def _v6_fragment_headers(buf: np.ndarray, base: np.ndarray, cap: np.ndarray,
                         at: np.ndarray) -> np.ndarray:
    """Per IPv6 packet (header at frame byte `at`), where its fragment header begins in the
    frame, walked as `_fragment_fields` walks it; -1 when it is not found whole."""
    found = np.full(len(at), -1, np.int64)
    live = at + 7 <= cap
    nh = np.where(live, buf[base + np.where(live, at + 6, 0)], 0).astype(np.int64)
    p = at + 40
    for _ in range(9):
        hit = live & (nh == 44)
        found[hit & (p + 8 <= cap)] = p[hit & (p + 8 <= cap)]
        live &= ~hit & (p + 2 <= cap) & np.isin(nh, _EXT6_STEP)
        if not live.any():
            break
        q = base + np.where(live, p, 0)
        size = np.where(nh == 51, (buf[q + 1].astype(np.int64) + 2) << 2,
                        (buf[q + 1].astype(np.int64) + 1) << 3)
        nh = np.where(live, buf[q], nh).astype(np.int64)
        p = np.where(live, p + size, p)
    return found


def fragment_columns(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray,
                     wire: np.ndarray, sc_rows: np.ndarray, hd: Headers, outer: Headers,
                     outer_tags: np.ndarray | None, j: np.ndarray) -> FragmentColumns:
    """`_fragment_row` of the window's rows `j` (indexes into `hd`), in numpy: IPv4 and
    IPv6, under VLAN tags and tunnels alike."""
    g_outer = outer.frag[j] != 0

    def col(name: str) -> np.ndarray:
        return np.where(g_outer, getattr(outer, name)[j], getattr(hd, name)[j])

    n = len(j)
    l3, at = col("l3"), col("l3_off").astype(np.int64)
    r = sc_rows[j]
    base, cap = offset[r].astype(np.int64), caplen[r].astype(np.int64)
    end = np.minimum(col("ip_end").astype(np.int64), np.maximum(wire[r].astype(np.int64), cap))
    key = np.zeros((n, 37), np.uint8)
    lo, mf = np.zeros(n, np.int64), np.zeros(n, bool)
    start, data_at = at + 12, np.zeros(n, np.int64)
    v6 = l3 == 6
    valid = np.zeros(n, bool)
    i4 = np.flatnonzero((l3 == 4) & (at >= 0) & (at + 20 <= cap))
    if len(i4):
        q = base[i4] + at[i4]
        fo = buf[q + 6].astype(np.int64) << 8 | buf[q + 7]
        lo[i4], mf[i4] = (fo & 0x1FFF) * 8, (fo & 0x2000) != 0
        data_at[i4] = at[i4] + (buf[q] & 0x0F).astype(np.int64) * 4
        depth = col("vlan_depth")[i4].astype(np.int64)
        vid = _vlan_ids(buf, base[i4], cap[i4], at[i4] - 2 - 4 * depth, depth)
        if outer_tags is not None:  # a tunnelled row's outer frame's tags are read first
            first = np.where(g_outer[i4], 0, outer_tags[j[i4]]).astype(np.int64)
            seen = _vlan_ids(buf, base[i4], cap[i4], np.full(len(i4), 12), first)
            vid = np.where(seen != 0, seen, vid)
        local = np.zeros(len(i4), bool)
        # the destination as Wireshark reads it: a source route's last address (`iproute`)
        dst = destination_at(buf, q, base[i4] + cap[i4])
        for at_addr in (12, dst):  # source or destination private or link-local (`_local4`)
            a, b = buf[q + at_addr], buf[q + at_addr + 1]
            local |= (a == 10) | (a == 172) & (b & 0xF0 == 16) | (a == 192) & (b == 168)
            local |= (a == 169) & (b == 254)
        ident = (buf[q + 4].astype(np.int64) << 8 | buf[q + 5]) ^ buf[q + 9] ^ np.where(
            local, vid, 0)
        key[i4, 3], key[i4, 4] = ident >> 8, ident & 0xFF
        key[i4, 5:9] = buf[q[:, None] + np.arange(12, 16)]
        key[i4, 9:13] = buf[(q + dst)[:, None] + np.arange(4)]
        valid[i4] = True
    i6 = np.flatnonzero(v6 & (at >= 0))
    if len(i6):
        fa = _v6_fragment_headers(buf, base[i6], cap[i6], at[i6])
        i6, fa = i6[fa >= 0], fa[fa >= 0]
        q = base[i6] + fa
        fo = buf[q + 2].astype(np.int64) << 8 | buf[q + 3]
        lo[i6], mf[i6] = fo & 0xFFF8, (fo & 1) != 0
        start[i6], data_at[i6] = at[i6] + 8, fa + 8
        key[i6, 0] = 1
        key[i6, 1:5] = buf[q[:, None] + np.arange(4, 8)]
        key[i6, 5:37] = buf[(base[i6] + at[i6])[:, None] + np.arange(8, 40)]
        valid[i6] = True
    return FragmentColumns(valid, key, lo, mf, start, data_at, end, v6)


def _reach(group: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1, how far from 0 its pieces [lo, hi) cover without a hole (0 when
    none begins at 0); `group` ascending."""
    o = np.lexsort((lo, group))
    group, lo, hi = group[o], lo[o], hi[o]
    top = np.maximum.accumulate(hi + (group << 20))  # hi < 2**20: groups stay apart
    new = np.ones(len(o), bool)
    new[1:] = group[1:] != group[:-1]
    hole = ~new
    hole[1:] &= lo[1:] + (group[1:] << 20) > top[:-1]
    # a piece is in the span from 0 while no hole came before it in its group
    holes = np.cumsum(hole)
    first = np.flatnonzero(new)
    inside = holes == holes[first][np.cumsum(new) - 1]
    out = np.zeros(n, np.int64)
    np.maximum.at(out, group[inside], top[inside] - (group[inside] << 20))
    out[group[first][lo[first] != 0]] = 0
    return out


def _ends_first(group: np.ndarray, mf: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Per group, the end of its first piece (in arrival order) without MF: the datagram's
    length as the defragmenter sets it; -1 when none."""
    out = np.full(n, -1, np.int64)
    tail = np.flatnonzero(~mf)
    at = tail[np.unique(group[tail], return_index=True)[1]]
    out[group[at]] = hi[at]
    return out


def _let_go_whole(group: np.ndarray, head: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  mf: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1 of taken rows (in arrival order), whether a defragmenter holding
    nothing of its key lets its datagram go exactly at its last row, having held it light
    from its first (`Defragmenter`): its first fragment (`head`) is its first row, and all
    its bytes first are once the last row has come.  `group` ascending, stable."""
    last = np.ones(len(group), bool)
    last[:-1] = group[:-1] != group[1:]
    begins = np.ones(len(group), bool)
    begins[1:] = last[:-1]
    has_head = np.zeros(n, bool)
    has_head[group[head & begins]] = True
    head_before = np.zeros(n, bool)
    head_before[group[head & ~last]] = True
    end = _ends_first(group, mf, hi, n)
    whole = (end >= 0) & (_reach(group, lo, hi, n) >= end)
    pre = ~last  # without the last row: let go already, the last one would begin anew
    end = _ends_first(group[pre], mf[pre], hi[pre], n)
    before = (end >= 0) & (_reach(group[pre], lo[pre], hi[pre], n) >= end)
    return has_head & whole & ~(head_before & before)


def _let_go_udp(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray, wire: np.ndarray,
                sc_rows: np.ndarray, frame_no: np.ndarray, hd: Headers, outer: Headers,
                pick: np.ndarray, later: np.ndarray, outer_tags: np.ndarray | None,
                state: _LetGo) -> np.ndarray:
    """Per row of `later`, whether it is a fragment of a UDP datagram let go whole in this
    window, so that it need not become a fragment row: most fragmented UDP (NFS, DNS...) is
    no tunnel on a selected port, and a row each costs a Python step twice over.

    Rows are left out only where the defragmenter, fed them, would end as it began, so that
    every walk gives the same datagrams whatever its windows or byte ranges: those of a key
    (addresses and identification, as `_fragment_fields` keys them) are all UDP fragments
    (IPv4 or IPv6, tagged or not, read in numpy: `fragment_columns`) after or beside a first
    one on no selected port (`Defragmenter._other`), the first of them begins a datagram let
    go at the last of them, and no datagram of their key may be pending: none was kept in
    the MAX_AGE frames before (`state`), nor could be from before the walk (its first
    MAX_AGE frames keep all their rows)."""
    drop = np.zeros(len(later), bool)
    cut = pick[(hd.frag[pick] != 0) | (outer.frag[pick] != 0)]
    j = np.concatenate([later, cut])
    fc = fragment_columns(buf, offset, caplen, wire, sc_rows, hd, outer, outer_tags, j)
    m = np.flatnonzero(fc.valid)
    if len(m) == 0:
        return drop
    jm, r = j[m], sc_rows[j[m]]
    cap = caplen[r].astype(np.int64)
    lo, mf, end, start = fc.offset[m], fc.mf[m], fc.end[m], fc.start[m]
    length = end - start  # the row's payload, its captured part, and its fragment's data
    held = np.minimum(np.maximum(np.minimum(end, cap) - start, 0), length)
    size = end - fc.data_at[m]
    least = np.where(fc.v6[m], 32, 8)
    keys, inv = np.unique(np.ascontiguousarray(fc.key[m]).view("V37").ravel(),
                          return_inverse=True)
    inv = inv.ravel()
    frames = frame_no[r]
    kept = state.kept
    while kept and next(iter(kept.values())) + MAX_AGE < frame_no[0]:
        del kept[next(iter(kept))]
    # a candidate key: all its rows UDP outer fragments in `later`, its first after the
    # walk's first MAX_AGE frames and within MAX_AGE of its last, fewer than MAX_FRAGMENTS
    g_outer = outer.frag[jm] != 0
    udp = g_outer & (outer.ip_proto[jm] == 17) & (outer.status[jm] == Status.OK)
    udp &= m < len(later)
    n = len(keys)
    ok = np.ones(n, bool)
    ok[inv[~udp]] = False
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, inv, frames)
    last = np.zeros(n, np.int64)
    np.maximum.at(last, inv, frames)
    ok &= (first >= state.begin + MAX_AGE) & (last - first <= MAX_AGE)
    ok &= np.bincount(inv, minlength=n) < MAX_FRAGMENTS
    if ok.any() and kept:
        cand = np.flatnonzero(ok)
        ok[[i for i, k in zip(cand.tolist(), keys[cand].tolist(), strict=True)
            if k in kept]] = False
    if ok.any():  # ... and its rows, fed alone, let its datagram go at the last of them
        head = (outer.frag[jm] == 1) & g_outer
        whole = (held >= length) & (size >= 0) & (length >= least)
        taken = np.where(head, (held >= least) & (size > 0) & (size <= MAX_DATAGRAM),
                         whole & (size > 0) & (lo + size <= MAX_DATAGRAM))
        t = np.flatnonzero(ok[inv] & taken)
        o = t[np.argsort(inv[t], kind="stable")]
        hi = np.where(head[o], size[o], lo[o] + size[o])
        let_go = _let_go_whole(inv[o], head[o], np.where(head[o], 0, lo[o]), hi, mf[o], n)
        ok &= let_go
    gone = ok[inv] & (m < len(later))
    drop[m[gone]] = True
    if not gone.all():  # the keys of the rows kept, by their last frame
        newest = np.full(n, -1, np.int64)
        np.maximum.at(newest, inv[~gone], frames[~gone])
        stay = np.flatnonzero(newest >= 0)
        stay = stay[np.argsort(newest[stay], kind="stable")]
        for k, f in zip(keys[stay].tolist(), newest[stay].tolist(), strict=True):
            kept.pop(k, None)
            kept[k] = f
    return drop


def _with_fragments(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray,
                    wire: np.ndarray, hd: Headers, sc_rows: np.ndarray, pick: np.ndarray,
                    later: np.ndarray, tf: TcpFields, fid: np.ndarray, from_a: np.ndarray,
                    file_off: np.ndarray, outer_tags: np.ndarray | None,
                    outer: Headers | None = None
                    ) -> tuple[np.ndarray, TcpFields, np.ndarray, np.ndarray, np.ndarray]:
    """The window's selected rows with its TCP fragments as fragment rows (`fragments`):
    first fragments on selected ports in place, the later fragments of any TCP datagram
    and the first fragments on other ports added, all in frame order.  `outer_tags`, when
    some rows are tunnelled, holds per row the VLAN tags of its outer Ethernet header.
    `outer` (the outermost headers) tells a fragmented outer packet: its fragments are the
    rows, and a first one on a selected port begins its inner TCP header where the tunnel
    put it."""
    hp = hd.take(pick)
    keep = np.ones(len(pick), bool)
    extra: list[tuple] = []  # (window row, flow, from_a, file off, seq, ack, flags, window,
    #                            payload_len, payload_caplen)
    cut = hp.frag != 0 if outer is None else (hp.frag != 0) | (outer.frag[pick] != 0)
    todo = [(i, int(pick[i]), True) for i in np.flatnonzero(cut).tolist()]
    todo += [(-1, int(j), False) for j in later.tolist()]
    for i, j, first in todo:
        r = int(sc_rows[j])
        base, cap = int(offset[r]), int(caplen[r])
        g, f = _fragment_row(buf, offset, caplen, sc_rows, hd, outer, outer_tags, j)
        v6 = int(g.l3[j]) == 6
        end = min(int(g.ip_end[j]), max(int(wire[r]), cap))
        if first:
            keep[i] = False
        if f is None:
            continue
        start, data_at, off, mf, ident = f
        flags = FRAG_ROW | (FRAG_MF if mf else 0) | (FRAG_V6 if v6 else 0)
        # its IP protocol (IPv6: its fragment header's next header), which Wireshark reads
        # a datagram put together as, that of the fragment completing it
        proto = int(buf[base + (data_at - 8 if v6 else start - 3)])
        if first:
            flags |= FRAG_FIRST
            off = int(hd.l4_off[j]) - data_at  # where the TCP header begins
            flow, a = int(fid[i]), bool(from_a[i])
        else:
            flow, a = -1, False
            if int(g.frag[j]) == 1:
                flags |= FRAG_OTHER
            if int(g.ip_proto[j]) == 17:  # maybe a VXLAN or Geneve packet's, maybe not
                flags |= FRAG_UDP
        extra.append((r, flow, a, base + start, off | proto << PROTO_SHIFT, ident, flags,
                      data_at - start, end - start, max(min(end, cap) - start, 0)))
    k = np.flatnonzero(keep)
    n = len(extra)
    col = list(zip(*extra, strict=True)) if n else [()] * 10
    rows = np.concatenate([tf.rows[k], np.array(col[0], np.int64)])
    order = np.argsort(rows, kind="stable")

    def cat(a: np.ndarray, add, dtype=None) -> np.ndarray:
        a = np.asarray(a)
        return np.concatenate([a[k], np.array(add, dtype or a.dtype)])[order]

    z16 = np.zeros((n, 16), np.uint8)
    zero = [0] * n
    out = TcpFields(
        rows=rows[order], src_addr=np.concatenate([tf.src_addr[k], z16])[order],
        dst_addr=np.concatenate([tf.dst_addr[k], z16])[order],
        sport=cat(tf.sport, zero), dport=cat(tf.dport, zero), seq=cat(tf.seq, col[4]),
        ack=cat(tf.ack, col[5]), flags=cat(tf.flags, col[6]), window=cat(tf.window, col[7]),
        hdr_len=cat(tf.hdr_len, [20] * n), payload_off=cat(tf.payload_off, zero),
        payload_len=cat(tf.payload_len, col[8]), payload_caplen=cat(tf.payload_caplen, col[9]),
        snapped=cat(tf.snapped, [c < w for c, w in zip(col[9], col[8], strict=True)], bool))
    return (out.rows, out, cat(fid, col[1], np.int64), cat(from_a, col[2], bool),
            cat(file_off, col[3], np.int64))
