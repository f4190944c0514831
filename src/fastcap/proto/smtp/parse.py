"""parse_dialogue, the production entry: a whole connection's two streams in, an SmtpDialogue
out, by the fast path (_parse_plain) for the usual dialogue or else SmtpConversation, its events
folded as they are made (_FoldingConversation) and its input fed on demand (_Feeder).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from . import machine
from .dialogue import SmtpDialogue, _DialogueBuilder
from .events import (
    ANOMALY_KINDS,
    AUTH_VERBS,
    GREETING_CODES,
    TLS_VERBS,
    TURN_VERBS,
    Anomaly,
    AuthResponse,
    Closed,
    CutStart,
    DataBody,
    Direction,
    Event,
    StartTls,
)
from .machine import (
    _TLS_TYPES,
    FrameAt,
    SmtpConversation,
    _enhanced,
    _known_command,
    _line_wire,
    _lone_cr,
    _reply_at,
    _ReplyAcc,
    _scan_body,
    _wire_texts,
    zeek_dot,
)
from .tunnel import HEAD_MAX, Tunnel
from .tunnel import proxy_tunnel as tunnel_of

FEED_CHUNK: Final = 1 << 16  # parse_dialogue feeds at most this much at a time

# What an unanswered command may be for the fast path: after one of these, SmtpConversation
# guesses from the client's next bytes (content, an auth response, TLS, swapped roles).
_GUESSED: Final = frozenset({"DATA", "AUTH", "AUTH_RESPONSE", *TLS_VERBS, *TURN_VERBS})


class StreamLike(Protocol):
    """One reassembled direction: bytes (zero inside gaps, never trusted), gaps as
    (stream_offset, size), and stream offset → Wireshark frame number (1-based)."""

    @property
    def data(self) -> bytes: ...

    @property
    def gaps(self) -> Sequence[tuple[int, int]]: ...

    def frame_at(self, offset: int) -> int | None: ...


class _FoldingConversation(SmtpConversation):
    """parse_dialogue's conversation: events go straight into a _DialogueBuilder, in order,
    with no queue, and replies and commands (most events) are folded from their fields without
    building the event objects. Per-event overhead is most of what a short dialogue costs
    (folding next_event's events instead made the general path about 14 % slower); tests
    prove the dialogue is the one next_event's events fold into."""

    def __init__(self, builder: _DialogueBuilder, implicit_tls: bool,
                 cut: CutStart | None = None, frame_at: tuple[FrameAt, FrameAt] | None = None,
                 start: tuple[int, int] = (0, 0)) -> None:
        self._builder = builder  # first: __init__ may emit
        super().__init__(implicit_tls, cut, frame_at, start)

    def _emit(self, ev: Event) -> None:
        self._builder.add(self._on_wire(ev))

    def _emit_reply(self, acc: _ReplyAcc, answers: str | None) -> None:
        lines = acc.lines
        self._builder.reply(acc.code, _enhanced(lines), lines, acc.offset, answers, acc.end,
                            acc.dropped, acc.last, tuple(acc.changes), acc.gap_line,
                            tuple(acc.wire.items()))

    def _emit_command(self, verb: str, arg: str, offset: int, end: int, cut: bool = False,
                      wire: bytes = b"") -> None:
        self._builder.command(verb, arg, offset, end, cut, wire)


def _clean_gaps(gaps: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged, non-empty gaps as (start, end): tolerate whatever the caller hands in."""
    out: list[tuple[int, int]] = []
    for start, end in sorted((max(0, int(o)), int(o) + int(n)) for o, n in gaps if int(n) > 0):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


class _Feeder:
    """Hands one stream to the conversation piece by piece: data, gaps, then EOF."""

    def __init__(self, stream: StreamLike, direction: Direction, start: int = 0) -> None:
        self.data = stream.data
        self.gaps = _clean_gaps(stream.gaps)
        self.direction: Direction = direction
        self.pos = max(0, start)
        self.fed_to = -1  # end of the last bytes fed; -1: none yet
        self.gi = 0
        while self.gi < len(self.gaps) and self.gaps[self.gi][1] <= self.pos:
            self.gi += 1  # gaps wholly before the start are not there for the reader
        self.done = False

    def step(self, conv: SmtpConversation) -> None:
        if self.gi < len(self.gaps) and self.gaps[self.gi][0] <= self.pos:
            end = self.gaps[self.gi][1]
            self.gi += 1
            if end > self.pos:
                conv.feed_gap(self.direction, self.pos, end - self.pos)
                self.pos = end
            return
        n = len(self.data)
        if self.pos < n:
            stop = min(n, self.pos + FEED_CHUNK)
            if self.gi < len(self.gaps):
                stop = min(stop, self.gaps[self.gi][0])
            conv.feed(self.direction, self.data[self.pos : stop], self.pos)
            self.pos = self.fed_to = stop
            return
        conv.feed_eof(self.direction)
        self.done = True


def proxy_tunnel(c2s: StreamLike, s2c: StreamLike) -> Tunnel | None:
    """The proxy tunnel (fastcap.proto.smtp.tunnel) a connection opens with, when none of its
    opening was lost; None for any other connection: its bytes are read as they are."""
    head = c2s.data[:1]
    if not head or (head[0] not in (4, 5) and c2s.data[:8] != b"CONNECT "):
        return None
    found = tunnel_of(bytes(c2s.data[:HEAD_MAX]), bytes(s2c.data[:HEAD_MAX]))
    if found is None or any(off < end for gaps, end in ((c2s.gaps, found.c2s_offset),
                                                        (s2c.gaps, found.s2c_offset))
                            for off, size in gaps if size > 0):
        return None
    return found


def _tunnel_anomalies(tunnel: Tunnel, plain_tls_port: bool) -> list[Anomaly]:
    """The tunnel's anomaly, and, for a tunnel to an implicit-TLS port whose server greets in
    plaintext, the warning a connection straight to that port gets (at the greeting)."""
    out = [Anomaly(tunnel.kind, tunnel.detail, 0, "c2s")]
    if plain_tls_port:
        out.append(Anomaly(
            "plaintext_on_tls_port", f"port {tunnel.port} (the tunnel's target) is an "
            "implicit-TLS port, but the host listening on it greeted in plaintext: read as SMTP",
            tunnel.s2c_offset, "s2c"))
    return out


def _parse_plain(c2s: StreamLike, s2c: StreamLike, tunnel: Tunnel | None = None,
                 plain_tls_port: bool = False) -> SmtpDialogue | None:
    """parse_dialogue's fast path for the usual dialogue, or None: the general path decides.

    Most connections need none of SmtpConversation's recovery, and stepping its state machine
    is most of what a short dialogue costs. This takes only: no gaps; a greeting; then client
    units (commands with known verbs, auth responses after 334, message content after 354 to
    DATA), each answered by one well-formed reply (_whole_reply); every client line CRLF-ended
    and within MAX_LINE; no BDAT; STARTTLS answered 220 or refused (no other 2xx); both streams
    ending after a reply, or going on in TLS records. Two endings with one Anomaly are taken
    too, as they are common: both streams empty (no_banner), and the server's stream ending
    with the last commands unanswered, none of them one after which SmtpConversation guesses
    (_GUESSED) but a STARTTLS the client sent last, which reports replies_missing once. For
    that it folds the events that SmtpConversation would, in the same order, and reports no
    other Anomaly: wherever one would be reported, it returns None and the general path
    starts over. (Fed on demand, such a dialogue never fills a buffer: no buffer_full either.)
    """
    if len(c2s.gaps) or len(s2c.gaps):
        return None
    cdata, sdata = c2s.data, s2c.data
    if not (isinstance(cdata, bytes) and isinstance(sdata, bytes)):
        return None
    if not (cdata or sdata or tunnel) and machine.MAX_ANOMALIES > 0:
        # _step_server at the greeting: the server's stream ended before any reply
        b = _DialogueBuilder(c2s.frame_at, s2c.frame_at)
        b.add(Anomaly("no_banner", ANOMALY_KINDS["no_banner"], 0, "s2c"))
        b.add(Closed())
        return b.finish()
    c_at, s_at = (0, 0) if tunnel is None else tunnel[:2]
    at = _reply_at(sdata, s_at)  # _whole_reply, its texts kept as a tuple
    if at is None or at[0][0] not in GREETING_CODES:
        return None
    (code, lines, _), spos = at
    b = _DialogueBuilder(c2s.frame_at, s2c.frame_at)
    if tunnel is not None:
        for a in _tunnel_anomalies(tunnel, plain_tls_port):
            b.add(a)
    b.banner(code, "\n".join(lines), s_at, sdata.find(b"\n", s_at) + 1,
             _wire_texts(sdata, s_at, spos, lines))
    cpos, cend = c_at, len(cdata)
    max_line = machine.MAX_LINE  # the one cap the state machine reads too: read it there
    mode = "command"  # what the client sends next: command | auth | body
    missing = False  # replies_missing reported: the server's stream ended
    while cpos < cend:
        # The client's unit, and what its reply answers (_step_client).
        if mode == "body":
            found, i, _, tlen = _scan_body(cdata, cpos, True)
            if not found:
                return None
            rest = None  # SmtpConversation._zeek_content's: what Zeek reads after its end
            if cdata.find(b"\r.", cpos, i) >= 0 or cdata.find(b"\n.\r", cpos - 1, i) >= 0:
                at = zeek_dot(b"\n" + cdata[cpos:i])
                if at is not None:
                    at += cpos - 1
                    rest = at, cdata[at:min(i, at + machine.MAX_ZEEK_REST)]
            b.add(DataBody(i - cpos, cpos, rest))
            cpos, pending = i + tlen, "END_OF_DATA"
        else:
            nl = cdata.find(b"\n", cpos)
            if not (cpos < nl <= cpos + max_line + 1 and cdata[nl - 1] == 0x0D) or _lone_cr(
                    cdata, cpos, nl):
                return None
            if mode == "auth":  # the CRs before its CR LF: lines of their own to Zeek
                crs = nl - 1 - cpos - len(cdata[cpos:nl - 1].rstrip(b"\r")) if (
                    cdata[nl - 2] == 0x0D and nl - 2 >= cpos) else 0
                b.add(AuthResponse(nl + 1 - cpos, cpos, zeek_extra=crs))
                pending = "AUTH_RESPONSE"
            else:
                end = nl - 1
                while end > cpos and cdata[end - 1] in b" \t":
                    end -= 1
                known = _known_command(cdata[cpos:end])  # None for BDAT: its chunk is no line
                if known is None:
                    return None
                verb, arg = known
                b.command(verb, arg, cpos, nl + 1, wire=_line_wire(cdata[cpos:end], arg))
                pending = "AUTH" if verb in AUTH_VERBS else verb
            cpos = nl + 1
        # Its reply, and what the client sends next (_step_server, _after_reply).
        at = _reply_at(sdata, spos)  # _whole_reply, as above
        if at is None:
            if spos != len(sdata) or machine.MAX_ANOMALIES < 1 or pending in _GUESSED and not (
                    pending in TLS_VERBS and cpos == cend):  # _step_tls_guess: no bytes, no guess
                return None
            # The server's stream ended: _step_server's replies_missing, once, then _step_guess
            if not missing:
                missing = True
                b.add(Anomaly("replies_missing", ANOMALY_KINDS["replies_missing"], spos, "s2c"))
            mode = "command"  # after content too (_guess_on)
            continue
        (code, lines, enhanced), end = at
        b.reply(code, enhanced, lines, spos, pending, end,
                wire=_wire_texts(sdata, spos, end, lines))
        spos, mode = end, "command"
        if pending in TURN_VERBS and code == 250:
            return None  # the roles swap (SmtpConversation._turn_roles)
        if pending in TLS_VERBS:
            if 200 <= code < 300 and code != 220:
                return None
            if code == 220:  # _step_tls: each side's first byte, if it has one, is TLS
                if (cpos < cend and cdata[cpos] not in _TLS_TYPES) or (
                    spos < len(sdata) and sdata[spos] not in _TLS_TYPES
                ):
                    return None  # not_tls
                b.add(StartTls(True, cpos, spos))
                b.add(Closed())
                return b.finish()
            b.add(StartTls(False, cpos, spos))
        elif code == 354:
            if pending != "DATA":
                return None
            mode = "body"
        elif code == 334:
            if pending not in ("AUTH", "AUTH_RESPONSE"):
                return None
            mode = "auth"
    if mode == "body" or spos != len(sdata):
        return None  # content cut short, replies that answer nothing, or a cut reply
    b.add(Closed())
    return b.finish()


def _tls_inside(c2s: StreamLike, s2c: StreamLike, tunnel: Tunnel,
                implicit_ports: Iterable[int]) -> bool:
    """Does TLS start at the tunnel's first byte, as on an implicit-TLS port (RFC 8314 §3.3)?
    So when the client opens it with a TLS record, or it leads to such a port and the server
    does not greet in plaintext (a greeting is read as SMTP, as on the port itself)."""
    c, s = tunnel.c2s_offset, tunnel.s2c_offset
    if machine._looks_tls(c2s.data[c : c + 2]):
        return True
    return tunnel.port in implicit_ports and not s2c.data[s : s + 3].isdigit()


def parse_dialogue(c2s: StreamLike, s2c: StreamLike, *, implicit_tls: bool = False,
                   cut: CutStart | None = None, implicit_ports: Iterable[int] = (),
                   _general: bool = False) -> SmtpDialogue:
    """Run a whole connection through SmtpConversation, feeding whichever side it waits for.

    Feeding on demand keeps buffers small whatever the streams' sizes. Gap bytes are never fed:
    each gap becomes a Gap and parsing resyncs after it. Once TLS starts, only its first bytes
    are fed (to check they look like TLS); the TLS parser takes over from the offsets. With
    ``cut`` (a capture that began mid-conversation) each direction is read from its offset.

    Two shortcuts keep this fast, and tests prove both give what the public API gives: the
    fast path (_parse_plain) for the usual dialogue, and _FoldingConversation, which folds
    the events as they are made instead of queueing them for ``next_event``. ``_general``
    (for those tests) skips the fast path. A proxy's tunnel to one of ``implicit_ports``
    (or one the client opens with TLS) is read as TLS from its first byte (``_tls_inside``);
    one to such a port whose server greets in plaintext is read as SMTP, with the warning
    ``plaintext_on_tls_port`` that a connection straight to the port gets.
    """
    implicit_ports = frozenset(implicit_ports)
    tunnel = None if implicit_tls or cut is not None else proxy_tunnel(c2s, s2c)
    plain_tls_port = False
    if tunnel is not None and _tls_inside(c2s, s2c, tunnel, implicit_ports):
        implicit_tls = True
    elif tunnel is not None:
        plain_tls_port = tunnel.port in implicit_ports
    if not (implicit_tls or _general) and cut is None:
        dialogue = _parse_plain(c2s, s2c, tunnel, plain_tls_port)
        if dialogue is not None:
            return dialogue
    builder = _DialogueBuilder(c2s.frame_at, s2c.frame_at)
    start = (0, 0) if tunnel is None else tunnel[:2]
    if tunnel is not None:
        for a in _tunnel_anomalies(tunnel, plain_tls_port):
            builder.add(a)
    conv = _FoldingConversation(builder, implicit_tls, cut, (c2s.frame_at, s2c.frame_at),
                                start)
    c_at, s_at = start if cut is None else (cut.c2s_offset, cut.s2c_offset)
    feeders = {"c2s": _Feeder(c2s, "c2s", c_at), "s2c": _Feeder(s2c, "s2c", s_at)}
    dialogue, step = builder.draft, conv._step
    while not dialogue.closed:  # next_event() unrolled: the events are folded as they come
        if step():
            continue
        d = conv.waiting_for
        if d is None or feeders[d].done:
            break  # cannot happen; never loop forever on a bug
        f = feeders[d]
        # Set together, when TLS began (StartTls accepted): from there only its first bytes
        # (a gap or a cut start past the TLS start is not one: the bytes after it are).
        tls_at = dialogue.tls_c2s_offset if d == "c2s" else dialogue.tls_s2c_offset
        if tls_at is not None and f.fed_to > tls_at:
            conv.feed_eof(d)
            f.done = True
        else:
            f.step(conv)
    return builder.finish()
