"""Hostile inputs at scale: time and peak private memory of `fastcap scan` on each.

    python benchmarks/adversarial.py [--workdir DIR] [--json OUT]

Each case is written to DIR, then scanned by the whole command in a child process whose
RssAnon is sampled (as compare.py does); the in-process cases time one parser call.  The
table goes into README's Reliability section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for fastcap_synth
from compare import run  # benchmarks/ is the working directory or on sys.path
from fastcap_synth.packets import tcp_frame
from fastcap_synth.writers import PcapngWriter

SYN, ACK, PSH = 0x02, 0x10, 0x08
T0 = 1_700_000_000


def _pcap(path: Path, frames) -> int:
    """Classic pcap from (ts_us, frame bytes); returns the frame count."""
    n = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts_us, data in frames:
            fh.write(struct.pack("<IIII", T0 + ts_us // 10**6, ts_us % 10**6, len(data),
                                 len(data)))
            fh.write(data)
            n += 1
    return n


def overlapping_segments(path: Path, count: int) -> str:
    """One SMTP connection whose client sends `count` 1-3 byte segments at random,
    overlapping offsets inside a 4 KiB window."""
    rnd = random.Random(1)
    c, s = ("10.1.0.1", 40000), ("10.1.0.2", 25)

    def frames():
        yield 0, tcp_frame(c[0], s[0], c[1], s[1], 1000, 0, SYN, checksums=False)
        yield 1, tcp_frame(s[0], c[0], s[1], c[1], 5000, 1001, SYN | ACK, checksums=False)
        for i in range(count):
            size = rnd.randint(1, 3)
            yield 2 + i, tcp_frame(c[0], s[0], c[1], s[1], 1001 + rnd.randrange(4096), 5001,
                                   PSH | ACK, b"x" * size, checksums=False)

    n = _pcap(path, frames())
    return f"{n:,} frames: one connection, {count:,} overlapping 1-3 byte segments"


def open_connections(path: Path, count: int) -> str:
    """`count` SMTP connections that each send 1000 bytes and never close."""
    body = b"E" * 1000

    def frames():
        for i in range(count):
            cip = f"10.{2 + i // 65000}.{(i // 250) % 250}.{i % 250 + 1}"
            port = 1024 + i % 60000
            yield 2 * i, tcp_frame(cip, "10.9.0.1", port, 25, 7, 0, SYN, checksums=False)
            yield 2 * i + 1, tcp_frame(cip, "10.9.0.1", port, 25, 8, 1, PSH | ACK, body,
                                       checksums=False)

    n = _pcap(path, frames())
    return f"{n:,} frames: {count:,} connections left open, 1000 bytes each"


def garbage(path: Path, megabytes: int) -> str:
    """A valid pcapng with `megabytes` MB of random bytes between two packets."""
    frame = tcp_frame("10.3.0.1", "10.3.0.2", 40000, 25, 1, 0, SYN, checksums=False)
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        w.epb(0, frame, ts_units=T0 * 10**6)
    with open(path, "ab") as fh:
        fh.write(os.urandom(megabytes << 20))
    with PcapngWriter(path.with_suffix(".tail")) as w:
        w.section()
        w.interface(1)
        w.epb(0, frame, ts_units=T0 * 10**6 + 1)
    with open(path, "ab") as fh:
        fh.write(path.with_suffix(".tail").read_bytes())
    path.with_suffix(".tail").unlink()
    return f"{megabytes} MB of random bytes between two good sections"


def interfaces(path: Path, count: int) -> str:
    """A pcapng of `count` interface blocks, a packet after every thousandth: each block
    between packets calls the walk again, which must not rebuild what it has read."""
    frame = tcp_frame("10.4.0.1", "10.4.0.2", 40000, 25, 1, 0, SYN, checksums=False)
    with PcapngWriter(path) as w:
        w.section()
        for i in range(count):
            w.interface(1)
            if i % 1000 == 999:
                w.epb(i, frame, ts_units=T0 * 10**6 + i)
    return f"{count:,} interface blocks in one section"


def tiny_blocks(path: Path, megabytes: int) -> str:
    """A pcapng of `megabytes` MB of the smallest blocks the reader only counts (12-byte
    unknown types, 16-byte name resolution, 24-byte interface statistics), a packet after
    every thousandth: the walk steps over them itself, where handing each back to the
    reader cost about 18 µs."""
    frame = tcp_frame("10.4.0.1", "10.4.0.2", 40000, 25, 1, 0, SYN, checksums=False)
    count = megabytes * 2**20 * 3 // (12 + 16 + 24)
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        for i in range(count):
            if i % 3 == 0:
                w.raw_block(0x0000ABCD, b"")
            elif i % 3 == 1:
                w.nrb([])
            else:
                w.isb(0)
            if i % 1000 == 999:
                w.epb(0, frame, ts_units=T0 * 10**6 + i)
    return f"{count:,} tiny blocks ({megabytes} MB) a reader only counts, a packet every thousand"


def nested_der(depth: int) -> tuple[str, float]:
    """x509check.cert_info on `depth` nested SEQUENCEs (a hostile 'certificate')."""
    from fastcap.judge.x509check import cert_info

    der = b""
    for _ in range(depth):
        der = b"\x30\x84" + struct.pack(">I", len(der)) + der
    t0 = time.perf_counter()
    info = cert_info(der)
    took = time.perf_counter() - t0
    assert info.parse_error, "nested SEQUENCEs must be reported unparseable"
    return (f"certificate of {depth:,} nested SEQUENCEs ({len(der):,} bytes): unparseable",
            took)


def fragmented_handshake(records: int) -> tuple[str, float]:
    """A ServerHello split over `records` one-byte TLS records, in one flight."""
    from fastcap.proto.tls import parse_flights

    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x00"
    msg = b"\x02" + len(body).to_bytes(3, "big") + body
    msg = (msg * (records // len(msg) + 1))[:records]
    stream = b"".join(b"\x16\x03\x03\x00\x01" + msg[i : i + 1] for i in range(records))
    t0 = time.perf_counter()
    parse_flights([(False, stream)])
    return f"{records:,} one-byte handshake records ({len(stream):,} bytes)", \
        time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fastcap-adv-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, make, arg in (("overlap", overlapping_segments, 1_000_000),
                            ("open", open_connections, 100_000),
                            ("garbage", garbage, 256), ("interfaces", interfaces, 50_000),
                            ("tiny", tiny_blocks, 10)):
        ng = name in ("garbage", "interfaces", "tiny")
        path = work / f"{name}.{'pcapng' if ng else 'pcap'}"
        what = make(path, arg)
        wall, peak_kb, _ = run([sys.executable, "-m", "fastcap.cli", "scan", "--format",
                                "jsonl", str(path)], capture=False)
        rows.append({"case": what, "how": "fastcap scan, whole command",
                     "seconds": round(wall, 2), "peak_private_mb": round(peak_kb / 1024, 1),
                     "file_mb": round(path.stat().st_size / 2**20, 1)})
        path.unlink()
    for what, took in (nested_der(40_000), fragmented_handshake(100_000)):
        rows.append({"case": what, "how": "one parser call, in-process",
                     "seconds": round(took, 3), "peak_private_mb": None, "file_mb": None})
    for r in rows:
        mem = "-" if r["peak_private_mb"] is None else f"{r['peak_private_mb']} MB"
        print(f"{r['case']:75} {r['how']:30} {r['seconds']:>8} s  {mem}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
