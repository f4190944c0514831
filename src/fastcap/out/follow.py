"""`fastcap follow`: one session as Wireshark's "Follow TCP Stream" would show it — the
plaintext SMTP lines of both sides in frame order, then the TLS handshake as messages rather
than bytes.  Credentials after AUTH are never shown."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..judge.x509check import load_certificate, quiet_x509
from ..proto.smtp import SmtpDialogue
from ..proto.tls.const import is_tls13
from ..proto.tls.wirenames import wire_str
from ..session import Session, turn_verb
from ..tcp.reassembly import StreamDir
from .textsafe import printable, printable_bytes

_MAX_LINES = 2000


def _lines(stream: StreamDir, end: int | None) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the stream's bytes before `end`, stopping at the first gap."""
    data = stream.data
    stop = len(data) if end is None else min(end, len(data))
    stop = min(stop, stream.contiguous_end(0))
    pos = 0
    while pos < stop:
        nl = data.find(b"\n", pos, stop)
        nxt = stop if nl < 0 else nl + 1
        yield pos, data[pos:nxt].rstrip(b"\r\n")
        pos = nxt


def _subject(der: bytes) -> str:
    cert = load_certificate(der)  # e.g. negative serials: judged by x509check, not here
    if cert is not None:
        with quiet_x509():
            try:
                return printable(cert.subject.rfc4514_string())
            except Exception:  # a name cryptography parses lazily and refuses
                pass
    return f"(unparseable certificate, {len(der)} bytes)"


def _frame(f: int | None) -> str:
    return f"[f{f}]" if f is not None else "[f?]"


def _challenges(smtp: SmtpDialogue | None) -> frozenset[tuple[int, int]]:
    """(frame, offset) of each 334 reply the dialogue read: an AUTH challenge, whose answer
    is a credential (RFC 4954 §4).  A line of either side is one of them by its frame (a frame
    carries one direction) and offset; a message line that starts with "334" is none."""
    if smtp is None:
        return frozenset()
    return frozenset((r.frame or 0, r.offset) for r in smtp.replies if r.code == 334)


def _plaintext(s: Session) -> list[str]:
    smtp = s.smtp
    c2s_end = smtp.tls_c2s_offset if smtp else None
    s2c_end = smtp.tls_s2c_offset if smtp else None
    return _dialogue(s.c2s, s.s2c, c2s_end, s2c_end, "", _challenges(smtp))


def _dialogue(c2s, s2c, c2s_end: int | None, s2c_end: int | None, mark: str,
              challenges: frozenset[tuple[int, int]]) -> list[str]:
    """Both sides' lines in frame order, credentials hidden; ``mark`` follows the side."""
    items = []
    for off, line in _lines(c2s, c2s_end):
        items.append((c2s.frame_at(off) or 0, 0, off, "C", line))
    for off, line in _lines(s2c, s2c_end):
        items.append((s2c.frame_at(off) or 0, 1, off, "S", line))
    items.sort()
    # Either side may send commands: after a 250 to TURN the responder does (S: lines), so
    # AUTH and the answer to a 334 challenge are hidden whichever side sends them.
    out, hidden = [], None  # the side answering a 334 challenge, until the other speaks
    for frame, _d, off, side, line in items[:_MAX_LINES]:
        text = printable_bytes(line)
        if side == hidden:
            text = "[credentials hidden]"
        elif (frame, off) in challenges:
            hidden = "S" if side == "C" else "C"
        elif not (hidden and text.startswith("334")):  # (a challenge's next lines keep it)
            hidden = None
            if text.split(" ", 1)[0].upper() == "AUTH":
                parts = text.split(" ")
                text = " ".join(parts[:2]) + (" [credentials hidden]" if len(parts) > 2
                                              else "")
        out.append(f"{_frame(frame)} {side}{mark}: {text}")
    if len(items) > _MAX_LINES:
        out.append(f"... {len(items) - _MAX_LINES} more lines")
    return out


def _decrypted(s: Session) -> list[str]:
    """What the keys showed: the application data inside TLS, each line marked as
    decrypted, or why nothing was."""
    d = s.decryption
    if d is None:
        return []
    if not d.keys_found:
        return [f"--- not decrypted: {printable(d.why_not or 'no key for this session')}"]
    out = ["--- decrypted with keys from "
           + printable(", ".join(d.sources[:3]) + (", ..." if len(d.sources) > 3 else ""))
           + " (lines marked *) ---"]
    if s.tls_c2s is not None and s.tls_s2c is not None:
        out += _dialogue(s.tls_c2s, s.tls_s2c, None, None, "*", _challenges(s.smtp_tls))
    for name, side in (("client", d.c2s), ("server", d.s2c)):
        if side is not None and side.limited:
            out.append(f"[the {name}'s application data was decrypted up to the limit, "
                       f"{side.app_bytes} bytes]")
    if d.error:
        out.append(f"--- decryption failed: {printable(d.error)}")
    return out


# The handshake's messages in the order each side sends them, TLS 1.2 and before, then 1.3
# (whose compatibility ChangeCipherSpec comes before its side's encrypted flight, and whose
# CertificateRequest comes before the server's Certificate).
_ORDER_TLS12 = ("ClientHello", "ServerHello", "S Certificate", "ServerKeyExchange",
                "CertificateRequest", "ServerHelloDone", "C Certificate", "ClientKeyExchange",
                "CertificateVerify", "C ChangeCipherSpec", "NewSessionTicket",
                "S ChangeCipherSpec")
_ORDER_TLS13 = ("ClientHello", "ServerHello", "S ChangeCipherSpec", "CertificateRequest",
                "S Certificate", "C ChangeCipherSpec", "C Certificate", "CertificateVerify",
                "NewSessionTicket")


def _tls(s: Session) -> list[str]:
    """The handshake as messages in frame order, as Wireshark lists them (the messages of
    one frame in the order they were sent), then the encrypted records and the outcome."""
    t = s.tls
    if t is None:
        return []
    found: dict[str, tuple[int | None, list[str]]] = {}  # message -> (frame, its lines)

    def add(key: str, w, side: str, text: str, more: list[str] | None = None) -> None:
        frame = w.frame if w else None
        found[key] = (frame, [f"{_frame(frame)} {side}: {text}", *(more or [])])

    ch = t.client_hello
    if ch is not None:
        sni = f", SNI {printable(wire_str(ch.sni))}" if ch.sni else ""
        add("ClientHello", t.client_hello_at, "C",
            f"ClientHello{sni}, JA3 {ch.ja3_md5}, JA4 {ch.ja4}")
    if t.server_hello is not None:
        hrr = " (HelloRetryRequest)" if t.hello_retry_request else ""
        how = {"session_id": "session ID", "ticket": "session ticket",
               "psk": "pre-shared key"}.get(t.resumption or "")
        resumed = f", resumes an earlier session by {how}" if how else ""
        add("ServerHello", t.server_hello_at, "S", f"ServerHello{hrr}{resumed}")
    if t.server_certs_at is not None:
        add("S Certificate", t.server_certs_at, "S", f"Certificate, {len(t.server_certs)} cert(s)",
            [f"        {i}: {_subject(d)}" for i, d in enumerate(t.server_certs)])
    if t.server_key_exchange_at is not None:
        add("ServerKeyExchange", t.server_key_exchange_at, "S", "ServerKeyExchange")
    if t.cert_request is not None:
        names = [printable(n) if n else "(unparseable)" for n in t.cert_request.ca_names()]
        add("CertificateRequest", t.cert_request_at, "S",
            f"CertificateRequest, {len(names)} acceptable CA(s)",
            [f"        CA: {n}" for n in names[:20]])
    if t.server_hello_done_at is not None:
        add("ServerHelloDone", t.server_hello_done_at, "S", "ServerHelloDone")
    if t.client_certificate_at is not None:
        cc, w = t.client_certificate, t.client_certificate_at
        if cc is None:
            add("C Certificate", w, "C", "Certificate (malformed)")
        elif not cc:
            add("C Certificate", w, "C", "Certificate, EMPTY (no certificate)")
        else:
            add("C Certificate", w, "C", f"Certificate, {len(cc)} cert(s)",
                [f"        {i}: {_subject(d)}" for i, d in enumerate(cc)])
    for key, w, side, name in (
            ("ClientKeyExchange", t.client_key_exchange_at, "C", "ClientKeyExchange"),
            ("CertificateVerify", t.certificate_verify_at, "C", "CertificateVerify"),
            ("C ChangeCipherSpec", t.client_ccs_at, "C", "ChangeCipherSpec"),
            ("S ChangeCipherSpec", t.server_ccs_at, "S", "ChangeCipherSpec")):
        if w is not None:
            add(key, w, side, name)
    if t.session_ticket_at is not None:
        add("NewSessionTicket", t.session_ticket_at, "S",
            f"NewSessionTicket, {len(t.session_tickets)} ticket(s)")
    order = _ORDER_TLS13 if is_tls13(t.version) else _ORDER_TLS12
    msgs = [found.pop(k) for k in order if k in found] + list(found.values())
    for a in t.alerts:
        frame = a.at.frame if a.at else None
        side = "C" if a.from_client else "S"
        msgs.append((frame, [f"{_frame(frame)} {side}: Alert: {a.text()}"]))
    out = [f"--- TLS {t.version_name or '(version unknown)'}"
           + (f", cipher {t.cipher_name}" if t.cipher_name else "") + " ---"]
    for _frame_no, lines in _in_frame_order(msgs):
        out += lines
    for side, enc in (("C", t.c2s_encrypted), ("S", t.s2c_encrypted)):
        if enc.records:
            out.append(f"        {side}: {enc.records} encrypted record(s), "
                       f"{enc.total_length} bytes")
    out.append(f"--- handshake {t.outcome}: {printable(t.outcome_detail)}")
    return out


def _in_frame_order(msgs: list[tuple[int | None, list[str]]]
                    ) -> list[tuple[int | None, list[str]]]:
    """`msgs` (listed in protocol order) sorted by frame, stably, so messages of one frame
    keep their order; one without a frame stays after the message before it."""
    keyed, last = [], 0
    for i, (frame, lines) in enumerate(msgs):
        last = frame if frame is not None else last
        keyed.append((last, i, frame, lines))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [(frame, lines) for _k, _i, frame, lines in keyed]


@dataclass(frozen=True, slots=True)
class LogLine:
    """A mail-server log line to show among the packets: its time on the capture's clock
    (the log's, less the join's skew) and where it came from."""

    ts_ns: int
    where: str  # "FILE line N"
    text: str


_FRAME_PREFIX = re.compile(r"\[f(\d+)\]")


def _interleave(lines: list[str], logs: list[LogLine], frame_ts: dict[int, int],
                start_ns: int) -> list[str]:
    """Each log line put before the first packet line that is later than it (packet lines
    keep their order; lines without a frame time go with the line before)."""
    pending = sorted(logs, key=lambda x: x.ts_ns)
    out, i = [], 0
    for line in lines:
        m = _FRAME_PREFIX.match(line)
        ts = frame_ts.get(int(m.group(1))) if m else None
        while ts is not None and i < len(pending) and pending[i].ts_ns <= ts:
            out.append(_log_text(pending[i], start_ns))
            i += 1
        out.append(line)
    out += [_log_text(x, start_ns) for x in pending[i:]]
    return out


def _log_text(x: LogLine, start_ns: int) -> str:
    return f"[log {printable(x.where)}, {(x.ts_ns - start_ns) / 1e9:+.3f} s] {printable(x.text)}"


def format_follow(s: Session, logs: list[LogLine] | None = None,
                  frame_ts: dict[int, int] | None = None) -> str:
    """The session as text lines, ready to print; with `logs` (and the capture times of the
    session's frames, `frame_ts`), the log lines interleaved with the packets by time."""
    ts = dt.datetime.fromtimestamp(s.first_ts_ns / 1e9, dt.UTC)
    head = (f"Session {s.number}: {s.client} -> {s.server}, frames {s.first_frame}-"
            f"{s.last_frame} ({s.frames} frames), {ts:%Y-%m-%d %H:%M:%S} UTC")
    lines = [head, "=" * min(len(head), 100)]
    if s.continues_into:  # frame numbers count on into them, as in `mergecap -a`
        lines[1:1] = [f"continues into {printable(', '.join(s.continues_into))} (frame "
                      "numbers counting on from this file into them)"]
    # The wire's directions: c2s is the originator's, the server after TURN (roles_turned)
    names = ("client", "server")
    if s.roles_turned:
        names = (f"originator {s.server}", f"responder {s.client}")
        lines.append(f"roles turned by {turn_verb(s.smtp)}: the responder {s.client} sends the "
                     f"mail, C: lines are the originator {s.server}'s")
    lines += _plaintext(s)
    for name, gaps in zip(names, (s.tcp.c2s_gaps, s.tcp.s2c_gaps), strict=True):
        for off, size in gaps[:20]:
            lines.append(f"[{size} bytes missing in capture from the {name} at stream "
                         f"offset {off}]")
    lines += _tls(s)
    lines += _decrypted(s)
    if logs:
        lines[2:] = _interleave(lines[2:], logs, frame_ts or {}, s.first_ts_ns)
    return "\n".join(lines)
