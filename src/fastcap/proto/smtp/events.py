"""What an SMTP dialogue is made of: the events SmtpConversation emits, the values they carry,
and the protocol words and codes every layer (and the diagnosis) reads.

Frozen values, constants and two pure predicates on them (names_exchange_online,
is_relay_denied): nothing here reads bytes or holds state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

Direction = Literal["c2s", "s2c"]

KNOWN_VERBS: Final = frozenset({
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP", "NOOP",
    "QUIT", "AUTH", "STARTTLS", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "XCLIENT",
    "XFORWARD", "X-EXPS", "X-ANONYMOUSTLS", "X_ANONYMOUSTLS", "XEXCH50", "X-LINK2STATE", "XSHADOW",
    "XSHADOWREQUEST", "XPROXY", "XPROXYFROM", "XPROXYTO", "XSESSIONPARAMS", "XRSET", "XOORG",
})  # fmt: skip
AUTH_VERBS: Final = frozenset({"AUTH", "X-EXPS"})  # X-EXPS: Exchange's AUTH twin
# Commands after whose 220 TLS begins: STARTTLS (RFC 3207) and X-ANONYMOUSTLS, Exchange's
# STARTTLS between its own servers (offered in the EHLO reply, answered 220, then a handshake).
# Zeek's SMTP analyzer also takes X_ANONYMOUSTLS (its own name for it, SMTP_cmd.def) and starts
# TLS on its 220, so a server that answers that spelling 220 is followed into TLS too.
TLS_VERBS: Final = frozenset({"STARTTLS", "X-ANONYMOUSTLS", "X_ANONYMOUSTLS"})
# Commands whose 250 reverses the roles: TURN (RFC 821 §4.1.1) and ATRN, On-Demand Mail
# Relay's authenticated TURN (RFC 2645 §4; Zeek follows only TURN).
TURN_VERBS: Final = frozenset({"TURN", "ATRN"})


def turned_detail(verb: str) -> str:
    """A roles_turned anomaly's detail: it names the verb, which the messages repeat."""
    return (f"a 250 to {verb}: the server sends the commands from here, the client replies "
            "(RFC 821 §4.1.1, RFC 2645 §4); later commands and replies are of swapped "
            "directions")

GREETING_CODES: Final = frozenset({220, 421, 521, 554})  # RFC 5321 §3.1, §3.8; RFC 7504
EXO_SUFFIX: Final = ".mail.protection.outlook.com"
# A word (between the delimiters) that is a host ending in EXO_SUFFIX, trailing dots allowed.
_EXO_RE: Final = re.compile(
    r"[^\s\[\]()<>,;]" + re.escape(EXO_SUFFIX) + r"\.*(?=[\s\[\]()<>,;]|\Z)"
)


ANOMALY_KINDS: Final = MappingProxyType(
    {
        "anomaly_cap": "more than MAX_ANOMALIES anomalies; the rest are not reported",
        "bad_bdat_size": "BDAT without a valid chunk size (RFC 3030 §2)",
        "bad_command": "a client line that is not a command",
        "bad_reply_line": "a server line that is not a reply (RFC 5321 §4.2)",
        "bare_cr": "a line ended by a CR that no LF follows, as Zeek's line reader ends one "
                   "(reported once per direction)",
        "bare_lf": "a line ended by LF alone (tolerated; reported once per direction)",
        "body_unfinished": "the client stream ended inside message content",
        "buffer_full": "over MAX_BUFFER bytes waited for the other direction; dropped as a gap",
        "chunk_unfinished": "the client stream ended inside a BDAT chunk",
        "credential_like_line": "a base64-like client line out of context: treated as auth data",
        "data_after_eof": "bytes fed after feed_eof",
        "http_connect_tunnel": "SMTP inside an HTTP CONNECT tunnel (RFC 9110 §9.3.6): read from "
                               "after the request and the proxy's 2xx reply",
        "line_cut_by_gap": "a client line cut by a gap, counted as one command",
        "line_too_long": "a line over MAX_LINE bytes, truncated",
        "list_cap": "an SmtpDialogue list reached MAX_ITEMS",
        "missing_line_ending": "the stream ended inside a line",
        "no_banner": "no greeting: none captured, or the first reply was not one",
        "not_smtp": "MAX_BAD_LINES unparsable lines in a row: the direction is ignored",
        "not_tls": "the first byte after the TLS start is not a TLS record type",
        "overlap": "bytes fed twice (a reassembler bug); the repeat is ignored",
        "plaintext_on_tls_port": "an SMTP greeting on an implicit-TLS port: read as SMTP",
        "pairing_resync": "a 354 or 334 answered something else: the FIFO is re-aligned on it",
        "replies_missing": "the server stream ended with commands unanswered",
        "reply_before_capture": "replies to commands sent before the capture began",
        "reply_code_mismatch": "a multi-line reply changed its code",
        "reply_lost": "a gap took the start of a reply, or all of it (frame order shows)",
        "reply_unfinished": "the server stream ended inside a multi-line reply",
        "reply_without_command": "a reply when no client command was pending",
        "roles_turned": turned_detail("TURN or ATRN"),
        "resync_skip": "unparsable lines after a gap, skipped (reported once per gap)",
        "socks_tunnel": "SMTP inside a SOCKS 4 or 5 tunnel (RFC 1928): read from after the "
                        "proxy's grant",
        "starttls_inferred": "STARTTLS reply lost or odd, but TLS followed: accepted",
        "starttls_odd_reply": "STARTTLS got a 2xx other than 220 and no TLS followed: refused",
        "starttls_not_taken": "STARTTLS reply lost, and the client went on in plaintext: refused",
        "too_many_reply_lines": "a reply over MAX_REPLY_LINES lines; the rest dropped",
        "unexpected_tls": "a TLS record where SMTP was expected: the direction is ignored",
    }
)

# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Banner:
    """The server greeting (RFC 5321 §3.1): 220, or a refusal (421, 521 per RFC 7504, 554)."""

    code: int
    text: str  # lines joined with "\n", code and separator removed
    offset: int  # s2c
    first_end: int | None = field(default=None, compare=False)  # after its first line
    # (line index, its text's bytes) of each line whose text holds a backslash, which may be
    # one it was typed with or one that writes a byte that is no UTF-8 (see Reply.wire)
    wire: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    """One client command line; ``verb`` upper-cased. For AUTH ``arg`` is only the mechanism."""

    verb: str
    arg: str
    offset: int  # c2s (s2c after a roles_turned anomaly: the server's command)
    end: int | None = field(default=None, compare=False)  # after its line ending, when known
    cut: bool = False  # a gap cut its line: what was read is its head, before the gap
    # its argument's bytes when its text holds a backslash: a text keeps each byte that is no
    # UTF-8 as "\\xHH", so only the bytes tell it from a backslash the client typed (Zeek's
    # logs write the bytes, as for Reply.wire)
    wire: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    """One (possibly multi-line, RFC 5321 §4.2.1) reply, paired FIFO with what it answers.

    ``answers`` is the verb of the command (AUTH for X-EXPS too), END_OF_DATA for message
    content, AUTH_RESPONSE for a line after a 334, "" for an unparsable client line or one cut
    by a gap, and None when the client had nothing pending.
    """

    code: int
    enhanced: str | None  # RFC 3463 class.subject.detail, e.g. "5.7.64"
    lines: tuple[str, ...]  # text after "250-"/"250 ", enhanced code included
    offset: int  # s2c (c2s after a roles_turned anomaly: the client's reply)
    answers: str | None = None
    end: int | None = field(default=None, compare=False)  # after its last line, when known
    dropped: int = 0  # lines past MAX_REPLY_LINES: counted, their text not kept
    last: str | None = None  # the last of those lines' text
    # (line index, code, text, the line before's text) of each line whose code is not
    # the one of the line before
    changes: tuple[tuple[int, int, str, str], ...] = ()
    # the first of its lines a gap came before or cut (a cut line is read on after the gap,
    # its head and tail joined, as Zeek's line reader reads it); None: no gap inside it
    gap_line: int | None = None
    # (line index, its text's bytes) of each line whose text holds a backslash: a text keeps
    # each byte that is no UTF-8 as "\\xHH", so only the bytes tell it from a backslash the
    # server typed (Zeek's logs write the bytes); and of each line whose text ends in a CR
    # (ended by CR CR LF: Zeek reads an empty line after it); of the other lines past
    # MAX_REPLY_LINES only the last, each a code change begins and the one before it
    wire: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class StartTls:
    """Outcome of STARTTLS (RFC 3207 §4): TLS begins at these offsets if ``accepted``.

    The offsets are right after the STARTTLS line's CRLF (c2s) and after the reply's final
    CRLF (s2c); on refusal they say where TLS would have begun. ``implicit`` marks a port such
    as 465 where TLS starts at offset 0.
    """

    accepted: bool
    c2s_offset: int
    s2c_offset: int
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class DataBody:
    """Message content after DATA/354 (dot-stuffed, without the final ".CRLF") or a BDAT chunk.

    Skipped, never stored: the size is all the diagnosis needs.
    """

    size: int
    offset: int  # c2s
    # where a "." line Zeek's line reader ends the message at begins, where fastcap reads on
    # (after a lone CR, or ended by one), and the content from it up to the final dot (at
    # most MAX_ZEEK_REST bytes): for the Zeek logs only
    zeek_rest: tuple[int, bytes] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A client line answering a 334 challenge (RFC 4954 §4): base64 credentials, not kept."""

    size: int
    offset: int  # c2s
    # where a "." line Zeek's line reader ends the message at begins, where fastcap reads on
    # (after a lone CR, or ended by one), and the content from it up to the final dot (at
    # most MAX_ZEEK_REST bytes): for the Zeek logs only
    zeek_rest: tuple[int, bytes] | None = field(default=None, compare=False)
    # the empty lines Zeek's line reader reads after it, one per CR before the last of a
    # line ended by CR CR LF (CR_as_EOL): each another answer to it; for the Zeek logs only
    zeek_extra: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes the capture lost; parsing resyncs at the next line that parses."""

    direction: Direction
    offset: int
    size: int
    # the line an earlier gap cut runs on into this one: Zeek's line reader hands the line
    # on after both gaps, so both come before it
    joined: bool = False


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something odd in the peer bytes, kept as data; ``kind`` is a key of ANOMALY_KINDS."""

    kind: str
    detail: str
    offset: int
    direction: Direction | None = None
    # a line's: where Zeek's line reader ends it (its first CR or LF), when known
    end: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Closed:
    """Both directions ended; the last event of a conversation."""


@dataclass(frozen=True, slots=True)
class CutStart:
    """Where to read a connection whose beginning the capture missed (no SYN; see
    fastcap.midstart): each direction from its first unit that starts at a boundary.

    Server bytes before ``s2c_lead_end`` were captured before the client's first byte, so
    the replies there answer commands sent before the capture began. ``c2s_body``: the
    client's bytes begin inside message content (see fastcap.midstart.body_tail_at);
    ``c2s_chunk_end``: inside a BDAT chunk that ends there (fastcap.midstart.chunk_tail_at).
    """

    c2s_offset: int
    s2c_offset: int
    s2c_lead_end: int
    c2s_body: bool = False
    c2s_chunk_end: int | None = None


@dataclass(frozen=True, slots=True)
class ZeekTail:
    """The bytes after a gap, up to their first CR or LF, that Zeek's line reader joins to the
    reply line the gap cut, where fastcap keeps the line's head alone (binary bytes: TLS
    records); for the Zeek logs only."""

    offset: int  # where the cut line begins
    data: bytes


@dataclass(frozen=True, slots=True)
class ZeekBadReply:
    """A line of the replying side after a gap that Zeek's line reader hands on whole, as a
    line of its own, with no reply code from 100 to 599 first ("reply code out of range" to
    its SMTP analyzer, an analyzer violation), where fastcap skips it (resync) or takes it for
    a reply whose start was lost; for the Zeek logs only."""

    offset: int
    direction: Direction
    end: int | None = field(default=None, compare=False)  # as Anomaly.end


Event = (Banner | Command | Reply | StartTls | DataBody | AuthResponse | Gap | Anomaly | Closed
         | ZeekTail | ZeekBadReply)


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


def names_exchange_online(text: str) -> bool:
    """True if a host in ``text`` ends in .mail.protection.outlook.com (Exchange Online)."""
    return _EXO_RE.search(text.lower()) is not None


def is_relay_denied(reply: Reply) -> bool:
    """Exchange Online's attribution failure: 550 5.7.64 TenantAttribution; Relay Access Denied."""
    return _relay_denied(reply.code, reply.enhanced, reply.lines)


def _relay_denied(code: int, enhanced: str | None, lines: Sequence[str]) -> bool:
    return code == 550 and (
        enhanced == "5.7.64" or any("tenantattribution" in t.lower() for t in lines)
    )
