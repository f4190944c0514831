"""Generate a large, realistic capture (plus a ground-truth JSON) for benchmarking fastcap.

    python benchmarks/gen_capture.py OUT --size 2G [--format pcap|pcapng]
                                     [--smtp-sessions 1000] [--seed N]

Speed matters more than anything here (gigabytes in well under a minute), so background traffic
is stamped out of a few hundred precomputed frame templates: only timestamps, sequence numbers
and the TCP checksum (updated arithmetically) are patched per frame. SMTP sessions come from a
handful of real OpenSSL conversations replayed with fresh addresses, ports and ISNs, interleaved
across the file in time order. OUT.truth.json describes exactly what was written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import heapq
import io
import ipaddress
import json
import random
import re
import struct
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for fastcap_synth
from fastcap_synth import packets as p
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import Conversation, Message, converse, render
from fastcap_synth.writers import PcapngWriter

# Relative frequency of each SMTP scenario in the file.
SCENARIO_WEIGHTS = (
    ("ok_client_cert", 4),
    ("no_client_cert", 2),
    ("cert_not_requested", 2),
    ("expired_client_cert", 1),
    ("untrusted_ca", 1),
    ("name_mismatch", 1),
    ("starttls_refused", 1),
    ("starttls_not_offered", 1),
    ("tls13_client_cert", 2),
)
VARIANTS_PER_SCENARIO = 2  # distinct OpenSSL runs per scenario, replayed many times
CONCURRENT_FLOWS = 48
LINK_BPS = 1_000_000_000
EXO_V4 = ("52.101.0.0/18", "40.107.0.0/16", "104.47.0.0/17")
EXO_V6 = "2a01:111:f403::/48"
CLIENT_V4 = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "100.64.0.0/12")
CLIENT_V6 = "2001:db8::/32"


def parse_size(text: str) -> int:
    """'2G', '200M', '512K' or plain bytes (binary multiples)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def _be_sum(data: bytes) -> int:
    """Unfolded ones'-complement sum of big-endian 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    return sum(words)


def _fold(s: int) -> int:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Framer:
    """Per-format record framing: a fixed header template plus where the timestamp lives."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def file_header(self) -> bytes:
        if self.fmt == "pcap":
            return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
        buf = io.BytesIO()
        w = PcapngWriter(buf)
        w.section(options=[(4, b"fastcap benchmarks/gen_capture.py")])
        w.interface(1, snaplen=262144, tsresol=6, name="eth0")
        w.close()
        return buf.getvalue()

    def wrap(self, frame: bytes) -> tuple[bytes, int]:
        """(record bytes with zero timestamp, offset of the frame inside the record)."""
        n = len(frame)
        if self.fmt == "pcap":
            return struct.pack("<IIII", 0, 0, n, n) + frame, 16
        pad = -n % 4
        total = 32 + n + pad
        return (
            struct.pack("<IIIIIII", 6, total, 0, 0, 0, n, n)
            + frame
            + b"\0" * pad
            + struct.pack("<I", total)
        ), 28

    def stamp(self, rec: bytearray, ts_ns: int) -> None:
        us = ts_ns // 1000
        if self.fmt == "pcap":
            struct.pack_into("<II", rec, 0, us // 1_000_000, us % 1_000_000)
        else:
            struct.pack_into("<II", rec, 12, us >> 32, us & 0xFFFFFFFF)


@dataclass
class Template:
    """A framed TCP record whose seq/ack/checksum are patched per use."""

    rec: bytes
    seq_off: int  # offset of the seq field inside ``rec`` (ack follows)
    csum_off: int
    base_sum: int  # ones'-complement sum of pseudo header + segment with seq=ack=csum=0
    paylen: int
    syn_fin: int  # sequence space consumed by SYN/FIN


def make_template(
    framer: Framer,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    payload: bytes,
    vlans: tuple[tuple[int, int], ...],
    options: bytes = b"",
) -> Template:
    seg = p.tcp(sport, dport, 0, 0, flags, payload, window=2053, options=options)
    pseudo = p._pseudo_header(src, dst, p.IPPROTO_TCP, len(seg))
    ip_pkt = p.ip_packet(seg, p.IPPROTO_TCP, src, dst, ttl=(64 if ":" in src else 118))
    frame = p.ether(ip_pkt, p.ethertype_for(src), vlans=vlans)
    rec, foff = framer.wrap(frame)
    tcp_off = foff + len(frame) - len(seg)
    return Template(
        rec=rec,
        seq_off=tcp_off + 4,
        csum_off=tcp_off + 16,
        base_sum=_be_sum(pseudo + seg),
        paylen=len(payload),
        syn_fin=1 if flags & (p.SYN | p.FIN) else 0,
    )


_SEQACK = struct.Struct(">II")
_CSUM = struct.Struct(">H")


def emit_tcp(tpl: Template, seq: int, ack: int) -> bytearray:
    """Copy a template and patch seq, ack and the TCP checksum (RFC 1624 style)."""
    rec = bytearray(tpl.rec)
    _SEQACK.pack_into(rec, tpl.seq_off, seq, ack)
    s = tpl.base_sum + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
    _CSUM.pack_into(rec, tpl.csum_off, _fold(s))
    return rec


class Addresses:
    """Seeded random address and port picker."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used_25: set[tuple[str, int]] = set()

    def _in(self, cidr: str) -> str:
        net = ipaddress.ip_network(cidr)
        return str(net[self.rng.randrange(1, min(net.num_addresses - 1, 1 << 30))])

    def client(self, v6: bool) -> str:
        return self._in(CLIENT_V6) if v6 else self._in(self.rng.choice(CLIENT_V4))

    def server(self, v6: bool) -> str:
        return self._in(EXO_V6) if v6 else self._in(self.rng.choice(EXO_V4))

    def ephemeral(self) -> int:
        return self.rng.randrange(32768, 61000)

    def smtp_client(self, v6: bool) -> tuple[str, int]:
        while True:
            key = (self.client(v6), self.ephemeral())
            if key not in self.used_25:
                self.used_25.add(key)
                return key

    def vlans(self) -> tuple[tuple[int, int], ...]:
        return ((p.ETH_P_8021Q, p.vlan_tci(self.rng.choice((10, 20, 101, 300)))),)


class BulkFlow:
    """A long TCP transfer on 443/445/80: SYN, MSS-sized data with ACKs every 2nd segment, FIN."""

    def __init__(self, framer: Framer, rng: random.Random, addrs: Addresses, payload: bytes):
        v6 = rng.random() < 0.05
        self.vlans = addrs.vlans() if rng.random() < 0.05 else ()
        self.cli, self.srv = addrs.client(v6), addrs.server(v6)
        self.cport = addrs.ephemeral()
        self.sport = rng.choices((443, 445, 80), weights=(6, 2, 2))[0]
        self.cseq, self.sseq = rng.getrandbits(32), rng.getrandbits(32)
        self.remaining = int(rng.paretovariate(1.2) * 200)  # heavy-tailed transfer sizes
        self.upload = self.sport == 445 and rng.random() < 0.4
        self.framer = framer
        mss = 1440 if v6 else 1460
        snd, rcv = (self.cli, self.srv) if self.upload else (self.srv, self.cli)
        sp, rp = (self.cport, self.sport) if self.upload else (self.sport, self.cport)
        off = rng.randrange(0, len(payload) - mss)
        self.data = make_template(
            framer, snd, rcv, sp, rp, p.ACK, payload[off : off + mss], self.vlans
        )
        tail = rng.randrange(1, mss)
        self.tail = make_template(
            framer, snd, rcv, sp, rp, p.ACK | p.PSH, payload[:tail], self.vlans
        )
        self.ack = make_template(framer, rcv, snd, rp, sp, p.ACK, b"", self.vlans)

    def _one(
        self,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        opts: bytes = b"",
    ) -> bytearray:
        return emit_tcp(
            make_template(self.framer, src, dst, sport, dport, flags, b"", self.vlans, opts),
            seq,
            ack,
        )

    def opening(self) -> list[bytearray]:
        opts = p.opt_mss(1460) + p.opt_nop() + p.opt_wscale(8) + p.opt_sack_permitted()
        c, s = self.cseq, self.sseq
        out = [
            self._one(self.cli, self.srv, self.cport, self.sport, c, 0, p.SYN, opts),
            self._one(self.srv, self.cli, self.sport, self.cport, s, c + 1, p.SYN | p.ACK, opts),
            self._one(self.cli, self.srv, self.cport, self.sport, c + 1, s + 1, p.ACK),
        ]
        self.cseq, self.sseq = (c + 1) & 0xFFFFFFFF, (s + 1) & 0xFFFFFFFF
        return out

    def closing(self) -> list[bytearray]:
        c, s = self.cseq, self.sseq
        return [
            self._one(self.cli, self.srv, self.cport, self.sport, c, s, p.FIN | p.ACK),
            self._one(self.srv, self.cli, self.sport, self.cport, s, c + 1, p.FIN | p.ACK),
            self._one(self.cli, self.srv, self.cport, self.sport, c + 1, s + 1, p.ACK),
        ]

    def burst(self, n: int) -> list[bytearray]:
        """Up to ``n`` data segments (+ ACKs); the flow's last burst ends with a short segment."""
        out = []
        snd, rcv = (self.cseq, self.sseq) if self.upload else (self.sseq, self.cseq)
        data, ack = self.data, self.ack
        for i in range(min(n, self.remaining)):
            tpl = self.tail if self.remaining == 1 else data
            out.append(emit_tcp(tpl, snd, rcv))
            snd = (snd + tpl.paylen) & 0xFFFFFFFF
            self.remaining -= 1
            if i % 2 == 1 or self.remaining == 0:
                out.append(emit_tcp(ack, rcv, snd))
        if self.upload:
            self.cseq, self.sseq = snd, rcv
        else:
            self.sseq, self.cseq = snd, rcv
        return out


def dns_pairs(framer: Framer, rng: random.Random, addrs: Addresses, n: int) -> list[list[bytes]]:
    """Pre-framed DNS query/response pairs (A and AAAA lookups of plausible names)."""
    names = [
        "outlook.office365.com",
        "login.microsoftonline.com",
        "www.example.com",
        "contoso-com.mail.protection.outlook.com",
        "update.fabrikam.com",
        "cdn.example.net",
    ]
    out = []
    for _ in range(n):
        name = rng.choice(names)
        qtype = rng.choice((1, 28))
        qid = rng.getrandbits(16)
        q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
        q += struct.pack(">HH", qtype, 1)
        query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q
        rdata = bytes(rng.getrandbits(8) for _ in range(4 if qtype == 1 else 16))
        answer = b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 300, len(rdata)) + rdata
        resp = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + answer
        cli, res = addrs.client(False), "10.0.0.53"
        port = addrs.ephemeral()
        pair = []
        for src, dst, sp, dp, body in ((cli, res, port, 53, query), (res, cli, 53, port, resp)):
            frame = p.ether(
                p.ipv4(p.udp(sp, dp, body, src=src, dst=dst), p.IPPROTO_UDP, src, dst), p.ETH_P_IP
            )
            pair.append(framer.wrap(frame)[0])
        out.append(pair)
    return out


@dataclass
class Session:
    """One replayed SMTP session waiting to be interleaved."""

    records: list[tuple[int, bytes]]  # (offset from session start in ns, framed record)
    truth: dict
    start_at_byte: int


def _retarget(conv: Conversation, old_ip: str, new_ip: str) -> Conversation:
    """Point the plaintext 'Hello [ip]' at the replayed client address (TLS bytes are opaque)."""
    old, new = f"[{old_ip}]".encode(), f"[{new_ip}]".encode()
    msgs = [
        Message(m.from_client, m.data.replace(old, new), m.label)
        if not m.label.startswith("tls")
        else m
        for m in conv.messages
    ]
    return dataclasses.replace(conv, messages=msgs)


def plan_smtp(
    framer: Framer,
    rng: random.Random,
    addrs: Addresses,
    n: int,
    size: int,
    now: dt.datetime | None = None,
) -> list[Session]:
    """Run a few real conversations per scenario and replay them ``n`` times.

    The certificates are made at ``now`` (valid from a day before), so a capture stamped
    shortly before ``now`` finds them valid, and the expired one expired.
    """
    pki = make_pki(now)
    pool: dict[str, list[tuple[Conversation, object]]] = {}
    for name in SCENARIO_NAMES:
        pool[name] = []
        for _ in range(VARIANTS_PER_SCENARIO):
            sc = scenario(name, pki)
            pool[name].append((converse(sc), sc))
    names = [name for name, _ in SCENARIO_WEIGHTS]
    weights = [weight for _, weight in SCENARIO_WEIGHTS]
    sessions = []
    for _ in range(n):
        name = rng.choices(names, weights)[0]
        conv, base = rng.choice(pool[name])
        v6 = rng.random() < 0.05
        cip, cport = addrs.smtp_client(v6)
        sc = dataclasses.replace(
            base,  # type: ignore[type-var]
            client_ip=cip,
            client_port=cport,
            server_ip=addrs.server(v6),
            client_isn=rng.getrandbits(32),
            server_isn=rng.getrandbits(32),
            mss=rng.choices((1460, 1380, 1220, 536), (10, 3, 1, 1))[0] - (20 if v6 else 0),
            rtt_ns=rng.randrange(5_000_000, 120_000_000),
            vlans=addrs.vlans() if rng.random() < 0.05 else (),
            start_ns=0,
        )
        recs = render(_retarget(conv, base.client_ip, cip), sc)  # type: ignore[attr-defined]
        tls = conv.tls
        sessions.append(
            Session(
                records=[(r.ts_ns, framer.wrap(r.data)[0]) for r in recs],
                truth={
                    "client": _ep(cip, cport),
                    "server": _ep(sc.server_ip, sc.server_port),
                    "first_frame": None,
                    "frames": len(recs),
                    "scenario": name,
                    "starttls": conv.starttls,
                    "tls_version": conv.tls_version,
                    "tls_alert_by": tls.alert_by if tls else None,
                    "tls_alert": tls.peer_error if tls and tls.alert_by else None,
                    "client_cert_requested": bool(tls and tls.client_cert_requested),
                    "client_cert_cn": conv.client_cert_cn,
                    "client_cert_sha256": conv.client_cert_sha256,
                    "vlan": bool(sc.vlans),
                    "ipv6": v6,
                },
                start_at_byte=0,
            )
        )
    # Spread session starts over the first 90% of the file.
    starts = sorted(rng.randrange(0, max(1, int(size * 0.9))) for _ in sessions)
    for s, at in zip(sessions, starts, strict=True):
        s.start_at_byte = at
    return sessions


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def generate(out: Path, size: int, fmt: str, n_smtp: int, seed: int,
             now: dt.datetime | None = None) -> dict:
    """Write the capture and return the truth dictionary.  `now` (default: the clock, to the
    second) fixes the certificates' and the capture's times: two captures given the same
    `now` and seed start at the same instant, whatever time passed between their writing."""
    rng = random.Random(seed)
    framer = Framer(fmt)
    addrs = Addresses(rng)
    payload = rng.randbytes(1 << 16)
    # Certificates are made now and valid from a day ago; the capture starts an hour ago, so
    # every session falls inside their validity window (only the expired one is out of date).
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    sessions = plan_smtp(framer, rng, addrs, n_smtp, size, now)
    smtp_bytes = sum(len(r) for s in sessions for _, r in s.records)
    if sessions and smtp_bytes > size * 0.5:
        keep = max(1, int(len(sessions) * size * 0.5 / smtp_bytes))
        print(
            f"note: --size too small for {len(sessions)} SMTP sessions; writing {keep}",
            file=sys.stderr,
        )
        sessions = sorted(rng.sample(sessions, keep), key=lambda s: s.start_at_byte)
        smtp_bytes = sum(len(r) for s in sessions for _, r in s.records)
    flows = [BulkFlow(framer, rng, addrs, payload) for _ in range(CONCURRENT_FLOWS)]
    dns = dns_pairs(framer, rng, addrs, 64)

    header = framer.file_header()
    budget = size - len(header) - smtp_bytes  # bytes of background traffic to write
    t = int((now - dt.timedelta(hours=1)).timestamp()) * 1_000_000_000 + rng.randrange(0, 10**12)
    stamp = framer.stamp
    frames = 0
    written = len(header)
    background = 0
    heap: list[tuple[int, int, int]] = []  # (due_ns, session, index)
    next_session = 0
    last_ts = t
    parts: list[bytes] = []
    pending = 0

    with open(out, "wb", buffering=0) as fh:
        fh.write(header)

        def put(rec: bytearray | bytes, ts: int) -> None:
            nonlocal frames, written, pending, last_ts
            if not isinstance(rec, bytearray):
                rec = bytearray(rec)
            ts = max(ts, last_ts)
            stamp(rec, ts)
            last_ts = ts
            parts.append(rec)
            frames += 1
            written += len(rec)
            pending += len(rec)

        def flush_smtp(now: int) -> None:
            nonlocal next_session
            while next_session < len(sessions) and sessions[next_session].start_at_byte <= written:
                s = sessions[next_session]
                for i, (off, _) in enumerate(s.records):
                    heapq.heappush(heap, (now + off, next_session, i))
                next_session += 1
            while heap and heap[0][0] <= now:
                due, si, i = heapq.heappop(heap)
                s = sessions[si]
                if i == 0:
                    s.truth["first_frame"] = frames + 1
                put(s.records[i][1], due)

        while background < budget:
            flush_smtp(t)
            r = rng.random()
            if r < 0.1:
                for rec in rng.choice(dns):
                    put(rec, t)
                    t += rng.randrange(2_000, 30_000)
                    background += len(rec)
                continue
            k = rng.randrange(len(flows))
            f = flows[k]
            batch = f.burst(rng.randrange(2, 12))
            if f.remaining == 0:
                batch += f.closing()
                flows[k] = BulkFlow(framer, rng, addrs, payload)
                batch += flows[k].opening()
            for rec in batch:
                put(rec, t)
                background += len(rec)
                t += len(rec) * 8 * 1_000_000_000 // LINK_BPS + rng.randrange(0, 2_000)
            if pending >= 8 << 20:
                fh.write(b"".join(parts))
                parts.clear()
                pending = 0
        # Whatever SMTP traffic is still scheduled finishes after the background stops.
        while next_session < len(sessions) or heap:
            if not heap:
                sessions[next_session].start_at_byte = 0
            flush_smtp(heap[0][0] if heap else t)
        fh.write(b"".join(parts))

    truth_sessions = [s.truth for s in sorted(sessions, key=lambda s: s.truth["first_frame"])]
    return {
        "format": fmt,
        "linktype": 1,
        "seed": seed,
        "frames": frames,
        "bytes": written,
        "port25": {
            "frames": sum(s["frames"] for s in truth_sessions),
            "flows": len(truth_sessions),
        },
        "smtp_sessions": truth_sessions,
    }


def _utc_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text)
    return (t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)).replace(
        microsecond=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=parse_size, default=parse_size("100M"))
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--smtp-sessions", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--now", type=_utc_time, default=None,
                    help="the time the capture is written as of, ISO 8601 (default: the clock)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    truth = generate(args.out, args.size, args.format, args.smtp_sessions, args.seed, args.now)
    truth_path = args.out.with_name(args.out.name + ".truth.json")
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    dt = time.perf_counter() - t0
    print(
        f"wrote {args.out} ({truth['bytes'] / 1e6:.1f} MB, {truth['frames']} frames, "
        f"{truth['port25']['flows']} SMTP sessions) in {dt:.1f}s; truth in {truth_path}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
