"""Where a direction's readable data begins when the capture started after the connection did.

Ring buffers, late starts and capture filters cut a conversation's beginning: without the SYN,
a direction's stream starts wherever its first captured segment happened to start, which may
be the middle of an SMTP line or of a TLS record. Reading from there gives nonsense (a TLS
parser takes body bytes for a record header), so each direction is searched, on its own, for
the first unit that begins at a boundary: an SMTP reply or command line after a line end, or a
chain of well-formed TLS records. The bytes before it are the tail of a unit whose start was
not captured and are skipped; everything after is read by the ordinary parsers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from ..pickling import compact
from .smtp import GREETING_CODES, KNOWN_VERBS, MAX_LINE
from .tls.const import ContentType, name_of
from .tls.records import MAX_RECORD

__all__ = ["MidSession", "StreamStart", "body_tail_at", "chunk_tail_at", "encrypted_at",
           "find_start",
           "opens_smtp", "opens_tls", "tls_chain_at", "unit_at"]

_TLS_TYPES: Final = frozenset({20, 21, 22, 23})
_TLS_HEAD_RE: Final = re.compile(rb"[\x14-\x17]\x03[\x00-\x04]")
_REPLY_RE: Final = re.compile(rb"([2-5][0-9][0-9])(?:[ \t-][^\r\n]*)?\r?(?:\n|\Z)")
_COMMAND_RE: Final = re.compile(rb"([A-Za-z][A-Za-z0-9-]{0,31})(?:[ \t][^\r\n]*)?\r?(?:\n|\Z)")
_END_OF_DATA_RE: Final = re.compile(rb"(?:\A|\n)\.\r?\n")  # RFC 5321 §4.1.1.4 (bare LF too)
# A line that opens message content: DATA takes no argument (RFC 5321 §4.1.1.4), BDAT a size
# (RFC 3030 §2); body prose rarely has either line.
_OPENS_CONTENT_RE: Final = re.compile(rb"(?:\A|\n)(?i:DATA[ \t]*\r?\n|BDAT[ \t]+[0-9])")
_CONTROL_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def tls_chain_at(data: bytes, i: int, end: int, cut_ok: bool = True) -> bool:
    """A well-formed TLS record starts at ``i`` and is followed right after its body by
    another well-formed header, or ends at ``end`` (the end of the contiguous data): one
    header alone is too weak a sign inside ciphertext or a cut record. With ``cut_ok`` the
    record may also run past ``end`` (a segment start is a strong sign already; anywhere
    else a random header whose length overshoots would pass too easily)."""
    records = 0
    while True:
        if end - i < 5:
            return records > 0 and (end == i or _tls_head_prefix(data, i, end))
        ctype, major, minor = data[i], data[i + 1], data[i + 2]
        length = data[i + 3] << 8 | data[i + 4]
        if ctype not in _TLS_TYPES or major != 3 or minor > 4 or not 0 < length <= MAX_RECORD:
            return False
        records += 1
        i += 5 + length
        if i > end:
            return cut_ok
        if i == end or records >= 2:
            return True


def _tls_head_prefix(data: bytes, i: int, end: int) -> bool:
    """The few bytes left at the end could begin a record header."""
    head = data[i:end]
    return head[0] in _TLS_TYPES and (len(head) < 2 or head[1] == 3) and (
        len(head) < 3 or head[2] <= 4)


def _smtp_line_at(data: bytes, i: int, end: int, from_client: bool, any_case: bool) -> bool:
    """A whole SMTP line starts at ``i``: a reply code, or a known command verb (upper case
    unless ``any_case``: a cut message body is prose, where capitalised verbs are rare)."""
    stop = min(end, i + MAX_LINE + 2)
    m = (_COMMAND_RE if from_client else _REPLY_RE).match(data, i, stop)
    if m is None or (m.end() == stop < end and data[stop - 1] != 0x0A):
        return False  # no line, or one too long to be SMTP
    if not from_client:
        return True
    verb = m[1]
    return (any_case or verb.isupper()) and verb.upper().decode() in KNOWN_VERBS


@compact
@dataclass(frozen=True, slots=True)
class StreamStart:
    """Where one direction's readable data begins, and what it begins with."""

    offset: int  # stream offset of the first unit that starts at a boundary
    skipped: int  # bytes before it: the tail of a unit whose start was not captured
    kind: str  # smtp | tls | body (message content) | chunk (of BDAT) | none | empty (no bytes)
    what: str  # for people: "STARTTLS", "a 220 reply", "a TLS handshake record (ServerHello)"
    frame: int | None = None  # the frame carrying its first byte

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "skipped": self.skipped, "kind": self.kind,
                "what": self.what, "frame": self.frame}


def _describe(data: bytes, i: int, end: int, kind: str, from_client: bool) -> str:
    if kind == "tls":
        ctype = data[i]
        text = f"a TLS {name_of(ContentType, ctype, 2).replace('_', ' ')} record"
        if ctype == 22 and i + 9 <= end:  # a plaintext message names itself; ciphertext not
            mtype = data[i + 5]
            mlen = data[i + 6] << 16 | data[i + 7] << 8 | data[i + 8]
            rlen = data[i + 3] << 8 | data[i + 4]
            if mtype in _HS_TEXT and (mlen + 4 <= rlen or mlen < 1 << 17):
                return f"{text} ({_HS_TEXT[mtype]})"
        return text
    line = data[i:min(end, i + 64)].split(b"\n", 1)[0]
    if from_client:
        return line.split(None, 1)[0].upper().decode("ascii", "replace")
    return f"a {line[:3].decode('ascii', 'replace')} reply"


_HS_TEXT: Final = {1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket",
                   8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange",
                   13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify",
                   16: "ClientKeyExchange", 20: "Finished"}


def unit_at(data: bytes, i: int, end: int, from_client: bool, any_case: bool = True
            ) -> str | None:
    """"smtp" or "tls" when such a unit starts at ``i``, else None."""
    if i >= end:
        return None
    if data[i] in _TLS_TYPES:
        return "tls" if tls_chain_at(data, i, end) else None
    return "smtp" if _smtp_line_at(data, i, end, from_client, any_case) else None


def find_start(data: bytes, end: int, from_client: bool, begin: int = 0) -> StreamStart:
    """The first unit in ``data[begin:end]`` (one contiguous run) that starts at a boundary.

    ``begin`` is a segment start, so a unit there counts as is; further on, an SMTP line
    must follow a line end, and a TLS chain may start anywhere. With nothing found the
    whole run is skipped (kind "none"): better nothing than a wrong offset.
    """
    if end <= begin:
        return StreamStart(begin, 0, "empty", "nothing")
    kind = unit_at(data, begin, end, from_client)
    if kind is not None:
        return StreamStart(begin, 0, kind, _describe(data, begin, end, kind, from_client))
    best: tuple[int, str] | None = None
    for m in _TLS_HEAD_RE.finditer(data, begin, end):
        if tls_chain_at(data, m.start(), end, cut_ok=False):
            best = (m.start(), "tls")
            break
    stop = best[0] if best is not None else end
    nl = data.find(b"\n", begin, stop)
    while nl >= 0 and nl + 1 < stop:
        if _smtp_line_at(data, nl + 1, end, from_client, any_case=False):
            best = (nl + 1, "smtp")
            break
        nl = data.find(b"\n", nl + 1, stop)
    if best is None:
        return StreamStart(end, end - begin, "none", "nothing readable")
    at, kind = best
    return StreamStart(at, at - begin, kind, _describe(data, at, end, kind, from_client))


def body_tail_at(data: bytes, begin: int, end: int) -> bool:
    """The client's bytes from ``begin`` are the tail of message content: an end-of-data line
    "." comes before any DATA or BDAT line, in text (no control bytes but tab, CR and LF).

    A lone "." is no command (RFC 5321 §4.1.1): sent as a line before any DATA in view, it
    can only end content whose DATA (and 354) came before the capture did. Lines before it
    that read like commands ("Send the figures to Bob") are that content, not commands.
    """
    m = _END_OF_DATA_RE.search(data, begin, end)
    if m is None:
        return False
    dot = m.start()
    return (_OPENS_CONTENT_RE.search(data, begin, dot + 1) is None
            and _CONTROL_RE.search(data, begin, dot) is None)


_BDAT_LINE_RE: Final = re.compile(rb"(?i:BDAT)[ \t]+([0-9]{1,18})(?:[ \t]+(?i:LAST))?[ \t]*\r?\n")


def chunk_tail_at(data: bytes, begin: int, end: int) -> int | None:
    """Where the client's bytes from ``begin`` stop being the tail of a BDAT chunk (RFC 3030
    §2), or None: the offset of the BDAT command that follows it, the first in view whose own
    chunk checks out (a command follows it, or the data ends before it does).

    A chunk is sized, not terminated: the next BDAT starts right after its last byte, at a
    line start or not. No line before it starts with a command in upper case, as senders
    write them (else those are commands, read from the first), and no line is a lone "."
    (then it is DATA's content: body_tail_at). Lines that read like commands in other case
    ("Send the figures…") are the tail's content.
    """
    for m in _BDAT_LINE_RE.finditer(data, begin, end):
        at = m.start()
        after = m.end() + int(m[1])
        if after < end and not _smtp_line_at(data, after, end, True, False):
            continue  # its chunk does not check out: content that reads like a BDAT line
        if at == begin or _END_OF_DATA_RE.search(data, begin, at) is not None:
            return None
        i = begin
        while 0 <= i < at:
            if _smtp_line_at(data, i, at, True, any_case=False):
                return None
            i = data.find(b"\n", i, at) + 1 or -1
        return at
    return None


def encrypted_at(data: bytes, i: int) -> bool:
    """The record at ``i`` comes after its direction's ChangeCipherSpec: application data, an
    alert that is not two plaintext bytes, or a handshake record that does not hold a known
    plaintext message (an encrypted Finished)."""
    if i + 5 > len(data):
        return False
    ctype, length = data[i], data[i + 3] << 8 | data[i + 4]
    if ctype == 23:
        return True
    if ctype == 21:
        return length != 2
    if ctype == 22 and i + 9 <= len(data):
        mlen = data[i + 6] << 16 | data[i + 7] << 8 | data[i + 8]
        return data[i + 5] not in _HS_TEXT or not (mlen + 4 <= length or mlen < 1 << 17)
    return False


def opens_smtp(data: bytes, start: StreamStart, from_client: bool) -> bool:
    """The unit at the start is how an SMTP session opens: a greeting reply (server), or any
    command (client: EHLO, HELO, or a client that skips them)."""
    if start.kind != "smtp" or start.offset:
        return False
    if from_client:
        return True
    return int(data[:3]) in GREETING_CODES


def opens_tls(data: bytes, start: StreamStart) -> bool:
    """The unit at the start is a ClientHello record."""
    return (start.kind == "tls" and start.offset == 0 and data[0] == 22 and len(data) > 5
            and data[5] == 1)


@compact
@dataclass(frozen=True, slots=True)
class MidSession:
    """The capture began after the connection did: no SYN, and at least one direction does
    not begin with how the protocol opens. Parsing starts at each direction's ``offset``."""

    first_frame: int  # the first frame of the connection in the capture
    c2s: StreamStart
    s2c: StreamStart
    s2c_lead_end: int  # server bytes before this offset were sent before the client's first

    def to_dict(self) -> dict[str, Any]:
        return {"first_frame": self.first_frame, "c2s": self.c2s.to_dict(),
                "s2c": self.s2c.to_dict(), "s2c_lead_end": self.s2c_lead_end}
