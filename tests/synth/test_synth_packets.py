"""Packet builders: byte layout checked by hand and decoded by tshark as the oracle."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap


def test_checksum_known_vector():
    # RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2 -> checksum 220d.
    assert p.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert p.checksum(b"\x01") == (~0x0100) & 0xFFFF


def test_ether_vlan_order_and_padding():
    tags = [(p.ETH_P_8021AD, p.vlan_tci(100)), (p.ETH_P_8021Q, p.vlan_tci(7, pcp=5))]
    frame = p.ether(b"xy", p.ETH_P_IP, vlans=tags, pad=True)
    assert frame[:12] == p.DEFAULT_MAC_B + p.DEFAULT_MAC_A
    assert struct.unpack("!HHHHH", frame[12:22]) == (0x88A8, 100, 0x8100, (5 << 13) | 7, 0x0800)
    assert frame[22:24] == b"xy" and len(frame) == 60


def test_cooked_and_null_headers():
    s1 = p.sll(b"P", p.ETH_P_IPV6, pkttype=4)
    assert len(s1) == 17 and struct.unpack("!H", s1[14:16])[0] == 0x86DD and s1[:2] == b"\0\x04"
    s2 = p.sll2(b"P", p.ETH_P_IP, ifindex=9)
    assert len(s2) == 21 and s2[:2] == b"\x08\x00" and struct.unpack("!I", s2[4:8])[0] == 9
    assert p.null_hdr(b"", 2) == b"\x02\0\0\0"
    assert p.null_hdr(b"", 2, big_endian=True) == b"\0\0\0\x02" == p.loop_hdr(b"", 2)


def test_ipv4_fields_and_overrides():
    pkt = p.ipv4(
        b"abc",
        17,
        "10.1.2.3",
        "10.4.5.6",
        options=b"\x94\x04",
        ident=7,
        more_fragments=True,
        frag_offset=3,
        dont_fragment=False,
    )
    assert pkt[0] == 0x46 and struct.unpack("!H", pkt[2:4])[0] == 27
    assert struct.unpack("!H", pkt[6:8])[0] == 0x2003
    assert p.checksum(pkt[:24]) == 0
    lying = p.ipv4(b"abc", 6, "1.1.1.1", "2.2.2.2", total_length=9999, checksum=False)
    assert struct.unpack("!H", lying[2:4])[0] == 9999 and lying[10:12] == b"\0\0"


def test_ipv6_ext_header_chain_lengths():
    exts = [
        (0, b""),
        (43, b"\0\0\0\0"),
        (44, p.ipv6_frag_body(5, True, 0xABCDEF)),
        (60, b""),
        (51, b"\0\0" + b"\0" * 8 + b"\xaa" * 12),
    ]
    pkt = p.ipv6(b"Z", 59, "::1", "::2", ext_headers=exts)
    assert pkt[6] == 0 and struct.unpack("!H", pkt[4:6])[0] == len(pkt) - 40
    off, seen = 40, []
    nxt = pkt[6]
    while nxt != 59:
        seen.append(nxt)
        hdr = pkt[off:]
        if nxt == 44:
            assert struct.unpack("!HI", hdr[2:8]) == ((5 << 3) | 1, 0xABCDEF)
            size = 8
        elif nxt == 51:
            size = (hdr[1] + 2) * 4
        else:
            size = (hdr[1] + 1) * 8
        assert size % 8 == 0
        nxt, off = hdr[0], off + size
    assert seen == [0, 43, 44, 60, 51] and pkt[off:] == b"Z"


def test_tcp_flags_options_and_checksum():
    seg = p.tcp(
        1,
        2,
        2**32 + 5,
        9,
        p.SYN | p.ACK | p.NS,
        b"hi",
        options=p.opt_mss(1400),
        src="10.0.0.1",
        dst="10.0.0.2",
    )
    assert struct.unpack("!I", seg[4:8])[0] == 5  # wraps modulo 2**32
    assert seg[12] == (6 << 4) | 1 and seg[13] == 0x12
    pseudo = p._pseudo_header("10.0.0.1", "10.0.0.2", 6, len(seg))
    assert p.checksum(pseudo + seg) == 0
    seg6 = p.tcp(1, 2, 0, 0, p.ACK, b"odd", src="2001:db8::1", dst="2001:db8::2")
    assert p.checksum(p._pseudo_header("2001:db8::1", "2001:db8::2", 6, len(seg6)) + seg6) == 0


def test_tshark_decodes_frames_with_valid_checksums(tmp_path, run_tshark):
    frames = [
        p.tcp_frame(
            "192.0.2.1",
            "198.51.100.2",
            40000,
            25,
            123456789,
            0,
            p.SYN,
            options=p.opt_mss(1460) + p.opt_nop() + p.opt_wscale(7),
        ),
        p.tcp_frame(
            "2001:db8::1",
            "2001:db8::2",
            40001,
            25,
            4000000000,
            77,
            p.ACK | p.PSH,
            b"EHLO x\r\n",
            vlans=[(p.ETH_P_8021Q, p.vlan_tci(42))],
        ),
        p.ether(
            p.ipv4(
                p.udp(5353, 53, b"q", src="10.0.0.1", dst="10.0.0.2"), 17, "10.0.0.1", "10.0.0.2"
            ),
            p.ETH_P_IP,
        ),
    ]
    path = tmp_path / "f.pcap"
    write_pcap(path, [Record(f, i * 1000) for i, f in enumerate(frames)])
    rows = run_tshark(
        "-r",
        str(path),
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "ip.src",
        "-e",
        "ipv6.src",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.seq_raw",
        "-e",
        "tcp.ack_raw",
        "-e",
        "tcp.checksum.status",
        "-e",
        "ip.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "vlan.id",
        "-e",
        "tcp.options.mss_val",
    )
    # Checksum status 1 means "Good" in tshark (0 bad, 2 unverified).
    cols = [r.split("|") for r in rows]
    assert cols[0][:7] == ["192.0.2.1", "", "40000", "123456789", "0", "1", "1"]
    assert cols[0][9] == "1460"
    assert cols[1][1:6] == ["2001:db8::1", "40001", "4000000000", "77", "1"] and cols[1][8] == "42"
    assert cols[2][0] == "10.0.0.1" and cols[2][6:8] == ["1", "1"]


@pytest.mark.parametrize("proto", [p.IPPROTO_TCP, p.IPPROTO_UDP])
def test_tshark_walks_ipv6_extension_chain(tmp_path, run_tshark, proto):
    src, dst = "2001:db8::a", "2001:db8::b"
    l4 = (
        p.tcp(1, 25, 1, 0, p.SYN, src=src, dst=dst)
        if proto == 6
        else p.udp(1, 9, b"x", src=src, dst=dst)
    )
    exts = [(0, b""), (60, b"\x01\x00"), (51, b"\0\0" + b"\1" * 8 + b"\xaa" * 12)]
    path = tmp_path / "e.pcap"
    write_pcap(
        path, [Record(p.ether(p.ipv6(l4, proto, src, dst, ext_headers=exts), p.ETH_P_IPV6), 0)]
    )
    (row,) = run_tshark("-r", str(path), "-T", "fields", "-e", "frame.protocols")
    assert "ipv6:ipv6.hopopts:ipv6.dstopts:ah:" + ("tcp" if proto == 6 else "udp") in row


@settings(max_examples=200, deadline=None)
@given(
    v6=st.booleans(),
    sport=st.integers(0, 65535),
    seq=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 0x1FF),
    payload=st.binary(max_size=64),
    opts=st.binary(max_size=40),
)
def test_tcp_frame_property(v6, sport, seq, flags, payload, opts):
    src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
    frame = p.tcp_frame(src, dst, sport, 25, seq, 1, flags, payload, options=opts)
    ip_len = 40 if v6 else 20
    seg = frame[14 + ip_len :]
    assert struct.unpack("!HHI", seg[:8]) == (sport, 25, seq)
    doff = seg[12] >> 4
    assert doff * 4 == 20 + len(opts) + (-len(opts) % 4)
    assert ((seg[12] & 1) << 8 | seg[13]) == flags
    assert seg[doff * 4 :] == payload and seg[20 : 20 + len(opts)] == opts
    assert p.checksum(p._pseudo_header(src, dst, 6, len(seg)) + seg) == 0
    if not v6:
        assert p.checksum(frame[14:34]) == 0
        assert struct.unpack("!H", frame[16:18])[0] == 20 + len(seg)
    else:
        assert struct.unpack("!H", frame[18:20])[0] == len(seg)
