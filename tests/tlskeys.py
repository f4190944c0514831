"""What tshark decrypts, per TCP stream: the oracle for fastcap's key-log decryption.

``tshark_view(capture, keylog)`` runs tshark with ``-o tls.keylog_file:KEYS`` (a pcapng's
Decryption Secrets Block is used without it) and returns, per TCP stream, the handshake message
types in wire order, the certificates each side sent, the SMTP commands and reply codes tshark
dissected inside TLS, and the decrypted application bytes of each direction
(``-z follow,tls,raw``). Tests compare fastcap's decrypted view of the same capture to this.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Corpus captures (tests/data/corpus) that come with TLS keys: capture -> key log file (relative
# to the corpus folder), or None when the keys are in the capture's own Decryption Secrets Block.
# ndpi__doq.pcapng is DNS over QUIC (UDP): its keys are real but fastcap reads TCP only.
CORPUS_WITH_KEYS: dict[str, str | None] = {
    "zeek__tls12-decryption.pcap": "keys/zeek__tls12-decryption.keylog",
    "ndpi__doq.pcapng": None,
}

_AGG = "\x1f"  # aggregator for repeated fields: never inside a value tshark prints here
_FIELDS = (
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "frame.protocols",
    "tls.handshake.type",
    "tls.handshake.certificate",
    "smtp.req.command",
    "smtp.response.code",
    "frame.number",
)


def tshark_path() -> str | None:
    """tshark's path, or None when it is not installed (tests then skip)."""
    return shutil.which("tshark")


@dataclass
class TsharkStream:
    """tshark's view of one TCP stream. "Decrypted" SMTP means dissected inside TLS."""

    stream: int
    client: tuple[str, int] | None = None  # from the SYN; None if the capture has none
    handshake: list[tuple[bool, int]] = field(default_factory=list)  # (from_client, type)
    client_certs: list[bytes] = field(default_factory=list)  # DER, leaf first
    server_certs: list[bytes] = field(default_factory=list)
    smtp_commands: list[str] = field(default_factory=list)  # decrypted, e.g. "RCPT"
    smtp_replies: list[int] = field(default_factory=list)  # decrypted reply codes
    smtp_frames: list[int] = field(default_factory=list)  # frames with decrypted SMTP
    client_data: bytes = b""  # decrypted application data, client to server
    server_data: bytes = b""

    def handshake_types(self, from_client: bool) -> list[int]:
        """One direction's handshake message types, in order."""
        return [t for c, t in self.handshake if c == from_client]

    def lines(self, from_client: bool) -> list[str]:
        """One direction's decrypted application data as CRLF-separated lines."""
        data = self.client_data if from_client else self.server_data
        return data.decode("latin-1").split("\r\n")[:-1] if data else []


def _run(args: list[str]) -> str:
    exe = tshark_path()
    if exe is None:
        raise FileNotFoundError("tshark is not installed")
    proc = subprocess.run([exe, "-n", *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _common(capture: Path, keylog: Path | None, smtp_ports: tuple[int, ...]) -> list[str]:
    args = ["-r", str(capture)]
    if keylog is not None:
        args += ["-o", f"tls.keylog_file:{keylog}"]
    for port in smtp_ports:
        args += ["-d", f"tcp.port=={port},smtp"]
    return args


def tshark_view(
    capture: str | Path,
    keylog: str | Path | None = None,
    *,
    smtp_ports: tuple[int, ...] = (25,),
    follow: bool = True,
) -> dict[int, TsharkStream]:
    """tshark's decrypted view of every TCP stream of ``capture`` (see the module docstring).

    Raises FileNotFoundError when tshark is missing and RuntimeError when it fails.
    """
    capture = Path(capture)
    keylog = Path(keylog) if keylog is not None else None
    common = _common(capture, keylog, smtp_ports)
    out = _run(
        [
            *common,
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            f"aggregator={_AGG}",
            *(x for f in _FIELDS for x in ("-e", f)),
        ]
    )
    streams: dict[int, TsharkStream] = {}
    for row in out.splitlines():
        cols = row.split("\t")
        if len(cols) != len(_FIELDS) or not cols[0]:
            continue
        (stream_s, src4, src6, sport, syn, ack, protos, htypes, certs, cmds, codes, fno) = cols
        st = streams.setdefault(int(stream_s), TsharkStream(int(stream_s)))
        src = (src4 or src6, int(sport))
        if syn in ("1", "True") and ack in ("0", "False") and st.client is None:
            st.client = src
        from_client = st.client is not None and src == st.client
        for t in filter(None, htypes.split(_AGG)):
            st.handshake.append((from_client, int(t)))
        ders = [bytes.fromhex(c.replace(":", "")) for c in certs.split(_AGG) if c]
        (st.client_certs if from_client else st.server_certs).extend(ders)
        inside_tls = "tls" in protos.split(":")
        if inside_tls and (cmds or codes):
            st.smtp_frames.append(int(fno))
            st.smtp_commands += [c for c in cmds.split(_AGG) if c]
            st.smtp_replies += [int(c) for c in codes.split(_AGG) if c]
    if follow and streams:
        _add_follow(streams, common)
    return streams


_FOLLOW_HEAD = re.compile(r"^Filter: tcp\.stream eq (\d+)$")
_NODE0 = re.compile(r"^Node 0: (.*):(\d+)$")


def _add_follow(streams: dict[int, TsharkStream], common: list[str]) -> None:
    """Fill client_data/server_data from one tshark run with a follow per stream."""
    args = [*common, "-q"]
    for n in sorted(streams):
        args += ["-z", f"follow,tls,raw,{n}"]
    current: TsharkStream | None = None
    node0: tuple[str, int] | None = None
    chunks: dict[bool, list[bytes]] = {True: [], False: []}

    def flush() -> None:
        if current is not None:
            current.client_data = b"".join(chunks[True])
            current.server_data = b"".join(chunks[False])

    for line in _run(args).splitlines():
        if m := _FOLLOW_HEAD.match(line):
            flush()
            current, node0 = streams[int(m.group(1))], None
            chunks = {True: [], False: []}
        elif current is not None and node0 is None and (m := _NODE0.match(line)):
            node0 = (m.group(1).strip("[]"), int(m.group(2)))
        elif current is not None and node0 is not None and re.fullmatch(r"\t?[0-9a-f]+", line):
            # Unindented chunks were sent by node 0, indented ones by the other side.
            by_node0 = not line.startswith("\t")
            from_client = by_node0 == (node0 == current.client)
            chunks[from_client].append(bytes.fromhex(line.strip()))
    flush()
