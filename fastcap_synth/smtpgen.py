"""Whole SMTP conversations, optionally upgraded with STARTTLS, rendered as TCP frames.

Two steps keep large captures cheap: :func:`converse` runs the dialogue (and OpenSSL, if TLS is
used) once and yields application-level messages; :func:`render` turns those into TCP segments
for any addresses, ports, ISNs, segment size and start time. Benchmarks replay one conversation
many times through ``render`` instead of re-running the handshake.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import packets as p
from .certs import Issued, cert_summary
from .tlsgen import Outcome, client_random, handshake, keylog_tap, session_keylog
from .writers import Record

SERVER_NAME = "contoso-com.mail.protection.outlook.com"
BANNER = f"220 {SERVER_NAME} Microsoft ESMTP MAIL Service ready at Mon, 15 Jan 2024 09:30:00 +0000"
EHLO_EXTENSIONS = (
    "SIZE 157286400",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "SMTPUTF8",
)
TENANT_ATTRIBUTION = (
    "550 5.7.64 TenantAttribution; Relay Access Denied "
    "[BN8NAM12FT041.eop-nam12.prod.protection.outlook.com 2024-01-15T09:30:01.123Z]"
)
REJECTED_COMMANDS: tuple[tuple[str, str], ...] = (
    ("MAIL FROM:<alerts@fabrikam.com> SIZE=2048", "250 2.1.0 Sender OK"),
    ("RCPT TO:<it@contoso.com>", TENANT_ATTRIBUTION),
    ("QUIT", "221 2.0.0 Service closing transmission channel"),
)
ACCEPTED_COMMANDS: tuple[tuple[str, str], ...] = (
    ("MAIL FROM:<alerts@fabrikam.com> SIZE=2048", "250 2.1.0 Sender OK"),
    ("RCPT TO:<it@contoso.com>", "250 2.1.5 Recipient OK"),
    ("DATA", "354 Start mail input; end with <CRLF>.<CRLF>"),
    (
        "From: alerts@fabrikam.com\r\nTo: it@contoso.com\r\nSubject: nightly report\r\n\r\n"
        "All systems nominal.\r\n.\r\n",
        "250 2.6.0 <20240115093001.1@mail.fabrikam.com> [InternalId=1234567890] "
        "Queued mail for delivery",
    ),
    ("QUIT", "221 2.0.0 Service closing transmission channel"),
)


@dataclass
class SmtpScenario:
    """Everything that shapes one SMTP session, from TCP endpoints to the final reply.

    TLS is attempted when both contexts are set and the server advertises STARTTLS; a
    ``starttls_reply`` other than 2xx (e.g. "454 4.7.0 ...") refuses it and the session
    continues in plaintext. ``client_cert`` is metadata only (the certificate already loaded in
    ``client_ctx``), reported when the server requests it; otherwise the certificate the server
    verified is reported.
    """

    name: str = "smtp"
    client_ip: str = "203.0.113.10"
    client_port: int = 49152
    server_ip: str = "198.51.100.25"
    server_port: int = 25
    ehlo_name: str = "mail.fabrikam.com"
    server_name: str = SERVER_NAME
    banner: str = BANNER
    ehlo_extensions: Sequence[str] = EHLO_EXTENSIONS
    starttls_offered: bool = True
    starttls_reply: str = "220 2.0.0 SMTP server ready"
    server_ctx: ssl.SSLContext | None = None
    client_ctx: ssl.SSLContext | None = None
    sni: str | None = SERVER_NAME
    client_cert: Issued | None = None
    # A TLS session of an earlier conversation with the same contexts (its
    # Conversation.ssl_session): the client offers to resume it, as a session cache does.
    tls_session: ssl.SSLSession | None = None
    commands: Sequence[tuple[str, str]] = REJECTED_COMMANDS
    tls_close_notify: bool = True
    # Record the client's NSS key log of the TLS session on Conversation.keylog.
    keylog: bool = False
    # TCP / framing
    mss: int = 1460
    client_isn: int = 1_000_000_000
    server_isn: int = 3_000_000_000
    start_ns: int = 1_705_311_000_000_000_000
    rtt_ns: int = 30_000_000
    server_delay_ns: int = 2_000_000
    vlans: Sequence[tuple[int, int]] = ()
    client_mac: bytes = b"\x00\x15\x5d\x01\x02\x03"
    server_mac: bytes = b"\x00\x1c\x73\x0a\x0b\x0c"
    client_ttl: int = 128
    server_ttl: int = 113

    @property
    def uses_tls(self) -> bool:
        return self.server_ctx is not None and self.client_ctx is not None


@dataclass
class Message:
    """One application write: who sent it, the exact bytes, and a label for debugging."""

    from_client: bool
    data: bytes
    label: str


@dataclass
class Conversation:
    """The dialogue of one session, independent of TCP details."""

    messages: list[Message] = field(default_factory=list)
    starttls: str = "not_offered"  # accepted | refused | not_offered | not_attempted
    tls: Outcome | None = None
    client_cert_cn: str | None = None
    client_cert_sha256: str | None = None
    closer_is_client: bool = False
    ssl_session: ssl.SSLSession | None = None  # the client's, for a later resumption
    # NSS key log lines of the TLS session (SmtpScenario.keylog), as SSLKEYLOGFILE holds them.
    keylog: list[str] = field(default_factory=list)
    client_random: bytes | None = None  # the ClientHello random the key log lines are keyed by

    @property
    def tls_version(self) -> str | None:
        return self.tls.version if self.tls else None


def _line(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _ehlo_reply(sc: SmtpScenario, with_starttls: bool) -> str:
    exts = list(sc.ehlo_extensions)
    if with_starttls:
        exts.insert(min(5, len(exts)), "STARTTLS")
    lines = [f"{sc.server_name} Hello [{sc.client_ip}]", *exts]
    return "\r\n".join(
        f"250{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines)
    )


def converse(sc: SmtpScenario) -> Conversation:
    """Play the SMTP dialogue, running a real TLS handshake after an accepted STARTTLS."""
    conv = Conversation()
    msgs = conv.messages

    def say(from_client: bool, text: str, label: str) -> None:
        msgs.append(Message(from_client, _line(text), label))

    say(False, sc.banner, "banner")
    say(True, f"EHLO {sc.ehlo_name}", "ehlo")
    say(False, _ehlo_reply(sc, sc.starttls_offered), "ehlo-reply")
    if not sc.starttls_offered:
        conv.starttls = "not_offered"
    elif not sc.uses_tls:
        conv.starttls = "not_attempted"
    else:
        say(True, "STARTTLS", "starttls")
        say(False, sc.starttls_reply, "starttls-reply")
        if sc.starttls_reply.startswith("2"):
            conv.starttls = "accepted"
            _run_tls(sc, conv)
            return conv
        conv.starttls = "refused"
    for cmd, reply in sc.commands:
        say(True, cmd, "cmd")
        say(False, reply, "reply")
    return conv


def _run_tls(sc: SmtpScenario, conv: Conversation) -> None:
    assert sc.client_ctx is not None
    if not sc.keylog:
        _run_tls_session(sc, conv)
        return
    with keylog_tap(sc.client_ctx) as lines:
        _run_tls_session(sc, conv)
    conv.keylog = session_keylog(lines, conv.client_random)


def _run_tls_session(sc: SmtpScenario, conv: Conversation) -> None:
    assert sc.server_ctx is not None and sc.client_ctx is not None
    sess = handshake(sc.server_ctx, sc.client_ctx, server_hostname=sc.sni,
                     session=sc.tls_session)
    conv.tls = sess.outcome
    conv.client_random = client_random(sess.flights)
    assert sess.outcome is not None
    if sess.outcome.resumed:
        pass  # an abbreviated handshake: no certificate crosses the wire
    elif sc.client_cert is not None and sess.outcome.client_cert_requested:
        # Only a requested certificate goes on the wire; report it even if it was rejected.
        conv.client_cert_cn, conv.client_cert_sha256 = sc.client_cert.cn, sc.client_cert.sha256
    elif sess.outcome.peer_cert_der:
        conv.client_cert_cn, conv.client_cert_sha256 = cert_summary(sess.outcome.peer_cert_der)
    for from_client, data in sess.flights:
        conv.messages.append(Message(from_client, data, "tls-handshake"))
    if not sess.outcome.completed:
        conv.closer_is_client = sess.outcome.alert_by == "client"
        return
    mark = len(sess.flights)
    exchange = [(f"EHLO {sc.ehlo_name}", _ehlo_reply(sc, False)), *sc.commands]
    try:
        for cmd, reply in exchange:
            sess.send(True, _line(cmd))
            sess.send(False, _line(reply))
        if sc.tls_close_notify:
            sess.close(False)
    except ssl.SSLError:
        pass  # e.g. the peer rejected a record; what was sent so far is still on the wire
    conv.ssl_session = sess.client.session
    for from_client, data in sess.flights[mark:]:
        conv.messages.append(Message(from_client, data, "tls-data"))


@dataclass
class _Side:
    ip: str
    port: int
    seq: int
    mac: bytes
    ttl: int
    ident: int


def render(
    conv: Conversation, sc: SmtpScenario, *, linktype: int = p.LINKTYPE_ETHERNET
) -> list[Record]:
    """TCP frames for ``conv`` using the endpoints, ISNs, MSS and timing in ``sc``.

    Capture point is next to the client: client frames appear when sent, server frames half an
    RTT later. The receiver ACKs every second full segment and whenever it has nothing to say.
    """
    cli = _Side(
        sc.client_ip,
        sc.client_port,
        sc.client_isn,
        sc.client_mac,
        sc.client_ttl,
        sc.client_port * 7,
    )
    srv = _Side(
        sc.server_ip,
        sc.server_port,
        sc.server_isn,
        sc.server_mac,
        sc.server_ttl,
        sc.server_port * 13,
    )
    out: list[Record] = []
    clock = {"t": sc.start_ns, "last": True}

    def emit(from_client: bool, flags: int, payload: bytes = b"", options: bytes = b"") -> None:
        # A change of direction costs half an RTT (plus think time for the server); frames
        # in a burst are ~12 us apart, roughly their serialisation time.
        if clock["last"] != from_client:
            clock["t"] += sc.rtt_ns // 2 + (0 if from_client else sc.server_delay_ns)
        elif out:
            clock["t"] += 12_000
        clock["last"] = from_client
        a, b = (cli, srv) if from_client else (srv, cli)
        seg = p.tcp(
            a.port,
            b.port,
            a.seq,
            b.seq if flags & p.ACK else 0,
            flags,
            payload,
            # SYNs carry the raw window; later ones are scaled by the WS=256 option.
            window=(64240 if from_client else 65535) if flags & p.SYN else 502,
            options=options,
            src=a.ip,
            dst=b.ip,
        )
        ip_pkt = (
            p.ipv6(seg, p.IPPROTO_TCP, a.ip, b.ip, hop_limit=a.ttl)
            if ":" in a.ip
            else p.ipv4(seg, p.IPPROTO_TCP, a.ip, b.ip, ttl=a.ttl, ident=a.ident)
        )
        a.ident = (a.ident + 1) & 0xFFFF
        frame = p.link_encap(
            ip_pkt, linktype, eth_src=a.mac, eth_dst=b.mac, vlans=sc.vlans, outgoing=from_client
        )
        out.append(Record(frame, clock["t"]))
        a.seq = (a.seq + len(payload) + (1 if flags & (p.SYN | p.FIN) else 0)) & 0xFFFFFFFF

    syn_opts = p.opt_mss(sc.mss) + p.opt_nop() + p.opt_wscale(8) + p.opt_sack_permitted()
    emit(True, p.SYN, options=syn_opts)
    emit(False, p.SYN | p.ACK, options=syn_opts)
    emit(True, p.ACK)

    msgs = conv.messages
    for i, m in enumerate(msgs):
        chunks = [m.data[j : j + sc.mss] for j in range(0, len(m.data), sc.mss)] or [b""]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            emit(m.from_client, p.ACK | (p.PSH if last else 0), chunk)
            if n % 2 == 1 and not last:
                emit(not m.from_client, p.ACK)
        nxt = msgs[i + 1] if i + 1 < len(msgs) else None
        if nxt is None or nxt.from_client == m.from_client:
            emit(not m.from_client, p.ACK)  # idle receiver: (delayed) pure ACK

    closer = conv.closer_is_client
    emit(closer, p.FIN | p.ACK)
    emit(not closer, p.FIN | p.ACK)
    emit(closer, p.ACK)
    return out


def smtp_records(sc: SmtpScenario, *, linktype: int = p.LINKTYPE_ETHERNET) -> list[Record]:
    """Convenience: ``render(converse(sc), sc)``."""
    return render(converse(sc), sc, linktype=linktype)
