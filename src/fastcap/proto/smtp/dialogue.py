"""The facts parse_dialogue hands the diagnosis: one SmtpDialogue per connection, its records
(events reduced to what is judged, with the frame that carried them), and the fold of events
into it (_DialogueBuilder), shared by SmtpDialogue.from_events and parse_dialogue.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, dataclass, fields
from operator import attrgetter
from typing import Any, Final, Protocol

from ...pickling import compact, maker
from .events import (
    TLS_VERBS,
    Anomaly,
    AuthResponse,
    Banner,
    Closed,
    Command,
    DataBody,
    Event,
    Gap,
    Reply,
    StartTls,
    ZeekBadReply,
    ZeekTail,
    _relay_denied,
    names_exchange_online,
)

MAX_ITEMS: Final = 10_000  # per SmtpDialogue list

_SCALARS = frozenset({str, int, bool, float, type(None)})
# SmtpDialogue's facts for the Zeek logs alone
_NOT_JSON = frozenset({"zeek_lines", "zeek_tails", "zeek_texts", "zeek_args", "zeek_sizes",
                       "zeek_answers", "zeek_bad_replies", "zeek_line_ends"})
# DPD::ignore_violations_after (base/frameworks/analyzer/dpd.zeek): an analyzer violation
# removes the analyzer while the connection's two endpoints have sent at most this many bytes
ZEEK_DPD_BYTES: Final = 10 * 1024


def zeek_lines(data: bytes) -> list[tuple[int, bytes]]:
    """``data`` split into lines as Zeek's ContentLine reads them for SMTP (CR_as_EOL and
    LF_as_EOL: a CR, an LF or a CRLF ends one), each with where it begins; a last line with
    no end is one too."""
    out = []
    at, n = 0, len(data)
    for m in _ZEEK_EOL.finditer(data):
        out.append((at, data[at:m.start()]))
        at = m.end()
    if at < n:
        out.append((at, data[at:]))
    return out


_ZEEK_EOL = re.compile(rb"\r\n|[\r\n]")


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most values: no call, no lookups
        return value
    fields_ = getattr(type(value), "__dataclass_fields__", None)
    if fields_ is not None:
        out = {}
        for name in fields_:
            if name in _NOT_JSON:
                continue
            v = getattr(value, name)
            out[name] = v if type(v) in _SCALARS else _plain(v)
        return out
    if isinstance(value, list | tuple):  # a tuple as JSON gives it back: a list
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@compact
@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A Command with the frame that carried its first byte."""

    verb: str
    arg: str  # AUTH: the mechanism only
    offset: int
    frame: int | None
    end_frame: int | None = None  # the frame of its line's end, when another (None: the same)
    cut: bool = False  # a gap cut its line: verb and argument are its head, before the gap


@compact
@dataclass(frozen=True, slots=True)
class ReplyRecord:
    """A Reply reduced to its first line, with its frame and what it answers."""

    code: int
    enhanced: str | None
    text: str  # first line
    offset: int
    frame: int | None
    answers: str | None
    last_text: str | None = None  # a multi-line reply's last line (None: one line)
    lines: int = 1  # how many lines it had (Zeek's smtp.log counts each line of some)
    end_frame: int | None = None  # the frame of its last line's end, when another
    # (line index, code, text, the line before's text) of each line whose code is not
    # the one of the line before: where Zeek's SMTP analyzer begins another reply
    code_changes: tuple[tuple[int, int, str, str], ...] = ()
    # the first of its lines a gap came before or cut (Zeek reads that line, and those after
    # it, after the gap; a cut line's text is its head and its tail joined, as Zeek reads
    # it); None: no gap inside it
    gap_line: int | None = None


@compact
@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    """An Anomaly with its frame (None when it has no direction or the byte was not captured)."""

    kind: str
    detail: str
    direction: str | None
    offset: int | None
    frame: int | None


@compact
@dataclass(frozen=True, slots=True)
class GapRecord:
    """Bytes of one direction the capture lost."""

    direction: str
    offset: int
    size: int
    # inside the line a gap before it cut, read on across both (Gap.joined)
    joined: bool = False


# Built by the dozen per connection: through their slot descriptors (pickling.maker).
_make_command = maker(CommandRecord)
_make_reply = maker(ReplyRecord)


@compact
@dataclass(frozen=True, slots=True)
class SmtpDialogue:
    """Facts about one connection's plaintext SMTP, for the diagnosis to judge.  Frozen: the
    fold of its events (_DialogueBuilder) fills a draft and makes it once, at the end."""

    implicit_tls: bool = False
    banner_code: int | None = None
    banner_text: str | None = None
    banner_host: str | None = None  # first word of the greeting (RFC 5321 §4.2: the domain)
    banner_frame: int | None = None
    banner_end_frame: int | None = None  # the frame of its first line's end, when another
    banner_names_exchange_online: bool = False
    ehlo_verb: str | None = None  # EHLO or HELO (HELO: no extensions, so no STARTTLS)
    ehlo_name: str | None = None
    ehlo_frame: int | None = None
    capabilities: tuple[str, ...] = ()  # of the last successful EHLO
    starttls_offered: bool | None = None  # None: no successful EHLO/HELO seen
    starttls_command_frame: int | None = None
    starttls_reply: ReplyRecord | None = None
    starttls_accepted: bool | None = None  # None: no STARTTLS answered
    tls_c2s_offset: int | None = None
    tls_s2c_offset: int | None = None
    tls_c2s_frame: int | None = None
    tls_s2c_frame: int | None = None
    commands: tuple[CommandRecord, ...] = ()
    replies: tuple[ReplyRecord, ...] = ()
    relay_denied: tuple[ReplyRecord, ...] = ()  # 550 5.7.64 TenantAttribution
    message_bytes: int = 0  # DATA/BDAT content skipped, summed (plaintext mail went through)
    anomalies: tuple[AnomalyRecord, ...] = ()
    gaps: tuple[GapRecord, ...] = ()
    closed: bool = False
    # for the Zeek logs alone, not in the JSON: the client lines Zeek reads after a "." line
    # it ends a message at where fastcap reads on (DataBody.zeek_rest), each as (where it
    # begins, its bytes, the frame of its end), that "." line first
    zeek_lines: tuple[tuple[int, bytes, int | None], ...] = ()
    # and the binary bytes Zeek joins to a reply line a gap cut (ZeekTail): (where the line
    # begins, the bytes)
    zeek_tails: tuple[tuple[int, bytes], ...] = ()
    # and the bytes of the reply lines whose text holds a backslash (Reply.wire), which the
    # text cannot tell from a byte that is no UTF-8, or ends in a CR (a line between a reply's
    # first and last, whose text is not kept): (which reply in ``replies``, -1 for the
    # greeting; which of its lines; the bytes of its text)
    zeek_texts: tuple[tuple[int, int, bytes], ...] = ()
    # and the bytes of the command arguments whose text holds a backslash (Command.wire), for
    # the same reason: (which command in ``commands``, the bytes of its argument)
    zeek_args: tuple[tuple[int, bytes], ...] = ()
    # and the bytes both directions had sent by the end of each frame that sent more
    # (connection_bytes), up to the first past ZEEK_DPD_BYTES: (frame, bytes)
    zeek_sizes: tuple[tuple[int, int], ...] = ()
    # and the answers to an AUTH challenge that Zeek reads as more than one (ended by CR CR
    # LF, AuthResponse.zeek_extra): each one's place among the answers, once per extra line
    zeek_answers: tuple[int, ...] = ()
    # and the lines after a gap Zeek reads as replies with no code (ZeekBadReply): (their
    # direction on the wire, the frame of their end, where Zeek's line reader hands them on)
    zeek_bad_replies: tuple[tuple[str, int], ...] = ()
    # and the frame of the end of each line an anomaly names (Anomaly.end) that ends in
    # another frame than it begins in: (which anomaly in ``anomalies``, that frame)
    zeek_line_ends: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (records become dicts), as dataclasses.asdict makes it at a
        fraction of its cost: the records hold only plain values, nothing to deep-copy."""
        return _plain(self)

    @classmethod
    def from_events(
        cls,
        events: Iterable[Event],
        c2s_frame_at: Callable[[int], int | None],
        s2c_frame_at: Callable[[int], int | None],
    ) -> SmtpDialogue:
        """Fold events (from SmtpConversation) into a dialogue, as parse_dialogue does."""
        b = _DialogueBuilder(c2s_frame_at, s2c_frame_at)
        for ev in events:
            b.add(ev)
        return b.finish()


_make_dialogue = maker(SmtpDialogue)
_dialogue_values = attrgetter(*(f.name for f in fields(SmtpDialogue)))
_SIZES_AT = [f.name for f in fields(SmtpDialogue)].index("zeek_sizes")


class _Segments(Protocol):
    """A direction's segment map (tcp.reassembly.StreamDir): sorted offsets, lengths and
    frames, as arrays."""

    seg_offset: Any
    seg_len: Any
    seg_frame: Any


def connection_bytes(c2s: _Segments, s2c: _Segments,
                     limit: int = ZEEK_DPD_BYTES) -> tuple[tuple[int, int], ...]:
    """The bytes both directions had sent by the end of each frame that sent more, in frame
    order, up to the first frame past ``limit``: Zeek's ``c$orig$size + c$resp$size`` when
    that frame is read (TCP_Endpoint::Size, each side's highest sequence number reached, so
    a lost segment counts once a later one is seen), which DPD compares with
    ignore_violations_after.  Only the segments that begin within ``limit`` are read."""
    ends: list[tuple[int, int, int]] = []  # (frame, side, end)
    for side, s in enumerate((c2s, s2c)):
        offsets = s.seg_offset
        n = int(offsets.searchsorted(limit, side="right"))
        ends += zip(s.seg_frame[:n].tolist(), (side,) * n,
                    (offsets[:n] + s.seg_len[:n]).tolist(), strict=True)
    ends.sort()
    top = [0, 0]
    out: list[tuple[int, int]] = []
    for frame, side, end in ends:
        if end > top[side]:
            top[side] = end
            total = top[0] + top[1]
            if out and out[-1][0] == frame:
                out[-1] = (frame, total)
            else:
                out.append((frame, total))
            if total > limit:
                break
    return tuple(out)


def zeek_may_violate(d: SmtpDialogue) -> bool:
    """Could Zeek's SMTP analyzer meet a violation in ``d``: a line fastcap reads as no
    reply or a TLS record where no STARTTLS was accepted, a line after a gap Zeek reads as a
    reply, a 250 to ATRN, a reply line ended by CR CR LF (any of a reply's lines, a middle
    one by its bytes in zeek_texts)?  Only then does the scan count the connection's bytes
    for DPD (connection_bytes), about 40 µs a session otherwise spent on every one (out.zeek
    reads the sizes only at such a violation)."""
    if d.zeek_bad_replies or "\r" in (d.banner_text or ""):
        return True
    if any(raw.endswith(b"\r") for _, _, raw in d.zeek_texts):
        return True
    if any(a.kind in ("bad_reply_line", "unexpected_tls") for a in d.anomalies):
        return True
    return any(r.answers == "ATRN" or r.text.endswith("\r") or (r.last_text or "").endswith("\r")
               for r in d.replies)


def with_zeek_sizes(d: SmtpDialogue, sizes: tuple[tuple[int, int], ...]) -> SmtpDialogue:
    """``d`` with its zeek_sizes (connection_bytes), rebuilt without dataclasses.replace's
    per-field work (once per session)."""
    values = list(_dialogue_values(d))
    values[_SIZES_AT] = sizes
    return _make_dialogue(*values)


_LIST_FIELDS = tuple(f.name for f in fields(SmtpDialogue) if f.default == ())


class _Draft:
    """An SmtpDialogue as it is folded: its fields as plain attributes, each scalar read from
    the class (its default) until set, each list the draft's own."""

    def __init__(self) -> None:
        self.__dict__.update({name: [] for name in _LIST_FIELDS})


for _f in fields(SmtpDialogue):
    if _f.default is not MISSING:
        setattr(_Draft, _f.name, _f.default)


def _capabilities(keyword_lines: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The keywords of an EHLO reply's lines after its first, and whether STARTTLS is one."""
    caps = tuple([w[0].upper() for t in keyword_lines if (w := t.split(None, 1))])
    return caps, "STARTTLS" in caps


# The same, kept per distinct set of lines (a server repeats them in every session) when the
# reply has at most this many lines: a hostile capture must not pin long replies in the cache.
_CAPS_MEMO_LINES: Final = 32
_capabilities_kept = functools.lru_cache(maxsize=64)(_capabilities)


# What a sender's EHLO and STARTTLS set: a 250 to TURN begins them anew.
_SENDER_FIELDS = ("ehlo_verb", "ehlo_name", "ehlo_frame", "capabilities", "starttls_offered",
                  "starttls_reply", "starttls_command_frame")


class _DialogueBuilder:
    """Folds a connection's events into a draft of its SmtpDialogue (``draft``: the fields as
    plain attributes, read by the parser as it goes), made into the frozen dialogue once, by
    ``finish``."""

    def __init__(
        self, c2s_frame_at: Callable[[int], int | None], s2c_frame_at: Callable[[int], int | None]
    ) -> None:
        self.draft = _Draft()
        self._c2s_frame_at, self._s2c_frame_at = c2s_frame_at, s2c_frame_at
        # where commands and replies are: swapped after a 250 to TURN (roles_turned)
        self._cmd_at, self._reply_at = c2s_frame_at, s2c_frame_at
        self._turned = False
        self._capped: set[str] = set()
        self._answers = 0  # AuthResponses folded

    def _put(self, items: list[Any], name: str, item: Any) -> None:
        if len(items) < MAX_ITEMS:
            items.append(item)
        elif name not in self._capped:
            self._capped.add(name)
            self.draft.anomalies.append(
                AnomalyRecord("list_cap", f"{name} capped at {MAX_ITEMS}", None, None, None)
            )

    def finish(self) -> SmtpDialogue:
        """The dialogue folded so far, frozen: the draft's lists made tuples."""
        draft = self.draft
        for name in _LIST_FIELDS:
            setattr(draft, name, tuple(getattr(draft, name)))
        return _make_dialogue(*_dialogue_values(draft))

    def reply(
        self, code: int, enhanced: str | None, lines: Sequence[str], offset: int,
        answers: str | None, end: int | None = None, dropped: int = 0,
        last: str | None = None, changes: tuple[tuple[int, int, str, str], ...] = (),
        gap_line: int | None = None, wire: tuple[tuple[int, bytes], ...] = (),
    ) -> None:
        """Fold a Reply given by its fields (parse_dialogue never builds the event); ``end``:
        the offset after its last byte, when known; ``dropped`` lines past the cap were
        counted, the last of them reading ``last``; ``wire``: Reply.wire."""
        d = self.draft
        frame = self._reply_at(offset)
        if dropped:  # a reply over MAX_REPLY_LINES: its true count and last line
            last_text, count = last, len(lines) + dropped
        else:
            last_text, count = lines[-1] if len(lines) > 1 else None, len(lines) or 1
        rec = _make_reply(
            code, enhanced, lines[0] if lines else "", offset, frame, answers,
            last_text, count, self._end_frame(self._reply_at, frame, offset, end),
            changes, gap_line,
        )
        self._put(d.replies, "replies", rec)
        if wire and d.replies and d.replies[-1] is rec:
            self._wire(len(d.replies) - 1, wire)
        if answers in ("EHLO", "HELO") and 200 <= code < 300 and code != 220:
            # (a 220 is a greeting: after TURN, a late one answers the new sender's EHLO)
            d.capabilities, d.starttls_offered = (
                ((), False) if answers == "HELO"
                else _capabilities_kept(tuple(lines[1:])) if len(lines) <= _CAPS_MEMO_LINES
                else _capabilities(lines[1:]))
        elif answers in TLS_VERBS:
            d.starttls_reply = rec
        if _relay_denied(code, enhanced, lines) and not self._turned:
            # a refusal of the originator's relay; after TURN the originator answers
            self._put(d.relay_denied, "relay_denied", rec)

    def _wire(self, reply: int, wire: tuple[tuple[int, bytes], ...]) -> None:
        texts = self.draft.zeek_texts
        texts.extend([(reply, i, b) for i, b in wire][:MAX_ITEMS - len(texts)])

    @staticmethod
    def _end_frame(frame_at: Callable[[int], int | None], frame: int | None, offset: int,
                   end: int | None) -> int | None:
        """The frame of the byte before ``end`` when it is not ``frame``: where a line ends is
        where a line-based reader (Zeek's analyzers) acts on it, and most lines end in the
        frame they begin in, which is then not kept twice."""
        if end is None or end - 1 <= offset:
            return None
        last = frame_at(end - 1)
        return None if last == frame else last

    def command(self, verb: str, arg: str, offset: int, end: int | None = None,
                cut: bool = False, wire: bytes = b"") -> None:
        """Fold a Command given by its fields (parse_dialogue never builds the event); ``end``:
        the offset after its line ending (or where a gap ``cut`` it), when known; ``wire``:
        Command.wire."""
        d = self.draft
        frame = self._cmd_at(offset)
        rec = _make_command(
            verb, arg, offset, frame, self._end_frame(self._cmd_at, frame, offset, end), cut)
        self._put(d.commands, "commands", rec)
        if wire and d.commands and d.commands[-1] is rec and len(d.zeek_args) < MAX_ITEMS:
            d.zeek_args.append((len(d.commands) - 1, wire))
        if verb in ("EHLO", "HELO") and d.ehlo_verb is None:
            words = arg.split(None, 1)
            d.ehlo_verb, d.ehlo_name, d.ehlo_frame = verb, words[0] if words else "", frame
        elif verb in TLS_VERBS:
            d.starttls_command_frame = frame

    def banner(self, code: int, text: str, offset: int, first_end: int | None = None,
               wire: tuple[tuple[int, bytes], ...] = ()) -> None:
        """Fold a Banner given by its fields."""
        d = self.draft
        if wire:
            self._wire(-1, wire)
        d.banner_code, d.banner_text = code, text
        d.banner_frame = self._s2c_frame_at(offset)
        d.banner_end_frame = self._end_frame(self._s2c_frame_at, d.banner_frame, offset,
                                             first_end)
        words = text.split(None, 1)
        d.banner_host = words[0] if words else None
        d.banner_names_exchange_online = names_exchange_online(text)

    def add(self, ev: Event) -> None:
        # isinstance tests, most frequent event first, instead of a ``match`` on class
        # patterns: the same dispatch (the event classes are disjoint), with less overhead per
        # event.
        d = self.draft
        if isinstance(ev, Reply):
            self.reply(ev.code, ev.enhanced, ev.lines, ev.offset, ev.answers, ev.end,
                       ev.dropped, ev.last, ev.changes, ev.gap_line, ev.wire)
        elif isinstance(ev, Command):
            self.command(ev.verb, ev.arg, ev.offset, ev.end, ev.cut, ev.wire)
        elif isinstance(ev, Anomaly):
            direction, offset = ev.direction, ev.offset
            frame = (
                None if not direction
                else (self._c2s_frame_at if direction == "c2s" else self._s2c_frame_at)(offset)
            )
            rec = AnomalyRecord(ev.kind, ev.detail, direction, offset, frame)
            if ev.kind == "roles_turned":
                # kept past MAX_ITEMS: the sessions read the swap from it (a 250 on the wire
                # stands behind each, so they are bounded by the capture)
                d.anomalies.append(rec)
                self._cmd_at, self._reply_at = self._reply_at, self._cmd_at
                self._turned = not self._turned
                # The sender's facts are the new sender's from here: its EHLO, what the new
                # receiver offered it, its STARTTLS (the host whose certificate is judged).
                for name in _SENDER_FIELDS:
                    setattr(d, name, getattr(_Draft, name))
            else:
                self._put(d.anomalies, "anomalies", rec)
                if ev.end is not None and frame is not None and d.anomalies[-1] is rec:
                    last = (self._c2s_frame_at if direction == "c2s" else self._s2c_frame_at)(
                        ev.end)
                    if last is not None and last != frame:
                        d.zeek_line_ends.append((len(d.anomalies) - 1, last))
        elif isinstance(ev, Banner):
            self.banner(ev.code, ev.text, ev.offset, ev.first_end, ev.wire)
        elif isinstance(ev, StartTls):
            if ev.implicit:
                d.implicit_tls = True
            else:
                d.starttls_accepted = ev.accepted
            if ev.accepted:
                c2s_off, s2c_off = ev.c2s_offset, ev.s2c_offset
                d.tls_c2s_offset, d.tls_s2c_offset = c2s_off, s2c_off
                d.tls_c2s_frame = self._c2s_frame_at(c2s_off)
                d.tls_s2c_frame = self._s2c_frame_at(s2c_off)
        elif isinstance(ev, DataBody):
            d.message_bytes += ev.size
            if ev.zeek_rest is not None:
                at, rest = ev.zeek_rest
                for start, line in zeek_lines(rest)[:MAX_ITEMS - len(d.zeek_lines)]:
                    # its end's frame: the byte after it (its line ending), else its last
                    end = at + start + len(line)
                    d.zeek_lines.append((at + start, line, self._cmd_at(
                        end if end < at + len(rest) else end - 1)))
        elif isinstance(ev, ZeekTail):
            if len(d.zeek_tails) < MAX_ITEMS:
                d.zeek_tails.append((ev.offset, ev.data))
        elif isinstance(ev, Gap):
            self._put(d.gaps, "gaps", GapRecord(ev.direction, ev.offset, ev.size, ev.joined))
        elif isinstance(ev, Closed):
            d.closed = True
        elif isinstance(ev, ZeekBadReply):
            frame = (self._c2s_frame_at if ev.direction == "c2s" else self._s2c_frame_at)(
                ev.offset if ev.end is None else ev.end)
            if frame is not None:
                d.zeek_bad_replies.append((ev.direction, frame))
        elif isinstance(ev, AuthResponse):
            if ev.zeek_extra and len(d.zeek_answers) < MAX_ITEMS:
                d.zeek_answers += [self._answers] * ev.zeek_extra
            self._answers += 1
