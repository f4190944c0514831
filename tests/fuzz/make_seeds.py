"""Write the seed corpus for build/fuzz/fuzz_native (input layout: see fuzz_native.c).

Seeds start the fuzzer from real structure instead of noise: walker seeds are whole captures
(the public corpus in tests/data/corpus, examples/, small synthetic files, the regression
captures) behind a selector byte and 16 config bytes; reassembler seeds are the TCP rows
fastcap's own pipeline selects from those captures, encoded as fuzz_native decodes them, with
the capture bytes as the payload buffer.

    python tests/fuzz/make_seeds.py [OUT_DIR]      # default: build/fuzz/seeds

It also writes OUT_DIR/../py-seeds for fuzz_scan.py: captures, the SMTP and TLS streams and
certificates fastcap finds in them, and random reassembler rows.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for fastcap_synth
from fastcap.read.capture import Capture
from fastcap.select.selection import iter_selected
from fastcap.session import iter_sessions
from fastcap.tcp.reassembly import FrameCols
from fastcap_synth import packets as p
from fastcap_synth.writers import PcapngWriter, Record, write_pcap

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "data" / "corpus"
MAX_FILE = 1 << 20  # skip bigger corpus files
MAX_SEED = 64 << 10  # truncate captures to this
SEL_PCAP, SEL_PCAPNG, SEL_REASM = 0, 1, 2
PORTS = (25, 465, 587, 21, 110, 143, 443, 5222, 5432, 3306, 1080, 514, 1723, 80, 8080)


def walker_cfgs(rng: random.Random) -> list[bytes]:
    """One plain config (1 interface, microseconds) and one random one."""
    plain = bytes([1, 5, 6, 0] + [0] * 9 + [63, 80, 0])
    return [plain, bytes(rng.randrange(256) for _ in range(16))]


def synth_captures() -> Iterator[tuple[str, bytes]]:
    """Small hand-built captures covering both formats, both byte orders and every block."""
    a, b = "10.0.0.1", "10.0.0.2"
    frames = [
        p.tcp_frame(a, b, 40000, 25, 1000, 0, p.SYN),
        p.tcp_frame(b, a, 25, 40000, 5000, 1001, p.SYN | p.ACK),
        p.tcp_frame(a, b, 40000, 25, 1001, 5001, p.ACK),
        p.tcp_frame(b, a, 25, 40000, 5001, 1001, p.ACK | p.PSH, b"220 mx ESMTP\r\n"),
        p.tcp_frame(a, b, 40000, 25, 1001, 5015, p.ACK | p.PSH, b"STARTTLS\r\n"),
        p.tcp_frame(a, b, 40000, 25, 1011, 5015, p.FIN | p.ACK),
        p.tcp_frame(b, a, 25, 40000, 5015, 1012, p.RST),
    ]
    recs = [Record(f, 1_700_000_000_000_000_000 + i * 1_000_000) for i, f in enumerate(frames)]
    for be in (False, True):
        for ns in (False, True):
            out = io.BytesIO()
            write_pcap(out, recs, big_endian=be, nanosecond=ns, snaplen=60)
            yield f"synth-{'be' if be else 'le'}-{'ns' if ns else 'us'}.pcap", out.getvalue()
    out = io.BytesIO()
    with PcapngWriter(out) as w:
        w.section()
        w.interface(1, snaplen=65535, name="eth0")
        w.interface(1, snaplen=64, tsresol=0x80 | 20, tsoffset=-3600)
        for i, r in enumerate(recs):
            w.epb(i % 2, r.data, ts_ns=r.ts_ns)
        w.spb(frames[0])
        w.obsolete_pb(1, frames[1], ts_units=12345)
        w.nrb([("10.0.0.1", "a.example"), ("::1", ["lo"])])
        w.isb(0, 99)
        w.dsb(0x544C534B, b"CLIENT_RANDOM 00 11\n")
        w.custom(32473, b"custom", copyable=False)
        w.section(big_endian=True)
        w.interface(101, tsresol=9, tsoffset=1)
        w.epb(0, frames[3][14:], ts_ns=recs[3].ts_ns)
        w.epb(3, frames[4][14:], ts_units=1)  # names an interface the section lacks
    yield "synth-blocks.pcapng", out.getvalue()
    for btype, body in ((6, bytes(16)), (3, b""), (2, bytes(16))):  # packet blocks too short
        out = io.BytesIO()
        with PcapngWriter(out) as w:
            w.interface(1)
            w.raw_block(btype, body)
        yield f"synth-short-{btype}.pcapng", out.getvalue()


def capture_files() -> Iterator[tuple[str, bytes]]:
    paths = sorted(SHARED.glob("*.pcap*")) + sorted((ROOT / "examples").glob("*.pcap*"))
    regress = ROOT / "tests" / "data" / "regressions"
    paths += sorted(q for q in regress.glob("*") if q.is_file())
    for path in paths:
        if path.stat().st_size < MAX_FILE:
            yield path.name, path.read_bytes()[:MAX_SEED]
    yield from synth_captures()


def reasm_rows(data: bytes, tmp: Path) -> list[bytes]:
    """TCP rows fastcap selects from `data`, as 16-byte fuzz_native rows (raw seq/ack)."""
    tmp.write_bytes(data)
    rows: list[bytes] = []
    prev_ts = None
    try:
        with Capture(tmp, backend="python") as cap:
            for sel in iter_selected(cap, PORTS):
                fc = FrameCols.of(sel)
                for i in range(len(fc)):
                    foff, plen = int(fc.payload_file_off[i]), int(fc.payload_len[i])
                    if not 0 <= foff < 0x10000 or not 0 <= plen < 0xFF00:
                        continue
                    ts = int(fc.ts_ns[i])
                    step = 0 if prev_ts is None else min(max((ts - prev_ts) // 10**6, 0), 0xFB)
                    prev_ts = ts
                    flags = int(fc.flags[i])
                    b0 = (int(fc.flow[i]) % 4) | (0 if fc.from_a[i] else 8) | 0xF0
                    b15 = (0 if int(fc.payload_caplen[i]) >= plen else 1)
                    b15 |= (4 if int(fc.window[i]) == 0 else 0) | ((flags >> 8) & 3) << 4
                    rows.append(struct.pack("<BBHHIIBB", b0, flags & 0xFF, plen, foff,
                                            int(fc.seq[i]), int(fc.ack[i]), step, b15))
                    if len(rows) == 255:
                        return rows
    except Exception:  # noqa: BLE001 - a file the pipeline rejects just yields no rows
        pass
    return rows


def py_seeds(captures: list[tuple[str, bytes]], out: Path, tmp: Path) -> int:
    """Seeds in fuzz_scan.py's layout (selector byte first)."""
    out.mkdir(parents=True, exist_ok=True)
    blobs: list[bytes] = []
    pem = (ROOT / "examples" / "test-root.pem").read_text()
    blobs.append(b"\x03" + ssl_der(pem))
    for _name, data in captures:
        blobs.append(b"\x00" + data[:16 << 10])
        tmp.write_bytes(data)
        try:
            sessions = list(iter_sessions(tmp, backend="python", keep_streams=True))
        except Exception:  # noqa: BLE001 - not a capture fastcap reads: no streams
            sessions = []
        for s in sessions[:4]:
            c2s, s2c = s.c2s.data[:8192], s.s2c.data[:8192]
            blobs.append(b"\x02\x00" + struct.pack("<H", len(c2s)) + bytes(4) + c2s + s2c)
            d = s.smtp
            if d is not None and d.tls_c2s_offset is not None and d.tls_s2c_offset is not None:
                c, v = s.c2s.data[d.tls_c2s_offset:][:8192], s.s2c.data[d.tls_s2c_offset:][:8192]
                blobs.append(b"\x01\x00" + struct.pack("<H", len(c)) + bytes(4) + c + v)
            if s.tls is not None:
                blobs += [b"\x03" + der for der in s.tls.server_certs[:2]]
    for k in range(16):
        blobs.append(b"\x04" + np.random.default_rng(k).integers(0, 256, 5 + 20 * 30 + 200,
                                                                    np.uint8).tobytes())
    for blob in blobs:
        (out / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
    return len(blobs)


def ssl_der(pem: str) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(pem)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    tmp = out.parent / "seed-tmp.bin"
    n = 0

    def put(blob: bytes) -> None:
        nonlocal n
        (out / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
        n += 1

    captures = list(capture_files())
    for _name, data in captures:
        sel = SEL_PCAPNG if data[:4] == b"\x0a\x0d\x0d\x0a" else SEL_PCAP
        for cfg in walker_cfgs(rng):
            put(bytes([sel]) + cfg + data)
        rows = reasm_rows(data, tmp)
        if rows:
            # generous limits, then small ones that force eviction, caps and a full seg map
            for cfg in (bytes([6, 7, 3, 7, 4, 0, 1, len(rows)]),
                        bytes([3, 3, 0, 2, 2, 3, 1, len(rows)])):
                put(bytes([SEL_REASM]) + cfg + b"".join(rows) + data)
    py = py_seeds(captures, out.parent / "py-seeds", tmp)
    tmp.unlink(missing_ok=True)
    for k in range(32):  # random rows over a random payload: every decoder branch
        blob = np.random.default_rng(k).integers(0, 256, 9 + 16 * 24 + 256, np.uint8)
        blob[0] = SEL_REASM
        put(blob.tobytes())
    print(f"wrote {n} seeds to {out} and {py} to {out.parent / 'py-seeds'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "fuzz" / "seeds")
