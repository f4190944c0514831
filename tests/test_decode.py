"""Tests for fastcap.select.decode.

The property tests build frames with fastcap_synth.packets from a random spec and derive every
expected field from the spec itself (header sizes, declared lengths, where caplen cuts), never
by parsing the bytes back, so decoder and oracle cannot share a bug.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.select.decode import Headers, Status, TcpFields, decode_headers, decode_tcp
from fastcap_synth import packets as P

OK, UNSUP, TR2, NOT_IP, TR3, BAD_IP, TR4, BAD_L4, LONG = (
    Status.OK, Status.UNSUPPORTED_LINKTYPE, Status.TRUNCATED_L2, Status.NOT_IP,
    Status.TRUNCATED_L3, Status.BAD_IP, Status.TRUNCATED_L4, Status.BAD_L4, Status.LONG_CHAIN)

LINKS = {"eth": 1, "sll": 113, "sll2": 276, "null": 0, "null_be": 0, "loop": 108, "raw101": 101,
         "raw12": 12, "ipv4": 228, "ipv6": 229}
ETHER_HLEN = {"eth": 14, "sll": 16, "sll2": 20}
TPIDS = (P.ETH_P_8021Q, P.ETH_P_8021AD, P.ETH_P_QINQ_OLD)
HEADER_FIELDS = ("status", "l3", "ethertype", "vlan_depth", "l3_off", "ip_proto", "l4_off",
                 "ip_end", "frag", "sport", "dport", "has_ports")
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the oracle --------------------------------------------------------------------------------


@dataclass
class Expect:
    """What the decoder must report for one frame (defaults: nothing decoded)."""

    status: int = OK
    l3: int = 0
    ethertype: int = 0
    vlan_depth: int = 0
    l3_off: int = -1
    ip_proto: int = 0
    l4_off: int = -1
    ip_end: int = -1
    frag: int = 0
    sport: int = 0
    dport: int = 0
    has_ports: bool = False
    tcp: dict = field(default_factory=dict)  # expected TcpFields entries for is_tcp rows


@dataclass
class Frame:
    data: bytes
    caplen: int
    linktype: int
    expect: Expect


@dataclass
class L4:
    """The transport part of a spec: its bytes and how its header is laid out."""

    proto: int
    data: bytes
    hdr_len: int = 0  # 0: not TCP/UDP
    sport: int = 0
    dport: int = 0
    tcp: dict = field(default_factory=dict)


def _walk_l4(e: Expect, c: int, l4: L4, l4_off: int) -> None:
    """Transport-layer expectations once the IP layer put l4 at l4_off."""
    e.l4_off = l4_off
    if l4.hdr_len == 0:
        return
    if c >= l4_off + 4:
        e.has_ports, e.sport, e.dport = True, l4.sport, l4.dport
    fixed = 20 if l4.proto == 6 else 8
    end = l4_off + l4.hdr_len
    if c < l4_off + fixed:
        e.status = TR4
    elif end > e.ip_end:
        e.status = BAD_L4
    elif c < end:
        e.status = TR4
    if l4.proto == 6 and e.has_ports:
        if e.status == OK:
            pay = end
            e.tcp = dict(l4.tcp, hdr_len=l4.hdr_len, payload_off=pay, payload_len=e.ip_end - pay,
                         payload_caplen=max(min(e.ip_end, c) - pay, 0))
            e.tcp["snapped"] = e.tcp["payload_caplen"] < e.tcp["payload_len"]
        else:
            e.tcp = dict(seq=0, ack=0, flags=0, window=0, hdr_len=0, payload_off=l4_off,
                         payload_len=0, payload_caplen=0, snapped=False)
        e.tcp["src"], e.tcp["dst"] = l4.tcp["src"], l4.tcp["dst"]


def _mapped(addr: str) -> bytes:
    a = ipaddress.ip_address(addr)
    return a.packed if a.version == 6 else b"\0" * 10 + b"\xff\xff" + a.packed


# --- random frame specs ------------------------------------------------------------------------

v4_addr = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
v6_addr = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)


@st.composite
def transports(draw, version: int, src: str, dst: str) -> L4:
    kind = draw(st.sampled_from(["tcp", "tcp", "tcp", "udp", "other", "esp", "none"]))
    payload = draw(st.binary(max_size=64))
    if kind == "tcp":
        opts = draw(st.binary(max_size=40))
        sport, dport, seq, ack, window = (draw(u16), draw(u16), draw(u32), draw(u32), draw(u16))
        flags = draw(st.integers(0, 0x1FF))
        data = P.tcp(sport, dport, seq, ack, flags, payload, window=window, options=opts)
        return L4(6, data, 20 + -(-len(opts) // 4) * 4, sport, dport,
                  dict(seq=seq, ack=ack, flags=flags, window=window, src=_mapped(src),
                       dst=_mapped(dst)))
    if kind == "udp":
        sport, dport = draw(u16), draw(u16)
        return L4(17, P.udp(sport, dport, payload), 8, sport, dport)
    if kind == "other":
        return L4(1 if version == 4 else 58, payload)
    return L4(50 if kind == "esp" else 59, payload)


@st.composite
def ipv4_packets(draw):
    """(packet, fill) where fill(e, caplen, l2) writes the IPv4-and-up expectations."""
    src, dst = draw(v4_addr), draw(v4_addr)
    l4 = draw(transports(4, src, dst))
    opts = draw(st.binary(max_size=40))
    ihl4 = 20 + -(-len(opts) // 4) * 4
    frag = draw(st.sampled_from([0, 0, 1, 2]))
    more = frag == 1 or (frag == 2 and draw(st.booleans()))
    offset = draw(st.integers(1, 0x1FFF)) if frag == 2 else 0
    real = ihl4 + len(l4.data)
    tot = draw(st.one_of(st.just(real), st.integers(0, real + 40)))
    pkt = P.ipv4(l4.data, l4.proto, src, dst, options=opts, more_fragments=more,
                 frag_offset=offset, total_length=tot, dont_fragment=draw(st.booleans()))

    marks = [0, 1, 20, ihl4] + [ihl4 + k for k in (4, 8, 20, l4.hdr_len)]

    def fill(e: Expect, c: int, l2: int) -> None:
        e.l3, e.l3_off = 4, l2
        if c < l2 + 20 or c < l2 + ihl4:
            e.status = TR3
        elif tot < ihl4:
            e.status = BAD_IP
        else:
            e.ip_proto, e.ip_end, e.frag = l4.proto, l2 + tot, frag
            if frag != 2:
                _walk_l4(e, c, l4, l2 + ihl4)

    return pkt, fill, marks


EXT_TYPES = (P.IPPROTO_HOPOPTS, P.IPPROTO_ROUTING, P.IPPROTO_DSTOPTS, P.IPPROTO_FRAGMENT,
             P.IPPROTO_AH)


@st.composite
def ipv6_packets(draw):
    """(packet, fill) as for ipv4_packets, with a random extension-header chain."""
    src, dst = draw(v6_addr), draw(v6_addr)
    l4 = draw(transports(6, src, dst))
    n_ext = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 8, 9]))
    chain = []
    for _ in range(n_ext):
        t = draw(st.sampled_from(EXT_TYPES))
        if t == P.IPPROTO_FRAGMENT:
            off = draw(st.sampled_from([0, 0, 1, 0x1FFF]))
            body = P.ipv6_frag_body(off, draw(st.booleans()), draw(u32))
        else:
            body = draw(st.binary(max_size=draw(st.sampled_from([6, 30, 200]))))
            if t == P.IPPROTO_AH:
                body += b"\0" * (-len(body) % 4)
        chain.append((t, body))
    sizes = [len(P.ipv6(b"", 6, src, dst, ext_headers=chain[:i + 1]))
             - len(P.ipv6(b"", 6, src, dst, ext_headers=chain[:i])) for i in range(n_ext)]
    real = sum(sizes) + len(l4.data)
    plen = draw(st.one_of(st.just(real), st.integers(0, real + 40)))
    pkt = P.ipv6(l4.data, l4.proto, src, dst, ext_headers=chain, payload_length=plen)
    types = [t for t, _ in chain] + [l4.proto]
    ends = [40 + sum(sizes[:i + 1]) for i in range(n_ext)]
    top = 40 + sum(sizes)
    marks = [0, 1, 40, *ends] + [top + k for k in (4, 8, 20, l4.hdr_len)]

    def jumbo(e: Expect, l2: int) -> None:
        """Payload length 0 and a Jumbo Payload option of 64 KiB or more first in hop-by-hop."""
        if plen == 0 and chain and chain[0][0] == P.IPPROTO_HOPOPTS and pkt[42:44] == b"\xc2\x04":
            size = int.from_bytes(pkt[44:48], "big")
            if size > 0xFFFF:
                e.ip_end = min(l2 + 40 + size, 0x7FFFFFFF)

    def fill(e: Expect, c: int, l2: int) -> None:
        e.l3, e.l3_off = 6, l2
        if c < l2 + 40:
            e.status = TR3
            return
        e.ip_end = l2 + 40 + plen
        pos = l2 + 40
        for i, ((t, body), size) in enumerate(zip(chain, sizes, strict=True)):
            if i == 8 or c < pos + size:  # the walk stops after 8 headers
                e.status, e.ip_proto = LONG if i == 8 else TR4, t
                return
            pos += size
            if t == P.IPPROTO_FRAGMENT:
                (fo,) = struct.unpack("!H", body[:2])
                if fo >> 3:
                    e.frag, e.ip_proto = 2, types[i + 1]
                    jumbo(e, l2)
                    return
                if fo & 1:
                    e.frag = 1
        jumbo(e, l2)
        e.ip_proto = l4.proto
        if l4.proto not in (50, 59):
            _walk_l4(e, c, l4, pos)

    return pkt, fill, marks


@st.composite
def frames(draw, links: tuple[str, ...] = tuple(sorted(LINKS))) -> Frame:
    """A random frame of a random supported link type (of `links`), possibly snapped and
    padded."""
    link = draw(st.sampled_from(links))
    raw = link in ("raw101", "raw12", "ipv4", "ipv6")
    net = "v4" if link == "ipv4" else "v6" if link == "ipv6" else draw(
        st.sampled_from(["v4", "v6"] if raw else ["v4", "v6", "v4", "v6", "other"]))
    if net == "other":
        pkt, fill, marks = draw(st.binary(max_size=80)), None, []
    else:
        pkt, fill, marks = draw(ipv4_packets() if net == "v4" else ipv6_packets())
    pkt += draw(st.binary(max_size=24))  # link padding / trailing junk: not IP payload
    vlans: list[tuple[int, int]] = []
    et = family = 0
    if link in ETHER_HLEN:
        vlans = [(draw(st.sampled_from(TPIDS)), draw(u16))
                 for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 8, 9])))]
        if net == "other":
            et = draw(st.one_of(st.integers(0, 0x5FF), st.sampled_from([0x0806, 0x88CC])))
        else:
            et = P.ETH_P_IP if net == "v4" else P.ETH_P_IPV6
        if link == "eth":
            data = P.ether(pkt, et, vlans=vlans)
        else:
            inner, proto = pkt, et
            for tpid, tci in reversed(vlans):
                inner = struct.pack("!HH", tci, proto) + inner
                proto = tpid
            data = (P.sll if link == "sll" else P.sll2)(inner, proto)
    elif link in ("null", "null_be", "loop"):
        family = P.AF_INET if net == "v4" else draw(st.sampled_from(
            [10, 24, 28, 30] if net == "v6" else [0, 1, 7, 23, 0x1234]))
        data = P.loop_hdr(pkt, family) if link == "loop" else P.null_hdr(
            pkt, family, big_endian=link == "null_be")
    else:
        data = pkt
    # Cut anywhere, or right at / next to a header boundary where off-by-ones hide.
    l2_len = len(data) - len(pkt)
    edges = [0, 1, 4, 14, 16, 20, l2_len - 1] + [l2_len + m + d for m in marks for d in (-1, 0, 1)]
    cut = draw(st.one_of(st.none(), st.integers(0, len(data)), st.sampled_from(edges)))
    c = len(data) if cut is None else max(0, min(cut, len(data)))

    e = Expect()
    if link in ETHER_HLEN:
        hlen, depth = ETHER_HLEN[link], min(len(vlans), 8)
        l2 = hlen + 4 * depth
        if c < l2:
            e.status = TR2
        else:
            e.ethertype = vlans[8][0] if len(vlans) > 8 else et
            e.vlan_depth = depth
            if e.ethertype not in (P.ETH_P_IP, P.ETH_P_IPV6):
                e.status = NOT_IP
    elif link in ("null", "null_be", "loop"):
        l2 = 4
        if c < 4:
            e.status = TR2
        elif net == "other":
            e.status = NOT_IP
        else:
            e.ethertype = P.ETH_P_IP if net == "v4" else P.ETH_P_IPV6
    else:
        l2 = 0
        if link in ("raw101", "raw12") and c < 1:
            e.status = TR3
    if e.status == OK:
        fill(e, c, l2)
    return Frame(data, c, LINKS[link], e)


# --- windows -----------------------------------------------------------------------------------


@dataclass
class Window:
    slab: np.ndarray
    caplen: np.ndarray
    linktype: np.ndarray
    buf: np.ndarray
    offset: np.ndarray


def make_window(frames_: list[Frame], width: int, junk: int = 0) -> Window:
    """Slab rows hold min(caplen, width) bytes, zero-filled; buf lays the captured bytes out like
    a capture file, each record preceded by 16 bytes of junk standing in for its record header."""
    n = len(frames_)
    rng = np.random.default_rng(junk)
    slab = np.zeros((n, width), np.uint8)
    parts, offs, pos = [], [], 0
    for i, f in enumerate(frames_):
        d = f.data[:f.caplen]
        slab[i, :min(len(d), width)] = np.frombuffer(d[:width], np.uint8)
        rec = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        parts += [rec, d]
        offs.append(pos + 16)
        pos += 16 + len(d)
    parts.append(rng.integers(0, 256, 16, dtype=np.uint8).tobytes())
    return Window(slab, np.array([f.caplen for f in frames_], np.uint32),
                  np.array([f.linktype for f in frames_], np.int32),
                  np.frombuffer(b"".join(parts), np.uint8), np.array(offs, np.int64))


def decode(w: Window) -> Headers:
    return decode_headers(w.slab, w.caplen, w.linktype, buf=w.buf, offset=w.offset)


def tcp_of(w: Window, h: Headers) -> TcpFields:
    return decode_tcp(w.slab, w.caplen, h, np.flatnonzero(h.is_tcp), buf=w.buf, offset=w.offset)


def check_dtypes(h: Headers) -> None:
    want = dict(status=np.uint8, l3=np.uint8, ethertype=np.uint16, vlan_depth=np.uint8,
                l3_off=np.int32, ip_proto=np.uint8, l4_off=np.int32, ip_end=np.int32,
                frag=np.uint8, sport=np.uint16, dport=np.uint16, has_ports=np.bool_)
    for name, dt in want.items():
        assert getattr(h, name).dtype == dt, name


def check_tcp_dtypes(tf: TcpFields) -> None:
    want = dict(rows=np.int64, src_addr=np.uint8, dst_addr=np.uint8, sport=np.uint16,
                dport=np.uint16, seq=np.uint32, ack=np.uint32, flags=np.uint16,
                window=np.uint16, hdr_len=np.uint8, payload_off=np.int32, payload_len=np.int32,
                payload_caplen=np.int32, snapped=np.bool_)
    for name, dt in want.items():
        assert getattr(tf, name).dtype == dt, name
    assert tf.src_addr.shape == tf.dst_addr.shape == (len(tf), 16)


def assert_matches(frames_: list[Frame], h: Headers, tf: TcpFields) -> None:
    check_dtypes(h)
    check_tcp_dtypes(tf)
    for i, f in enumerate(frames_):
        got = {k: getattr(h, k)[i].item() for k in HEADER_FIELDS}
        want = {k: getattr(f.expect, k) for k in HEADER_FIELDS}
        assert got == want, (i, f.linktype, f.caplen, f.data.hex())
    tcp_rows = np.flatnonzero(h.is_tcp)
    assert [i for i, f in enumerate(frames_) if f.expect.tcp] == tcp_rows.tolist()
    assert tf.rows.tolist() == tcp_rows.tolist()
    for j, i in enumerate(tcp_rows.tolist()):
        want = frames_[i].expect.tcp
        got = {k: getattr(tf, k)[j].item() for k in want if k not in ("src", "dst")}
        assert got == {k: v for k, v in want.items() if k not in ("src", "dst")}, i
        assert tf.src_addr[j].tobytes() == want["src"]
        assert tf.dst_addr[j].tobytes() == want["dst"]
        assert (tf.sport[j], tf.dport[j]) == (frames_[i].expect.sport, frames_[i].expect.dport)


def assert_same(a, b) -> None:
    for k in a.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


# --- property tests ----------------------------------------------------------------------------


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=10))
def test_random_frames_decode_to_what_was_built(fs):
    ref = None
    for width in (128, 64, 2048):
        w = make_window(fs, width)
        h = decode(w)
        tf = tcp_of(w, h)
        assert_matches(fs, h, tf)
        if ref is not None:  # same answer whatever the slab width
            assert_same(ref[0], h)
            assert_same(ref[1], tf)
        ref = (h, tf)
    for f in fs:  # one-row windows take the scalar-offset path, mixed ones the gather path
        w = make_window([f], 64)
        h = decode(w)
        assert_matches([f], h, tcp_of(w, h))


@settings(SETTINGS, max_examples=8)
@given(st.lists(frames(), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_big_window_prefetch_path_agrees(fs, seed):
    """40k rows, mostly one template: exercises sampling, prefetch and offset groups."""
    rng = np.random.default_rng(seed)
    pick = np.where(rng.random(40_000) < 0.9, 0, rng.integers(0, len(fs), 40_000))
    tiles = make_window(fs, 128)
    big = Window(tiles.slab[pick], tiles.caplen[pick], tiles.linktype[pick], tiles.buf,
                 tiles.offset[pick])
    h = decode(big)
    small = decode(tiles)
    for k in HEADER_FIELDS:
        np.testing.assert_array_equal(getattr(h, k), getattr(small, k)[pick], err_msg=k)
    tf = tcp_of(big, h)
    ts = tcp_of(tiles, small)
    where = np.searchsorted(ts.rows, pick[tf.rows])
    for k in ts.__dataclass_fields__:
        if k != "rows":
            np.testing.assert_array_equal(getattr(tf, k), getattr(ts, k)[where], err_msg=k)


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_bytes_past_caplen_never_matter(fs, seed):
    rng = np.random.default_rng(seed)
    for width in (64, 128):
        w = make_window(fs, width)
        h = decode(w)
        tf = tcp_of(w, h)
        junk = rng.integers(0, 256, w.slab.shape, dtype=np.uint8)
        past = np.arange(width)[None, :] >= w.caplen[:, None].astype(np.int64)
        slab = np.where(past, junk, w.slab)
        g = make_window(fs, width, junk=seed + 1)  # different record-header junk in buf
        g.slab = slab
        hg = decode(g)
        assert_same(h, hg)
        assert_same(tf, tcp_of(g, hg))


SUPPORTED = sorted(set(LINKS.values()))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(SUPPORTED + [9, 105, 160]), st.binary(max_size=300),
                          st.integers(0, 300)), min_size=1, max_size=12))
def test_random_bytes_never_break_it(rows):
    fs = [Frame(d, min(c, len(d)), lt, Expect()) for lt, d, c in rows]
    ref = None
    for width in (16, 64, 128):
        w = make_window(fs, width)
        h = decode(w)
        check_dtypes(h)
        cap = w.caplen.astype(np.int64)
        assert set(np.unique(h.status).tolist()) <= {int(s) for s in Status}
        assert set(np.unique(h.l3).tolist()) <= {0, 4, 6}
        assert set(np.unique(h.frag).tolist()) <= {0, 1, 2}
        assert ((h.l3_off == -1) == (h.l3 == 0)).all()
        assert ((h.l3_off >= -1) & (h.l3_off <= cap)).all()
        assert ((h.l4_off >= -1) & (h.l4_off <= cap)).all()
        assert (h.l4_off[h.l4_off >= 0] >= h.l3_off[h.l4_off >= 0] + 20).all()
        assert (h.ip_end[h.l3 != 0] >= -1).all()
        assert (h.vlan_depth <= 8).all()
        assert not (h.has_ports & (h.l4_off + 4 > cap)).any()
        tf = tcp_of(w, h)
        ok = h.status[tf.rows] == OK
        assert (tf.payload_len[ok] >= 0).all() and (tf.payload_caplen >= 0).all()
        assert (tf.payload_caplen <= np.maximum(tf.payload_len, 0)).all()
        assert (tf.payload_off[ok] + tf.payload_caplen[ok] <= cap[tf.rows][ok]).all()
        if ref is not None:
            assert_same(ref[0], h)
            assert_same(ref[1], tf)
        ref = (h, tf)


# --- unit tests --------------------------------------------------------------------------------

TCP_SEG = P.tcp(2525, 25, 0x01020304, 0x0A0B0C0D, P.SYN | P.ACK | P.NS, b"EHLO x\r\n",
                window=0x1234, options=P.opt_mss(1460))
V4 = P.ipv4(TCP_SEG, 6, "192.0.2.1", "198.51.100.7")
V6 = P.ipv6(TCP_SEG, 6, "2001:db8::1", "2001:db8::2")


def one(data: bytes, linktype: int = 1, caplen: int | None = None, width: int = 128):
    w = make_window([Frame(data, len(data) if caplen is None else caplen, linktype, Expect())],
                    width)
    h = decode(w)
    return w, h, {k: getattr(h, k)[0].item() for k in HEADER_FIELDS}


@pytest.mark.parametrize(("data", "lt", "ethertype", "l3", "l3_off", "depth"), [
    (P.ether(V4, P.ETH_P_IP), 1, 0x0800, 4, 14, 0),
    (P.ether(V6, P.ETH_P_IPV6, vlans=[(0x8100, 1), (0x88A8, 2), (0x9100, 3), (0x8100, 4)]),
     1, 0x86DD, 6, 30, 4),
    (P.sll(V4, P.ETH_P_IP), 113, 0x0800, 4, 16, 0),
    (P.sll(struct.pack("!HH", 7, P.ETH_P_IPV6) + V6, P.ETH_P_8021Q), 113, 0x86DD, 6, 20, 1),
    (P.sll2(V6, P.ETH_P_IPV6), 276, 0x86DD, 6, 20, 0),
    (P.null_hdr(V4, P.AF_INET), 0, 0x0800, 4, 4, 0),
    (P.null_hdr(V6, 30, big_endian=True), 0, 0x86DD, 6, 4, 0),
    (P.null_hdr(V6, 10), 0, 0x86DD, 6, 4, 0),
    (P.loop_hdr(V4, P.AF_INET), 108, 0x0800, 4, 4, 0),
    (P.loop_hdr(V6, 28), 108, 0x86DD, 6, 4, 0),
    (V4, 12, 0, 4, 0, 0),
    (V6, 14, 0, 6, 0, 0),
    (V6, 101, 0, 6, 0, 0),
    (V4, 228, 0, 4, 0, 0),
    (V6, 229, 0, 6, 0, 0),
])
def test_each_link_type(data, lt, ethertype, l3, l3_off, depth):
    w, h, got = one(data, lt)
    ip_len = len(V4) if l3 == 4 else len(V6)
    assert got == dict(got, status=OK, l3=l3, ethertype=ethertype, vlan_depth=depth,
                       l3_off=l3_off, ip_proto=6, l4_off=l3_off + (20 if l3 == 4 else 40),
                       ip_end=l3_off + ip_len, frag=0, sport=2525, dport=25, has_ports=True)
    tf = tcp_of(w, h)
    assert (tf.seq[0], tf.ack[0], tf.window[0], tf.hdr_len[0]) == (0x01020304, 0x0A0B0C0D,
                                                                    0x1234, 24)
    assert tf.flags[0] == P.SYN | P.ACK | P.NS
    assert tf.payload_len[0] == tf.payload_caplen[0] == 8 and not tf.snapped[0]
    src = "::ffff:192.0.2.1" if l3 == 4 else "2001:db8::1"
    assert tf.src_addr[0].tobytes() == ipaddress.IPv6Address(src).packed


def _bad_tcp(doff: int) -> bytes:
    seg = bytearray(P.tcp(1, 2, 3, 4, P.ACK))
    seg[12] = doff << 4
    return bytes(seg)


@pytest.mark.parametrize(("data", "lt", "caplen", "status"), [
    (P.ether(V4, P.ETH_P_IP), 105, None, UNSUP),
    (P.ether(V4, P.ETH_P_IP), 1, 13, TR2),
    (P.ether(V4, P.ETH_P_IP, vlans=[(0x8100, 1)]), 1, 17, TR2),
    (P.sll(V4, P.ETH_P_IP), 113, 15, TR2),
    (P.sll2(V4, P.ETH_P_IP), 276, 19, TR2),
    (P.null_hdr(V4, 2), 0, 3, TR2),
    (P.loop_hdr(V4, 2), 108, 2, TR2),
    (P.ether(b"\0" * 28, P.ETH_P_ARP), 1, None, NOT_IP),
    (P.ether(b"\xaa\xaa\x03" + b"\0" * 40, 46), 1, None, NOT_IP),  # 802.3 length field
    (P.ether(V4, P.ETH_P_IP, vlans=[(0x8100, 1)] * 9), 1, None, NOT_IP),  # 9 tags: not walked
    (P.null_hdr(V4, 7), 0, None, NOT_IP),
    (P.loop_hdr(V4, 2 << 24), 108, None, NOT_IP),
    (P.sll(b"\0" * 30, 0x0004), 113, None, NOT_IP),
    (P.ether(V4, P.ETH_P_IP), 1, 14, TR3),
    (P.ether(V4, P.ETH_P_IP), 1, 33, TR3),
    (P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", options=b"\1" * 8), 0x800), 1, 40, TR3),
    (P.ether(V6, P.ETH_P_IPV6), 1, 53, TR3),
    (V4, 12, 0, TR3),
    (V6, 229, 0, TR3),
    (P.ether(V6, P.ETH_P_IP), 1, None, BAD_IP),  # version 6 where 4 is expected
    (P.ether(V4, P.ETH_P_IPV6), 1, None, BAD_IP),
    (P.ether(bytes([0x44]) + V4[1:], P.ETH_P_IP), 1, None, BAD_IP),  # IHL 4
    (P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", total_length=19), 0x800), 1, None, BAD_IP),
    (bytes([0x70]) + V4[1:], 101, None, BAD_IP),
    (V6, 228, None, BAD_IP),
    (P.ether(V4, P.ETH_P_IP), 1, 14 + 20 + 3, TR4),
    (P.ether(V4, P.ETH_P_IP), 1, 14 + 20 + 19, TR4),
    (P.ether(V4, P.ETH_P_IP), 1, 14 + 20 + 23, TR4),  # MSS option cut
    (P.ether(P.ipv4(P.udp(1, 2, b"x"), 17, "1.1.1.1", "2.2.2.2"), 0x800), 1, 14 + 20 + 7, TR4),
    (P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(0, b"\0" * 14)]), 0x86DD),
     1, 14 + 40 + 15, TR4),
    (P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(60, b"")] * 9), 0x86DD), 1, None,
     LONG),  # more than 8 extension headers: not cut, but not walked
    (P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(60, b"")] * 8), 0x86DD), 1, None,
     OK),
    (P.ether(P.ipv4(P.udp(1, 2), 17, "1.1.1.1", "2.2.2.2", total_length=27), 0x800), 1, 41,
     TR4),  # cut inside the fixed header beats the lying length
    (P.ether(P.ipv4(_bad_tcp(4), 6, "1.1.1.1", "2.2.2.2"), 0x800), 1, None, BAD_L4),
    (P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", total_length=40), 0x800), 1, None,
     BAD_L4),
    (P.ether(P.ipv4(P.udp(1, 2), 17, "1.1.1.1", "2.2.2.2", total_length=27), 0x800), 1, None,
     BAD_L4),
])
def test_each_status(data, lt, caplen, status):
    w, h, got = one(data, lt, caplen)
    assert got["status"] == status
    assert_same(h, one(data, lt, caplen, width=32)[1])


WIDTH_SWEEP = [
    (P.ether(V4, P.ETH_P_IP, vlans=[(0x8100, 1)]), 1),
    (P.sll(struct.pack("!HH", 7, P.ETH_P_IPV6) + V6, P.ETH_P_8021Q), 113),
    (P.null_hdr(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", options=b"\1" * 12), 2,
                big_endian=True), 0),
    (P.sll2(P.ipv6(P.udp(5, 6, b"abc"), 17, "::1", "::2",
                   ext_headers=[(0, b"\0" * 4), (44, P.ipv6_frag_body(0, True, 1)),
                                (51, b"\0" * 12)]), P.ETH_P_IPV6), 276),
    (V6, 101),
]


@pytest.mark.parametrize(("data", "lt"), WIDTH_SWEEP, ids=lambda v: str(len(v)) if
                         isinstance(v, bytes) else str(v))
def test_every_slab_width_and_caplen_gives_the_same_answer(data, lt):
    """Every (caplen, W) pair around the headers: W must never show through."""
    fs = [Frame(data, caplen, lt, Expect()) for caplen in range(len(data) + 1)]
    w = make_window(fs, 4096)
    ref = decode(w)
    ref_tcp = tcp_of(w, ref)
    for width in range(1, len(data) + 2):
        w = make_window(fs, width)
        h = decode(w)
        assert_same(ref, h)
        assert_same(ref_tcp, tcp_of(w, h))


def test_big_mixed_window_matches_frame_by_frame():
    """Interleaved layouts (VLAN or not, v4/v6, options, extension headers, other link types):
    whole-column picking, prefetch and the rare-offset gathers must agree with one-row decodes."""
    tmpl = [(d, lt) for d, lt in WIDTH_SWEEP] + [
        (P.ether(V4, P.ETH_P_IP), 1), (P.ether(V6, P.ETH_P_IPV6), 1),
        (P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", options=b"\1" * 4), 0x800), 1),
        (P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(60, b"\0" * 150)]), 0x86DD), 1),
        (P.ether(V4, P.ETH_P_IP, vlans=[(0x88A8, 1), (0x8100, 2)]), 1),
    ]
    frames_ = [Frame(d, len(d), lt, Expect()) for d, lt in tmpl]
    rng = np.random.default_rng(7)
    pick = rng.choice(len(tmpl), 50_000, p=np.r_[[0.02] * 5, 0.45, 0.2, 0.1, 0.05, 0.1])
    for width in (128, 64):
        tiles = make_window(frames_, width)
        big = Window(tiles.slab[pick], tiles.caplen[pick], tiles.linktype[pick], tiles.buf,
                     tiles.offset[pick])
        h, ref = decode(big), decode(tiles)
        for k in HEADER_FIELDS:
            np.testing.assert_array_equal(getattr(h, k), getattr(ref, k)[pick], err_msg=k)
        tf, tr = tcp_of(big, h), tcp_of(tiles, ref)
        assert (h.status == OK).all() and h.is_tcp.sum() > 0.95 * len(pick)
        where = np.searchsorted(tr.rows, pick[tf.rows])
        for k in tr.__dataclass_fields__:
            if k != "rows":
                np.testing.assert_array_equal(getattr(tf, k), getattr(tr, k)[where], err_msg=k)


def test_inconsistent_buf_is_an_error():
    w, h, _ = one(P.ether(V6, P.ETH_P_IPV6), width=32)
    with pytest.raises(ValueError, match="past the end of buf"):
        decode_headers(w.slab, w.caplen, w.linktype, buf=w.buf[:40], offset=w.offset)


def test_header_past_ip_end_beats_cut_options():
    """Both faults: the one visible in the fixed header (data offset vs ip_end) wins."""
    pkt = P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", total_length=40)
    assert one(P.ether(pkt, 0x800), 1, 14 + 20 + 21)[2]["status"] == BAD_L4


def test_truncated_tcp_keeps_ports_and_decode_tcp_gives_only_them():
    w, h, got = one(P.ether(V4, P.ETH_P_IP), 1, 14 + 20 + 10)
    assert got["status"] == TR4 and got["has_ports"] and (got["sport"], got["dport"]) == (2525, 25)
    tf = tcp_of(w, h)
    assert (tf.seq[0], tf.flags[0], tf.payload_len[0], tf.payload_off[0]) == (0, 0, 0, 34)
    assert tf.src_addr[0].tobytes() == _mapped("192.0.2.1")


def test_fragments():
    first = P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", more_fragments=True), 0x800)
    later = P.ether(P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", frag_offset=3), 0x800)
    got1, got2 = one(first)[2], one(later)[2]
    assert (got1["frag"], got1["l4_off"], got1["has_ports"], got1["status"]) == (1, 34, True, OK)
    assert (got2["frag"], got2["l4_off"], got2["has_ports"], got2["status"]) == (2, -1, False, OK)
    assert got2["ip_proto"] == 6
    fh = P.ipv6_frag_body(0, True, 9)
    v6first = P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(44, fh)]), 0x86DD)
    got = one(v6first)[2]
    assert (got["frag"], got["l4_off"], got["ip_proto"], got["sport"]) == (1, 62, 6, 2525)
    fh = P.ipv6_frag_body(5, False, 9)
    v6later = P.ether(P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(0, b""), (44, fh)]), 0x86DD)
    got = one(v6later)[2]
    assert (got["frag"], got["l4_off"], got["ip_proto"], got["has_ports"]) == (2, -1, 6, False)


def test_ipv6_esp_and_no_next_header_stop():
    for proto in (50, 59):
        pkt = P.ipv6(b"\0" * 24, proto, "::1", "::2", ext_headers=[(0, b"")])
        got = one(P.ether(pkt, 0x86DD))[2]
        assert (got["status"], got["ip_proto"], got["l4_off"]) == (OK, proto, -1)


def test_long_extension_chain_is_read_past_the_slab():
    pkt = P.ipv6(TCP_SEG, 6, "::1", "::2", ext_headers=[(0, b"\0" * 600), (43, b"\0" * 900)])
    data = P.ether(pkt, 0x86DD)
    w, h, got = one(data, width=128)
    assert got["status"] == OK and got["l4_off"] == 14 + 40 + 608 + 904
    assert tcp_of(w, h).seq[0] == 0x01020304
    with pytest.raises(ValueError, match="buf"):
        decode_headers(w.slab, w.caplen, w.linktype)


def test_ethernet_padding_is_not_payload():
    pkt = P.ipv4(P.tcp(1, 25, 7, 8, P.ACK), 6, "1.1.1.1", "2.2.2.2")
    w, h, got = one(P.ether(pkt, 0x800, pad=True))
    tf = tcp_of(w, h)
    assert got["ip_end"] == 54 and w.caplen[0] == 60
    assert (tf.payload_off[0], tf.payload_len[0], tf.payload_caplen[0]) == (54, 0, 0)


def test_snapped_payload():
    w, h, _ = one(P.ether(V4, P.ETH_P_IP), 1, 14 + 20 + 24 + 3)
    tf = tcp_of(w, h)
    assert (tf.payload_len[0], tf.payload_caplen[0], bool(tf.snapped[0])) == (8, 3, True)


def test_declared_lengths_beyond_the_capture():
    """A 60000-byte IPv4 packet / 50000-byte IPv6 payload captured short (TSO, snaplen)."""
    for ip, l3_len in ((P.ipv4(TCP_SEG, 6, "1.1.1.1", "2.2.2.2", total_length=60000), 60000),
                       (P.ipv6(TCP_SEG, 6, "::1", "::2", payload_length=50000), 50040)):
        w, h, got = one(P.ether(ip, 0x800 if l3_len == 60000 else 0x86DD))
        assert got["status"] == OK and got["ip_end"] == 14 + l3_len
        tf = tcp_of(w, h)
        assert tf.payload_len[0] == 14 + l3_len - tf.payload_off[0] and tf.payload_caplen[0] == 8
        assert tf.snapped[0]


def _jumbogram(payload: int, size: int | None = None) -> bytes:
    seg = P.tcp(2525, 25, 1, 2, P.ACK, b"J" * payload)
    hbh = struct.pack("!BBBBI", 6, 0, 0xC2, 4, 8 + len(seg) if size is None else size)
    return P.ipv6(hbh + seg, 0, "2001:db8::1", "2001:db8::2", payload_length=0)


@pytest.mark.parametrize("width", [64, 128, 2048])
def test_ipv6_jumbogram_is_as_long_as_its_jumbo_option(width):
    """Payload length 0 and a Jumbo Payload option (RFC 2675, Linux BIG TCP): the packet is
    as long as the option says, as Wireshark reads it, at any slab width."""
    vlans = [(0x8100, 1)] * 4  # the option at bytes 72..78: past a 64-byte slab
    fs = [(P.ether(_jumbogram(70000), P.ETH_P_IPV6, vlans=vlans), 30),
          (P.ether(_jumbogram(70000), P.ETH_P_IPV6), 14),
          (P.ether(_jumbogram(10, 8 + 20 + 10), P.ETH_P_IPV6), None)]  # under 64 KiB: invalid
    w = make_window([Frame(d, len(d), 1, Expect()) for d, _ in fs], width)
    h = decode(w)
    tf = tcp_of(w, h)
    for i, (d, l3) in enumerate(fs):
        if l3 is None:
            assert h.status[i] == BAD_L4
            continue
        assert h.status[i] == OK and h.ip_proto[i] == 6 and h.ip_end[i] == len(d)
        assert tf.payload_len[i] == tf.payload_caplen[i] == 70000 and not tf.snapped[i]


def test_decode_tcp_rejects_non_tcp_rows():
    w, h, _ = one(P.ether(P.ipv4(P.udp(1, 2), 17, "1.1.1.1", "2.2.2.2"), 0x800))
    with pytest.raises(ValueError):
        decode_tcp(w.slab, w.caplen, h, np.array([0]))


def test_empty_window():
    h = decode_headers(np.zeros((0, 128), np.uint8), np.zeros(0, np.uint32),
                       np.zeros(0, np.int32))
    assert len(h) == 0 and h.is_tcp.shape == (0,)
    tf = decode_tcp(np.zeros((0, 128), np.uint8), np.zeros(0, np.uint32), h, np.zeros(0))
    assert len(tf) == 0 and tf.src_addr.shape == (0, 16)


def test_mixed_link_types_in_one_window():
    fs = [(P.ether(V4, 0x800), 1), (P.sll2(V6, 0x86DD), 276), (V4, 228), (b"\0" * 40, 147),
          (P.null_hdr(V6, 24), 0)]
    w = make_window([Frame(d, len(d), lt, Expect()) for d, lt in fs], 128)
    h = decode(w)
    assert h.status.tolist() == [OK, OK, OK, UNSUP, OK]
    assert h.l4_off.tolist() == [34, 60, 20, -1, 44]
    assert h.is_tcp.tolist() == [True, True, True, False, True]


def test_udp_mask_loose_inputs_and_bad_arguments():
    data = P.ether(P.ipv4(P.udp(53, 5353, b"q"), 17, "1.1.1.1", "2.2.2.2"), 0x800)
    slab = np.zeros((1, 64), np.uint8)
    slab[0, :len(data)] = np.frombuffer(data, np.uint8)
    h = decode_headers(slab, [len(data)], [1])  # plain lists / int64 are accepted
    assert h.is_udp.tolist() == [True] and h.is_tcp.tolist() == [False]
    assert (h.sport[0], h.dport[0]) == (53, 5353)
    with pytest.raises(ValueError):
        decode_headers(slab.astype(np.int16), [len(data)], [1])
    with pytest.raises(ValueError):
        decode_headers(slab, [len(data), 3], [1])
