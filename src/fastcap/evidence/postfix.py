"""Postfix's own account of SMTP connections, read from its syslog lines.

postfix/smtp (the log host opened the connection: host_role "client") and postfix/smtpd (it
accepted one: "server") each log per process: one process holds one connection at a time,
so a conversation is the run of one (host, program, pid)'s lines from the line that starts
a connection until the line that starts the next (smtpd: until `disconnect from`), or 15
minutes of silence, or the end of the file.  Lines of other programs (qmgr, cleanup, ...)
are skipped, and so are connections over loopback (content filters such as amavis
reinjecting on 127.0.0.1:10025); lines that are not syslog at all are warned about.

What starts a postfix/smtp conversation: `setting up TLS connection to` (smtp_tls_loglevel
2) and a failed `connect to`, always; a `... TLS connection established|reused to`,
`certificate verification failed for`, `SSL_connect error to` or `HOST[IP]:PORT: ...`
(loglevel 2) line, unless the pid's open conversation is with that peer and has not yet
finished its handshake.  Queue-id lines (`QUEUEID: to=<..>, relay=HOST[IP]:PORT, ...,
dsn=5.7.64, status=bounced (host HOST[IP] said: 550 ...)`, `QUEUEID: host HOST[IP] said:
...`, `QUEUEID: lost connection with HOST[IP] while ...`) belong to the pid's open
conversation when they name its peer (address, and port when both give one) within
DELIVERY_GAP_S of its last line; else they start one of their own (a connection Postfix
logs nothing else about: plain text, no TLS).  Replies and statuses on a conversation whose
TLS was established are `after_tls`.

Facts: the peer (name, address, port as logged), `TLSv1.2` as "TLS1.2", the cipher, the
trust word (Anonymous, Untrusted, Trusted, Verified: Postfix's verdict on the *peer's*
certificate), the peer certificate from loglevel 2 lines (`subject_CN=`, `issuer_CN=` or
3.9's `issuer=`, the `depth=N ... subject=/C=../CN=..` chain lines, smtpd's unprefixed
`subject=/..` and `issuer=/..` lines, and the fingerprint in
the digest of smtp_tls_fingerprint_digest: a SHA-1 one is the certificate's thumbprint,
another digest is kept as a note), every 4xx/5xx reply and the last reply, and telling
lines (TLS failures, lost connections, `NOQUEUE: lost connection after STARTTLS` of 3.10 and
later too) as notes.  Postfix never logs its own certificate; a `client-signature` in the TLS
1.3 summary says the client signed with one (sent by the log host for smtp, received from the
peer for smtpd), and is kept as a note - unless it says "raw public key": a bare key (RFC
7250) in place of a certificate, whose `raw public key fingerprint=` line is a note too."""

from __future__ import annotations

import datetime as _dt
import heapq
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace

from .logzone import LogZone, as_zone
from .records import CertClaim, LogConversation, LogReply, Where
from .syslog import SyslogParser
from .text import MAX_WARNINGS, LogText, TextLine

__all__ = ["DELIVERY_GAP_S", "IDLE_S", "KIND", "conversations", "lines_of", "looks_like"]

KIND = "postfix"
IDLE_S = 15 * 60  # a pid silent this long (log time) has ended its conversation
DELIVERY_GAP_S = 600  # a queue line this long after a conversation's last line is a new one
MAX_REPLIES = 20
MAX_NOTES = 20
MAX_RECIPIENTS = 20
MAX_TEXT = 300
_CHECK_EVERY = 4096  # lines between looks for idle conversations
# OpenSSL's handshake trace at smtp_tls_loglevel 2 and up: most of such a log, nothing to keep
_TRACE = ("SSL_connect:", "SSL_accept:", "SSL3 alert ", "read from ", "write to ")

_CLIENT, _SERVER = "client", "server"
_LOOPBACK = ("127.", "::1")
_PROGRAM = re.compile(r"postfix[^/\s]*(?:/[^/\s]+)*/(smtpd?)\Z")
_NA = r"(?P<name>[^\s\[\]]*)\[(?P<ip>[^\]\s]+)\](?::(?P<port>[0-9]+))?"
_NA_PLAIN = r"[^\s\[\]]*\[[^\]\s]+\](?::\d+)?"
_TLS_DONE = re.compile(
    r"(?P<trust>Anonymous|Untrusted|Trusted|Verified) TLS connection (?P<use>established|reused)"
    r" (?:to|from) " + _NA + r"(?: to \S+)?: (?P<proto>\S+) with cipher (?P<cipher>\S+)"
    r"(?P<rest>.*)\Z")
_SETUP = re.compile(r"setting up TLS connection (?:to|from) " + _NA)
_CONNECT_FAILED = re.compile(r"(?:[0-9A-Za-z]+: )?connect to " + _NA + r": (?P<why>.*)\Z")
_VERIFY_FAILED = re.compile(
    r"(?:\w+ )?certificate verification failed for " + _NA + r": (?P<why>.*)\Z")
_SSL_ERROR = re.compile(r"SSL_(?:connect|accept) error (?:to|from) " + _NA + r": (?P<why>.*)\Z")
_PEER_LINE = re.compile(_NA + r": (?P<what>.*)\Z")
_PEER_CERT = re.compile(
    r"subject_CN=(?P<cn>.*?), issuer(?:_CN)?=(?P<icn>.*?)"
    r"(?:, (?:cert )?fingerprint=(?P<fp>[0-9A-Fa-f:]*))?"
    r"(?:, pkey[ _]fingerprint=(?P<pk>[0-9A-Fa-f:]*))?\Z")
_DEPTH = re.compile(r"depth=(?P<depth>\d+) verify=\d subject=(?P<dn>.*)\Z")
_QUEUE = re.compile(r"(?P<qid>[0-9A-Za-z]{5,}): (?P<rest>.*)\Z")
_DELIVERY = re.compile(
    r"to=<(?P<rcpt>[^>]*)>,(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,\s]+),.*?"
    r" dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>\w+)(?: \((?P<text>.*)\))?\Z")
_SAID = re.compile(r"host " + _NA + r" said: (?P<text>.*)\Z")
_LOST_WITH = re.compile(
    r"(?:lost connection with|conversation with) " + _NA + r" (?:while|timed out while) .*\Z")
_CODE = re.compile(r"(?P<code>[2-5]\d\d)(?:[ -](?P<enh>[2-5]\.\d{1,3}\.\d{1,3}))?")
_S_CONNECT = re.compile(r"connect from " + _NA)
_S_DISCONNECT = re.compile(r"disconnect from " + _NA)
_S_REJECT = re.compile(
    r"(?:NOQUEUE|[0-9A-Za-z]{5,}): (?:reject|discard|hold|warn): \S+ from " + _NA
    + r": (?P<text>.*?)(?:; from=<.*)?\Z")
_S_LOST = re.compile(  # Postfix 3.10 and later put "NOQUEUE: " or the queue id first
    r"(?:(?:NOQUEUE|[0-9A-Za-z]{5,}): )?(?:lost connection|timeout|too many errors) after \S+"
    r"(?: \([^)]*\))? from " + _NA)
_S_CLIENT = re.compile(r"[0-9A-Za-z]{5,}: client=" + _NA)
_DN_PART = re.compile(r"/(?=[A-Za-z][A-Za-z0-9.]*=)")
_PROTOCOLS = {"TLSv1": "TLS1.0", "TLSv1.1": "TLS1.1", "TLSv1.2": "TLS1.2",
              "TLSv1.3": "TLS1.3", "SSLv3": "SSLv3", "SSLv2": "SSLv2"}
_DIGESTS = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}


class _Open:
    """A conversation being read (mutable until it is closed)."""

    __slots__ = ("role", "pid", "first", "last_line", "last_offset", "start_ns", "end_ns",
                 "ip", "port", "name", "starttls", "protocol", "cipher", "trust", "subject",
                 "issuer", "cn", "icn", "thumbprint", "cert_where", "replies", "notes",
                 "recipients", "done_handshake")

    def __init__(self, role: str, pid: int | None, where: Where, t: int) -> None:
        self.role, self.pid, self.first = role, pid, where
        self.last_line, self.last_offset = where.line, where.offset
        self.start_ns = self.end_ns = t
        self.ip: str | None = None
        self.port: int | None = None
        self.name: str | None = None
        self.starttls = False
        self.done_handshake = False
        self.protocol = self.cipher = self.trust = None
        self.subject = self.issuer = self.cn = self.icn = self.thumbprint = None
        self.cert_where: Where | None = None
        self.replies: list[LogReply] = []
        self.notes: list[tuple[str, Where]] = []
        self.recipients: list[str] = []

    def peer(self, m: re.Match[str]) -> None:
        if self.ip is None:
            self.ip = sys.intern(m["ip"])
            name = m["name"]
            self.name = sys.intern(name) if name and name != "unknown" else None
        port = int(m["port"]) if m["port"] else None
        if self.port is None and port is not None and port <= 0xFFFF:
            self.port = port

    def same_peer(self, m: re.Match[str]) -> bool:
        if self.ip is None:
            return True
        port = m["port"]
        return m["ip"] == self.ip and (port is None or self.port is None
                                       or int(port) == self.port)

    def note(self, text: str, where: Where) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append((text[:MAX_TEXT], where))

    def reply(self, reply: LogReply) -> None:
        replies = self.replies
        if replies and not _is_error(replies[-1]):
            replies.pop()  # only the last of the ordinary replies is kept
        if len(replies) >= MAX_REPLIES:
            replies.pop()
        replies.append(reply)

    def freeze(self, file: str) -> LogConversation:
        cert = None
        if self.cert_where is not None:
            cert = CertClaim(subject=self.subject or (f"CN={self.cn}" if self.cn else None),
                             issuer=self.issuer or (f"CN={self.icn}" if self.icn else None),
                             thumbprint=self.thumbprint, where=self.cert_where)
        return LogConversation(
            kind=KIND, file=file, first=self.first,
            last=Where(file, self.last_line, self.last_offset),
            start_ns=self.start_ns, end_ns=self.end_ns, host_role=self.role,
            remote_ip=self.ip, remote_port=self.port, remote_name=self.name,
            session_id=None if self.pid is None else sys.intern(f"pid {self.pid}"),
            starttls=self.starttls, tls_protocol=self.protocol, tls_cipher=self.cipher,
            tls_trust=self.trust, cert_received=cert, replies=tuple(self.replies),
            notes=tuple(self.notes), recipients=tuple(self.recipients))


def _is_error(r: LogReply) -> bool:
    return r.code >= 400 or (r.enhanced or "").startswith(("4.", "5."))


def looks_like(head: str) -> bool:
    """Syslog: most of the first complete lines (journalctl's `-- ...` markers aside) have a
    syslog header."""
    lines = head.splitlines()
    if len(lines) > 1 and not head.endswith(("\n", "\r")):
        lines.pop()  # cut by the head's limit
    lines = [s for s in lines[:40] if s.strip() and not s.startswith("-- ")]
    if not lines:
        return False
    parser = SyslogParser(year=2000)
    hits = sum(parser.match(s) is not None for s in lines)
    return hits * 2 > len(lines)


class _Reader:
    """The state of one pass over a file: open conversations by (host, program, pid), and
    closed ones waiting until no open one can end earlier."""

    def __init__(self, text: LogText, warn: Callable[[str], None], year: int | None,
                 utc_offset_s: int | LogZone) -> None:
        self.path = text.path
        try:
            mtime_ns = os.stat(text.path).st_mtime_ns
        except OSError:
            mtime_ns = None
        self.parser = SyslogParser(year=year, utc_offset_s=utc_offset_s, mtime_ns=mtime_ns)
        self.warn = warn
        self.warned = 0
        self.roles: dict[str, str | None] = {}
        self.open: dict[tuple[str, str, str | None], _Open] = {}
        self.closed: list[tuple[int, int, LogConversation]] = []
        self.seq = 0
        self.now = 0
        self.syslog_lines = 0
        self.smtp_lines = 0  # postfix/smtp and postfix/smtpd lines, read or not
        self.started = 0  # conversations begun (loopback ones too)

    def complain(self, line: TextLine, why: str) -> None:
        self.warned += 1
        if self.warned <= MAX_WARNINGS:
            self.warn(f"{self.path} line {line.number}: {why}")

    def run(self, lines: Iterator[TextLine]) -> Iterator[LogConversation]:
        parser, roles, countdown, due = self.parser, self.roles, _CHECK_EVERY, False
        for line in lines:
            countdown -= 1
            if not countdown:
                countdown, due = _CHECK_EVERY, True
            text = line.text
            found = parser.match(text)
            if found is None:
                if text.strip() and not text.startswith("-- "):
                    self.complain(line, "not a syslog line")
                continue
            kind, m = found
            self.syslog_lines += 1
            program = m["prog"]
            if program is None:
                continue
            role = roles.get(program, "")
            if role == "":
                pm = _PROGRAM.match(program)
                role = roles[program] = None if pm is None else (
                    _CLIENT if pm[1] == "smtp" else _SERVER)
            if role is None:
                continue
            self.smtp_lines += 1
            end = m.end()
            if text.startswith(_TRACE, end):  # loglevel 2+ OpenSSL state lines
                continue
            try:
                t = parser.time_ns(kind, m)
            except ValueError as e:
                self.complain(line, f"a syslog line with a bad time stamp ({e})")
                continue
            self.now = t  # the latest line's, not the greatest: clocks may step back
            if due:  # now and then: close the silent, hand on what can no longer move
                due = False
                self.expire()
                yield from self.release()
            key = m.group("host", "prog", "pid")
            msg = text[end:]
            if role == _CLIENT:
                self.client(key, msg, line, t)
            else:
                self.server(key, msg, line, t)
        for key in list(self.open):
            self.close(key)
        yield from self.release(final=True)
        if not self.started and self.syslog_lines:  # (no syslog line at all: each was told)
            self.warn(self.nothing_read())
        if self.warned > MAX_WARNINGS:
            self.warn(f"{self.path}: {self.warned - MAX_WARNINGS} more lines not read "
                      "(not syslog, or a bad time stamp)")

    def nothing_read(self) -> str:
        """Why a syslog file gave no conversation: its postfix/smtp(d) lines were in no form
        read here, or it has none (another mail server, or a Postfix with another
        syslog_name)."""
        if self.smtp_lines:
            return (f"{self.path}: {self.smtp_lines} postfix/smtp or postfix/smtpd line(s), "
                    "none in a form fastcap reads; no SMTP connections from this file")
        seen = sorted(self.roles)
        programs = ", ".join(seen[:5]) + (f" and {len(seen) - 5} more" if len(seen) > 5
                                          else "")
        return (f"{self.path}: a syslog file with no postfix/smtp or postfix/smtpd lines "
                f"(programs: {programs or 'none'}); no SMTP connections from this file")

    # -- conversations ---------------------------------------------------------------
    def start(self, key: tuple, role: str, line: TextLine, t: int) -> _Open:
        if key in self.open:
            self.close(key)
        self.started += 1
        pid = key[2]
        number = int(pid) if pid and pid.isascii() and pid.isdigit() else None
        conv = self.open[key] = _Open(role, number, Where(self.path, line.number, line.offset), t)
        return conv

    def touch(self, conv: _Open, line: TextLine, t: int) -> None:
        conv.last_line, conv.last_offset = line.number, line.offset
        if t > conv.end_ns:
            conv.end_ns = t

    def close(self, key: tuple) -> None:
        conv = self.open.pop(key)
        if conv.ip is not None and conv.ip.startswith(_LOOPBACK):
            return  # a content filter's reinjection on the host itself: never on the wire
        self.seq += 1
        heapq.heappush(self.closed, (conv.end_ns, self.seq, conv.freeze(self.path)))

    def expire(self) -> None:
        limit = self.now - IDLE_S * 1_000_000_000
        for key in [k for k, c in self.open.items() if c.end_ns < limit]:
            self.close(key)

    def release(self, final: bool = False) -> Iterator[LogConversation]:
        """Closed conversations that ended before any open one can (all at the end)."""
        closed = self.closed
        if final or not self.open:
            low = None
        else:
            low = min(c.end_ns for c in self.open.values())
        while closed and (low is None or closed[0][0] <= low):
            yield heapq.heappop(closed)[2]

    def current(self, key: tuple, t: int) -> _Open | None:
        """The pid's open conversation, unless it has been silent for IDLE_S (then it is
        closed: the process has moved on, or a new one has the same pid)."""
        conv = self.open.get(key)
        if conv is not None and t - conv.end_ns > IDLE_S * 1_000_000_000:
            self.close(key)
            return None
        return conv

    def peer_conv(self, key: tuple, role: str, m: re.Match[str], line: TextLine, t: int, *,
                  handshake: bool = False, gap: bool = False) -> _Open:
        """The pid's open conversation if it is with this peer (and, for a handshake
        line, still in its handshake; for a queue line, recent), else a new one."""
        conv = self.current(key, t)
        if (conv is None or not conv.same_peer(m) or (handshake and conv.done_handshake)
                or (gap and t - conv.end_ns > DELIVERY_GAP_S * 1_000_000_000)):
            conv = self.start(key, role, line, t)
        conv.peer(m)
        self.touch(conv, line, t)
        return conv

    # -- postfix/smtp --------------------------------------------------------------
    def client(self, key: tuple, msg: str, line: TextLine, t: int) -> None:
        if " TLS connection " in msg:
            m = _TLS_DONE.match(msg)
            if m is not None:
                conv = self.peer_conv(key, _CLIENT, m, line, t, handshake=True)
                self.tls_done(conv, m, line)
                return
            m = _SETUP.match(msg)
            if m is not None:
                conv = self.start(key, _CLIENT, line, t)
                conv.peer(m)
                return
        if "connect to " in msg:
            m = _CONNECT_FAILED.match(msg)
            if m is not None:
                conv = self.start(key, _CLIENT, line, t)
                conv.peer(m)
                conv.done_handshake = True
                conv.note(msg, self.where(line))
                return
        if ("verification failed" in msg or msg.startswith("SSL_connect error")) and (
                self.tls_trouble(key, _CLIENT, msg, line, t)):
            return
        if msg.startswith("warning: "):
            if "TLS" in msg:
                conv = self.current(key, t)
                if conv is not None:
                    self.touch(conv, line, t)
                    conv.note(msg, self.where(line))
            return
        m = _QUEUE.match(msg)
        if m is not None:
            self.client_queue(key, m["rest"], line, t)
            return
        m = _PEER_LINE.match(msg)
        if m is not None:
            conv = self.peer_conv(key, _CLIENT, m, line, t, handshake=True)
            self.peer_detail(conv, m["what"], line)

    def client_queue(self, key: tuple, rest: str, line: TextLine, t: int) -> None:
        if rest.startswith("to=<"):
            d = _DELIVERY.match(rest)
            if d is None:
                self.complain(line, "a postfix/smtp delivery line fastcap could not read")
                return
            relay, text = d["relay"], d["text"] or ""
            m = re.match(_NA, relay)
            if m is None:  # relay=none: the peer is in the reason, if anywhere
                m = re.search(_NA, text)
            conv = self.current(key, t)
            if m is not None:
                conv = self.peer_conv(key, _CLIENT, m, line, t, gap=True)
            elif conv is None:
                conv = self.start(key, _CLIENT, line, t)
            else:
                self.touch(conv, line, t)
            conv.done_handshake = True  # deliveries come after any handshake
            rcpt = d["rcpt"]
            if len(conv.recipients) < MAX_RECIPIENTS and rcpt not in conv.recipients:
                conv.recipients.append(rcpt)
            said = _SAID.match(text)
            conv.reply(_reply(said["text"] if said else text, d["dsn"], conv.starttls,
                              self.where(line)))
            return
        m = _SAID.match(rest)
        if m is not None:
            conv = self.peer_conv(key, _CLIENT, m, line, t, gap=True)
            conv.done_handshake = True
            conv.reply(_reply(m["text"], None, conv.starttls, self.where(line)))
            return
        m = _LOST_WITH.match(rest)
        if m is not None:
            conv = self.peer_conv(key, _CLIENT, m, line, t, gap=True)
            conv.done_handshake = True
            conv.note(rest, self.where(line))
            return
        conv = self.current(key, t)
        if conv is not None:  # other queue lines of the same delivery ("enabling PIX ...")
            self.touch(conv, line, t)

    # -- postfix/smtpd -------------------------------------------------------------
    def server(self, key: tuple, msg: str, line: TextLine, t: int) -> None:
        if msg.startswith("connect from "):
            m = _S_CONNECT.match(msg)
            if m is not None:
                self.start(key, _SERVER, line, t).peer(m)
            return
        if msg.startswith("disconnect from "):
            m = _S_DISCONNECT.match(msg)
            if m is not None:
                self.peer_conv(key, _SERVER, m, line, t)
                self.close(key)
            return
        m = _TLS_DONE.match(msg)
        if m is not None:
            conv = self.peer_conv(key, _SERVER, m, line, t)
            self.tls_done(conv, m, line)
            return
        m = _SETUP.match(msg)
        if m is not None:
            self.peer_conv(key, _SERVER, m, line, t)
            return
        if self.tls_trouble(key, _SERVER, msg, line, t):
            return
        m = _S_REJECT.match(msg)
        if m is not None:
            conv = self.peer_conv(key, _SERVER, m, line, t)
            conv.reply(_reply(m["text"], None, conv.starttls, self.where(line)))
            return
        m = _S_LOST.match(msg)
        if m is not None:
            conv = self.peer_conv(key, _SERVER, m, line, t)
            conv.note(msg, self.where(line))
            return
        m = _S_CLIENT.match(msg) or _PEER_LINE.match(msg)
        if m is not None:
            conv = self.peer_conv(key, _SERVER, m, line, t)
            if "what" in m.re.groupindex:
                self.peer_detail(conv, m["what"], line)
            return
        if msg.startswith("warning: ") and "TLS" in msg:
            conv = self.current(key, t)
            if conv is not None:
                self.touch(conv, line, t)
                conv.note(msg, self.where(line))
            return
        if msg.startswith(("subject=", "issuer=")):
            # tls_server.c at loglevel 2: the client certificate's names, unprefixed; they
            # belong to the pid's open connection
            conv = self.current(key, t)
            if conv is not None:
                self.touch(conv, line, t)
                self.peer_names(conv, msg.startswith("subject="), msg.split("=", 1)[1], line)

    # -- shared ----------------------------------------------------------------------
    def where(self, line: TextLine) -> Where:
        return Where(self.path, line.number, line.offset)

    def tls_done(self, conv: _Open, m: re.Match[str], line: TextLine) -> None:
        conv.done_handshake = conv.starttls = True
        conv.trust = sys.intern(m["trust"])
        proto = m["proto"]
        conv.protocol = _PROTOCOLS.get(proto) or sys.intern(proto)
        conv.cipher = sys.intern(m["cipher"])
        if m["use"] == "reused":
            conv.note("TLS connection reused (a cached connection opened earlier)",
                      self.where(line))
        rest = m["rest"]
        at = rest.find(" client-signature ")
        if at >= 0:  # the client signed with its certificate's key (TLS 1.3 only)
            what = "sent" if conv.role == _CLIENT else "received"
            # or with a bare key (RFC 7250): "(prime256v1 raw public key)", "(2048 bit raw
            # public key)", "(raw public key)" after the algorithm
            sent = ("a raw public key, no certificate" if "raw public key" in rest[at:]
                    else "a client certificate")
            conv.note(f"{what} {sent} ({rest[at + 1:]})", self.where(line))

    def tls_trouble(self, key: tuple, role: str, msg: str, line: TextLine, t: int) -> bool:
        m = _VERIFY_FAILED.match(msg) or _SSL_ERROR.match(msg)
        if m is None:
            return False
        # smtpd's conversations run from connect to disconnect; smtp's from the handshake
        conv = self.peer_conv(key, role, m, line, t, handshake=role == _CLIENT)
        conv.note(msg, self.where(line))
        return True

    def peer_detail(self, conv: _Open, what: str, line: TextLine) -> None:
        if what.startswith("raw public key fingerprint="):  # the peer sent no certificate
            digits = what.split("=", 1)[1].replace(":", "").upper()
            alg = _DIGESTS.get(len(digits), "digest")
            conv.note(f"peer raw public key (RFC 7250) {alg} fingerprint {digits}",
                      self.where(line))
            return
        if what.startswith("subject_CN="):
            c = _PEER_CERT.match(what)
            if c is None:
                return
            conv.cert_where = self.where(line)
            conv.cn, conv.icn = sys.intern(c["cn"]), sys.intern(c["icn"])
            for label, value in (("certificate", c["fp"]), ("public key", c["pk"])):
                digits = (value or "").replace(":", "").upper()
                alg = _DIGESTS.get(len(digits))
                if alg is None:
                    continue
                if alg == "SHA-1" and label == "certificate":
                    conv.thumbprint = sys.intern(digits)
                else:
                    conv.note(f"peer {label} {alg} fingerprint {digits}", conv.cert_where)
        elif what.startswith("depth="):
            d = _DEPTH.match(what)
            if d is not None and d["depth"] in ("0", "1"):
                self.peer_names(conv, d["depth"] == "0", d["dn"], line)

    def peer_names(self, conv: _Open, subject: bool, oneline: str, line: TextLine) -> None:
        """The peer certificate's subject (or its issuer: the chain's next subject) as
        OpenSSL's one-line form gives it."""
        dn = sys.intern(_dn(oneline))
        if subject:
            conv.subject = dn
        else:
            conv.issuer = dn
        if conv.cert_where is None:
            conv.cert_where = self.where(line)


def _dn(oneline: str) -> str:
    """OpenSSL's `/C=US/O=Org/CN=name` as `CN=name, O=Org, C=US` (RFC 4514 order)."""
    parts = [p for p in _DN_PART.split(oneline) if p]
    return ", ".join(reversed(parts))


def _reply(text: str, dsn: str | None, after_tls: bool, where: Where) -> LogReply:
    m = _CODE.match(text)
    code = int(m["code"]) if m else 0
    enhanced = (m["enh"] if m and m["enh"] else None) or dsn
    return LogReply(code, sys.intern(enhanced) if enhanced else None, text[:MAX_TEXT],
                    after_tls, where)


def conversations(text: LogText, warn: Callable[[str], None], *, year: int | None = None,
                  utc_offset_s: int | LogZone = 0) -> Iterator[LogConversation]:
    """The postfix/smtp and postfix/smtpd conversations of a syslog file, streamed; each is
    yielded once no conversation still open can end before it."""
    reader = _Reader(text, warn, year, utc_offset_s)
    return reader.run(text.lines())


def lines_of(text: LogText, conv: LogConversation, *,
             utc_offset_s: int | LogZone = 0) -> Iterator[tuple[int, TextLine]]:
    """(log time ns, line) of this conversation's own lines: those of its host, program and
    pid from its first line to its last.  RFC 3164 stamps get the year and zone that gave
    the conversation its start time (with an IANA zone, each line its own offset in it)."""
    lines = text.lines_from(conv.first.offset, conv.first.line, conv.last.offset)
    first = next(lines, None)
    if first is None:
        return
    probe = SyslogParser(year=2000)
    found = probe.match(first.text)
    if found is None:
        return
    kind, m = found
    key = (m["host"], m["prog"], m["pid"])
    parser = _anchored(kind, m, conv.start_ns, as_zone(utc_offset_s))
    yield parser.time_ns(kind, m), first
    for line in lines:
        found = parser.match(line.text)
        if found is None:
            continue
        kind, m = found
        if (m["host"], m["prog"], m["pid"]) != key:
            continue
        try:
            yield parser.time_ns(kind, m), line
        except ValueError:
            continue


def _anchored(kind: int, m: re.Match[str], start_ns: int, zone: LogZone) -> SyslogParser:
    """A parser whose RFC 3164 year and zone put this first line at `start_ns` (stamps with
    a zone need neither): the IANA zone it was read in if that does, else a fixed offset."""
    if "tz" in m.re.groupindex and m["tz"]:
        return SyslogParser(year=2000)
    year = _dt.datetime.fromtimestamp(start_ns // 1_000_000_000, _dt.UTC).year
    if zone.name is not None:
        zone = replace(zone, near_s=start_ns // 1_000_000_000)  # a repeated hour: as read
        for y in (year, year - 1, year + 1):
            try:
                if SyslogParser(year=y, utc_offset_s=zone).time_ns(kind, m) == start_ns:
                    return SyslogParser(year=y, utc_offset_s=zone)
            except ValueError:
                continue
    best: tuple[int, int] | None = None
    for y in (year, year - 1, year + 1):
        try:
            naive = SyslogParser(year=y).time_ns(kind, m)
        except ValueError:
            continue
        offset_s = round((naive - start_ns) / 1e9)
        if best is None or abs(offset_s) < abs(best[1]):
            best = (y, offset_s)
    if best is None:
        return SyslogParser(year=year)
    return SyslogParser(year=best[0], utc_offset_s=best[1])
