"""SmtpConversation, the sans-I/O SMTP state machine: two byte streams in, protocol events out.

Feed each direction with :meth:`SmtpConversation.feed`, then call ``next_event()`` until it
returns ``NEED_DATA`` (the h11 shape). Events come out in *causal* order: each reply right after
the client unit it answers. Pairing is a FIFO (RFC 2920 §3), and what the client sends next
depends on the reply it got (354 → message content, 334 → an auth response, 220 to STARTTLS →
TLS, RFC 3207 §4). So the order is a function of the two streams alone: however the bytes of the
two directions interleave between ``feed`` calls, the events are the same. The wire timing comes
back by mapping the events' stream offsets to frame numbers.

Gaps (bytes the capture lost) keep the FIFO aligned where they can: a line cut by a gap still
counts as one unit, lines after a gap must parse before they are trusted, a 354 or 334 re-aligns
pairing on its own, and where a reply is missing the client's next bytes decide (a TLS record
after STARTTLS means TLS began, plaintext that it did not; a known verb after DATA means no
content followed). Given each direction's frame numbers (``frame_at``), a reply lost whole is
found too, pipelined or not: see _answers_later.

Peer bytes never raise: oddities become ``Anomaly`` events, every buffer is capped, and
credentials are never kept (AUTH keeps only the mechanism; lines answering a 334 challenge
(RFC 4954 §4) become ``AuthResponse(size, offset)``).

The caps (MAX_*) are read from this module at call time: patching them here reaches both the
state machine and parse_dialogue's fast path (fastcap.proto.smtp.parse).
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from .events import (
    ANOMALY_KINDS,
    AUTH_VERBS,
    GREETING_CODES,
    KNOWN_VERBS,
    NEED_DATA,
    TLS_VERBS,
    TURN_VERBS,
    Anomaly,
    AuthResponse,
    Banner,
    Closed,
    Command,
    CutStart,
    DataBody,
    Direction,
    Event,
    Gap,
    Reply,
    StartTls,
    ZeekBadReply,
    ZeekTail,
    _NeedData,
    turned_detail,
)

_ZEEK_REPLY_CODE: Final = re.compile(rb"[1-5][0-9][0-9]")  # what SMTP.cc reads as a code

MAX_LINE: Final = 4096  # RFC 5321 §4.5.3.1 needs only 512 (commands, replies) and 1000 (text)
MAX_REPLY_LINES: Final = 128
MAX_BUFFER: Final = 1 << 20  # unconsumed bytes held per direction
MAX_PIECES: Final = 256  # contiguous runs (separated by gaps) held per direction
MAX_ANOMALIES: Final = 256
MAX_BAD_LINES: Final = 8  # unparsable lines in a row before a direction is written off
MAX_GROUP: Final = 1000  # commands of one pipelined group looked at ahead (_answers_later)
_COMPACT: Final = 1 << 16

# A command verb: RFC 5321 §4.1.1 has letters only; servers also see (and answer 500/502)
# extension words with digits, "-" and "_" (X-ANONYMOUSTLS, X_ANONYMOUSTLS), still commands
_VERB_RE: Final = re.compile(rb"([A-Za-z][A-Za-z0-9_-]{0,31})(?:[ \t]+(.*))?", re.S)
# RFC 5321 §4.2 has SP after the code of a reply's last line; servers also send a tab, which
# Zeek's SMTP analyzer and tshark read as the same (the text after it)
_REPLY_RE: Final = re.compile(rb"([2-5][0-9][0-9])(?:([ \t-])(.*))?", re.S)
# A whole well-formed reply: CRLF lines of one code (the backreference); see _whole_reply.
_WHOLE_REPLY_RE: Final = re.compile(
    rb"([2-5][0-9][0-9])(?:-[^\r\n]*\r\n\1)*(?:[ \t][^\r\n]*)?\r\n")
_ENHANCED_RE: Final = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s|$)")  # RFC 3463 §2
_NEXT_VERB_RE: Final = re.compile(rb"([A-Za-z][A-Za-z0-9-]{0,31})(?:[ \t\r\n]|\Z)")
_DELIM_RE: Final = re.compile(rb"[ \t\r\n]")
_NOT_CR_RE: Final = re.compile(rb"[^\r]")
_CONTROL_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # no text line holds these
_MECH_RE: Final = re.compile(rb"[A-Za-z0-9_-]{1,20}")  # SASL mechanism name, RFC 4422 §3.1
_B64_RE: Final = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_BDAT_RE: Final = re.compile(rb"([0-9]{1,18})(?:[ \t]+(?i:LAST))?[ \t]*")  # RFC 3030 §2
_TLS_TYPES: Final = frozenset({20, 21, 22, 23})  # TLS record content types (RFC 5246 §6.2.1)
# Commands after which the client waits for the reply before sending more: the last of a
# pipelined group (RFC 2920 §3.1), HELO (no PIPELINING without EHLO) and the TLS requests.
_WAITS_FOR_REPLY: Final = frozenset(
    {"EHLO", "HELO", "DATA", "VRFY", "EXPN", "QUIT", "NOOP"} | TLS_VERBS | TURN_VERBS)

FrameAt = Callable[[int], "int | None"]  # stream offset -> frame number


class _EndMark:
    __slots__ = ()


_END: Final = _EndMark()  # a direction has nothing more to give (EOF or written off)
_LOST: Final = _EndMark()  # a reply was there, but a gap took its code
_TLS_AHEAD: Final = _EndMark()  # after a gap the server is already speaking TLS


# -- per-direction byte buffer ---------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    offset: int
    head: bytes  # content without the line ending, at most MAX_LINE bytes
    length: int  # bytes on the wire, line ending included
    crlf: bool
    eol: bool  # False: the stream ended or a gap began inside the line
    truncated: bool
    cut: bool = False  # a gap follows: this is the head of a line whose rest was lost
    tail: str = ""  # first line after a gap: "count" (a unit whose head was lost) or "skip"
    lone_cr: bool = False  # ended by a CR that no LF follows (_line_end)

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(slots=True)
class _ReplyAcc:
    offset: int
    code: int
    lines: list[str]
    capped: bool = False
    after_gap: bool = False  # the first reply read after a gap: whole replies may be lost
    first_end: int = 0  # where its first line ends (after the LF), and its last
    end: int = 0
    dropped: int = 0  # lines past MAX_REPLY_LINES, counted, not kept
    last: str | None = None  # the text of the last of them
    # (line index, code, text, the text of the line before) of each line whose code is not
    # the line's before it: the line before ends the part Zeek reads as one reply
    changes: list[tuple[int, int, str, str]] = field(default_factory=list)
    prev: int = 0  # the code of its last line so far
    gap_line: int | None = None  # the first of its lines Zeek reads after a gap (Reply)
    wire: dict[int, bytes] = field(default_factory=dict)  # see Reply.wire


class _Side:
    """Unconsumed bytes of one direction as contiguous pieces; a gap separates two pieces."""

    __slots__ = ("name", "buf", "off", "pos", "scan", "later", "fed_end", "eof", "dead", "tls",
                 "tls_gap", "tls_checked", "resync", "skip_noted", "bad", "bare_lf_noted",
                 "head_cut", "after_gap", "long_off", "long_head", "long_len", "long_cr",
                 "noted", "start", "cr_end", "joined", "run", "run_at", "crs",
                 "lone")  # fmt: skip

    def __init__(self, name: Direction) -> None:
        self.name: Direction = name
        self.buf = bytearray()  # current piece
        self.off = 0  # stream offset of buf[0]
        self.pos = 0  # read position in buf
        self.scan = 0  # no LF in buf[pos:scan]
        self.later: deque[tuple[int, bytearray]] = deque()  # pieces after gaps
        self.fed_end = 0  # end of everything fed or declared missing
        self.eof = self.dead = self.tls = self.tls_gap = self.tls_checked = False
        self.resync = self.skip_noted = self.bare_lf_noted = False
        self.head_cut = False  # the line before the coming gap was handed out cut
        self.cr_end = False  # ... was handed out whole, ended by a CR: a LF after the gap is its
        self.joined = False  # the coming gap cuts a line read on across a gap before it
        self.after_gap = ""  # what the first line after a gap is: see _Line.tail
        self.bad = 0
        self.long_off: int | None = None  # an over-long line being skipped
        self.long_head = b""
        self.long_len = 0
        self.long_cr = False
        # A run of CRs skipped at the end of the over-long line (run CRs from stream offset
        # run_at): one line end before an LF, else each CR one (see _read_line); and ``crs``,
        # those of such a run, after the first, found to be lone: empty lines still to read,
        # before buf[pos] (``here`` is the first of them). Counted, not kept.
        self.run, self.run_at, self.crs = 0, 0, 0
        self.noted: set[str] = set()  # feed-time anomalies reported once
        self.start = 0  # stream offset where the current piece began (read start, or a gap's end)
        # The last run of CRs found after a lone CR, as stream offsets [from, to): each of
        # its CRs a line's end (the byte after the run is no LF), looked at once (line_end)
        self.lone = (0, 0)

    @property
    def here(self) -> int:
        return self.off + self.pos - self.crs

    @property
    def tail(self) -> int:
        if self.later:
            start, data = self.later[-1]
            return start + len(data)
        return self.off + len(self.buf)

    def line_end(self, start: int, stop: int | None = None) -> int:
        """_line_end in buf from ``start``; a CR of the last run of lone CRs found ends its
        line at once: a run of n CRs is n lines, and none looks at the rest of the run."""
        n = len(self.buf) if stop is None else min(stop, len(self.buf))
        if self.lone[0] <= self.off + start < self.lone[1] and start < n:
            return start  # (bytes of a run may have been skipped with a long line: not here)
        end, after = _line_end_run(self.buf, start, n)
        if after > end + 1:
            self.lone = (self.off + end, self.off + after)
        return end

    def buffered(self) -> int:
        return len(self.buf) - self.pos + sum(len(d) for _, d in self.later)

    def consume(self, n: int) -> None:
        self.pos += n
        if self.pos >= len(self.buf):
            self.off += len(self.buf)
            self.buf.clear()
            self.pos = self.scan = 0
        elif self.pos >= _COMPACT and 2 * self.pos >= len(self.buf):
            del self.buf[: self.pos]
            self.off += self.pos
            self.pos = self.scan = 0

    def drop_all(self) -> None:
        self.buf, self.off, self.pos, self.scan = bytearray(), self.here, 0, 0
        self.later.clear()
        self.long_off = None
        self.run = self.crs = 0

    def add(self, data: bytes | bytearray | memoryview, offset: int) -> str | None:
        """Store fed bytes; returns an anomaly kind when some had to be dropped."""
        n = len(data)
        if offset < self.fed_end:  # overlap: the reassembler should not do this; keep new bytes
            skip = self.fed_end - offset
            data, offset = data[skip:], self.fed_end
            if skip >= n:
                return "overlap"
        if not data:
            return None
        gap = offset > self.tail
        self.fed_end = offset + len(data)
        if self.dead:
            return None
        if self.tls and (gap or self.tls_gap):
            self.tls_gap = True  # TLS bytes after a gap are of no use to a TLS parser
            return None
        if self.buffered() + len(data) > MAX_BUFFER or (gap and len(self.later) >= MAX_PIECES):
            return "buffer_full"  # dropped; the next stored bytes open a gap over them
        if gap:
            self.later.append((offset, bytearray(data)))
        elif self.later:
            self.later[-1][1].extend(data)
        else:
            self.buf.extend(data)
        return "overlap" if n != len(data) else None


def _looks_tls(b: bytes | bytearray) -> bool:
    return len(b) >= 2 and b[0] in _TLS_TYPES and b[1] == 3


def _line_end(buf: bytes | bytearray, start: int, stop: int | None = None) -> int:
    """Where the line read from ``start`` ends: the index of its LF, or of a CR that no LF
    follows (Zeek's SMTP analyzer keeps its ContentLine readers' default CR_as_EOL, so such a
    CR ends a line; a run of CRs before an LF stays one line end, as before); -1: no end yet
    (a CR run at the end of ``buf`` may still be followed by an LF).  With ``stop``, as in
    ``buf[:stop]``: for a caller that takes only a line ending before it."""
    return _line_end_run(buf, start, len(buf) if stop is None else stop)[0]


def _line_end_run(buf: bytes | bytearray, start: int, stop: int) -> tuple[int, int]:
    """(_line_end in ``buf[:stop]``, and where the run of CRs after a lone CR it found ends,
    else -1).  Only the line and the CRs that end it are looked at: the first CR or LF, then
    the first byte after its CRs. Looking on for the LF (there may be none for megabytes) made
    each line of many that lone CRs end cost the rest of the run."""
    eol = _EOL_RE.search(buf, start, stop)
    if eol is None:
        return -1, -1
    at = eol.start()
    if buf[at] == 0x0A:
        return at, -1
    after = _NOT_CR_RE.search(buf, at, stop)
    if after is None:
        return -1, -1  # CRs up to the end: an LF may follow
    nxt = after.start()
    return (nxt, -1) if buf[nxt] == 0x0A else (at, nxt)


def _lone_cr(buf: bytes | bytearray, start: int, nl: int) -> bool:
    """Does a CR that no LF follows end the line at ``start`` before its LF at ``nl``?"""
    return buf.find(b"\r", start, nl - 1) >= 0 and _line_end(buf, start, nl + 1) != nl


_EOL_RE = re.compile(rb"[\r\n]")  # where Zeek's ContentLine ends a line (CR_as_EOL)


def _peek_joined(cut: _Line, nxt: bytes | bytearray, nl: int) -> _Line:
    """``cut`` with the text of the bytes after its gap (``nxt``, its LF at ``nl`` or none)
    joined to its head, as Zeek's ContentLine joins them, taking none of them; ``cut`` as it
    is when they are binary (see SmtpConversation._read_tail)."""
    tail = bytes(nxt[: nl if nl >= 0 else MAX_LINE + 1])
    cr = tail.find(b"\r")
    tail = tail if cr < 0 else tail[:cr]  # a CR ends it too (CR_as_EOL)
    try:
        tail.decode("utf-8")
    except UnicodeDecodeError:
        return cut
    if b"\x00" in tail:
        return cut
    head = cut.head + tail
    return replace(cut, head=head[:MAX_LINE], truncated=cut.truncated or len(head) > MAX_LINE)


def _zeek_end(line: _Line) -> int | None:
    """Where Zeek's ContentLine ends ``line`` and hands it on (CR_as_EOL, LF_as_EOL): at its
    first CR or LF; None when its end was not seen (the stream ended, a gap)."""
    cr = line.head.find(b"\r")
    if cr >= 0:
        return line.offset + cr
    if not line.eol:
        return None
    return line.end - (2 if line.crlf else 1)


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _show(b: bytes) -> str:
    return repr(bytes(b[:40]))[2:-1]


def _wire_texts(buf: bytes | bytearray, pos: int, end: int, texts: Sequence[str]
                ) -> tuple[tuple[int, bytes], ...]:
    """Reply.wire of the whole reply ``buf[pos:end]`` whose lines' texts are ``texts``: the
    bytes of each text that holds a backslash or ends in a CR (rare: most replies cost one
    look)."""
    joined = "".join(texts)
    if "\\" not in joined and "\r" not in joined:
        return ()
    lines = bytes(buf[pos:end]).split(b"\r\n")
    return tuple([(i, lines[i][4:]) for i, t in enumerate(texts) if _wire_kept(t)])


def _wire_kept(text: str) -> bool:
    """Does Reply.wire keep the bytes of a reply line read as ``text``?"""
    return "\\" in text or text.endswith("\r")


def _whole_reply(buf: bytes | bytearray, pos: int) -> tuple[int, list[str], int] | None:
    """A whole well-formed reply at ``pos`` as (code, texts, end), or None: CRLF lines of one
    code, none over MAX_LINE bytes before its LF, at most MAX_REPLY_LINES of them.

    The caps are read at call time, as everywhere. Decoding the lines at once is the same as
    one by one (_text): they split at ASCII bytes, which no UTF-8 sequence spans.
    """
    at = _reply_at(buf, pos)
    if at is None:
        return None
    (code, texts, _), end = at
    return code, list(texts), end


def _reply_at(buf: bytes | bytearray, pos: int
              ) -> tuple[tuple[int, tuple[str, ...], str | None], int] | None:
    """(_reply_read of the whole reply at ``pos``, where it ends), or None as _whole_reply."""
    m = _WHOLE_REPLY_RE.match(buf, pos)
    if m is None:
        return None
    read = _reply_read(m[0])
    return None if read is None else (read, m.end())


# Replies longer than this are read without memoising: a server repeats its usual replies in
# every session, but a hostile capture must not pin long ones in the cache.
_REPLY_MEMO_MAX = 1024


def _reply_read(raw: bytes) -> tuple[int, tuple[str, ...], str | None] | None:
    """(code, texts, enhanced status code) of the bytes of one whole reply, or None when a line
    or the line count is over its cap (read now, as everywhere); memoised for short replies.

    A reply of several lines is memoised by the lines after its first: a server's EHLO reply
    names the client in its first line ("Hello [192.0.2.7]"), so it is new in every session
    while its keyword lines recur. Its first line is read each time, as _reply_read_now would
    (splitting at a CRLF changes no line's decoding)."""
    if len(raw) > _REPLY_MEMO_MAX:
        return _reply_read_now(raw, MAX_LINE, MAX_REPLY_LINES)
    if raw[3:4] != b"-":  # one line: the commonest reply, kept whole
        return _reply_read_kept(raw, MAX_LINE, MAX_REPLY_LINES)
    max_line, max_lines = MAX_LINE, MAX_REPLY_LINES
    cut = raw.find(b"\r\n") + 2
    if cut == 1 or cut == len(raw):
        return _reply_read_kept(raw, max_line, max_lines)
    if cut - 2 >= max_line:
        return None
    rest = _reply_lines_kept(raw[cut:], max_line, max_lines - 1)
    if rest is None:
        return None
    first = raw[: cut - 2].decode("utf-8", "backslashreplace")[4:]
    m = _ENHANCED_RE.match(first)
    return int(raw[:3]), (first, *rest), m[1] if m else None


def _reply_read_now(raw: bytes, max_line: int, max_lines: int
                    ) -> tuple[int, tuple[str, ...], str | None] | None:
    if len(raw) > max_line + 1 and max(map(len, raw.split(b"\r\n"))) >= max_line:
        return None
    lines = raw.decode("utf-8", "backslashreplace").split("\r\n")
    lines.pop()  # after the last CRLF
    if len(lines) > max_lines:
        return None
    texts = tuple([t[4:] for t in lines])
    return int(raw[:3]), texts, _enhanced(texts)


# The same, kept per distinct reply (all immutable): the greeting's tail, the EHLO keywords and
# the 2xx/3xx answers recur across one server's sessions.
_reply_read_kept = functools.lru_cache(maxsize=1024)(_reply_read_now)


def _reply_lines_now(raw: bytes, max_line: int, max_lines: int) -> tuple[str, ...] | None:
    """The texts of a reply's lines after its first (``raw`` starts after the first CRLF), or
    None when one is over MAX_LINE or there are more than ``max_lines``: _reply_read_now's
    checks, line by line."""
    if len(raw) >= max_line and max(map(len, raw.split(b"\r\n"))) >= max_line:
        return None
    lines = raw.decode("utf-8", "backslashreplace").split("\r\n")
    lines.pop()  # after the last CRLF
    if len(lines) > max_lines:
        return None
    return tuple([t[4:] for t in lines])


_reply_lines_kept = functools.lru_cache(maxsize=1024)(_reply_lines_now)


def _known_command(head: bytes) -> tuple[str, str] | None:
    """(verb, kept argument) of a command line (its CRLF and trailing blanks stripped) whose
    verb is known and not BDAT (whose chunk is not a line), else None: parse_dialogue's fast
    path reads every client line so. Memoised for short lines, but never for AUTH lines (their
    argument may carry credentials, which must not be kept)."""
    if len(head) <= 512 and not head[:8].upper().startswith(_AUTH_HEADS):
        return _known_command_kept(head)
    return _known_command_now(head)


_AUTH_HEADS: Final = tuple(sorted(v.encode() for v in AUTH_VERBS))


def _known_command_now(head: bytes) -> tuple[str, str] | None:
    m = _VERB_RE.fullmatch(head)  # as _command: head.rstrip(b" \t")
    if m is None or (verb := m[1].decode().upper()) not in KNOWN_VERBS or verb == "BDAT":
        return None
    return verb, _command_arg(verb, m[2] or b"")


_known_command_kept = functools.lru_cache(maxsize=1024)(_known_command_now)


def _command_arg(verb: str, raw_arg: bytes) -> str:
    """A command's argument as kept: for AUTH only the mechanism, never credentials."""
    if verb in AUTH_VERBS:
        tok = raw_arg.split(None, 1)[0] if raw_arg.strip() else b""
        return tok.decode().upper() if _MECH_RE.fullmatch(tok) else ("?" if tok else "")
    return _text(raw_arg)


def _arg_wire(arg: str, raw_arg: bytes) -> bytes:
    """Command.wire of an argument kept as ``arg`` from ``raw_arg``: its bytes when the text
    holds a backslash (rare: most commands cost one look)."""
    return bytes(raw_arg) if "\\" in arg else b""


def _line_wire(head: bytes, arg: str) -> bytes:
    """_arg_wire of a command line ``head`` (as _known_command reads it) kept as ``arg``."""
    if "\\" not in arg:
        return b""
    m = _VERB_RE.fullmatch(head)
    return bytes(m[2] or b"") if m else b""


def _enhanced(lines: Sequence[str]) -> str | None:
    """The RFC 3463 enhanced status code a reply's first line starts with, if any."""
    m = _ENHANCED_RE.match(lines[0]) if lines else None
    return m[1] if m else None


def _scan_body(buf: bytearray, i: int, bol: bool) -> tuple[bool, int, bool, int]:
    """Find the end-of-data line "." (RFC 5321 §4.1.1.4; a bare LF is tolerated).

    Returns (found, index, at_line_start, terminator_length); when not found, ``index`` is how
    far the bytes are known to be content.
    """
    n = len(buf)
    while True:
        if bol:
            if i >= n:
                return False, i, True, 0
            if buf[i] == 0x2E:
                nxt = buf[i + 1 : i + 3]
                if nxt[:1] == b"\n":
                    return True, i, True, 2
                if nxt == b"\r\n":
                    return True, i, True, 3
                if nxt in (b"", b"\r"):
                    return False, i, True, 0  # a "." or ".\r" that may yet end the data
        j = buf.find(b"\n.", i)
        if j < 0:
            return False, n, n > i and buf[n - 1] == 0x0A, 0
        i, bol = j + 1, True


# A "." line that Zeek's ContentLine reads inside message content where fastcap reads on (its
# CR_as_EOL: a lone CR ends a line): one after a lone CR, or ended by a CR that no LF follows
_ZEEK_DOT = re.compile(rb"\r\.[\r\n]|\n\.\r(?!\n)")
MAX_ZEEK_REST = 64 * 1024  # bytes of content kept after such a line, for the Zeek logs only


def zeek_dot(window: bytes | bytearray) -> int | None:
    """Where a "." line Zeek ends a message at (SMTP.cc: END_OF_DATA) but fastcap does not
    begins in ``window`` (message content, its first bytes those before it, or b"\n" at the
    content's start); None: no such line.  A ".\r" at the window's end after an LF, whose
    next byte is not known yet, is not one."""
    m = _ZEEK_DOT.search(window)
    while m is not None and m.end() == len(window) and window[m.start()] == 0x0A:
        m = _ZEEK_DOT.search(window, m.start() + 1)
    return None if m is None else m.start() + 1


# -- the conversation --------------------------------------------------------------------------


class SmtpConversation:
    """One TCP connection's SMTP dialogue as a pure state machine.

    Turns: greeting → (client → server)* → tls | closed. The client turn reads one unit (a
    command, an auth response, message content); the server turn reads its reply and decides
    what the client sends next. Any exception escaping on peer bytes is a bug.
    """

    def __init__(self, implicit_tls: bool = False, cut: CutStart | None = None,
                 frame_at: tuple[FrameAt, FrameAt] | None = None,
                 start: tuple[int, int] = (0, 0)) -> None:
        self._c2s = _Side("c2s")
        self._frame_at = frame_at  # (c2s, s2c): see _answers_later
        self._pipelining: bool | None = None  # offered in the EHLO reply; None: not seen
        self._s2c = _Side("s2c")
        self._out: deque[Event] = deque()
        self._turn = "greeting"
        self._mode = "command"  # c2s: command | auth | body | chunk
        self._pending: str | None = None  # what the awaited reply answers
        self._acc: _ReplyAcc | None = None
        self._held: _ReplyAcc | None = None  # a first reply that was not a greeting
        # a reply line a gap cut, waiting for its tail, whether a gap came before it with no
        # line parsed since (_read_reply), and whether it was read on across a gap already
        self._cut: tuple[_Line, bool, bool] | None = None
        self._tls_off = 0
        self._guess_code: int | None = None
        self._unit_off = 0  # body/chunk start
        self._chunk_end = 0
        self._bol = True
        # _zeek_content's state: the message it follows (-1: none), its last bytes, and what
        # is kept from Zeek's "." line on
        self._zk_unit, self._zk_rest, self._zk_at = -1, None, 0
        self._zk_prev: bytes | bytearray | None = b"\n"
        self._anomalies = 0
        self._zeek_bad = 0  # ZeekBadReply events emitted (_zeek_bad_reply)
        self._waiting: Direction | None = None
        self._replies_missing_noted = False
        self._lead_end = 0  # see CutStart
        self._lead_replies = 0
        self._lead_noted = False
        self._lead_reading = False  # a lead reply is half read: finish it wherever it ends
        # After a 250 to TURN the server sends the commands: _c2s and _s2c (and their names)
        # are then the command and the reply side, the wire's directions swapped (_wire).
        self._turned = False
        self._greet_owed = False  # after TURN, until the new receiver's first reply
        self._greeted_late = False  # that reply, a greeting, came after the first command
        # ``start``: where SMTP begins in each direction of a connection that opened with
        # something else (a proxy's tunnel); the dialogue is read from there as from offset 0.
        for side, at in ((self._c2s, start[0]), (self._s2c, start[1])):
            side.off = side.fed_end = side.start = max(0, at)
        if cut is not None:
            for side, at in ((self._c2s, cut.c2s_offset), (self._s2c, cut.s2c_offset)):
                side.off = side.fed_end = side.start = max(0, at)
            self._lead_end = cut.s2c_lead_end
            self._turn = "lead"
            if cut.c2s_body:  # content up to its end-of-data line, whatever it reads like
                self._mode, self._unit_off = "body", self._c2s.off
            elif cut.c2s_chunk_end is not None:  # a BDAT chunk's tail, likewise
                self._mode, self._unit_off = "chunk", self._c2s.off
                self._chunk_end = max(self._c2s.off, cut.c2s_chunk_end)
        if implicit_tls:  # from the tunnel's start, if any
            self._emit(StartTls(True, self._c2s.off, self._s2c.off, implicit=True))
            self._enter_tls()

    # -- public API --------------------------------------------------------------------------

    def feed(
        self,
        direction: Direction,
        data: bytes | bytearray | memoryview,
        stream_offset: int | None = None,
    ) -> None:
        """Add bytes of one direction; ``stream_offset`` (default: contiguous) past the end of
        what was fed before marks the bytes in between as a gap."""
        side = self._side(direction)
        if side.eof:
            if data:
                self._note(side, "data_after_eof")
            return
        off = side.fed_end if stream_offset is None else stream_offset
        kind = side.add(data, off)
        if kind is not None:
            self._note(side, kind)

    def feed_gap(self, direction: Direction, offset: int, size: int) -> None:
        """Declare [offset, offset+size) lost, e.g. a gap at the end of a capture."""
        side = self._side(direction)
        if not side.eof and size > 0:
            side.fed_end = max(side.fed_end, offset + size)

    def feed_eof(self, direction: Direction) -> None:
        """The direction ended (FIN, RST or end of capture)."""
        side = self._side(direction)
        if side.eof:
            return
        side.eof = True
        if side.fed_end > side.tail and not side.dead:
            if side.tls:
                side.tls_gap = True
            else:
                side.later.append((side.fed_end, bytearray()))  # a trailing gap

    def next_event(self) -> Event | _NeedData:
        """The next event, or NEED_DATA (see ``waiting_for``). Closed comes exactly once."""
        while not self._out:
            if self._turn == "closed" or not self._step():
                break
        if self._out:
            self._waiting = None
            return self._out.popleft()
        return NEED_DATA

    @property
    def waiting_for(self) -> Direction | None:
        """After NEED_DATA: the direction whose bytes (or EOF) would let parsing go on."""
        return self._wire(self._waiting) if self._waiting else None

    def take_tls_bytes(self, direction: Direction) -> bytes:
        """Bytes fed beyond the TLS start and not taken yet; empty before TLS.

        Only the contiguous run from the TLS start is handed out: a TLS record stream cannot be
        followed across a gap.
        """
        side = self._side(direction)
        if not side.tls:
            return b""
        self._check_tls(side)
        out = bytes(side.buf[side.pos :])
        side.consume(len(out))
        out, side.crs = b"\r" * side.crs + out, 0  # lone CRs not read as lines: TLS bytes
        return out

    # -- plumbing ----------------------------------------------------------------------------

    def _wire(self, direction: Direction) -> Direction:
        """A direction of the roles (c2s: the one sending commands) as one of the wire."""
        if not self._turned:
            return direction
        return "s2c" if direction == "c2s" else "c2s"

    def _on_wire(self, ev: Event) -> Event:
        """``ev`` with the directions of the wire: after TURN the roles' are swapped."""
        if not self._turned:
            return ev
        if isinstance(ev, (Anomaly, Gap, ZeekBadReply)) and ev.direction:
            return replace(ev, direction=self._wire(ev.direction))
        if isinstance(ev, StartTls):
            return replace(ev, c2s_offset=ev.s2c_offset, s2c_offset=ev.c2s_offset)
        return ev

    def _side(self, direction: str) -> _Side:
        if direction in ("c2s", "s2c"):
            direction = self._wire(direction)  # type: ignore[arg-type]
        if direction == "c2s":
            return self._c2s
        if direction == "s2c":
            return self._s2c
        raise ValueError(f"direction must be 'c2s' or 's2c', not {direction!r}")

    def _emit(self, ev: Event) -> None:
        self._out.append(self._on_wire(ev))

    def _anomaly(
        self, kind: str, offset: int, direction: Direction | None, detail: str = "",
        end: int | None = None,
    ) -> None:
        """Queue an Anomaly; ``detail`` defaults to the kind's description. Capped."""
        n = self._anomalies
        self._anomalies = n + 1
        if n < MAX_ANOMALIES:
            self._emit(Anomaly(kind, detail or ANOMALY_KINDS[kind], offset, direction, end))
        elif n == MAX_ANOMALIES:
            self._emit(Anomaly("anomaly_cap", ANOMALY_KINDS["anomaly_cap"], offset, direction))

    def _note(self, side: _Side, kind: str) -> None:
        """Feed-time anomalies: once per direction and kind."""
        if kind not in side.noted:
            side.noted.add(kind)
            self._anomaly(kind, side.fed_end, side.name)

    def _kill(self, side: _Side, kind: str, offset: int, end: int | None = None) -> None:
        """Write a direction off: its remaining bytes are not SMTP; ``end``: Anomaly.end."""
        self._anomaly(kind, offset, side.name, end=end)
        side.dead = True
        side.drop_all()

    def _expect(self, what: str) -> None:
        self._pending = what
        self._turn = "server"

    def _enter_tls(self) -> None:
        self._turn = "tls"
        self._acc = self._cut = None
        for side in (self._c2s, self._s2c):
            side.tls = True
            side.long_off, side.run = None, 0
            if side.later:
                side.later.clear()
                side.tls_gap = True

    def _cross_gap(self, side: _Side, tail: str = "") -> None:
        """Emit the Gap and resync: lines after it must parse before they are trusted."""
        start = side.off + len(side.buf)
        nxt_off, nxt = side.later.popleft()
        self._emit(Gap(side.name, start, nxt_off - start, side.joined))
        side.joined = False
        side.buf, side.off, side.pos, side.scan = nxt, nxt_off, 0, 0
        side.start = nxt_off
        side.long_off, side.head_cut, side.run = None, False, 0
        side.resync, side.skip_noted, side.after_gap = True, False, tail
        if side.cr_end and nxt[:1] == b"\n":
            side.pos = 1  # the LF of the line a CR ended before the gap: swallowed, as by Zeek
        side.cr_end = False

    # -- lines and replies -------------------------------------------------------------------

    def _read_line(self, side: _Side, tls_ahead: bool = False) -> _Line | _EndMark | None:
        """The next LF-terminated line (over-long ones truncated), _END, or None: need bytes.

        With ``tls_ahead``, a TLS record right after a gap gives _TLS_AHEAD, unconsumed.
        """
        while True:
            if side.crs:  # a lone CR of a run skipped with a long line (_split_run)
                off, side.crs = side.here, side.crs - 1
                return _Line(off, b"", 1, False, True, False, lone_cr=True)
            if tls_ahead and side.after_gap and side.pos == 0:
                head = self._peek(side, 2)
                if head is None:
                    return None
                if _looks_tls(head):
                    return _TLS_AHEAD
            buf, pos = side.buf, side.pos
            if side.run and side.long_off is not None:
                more = _NOT_CR_RE.search(buf, pos)
                if more is not None and buf[more.start()] != 0x0A:
                    return self._split_run(side)  # no LF after the run: each CR ends a line
            nl = side.line_end(max(pos, side.scan))
            if nl >= 0:
                return self._take_line(side, nl)
            avail = len(buf) - pos
            side.scan = len(buf)
            while side.scan > pos and buf[side.scan - 1] == 0x0D:
                side.scan -= 1  # an LF may yet follow those CRs: look at them again
            # The CRs at the end stay, a few of them: whether they end the line (a lone CR)
            # or not (an LF follows) is for the next bytes to tell, however the stream was cut
            # into pieces. A longer run is skipped with the rest, its buffer kept small, and
            # counted (side.run): the next bytes tell the same of it.
            trail = avail - side.scan + pos
            skip = side.scan - pos if trail <= MAX_LINE + 1 else avail
            if skip and (side.long_off is not None or skip > MAX_LINE):
                if side.long_off is None:  # keep the head, skip the rest up to the next LF
                    side.long_off, side.long_head, side.long_len = (
                        side.here,
                        bytes(buf[pos : pos + MAX_LINE]),
                        0,
                    )
                if trail <= MAX_LINE + 1:
                    side.run = 0  # what is skipped ends in a byte that is no CR
                else:
                    if side.scan > pos or not side.run:  # a run begins here
                        side.run, side.run_at = 0, side.off + side.scan
                    side.run += trail
                side.long_len += skip
                side.long_cr = buf[pos + skip - 1] == 0x0D
                side.consume(skip)
                buf = side.buf
            partial = side.long_off is not None or side.pos < len(side.buf)
            if side.later:
                if partial and (buf[-1] == 0x0D if side.pos < len(buf) else side.long_cr):
                    # A CR ends the line before the gap: Zeek's ContentLine takes a lone CR as
                    # a line's end (CR_as_EOL, its default for SMTP), so the line is whole
                    side.cr_end = True
                    return self._take_line(side, None, cr_end=True)
                if partial:  # a gap cuts this line: hand out its head first
                    side.head_cut = True
                    return self._take_line(side, None, cut=True)
                # A line that was cut counts once: by its head if it had one, else by its tail.
                self._cross_gap(side, "skip" if side.head_cut else "count")
                continue
            if side.eof or side.dead:
                return self._take_line(side, None) if partial else _END
            return None

    def _split_run(self, side: _Side) -> _Line:
        """The long line whose skipped CR run (side.run) no LF follows: it ended at the run's
        first CR, as in one piece; each CR after it is an empty line (side.crs), read next."""
        size = side.run_at - side.long_off  # the line's bytes before the run
        line = _Line(side.long_off, side.long_head[:size], size + 1, False, True,
                     size > MAX_LINE, False, side.after_gap, lone_cr=True)
        side.crs, side.run, side.after_gap = side.run - 1, 0, ""
        side.long_off, side.long_head = None, b""
        return line

    def _take_line(self, side: _Side, nl: int | None, cut: bool = False,
                   cr_end: bool = False) -> _Line:
        buf, pos = side.buf, side.pos
        lf = nl is not None
        eol = lf or cr_end  # cr_end: the line ends at buf's last byte, a CR a gap follows
        stop = len(buf) if nl is None else nl
        if side.long_off is not None:
            off, head, truncated = side.long_off, side.long_head, True
            crlf = eol and (buf[stop - 1] == 0x0D if stop > pos else side.long_cr)
            length = side.long_len + stop - pos + lf
            side.long_off, side.long_head, side.run = None, b"", 0
        else:
            off = side.here
            crlf = eol and stop > pos and buf[stop - 1] == 0x0D
            cend = stop - 1 if stop > pos and buf[stop - 1] == 0x0D else stop
            head = bytes(buf[pos : min(cend, pos + MAX_LINE)])
            truncated = cend - pos > MAX_LINE
            length = stop - pos + lf
        lone_cr = lf and buf[stop] == 0x0D
        side.consume(stop - pos + lf)
        tail, side.after_gap = side.after_gap, ""
        return _Line(off, head, length, crlf, eol, truncated, cut, tail, lone_cr)

    def _line_anomalies(self, side: _Side, line: _Line) -> None:
        if line.cut or _looks_tls(line.head):
            return  # the Gap, or unexpected_tls, says it all
        if line.truncated:
            self._anomaly("line_too_long", line.offset, side.name, f"{line.length} bytes")
        if not line.eol:
            self._anomaly("missing_line_ending", line.offset, side.name)
        elif line.lone_cr:
            if "bare_cr" not in side.noted:
                side.noted.add("bare_cr")
                self._anomaly("bare_cr", line.offset, side.name)
        elif not line.crlf and not side.bare_lf_noted:
            side.bare_lf_noted = True
            self._anomaly("bare_lf", line.offset, side.name)

    def _skip(self, side: _Side, line: _Line) -> None:
        """A line after a gap that does not parse: skipped, reported once per gap."""
        if _looks_tls(line.head):
            self._kill(side, "unexpected_tls", line.offset, _zeek_end(line))
            return
        if side is self._s2c and line.tail != "skip":
            self._zeek_bad_reply(side, line)
        if not side.skip_noted:
            side.skip_noted = True
            self._anomaly("resync_skip", line.offset, side.name)

    def _zeek_bad_reply(self, side: _Side, line: _Line) -> None:
        """A reply-side line after a gap, read by Zeek as a line of its own (not the tail of
        a line the gap cut): a ZeekBadReply when it has no code Zeek reads (the first few)."""
        if self._zeek_bad < 8 and not _ZEEK_REPLY_CODE.match(line.head):
            self._zeek_bad += 1
            self._emit(ZeekBadReply(line.offset, side.name, _zeek_end(line)))

    def _bad_line(self, side: _Side, line: _Line, kind: str, detail: str) -> None:
        if side.resync:
            self._skip(side, line)
        elif _looks_tls(line.head):
            self._kill(side, "unexpected_tls", line.offset, _zeek_end(line))
        else:
            side.bad += 1
            self._anomaly(kind, line.offset, side.name, detail, _zeek_end(line))
            if side.bad >= MAX_BAD_LINES:
                self._kill(side, "not_smtp", line.offset)

    def _read_reply(self, tls_ahead: bool = False) -> _ReplyAcc | _EndMark | None:
        """The next whole reply, _END, _LOST (a gap cut its start off), _TLS_AHEAD (see
        _read_line), or None: need bytes."""
        if self._held is not None:
            res, self._held = self._held, None
            return res
        side = self._s2c
        while True:
            buf, pos = side.buf, side.pos
            # the line's end if it is an LF within MAX_LINE (no reply line is longer), else -1
            nl = -1 if (side.long_off is not None or side.after_gap or self._cut or side.crs
                        ) else side.line_end(max(pos, side.scan), pos + MAX_LINE + 1)
            if nl >= 0 and buf[nl] != 0x0A:
                nl = -1  # a lone CR: the general way
            if nl >= 0 and self._acc is None and (whole := _whole_reply(buf, pos)):
                # Fastest path: a whole well-formed reply at once; the loop below would take it
                # line by line to the same result.
                code, lines, end = whole
                acc = _ReplyAcc(side.off + pos, code, lines, after_gap=side.resync,
                                first_end=side.off + nl + 1, end=side.off + end)
                if wire := _wire_texts(buf, pos, end, lines):
                    acc.wire.update(wire)
                side.consume(end - pos)
                side.resync, side.bad = False, 0
                return acc
            if nl >= 0:
                # Fast path for the usual line: whole, not over-long, not after a gap. It does
                # what _read_line/_take_line/_line_anomalies do for such a line without
                # building a _Line (replies are most of an SMTP dialogue's lines).
                offset = side.off + pos
                stop = side.off + nl + 1
                crlf = nl > pos and buf[nl - 1] == 0x0D
                head = bytes(buf[pos : nl - 1 if crlf else nl])
                side.consume(nl + 1 - pos)
                if not crlf and not side.bare_lf_noted and not _looks_tls(head):
                    side.bare_lf_noted = True
                    self._anomaly("bare_lf", offset, side.name)
                m = _REPLY_RE.fullmatch(head)
                if m is None:
                    line = _Line(offset, head, nl + 1 - pos, crlf, True, False)
                    self._bad_line(side, line, "bad_reply_line", _show(head))
                    continue
                acc, gapped, cut, was = self._acc, False, False, side.resync
            else:
                if self._cut is not None:
                    line = self._read_tail(side)
                    if line is None:
                        return None
                    was, self._cut = self._cut[1], None
                else:
                    line = self._read_line(side, tls_ahead and self._acc is None)
                    if line is _TLS_AHEAD:
                        return _TLS_AHEAD
                    if line is None:
                        return None
                    if isinstance(line, _Line) and line.cut and not _looks_tls(line.head):
                        self._cut = (line, side.resync, False)  # read on past the gap first
                        continue
                    was = side.resync
                acc = self._acc
                if isinstance(line, _EndMark):
                    if acc is None:
                        return _END
                    self._anomaly("reply_unfinished", acc.offset, "s2c")
                    self._acc = None
                    return acc
                self._line_anomalies(side, line)
                m = _REPLY_RE.fullmatch(line.head)
                if m is None:
                    if acc is None and (line.cut or line.tail == "count"):
                        if line.tail == "count":  # a line of its own to Zeek too
                            self._zeek_bad_reply(side, line)
                        return _LOST
                    if line.tail != "skip":
                        self._bad_line(side, line, "bad_reply_line", _show(line.head))
                    continue
                cut = line.cut
                offset, gapped, stop = line.offset, cut or bool(line.tail), line.end
            after_gap = was  # no line parsed since a gap, before this one began
            side.resync, side.bad = False, 0
            code = int(m[1])
            ended = None
            if gapped and acc is not None and code != acc.code:
                # A gap took the end of a multi-line reply, and a reply of another code
                # follows it: that is the next reply (a STARTTLS 220 after a lost "250
                # STARTTLS" line), not a line of this one.
                self._anomaly("reply_unfinished", acc.offset, "s2c")
                ended, acc = acc, None
            if acc is None:
                acc = self._acc = _ReplyAcc(offset, code, [], after_gap=after_gap,
                                            first_end=stop)
                if cut:  # Zeek reads the line a gap cut after the gap: the whole reply
                    acc.gap_line = 0
            else:
                if gapped and acc.gap_line is None:  # its lines from this one on come after it
                    acc.gap_line = len(acc.lines) + acc.dropped
                if code != acc.code:
                    self._anomaly(
                        "reply_code_mismatch", offset, "s2c", f"{code} in a {acc.code} reply"
                    )
            at, text = len(acc.lines) + acc.dropped, _text(m[3] or b"")
            changed = bool(acc.lines) and code != acc.prev
            if changed:
                before = acc.last if acc.dropped else acc.lines[-1]
                acc.changes.append((at, code, text, before or ""))
            if at > MAX_REPLY_LINES and not changed and not (
                    acc.changes and acc.changes[-1][0] == at - 1) and not acc.wire.get(
                    at - 1, b"").endswith(b"\r"):
                acc.wire.pop(at - 1, None)  # a dropped line the Zeek logs never read
            if _wire_kept(text):
                acc.wire[at] = bytes(m[3])
            acc.prev = code
            acc.end = stop
            if len(acc.lines) < MAX_REPLY_LINES:
                acc.lines.append(text)
            else:
                acc.dropped += 1
                acc.last = text
                if not acc.capped:
                    acc.capped = True
                    self._anomaly("too_many_reply_lines", offset, "s2c")
            if m[2] != b"-":
                self._acc = None
                if ended is not None:
                    self._held = acc
                    return ended
                return acc
            if ended is not None:
                return ended

    def _read_tail(self, side: _Side) -> _Line | None:
        """The reply line a gap cut (self._cut) read on with the bytes after the gap up to the
        next line end, as Zeek's line reader (ContentLine) keeps a line's head across a gap and
        hands it on joined with them; the head alone when nothing follows the gap, or what
        does is binary before its line end (a NUL, or bytes that are no UTF-8: TLS records,
        which Zeek joins too, but whose text says nothing). Where text with other control
        bytes follows, its text is joined as Zeek joins it, but nothing after the gap is
        taken: where such bytes "end" a line may be inside TLS records, whose start must not
        move (the rest of the line is then skipped, as the rest of a cut line).  The joined
        line is ``cut`` and spans the gap. None: need bytes."""
        while True:
            assert self._cut is not None
            cut = self._cut[0]
            if side.later and side.here == cut.end:  # the gap not crossed yet
                nxt = side.later[0][1]
                nl = nxt.find(b"\n", 0, MAX_LINE + 1)
                if (nl < 0 and len(nxt) <= MAX_LINE and len(side.later) == 1
                        and not (side.eof or side.dead)):
                    return None
                if _CONTROL_RE.search(nxt, 0, nl if nl >= 0 else MAX_LINE + 1):
                    joined = _peek_joined(cut, nxt, nl)
                    if joined is cut and nxt:  # binary: Zeek joins it all the same
                        end = _EOL_RE.search(nxt, 0, MAX_LINE)
                        self._emit(ZeekTail(cut.offset, bytes(
                            nxt[:end.start() if end else MAX_LINE])[:MAX_LINE - len(cut.head)]))
                    return joined
            side.joined = self._cut[2]  # the gap ahead, if any, is a second one inside the line
            tail = self._read_line(side)
            side.joined = False
            if tail is None:
                return None
            if isinstance(tail, _EndMark):
                return cut
            head = cut.head + tail.head
            line = _Line(cut.offset, head[:MAX_LINE], tail.end - cut.offset, tail.crlf, tail.eol,
                         cut.truncated or tail.truncated or len(head) > MAX_LINE, True, cut.tail)
            if not tail.cut or _looks_tls(tail.head):
                return line
            self._cut = (line, self._cut[1], True)  # another gap cuts the tail: read past it too

    def _peek(self, side: _Side, n: int) -> bytes | None:
        """The next n bytes of the current piece, fewer if it ends; None: need bytes."""
        crs = min(side.crs, n)  # lone CRs not read yet come first
        head = b"\r" * crs + bytes(side.buf[side.pos : side.pos + n - crs])
        if len(head) >= n or side.later or side.eof or side.dead:
            return head
        return None

    def _next_is_command(self) -> bool | None:
        """Does the client's next line start with a known verb? None: cannot tell yet."""
        c2s = self._c2s
        if c2s.crs:
            return False  # an empty line ended by a lone CR comes next
        head = bytes(c2s.buf[c2s.pos : c2s.pos + 34])
        if self._peek(c2s, 34) is None and _DELIM_RE.search(head) is None:
            return None
        m = _NEXT_VERB_RE.match(head)
        return m is not None and m[1].upper().decode() in KNOWN_VERBS

    # -- turns -------------------------------------------------------------------------------

    def _step(self) -> bool:
        if self._turn == "client":
            return self._step_client()
        if self._turn == "tls":
            return self._step_tls()
        if self._turn == "guess":
            return self._step_guess()
        if self._turn == "lead":
            return self._step_lead()
        return self._step_server()  # greeting or server

    def _step_lead(self) -> bool:
        """A connection read from where the capture began (CutStart), not from its start.

        The server's replies captured before the client's first byte answer commands sent
        before the capture; the first one is the banner only when it is a greeting at the
        very start of the server's stream and the client does not already speak TLS. A client
        stream that begins with TLS means STARTTLS was accepted before the capture began.
        """
        c2s, s2c = self._c2s, self._s2c
        c_head = self._peek(c2s, 2)
        if c_head is None:
            self._waiting = "c2s"
            return False
        client_tls = _looks_tls(c_head)
        s_head = self._peek(s2c, 2)
        if s_head is None:
            self._waiting = "s2c"
            return False
        if self._lead_reading or s2c.here < self._lead_end:
            # Once begun, a reply is read to its end, however far past the lead that is and
            # whenever its bytes arrive: the events must not depend on the chunking.
            if self._lead_reading or (s_head and not _looks_tls(s_head)):
                res = self._read_reply()
                self._lead_reading = res is None
                if res is None:
                    self._waiting = "s2c"
                    return False
                if isinstance(res, _ReplyAcc):
                    self._lead_reply(res, client_tls)
                    return True
                if res is _LOST:
                    return True
                # The read ended the reply some other way (a TLS record killed the
                # direction, say): judge by what is ahead now, not by what was before it.
                s_head = self._peek(s2c, 2)
                if s_head is None:
                    self._waiting = "s2c"
                    return False
        if client_tls or (not c_head and not s2c.dead and _looks_tls(s_head)):
            first = c2s if c_head else s2c
            self._anomaly("starttls_inferred", first.here, first.name,
                          "the capture began after STARTTLS: TLS records come first")
            self._emit(StartTls(True, c2s.here, s2c.here))
            self._enter_tls()
            return True
        if not self._lead_replies:
            self._anomaly("no_banner", s2c.here, "s2c", "the capture began mid-conversation")
        # Nothing of this piece read (however it was fed): its STARTTLS reply was cut, see
        # _read_line.
        if _looks_tls(s_head) and s2c.here == s2c.start:
            s2c.after_gap = "count"
        self._turn = "client"
        return True

    def _lead_reply(self, acc: _ReplyAcc, client_tls: bool) -> None:
        first = not self._lead_replies
        self._lead_replies += 1
        if first and acc.offset == 0 and acc.code in GREETING_CODES and not client_tls:
            self._emit(Banner(acc.code, "\n".join(acc.lines), acc.offset, acc.first_end,
                              tuple(acc.wire.items())))
            return
        if not self._lead_noted:
            self._lead_noted = True
            self._anomaly("reply_before_capture", acc.offset, "s2c", f"first: {acc.code}")
        self._emit_reply(acc, None)
        # As in _after_reply: a 354 (334) means the client's next bytes are message content
        # (an auth response), not commands, whatever lines in them look like.
        self._mode = {354: "body", 334: "auth"}.get(
            acc.code, self._mode if self._mode in ("body", "chunk") else "command")
        self._unit_off, self._bol = self._c2s.here, True

    def _step_server(self) -> bool:
        res = self._read_reply(self._turn == "server" and self._pending in TLS_VERBS)
        if res is None:
            self._waiting = "s2c"
            return False
        if self._turn == "greeting":
            if isinstance(res, _ReplyAcc) and res.code in GREETING_CODES:
                self._emit(Banner(res.code, "\n".join(res.lines), res.offset, res.first_end,
                                  tuple(res.wire.items())))
            elif isinstance(res, _ReplyAcc):  # not a greeting: it answers the first command
                self._anomaly("no_banner", res.offset, "s2c", f"first reply {res.code}")
                self._held = res
            else:
                self._anomaly("no_banner", self._s2c.here, "s2c")
            self._turn = "client"
            return True
        if res is _TLS_AHEAD:
            self._anomaly(
                "starttls_inferred", self._s2c.here, "s2c", "reply lost in a gap; server spoke TLS"
            )
            self._emit(StartTls(True, self._tls_off, self._s2c.here))
            self._enter_tls()
            return True
        if res is _LOST:
            self._anomaly("reply_lost", self._s2c.here, "s2c", f"reply to {self._pending!r}")
            return self._guess_on()
        if self._greet_owed:  # the new receiver's first reply after a 250 to TURN
            late = isinstance(res, _ReplyAcc) and res.code in GREETING_CODES and (
                self._greets_late(res))
            if late is None:  # _waiting set
                self._held = res
                return False
            self._greet_owed = False
            if late:
                # Captured after the new sender's first command, which Zeek has it answer
                # (it pairs in capture order and keeps no greeting to wait for after TURN);
                # that command's own reply then answers nothing.
                self._held, self._turn, self._greeted_late = res, "client", True
                return True
            if isinstance(res, _ReplyAcc) and res.code not in GREETING_CODES:
                # No greeting: Zeek keeps no command for one after TURN, so this reply
                # answers the new sender's first command, not nothing.
                self._held, self._turn = res, "client"
                return True
        if isinstance(res, _EndMark):
            # (nothing pending: after TURN, the new receiver's greeting is all it owed)
            if not self._replies_missing_noted and self._pending is not None:
                self._replies_missing_noted = True
                self._anomaly("replies_missing", self._s2c.here, "s2c")
            return self._guess_on()
        pending = self._pending
        if self._greeted_late and pending not in TLS_VERBS:
            self._greeted_late = False
            self._emit_reply(res, pending)
            self._turn, self._pending, self._mode = "server", None, "command"
            return True
        if pending in ("EHLO", "HELO") and 200 <= res.code < 300:
            self._pipelining = pending == "EHLO" and any(
                w[0].upper() == "PIPELINING" for t in res.lines[1:] if (w := t.split(None, 1)))
        if res.after_gap and pending:
            later = self._answers_later(res)
            if later is None:  # _waiting set
                self._held = res
                return False
            if later:
                # The reply to the pending command was lost whole in the gap: this one
                # answers a later command. Let the client's next bytes go first.
                self._anomaly("reply_lost", res.offset, "s2c",
                              f"reply to {self._pending!r}, whole: frame order shows the next "
                              "reply answers a later command")
                self._held = res
                return self._guess_on()
        self._emit_reply(res, self._pending)
        self._after_reply(res.code, res.offset)
        return True

    def _answers_later(self, res: _ReplyAcc) -> bool | None:
        """Does ``res``, read right after a gap, answer a command after the pending one, the
        pending command's reply lost whole in the gap? None: not fed far enough (_waiting set).

        The pending command's group runs up to the first command after which the client waits
        for the replies (RFC 2920 §3.1, RFC 3207 §4; every command when the EHLO reply offered
        no PIPELINING), and whatever the client sends next was sent after all of the group's
        replies came. So the replies captured before the client's next bytes answer the
        group's last commands, one each: counting them, from ``res`` on, tells how many of the
        group's first replies the gap took. A reply is never captured before its command was
        sent, or the count is off: then, and wherever the bytes ahead are not plain commands
        and whole replies (a second gap, AUTH, BDAT, a cut line), nothing is decided and FIFO
        pairing stands, as without frames (frame_at None).
        """
        if self._frame_at is None:
            return False
        group = self._group_ahead()
        if group is None:
            self._waiting = "c2s"
            return None
        if group is False:
            return False
        starts, nxt = group
        c_at, s_at = self._frame_at
        s_frame = s_at(res.offset)
        n_frame = None if nxt is None else c_at(nxt)
        if s_frame is None or (nxt is not None and n_frame is None):
            return False
        if n_frame is not None and s_frame > n_frame:
            replies = 0
        else:
            more = self._replies_ahead(n_frame, len(starts))
            if more is None:
                self._waiting = "s2c"
                return None
            if more < 0:
                return False
            replies = 1 + more
        lost = len(starts) + 1 - replies
        if lost <= 0:
            return False
        if lost > len(starts):
            return True  # captured after the client's next bytes: answers a later group
        sent = c_at(starts[lost - 1])  # of the command ``res`` answers
        return sent is not None and sent < s_frame

    def _greets_late(self, res: _ReplyAcc) -> bool | None:
        """Was the greeting ``res`` of a new receiver after TURN captured after the new
        sender's first command?  None: not fed far enough (_waiting set); False without
        frames."""
        if self._frame_at is None:
            return False
        c2s = self._c2s
        first = self._next_is_command()
        if first is None:
            self._waiting = "c2s"
            return None
        if not first or c2s.pos >= len(c2s.buf):
            return False
        c_frame, s_frame = self._frame_at[0](c2s.here), self._frame_at[1](res.offset)
        return c_frame is not None and s_frame is not None and s_frame > c_frame

    def _group_ahead(self) -> tuple[list[int], int | None] | bool | None:
        """The rest of the pending command's group, unread: (the offsets of its commands after
        the pending one, the offset of the client's first byte after it or None when the client
        sent nothing more). False: cannot tell; None: need client bytes."""
        pending, c2s = self._pending, self._c2s
        waits = self._pipelining is False or pending in _WAITS_FOR_REPLY
        if not waits and pending in ("AUTH", "AUTH_RESPONSE"):
            return False
        starts: list[int] = []
        if c2s.crs:  # a lone CR's empty line comes next: no command
            return (starts, c2s.here) if waits else False
        buf, i = c2s.buf, c2s.pos
        while not waits:
            if c2s.long_off is not None or c2s.after_gap or len(starts) >= MAX_GROUP:
                return False
            nl = buf.find(b"\n", i, i + MAX_LINE + 2)
            if nl < 0:
                if len(buf) - i > MAX_LINE + 1 or c2s.later or c2s.eof or c2s.dead:
                    return False  # an over-long line, or the group cut short
                return None
            if _lone_cr(buf, i, nl):
                return False  # two lines: not counted here
            m = _VERB_RE.fullmatch(bytes(buf[i:nl]).rstrip(b"\r").rstrip(b" \t"))
            verb = m[1].decode().upper() if m else ""
            if verb not in KNOWN_VERBS or verb in AUTH_VERBS or verb == "BDAT":
                return False
            starts.append(c2s.off + i)
            i, waits = nl + 1, verb in _WAITS_FOR_REPLY
        if i < len(buf):
            return starts, c2s.off + i
        if c2s.later:
            return starts, c2s.later[0][0]  # the first byte after a gap: sent later still
        if c2s.eof or c2s.dead:
            return starts, None
        return None

    def _replies_ahead(self, before: int | None, enough: int) -> int | None:
        """How many whole replies the server's unread bytes hold that were captured before
        frame ``before`` (None: up to the stream's end), counted up to ``enough``. -1: cannot
        tell (a gap or a line that is no reply among them); None: need server bytes."""
        s2c, s_at = self._s2c, self._frame_at[1] if self._frame_at else None
        if s_at is None or self._held is not None or s2c.long_off is not None or s2c.after_gap:
            return -1
        buf, i, n = s2c.buf, s2c.pos, 0
        while n < enough:
            if s2c.crs:  # first, a lone CR's empty line: no reply
                frame = s_at(s2c.here)
                return n if frame is not None and before is not None and frame > before else -1
            if i >= len(buf):
                if s2c.later:
                    return -1  # the gap's bytes were captured when? They may hold replies
                return n if s2c.eof or s2c.dead else None
            frame = s_at(s2c.off + i)
            if frame is None:
                return -1
            if before is not None and frame > before:
                return n
            nl = buf.find(b"\n", i, i + MAX_LINE + 2)
            if nl < 0:
                if len(buf) - i > MAX_LINE + 1 or s2c.later or s2c.eof or s2c.dead:
                    return -1
                return None
            if _lone_cr(buf, i, nl):
                return -1
            m = _REPLY_RE.fullmatch(bytes(buf[i:nl]).rstrip(b"\r"))
            if m is None:
                return -1
            n += m[2] != b"-"
            i = nl + 1
        return n

    def _emit_reply(self, acc: _ReplyAcc, answers: str | None) -> None:
        """Queue acc's Reply. A hook, as _emit_command: parse_dialogue folds it unbuilt."""
        lines = acc.lines
        self._emit(Reply(acc.code, _enhanced(lines), tuple(lines), acc.offset, answers, acc.end,
                         acc.dropped, acc.last, tuple(acc.changes), acc.gap_line,
                         tuple(acc.wire.items())))

    def _emit_command(self, verb: str, arg: str, offset: int, end: int, cut: bool = False,
                      wire: bytes = b"") -> None:
        self._emit(Command(verb, arg, offset, end, cut, wire))

    def _after_reply(self, code: int, offset: int) -> None:
        pending, self._turn, self._mode = self._pending, "client", "command"
        if pending in TURN_VERBS and code == 250:
            self._turn_roles(offset, pending)
        elif pending in TLS_VERBS:
            if 200 <= code < 300 and code != 220:
                self._guess_code, self._turn = code, "guess"  # odd: let the client tell
                return
            self._emit(StartTls(code == 220, self._tls_off, self._s2c.here))
            if code == 220:
                self._enter_tls()
        elif code in (334, 354):
            # Only DATA gets 354 and only AUTH gets 334, so these re-align the FIFO when a gap
            # cost us a line: the client sends content (or an auth response) next, whatever
            # we thought was pending.
            if pending not in (("DATA",) if code == 354 else ("AUTH", "AUTH_RESPONSE")):
                self._anomaly("pairing_resync", offset, "s2c", f"{code} answered {pending!r}")
            if code == 354:
                self._mode, self._unit_off, self._bol = "body", self._c2s.here, True
            else:
                self._mode = "auth"

    def _turn_roles(self, offset: int, verb: str) -> None:
        """A 250 to TURN (RFC 821 §4.1.1) or ATRN (RFC 2645 §4): the server sends the commands
        from here and the client, now the receiver, greets first; Zeek's SMTP analyzer swaps
        its sides after TURN too (orig_is_sender).  Events keep the wire's directions
        (_on_wire); Command and Reply offsets after the anomaly that marks this are in the
        other stream.  The anomaly is emitted past MAX_ANOMALIES too: it records the swap,
        which every later stage reads from it, and a 250 on the wire stands behind each one."""
        self._emit(Anomaly("roles_turned", turned_detail(verb), offset, "s2c"))
        self._c2s, self._s2c = self._s2c, self._c2s
        self._c2s.name, self._s2c.name = "c2s", "s2c"
        if self._frame_at is not None:
            self._frame_at = (self._frame_at[1], self._frame_at[0])
        self._turned = not self._turned
        self._turn, self._pending = "server", None  # the new receiver's greeting
        self._greet_owed = True

    def _guess_on(self) -> bool:
        """No reply to read for the pending command: let the client's next bytes decide."""
        self._guess_code, self._turn, self._mode = None, "guess", "command"
        return True

    def _step_guess(self) -> bool:
        """Its own turn, so that waiting for client bytes repeats nothing."""
        pending, c2s = self._pending, self._c2s
        if pending in TLS_VERBS:
            return self._step_tls_guess()
        if pending in ("DATA", "AUTH", "AUTH_RESPONSE"):
            is_cmd = self._next_is_command()
            if is_cmd is None:
                self._waiting = "c2s"
                return False
            if not is_cmd and pending == "DATA":
                self._mode, self._unit_off, self._bol = "body", c2s.here, True
            elif not is_cmd:
                self._mode = "auth"
        self._turn = "client"
        return True

    def _step_tls_guess(self) -> bool:
        """STARTTLS got no reply or an odd 2xx: TLS began iff the client's next bytes are TLS
        (none: nothing is decided)."""
        head = self._peek(self._c2s, 2)
        if head is None:
            self._waiting = "c2s"
            return False
        pending = self._pending
        code, self._turn = self._guess_code, "client"
        said = "no reply" if code is None else f"reply {code}"
        if _looks_tls(head):
            self._anomaly(
                "starttls_inferred", self._tls_off, "c2s", f"{pending} got {said}; client spoke TLS"
            )
            self._emit(StartTls(True, self._tls_off, self._s2c.here))
            self._enter_tls()
        elif code is not None:
            self._anomaly("starttls_odd_reply", self._tls_off, "c2s", f"{pending} got {said}")
            self._emit(StartTls(False, self._tls_off, self._s2c.here))
        elif head:
            # RFC 3207 §4: the client sends TLS next if, and only if, it got a 220; plaintext
            # here proves TLS never began (refused, or the client gave up waiting).
            self._anomaly("starttls_not_taken", self._tls_off, "c2s",
                          f"{pending} got {said}; the client went on in plaintext")
            self._emit(StartTls(False, self._tls_off, self._s2c.here))
        return True

    def _step_client(self) -> bool:
        mode, c2s = self._mode, self._c2s
        if mode == "command" and not (c2s.resync or c2s.after_gap or c2s.crs) and (
                c2s.long_off is None):
            # Fast path for the usual line: a whole CRLF line of at most MAX_LINE bytes that
            # starts with a known verb. It takes what _read_line/_take_line/_command would
            # (none of _line_anomalies applies) without building a _Line; anything else goes
            # the general way below.
            buf, pos = c2s.buf, c2s.pos
            nl = c2s.line_end(max(pos, c2s.scan), pos + MAX_LINE + 2)
            if pos < nl and buf[nl] == 0x0A and buf[nl - 1] == 0x0D:
                end = nl - 1
                while end > pos and buf[end - 1] in b" \t":
                    end -= 1
                m = _VERB_RE.fullmatch(buf, pos, end)  # on head.rstrip(b" \t"), as _command
                if m is not None and (verb := m[1].decode().upper()) in KNOWN_VERBS:
                    offset = c2s.off + pos
                    raw_arg = m[2] or b""  # bytes: read before consuming may clear buf
                    c2s.consume(nl + 1 - pos)
                    self._accept(verb, raw_arg, offset, offset + nl + 1 - pos)
                    return True
        elif mode == "body":
            return self._step_body()
        elif mode == "chunk":
            return self._step_chunk()
        line = self._read_line(c2s)
        if line is None:
            self._waiting = "c2s"
            return False
        if isinstance(line, _EndMark):
            return self._drain()
        self._line_anomalies(c2s, line)
        if self._mode == "auth" and not c2s.resync:
            head = line.head  # without the CR before its LF: any CR left ends a line in Zeek
            self._emit(AuthResponse(line.length, line.offset,
                                    zeek_extra=len(head) - len(head.rstrip(b"\r"))))
            self._expect("AUTH_RESPONSE")
        else:
            self._command(line)
        return True

    def _lost_unit(self, line: _Line) -> None:
        """A client line cut by a gap still earns a reply: count it, keep nothing of it."""
        self._anomaly("line_cut_by_gap", line.offset, "c2s", f"{line.length} bytes")
        if self._mode == "auth":
            self._emit(AuthResponse(line.length, line.offset))
            self._expect("AUTH_RESPONSE")
        else:
            self._expect("")

    def _command(self, line: _Line) -> None:
        c2s = self._c2s
        head = line.head.rstrip(b" \t")
        m = _VERB_RE.fullmatch(head)
        verb = m[1].decode().upper() if m else ""
        if line.cut or c2s.resync:
            if line.tail == "skip":
                # The rest of a line a gap cut, whose head counted it: Zeek's ContentLine
                # joins them, so it is no unit, whatever word it starts with; cut again, the
                # gap after it is inside that line too (joined).
                c2s.joined = line.cut
                return
            if verb not in KNOWN_VERBS:
                if line.cut or line.tail == "count":
                    self._lost_unit(line)
                elif line.tail != "skip":
                    self._skip(c2s, line)
                return
            c2s.resync = False
        if verb not in KNOWN_VERBS and _B64_RE.fullmatch(head):
            # Most likely an auth response whose 334 we did not see: never keep it.
            self._anomaly("credential_like_line", line.offset, "c2s", f"{line.length} bytes")
            self._emit(AuthResponse(line.length, line.offset))
            self._expect("AUTH_RESPONSE")
            return
        if m is None:
            self._bad_line(c2s, line, "bad_command", _show(head[:16]))
            if not c2s.dead:
                self._expect("")  # servers answer junk lines with 500
            return
        self._accept(verb, m[2] or b"", line.offset, line.end, line.cut)

    def _accept(self, verb: str, raw_arg: bytes, offset: int, end: int, cut: bool = False
                ) -> None:
        """A command line that parsed, from ``offset`` to ``end`` (after its line ending, or
        where a gap ``cut`` it)."""
        self._c2s.bad = 0
        self._mode = "command"
        arg = _command_arg(verb, raw_arg)
        self._emit_command(verb, arg, offset, end, cut, _arg_wire(arg, raw_arg))
        if verb in TLS_VERBS:
            self._tls_off = end
        elif verb == "BDAT":
            bm = _BDAT_RE.fullmatch(raw_arg)
            if bm is not None:
                self._mode, self._unit_off = "chunk", end
                self._chunk_end = end + int(bm[1])
                return  # the chunk follows at once (RFC 3030 §2); its reply comes after it
            self._anomaly("bad_bdat_size", offset, "c2s")
        self._expect("AUTH" if verb in AUTH_VERBS else verb)

    def _zeek_content(self, buf: bytearray, pos: int, stop: int, base: int) -> None:
        """Follow message content (``buf[pos:stop]``) as Zeek's line reader splits it, for
        the Zeek logs only: from a "." line it ends the message at (zeek_dot) the content
        is kept, up to MAX_ZEEK_REST bytes (Zeek reads those lines as commands)."""
        if self._zk_unit != self._unit_off:
            self._zk_unit, self._zk_prev, self._zk_rest = self._unit_off, b"\n", None
        prev = self._zk_prev
        if prev is None or stop <= pos:  # None: a gap came, nothing more is kept of it
            return
        if self._zk_rest is not None:
            self._zk_rest += buf[pos:stop]
            del self._zk_rest[MAX_ZEEK_REST:]
            return
        head = prev + buf[pos:pos + 3]
        self._zk_prev = bytes((prev + buf[max(pos, stop - 3):stop])[-3:])
        if not (b"\r." in head or b"\n.\r" in head or buf.find(b"\r.", pos, stop) >= 0
                or buf.find(b"\n.\r", pos, stop) >= 0):
            return  # the usual content: no such line, and nothing copied
        window = prev + buf[pos:stop]
        at = zeek_dot(window)
        if at is not None:
            self._zk_rest = bytearray(window[at:at + MAX_ZEEK_REST])
            self._zk_at = base + pos - len(prev) + at

    def _zeek_rest(self) -> tuple[int, bytes] | None:
        """The content kept by _zeek_content for the message that ends now, with where it
        begins."""
        if self._zk_unit != self._unit_off or self._zk_rest is None:
            return None
        self._zk_unit = -1
        return self._zk_at, bytes(self._zk_rest)

    def _step_body(self) -> bool:
        c2s = self._c2s
        if c2s.crs:  # lone CRs not read as lines: content, and no line starts after them
            c2s.crs, self._bol = 0, False
        while True:
            pos = c2s.pos
            found, i, bol, tlen = _scan_body(c2s.buf, pos, self._bol)
            if found:
                size = c2s.off + i - self._unit_off
                self._zeek_content(c2s.buf, pos, i, c2s.off)
                c2s.consume(i + tlen - pos)
                return self._unit_done(DataBody(size, self._unit_off, self._zeek_rest()),
                                       "END_OF_DATA")
            self._zeek_content(c2s.buf, pos, i, c2s.off)
            c2s.consume(i - pos)
            self._bol = bol
            if c2s.later:
                self._cross_gap(c2s)
                self._bol = False
                # a gap in the message ends it in Zeek (SMTP.cc's Undelivered): its lines
                # after the gap are no commands there, so none are kept
                self._zk_unit, self._zk_prev, self._zk_rest = self._unit_off, None, None
                continue
            if c2s.eof or c2s.dead:
                # a "." line Zeek ends the message at (".\r\r\n") and what it reads after it
                self._zeek_content(c2s.buf, c2s.pos, len(c2s.buf), c2s.off)
                c2s.consume(len(c2s.buf) - c2s.pos)
                self._anomaly("body_unfinished", c2s.here, "c2s")
                return self._unit_done(
                    DataBody(c2s.here - self._unit_off, self._unit_off, self._zeek_rest()),
                    "END_OF_DATA")
            self._waiting = "c2s"
            return False

    def _step_chunk(self) -> bool:
        c2s, end = self._c2s, self._chunk_end
        c2s.crs -= min(c2s.crs, max(0, end - c2s.here))  # lone CRs not read as lines first
        while True:
            c2s.consume(min(len(c2s.buf) - c2s.pos, max(0, end - c2s.here)))
            if c2s.here >= end:
                if c2s.here > end:  # a gap swallowed the chunk's end and what came next
                    c2s.resync, c2s.after_gap = True, "count"
                return self._unit_done(DataBody(end - self._unit_off, self._unit_off), "BDAT")
            if c2s.later:
                self._cross_gap(c2s)
                c2s.resync = False
                continue
            if c2s.eof or c2s.dead:
                self._anomaly("chunk_unfinished", c2s.here, "c2s")
                return self._unit_done(DataBody(c2s.here - self._unit_off, self._unit_off), "BDAT")
            self._waiting = "c2s"
            return False

    def _unit_done(self, ev: DataBody, answers: str) -> bool:
        self._emit(ev)
        self._mode = "command"
        self._expect(answers)
        return True

    def _drain(self) -> bool:
        """The client is done: what the server still says answers nothing."""
        res = self._read_reply()
        if res is None:
            self._waiting = "s2c"
            return False
        if isinstance(res, _ReplyAcc):
            self._anomaly("reply_without_command", res.offset, "s2c", f"{res.code} reply")
            self._emit_reply(res, None)
            return True
        if res is _LOST:
            self._anomaly("reply_lost", self._s2c.here, "s2c")
            return True
        for side in (self._c2s, self._s2c):
            if not side.eof:
                self._waiting = side.name
                return False
        self._emit(Closed())
        self._turn = "closed"
        return True

    def _check_tls(self, side: _Side) -> None:
        if not side.tls_checked and (side.pos < len(side.buf) or side.crs):
            side.tls_checked = True
            first = 0x0D if side.crs else side.buf[side.pos]
            if first not in _TLS_TYPES:
                self._anomaly("not_tls", side.here, side.name, f"first byte 0x{first:02x}")

    def _step_tls(self) -> bool:
        for side in (self._c2s, self._s2c):  # strictly c2s first: order must not vary
            if not side.tls_checked:
                if side.pos < len(side.buf) or side.crs:
                    self._check_tls(side)
                    return True
                if not (side.eof or side.tls_gap):
                    self._waiting = side.name
                    return False
                side.tls_checked = True
        for side in (self._c2s, self._s2c):
            if not side.eof:
                self._waiting = side.name
                return False
        self._emit(Closed())
        self._turn = "closed"
        return True
