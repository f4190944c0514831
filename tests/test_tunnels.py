"""Tunnelled mail traffic (cloud mirrors, ERSPAN, MPLS, PPPoE, IP-in-IP) is opened as
Wireshark opens it: the same sessions and verdicts as the frames captured bare."""

from __future__ import annotations

import json
import random
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fastcap import Capture, scan
from fastcap.out import report
from fastcap.select.decode import decode_headers
from fastcap.select.flows import FlowTable
from fastcap.select.fragments import FRAG_ROW
from fastcap.select.selection import FrameCounters, iter_selected
from fastcap.select.stats import compute_stats
from fastcap.select.tunnels import open_tunnels
from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap

DATA = Path(__file__).parent / "data" / "corpus"
OUTER = "192.0.2.1", "192.0.2.2"
OUTER6 = "2001:db8::1", "2001:db8::2"


def _gre(flags: int, proto: int, extra: bytes = b"") -> bytes:
    return flags.to_bytes(2, "big") + proto.to_bytes(2, "big") + extra


def _labels(n: int) -> bytes:
    return b"".join((100 + i << 12 | (i == n - 1) << 8 | 64).to_bytes(4, "big") for i in range(n))


def _pppoe(ip: bytes) -> bytes:
    ppp = (0x21 if ip[0] >> 4 == 4 else 0x57).to_bytes(2, "big") + ip
    return bytes([0x11, 0]) + (7).to_bytes(2, "big") + len(ppp).to_bytes(2, "big") + ppp


def _ip_proto(ip: bytes) -> int:
    return 4 if ip[0] >> 4 == 4 else 41


def _ethertype(ip: bytes) -> bytes:
    return b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd"


def _ah(payload: bytes, next_header: int) -> bytes:
    """An Authentication Header (RFC 4302) of a 12-byte ICV, then `payload`."""
    return bytes([next_header, 4, 0, 0]) + b"\0\0\x12\x34" + b"\0\0\0\1" + bytes(12) + payload


def _ah_transport(ip: bytes) -> bytes:
    """The packet with AH in transport mode between its IP header and its payload."""
    v4 = ip[0] >> 4 == 4
    hlen, length_at, proto_at = ((ip[0] & 15) * 4, 2, 9) if v4 else (40, 4, 6)
    hdr = bytearray(ip[:hlen])
    hdr[length_at:length_at + 2] = (int.from_bytes(hdr[length_at:length_at + 2], "big")
                                    + 24).to_bytes(2, "big")
    proto, hdr[proto_at] = hdr[proto_at], 51
    return bytes(hdr) + _ah(ip[hlen:], proto)


# Each wraps an Ethernet frame (`eth`, whose IP packet is `ip`) the way a tunnel carries it.
WRAP = {
    "vxlan": lambda eth, ip: p.ether(p.ipv4(p.udp(50000, 4789, b"\x08\0\0\0\0\0\x64\0" + eth),
                                            17, *OUTER), 0x0800),
    "vxlan-ipv6": lambda eth, ip: p.ether(p.ipv6(p.udp(4789, 50000, b"\x08\0\0\0\0\1\0\0" + eth),
                                                 17, *OUTER6), 0x86DD),
    "geneve-options": lambda eth, ip: p.ether(p.ipv4(p.udp(
        50000, 6081, b"\x02\0\x65\x58\0\0\x64\0" + b"\x01\x02\x03\x01\0\0\0\0" + eth),
        17, *OUTER), 0x0800, vlans=[(0x8100, 9)]),
    "erspan-ii": lambda eth, ip: p.ether(p.ipv4(
        _gre(0x1000, 0x88BE, b"\0\0\0\1") + b"\x10\x01\0\0\0\0\0\0" + eth, 47, *OUTER), 0x0800),
    "erspan-iii": lambda eth, ip: p.ether(p.ipv4(
        _gre(0x1000, 0x22EB, b"\0\0\0\1") + b"\x20\x01\0\0" + bytes(7) + b"\1" + bytes(8)
        + eth, 47, *OUTER), 0x0800),
    "gre-keyed": lambda eth, ip: p.ether(p.ipv4(
        _gre(0xB000, 0x0800 if ip[0] >> 4 == 4 else 0x86DD, bytes(12)) + ip, 47, *OUTER),
        0x0800),
    "gre-ethernet": lambda eth, ip: p.ether(p.ipv6(_gre(0, 0x6558) + eth, 47, *OUTER6), 0x86DD),
    "mpls": lambda eth, ip: p.ether(_labels(3) + ip, 0x8847, vlans=[(0x8100, 5)]),
    "pppoe": lambda eth, ip: p.ether(_pppoe(ip), 0x8864),
    "ip-in-ip": lambda eth, ip: p.ether(p.ipv4(ip, _ip_proto(ip), *OUTER), 0x0800),
    "802.1ah": lambda eth, ip: p.ether(b"\0\1\0\0" + eth, 0x88E7),
    "erspan-i": lambda eth, ip: p.ether(p.ipv4(_gre(0, 0x88BE) + eth, 47, *OUTER), 0x0800),
    # the tags switches insert before the EtherType: Cisco TrustSec, a fabric extender, 802.1BR
    "cisco-metadata": lambda eth, ip: p.ether(b"\1\1\0\1\0\x10" + _ethertype(ip) + ip, 0x8909),
    "vn-tag": lambda eth, ip: p.ether(b"\0\1\0\2" + _ethertype(ip) + ip, 0x8926,
                                      vlans=[(0x8100, 3)]),
    "e-tag": lambda eth, ip: p.ether(b"\0\0\x10\1\0\0\x81\0\0\5" + _ethertype(ip) + ip,
                                     0x893F),
    # IPsec AH in transport mode (not a tunnel), and in tunnel mode (the IP inside is)
    "ah-transport": lambda eth, ip: p.ether(_ah_transport(ip), int(_ethertype(ip).hex(), 16)),
    "ah-tunnel": lambda eth, ip: p.ether(p.ipv4(_ah(ip, _ip_proto(ip)), 51, *OUTER), 0x0800),
    # not a tunnel either: eight VLAN tags
    "vlan-8": lambda eth, ip: p.ether(ip, int(_ethertype(ip).hex(), 16),
                                      vlans=[(0x8100, i + 1) for i in range(8)]),
    "mpls-in-vxlan": lambda eth, ip: p.ether(p.ipv4(p.udp(
        50000, 4789, b"\x08\0\0\0\0\0\x64\0" + p.ether(_labels(2) + ip, 0x8847,
                                                     vlans=[(0x8100, 7)])), 17, *OUTER), 0x0800),
    "gre-in-vxlan": lambda eth, ip: p.ether(p.ipv4(p.udp(50000, 4789, b"\x08\0\0\0\0\0\x64\0"
                                                         + p.ether(p.ipv4(_gre(0, 0x6558) + eth,
                                                                          47, *OUTER), 0x0800)),
                                                   17, *OUTER), 0x0800),
}
NAMES = {"vxlan": "VXLAN", "vxlan-ipv6": "VXLAN", "geneve-options": "Geneve",
         "erspan-i": "ERSPAN", "erspan-ii": "ERSPAN",
         "mpls-in-vxlan": "VXLAN", "erspan-iii": "ERSPAN", "gre-keyed": "GRE",
         "gre-ethernet": "GRE", "mpls": "MPLS", "pppoe": "PPPoE", "ip-in-ip": "IP-in-IP",
         "802.1ah": "802.1ah MAC-in-MAC", "gre-in-vxlan": "VXLAN",
         "cisco-metadata": "Cisco MetaData", "vn-tag": "VN-Tag", "e-tag": "802.1BR E-Tag",
         "ah-tunnel": "IP-in-IP"}


def _records(path: Path) -> list[Record]:
    """The records of a little-endian microsecond pcap of Ethernet frames."""
    data = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", data)[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, 20)[0] == 1
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        out.append(Record(data[pos + 16:pos + 16 + incl], sec * 10**9 + usec * 1000,
                          orig))
        pos += 16 + incl
    return out


def _wrapped(src: Path, kind: str, dest: Path) -> Path:
    recs = []
    for r in _records(src):
        eth, at = r.data, 12
        while eth[at:at + 2] == b"\x81\x00":  # VLAN tags
            at += 4
        assert eth[at:at + 2] in (b"\x08\x00", b"\x86\xdd")
        ip = eth[at + 2:]
        out = WRAP[kind](eth, ip)
        recs.append(Record(out, r.ts_ns, len(out) + (r.orig_len - len(eth))))
    write_pcap(dest, recs)
    return dest


def _sessions(path: Path, backend: str) -> list[str]:
    return [json.dumps(report.session_record(s, "x"), default=str, sort_keys=True)
            for s in scan(path, backend=backend)]


@pytest.mark.parametrize("kind", sorted(WRAP))
@pytest.mark.parametrize("name", ["zeek__smtp-starttls.pcap", "ndpi__smtp-starttls.pcap"])
def test_a_tunnelled_capture_scans_as_the_bare_one(tmp_path, backend, kind, name):
    """Sessions, frame numbers, times, certificates and verdicts: all the same."""
    bare = _sessions(DATA / name, backend)
    assert bare and any('"code": "client_cert_not_requested"' in s for s in bare)
    got = _sessions(_wrapped(DATA / name, kind, tmp_path / f"{kind}.pcap"), backend)
    assert got == bare


@pytest.mark.parametrize("kind", ["vxlan", "erspan-ii", "mpls", "gre-in-vxlan", "vn-tag",
                                  "ah-tunnel"])
def test_stats_count_the_frames_opened_by_their_outermost_tunnel(tmp_path, kind):
    name = "zeek__smtp-starttls.pcap"
    bare = compute_stats(DATA / name)
    st = compute_stats(_wrapped(DATA / name, kind, tmp_path / "w.pcap"))
    assert st.tunnels == {NAMES[kind]: bare.packets}
    assert (st.selected_frames, st.selected_flows) == (bare.selected_frames, bare.selected_flows)
    assert not any("not decoded" in r for r in st.skipped)


def test_an_ah_fragment_after_the_first_is_counted_not_opened(tmp_path, backend):
    """A non-first fragment of an AH packet has no header to step over (as in Wireshark):
    with no other AH in its window, it once ended the scan with a numpy error."""
    seg = p.tcp(1025, 25, 1, 1, 0x18, b"MAIL FROM:<a@example.com>\r\n", src=OUTER[0],
                dst=OUTER[1])
    frames = [p.ether(p.ipv4(_ah(seg, 6), 51, *OUTER, more_fragments=more, frag_offset=off,
                             dont_fragment=False), 0x0800)
              for more, off in ((True, 0), (False, 5))]
    path = tmp_path / "ah-frag.pcap"
    write_pcap(path, [Record(frames[1], 1_700_000_000_000_000_000)])
    st = compute_stats(path, backend=backend)
    assert (st.frames, st.fragments, st.selected_frames) == (1, 1, 0)
    assert list(scan(path, backend=backend)) == []
    write_pcap(path, [Record(f, 1_700_000_000_000_000_000 + i) for i, f in enumerate(frames)])
    assert compute_stats(path, backend=backend).fragments == 2


def _odd_frames() -> list[bytes]:
    """Tunnels whose inner frame is not opened (Wireshark does not open them either, or
    only by guessing), each with SMTP inside, and two it opens."""
    ip = p.ip_packet(p.tcp(40000, 25, 1, 1, p.ACK, b"EHLO x\r\n"), 6, "10.0.0.1", "10.0.0.2")
    eth = p.ether(ip, 0x0800)
    return [
        p.ether(_labels(1) + b"\0\0\0\0" + eth, 0x8847),  # a pseudowire's control word
        p.ether(p.ipv4(_gre(0x4000, 0x0800, bytes(4)) + ip, 47, *OUTER), 0x0800),  # routing
        p.ether(p.ipv4(_gre(0x3081, 0x880B, bytes(12)) + b"\xff\x03\xc0\x21" + bytes(8), 47,
                       *OUTER), 0x0800),  # PPTP's PPP, of LCP
        p.ether(p.ipv4(p.udp(50000, 6081, b"\0\0\x12\x34\0\0\x64\0" + eth), 17, *OUTER),
                0x0800),  # Geneve of an unknown protocol
        p.ether(bytes([0x11, 0, 0, 7, 0, 10, 0xC0, 0x21]) + bytes(8), 0x8864),  # PPPoE LCP
        # opened: the first of an outer packet's fragments (a fragment row, its datagram
        # never completed), VXLAN without its I flag, GRE version 1 carrying IPv4, PPTP's
        # PPP with and without address, control and a full protocol field
        p.ether(p.ipv4(_gre(0, 0x0800) + ip, 47, *OUTER, frag_offset=0, more_fragments=True),
                0x0800),
        p.ether(p.ipv4(p.udp(50000, 4789, bytes(8) + eth), 17, *OUTER), 0x0800),
        p.ether(p.ipv4(_gre(0x0001, 0x0800) + ip, 47, *OUTER), 0x0800),
        p.ether(p.ipv4(_gre(0x3081, 0x880B, bytes(12)) + b"\xff\x03\x00\x21" + ip, 47,
                       *OUTER), 0x0800),
        p.ether(p.ipv4(_gre(0x2001, 0x880B, bytes(4)) + b"\x21" + ip, 47, *OUTER), 0x0800),
    ]


def test_tunnels_that_do_not_say_what_they_carry_stay_closed(tmp_path, backend):
    path = tmp_path / "odd.pcap"
    write_pcap(path, [Record(f, i) for i, f in enumerate(_odd_frames())])
    counters, flows, frames, rows = FrameCounters(), FlowTable(), [], []
    with Capture(path, backend=backend, window=3) as cap:
        for sel in iter_selected(cap, (25,), counters, flows):
            row = (sel.tcp.flags & FRAG_ROW) != 0
            frames += sel.frame_no[~row].tolist()
            rows += sel.frame_no[row].tolist()
    assert frames == [7, 8, 9, 10] and rows == [6]
    assert counters.tunnels == {"VXLAN": 1, "GRE": 4}
    assert counters.skipped == {"MPLS encapsulation (not decoded)": 1,
                                "GRE encapsulation (not decoded)": 2,
                                "Geneve encapsulation (not decoded)": 1,
                                "PPPoE encapsulation (not decoded)": 1}


def test_hostile_tunnel_headers_stay_inside_their_frame(tmp_path):
    """Option lengths, flags and label stacks that point past the frame: nothing is read
    beyond caplen, and the frame is not selected."""
    ip = p.ip_packet(p.tcp(40000, 25, 1, 1, p.ACK, b"x"), 6, "10.0.0.1", "10.0.0.2")
    frames = [
        p.ether(p.ipv4(_gre(0xF000, 0x22EB), 47, *OUTER), 0x0800),
        p.ether(_labels(12), 0x8847),
        p.ether(p.ipv4(p.udp(50000, 4789, b"\x08\0\0"), 17, *OUTER), 0x0800),
        p.ether(p.ipv4(ip, 4, *OUTER), 0x0800)[:40],  # the inner header cut by the snaplen
        p.ether(p.ipv4(p.udp(50000, 6081, b"\x3f\0\x65\x58\0\0\x64\0"), 17, *OUTER), 0x0800),
        # last in the file: its ERSPAN header would start past the file's end
        p.ether(p.ipv4(_gre(0xB000, 0x22EB), 47, *OUTER), 0x0800)[:38],
    ]
    recs = [Record(f, i) for i, f in enumerate(frames)]
    path = tmp_path / "hostile.pcap"
    write_pcap(path, recs)
    with Capture(path) as cap:
        for win in cap.windows():
            buf = np.frombuffer(cap.buffer, np.uint8)
            lt = np.ones(len(win), np.int32)
            h = decode_headers(win.slab, win.caplen, lt, buf=buf, offset=win.offset)
            for kw in ({"buf": buf, "offset": win.offset}, {}):  # the slab alone too
                o = open_tunnels(h, win.slab, win.caplen, lt, **kw)
                inner = h if o is None else o.headers
                assert not (inner.is_tcp & (inner.dport == 25) & (inner.status == 0)).any()
                assert (inner.ip_end <= win.caplen.astype(np.int64)).all()
    st = compute_stats(path)
    assert st.selected_frames == 0 and st.packets == 6


def test_tshark_selects_the_same_tunnelled_frames(tmp_path, tshark):
    """Wireshark's `tcp.port == 25` and fastcap's selection agree frame for frame."""
    recs, n = [], 0
    for kind in sorted(WRAP):
        for r in _records(DATA / "zeek__smtp-starttls.pcap")[:6]:
            recs.append(Record(WRAP[kind](r.data, r.data[14:]), n))
            n += 1
    recs += [Record(f, n + i) for i, f in enumerate(_odd_frames())]
    path = tmp_path / "mix.pcap"
    write_pcap(path, recs)
    out = subprocess.run([tshark, "-r", str(path), "-n", "-Y", "tcp.port == 25", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.len"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    want = [tuple(map(int, line.split("\t"))) for line in out if line]
    got = []
    with Capture(path) as cap:
        for sel in iter_selected(cap, (25,)):
            whole = (sel.tcp.flags & FRAG_ROW) == 0  # a lone fragment: no segment, as in tshark
            got += zip(sel.frame_no[whole].tolist(), sel.tcp.payload_len[whole].tolist(),
                       strict=True)
    assert got == want


def test_the_inner_packet_ends_where_the_outer_one_does(tmp_path, backend):
    """An inner IP length past the outer packet's end would take the frame's trailer (an FCS)
    as TCP payload."""
    inner = p.ipv4(p.tcp(40000, 25, 1, 1, p.ACK, b"Q"), 6, "10.0.0.1", "10.0.0.2",
                   total_length=1000)
    frame = p.ether(p.ipv4(inner, 4, *OUTER), 0x0800) + b"\xde\xad\xbe\xef"
    path = tmp_path / "long.pcap"
    write_pcap(path, [Record(frame, 0)])
    with Capture(path, backend=backend) as cap:
        (sel,) = list(iter_selected(cap, (25,)))
    assert (sel.tcp.payload_len.tolist(), sel.tcp.payload_caplen.tolist()) == ([1], [1])


@pytest.mark.parametrize("seed", range(3))
def test_damaged_tunnel_frames_stay_inside_their_frames(tmp_path, seed, require_native):
    """Tunnel frames with random bytes changed and random cuts: both readers select the same
    payloads, and every payload lies inside its own frame."""
    rng = random.Random(seed)
    bare = _records(DATA / "zeek__smtp-starttls.pcap")
    recs = []
    for i in range(400):
        r = rng.choice(bare)
        f = bytearray(WRAP[rng.choice(sorted(WRAP))](r.data, r.data[14:]))
        for _ in range(rng.randint(0, 4)):
            f[rng.randrange(len(f))] = rng.randrange(256)
        if rng.random() < 0.3:
            f = f[:rng.randrange(1, len(f) + 1)]
        recs.append(Record(bytes(f), i))
    path = tmp_path / "damaged.pcap"
    write_pcap(path, recs)
    got = {}
    for backend in ("native", "python"):
        rows = []
        with Capture(path, backend=backend, window=37) as cap:
            for sel in iter_selected(cap, (25,)):
                rows += zip(sel.frame_no.tolist(), sel.payload_file_off.tolist(),
                            sel.tcp.payload_caplen.tolist(), strict=True)
        got[backend] = rows
    assert got["native"] == got["python"] and len(got["native"]) > 100
    frames = {}
    with Capture(path) as cap:
        for win in cap.windows():
            for f, o, c in zip(win.frame_no.tolist(), win.offset.tolist(),
                               win.caplen.tolist(), strict=True):
                frames[f] = (o, o + c)
    for f, off, n in got["native"]:
        lo, hi = frames[f]
        assert lo <= off and off + n <= hi
