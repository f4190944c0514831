"""The values every log reader produces, so that the join and the judge need not know which
log (Exchange, Postfix, message trace) a fact came from.  Times are UTC nanoseconds on the
log host's clock; the join corrects them for skew."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..pickling import compact

__all__ = ["CertClaim", "LogConversation", "LogReply", "Where", "in_ns_range"]

# The instants a capture can carry: its timestamps are read as int64 nanoseconds (1677-09-21
# to 2262-04-11).  A log date outside them matches no packet, and would overflow the typed
# arrays the join keeps its rows in, so every date parser reads it as no date.
_NS_MIN, _NS_MAX = -(1 << 63), (1 << 63) - 1


def in_ns_range(ns: int | None) -> int | None:
    """``ns`` when a capture could carry it, else None."""
    return ns if ns is None or _NS_MIN <= ns <= _NS_MAX else None


@compact
@dataclass(frozen=True, slots=True)
class Where:
    """A line of a log (or an object of a JSON export): what every finding cites."""

    file: str
    line: int  # 1-based; for a JSON export, the 1-based index of the object in it
    offset: int  # byte offset of the line's start in the file (0 for JSON objects)

    def __str__(self) -> str:
        return f"{self.file} line {self.line}"


@compact
@dataclass(frozen=True, slots=True)
class CertClaim:
    """A certificate as a log line or a cmdlet names it; any part may be missing."""

    subject: str | None = None
    issuer: str | None = None
    serial: str | None = None  # upper-case hex, no separators (Exchange's SerialNumber)
    thumbprint: str | None = None  # SHA-1, upper-case hex (Exchange's Thumbprint)
    names: tuple[str, ...] = ()  # DNS alternate names, as logged
    not_after_ns: int | None = None
    where: Where | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "issuer": self.issuer, "serial": self.serial,
                "thumbprint": self.thumbprint, "names": list(self.names),
                "not_after_ns": self.not_after_ns,
                "line": self.where.line if self.where else None}


@compact
@dataclass(frozen=True, slots=True)
class LogReply:
    """An SMTP reply (or a delivery status) the log recorded."""

    code: int  # 250, 550, ...; 0 when the log gave only an enhanced code
    enhanced: str | None  # "5.7.64"
    text: str  # one line, as logged, at most 300 characters
    after_tls: bool  # given after STARTTLS (or on a connection that was TLS throughout)
    where: Where

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "enhanced": self.enhanced, "text": self.text,
                "after_tls": self.after_tls, "line": self.where.line}


@compact
@dataclass(frozen=True, slots=True)
class LogConversation:
    """One SMTP connection (or, for message logs, one message) as one log file tells it.

    `kind` names the log: exchange-send, exchange-receive (SMTP protocol logs), postfix
    (syslog), message-tracking (Exchange), message-trace (Exchange Online CSV).  `host_role`
    says which end wrote the log: "client" (it opened the connection: a send log,
    postfix/smtp) or "server" (it accepted it: a receive log, postfix/smtpd).  Endpoints are
    (address text, port); a log that gives no port leaves it None."""

    kind: str
    file: str
    first: Where
    last: Where
    start_ns: int
    end_ns: int
    host_role: str  # client | server
    local_ip: str | None = None
    local_port: int | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    remote_name: str | None = None  # the peer's host name, as logged
    session_id: str | None = None  # Exchange session-id; Postfix "pid N"; message id
    connector: str | None = None  # Exchange connector-id
    starttls: bool = False  # the log says TLS was negotiated on this connection
    tls_protocol: str | None = None  # "TLS1.2", "TLS1.3" (as TlsHandshake.version_name)
    tls_cipher: str | None = None  # as logged
    tls_trust: str | None = None  # Postfix: Trusted | Untrusted | Verified | Anonymous
    cert_sent: CertClaim | None = None  # the log host's own certificate
    cert_received: CertClaim | None = None  # the peer's certificate
    replies: tuple[LogReply, ...] = ()  # every 4xx/5xx, and the last reply; at most 20
    notes: tuple[tuple[str, Where], ...] = ()  # other telling lines (TLS failures); at most 20
    sender: str | None = None  # message logs: MAIL FROM
    recipients: tuple[str, ...] = ()
    event: str | None = None  # message logs: the last event (SEND, FAIL, Failed, ...)
    # Only what the join needs is kept (no certificates, replies or notes):
    # `Evidence.materialize` reads the rest again from the file.
    slim: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The facts, for the JSON report's `evidence` items."""
        return {
            "host_role": self.host_role,
            "local": _endpoint(self.local_ip, self.local_port),
            "remote": _endpoint(self.remote_ip, self.remote_port),
            "remote_name": self.remote_name,
            "session_id": self.session_id,
            "connector": self.connector,
            "last_line": self.last.line,
            "end_ns": self.end_ns,
            "starttls": self.starttls,
            "tls_protocol": self.tls_protocol,
            "tls_cipher": self.tls_cipher,
            "tls_trust": self.tls_trust,
            "cert_sent": self.cert_sent.to_dict() if self.cert_sent else None,
            "cert_received": self.cert_received.to_dict() if self.cert_received else None,
            "replies": [r.to_dict() for r in self.replies],
            "notes": [{"text": t, "line": w.line} for t, w in self.notes],
            "sender": self.sender,
            "recipients": list(self.recipients),
            "event": self.event,
        }

    def rejection(self) -> LogReply | None:
        """The first 4xx/5xx reply, if the log has one."""
        return next((r for r in self.replies if r.code >= 400 or (
            r.enhanced or "").startswith(("4.", "5."))), None)


def _endpoint(ip: str | None, port: int | None) -> str | None:
    if ip is None:
        return None
    text = f"[{ip}]" if ":" in ip else ip
    return text if port is None else f"{text}:{port}"
