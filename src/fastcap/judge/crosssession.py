"""What one connection tells about later ones of the same scan.

A resumed TLS session (TLS 1.2 session ID or ticket; a TLS 1.3 ticket, whose issue is seen
only with keys) shows no certificates: the client certificate of the full handshake that
established it applies.  And a server that sent a
CertificateRequest on one connection expects a certificate on the others too.  `diagnose`
judges one session at a time, so these facts are linked here: one `CrossSession` per scan
sees the judged sessions in number order (the original handshake always has the smaller
number, as sessions are numbered by first frame) and returns the later session's new
verdicts (`link`); the caller stores them, as `judging.judge` stores a Judgement.

Only earlier sessions count: output stays streamed, and a session's verdicts never change
after it has been handed on.  So a server's CertificateRequest raises the connections to it
that come after it, not those before.  Memory is bounded: at most `limit` TLS sessions and as
many servers are remembered, the least recently used forgotten first (counted in `dropped`).
A session handed on out of number order (an earlier connection held open past the hold cap,
see `session.InOrder`) may come before the handshake it resumed and is then reported as
resumed from before the capture.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..proto.tls import TlsHandshake
from ..proto.tls.inference import infer_client_cert
from ..session import Session, evolve
from ..verdict import Verdict
from .diagnose import (
    INFERRED_ABSENT,
    INFERRED_PRESENT,
    NOT_REQUESTED,
    RESUMED,
    _frame_text,
    awaits_expectation,
    client_cert_expected,
    most_severe_first,
)

_K = TypeVar("_K")
_V = TypeVar("_V")

MAX_REMEMBERED = 100_000  # TLS sessions (IDs and tickets) and servers remembered per scan

_HOW = {"s": "session ID", "t": "session ticket"}


@dataclass(frozen=True, slots=True)
class Origin:
    """The full handshake that established a TLS session, as a resumption refers to it."""

    path: str | None
    number: int
    frame: int | None  # its ServerHello, else its first frame
    verdicts: tuple[Verdict, ...]  # its client-certificate verdicts, inherited on resumption
    requested: bool  # it sent a CertificateRequest


def _client_cert_verdict(v: Verdict) -> bool:
    return v.code in ("ok", "no_client_cert") or (
        v.code.startswith("client_cert_") and v.code != NOT_REQUESTED)


def _ticket_key(t: TlsHandshake, ticket: bytes) -> bytes:
    return b"t" + t.ticket_digest(ticket)[:16]


class CrossSession:
    """Per-scan memory of earlier sessions; `link` each judged session in number order."""

    def __init__(self, limit: int = MAX_REMEMBERED, *, enabled: bool = True) -> None:
        self.limit = max(1, limit)
        self.enabled = enabled
        self.dropped = 0  # remembered entries forgotten to stay within `limit`
        self._origins: OrderedDict[bytes, Origin] = OrderedDict()
        # server -> (path, session number, frame, known only by inference)
        self._asked: OrderedDict[str, tuple[str | None, int, int | None, bool]] = OrderedDict()

    def _remember(self, table: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > self.limit:
            table.popitem(last=False)
            self.dropped += 1

    def link(self, s: Session, path: str | None = None) -> tuple[Verdict, ...] | None:
        """The verdicts `s` carries once linked to earlier sessions (None when none applies;
        `s` is only read), then remember what it shows: that memory is this object's job."""
        if not self.enabled:
            return None
        t = s.tls
        linked, origin = None, None
        if t is not None and (t.resumption in ("session_id", "ticket") or (
                t.resumption == "psk" and self._known_ticket(t))):
            origin, linked = self._resumed(s, path)
        elif any(awaits_expectation(v) for v in s.verdicts):
            asked = self._asked.get(s.server)
            if asked is not None:
                a_path, number, frame, inferred = asked
                where = _where(number, frame, a_path, path)
                how = ", inferred from its TLS 1.3 record sizes" if inferred else ""
                by = f"this server ({s.server}) asked for one on {where}{how}"
                linked = tuple(most_severe_first(client_cert_expected(v, by)
                                                 for v in s.verdicts))
        if t is not None:
            self._learn(s, path, origin, s.verdicts if linked is None else linked)
        return linked

    def apply(self, s: Session, path: str | None = None) -> Session:
        """`link`, its verdicts in a session like `s` (`s` itself when it linked none)."""
        linked = self.link(s, path)
        return s if linked is None else evolve(s, verdicts=tuple(linked))

    def _learn(self, s: Session, path: str | None, origin: Origin | None,
               verdicts: Sequence[Verdict]) -> None:
        t = s.tls
        frame = t.server_hello_at.frame if t.server_hello_at is not None else s.first_frame
        known = self._asked.get(s.server)
        if t.cert_requested and (known is None or known[3]):  # seen beats inferred
            self._remember(self._asked, s.server,
                           (path, s.number, _request_frame(t) or frame, False))
        elif known is None and _request_inferred(t, verdicts):
            self._remember(self._asked, s.server, (path, s.number, frame, True))
        if t.outcome != "completed":
            return  # no session to resume
        if t.resumption is None:
            origin = Origin(path, s.number, frame,
                            tuple(v for v in verdicts if _client_cert_verdict(v)),
                            t.cert_requested)
            sid = t.established_session_id
            if sid:
                self._remember(self._origins, b"s" + sid, origin)
        elif origin is None:  # resumed from before the capture: nothing to hand on
            return
        # (a ticket renewed on resumption still stands for the original handshake)
        for ticket in t.session_tickets:
            if ticket:
                self._remember(self._origins, _ticket_key(t, ticket), origin)

    def _known_ticket(self, t: TlsHandshake) -> bool:
        """A TLS 1.3 resumption offers its ticket in the clear, but the ticket was issued
        encrypted: only a handshake read with keys made it known.  Without, `diagnose` has
        said that the original cannot be identified, and that stands."""
        offered = t.offered_ticket
        return offered is not None and _ticket_key(t, offered) in self._origins

    def _resumed(self, s: Session,
                 path: str | None) -> tuple[Origin | None, tuple[Verdict, ...]]:
        """The original handshake, if it is known, and `s`'s verdicts with the resumption
        verdict replaced by one naming it, plus its client-certificate verdicts."""
        t = s.tls
        keys = []
        if t.offered_ticket:
            keys.append(_ticket_key(t, t.offered_ticket))
        if t.server_hello is not None and t.server_hello.session_id:
            keys.append(b"s" + t.server_hello.session_id)
        key = next((k for k in keys if k in self._origins), None)
        o = None if key is None else self._origins[key]
        out = [v for v in s.verdicts if v.code != RESUMED]
        resumed = next((v for v in s.verdicts if v.code == RESUMED), None)
        frame = resumed.frame if resumed is not None else None
        if key is None:
            how = _HOW["t" if t.resumption == "ticket" else "s"]
            lost = f" (or forgotten: over {self.limit} remembered)" if self.dropped else ""
            out.append(Verdict(
                RESUMED, "info",
                f"resumed by {how}{_frame_text(frame)} a TLS session established before the "
                f"capture started{lost}; its client certificate cannot be seen", "", frame))
        else:
            self._origins.move_to_end(key)
            where = _where(o.number, o.frame, o.path, path)
            if o.verdicts:
                cert = "its client-certificate verdict applies here too"
            elif o.requested:
                cert = "it shows no verdict on the client certificate"
            else:
                cert = ("it had no CertificateRequest, so no client certificate applies to "
                        "this connection either")
            out.append(Verdict(
                RESUMED, "info",
                f"resumed by {_HOW[key[:1].decode()]}{_frame_text(frame)} the TLS session "
                f"established by {where}; {cert}", "", o.frame))
            out += [Verdict(v.code, v.severity, "inherited from "
                            f"{_where(o.number, v.frame or o.frame, o.path, path)}: {v.message}",
                            v.hint, v.frame or o.frame) for v in o.verdicts]
        return o, tuple(most_severe_first(out))


def _request_inferred(t: TlsHandshake, verdicts: Sequence[Verdict]) -> bool:
    """A TLS 1.3 handshake seen without keys whose record sizes show the server asked for a
    client certificate: the client answered with a Certificate message, empty or not."""
    if not t.tls13_encrypted or not any(v.code in (INFERRED_ABSENT, INFERRED_PRESENT)
                                        for v in verdicts):
        return False
    return bool(infer_client_cert(t).requested)


def _request_frame(t: TlsHandshake) -> int | None:
    at = t.cert_request_at
    return at.frame if at is not None else None


def _where(number: int, frame: int | None, its_path: str | None, path: str | None) -> str:
    f = f" (frame {frame})" if frame is not None else ""
    of = f" of {its_path}" if its_path is not None and its_path != path else ""
    return f"session {number}{f}{of}"
