"""Stage 4: one `Session` per TCP connection on the selected ports — reassembled streams read
as SMTP, and the TLS handshake that follows STARTTLS (or starts at byte 0 on implicit-TLS
ports) parsed.  Sessions are numbered from 1 in the order of their first frame; `scan` and
`follow` print the same numbers.  A connection the capture joined late (no SYN) is read from
where each direction becomes readable (`fastcap.midstart`), by the same parsers.
"""

from __future__ import annotations

import functools
import heapq
import os
import socket
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CaptureWarning
from .options import DEFAULT_CAP as DEFAULT_CAP
from .options import DEFAULT_DECRYPT_LIMIT, ScanOptions, resolve
from .options import DEFAULT_IMPLICIT_TLS_PORTS as DEFAULT_IMPLICIT_TLS_PORTS
from .options import DEFAULT_PORTS as DEFAULT_PORTS
from .pickling import compact, maker
from .proto.decryption import Decryption, PlainStream
from .proto.midstart import (
    MidSession,
    StreamStart,
    body_tail_at,
    chunk_tail_at,
    encrypted_at,
    find_start,
    opens_smtp,
    opens_tls,
    unit_at,
)
from .proto.smtp import (
    GREETING_CODES,
    AnomalyRecord,
    CutStart,
    SmtpDialogue,
    parse_dialogue,
    turned_detail,
)
from .proto.smtp.dialogue import connection_bytes, with_zeek_sizes, zeek_may_violate
from .proto.tls import TlsHandshake, parse_handshake
from .read.capture import DEFAULT_SLAB, DEFAULT_WINDOW, Capture
from .read.pcapng import MAX_KEY_LOG_KEPT, TLS_KEY_LOG, SecretsBlock
from .read.secrets import leading_secrets
from .read.stream import open_capture
from .select.flows import FlowTable
from .select.selection import FrameCounters, iter_selected
from .tcp.feed import Batch, copied, fed, rewritten_at, within
from .tcp.reassembly import Connection, FrameCols, Reassembler, StreamDir
from .verdict import ChainCheck, Verdict

if TYPE_CHECKING:  # loaded when a scan has keys
    from .proto.tls.keylog import KeyLog

_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def addr_text(addr16: bytes) -> str:
    """16-byte address (IPv4 as ::ffff:a.b.c.d) in the usual notation (RFC 5952 for IPv6)."""
    if addr16[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, addr16[12:])
    return socket.inet_ntop(socket.AF_INET6, addr16)


# addr_text of the few thousand addresses a capture's sessions go between, kept
_addr_text_kept = functools.lru_cache(maxsize=4096)(addr_text)


def endpoint_text(addr16: bytes, port: int) -> str:
    text = _addr_text_kept(addr16) if type(addr16) is bytes else addr_text(addr16)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


@compact
@dataclass(frozen=True, slots=True)
class TcpFacts:
    """What the transport did, for `handshake_incomplete`-style judgements."""

    client_by: str  # how the client side was told: syn | port | reply | first
    syn_seen: bool
    c2s_gaps: tuple[tuple[int, int], ...]
    s2c_gaps: tuple[tuple[int, int], ...]
    c2s_bytes: int
    s2c_bytes: int
    capped: bool  # a direction went past the per-direction byte cap
    evicted: bool  # handed on before it ended (memory budget, or waited for too long)
    retransmissions: int
    conflicting_overlaps: int
    out_of_order: int
    closed_by: str | None  # "fin", "rst" or None (capture ended first)
    # goes on with the connection its flow held before, closed on an RST that its receiver
    # did not act on: [that session's first frame, the RST's frame] (tshark: one stream)
    after_reset: tuple[int, int] | None = None
    # For the Zeek logs alone (fields named zeek_*, not in the JSON):
    # the server's first segment was a SYN (its SYN-ACK), or it sent none (a responder
    # opening without one makes Zeek's connection partial: out.zeek.zeek_reads)
    zeek_server_syn: bool = True
    # the first frame Zeek reads as another connection's (out.zeek.zeek_view): Zeek removes
    # a connection 5 s after an RST or FIN closed it, whatever fastcap made of them, or
    # once it was quiet for 5 minutes
    zeek_cut: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the fields, each gap as a list."""
        out = {name: getattr(self, name) for name in _TCP_NAMES}
        out["c2s_gaps"] = [list(g) for g in self.c2s_gaps]
        out["s2c_gaps"] = [list(g) for g in self.s2c_gaps]
        return out


_TCP_NAMES = tuple(f.name for f in fields(TcpFacts) if not f.name.startswith("zeek_"))


def _closed_by(c2s: StreamDir, s2c: StreamDir) -> str | None:
    """How the connection was closed first: "fin" once both ends sent their FIN, each before
    any RST of its own (an RST after that tears down a connection already closed in order,
    and Zeek's conn_state stays SF), "rst" where an end reset first, else None."""
    ends = ((c2s.fin_frame, c2s.rst_frame), (s2c.fin_frame, s2c.rst_frame))
    if all(fin is not None and (rst is None or fin < rst) for fin, rst in ends):
        return "fin"
    return "rst" if c2s.rst_frame is not None or s2c.rst_frame is not None else None


@compact
@dataclass(frozen=True, slots=True)
class Session:
    """One TCP connection on the mail ports, read as SMTP and TLS, and (after `scan`) judged.
    Frozen, as every fact handed between stages: a later stage that adds to it (judging,
    linking, numbering in a run of files, mail-server logs) makes a new one (`evolve`)."""

    number: int  # 1-based, order of first frame
    client: str  # "ip:port" ([v6]:port)
    server: str
    first_frame: int
    last_frame: int
    first_ts_ns: int
    last_ts_ns: int
    frames: int
    tcp: TcpFacts
    smtp: SmtpDialogue | None
    tls: TlsHandshake | None
    # Filled by fastcap.scan: certificate checks per side and the diagnosis.
    client_check: ChainCheck | None = None
    server_check: ChainCheck | None = None
    verdicts: tuple[Verdict, ...] = ()  # most severe first
    # Set when the capture began after the connection did (no SYN, a cut opening): where each
    # direction was read from and what it began with.
    mid_session: MidSession | None = None
    # Ring-buffer files this session goes on into (its frame numbers then count on from its
    # own file into these, as in `mergecap -a`); empty for a session within one file.
    continues_into: tuple[str, ...] = ()
    # Streams stay attached only for `follow`; scan drops them to keep memory flat.
    c2s: StreamDir | None = field(default=None, repr=False, compare=False)
    s2c: StreamDir | None = field(default=None, repr=False, compare=False)
    # Set only when the scan was given keys: what decrypting this session's TLS gave, and the
    # SMTP dialogue found inside it (after STARTTLS, or on an implicit-TLS port).
    decryption: Decryption | None = None
    smtp_tls: SmtpDialogue | None = None
    # The decrypted application data, kept only for `follow`, as the streams above.
    tls_c2s: PlainStream | None = field(default=None, repr=False, compare=False)
    tls_s2c: PlainStream | None = field(default=None, repr=False, compare=False)
    # Set only when the scan was given mail-server logs (--evidence): the log conversations
    # joined to this session (fastcap.evidence.join.Match, each with a to_dict()).
    evidence: tuple | None = None
    # A 250 to TURN (RFC 821 §4.1.1) left the connection's responder sending the mail: it is
    # ``client`` (the host whose certificate is judged) and the originator ``server``; the
    # connection's own facts (tcp, the dialogue's directions) stay the wire's, c2s the
    # originator's.
    roles_turned: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, the schema README documents (fastcap.out.jsonline writes the same
        JSON without the dicts: a change here goes there too)."""
        out = {
            "number": self.number,
            "client": self.client,
            "server": self.server,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns,
            "frames": self.frames,
            "continues_into": list(self.continues_into),
            "tcp": self.tcp.to_dict(),
            "smtp": self.smtp.to_dict() if self.smtp else None,
            "tls": self.tls.to_dict() if self.tls else None,
            "client_cert_check": self.client_check.to_dict() if self.client_check else None,
            "server_cert_check": self.server_check.to_dict() if self.server_check else None,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "mid_session": self.mid_session.to_dict() if self.mid_session else None,
        }
        if self.decryption is not None:  # keys were given: without, the JSON stays as it was
            out["decryption"] = self.decryption.to_dict()
            out["smtp_tls"] = self.smtp_tls.to_dict() if self.smtp_tls else None
        if self.evidence is not None:  # logs were given: likewise
            out["evidence"] = [m.to_dict() for m in self.evidence]
        if self.roles_turned:  # only after TURN: otherwise the JSON stays as it was
            out["roles_turned"] = True
        return out


# Built once per connection, and again per later stage that adds to it: through the slot
# descriptors (pickling.maker), as the records inside it are.
_make_session = maker(Session)
_make_tcp = maker(TcpFacts)
_SESSION_AT = {f.name: i for i, f in enumerate(fields(Session))}
_session_values = attrgetter(*_SESSION_AT)


def evolve(s: Session, **changes: Any) -> Session:
    """A copy of the frozen `s` with `changes` (field: value): `dataclasses.replace` without
    its ``__init__``, which stores every field through ``object.__setattr__``.  The fields'
    values are shared, not copied."""
    values = list(_session_values(s))
    for name, value in changes.items():
        at = _SESSION_AT.get(name)
        if at is None:
            raise TypeError(f"Session has no field {name!r}")
        values[at] = value
    return _make_session(*values)


def _looks_like_tls(data: bytes) -> bool:
    """A TLS handshake record header (or an SSLv2-compatible hello) at the stream start."""
    if len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and data[2] <= 0x04:
        return True
    return len(data) >= 3 and data[0] & 0x80 != 0 and data[2] == 0x01


_TLS_SCAN_LIMIT = 64 * 1024
_TLS_RECORD_TYPES = frozenset({20, 21, 22, 23})  # RFC 5246 §6.2.1


def find_tls_hello(data: bytes, msg_type: int, limit: int = _TLS_SCAN_LIMIT) -> int | None:
    """Offset of the first plausible TLS record carrying a ClientHello (1) / ServerHello (2).

    Other STARTTLS-style protocols (POP3, IMAP, FTP, XMPP, PostgreSQL, MySQL) switch to TLS
    after their own plaintext; a record header with a sane version and length followed by the
    hello's type byte is specific enough to find where.
    """
    end = min(len(data), limit)
    i = data.find(b"\x16\x03", 0, end)
    while i >= 0:
        if i + 6 <= len(data) and data[i + 2] <= 4:
            length = data[i + 3] << 8 | data[i + 4]
            if 4 <= length <= 18432 and data[i + 5] == msg_type:
                return i
        i = data.find(b"\x16\x03", i + 1, end)
    return None


def _hello_after(stream: StreamDir, at: int | None, msg_type: int) -> int | None:
    """Where TLS begins after an accepted STARTTLS: ``at``, unless plaintext was sent after the
    STARTTLS line or its 220 reply (CVE-2011-0411's command injection); then the ClientHello (1)
    or ServerHello (2) after it, where Wireshark finds the handshake too. The SMTP stage
    reports that plaintext as not_tls."""
    data = stream.data
    if at is None or at >= len(data) or data[at] in _TLS_RECORD_TYPES or data[at] & 0x80:
        return at
    found = find_tls_hello(data[at : stream.contiguous_end(at)], msg_type)
    return at if found is None else at + found


def _start(stream: StreamDir, from_client: bool) -> StreamStart:
    """Where the first stored run of bytes (after a leading gap, if any) becomes readable."""
    begin = _opening(stream)
    end = stream.contiguous_end(begin)
    start = find_start(stream.data, end, from_client, begin)
    if from_client and start.kind != "tls" and body_tail_at(stream.data, begin, end):
        return StreamStart(begin, 0, "body", "message content up to its end-of-data line",
                           stream.frame_at(begin))
    if from_client and start.kind != "tls" and chunk_tail_at(stream.data, begin, end):
        return StreamStart(begin, 0, "chunk", "a BDAT chunk's content up to the next BDAT",
                           stream.frame_at(begin))
    if start.offset >= len(stream.data):
        return start
    return StreamStart(start.offset, start.skipped, start.kind, start.what,
                       stream.frame_at(start.offset))


def _tls_after_plaintext(smtp: SmtpDialogue) -> SmtpDialogue:
    """A STARTTLS whose reply was lost was taken as refused because the client went on in
    plaintext (starttls_not_taken), but a ClientHello follows that plaintext: it was sent
    with STARTTLS in one write (CVE-2011-0411's injection), and whether TLS began is open
    again, as for any lost reply."""
    if smtp.starttls_accepted is False and any(
            a.kind == "starttls_not_taken" for a in smtp.anomalies):
        return replace(smtp, starttls_accepted=None, anomalies=tuple(
            a for a in smtp.anomalies if a.kind != "starttls_not_taken"))
    return smtp


def _chunk_end(c2s: StreamDir, start: StreamStart) -> int | None:
    """Where the BDAT chunk the client's stream begins inside ends (kind "chunk"), else None."""
    if start.kind != "chunk":
        return None
    return chunk_tail_at(c2s.data, start.offset, c2s.contiguous_end(start.offset))


def _lead_end(s2c: StreamDir, s_at: int, client_frame: int | None) -> int:
    """Offset of the server's first byte captured after the client's frame ``client_frame``."""
    if client_frame is None:
        return len(s2c.data)
    off, n, frame = s2c.seg_offset, s2c.seg_len, s2c.seg_frame
    later = np.flatnonzero((off + n > s_at) & (frame > client_frame))
    return max(s_at, int(off[later[0]])) if later.size else len(s2c.data)


def mid_session(conn: Connection, implicit_port: bool) -> MidSession | None:
    """How to read a connection the capture joined late, or None when its opening is there.

    Only without any SYN: with one, offset 0 of both directions is where they began. Either
    direction may start inside a unit (see fastcap.midstart); a connection whose directions
    begin with the protocol's opening (greeting and EHLO, or a ClientHello on an
    implicit-TLS port) reads as before.
    """
    c2s, s2c = conn.c2s, conn.s2c
    if c2s.syn_frame is not None or s2c.syn_frame is not None:
        return None
    cs, ss = _start(c2s, True), _start(s2c, False)
    if cs.kind == "empty" and ss.kind == "empty":
        return None
    client_opens = cs.kind == "empty" or (
        opens_smtp(c2s.data, cs, True) and c2s.data[:4].upper() in (b"EHLO", b"HELO"))
    if client_opens and (ss.kind == "empty" or opens_smtp(s2c.data, ss, False)):
        return None
    if implicit_port and opens_tls(c2s.data, cs):
        return None
    fc = cs.frame if cs.offset < len(c2s.data) else None
    return MidSession(conn.first_frame, cs, ss, _lead_end(s2c, ss.offset, fc))


def _opening(stream: StreamDir) -> int:
    """Offset of the first stored byte after a leading gap."""
    return stream.gaps[0][0] + stream.gaps[0][1] if stream.gaps and not stream.gaps[0][0] else 0


def _speaks_as_server(stream: StreamDir) -> bool:
    """Its first stored bytes are an SMTP reply, or a TLS record of the server's first flight
    (a ServerHello): what a server sends first."""
    data, at = stream.data, _opening(stream)
    end = stream.contiguous_end(at)
    if unit_at(data, at, end, from_client=False, any_case=False) == "smtp":
        return True
    return end - at > 5 and data[at] == 22 and data[at + 5] == 2


def greets_in_plaintext(conn: Connection) -> bool:
    """The server's stream opens with an SMTP greeting and the client's not with TLS: on an
    implicit-TLS port (where TLS starts at once, RFC 8314 §3.3) a plaintext SMTP server, whose
    dialogue is read as SMTP rather than taken for broken TLS records."""
    c2s, s2c = conn.c2s, conn.s2c
    if _opening(s2c) or not s2c.data:
        return False
    if unit_at(s2c.data, 0, s2c.contiguous_end(0), from_client=False, any_case=False) != "smtp":
        return False
    return int(s2c.data[:3]) in GREETING_CODES and not (
        not _opening(c2s) and _looks_like_tls(c2s.data[:3]))


def oriented(conn: Connection) -> Connection:
    """`conn` the right way round.  Without a SYN, a connection between two selected ports
    (a client on port 25, or --ports 25,587 with a client on 587) was oriented by its first
    frame; but in SMTP the server speaks first, and a capture that begins at the greeting
    would make the server the client.  When the side taken for the client speaks as a server
    and the other does not, they are swapped (`client_by` "reply")."""
    if conn.client_by != "first" or not _speaks_as_server(conn.c2s) or _speaks_as_server(
            conn.s2c):
        return conn
    return replace(conn, client_addr=conn.server_addr, client_port=conn.server_port,
                   server_addr=conn.client_addr, server_port=conn.client_port,
                   c2s=conn.s2c, s2c=conn.c2s, client_by="reply")


def build_session(conn: Connection, *,
                  implicit_tls_ports: Iterable[int] = DEFAULT_IMPLICIT_TLS_PORTS,
                  keep_streams: bool = False, keys: KeyLog | None = None,
                  decrypt_limit: int = DEFAULT_DECRYPT_LIMIT,
                  continues_into: list[str] | None = None) -> Session:
    """Read one reassembled connection as SMTP (+ STARTTLS) and TLS.

    TLS from byte 0 is assumed on implicit-TLS ports and whenever the client's stream opens
    with a TLS record, so TLS on a port chosen with --ports is parsed too.  With ``keys`` (a
    key log), a handshake whose ClientHello random it knows is decrypted (handshake, and up
    to ``decrypt_limit`` bytes of application data per direction) and read again.
    ``continues_into``: the later files of a run the connection goes on into.
    """
    conn = oriented(conn)
    c2s, s2c = conn.c2s, conn.s2c
    ports = frozenset(implicit_tls_ports)  # the options' own set, not a copy, when it is one
    implicit_port = conn.server_port in ports
    plain_on_tls_port = implicit_port and greets_in_plaintext(conn)
    if plain_on_tls_port:
        implicit_port = False
    mid = mid_session(conn, implicit_port)
    clean_start = not c2s.gaps or c2s.gaps[0][0] > 0
    implicit = implicit_port or (
        mid is None and clean_start and _looks_like_tls(c2s.data[:3]))
    cut = None if mid is None else CutStart(mid.c2s.offset, mid.s2c.offset, mid.s2c_lead_end,
                                            mid.c2s.kind == "body", _chunk_end(c2s, mid.c2s))
    smtp = parse_dialogue(c2s, s2c, implicit_tls=implicit, cut=None if implicit else cut,
                          implicit_ports=ports)
    if not implicit and zeek_may_violate(smtp):  # the bytes Zeek's DPD reads, for its logs
        smtp = with_zeek_sizes(smtp, connection_bytes(c2s, s2c))
    if plain_on_tls_port:
        smtp = replace(smtp, anomalies=(AnomalyRecord(
            "plaintext_on_tls_port", f"port {conn.server_port} is an implicit-TLS port, but the "
            "host listening on it greeted in plaintext: read as SMTP", "s2c", 0, smtp.banner_frame),
            *smtp.anomalies))
    tls = None
    c_at, s_at = smtp.tls_c2s_offset, smtp.tls_s2c_offset
    # After a 250 to TURN the responder sends the mail, so it is the TLS client of a STARTTLS
    # that follows: its stream holds the ClientHello and the certificate the judge reads.
    turned = roles_turned(smtp)
    t_c2s, t_s2c = (s2c, c2s) if turned and smtp.starttls_accepted else (c2s, s2c)
    if t_c2s is s2c:
        c_at, s_at = s_at, c_at
    if smtp.starttls_accepted:
        c_at, s_at = _hello_after(t_c2s, c_at, 1), _hello_after(t_s2c, s_at, 2)
    if implicit and cut is not None:
        c_at, s_at = cut.c2s_offset, cut.s2c_offset
    if c_at is None and s_at is None and not smtp.starttls_accepted:
        # Past gaps too (their bytes are zeros): a lost STARTTLS line must not hide the TLS.
        c_at = find_tls_hello(c2s.data, 1)
        if c_at is not None:
            s_at = find_tls_hello(s2c.data, 2)
            s_at = len(s2c.data) if s_at is None else s_at
            smtp = _tls_after_plaintext(smtp)
    encrypted = (False, False)
    if mid is not None:
        if c_at is None and s_at is None and "tls" in (mid.c2s.kind, mid.s2c.kind):
            # No STARTTLS in view, but TLS records are: read them from where they begin.
            c_at = mid.c2s.offset if mid.c2s.kind == "tls" else len(c2s.data)
            s_at = mid.s2c.offset if mid.s2c.kind == "tls" else len(s2c.data)
        encrypted = (c_at is not None and encrypted_at(c2s.data, c_at),
                     s_at is not None and encrypted_at(s2c.data, s_at))
    decryption = inner = None
    if c_at is not None or s_at is not None:
        tls = parse_handshake(t_c2s, t_s2c, c_at or 0, s_at or 0, encrypted=encrypted)
        if keys is not None:
            from .proto.decrypted import decrypt_tls

            inside = decrypt_tls(t_c2s, t_s2c, c_at or 0, s_at or 0, tls, keys,
                                 app_limit=decrypt_limit)
            tls, inner, decryption = inside.tls, inside, inside.decryption
    closed_by = _closed_by(c2s, s2c)
    tcp = _make_tcp(
        client_by=conn.client_by,
        syn_seen=c2s.syn_frame is not None,
        c2s_gaps=tuple(c2s.gaps),
        s2c_gaps=tuple(s2c.gaps),
        c2s_bytes=c2s.seen_bytes,
        s2c_bytes=s2c.seen_bytes,
        capped=c2s.capped or s2c.capped,
        evicted=conn.evicted,
        retransmissions=conn.retransmissions,
        conflicting_overlaps=conn.conflicting_overlaps,
        out_of_order=conn.out_of_order,
        closed_by=closed_by,
        after_reset=conn.after_reset,
        zeek_server_syn=s2c.first_syn != 0,
        zeek_cut=conn.zeek_cut,
    )
    client = endpoint_text(conn.client_addr, conn.client_port)
    server = endpoint_text(conn.server_addr, conn.server_port)
    return _make_session(
        number=conn.index + 1,
        client=server if turned else client,
        server=client if turned else server,
        first_frame=conn.first_frame,
        last_frame=conn.last_frame,
        first_ts_ns=conn.first_ts_ns,
        last_ts_ns=conn.last_ts_ns,
        frames=conn.frames,
        tcp=tcp,
        smtp=smtp,
        tls=tls,
        client_check=None,
        server_check=None,
        verdicts=(),
        mid_session=mid,
        continues_into=() if continues_into is None else tuple(continues_into),
        c2s=c2s if keep_streams else None,
        s2c=s2c if keep_streams else None,
        decryption=decryption,
        smtp_tls=inner.smtp if inner is not None else None,
        tls_c2s=inner.c2s if inner is not None and keep_streams else None,
        tls_s2c=inner.s2c if inner is not None and keep_streams else None,
        evidence=None,
        roles_turned=turned,
    )


def roles_turned(smtp: SmtpDialogue) -> bool:
    """Did 250s to TURN or ATRN leave the connection's responder sending the mail (an odd
    number of them in the plaintext dialogue)?"""
    return sum(a.kind == "roles_turned" for a in smtp.anomalies) % 2 == 1


def turn_verb(smtp: SmtpDialogue | None) -> str:
    """The command whose 250 first turned the roles, TURN or ATRN, for messages to name."""
    first = None if smtp is None else next(
        (a for a in smtp.anomalies if a.kind == "roles_turned"), None)
    return "ATRN" if first is not None and first.detail == turned_detail("ATRN") else "TURN"


def with_keys(options: ScanOptions, path: str | os.PathLike | None = None) -> ScanOptions:
    """``options`` with its key index: the key log files read once (unless done already),
    plus the Decryption Secrets Blocks at the start of the capture ``path`` (a pcapng file),
    once per file.  The index travels with the options to worker processes.  Unchanged, and
    at no cost, when there are no keys."""
    keys, read = options.key_index, options.secrets_read
    if keys is None and options.keylog:
        from .proto.tls.keylog import KeyLog

        keys = KeyLog()
        for p in options.keylog:
            keys.add_file(p)
    if path is not None and (name := os.fsdecode(path)) not in read:
        read = (*read, name)
        for data, source in leading_secrets(path):
            if keys is None:
                from .proto.tls.keylog import KeyLog

                keys = KeyLog()
            told = len(keys.warnings)
            keys.add_bytes(data, source)
            offset = int(source.rpartition(" ")[2])  # "FILE DSB at byte N"
            keys.warnings[told:] = [str(w) for w in block_warnings(
                name, offset, source, keys.warnings[told:])]
    if keys is options.key_index and read is options.secrets_read:
        return options
    return replace(options, key_index=keys, secrets_read=read)


def block_warnings(path: str, offset: int, source: str, told: Iterable[str]
                   ) -> list[CaptureWarning]:
    """The warnings a secrets block's key log gave (`told`, each naming its `source`) worded
    as the capture's own: its file and the block's offset, whichever way the block was read
    (before the scan, `with_keys`, or as the walk met it, `KeysAsRead`)."""
    return [CaptureWarning(path, offset, "keylog",
                           "TLS key log in secrets block, " + w.removeprefix(source + " "))
            for w in told]


class KeysAsRead:
    """The scan's key index, plus the TLS key logs of the Decryption Secrets Blocks met in one
    capture (or one run of ring-buffer files, frames numbered on) as it is read.  As
    Wireshark uses a block for the packets after it, a block's keys serve the sessions whose
    last frame comes after it; said by frame numbers, that is the same whether one process
    walks the file or workers read its ranges in any order.  Blocks already in the index
    (read before the scan, `with_keys`) are not added twice; key log bytes past
    MAX_KEY_LOG_KEPT are not used, from the first block that does not fit."""

    def __init__(self, keys: KeyLog | None) -> None:
        self.keys = keys
        self._names = keys.names if keys is not None else set()
        self._frames: list[int] = []  # of the blocks added, in file order
        self._logs: list[KeyLog] = []  # one per block
        self._views: dict[int, KeyLog] = {}  # blocks that apply -> the index with them
        self._kept = 0
        self.warnings: list[CaptureWarning] = []  # garbled lines of the blocks added

    def add(self, blocks: Iterable[SecretsBlock], path: str | os.PathLike,
            frame_base: int = 0) -> None:
        """The blocks of the file `path` (frames numbered after `frame_base`), in file order."""
        label = os.path.basename(os.fsdecode(path))
        for b in blocks:
            if b.secrets_type != TLS_KEY_LOG:
                continue  # other secrets (SSH, WireGuard...): not fastcap's to use
            if self._kept + b.data_len > MAX_KEY_LOG_KEPT:
                self._kept = MAX_KEY_LOG_KEPT + 1
                continue
            self._kept += b.data_len
            name = f"{label} DSB at byte {b.offset}"
            if name in self._names:
                continue
            self._names.add(name)
            from .proto.tls.keylog import KeyLog

            log = KeyLog()
            log.add_bytes(b.data, name)
            self.warnings += block_warnings(os.fsdecode(path), b.offset, name, log.warnings)
            if len(log):
                self._frames.append(frame_base + b.frame)
                self._logs.append(log)

    def for_frame(self, last_frame: int) -> KeyLog | None:
        """The key index for a session whose last frame is `last_frame`."""
        n = bisect_right(self._frames, last_frame)
        if n == 0:
            return self.keys
        view = self._views.get(n)
        if view is None:
            from .proto.tls.keylog import KeyLog

            view = self.keys if self.keys is not None else KeyLog()
            for log in self._logs[:n]:
                view = view.joined(log)
            self._views[n] = view
        return view


def keys_for(keys: KeyLog | KeysAsRead | None, last_frame: int) -> KeyLog | None:
    """The key index for a session ending at `last_frame`, from either kind of keys."""
    return keys.for_frame(last_frame) if isinstance(keys, KeysAsRead) else keys


MAX_HELD = 10_000  # finished sessions waiting for an earlier, still-open one


class InOrder:
    """Hands sessions on in number order although connections finish in any order.

    One connection open for the whole capture would otherwise hold every later session in
    memory.  Past `max_held` waiting sessions, with `give_way` the oldest is handed on at
    once and the still-open earlier one comes out of order later (counted in
    `out_of_order`); without it the caller is told (`full`) and ends the wait itself, by
    handing the awaited connection on as it stands (a run of ring-buffer files does)."""

    def __init__(self, max_held: int = MAX_HELD, *, give_way: bool = True) -> None:
        self._heap: list[tuple[int, Session]] = []
        self._next = 1
        self._max_held = max(1, max_held)
        self._asked = max_held  # as the caller put it, for the note
        self._give_way = give_way
        self.out_of_order = 0

    @property
    def awaited(self) -> int:
        """The number handed on next."""
        return self._next

    @property
    def full(self) -> bool:
        """More than `max_held` sessions wait for an earlier one."""
        return len(self._heap) > self._max_held

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, s: Session) -> Iterator[Session]:
        if s.number < self._next:  # its place was given up when the hold cap was reached
            self.out_of_order += 1
            yield s
            return
        heapq.heappush(self._heap, (s.number, s))
        if self._give_way and len(self._heap) > self._max_held:
            self._next = self._heap[0][0]
        while self._heap and self._heap[0][0] == self._next:
            self._next += 1
            yield heapq.heappop(self._heap)[1]

    def drain(self) -> Iterator[Session]:
        while self._heap:
            yield heapq.heappop(self._heap)[1]

    def note(self, counters: FrameCounters | None) -> None:
        """Count the sessions that came out of number order among `counters`' notes."""
        if counters is not None and self.out_of_order:
            counters.notes[f"sessions reported out of number order (over {self._asked} "
                           f"waited for an earlier open connection)"] += self.out_of_order


def iter_sessions(path: str | bytes | os.PathLike, options: ScanOptions | None = None, *,
                  window: int = DEFAULT_WINDOW, slab_width: int = DEFAULT_SLAB,
                  keep_streams: bool | Callable[[int], bool] = False,
                  counters: FrameCounters | None = None,
                  capture_out: list | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  max_held: int = MAX_HELD, **kw: Any) -> Iterator[Session]:
    """Every TCP connection on the options' `ports` in the capture, as a Session, in number
    order.  `options` (a ScanOptions) or its keywords (`ports`, `implicit_tls_ports`,
    `backend`, `stream_cap` (or `cap`), `piece`, ...) say what to read; not both.

    `counters` (optional) collects the frame statistics of the same pass; `capture_out`
    (optional list) receives the file's CaptureMeta when the walk is done, or what was met
    up to where the caller closed this generator.  At most `max_held` finished sessions
    wait for an earlier open one; past that, order gives way (counted in counters.skipped).
    Compressed files, pipes and `-` (stdin) are read `piece` bytes at a time.
    """
    if "cap" in kw:  # this function's own former name for stream_cap
        if "stream_cap" in kw:
            raise TypeError("iter_sessions() got both cap and stream_cap: give one")
        kw["stream_cap"] = kw.pop("cap")
    path = os.fsdecode(path)  # a bytes path as text, for the names in messages
    o = with_keys(resolve(options, kw, "iter_sessions"), path)
    return _iter_sessions(path, o, window, slab_width, keep_streams, counters, capture_out,
                          progress, max_held)


def _iter_sessions(path: str | os.PathLike, o: ScanOptions, window: int, slab_width: int,
                   keep_streams: bool | Callable[[int], bool],
                   counters: FrameCounters | None, capture_out: list | None,
                   progress: Callable[[int, int], None] | None, max_held: int
                   ) -> Iterator[Session]:
    ports, implicit, backend = o.ports, o.implicit_tls_ports, o.backend
    keys, limit = KeysAsRead(o.key_index), o.decrypt_limit
    keep = keep_streams if callable(keep_streams) else (lambda _n: bool(keep_streams))
    order = InOrder(max_held)
    flows = FlowTable()
    with open_capture(path, backend=backend, window=window, slab_width=slab_width,
                      piece=o.piece) as cap_:
        taken = 0  # secrets blocks handed to `keys`

        def met() -> None:
            nonlocal taken
            blocks = cap_.secrets_since(taken)
            if blocks:
                keys.add(blocks, path)
                taken += len(blocks)

        try:
            with Reassembler(cap_.buffer, flows, server_ports=ports, cap=o.stream_cap,
                             backend=backend) as reasm:
                bound = cap_.buffer
                mapped = isinstance(cap_, Capture)  # a stream's pieces are its own memory
                for sel in iter_selected(cap_, ports, counters, flows, progress):
                    if cap_.buffer is not bound:  # a stream's next piece
                        bound = cap_.buffer
                        reasm.rebind(bound)
                    met()
                    cols, cut = FrameCols.of(sel), cap_.cut_at()
                    if cut is not None:  # cut short since the window was walked: its end
                        cols = within(cols, cut)[0]
                    # written over in place since the window was walked (the mapping shows
                    # the bytes as they are now): none of its rows fed, reading ends there
                    moved = rewritten_at(bound, cols, 0, len(cols), len(bound) if cut is None
                                         else cut) if mapped and len(cols) else None
                    if moved is not None:
                        cap_.rewritten(moved)
                        break
                    # mapped: the payloads copied out before they are fed, so that a cut
                    # while they are read leaves out the rows past it, not feeds zeros
                    for batch in (copied(reasm, cols, bound, lambda _need: cap_.cut_at())
                                  if mapped else (Batch(0, d, None, False)
                                                  for d in fed(reasm, cols))):
                        cut = cut if batch.cut is None else batch.cut
                        for conn in batch.done:
                            yield from order.push(build_session(
                                conn, implicit_tls_ports=implicit,
                                keep_streams=keep(conn.index + 1),
                                keys=keys.for_frame(conn.last_frame), decrypt_limit=limit))
                    if cut is not None:
                        cap_.cut_short(cut)
                        break
                met()
                reasm.defrag.finish()
                if counters is not None:  # datagrams given up, by their frames
                    counters.skipped.update(reasm.defrag.take_skipped())
                for conn in reasm.drain():
                    yield from order.push(build_session(
                        conn, implicit_tls_ports=implicit, keep_streams=keep(conn.index + 1),
                        keys=keys.for_frame(conn.last_frame), decrypt_limit=limit))
                if counters is not None:
                    counters.skipped.update(reasm.skipped)
            yield from order.drain()
            order.note(counters)
        except GeneratorExit:  # the caller stopped early (`follow`): what was read
            if capture_out is not None:
                cap_.tell(*keys.warnings)
                capture_out.append(cap_.meta_so_far())
            raise
        if capture_out is not None:
            cap_.tell(*keys.warnings)
            capture_out.append(cap_.meta)
