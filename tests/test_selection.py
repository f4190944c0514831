"""Port selection, flow ids and the frame counters behind `fastcap stats`."""

from __future__ import annotations

import numpy as np
import pytest

from fastcap import Capture
from fastcap.select.flows import FlowTable, parse_ports
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


def test_fragmented_segments_on_selected_ports_are_counted(tmp_path):
    """IP fragments are not reassembled: a mail-port segment split into them loses all but its
    first fragment's bytes, which the scan summary names rather than leave a bare gap."""
    seg = p.tcp(40000, 25, 1, 1, p.ACK, b"EHLO " + b"x" * 100 + b"\r\n")
    first = p.ether(p.ipv4(seg[:48], 6, "10.0.0.9", "10.0.0.1", ident=9, dont_fragment=False,
                           more_fragments=True), 0x0800)
    rest = p.ether(p.ipv4(seg[48:], 6, "10.0.0.9", "10.0.0.1", ident=9, dont_fragment=False,
                          frag_offset=6), 0x0800)
    other = p.ether(p.ipv4(p.udp(53, 53, b"y" * 64)[:16], 17, "10.0.0.9", "10.0.0.1",
                           dont_fragment=False, more_fragments=True), 0x0800)
    path = tmp_path / "frag.pcap"
    write_pcap(path, [Record(f, i) for i, f in enumerate((first, rest, other))])
    frames, *_, counters, _fl = _run(path)
    assert frames == [1] and counters.fragments == 3
    assert counters.skipped == {
        "TCP segment on a selected port split into IP fragments (not reassembled)": 1}


@pytest.mark.parametrize("text,want", [("25", {25}), ("25,587, 2525", {25, 587, 2525}),
                                        ("2525-2527", {2525, 2526, 2527})])
def test_parse_ports(text, want):
    assert parse_ports(text) == want


@pytest.mark.parametrize("text", ["", "x", "70000", "30-20", "-1"])
def test_parse_ports_rejects(text):
    with pytest.raises(ValueError):
        parse_ports(text)


def test_flow_table_handles_identical_endpoints():
    t = FlowTable()
    a = np.zeros((2, 16), np.uint8)
    ids, from_a = t.assign(a, np.array([25, 25], np.uint16), a, np.array([25, 25], np.uint16))
    assert ids.tolist() == [0, 0] and from_a.all()
