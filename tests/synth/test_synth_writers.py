"""pcap/pcapng writers, read back by tshark and capinfos."""

from __future__ import annotations

import io
import struct
from decimal import Decimal

import pytest

from fastcap_synth import packets as p
from fastcap_synth.writers import (
    SECRETS_TLS_KEYLOG,
    PcapngWriter,
    Record,
    pcap_fcs_bits,
    to_bytes,
    write_pcap,
    write_pcapng,
)

T0 = 1_700_000_000_123_456_789


def _frames(n: int, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> list[Record]:
    return [
        Record(
            p.tcp_frame(src, dst, 1000 + i, 25, 10_000 * i + 7, 0, p.ACK, b"x" * i), T0 + i * 1001
        )
        for i in range(n)
    ]


def _fields(run_tshark, path, *fields: str) -> list[list[str]]:
    args = ["-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    return [row.split("|") for row in run_tshark(*args)]


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_roundtrip(tmp_path, run_tshark, run_capinfos, big_endian, nanosecond):
    recs = _frames(5)
    recs[3].orig_len = len(recs[3].data) + 100  # truncated capture
    path = tmp_path / "x.pcap"
    write_pcap(path, recs, nanosecond=nanosecond, big_endian=big_endian)
    magic = path.read_bytes()[:4]
    want_magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    assert magic == struct.pack(">I" if big_endian else "<I", want_magic)
    rows = _fields(
        run_tshark,
        path,
        "frame.number",
        "frame.time_epoch",
        "tcp.srcport",
        "tcp.seq_raw",
        "frame.len",
        "frame.cap_len",
    )
    assert len(rows) == 5
    for i, (num, epoch, sport, seq, flen, caplen) in enumerate(rows):
        ts = recs[i].ts_ns if nanosecond else recs[i].ts_ns // 1000 * 1000
        assert Decimal(epoch) == Decimal(ts) / 10**9
        assert (int(num), int(sport), int(seq)) == (i + 1, 1000 + i, 10_000 * i + 7)
        assert int(caplen) == len(recs[i].data)
        assert int(flen) == (recs[i].orig_len or len(recs[i].data))
    info = run_capinfos("-c", "-E", "-T", "-m", str(path))
    assert info.strip().splitlines()[-1].split(",")[1:] == ["ether", "5"]


@pytest.mark.parametrize(
    ("linktype", "wrap", "proto"),
    [
        (113, lambda b: p.sll(b, p.ETH_P_IP), "sll:ethertype:ip"),
        (276, lambda b: p.sll2(b, p.ETH_P_IP), "sll:ethertype:ip"),
        (0, lambda b: p.null_hdr(b, p.AF_INET), "null:ip"),
        (0, lambda b: p.null_hdr(b, p.AF_INET, big_endian=True), "null:ip"),
        (108, lambda b: p.loop_hdr(b, p.AF_INET), "null:ip"),  # tshark dissects DLT_LOOP as "null"
        (101, lambda b: b, "raw:ip"),
    ],
)
def test_pcap_link_types(tmp_path, run_tshark, linktype, wrap, proto):
    pkt = p.ipv4(p.tcp(1, 25, 99, 0, p.SYN), p.IPPROTO_TCP, "10.9.8.7", "10.0.0.1")
    path = tmp_path / "l.pcap"
    write_pcap(path, [Record(wrap(pkt), T0)], linktype=linktype)
    ((protos, src, seq),) = _fields(run_tshark, path, "frame.protocols", "ip.src", "tcp.seq_raw")
    assert protos.startswith(proto) and (src, seq) == ("10.9.8.7", "99")


def test_pcap_fcs_bits(tmp_path, run_tshark):
    frame = p.tcp_frame("10.0.0.1", "10.0.0.2", 1, 25, 5, 0, p.SYN) + b"\xde\xad\xbe\xef"
    path = tmp_path / "fcs.pcap"
    write_pcap(path, [Record(frame, T0)], fcs_bits=pcap_fcs_bits(2))
    assert struct.unpack("<I", path.read_bytes()[20:24])[0] == 0x24000001
    ((fcs, seq),) = _fields(run_tshark, path, "eth.fcs", "tcp.seq_raw")
    assert (fcs, seq) == ("0xdeadbeef", "5")
    with pytest.raises(ValueError):
        write_pcap(io.BytesIO(), [], fcs_bits=0x10)


def test_pcap_is_streamed():
    buf = io.BytesIO()
    seen_sizes = []

    def gen():
        for i in range(3000):
            seen_sizes.append(buf.tell())
            yield Record(b"\0" * 1500, i)

    write_pcap(buf, gen())
    assert seen_sizes[-1] > 0  # bytes reached the file before the iterator was exhausted
    assert len(buf.getvalue()) == 24 + 3000 * (16 + 1500)


def test_to_bytes_and_write_pcapng_helper(tmp_path, run_tshark):
    data = to_bytes(write_pcapng, _frames(3), big_endian=True, tsresol=9)
    assert data[:4] == b"\x0a\x0d\x0d\x0a" and data[8:12] == b"\x1a\x2b\x3c\x4d"
    path = tmp_path / "h.pcapng"
    path.write_bytes(data)
    rows = _fields(run_tshark, path, "frame.time_epoch", "tcp.seq_raw")
    assert [Decimal(r[0]) for r in rows] == [Decimal(r.ts_ns) / 10**9 for r in _frames(3)]


def test_pcapng_multi_section_interfaces_and_blocks(tmp_path, run_tshark, run_capinfos):
    path = tmp_path / "m.pcapng"
    ip_pkt = p.ipv4(p.tcp(7, 25, 42, 0, p.SYN), p.IPPROTO_TCP, "10.1.1.1", "10.2.2.2")
    eth = p.ether(ip_pkt, p.ETH_P_IP)
    with PcapngWriter(path) as w:
        w.section(big_endian=True, options=[(4, b"fastcap-synth")])
        e0 = w.interface(1, tsresol=9, name="eth0")
        s1 = w.interface(113, snaplen=65535)
        w.epb(e0, eth, ts_ns=T0)
        w.epb(s1, p.sll(ip_pkt, p.ETH_P_IP), ts_ns=T0 + 1, options=[(1, b"a comment")])
        w.nrb([("10.1.1.1", "mx.contoso.com"), ("2001:db8::1", ["a", "b"])])
        w.dsb(SECRETS_TLS_KEYLOG, b"CLIENT_RANDOM 00 11\n")
        w.isb(e0, w.to_units(e0, T0 + 5))
        w.raw_block(0x0000_0F00, b"unknown block body")
        w.section()  # little-endian; interface ids restart at 0
        r0 = w.interface(101)
        e1 = w.interface(1, tsresol=0x80 | 20, tsoffset=1_000_000_000)
        assert (r0, e1) == (0, 1)
        w.epb(e1, eth, ts_ns=T0 + 2_000)
        w.epb(r0, ip_pkt, ts_units=3_000_000)
        w.spb(p.ipv4(p.tcp(8, 25, 43, 0, p.SYN), p.IPPROTO_TCP, "10.1.1.1", "10.2.2.2"))
        w.obsolete_pb(e1, eth, ts_units=7, drops=3)
    info = run_capinfos("-c", str(path))
    assert "Number of packets:   6" in info
    rows = _fields(
        run_tshark, path, "frame.protocols", "tcp.seq_raw", "frame.time_epoch", "frame.comment"
    )
    rows = [r for r in rows if r[0] != "pcapng"]  # tshark 4.0 lists some blocks as frames
    protos = [r[0].split(":")[0] for r in rows]
    assert protos == ["eth", "sll", "eth", "raw", "raw", "eth"]
    assert [r[1] for r in rows] == ["42", "42", "42", "42", "43", "42"]
    assert rows[1][3] == "a comment"
    epochs = [Decimal(r[2]) for r in rows if r[2]]
    assert epochs[0] == Decimal(T0) / 10**9
    # 2**-20 s units with a 1e9 s offset: floor conversion, then tshark truncates to ns.
    units = (T0 + 2_000 - 10**18) * 2**20 // 10**9
    assert epochs[2] == Decimal(10**9) + Decimal(units * 10**9 // 2**20) / 10**9
    assert epochs[3] == Decimal(3)
    assert epochs[-1] == Decimal(10**9) + Decimal(7 * 10**9 // 2**20) / 10**9


def test_pcapng_custom_blocks_and_padding():
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.custom(32473, b"abcde")
        w.custom(32473, b"x", copyable=False)
        w.epb(w.interface(1), b"\1\2\3", ts_units=0)
    data = buf.getvalue()
    blocks, off = [], 0
    while off < len(data):
        btype, total = struct.unpack_from("<II", data, off)
        assert total % 4 == 0 and struct.unpack_from("<I", data, off + total - 4)[0] == total
        blocks.append(btype)
        off += total
    assert blocks == [0x0A0D0D0A, 0xBAD, 0x40000BAD, 1, 6]
    with pytest.raises(ValueError):
        PcapngWriter(io.BytesIO()).epb(0, b"", ts_ns=1, ts_units=1)
