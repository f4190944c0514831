"""Exchange Server SMTP protocol logs (SmtpSend `SEND*.LOG`, SmtpReceive `RECV*.LOG`).

W3C-style text: `#Software`, `#Version`, `#Log-type`, `#Date`, `#Fields` header lines, then
one CSV line per protocol event with the fields date-time (UTC, `Z`), connector-id,
session-id, sequence-number, local-endpoint, remote-endpoint, event (`+` connect,
`-` disconnect, `>` sent, `<` received, `*` information), data and context.  Fields holding
a comma or a quote are quoted, quotes doubled.

Lines of many SMTP sessions interleave; a session is the lines sharing (connector-id,
session-id) and ends with its `-` line.  Only open sessions are kept while reading.  What the
judge needs is read from the lines Exchange writes around TLS: the command STARTTLS and its
220 reply, the certificates (`Sending certificate` is the log host's own, `Remote
certificate` / `Received certificate` the peer's; one line per field in older builds, one
line holding every field in later ones), `TLS protocol SP_PROT_TLS1_2_CLIENT negotiation
succeeded using bulk encryption algorithm ...`, `TLS negotiation failed with error ...`,
and every SMTP reply."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from .logzone import LogZone
from .records import CertClaim, LogConversation, LogReply, Where, in_ns_range
from .text import LogText, TextLine

__all__ = ["FIELDS", "conversations", "lines_of", "looks_like", "parse_time_ns"]

FIELDS = ("date-time", "connector-id", "session-id", "sequence-number", "local-endpoint",
          "remote-endpoint", "event", "data", "context")
_FIELDS_LINE = "#Fields: " + ",".join(FIELDS)
_LOG_TYPES = {"smtp send protocol log": "exchange-send",
              "smtp receive protocol log": "exchange-receive"}
MAX_REPLIES = 20
MAX_NOTES = 20
MAX_RECIPIENTS = 20
MAX_TEXT = 300
_IDLE = timedelta(hours=1)  # an open session silent this long (log time) is taken as ended
_SWEEP = 1 << 16  # lines between looks for such sessions

_TIME = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):([0-5]\d)"
                   r":([0-5]\d|60)(?:\.(\d{1,9}))?Z$")
# a headerless log still shows its shape: time, connector, 16 hex digits of session, number
_DATA_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z,"
                        r"[^,\r\n]*,[0-9A-Fa-f]{16},\d+,", re.M)
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_TLS_OK = re.compile(r"TLS protocol (\S+) negotiation succeeded(?: using (.*))?")
_SP_PROT = re.compile(r"SP_PROT_(SSL2|SSL3|TLS1(?:_(\d))?)_(?:CLIENT|SERVER)$")
_ALGS = re.compile(r"(?:bulk encryption|MAC hash|key exchange) algorithm (\S+)")
# information lines worth showing with a finding: failures, refusals, validation outcomes
_TELLING = re.compile(r"(?i)fail|error|invalid|expired|revoked|untrust|not trusted|denied"
                      r"|validation status|Status='(?!Success)|NoRemoteCertificate")
# the parts of a one-line certificate entry, from the end: not before, not after, names
_CERT_TAIL = re.compile(r"\s(\S+)\s(\S+)\s(\d{4}-\d\d-\d\dT\S+)\s(\d{4}-\d\d-\d\dT\S+)"
                        r"(?:\s(\S*))?$")
# where the issuer's DN starts inside "subject issuer": a space (not after a comma) before
# an attribute type such as CN=, O=, OU=, E=
_DN_START = re.compile(r"(?<!,) (?=[A-Za-z][A-Za-z0-9.]*=)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def looks_like(head: str) -> bool:
    """Whether a file's beginning is an SMTP protocol log: its header lines, or (a piece of
    a log without them) lines of its CSV shape."""
    low = head.lower()
    if "#log-type: smtp send protocol log" in low or "#log-type: smtp receive protocol log" in low:
        return True
    if _FIELDS_LINE in head and "#software: microsoft exchange" in low:
        return True
    return len(_DATA_LINE.findall(head, 0, 8192)) >= 2


def parse_time_ns(text: str) -> int | None:
    """`2026-03-10T09:15:02.118Z` as UTC ns; None if it is not that shape."""
    m = _TIME.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        day = datetime(int(y), int(mo), int(d), tzinfo=UTC)
    except ValueError:
        return None
    seconds = (day - _EPOCH) // timedelta(seconds=1) + int(h) * 3600 + int(mi) * 60 + int(s)
    return in_ns_range(seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0))


def _protocol(name: str) -> str:
    """SP_PROT_TLS1_2_CLIENT -> TLS1.2 (the spelling of TlsHandshake.version_name)."""
    m = _SP_PROT.match(name)
    if m is None:
        return name
    base, minor = m.groups()
    if base.startswith("SSL"):
        return "SSLv" + base[3:]
    return f"TLS1.{minor or 0}"


def _endpoint(text: str) -> tuple[str | None, int | None]:
    """(address, port) of "10.1.2.10:25" or "[::1]:25"; no port when it is not a TCP one."""
    if not text:
        return None, None
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):  # isdigit alone takes "²"
        return text.strip("[]"), None
    number = int(port)
    return host.strip("[]"), number if number <= 0xFFFF else None


def _hex(text: str) -> str | None:
    text = text.replace(" ", "").replace(":", "").strip().upper()
    return text or None


class _Strings:
    """Shares equal strings (connector names, certificate names, reply texts) across
    conversations: a log repeats a few of them hundreds of thousands of times."""

    __slots__ = ("_seen",)
    LIMIT = 50_000

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        got = self._seen.get(text)
        if got is not None:
            return got
        if len(self._seen) < self.LIMIT:
            self._seen[text] = text
        return text


class _Cert:
    """A certificate being read from its log lines."""

    __slots__ = ("subject", "issuer", "serial", "thumbprint", "names", "not_after_ns", "where")

    def __init__(self, where: Where) -> None:
        self.subject: str | None = None
        self.issuer: str | None = None
        self.serial: str | None = None
        self.thumbprint: str | None = None
        self.names: tuple[str, ...] = ()
        self.not_after_ns: int | None = None
        self.where = where

    def claim(self) -> CertClaim:
        return CertClaim(self.subject, self.issuer, self.serial, self.thumbprint, self.names,
                         self.not_after_ns, self.where)


class _Open:
    """One session while its lines are read (mutable; becomes a LogConversation)."""

    __slots__ = ("kind", "connector", "session", "first", "first_time", "last_number",
                 "last_offset", "last_time", "local", "remote", "remote_name", "reply_dir",
                 "starttls_sent", "tls_accepted", "tls_ok", "tls_failed",
                 "protocol", "cipher", "sent", "received", "cert_field_target", "replies",
                 "last_reply", "notes", "sender", "recipients")

    def __init__(self, kind: str | None, connector: str, session: str, first: Where,
                 time: str) -> None:
        self.kind = kind
        self.connector = connector
        self.session = session
        self.first = first
        self.first_time = time
        self.last_number = first.line
        self.last_offset = first.offset
        self.last_time = time
        self.local = ""
        self.remote = ""
        self.remote_name: str | None = None
        self.reply_dir = ""  # the event of the first SMTP reply: "<" send log, ">" receive log
        self.starttls_sent = False
        self.tls_accepted = False
        self.tls_ok = False
        self.tls_failed = False
        self.protocol: str | None = None
        self.cipher: str | None = None
        self.sent: _Cert | None = None
        self.received: _Cert | None = None
        self.cert_field_target: _Cert | None = None  # where "Certificate subject" lines go
        self.replies: list[LogReply] = []
        self.last_reply: tuple[str, int, int, bool] | None = None  # text, line, offset, tls
        self.notes: list[tuple[str, Where]] = []
        self.sender: str | None = None
        self.recipients: list[str] = []


class _One:
    """Hands the csv reader the line set last, once: one reader splits every line (a
    line cut inside quotes ends there instead of taking in the next)."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line: str | None = None

    def __iter__(self) -> _One:
        return self

    def __next__(self) -> str:
        line, self.line = self.line, None
        if line is None:
            raise StopIteration
        return line


class _Reader:
    """The state of reading one file: header, open sessions, shared strings."""

    def __init__(self, text: LogText, warn: Callable[[str], None]) -> None:
        self.path = text.path
        self.warn = warn
        self.kind: str | None = None
        self.index = {name: i for i, name in enumerate(FIELDS)}
        self.width = len(FIELDS)
        self.reorder = False
        self.strings = _Strings()
        self.open: dict[tuple[str, str], _Open] = {}
        self.tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.codes = {c: c for c in range(200, 600)}  # reply codes, one int object each
        self.good_time = ""
        self.good_day = ""
        self.quoted = _One()
        self.csv = csv.reader(self.quoted)  # one reader for every quoted line

    def _a_day_kept(self, time: str) -> bool:
        """Whether `time` (of the pattern) is a real day that nanoseconds since 1970 hold.
        Only a new day is parsed: a day wholly inside the range is remembered, and its other
        times need only the pattern."""
        if parse_time_ns(time) is None:
            return False
        if "1678" <= time[:4] <= "2261":
            self.good_day = time[:10]
        return True

    # -- lines ---------------------------------------------------------------------------
    def header(self, line: TextLine) -> None:
        key, _, value = line.text[1:].partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "log-type":
            self.kind = _LOG_TYPES.get(value.lower())
            if self.kind is None:
                self.warn(f"{self.path} line {line.number}: log type {value[:60]!r} is not "
                          "an SMTP protocol log; read as one")
        elif key == "fields":
            names = [n.strip().lower() for n in value.split(",")]
            missing = [n for n in FIELDS if n not in names]
            if missing:
                self.warn(f"{self.path} line {line.number}: #Fields lacks "
                          f"{', '.join(missing)}; keeping the usual order")
            else:
                self.index = {n: names.index(n) for n in FIELDS}
                self.width = len(names)
                self.reorder = names[: len(FIELDS)] != list(FIELDS)

    def feed(self, line: TextLine) -> _Open | None:
        """Reads one line; returns the session it ended, if it did."""
        raw = line.text
        if '"' in raw:
            self.quoted.line = raw
            try:
                f = next(self.csv)
            except (csv.Error, StopIteration):
                f = []
        else:
            f = raw.split(",")
        if len(f) != self.width:
            self.warn(f"{self.path} line {line.number}: {len(f)} fields where an SMTP "
                      f"protocol log line has {self.width}; line skipped")
            return None
        if self.reorder:
            f = [f[self.index[n]] for n in FIELDS]
        time, connector, session, _seq, local, remote, event, data, context = f
        if time != self.good_time and (_TIME.match(time) is None or (
                time[:10] != self.good_day and not self._a_day_kept(time))):
            self.warn(f"{self.path} line {line.number}: date-time {time[:40]!r} is not "
                      "yyyy-mm-ddThh:mm:ss.fffZ, a date from 1677 to 2262; line skipped")
            return None
        if not session or event not in _EVENTS:
            self.warn(f"{self.path} line {line.number}: no session-id or an unknown event "
                      f"{event[:8]!r}; line skipped")
            return None
        self.good_time = time  # lines of the same millisecond need no second look
        key = (connector, session)
        st = self.open.get(key)
        if st is None:
            st = _Open(self.kind, self.strings(connector), session,
                       Where(self.path, line.number, line.offset), time)
            self.open[key] = st
        st.last_number, st.last_offset, st.last_time = line.number, line.offset, time
        if local and not st.local:
            st.local = local
        if remote and not st.remote:
            st.remote = remote
        if event == "-":
            if _TELLING.search(context):
                self.note(st, f"disconnected: {context}", line)
            return self.open.pop(key)
        if event == "*":
            self.information(st, data, context, line)
        elif event in "<>":
            if data[:3].isascii() and data[:3].isdigit() and (
                    not st.reply_dir or event == st.reply_dir):
                if not st.reply_dir:
                    st.reply_dir = event
                self.reply(st, data, line)
            elif data:
                self.command(st, data)
        return None

    def reply(self, st: _Open, data: str, line: TextLine) -> None:
        code = int(data[:3])
        if st.starttls_sent:  # the answer to STARTTLS: still in the clear
            st.starttls_sent = False
            st.tls_accepted = st.tls_accepted or code == 220
            after = False
        else:
            after = st.tls_accepted and not st.tls_failed
        if st.remote_name is None and code == 220 and st.reply_dir == "<":
            name = data[4:].split(" ", 1)[0]
            if name:
                st.remote_name = self.strings(name)
        if code >= 400:
            if len(st.replies) < MAX_REPLIES - 1:
                st.replies.append(self.make_reply(data, line.number, line.offset, after))
            st.last_reply = None
        else:
            st.last_reply = (data, line.number, line.offset, after)

    def make_reply(self, data: str, number: int, offset: int, after_tls: bool) -> LogReply:
        m = _ENHANCED.search(data, 4, 16)
        code = int(data[:3])
        return LogReply(self.codes.get(code, code), self.strings(m.group(1)) if m else None,
                        self.strings(data[:MAX_TEXT]), after_tls,
                        Where(self.path, number, offset))

    def command(self, st: _Open, data: str) -> None:
        verb = data[:14].upper()
        if verb.startswith(("STARTTLS", "X-ANONYMOUSTLS")):  # the latter: between Exchange servers
            st.starttls_sent = True
        elif verb.startswith(("EHLO ", "HELO ")) and st.reply_dir == ">":
            st.remote_name = self.strings(data[5:].strip()[:255]) or None
        elif verb.startswith("MAIL FROM:"):
            st.sender = self.strings(_address(data[10:]))
        elif verb.startswith("RCPT TO:") and len(st.recipients) < MAX_RECIPIENTS:
            st.recipients.append(self.strings(_address(data[8:])))

    def information(self, st: _Open, data: str, context: str, line: TextLine) -> None:
        if st.cert_field_target is not None and context.startswith("Certificate "):
            self.cert_field(st.cert_field_target, context[12:].lower(), data)
            return
        if not context and not data:
            return
        head = context[:20]
        if head.startswith(("Sending certificate", "Remote certificate",
                            "Received certificate")):
            cert = _Cert(Where(self.path, line.number, line.offset))
            if head.startswith("Sending"):
                st.sent = cert
            else:
                st.received = cert
            if data.strip():
                self.one_line_cert(cert, data, line)
                st.cert_field_target = None
            else:
                st.cert_field_target = cert
            return
        st.cert_field_target = None
        if context.startswith("TLS protocol "):
            m = _TLS_OK.match(context)
            if m is not None:
                st.tls_ok = True
                st.protocol = self.strings(_protocol(m.group(1)))
                algs = _ALGS.findall(m.group(2) or "")
                st.cipher = self.strings(", ".join(algs) if algs
                                         else (m.group(2) or "")[:MAX_TEXT]) or None
                return
        text = context or data
        if _TELLING.search(text):
            if text.startswith("TLS negotiation failed"):
                st.tls_failed = True
            self.note(st, text, line)

    def cert_field(self, cert: _Cert, name: str, data: str) -> None:
        value = data.strip()
        if name == "subject":
            cert.subject = self.strings(value) or None
        elif name == "issuer name":
            cert.issuer = self.strings(value) or None
        elif name == "serial number":
            cert.serial = self.hex(value)
        elif name == "thumbprint":
            cert.thumbprint = self.hex(value)
        elif name == "alternate names":
            cert.names = self.names(value)

    def one_line_cert(self, cert: _Cert, data: str, line: TextLine) -> None:
        """` subject issuer serial thumbprint not-before not-after names` (space-joined)."""
        text = data.strip()
        m = _CERT_TAIL.search(text)
        if m is None:
            if text.upper().startswith(("CN=", "E=", "O=", "OU=")) or " " in text:
                self.warn(f"{self.path} line {line.number}: a certificate entry not of "
                          "the shape 'subject issuer serial thumbprint not-before not-after "
                          "names'; only its thumbprint-like part kept")
            cert.thumbprint = self.hex(text.split(" ")[-1]) if text else None
            return
        serial, thumb, _not_before, not_after, names = m.groups()
        cert.serial, cert.thumbprint = self.hex(serial), self.hex(thumb)
        cert.not_after_ns = parse_time_ns(not_after if not_after.endswith("Z")
                                          else not_after + "Z")
        cert.names = self.names(names or "")
        dns = text[: m.start()]
        cuts = [c.start() for c in _DN_START.finditer(dns)]
        if cuts:
            cert.subject = self.strings(dns[: cuts[0]].strip()) or None
            cert.issuer = self.strings(dns[cuts[0] + 1:].strip()) or None
        else:
            cert.subject = self.strings(dns.strip()) or None

    def hex(self, text: str) -> str | None:
        value = _hex(text)
        return self.strings(value) if value else None

    def names(self, text: str) -> tuple[str, ...]:
        """A certificate's `a;b;c` names, as one tuple shared by the conversations that
        name the same certificate."""
        names = tuple(self.strings(n) for n in text.strip().split(";") if n)
        return self.tuples.setdefault(names, names) if len(self.tuples) < 10_000 else names

    def note(self, st: _Open, text: str, line: TextLine) -> None:
        if len(st.notes) < MAX_NOTES:
            st.notes.append((self.strings(text[:MAX_TEXT]),
                             Where(self.path, line.number, line.offset)))

    # -- ends ----------------------------------------------------------------------------
    def idle(self, now: str) -> list[_Open]:
        """Sessions silent for _IDLE of log time: a log cut short of their `-` lines."""
        now_ns = parse_time_ns(now)
        if now_ns is None:
            return []
        cut_ns = now_ns - _IDLE // timedelta(microseconds=1) * 1000
        cut = datetime.fromtimestamp(cut_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        gone = [k for k, st in self.open.items() if st.last_time < cut]
        return [self.open.pop(k) for k in gone]

    def finish(self, st: _Open) -> LogConversation:
        kind = st.kind or ("exchange-receive" if st.reply_dir == ">" else "exchange-send")
        local_ip, local_port = _endpoint(st.local)
        remote_ip, remote_port = _endpoint(st.remote)
        replies = st.replies
        if st.last_reply is not None:
            data, number, offset, tls = st.last_reply
            replies = [*replies, self.make_reply(data, number, offset, tls)]
        start = parse_time_ns(st.first_time) or 0
        end = parse_time_ns(st.last_time) or start
        return LogConversation(
            kind=kind, file=self.path, first=st.first,
            last=Where(self.path, st.last_number, st.last_offset),
            start_ns=start, end_ns=end,
            host_role="server" if kind == "exchange-receive" else "client",
            local_ip=self.strings(local_ip) if local_ip else None, local_port=local_port,
            remote_ip=self.strings(remote_ip) if remote_ip else None,
            remote_port=remote_port, remote_name=st.remote_name, session_id=st.session,
            connector=st.connector or None,
            starttls=st.tls_ok or (st.tls_accepted and not st.tls_failed),
            tls_protocol=st.protocol, tls_cipher=st.cipher,
            cert_sent=st.sent.claim() if st.sent else None,
            cert_received=st.received.claim() if st.received else None,
            replies=tuple(replies), notes=tuple(st.notes), sender=st.sender,
            recipients=tuple(st.recipients))


_EVENTS = frozenset("+-<>*")


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("<"):
        return text[1:].split(">", 1)[0]
    return text.split(" ", 1)[0]


def conversations(text: LogText, warn: Callable[[str], None], *, year: int | None = None,
                  utc_offset_s: int | LogZone = 0) -> Iterator[LogConversation]:
    """Every SMTP session of the log, yielded when its `-` line is read (or when it has been
    silent for an hour of log time, or at the end of the file).  `year` and `utc_offset_s`
    are not needed: Exchange writes full UTC times."""
    del year, utc_offset_s
    r = _Reader(text, warn)
    count = 0
    for line in text.lines():
        raw = line.text
        if not raw or raw.isspace():
            continue
        if raw[0] == "#":
            r.header(line)
            continue
        ended = r.feed(line)
        if ended is not None:
            yield r.finish(ended)
        count += 1
        if count % _SWEEP == 0 and r.open:
            now = raw[:24].split(",", 1)[0]
            for st in r.idle(now):
                yield r.finish(st)
    for st in sorted(r.open.values(), key=lambda s: s.last_number):
        yield r.finish(st)
    r.open.clear()


def lines_of(text: LogText, conv: LogConversation) -> Iterator[tuple[int, TextLine]]:
    """(log time ns, line) for the lines of `conv` only, read again from the file."""
    for line in text.lines_from(conv.first.offset, conv.first.line, conv.last.offset):
        raw = line.text
        if not raw or raw[0] == "#":
            continue
        try:
            f = next(csv.reader((raw,)), []) if '"' in raw else raw.split(",", 3)
        except csv.Error:  # a bare CR inside a field: skipped, as the first reading did
            continue
        if len(f) < 3 or f[2] != conv.session_id or (f[1] or None) != conv.connector:
            continue
        ns = parse_time_ns(f[0])
        if ns is not None:
            yield ns, line
