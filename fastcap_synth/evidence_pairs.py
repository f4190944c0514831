"""Captures that pair with the mail-server log fixtures of ``tests/data/evidence/``.

A log line and a capture only tell the same story if they agree on endpoints, times and the
certificate sent, so this writes real OpenSSL STARTTLS sessions at the exact client/server
addresses, ports and instants a fixture names, sending one of the committed certificates of
``tests/data/evidence/certs`` (see :mod:`fastcap_synth.evidence_certs`). The server plays
Exchange Online: its name and banner, a CertificateRequest, and a TLS handshake that accepts
any certificate (Exchange Online judges the certificate after TLS, with 550 5.7.64), so an
expired or untrusted certificate is still followed by the SMTP reply the fixture logged.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from .certs import Issued, make_leaf
from .evidence_certs import NAMES, load
from .smtpgen import SERVER_NAME, SmtpScenario, converse, render
from .tlsgen import client_context, server_context
from .writers import Record, keylog_bytes, write_pcap, write_pcapng

CERTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "evidence" / "certs"
X509_V_FLAG_NO_CHECK_TIME = 0x200000  # not exposed by ssl.VerifyFlags
EXO_HOST = "AM4PEPF00027A5C.mail.protection.outlook.com"  # the front end the story's logs name


def tenant_attribution(stamp: str, session_id: str,
                       host: str = "AM4PEPF00027A5C.eurprd04.prod.outlook.com") -> str:
    """Exchange Online's 550 5.7.64, naming its front end, the time and its session id."""
    return f"550 5.7.64 TenantAttribution; Relay Access Denied [{host} {stamp} {session_id}]"


TENANT_ATTRIBUTION_5764 = tenant_attribution("2026-03-10T09:15:02.463Z", "08DE5F3A2B1C4D01")


def load_issued(name: str, directory: str | Path = CERTS_DIR) -> Issued:
    """A committed certificate ("good", "expired", "wrongname", "untrusted", or a CA's stem:
    "root", "issuing", "relay1-ca") with its private key and issuers."""
    if name not in (*NAMES, "root", "issuing", "relay1-ca"):
        known = ", ".join((*NAMES, "root", "issuing", "relay1-ca"))
        raise ValueError(f"unknown certificate {name!r}; known: {known}")
    return load(directory, name)


def thumbprint(issued: Issued) -> str:
    """SHA-1 of the DER certificate, upper-case hex, as Get-ExchangeCertificate shows it."""
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


@dataclass(frozen=True, slots=True)
class PairedSession:
    """One SMTP connection as a log fixture records it.

    ``reply`` answers ``reply_to`` ("RCPT" or "MAIL"); a 2xx reply to RCPT goes on to DATA.
    ``client_cert`` is a stem of :func:`load_issued` or None (an empty Certificate message).
    """

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start: dt.datetime  # aware; the SYN's time
    client_cert: str | None
    tls_version: str = "1.2"  # "1.2" | "1.3"
    reply: str = TENANT_ATTRIBUTION_5764
    reply_to: str = "RCPT"
    keylog: bool = False
    ehlo_name: str = "mail.contoso.com"
    mail_from: str = "alerts@contoso.com"
    mail_size: int = 2048
    rcpt_to: str = "ops@fabrikam.com"
    server_host: str = EXO_HOST  # the name in the banner and the EHLO reply

    @property
    def start_ns(self) -> int:
        if self.start.tzinfo is None:
            raise ValueError("PairedSession.start must be timezone-aware")
        delta = self.start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class PairedResult:
    """What one written session holds on the wire (ground truth for tests)."""

    session: PairedSession
    start_ns: int
    tls_version: str | None  # "TLSv1.2" | "TLSv1.3" as OpenSSL negotiated
    cipher: str | None
    completed: bool  # the handshake finished (always, unless OpenSSL refused)
    client_cert_der: bytes | None  # the leaf the client sent
    thumbprint: str | None  # its SHA-1, upper-case hex
    client_random: bytes | None
    keylog: tuple[str, ...]  # NSS key log lines (only when session.keylog)


def _server(start: dt.datetime) -> Issued:
    """A certificate for Exchange Online's name, valid around ``start`` and issued by the
    committed test issuing CA, so that a scan with ``roots.pem`` finds nothing wrong with
    the server's side and only the client certificate is judged. RSA, as Exchange Online's is,
    so TLS 1.2 negotiates the ECDHE-RSA suite the story's Postfix log names."""
    nb, na = start - dt.timedelta(days=200), start + dt.timedelta(days=200)
    return make_leaf(load_issued("issuing"), SERVER_NAME, not_before=nb, not_after=na,
                     key="rsa2048",
                     sans=[SERVER_NAME, "*.mail.protection.outlook.com"], eku=("serverAuth",))


def _banner(host: str, start: dt.datetime) -> str:
    when = email.utils.format_datetime(start.astimezone(dt.UTC).replace(microsecond=0))
    return f"220 {host} Microsoft ESMTP MAIL Service ready at {when}"


def _commands(ps: PairedSession) -> list[tuple[str, str]]:
    mail = f"MAIL FROM:<{ps.mail_from}> SIZE={ps.mail_size}"
    rcpt = f"RCPT TO:<{ps.rcpt_to}>"
    quit_ = ("QUIT", "221 2.0.0 Service closing transmission channel")
    if ps.reply_to == "MAIL":
        return [(mail, ps.reply), quit_]
    if ps.reply_to != "RCPT":
        raise ValueError(f"reply_to must be 'RCPT' or 'MAIL', not {ps.reply_to!r}")
    out = [(mail, "250 2.1.0 Sender OK"), (rcpt, ps.reply)]
    if ps.reply.startswith("2"):
        body = (f"From: {ps.mail_from}\r\nTo: {ps.rcpt_to}\r\nSubject: report\r\n\r\n"
                "All systems nominal.\r\n.\r\n")
        out += [("DATA", "354 Start mail input; end with <CRLF>.<CRLF>"),
                (body, "250 2.6.0 Queued mail for delivery")]
    return [*out, quit_]


def _check(ps: PairedSession) -> None:
    """ValueError naming the first field of ``ps`` that cannot be written."""
    if ps.tls_version not in ("1.2", "1.3"):
        raise ValueError(f"tls_version must be '1.2' or '1.3', not {ps.tls_version!r}")
    if ps.start.tzinfo is None:
        raise ValueError("PairedSession.start must be timezone-aware")
    _commands(ps)  # checks reply_to


def _scenario(ps: PairedSession, index: int, server: Issued,
              cas: Sequence[Issued]) -> SmtpScenario:
    cert = load_issued(ps.client_cert) if ps.client_cert is not None else None
    sctx = server_context(server, client_auth="optional", client_cas=cas,
                          min_version=ps.tls_version, max_version=ps.tls_version)
    sctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME  # an expired certificate is judged later
    cctx = client_context(cert=cert, min_version=ps.tls_version, max_version=ps.tls_version)
    return SmtpScenario(
        name=f"paired-{index}",
        client_ip=ps.client_ip,
        client_port=ps.client_port,
        server_ip=ps.server_ip,
        server_port=ps.server_port,
        ehlo_name=ps.ehlo_name,
        server_name=ps.server_host,
        banner=_banner(ps.server_host, ps.start),
        server_ctx=sctx,
        client_ctx=cctx,
        client_cert=cert,
        commands=_commands(ps),
        keylog=ps.keylog,
        client_isn=(1_000_000_000 + index * 7_919_000) & 0xFFFFFFFF,
        server_isn=(3_000_000_000 + index * 104_729_000) & 0xFFFFFFFF,
        start_ns=ps.start_ns,
    )


def write_paired_capture(path: str | Path, sessions: Sequence[PairedSession], *,
                         keylog_path: str | Path | None = None) -> list[PairedResult]:
    """Write ``sessions`` as one capture, frames in time order, and say what each holds.

    A ``.pcapng`` path gets the key log lines of the ``keylog`` sessions in a Decryption
    Secrets Block (as ``editcap --inject-secrets`` writes it); any other path is a classic
    pcap. ``keylog_path`` also writes those lines as an NSS key log file.
    """
    if not sessions:
        raise ValueError("no sessions to write")
    for ps in sessions:  # refuse a bad request before any key is made
        _check(ps)
    server = _server(min(s.start for s in sessions))
    # The server trusts both CAs, so OpenSSL completes the handshake for any committed leaf.
    cas = [load_issued("root"), load_issued("relay1-ca")]
    records: list[Record] = []
    results = []
    lines: list[str] = []
    for i, ps in enumerate(sessions):
        sc = _scenario(ps, i, server, cas)
        conv = converse(sc)
        records.extend(render(conv, sc))
        sent = sc.client_cert if conv.tls and conv.tls.client_cert_requested else None
        results.append(PairedResult(
            session=ps,
            start_ns=ps.start_ns,
            tls_version=conv.tls_version,
            cipher=conv.tls.cipher if conv.tls else None,
            completed=bool(conv.tls and conv.tls.completed),
            client_cert_der=sent.der if sent else None,
            thumbprint=thumbprint(sent) if sent else None,
            client_random=conv.client_random,
            keylog=tuple(conv.keylog),
        ))
        lines.extend(conv.keylog)
    records.sort(key=lambda r: r.ts_ns)  # stable: each session's own order is kept
    keys = keylog_bytes(lines) if lines else None
    p = Path(path)
    if p.suffix == ".pcapng":
        write_pcapng(p, records, tls_keylog=keys)
    else:
        write_pcap(p, records)
    if keylog_path is not None:
        Path(keylog_path).write_bytes(keys or b"")
    return results


def story_sessions(skew: dt.timedelta = dt.timedelta(0), *,
                   keylog: bool = False) -> list[PairedSession]:
    """The three sessions of the shared fixture story, on the capture's clock (log time minus
    ``skew``), with the addresses and replies the story's logs record: EX01 without a
    certificate (send log session 08DE5F3A2B1C4D01), EX01 with the expired one (08DE5F3A2B1C4D0A),
    relay1 with the untrusted one (Postfix: no port logged, so 41234 here); each refused with
    550 5.7.64 after STARTTLS."""
    def at(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text) - skew

    exo = "52.101.68.5"
    return [
        PairedSession("10.1.2.10", 50123, exo, 25, at("2026-03-10T09:15:02.118+00:00"), None,
                      keylog=keylog, mail_size=4210, reply=TENANT_ATTRIBUTION_5764),
        PairedSession("10.1.2.10", 50177, exo, 25, at("2026-03-10T09:20:41.502+00:00"),
                      "expired", keylog=keylog, mail_size=4210,
                      reply=tenant_attribution("2026-03-10T09:20:41.843Z", "08DE5F3A2B1C4D0A")),
        PairedSession("192.0.2.25", 41234, exo, 25, at("2026-03-10T09:31:17.000+00:00"),
                      "untrusted", keylog=keylog, ehlo_name="relay1.contoso.com",
                      mail_size=1734, rcpt_to="j.doe@fabrikam.example",
                      reply=tenant_attribution("2026-03-10T09:31:18.000Z", "08DE1234ABCD5678",
                                               "AM0PR01MB1234.eurprd01.prod.exchangelabs.com")),
    ]
