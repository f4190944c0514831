"""Generated test captures: background traffic with SMTP sessions (benchmarks/gen_capture.py)."""

from __future__ import annotations

import datetime as dt
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generate(directory: Path, *, size: str, sessions: int, seed: int) -> dict[str, Path]:
    """The same traffic as pcap and as pcapng: {"pcap": path, "pcapng": path}.  Both are
    written as of one instant, so they start at the same time: a pcapng written after the
    pcap's last frame time would otherwise read, in one command, as the next file of a ring."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    out = {}
    for fmt in ("pcap", "pcapng"):
        p = directory / f"g.{fmt}"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(p),
                        "--size", size, "--smtp-sessions", str(sessions), "--seed", str(seed),
                        "--format", fmt, "--now", now], check=True, capture_output=True)
        out[fmt] = p
    return out


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def new_isns(pkt: bytes, delta: int) -> bytes:
    """An Ethernet frame of `generate`'s (one VLAN tag at most, IPv4, or IPv6 without
    extension headers) with its TCP sequence number, and its acknowledgement when ACK is
    set, moved by `delta`, the checksum kept right: in a later copy of a capture, new
    connections (new ISNs), not a replay tshark keeps in the first copy's streams.  Other
    frames come back as they are."""
    off = 12
    (et,) = struct.unpack_from(">H", pkt, off)
    if et in (0x8100, 0x88A8):
        off += 4
        (et,) = struct.unpack_from(">H", pkt, off)
    off += 2
    unfragmented = et == 0x0800 and not struct.unpack_from(">H", pkt, off + 6)[0] & 0x3FFF
    if unfragmented and pkt[off + 9] == 6:
        tcp = off + (pkt[off] & 0x0F) * 4
    elif et == 0x86DD and pkt[off + 6] == 6:
        tcp = off + 40
    else:
        return pkt
    out = bytearray(pkt)
    seq, ack = struct.unpack_from(">II", out, tcp + 4)
    new_ack = (ack + delta) & 0xFFFFFFFF if out[tcp + 13] & 0x10 else ack
    new_seq = (seq + delta) & 0xFFFFFFFF
    struct.pack_into(">II", out, tcp + 4, new_seq, new_ack)
    (csum,) = struct.unpack_from(">H", out, tcp + 16)
    old = (seq >> 16, seq & 0xFFFF, ack >> 16, ack & 0xFFFF)
    new = (new_seq >> 16, new_seq & 0xFFFF, new_ack >> 16, new_ack & 0xFFFF)
    s = (~csum & 0xFFFF) + sum(~w & 0xFFFF for w in old) + sum(new)
    struct.pack_into(">H", out, tcp + 16, ~_fold(s) & 0xFFFF)
    return bytes(out)
