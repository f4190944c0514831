"""Port selection, flow ids and the frame counters behind `fastcap stats`."""

from __future__ import annotations

import numpy as np
import pytest

from fastcap import Capture
from fastcap.select.flows import FlowTable, parse_ports
from fastcap.select.fragments import FRAG_ROW
from fastcap.select.selection import FrameCounters, iter_selected
from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap


def _run(path, ports=(25,), backend="auto"):
    counters = FrameCounters()
    flows = FlowTable()
    frames, fids, from_a = [], [], []
    with Capture(path, backend=backend, window=4) as cap:
        for sel in iter_selected(cap, ports, counters, flows):
            frames += sel.frame_no.tolist()
            fids += sel.flow.tolist()
            from_a += sel.from_a.tolist()
    return frames, fids, from_a, counters, flows


def test_flows_are_bidirectional_and_numbered_by_first_frame(tmp_path, backend):
    recs = [
        p.tcp_frame("10.0.0.9", "10.0.0.1", 40000, 25, 1, 0, p.SYN),  # flow 0, a->b? by bytes
        p.tcp_frame("10.0.0.1", "10.0.0.9", 25, 40000, 7, 2, p.SYN | p.ACK),
        p.tcp_frame("10.0.0.1", "10.0.0.2", 443, 40001, 1, 1, p.ACK),  # not selected
        p.tcp_frame("2001:db8::1", "2001:db8::2", 2525, 25, 1, 1, p.ACK, b"EHLO x\r\n"),
        p.tcp_frame("10.0.0.9", "10.0.0.1", 40000, 25, 2, 8, p.ACK, vlans=[(0x8100, 5)]),
        p.tcp_frame("2001:db8::2", "2001:db8::1", 25, 2525, 1, 9, p.ACK, b"250 ok\r\n"),
        p.tcp_frame("10.0.0.1", "10.0.0.3", 587, 40002, 1, 1, p.ACK),  # selected only w/ 587
    ]
    path = tmp_path / "f.pcap"
    write_pcap(path, [Record(r, i * 10**9) for i, r in enumerate(recs)])
    frames, fids, from_a, counters, flows = _run(path, backend=backend)
    assert frames == [1, 2, 4, 5, 6]
    assert fids == [0, 0, 1, 0, 1]
    # direction flips between the two sides of a flow
    assert from_a[0] != from_a[1] and from_a[0] == from_a[3]
    assert from_a[2] != from_a[4]
    assert len(flows) == 2
    key = flows.keys[0]
    assert {key.a_port, key.b_port} == {25, 40000}
    assert key.a_addr[-4:] == bytes([10, 0, 0, 1]) and key.a_addr[:12] == b"\0" * 10 + b"\xff" * 2
    assert counters.packets == 7 and counters.ipv4 == 5 and counters.ipv6 == 2
    assert counters.tcp == 7
    frames, *_ = _run(path, ports=(25, 587), backend=backend)
    assert frames == [1, 2, 4, 5, 6, 7]


def test_icmp_errors_quoting_selected_tcp_are_counted_apart(tmp_path):
    quoted = p.ipv4(p.tcp(40000, 25, 1, 0, p.ACK)[:8], 6, "10.0.0.9", "10.0.0.1")
    icmp = bytes([3, 4, 0, 0, 0, 0, 5, 0xDC]) + quoted
    frag_needed = p.ether(p.ipv4(icmp, 1, "10.0.0.254", "10.0.0.9"), 0x0800)
    quoted6 = p.ipv6(p.tcp(40000, 25, 1, 0, p.ACK)[:8], 6, "2001:db8::9", "2001:db8::1")
    too_big = p.ether(p.ipv6(bytes([2, 0, 0, 0, 0, 0, 5, 0xDC]) + quoted6, 58, "2001:db8::fe",
                             "2001:db8::9"), 0x86DD)
    echo = p.ether(p.ipv4(bytes([8, 0, 0, 0, 0, 1, 0, 1]) + bytes(60), 1, "10.0.0.9",
                          "10.0.0.1"), 0x0800)
    path = tmp_path / "icmp.pcap"
    write_pcap(path, [Record(f, 0) for f in (frag_needed, too_big, echo)])
    frames, _f, _a, counters, _fl = _run(path)
    assert frames == []  # not TCP segments of the flow
    assert counters.icmp_about_selected == 2
    _fr, _f, _a, counters, _fl = _run(path, ports=(443,))
    assert counters.icmp_about_selected == 0


def test_counters_skip_reasons(tmp_path):
    frames = [
        Record(p.tcp_frame("10.0.0.1", "10.0.0.2", 1, 25, 1, 1, p.ACK), 0),
        Record(b"\x00" * 10, 1),  # cut inside the Ethernet header
    ]
    path = tmp_path / "short.pcap"
    write_pcap(path, frames)
    *_, counters, _fl = _run(path)
    assert counters.skipped == {"link-layer header cut by snaplen": 1}
    path2 = tmp_path / "lt.pcap"
    write_pcap(path2, frames, linktype=160)
    *_, counters, _fl = _run(path2)
    assert counters.skipped == {"unsupported link type 160": 2}
    assert counters.other == 2


def test_long_extension_chain_has_its_own_reason(tmp_path):
    """Nine IPv6 extension headers are more than the decoder walks; the frame is whole, so
    it is not counted as cut by snaplen."""
    seg = p.tcp(40000, 25, 1, 1, p.ACK, src="2001:db8::1", dst="2001:db8::2")
    nine = p.ether(p.ipv6(seg, 6, "2001:db8::1", "2001:db8::2",
                          ext_headers=[(60, b"")] * 9), 0x86DD)
    path = tmp_path / "chain.pcap"
    write_pcap(path, [Record(nine, 0), Record(nine[:60], 1)])
    *_, counters, _fl = _run(path)
    assert counters.skipped == {"IPv6 extension chain longer than 8 headers (not decoded)": 1,
                                "TCP/UDP header cut by snaplen": 1}


def _mpls(inner: bytes) -> bytes:
    return (100 << 12 | 1 << 8 | 64).to_bytes(4, "big") + inner


def _pppoe(inner: bytes) -> bytes:
    ppp = b"\x00\x21" + inner
    return bytes([0x11, 0]) + (7).to_bytes(2, "big") + len(ppp).to_bytes(2, "big") + ppp


def test_encapsulations_are_opened_or_counted_by_name(tmp_path):
    """SMTP inside a tunnel (a cloud traffic mirror's VXLAN or Geneve, ERSPAN's GRE, an MPLS
    or PPPoE link, under a switch's Cisco MetaData tag, eight VLAN tags or IPv4 AH) is
    selected; inside an encapsulation fastcap does not open (more than 8 VLAN tags, an AH
    longer than its packet), it is told, not passed over as frames that hold no SMTP."""
    ip = p.ip_packet(p.tcp(40000, 25, 1, 1, p.ACK, b"EHLO x\r\n"), 6, "10.0.0.1", "10.0.0.2")
    inner = p.ether(ip, 0x0800)
    outer = "192.0.2.1", "192.0.2.2"
    vxlan = b"\x08\0\0\0\0\0\x64\0" + inner
    frames = [
        p.ether(_mpls(ip), 0x8847),
        p.ether(_mpls(ip), 0x8847, vlans=[(0x8100, 5)]),
        p.ether(_pppoe(ip), 0x8864),
        p.ether(bytes([1, 1, 0, 1, 0, 10, 8, 0]) + ip, 0x8909),  # Cisco MetaData (TrustSec)
        p.ether(ip, 0x0800, vlans=[(0x8100, 1)] * 8),
        p.ether(p.ipv4(b"\0\0\x65\x58" + inner, 47, *outer), 0x0800),
        p.ether(p.ipv4(ip, 4, *outer), 0x0800),
        p.ether(p.ipv6(ip, 4, "2001:db8::1", "2001:db8::2"), 0x86DD),
        p.ether(p.ipv4(p.ipv6(b"", 59, "::1", "::2"), 41, *outer), 0x0800),
        p.ether(p.ipv4(bytes([6, 4]) + bytes(22) + ip[20:], 51, *outer), 0x0800),
        p.ether(p.ipv4(p.udp(50000, 4789, vxlan), 17, *outer), 0x0800),
        p.ether(p.ipv6(p.udp(4789, 50000, vxlan), 17, "2001:db8::1", "2001:db8::2"), 0x86DD),
        p.ether(p.ipv4(p.udp(50000, 6081, b"\0\0\x65\x58\0\0\x64\0" + inner), 17, *outer),
                0x0800, vlans=[(0x8100, 9)]),
        p.ether(p.ipv4(p.udp(53, 50000, b"dns"), 17, *outer), 0x0800),  # plain UDP
        p.ether(b"\0" * 46, 0x0806),  # ARP: not IP, nothing hidden in it
        p.ether(ip, 0x0800, vlans=[(0x8100, 1)] * 9),
        p.ether(p.ipv4(bytes([6, 40]) + bytes(22) + ip[20:], 51, *outer), 0x0800),  # AH too long
    ]
    path = tmp_path / "tunnels.pcap"
    write_pcap(path, [Record(f, i) for i, f in enumerate(frames)])
    for backend in ("native", "python"):
        got, *_, counters, _fl = _run(path, backend=backend)
        assert got == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13]
        assert counters.tunnels == {"MPLS": 2, "PPPoE": 1, "GRE": 1, "IP-in-IP": 2,
                                    "IPv6-in-IP": 1, "VXLAN": 2, "Geneve": 1,
                                    "Cisco MetaData": 1}
        assert counters.skipped == {
            "frames under more than 8 VLAN tags (not decoded)": 1,
            "IPv4 AH encapsulation (not decoded)": 1,
        }
        assert (counters.ipv4, counters.ipv6, counters.udp, counters.other) == (9, 2, 4, 6)


def test_fragments_of_tcp_are_selected_as_fragment_rows(tmp_path, backend):
    """IP fragments are reassembled where the frames are fed (`select.fragments`): the
    first fragment on a selected port and every later fragment of a TCP datagram are
    selected as fragment rows, in frame order; so is a later fragment of UDP whose first one
    is not in its window (its datagram may be a VXLAN or Geneve tunnel's)."""
    seg = p.tcp(40000, 25, 1, 1, p.ACK, b"EHLO client.example\r\n" * 4)
    src, dst = "10.0.0.1", "10.0.0.2"
    first = p.ipv4(seg[:48], 6, src, dst, dont_fragment=False, more_fragments=True, ident=9,
                   total_length=68)
    rest = p.ipv4(seg[48:], 6, src, dst, dont_fragment=False, frag_offset=6, ident=9)
    v6 = p.ipv6(seg[:48], 6, "2001:db8::1", "2001:db8::2",
                ext_headers=[(p.IPPROTO_FRAGMENT, p.ipv6_frag_body(0, True, 9))])
    dns = p.ipv4(p.udp(53, 40000, bytes(40)), 17, src, dst, dont_fragment=False,
                 frag_offset=3)
    frames = [p.ether(first, 0x0800), p.ether(rest, 0x0800), p.ether(v6, 0x86DD),
              p.ether(dns, 0x0800), p.tcp_frame(src, dst, 40001, 25, 1, 1, p.ACK)]
    path = tmp_path / "frag.pcap"
    write_pcap(path, [Record(f, i) for i, f in enumerate(frames)])
    flags = []
    with Capture(path, backend=backend, window=4) as cap:
        for sel in iter_selected(cap, (25,), FrameCounters(), FlowTable()):
            flags += [int(f) & FRAG_ROW for f in sel.tcp.flags]
    got, fids, _a, counters, _fl = _run(path, backend=backend)
    assert got == [1, 2, 3, 4, 5]
    assert flags == [FRAG_ROW, FRAG_ROW, FRAG_ROW, FRAG_ROW, 0]
    assert fids[1] == -1  # a later fragment: its ports are not known
    assert counters.fragments == 4
    assert counters.skipped == {}


@pytest.mark.parametrize("text,want", [("25", {25}), ("25,587, 2525", {25, 587, 2525}),
                                        ("2525-2527", {2525, 2526, 2527})])
def test_parse_ports(text, want):
    assert parse_ports(text) == want


@pytest.mark.parametrize("text", ["", "x", "70000", "30-20", "-1", "25,,26", "25,", ",25",
                                  " , "])
def test_parse_ports_rejects(text):
    with pytest.raises(ValueError):
        parse_ports(text)


def test_flow_table_handles_identical_endpoints():
    t = FlowTable()
    a = np.zeros((2, 16), np.uint8)
    ids, from_a = t.assign(a, np.array([25, 25], np.uint16), a, np.array([25, 25], np.uint16))
    assert ids.tolist() == [0, 0] and from_a.all()
