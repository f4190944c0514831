"""`fastcap scan --format zeek`: smtp.log, ssl.log and x509.log as Zeek writes them.

The field names, types and order are those of Zeek 6/7's base scripts, with the options a mail
admin would turn on: the certificate subjects and issuers in ssl.log
(``SSL::log_include_*_certificate_subject_issuer``) and ``validation_status``
(policy/protocols/ssl/validate-certs).  fastcap adds one field, ``fastcap_verdicts``, to
ssl.log and smtp.log.  A session is one smtp.log line per mail transaction of its plaintext
dialogue and one ssl.log line (when it has a TLS handshake), all with the same ``uid``;
x509.log has one line per distinct certificate and role, in the order first seen.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import os
import re
import secrets
import struct
import tempfile
import weakref
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import FastcapError
from ..judge import x509lenient
from ..judge.judging import trust_store
from ..judge.x509check import Analyzer, cert_info, load_certificate, name_matches, quiet_x509
from ..proto.smtp.dialogue import ZEEK_DPD_BYTES, CommandRecord
from ..proto.tls.const import is_tls13
from ..proto.tls.der import element, elements
from ..proto.tls.wirenames import wire_bytes
from ..read.frametimes import frame_times
from ..session import Session
from ..verdict import CertInfo
from .zeek_ascii import close_bytes, header_bytes, row_bytes, zeek_time
from .zeek_consts import alert_name, cipher_name, group_name, version_name
from .zeek_dn import openssl_name

_CONN = (("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
         ("id.resp_h", "addr"), ("id.resp_p", "port"))

SMTP_FIELDS: tuple[tuple[str, str], ...] = (
    *_CONN, ("trans_depth", "count"), ("helo", "string"), ("mailfrom", "string"),
    ("rcptto", "set[string]"), ("date", "string"), ("from", "string"), ("to", "set[string]"),
    ("cc", "set[string]"), ("reply_to", "string"), ("msg_id", "string"),
    ("in_reply_to", "string"), ("subject", "string"), ("x_originating_ip", "addr"),
    ("first_received", "string"), ("second_received", "string"), ("last_reply", "string"),
    ("path", "vector[addr]"), ("user_agent", "string"), ("tls", "bool"),
    ("fuids", "vector[string]"), ("fastcap_verdicts", "set[string]"))

SSL_FIELDS: tuple[tuple[str, str], ...] = (
    *_CONN, ("version", "string"), ("cipher", "string"), ("curve", "string"),
    ("server_name", "string"), ("resumed", "bool"), ("last_alert", "string"),
    ("next_protocol", "string"), ("established", "bool"), ("ssl_history", "string"),
    ("cert_chain_fps", "vector[string]"), ("client_cert_chain_fps", "vector[string]"),
    ("subject", "string"), ("issuer", "string"), ("client_subject", "string"),
    ("client_issuer", "string"), ("sni_matches_cert", "bool"),
    ("validation_status", "string"), ("fastcap_verdicts", "set[string]"))

X509_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("fingerprint", "string"), ("certificate.version", "count"),
    ("certificate.serial", "string"), ("certificate.subject", "string"),
    ("certificate.issuer", "string"), ("certificate.not_valid_before", "time"),
    ("certificate.not_valid_after", "time"), ("certificate.key_alg", "string"),
    ("certificate.sig_alg", "string"), ("certificate.key_type", "string"),
    ("certificate.key_length", "count"), ("certificate.exponent", "string"),
    ("certificate.curve", "string"), ("san.dns", "vector[string]"),
    ("san.uri", "vector[string]"), ("san.email", "vector[string]"), ("san.ip", "vector[addr]"),
    ("basic_constraints.ca", "bool"), ("basic_constraints.path_len", "count"),
    ("host_cert", "bool"), ("client_cert", "bool"))

LOGS = {"smtp": SMTP_FIELDS, "ssl": SSL_FIELDS, "x509": X509_FIELDS}
_VALIDATION = [n for n, _ in SSL_FIELDS].index("validation_status")
_MAX_CACHED = 10_000  # issuers whose intermediates are kept (Zeek keeps every one)
_LOGS_BY_NUMBER = tuple(LOGS)
_LOG_NUMBERS = {name: i for i, name in enumerate(_LOGS_BY_NUMBER)}
_HELD = struct.Struct("<BQI")  # a spooled line: its log, its frame (0: none), its length

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def zeek_uid(path: str, number: int) -> str:
    """A Zeek-style connection uid ("C" and 17 base-62 characters) that depends only on the
    file and the session number, so the same scan gives the same uids every time."""
    digest = hashlib.sha256(f"{path}\0{number}".encode("utf-8", "surrogateescape")).digest()
    n = int.from_bytes(digest[:12], "big")
    chars = []
    for _ in range(17):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "C" + "".join(reversed(chars))


def _endpoint(text: str) -> tuple[str, int]:
    """"a.b.c.d:p" or "[v6]:p" -> (address, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _conn(s: Session, path: str) -> list[object]:
    # Zeek's ids are the connection's, whatever TURN made of the roles (roles_turned)
    orig, resp = (s.server, s.client) if s.roles_turned else (s.client, s.server)
    orig_h, orig_p = _endpoint(orig)
    resp_h, resp_p = _endpoint(resp)
    return [s.first_ts_ns, zeek_uid(path, s.number), orig_h, orig_p, resp_h, resp_p]


def _codes(s: Session) -> list[str]:
    return list(dict.fromkeys(v.code for v in s.verdicts))


# --- smtp.log --------------------------------------------------------------------------------

# base/utils/email.zeek's extract_email_addrs_*: an address after the start, "<", ",", ":" or
# a blank, up to ">", ",", ";", a blank or the end; those characters then taken out of it
_EMAIL = re.compile(r"(?:^|[<,:\t ])[^<,:\t @]+@[^>,;\t ]+(?:[>,;\t ]|\Z)")
_EMAIL_PUNCT = re.compile(r"[<>,:;\t ]")
_ORCPT = re.compile(r"ORCPT=rfc822;?")  # taken out of each RCPT TO address, as main.zeek
_MAIL_FROM = re.compile(r"(?i)from:")
_RCPT_TO = re.compile(r"(?i)to:")
_BLANK = " \t"
_CR = "\r"
_MAX_RCPTTO = 1000  # SMTP::max_rcptto_addresses: the addresses a transaction keeps


def _emails(arg: str) -> list[str]:
    """The addresses Zeek finds in a MAIL FROM or RCPT TO argument, in order."""
    return [_EMAIL_PUNCT.sub("", m.group()) for m in _EMAIL.finditer(arg)]


@dataclass(slots=True)
class _Transaction:
    """One smtp.log line being filled, as Zeek's SMTP::Info: made at the event that needs
    it, written when the next MAIL FROM comes, at the reply to the message's end, or at the
    session's end, and then only when the client did something (MAIL, RCPT or STARTTLS)."""

    frame: int | None  # the packet that ended the line that made it: its ts
    depth: int
    helo: str | None
    mailfrom: str | None = None
    rcptto: list[str] | None = None
    last_reply: str | None = None
    tls: bool = False
    active: bool = False


# SMTP_cmd.def: the words Zeek's SMTP analyzer reads as commands, each as the command it
# is there; a line starting with another word is no command, so it waits for no reply.
# ParseCmd matches the words it uses for the greeting, a message's end and an answer to a
# challenge too, and X_ANONYMOUSTLS is X-ANONYMOUSTLS's name there.
_GREETING = "CONN_ESTABLISHMENT"  # what Zeek has the first reply answer, greeting or not
_ZEEK_VERBS = {w: w for w in (
    "EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT", "RSET", "VRFY", "EXPN", "HELP", "NOOP",
    "STARTTLS", "X-ANONYMOUSTLS", "SEND", "SOML", "SAML", "TURN", "BDAT", "ETRN", "AUTH",
    _GREETING, "END_OF_DATA", "AUTH_ANSWER")} | {"X_ANONYMOUSTLS": "X-ANONYMOUSTLS"}
_ZEEK_WORD = re.compile(rb"[^\s]*")  # util::get_word: a command word, up to a blank
_UNPAIRED = "(UNKNOWN)"  # a reply with no command waiting for one
_GAP = "gap"  # in _zeek_pairing's marks: bytes lost here
_MAX_PENDING = 1000  # SMTP.cc's max_pending_cmd_q_size: behind the one the next reply answers


# a client line fastcap reads as no command (bad_command, its bytes as repr shows them) that
# is a word alone before CRs: "QUIT\r\r\n"
_WORD_BEFORE_CRS = re.compile(r"([^\s\\]+)(?:\\r)+")


def _commands(d) -> tuple:
    """The dialogue's commands with the client lines Zeek reads as a command that fastcap
    reads as none: a verb alone before CR CR LF ("QUIT\r\r\n", bad_command to fastcap, as
    to Postfix), which Zeek's ContentLine ends at its first CR (CR_as_EOL), the empty line
    after it no command; each in its place in frame order (its argument empty)."""
    extra = [CommandRecord(m[1].upper(), "", a.offset, a.frame) for a in d.anomalies
             if a.kind == "bad_command" and a.offset is not None and a.frame is not None
             and (m := _WORD_BEFORE_CRS.fullmatch(a.detail)) and m[1].upper() in _ZEEK_VERBS]
    if not extra:
        return d.commands
    out = list(d.commands)
    for c in extra:  # before the first command sent after it (a later frame)
        at = next((n for n, x in enumerate(out) if x.frame is not None and (
            x.frame, x.offset) > (c.frame, c.offset)), len(out))
        out.insert(at, c)
    return tuple(out)


def _events(d) -> list[tuple[int, int, object]]:
    """The dialogue's greeting, commands (_commands) and replies in the order they travelled
    (by frame; one without a frame keeps its place after the one before it in its
    direction)."""
    out: list[tuple[int, int, object]] = []
    if d.banner_code is not None:
        out.append((d.banner_frame or 0, 0, d))
    for kind, items in ((1, _commands(d)), (2, d.replies)):
        frame = d.banner_frame or 0
        for x in items:
            frame = x.frame if x.frame is not None else frame
            out.append((frame, kind, x))
    out.sort(key=lambda e: (e[0], e[1]))  # stable: each direction stays in order
    return out


def _unread_lines(d, events) -> list[tuple[str, object | None, object | None, object | None]]:
    """The client lines Zeek reads as commands that fastcap keeps no record of: a message's
    final dot and each answer to an AUTH challenge; each with the command record sent after
    it, the reply answering it (None: none seen) and the record the message began at (None
    for an answer to a challenge).  fastcap reads a message after DATA answered 354, or not
    answered at all (a capture of the client's side only), and after a 354 answering a line
    a gap cut (its DATA lost): ``events`` (_events) in the order they travelled."""
    accepted = iter([r.code == 354 for r in d.replies if r.answers == "DATA"])
    starts = {id(c) for c in d.commands if c.verb == "DATA" and next(accepted, True)}
    starts |= {id(r) for r in d.replies if r.code == 354 and r.answers == ""}
    ends = iter(_message_ends(events, starts))
    out: list[tuple[str, object | None, object | None, object | None]] = []
    for n, (_, _, x) in enumerate(events):
        if id(x) in starts:
            after = next((e[2] for e in events[n + 1:] if e[1] == 1), None)
            reply = next(ends, None)
            if reply is not None or after is not None:  # the dot was sent
                out.append(("END_OF_DATA", after, reply, x))
    # the client answers each challenge before the reply to it, and sends nothing else then;
    # an answer ended by CR CR LF is two or more to Zeek (SmtpDialogue.zeek_answers)
    extra = Counter(d.zeek_answers)
    for k, r in enumerate(r for r in d.replies if r.answers == "AUTH_RESPONSE"):
        out += [("AUTH_ANSWER", None, r, None)] * (1 + extra[k])
    return out


def _message_ends(events, starts: set[int]) -> list:
    """The replies answering a message's final dot, in order: those answering END_OF_DATA
    less the ones answering a client command of that name, each unit (a message begun at
    one of ``starts``, such a command) answered in the order it was sent."""
    sent: deque[bool] = deque()  # True: a message's final dot
    out = []
    for _, kind, x in events:
        if id(x) in starts:
            sent.append(True)
        elif kind == 1 and x.verb == "END_OF_DATA":
            sent.append(False)
        if kind == 2 and x.answers == "END_OF_DATA" and (sent.popleft() if sent else True):
            out.append(x)
    return out


# SMTP.cc's states, as far as they decide how a client line is read: "data" (a line is
# message content, "." alone ends it), "auth" (every line answers the challenge), "gap"
# (SMTP_AFTER_GAP: no line is a command), "recovery" (SMTP_GAP_RECOVERY: the first reply
# after a gap came; a 354 then begins a message), "other" (a line is a command if its
# first word is one)
_DATA_ENDED_BY = frozenset({"MAIL", "SEND", "SOML", "SAML"})  # a refusal, except in data
_MAIL_REFUSALS = frozenset({421, 451, 452, 500, 501, 503, 550, 552, 553})
_HELO_REFUSALS = frozenset({421, 500, 501, 504, 550})
_NO_STATE = frozenset({"VRFY", "EXPN", "HELP", "NOOP", "ETRN", _UNPAIRED})


def _zeek_state(state: str, cmd: str, code: int) -> str:
    """SMTP.cc's UpdateState for a reply ``code`` paired with ``cmd``: the state after it."""
    if cmd == _GREETING:
        return "other" if code in (421, 554) else state
    if cmd in ("EHLO", "HELO"):
        return "other" if code in _HELO_REFUSALS else state
    if cmd in _DATA_ENDED_BY:
        return "other" if code in _MAIL_REFUSALS and state != "data" else state
    if cmd == "DATA":  # 354 goes on; anything else ends the message
        return state if code == 354 else "other"
    if cmd == "END_OF_DATA":
        return "other"
    if cmd in ("AUTH", "AUTH_ANSWER"):
        return "auth" if code == 334 else "other"
    if cmd in _NO_STATE and state == "recovery" and code == 354:
        return "data"
    return state


def _answer_to_gap(gap, k: int, lines: dict[str, list], place: dict[int, int]):
    """The reply fastcap pairs with the client line a gap took (answers ""), when it came
    between the client's lines before and after the gap: the server acknowledged the lost
    bytes by then, which is when Zeek learns of the gap, so the commands after it are read
    again after that reply; None when there is none."""
    if gap.direction != "c2s":
        return None
    c2s = lines["c2s"]
    lo = place[id(c2s[k - 1])] if k else -1
    hi = place[id(c2s[k])] if k < len(c2s) else len(place)
    return next((r for r in lines["s2c"] if lo < place[id(r)] < hi and r.answers == ""),
                None)


def _past_atrn(events) -> set[int]:
    """The ids of the commands and replies after a 250 to ATRN (RFC 2645), up to and with the
    250 to TURN or ATRN that swaps the roles back: fastcap swaps them there, but ATRN is no
    word of SMTP_cmd.def, so Zeek's SMTP analyzer keeps its sides (orig_is_sender) and reads
    the new sender's commands as reply lines whose code is out of range and the new
    receiver's replies as lines whose word is no command: none of them is read."""
    out: set[int] = set()
    past = False
    for _, kind, x in events:
        turns = kind == 2 and x.code == 250 and x.answers in ("TURN", "ATRN")
        if past:
            out.add(id(x))
            past = not turns  # Zeek never swapped: from here its sides are fastcap's again
        elif turns and x.answers == "ATRN":
            past = True  # (a 250 to TURN swaps Zeek's sides as fastcap's)
    return out


def _holds_gap(x) -> bool:
    """Does a gap fall inside command or reply record ``x``: a gap cut the command's line, or
    came before or cut one of the reply's lines (its ``gap_line``)?  The first gap after
    ``x`` begins is then that one."""
    return x.cut if hasattr(x, "verb") else x.gap_line is not None


def _zeek_pairing(d, greeting: bool) -> tuple[list[tuple[int, int, object, str | None]], bool]:
    """The dialogue's events as Zeek's SMTP analyzer (SMTP.cc) reads them, each reply with
    the command Zeek has it answer: the oldest one not yet answered (its pending_cmd_q),
    the greeting counting as the first, whatever the server sent first; a reply with none
    waiting answers "(UNKNOWN)".  Zeek reads a client line by its state (_zeek_state): a
    word it does not know is no command and waits for nothing; DATA begins its data state
    at once, where lines are message content until a line "." (the message's end, a
    command) or a reply Zeek pairs with DATA other than 354, so a 354 Zeek pairs with
    something else leaves it outside the message, reading the final dot as no command;
    after AUTH's 334 every line answers the challenge.  Only the commands Zeek reads are
    returned, and none after a 250 to ATRN, which Zeek does not follow (_past_atrn).  A gap
    in either direction empties the queue, ends a message, and the
    client's lines until the next reply are not read as commands (SMTP_AFTER_GAP): Zeek
    learns of the gap when the bytes after it come, so here before the first line after
    it (in a message, before its final dot, which is then no command).  Zeek hands the
    connection to TLS at a 220 it pairs with STARTTLS: the events after it are not read,
    and the second value says it did.  Message content is not kept,
    so a line of it whose first word is a command, read as one where Zeek is outside its
    data state, is not seen."""
    events = _events(d)
    place = {id(e[2]): n for n, e in enumerate(events)}
    unread = _past_atrn(events)
    # an unrecorded line goes before the command sent after it or the reply answering it,
    # whichever travelled first
    # each mark: _GAP, AUTH_ANSWER, or a message's final dot, (END_OF_DATA, its DATA's id)
    before: dict[int, list[str | tuple[str, int]]] = {}
    dots: dict[int, list[str | tuple[str, int]]] = {}  # a DATA's id: the marks with its dot
    early = _early_ends(d)
    for name, after, reply, data in _unread_lines(d, events):
        first = min((x for x in (after, reply) if x is not None), key=lambda x: place[id(x)])
        names = before.setdefault(id(first), [])
        if data is not None:
            dots[id(data)] = names
            if id(data) in early:  # Zeek's lines from the "." it ends the message at
                names.append(("LINES", early[id(data)]))
        names.append(name if data is None else (name, id(data)))
    lines = {side: [e[2] for e in events if e[1] == kind] for side, kind in (("c2s", 1),
                                                                            ("s2c", 2))}
    starts = {side: [x.offset for x in xs] for side, xs in lines.items()}
    inside: dict[int, int] = {}  # multi-line replies a gap falls in: the line it is before
    held: set[int] = set()  # the records whose gap (_holds_gap) is placed
    for gap in d.gaps:  # each direction's lines are in stream order
        if gap.joined:  # Zeek reports it, as the gap before it, before the line both cut:
            continue  # a second report there reads as the first
        k = bisect.bisect_left(starts.get(gap.direction, ()), gap.offset)
        data = id(lines["c2s"][k - 1]) if gap.direction == "c2s" and k else None
        if data in dots:  # in a message: its final dot comes after the gap
            dots[data].insert(dots[data].index(("END_OF_DATA", data)), _GAP)
        elif k and id(x := lines[gap.direction][k - 1]) not in held and _holds_gap(x):
            # Zeek's ContentLine keeps a cut line's head and delivers it with the bytes
            # after the gap, so the line whose end the gap took comes after the gap's report;
            # in a multi-line reply, between its lines (_reply_parts)
            held.add(id(x))
            if getattr(x, "gap_line", 0):
                inside[id(x)] = x.gap_line
            else:
                before.setdefault(id(x), []).insert(0, _GAP)
        elif (answer := _answer_to_gap(gap, k, lines, place)) is not None:
            before.setdefault(id(answer), []).insert(0, _GAP)
        elif k < len(starts.get(gap.direction, ())):
            before.setdefault(id(lines[gap.direction][k]), []).insert(0, _GAP)
    queue: deque[str] = deque([_GREETING] if greeting else ())
    out: list[tuple[int, int, object, str | None]] = []
    state = "other"

    def client_line(word: str | None) -> str | None:
        """The command Zeek reads a client line as (queued), None for none."""
        if state == "gap" or (state == "data" and word != "."):
            return None
        cmd = ("AUTH_ANSWER" if state == "auth" else "END_OF_DATA" if state == "data"
               else _ZEEK_VERBS.get(word or ""))
        if cmd is not None:
            if len(queue) > _MAX_PENDING:  # smtp_excessive_pending_cmds: all but the first
                first = queue[0]
                queue.clear()
                queue.append(first)
            queue.append(cmd)
        return cmd

    def zeek_line(at: int, line: bytes, end_frame: int | None, frame: int) -> None:
        """SMTP.cc's ProcessLine of a client line fastcap keeps no record of (zeek_lines)."""
        nonlocal state
        word = _ZEEK_WORD.match(line)[0].upper()  # type: ignore[index]
        if state == "data" and line != b".":
            return  # message content
        verb = "." if state == "data" else word.decode("ascii", "replace")
        cmd = client_line(verb)
        if cmd == "END_OF_DATA":
            state = "other"
        elif cmd is not None and cmd == _ZEEK_VERBS.get(verb):
            state = "data" if cmd == "DATA" else "other"
            arg = line[len(word):].lstrip(b" \t").decode("utf-8", "backslashreplace")
            out.append((end_frame or frame, 1, CommandRecord(cmd, arg, at, end_frame), None))

    # the packet after which DPD removed the analyzer: the first out-of-range reply line
    dead_after = _violation_frame(d, events)
    crs = _cr_replies(d)
    # zeek_lines sent after the event they are placed before (the rest of a message that
    # never ended for fastcap, ".\r\r\n"): read when the events reach their frames
    later: deque[tuple[int, bytes, int | None]] = deque()

    for frame, kind, x in events:
        if dead_after is not None and frame > dead_after:
            break
        while later and (later[0][2] or 0) <= frame:
            zeek_line(*later.popleft(), frame)
        for name in before.get(id(x), ()):
            if name == _GAP:
                queue.clear()
                state = "gap"
            elif id(x) in unread:
                continue  # the new sender's final dot or answer: a reply line to Zeek
            elif isinstance(name, tuple) and name[0] == "LINES":
                for z in name[1]:  # each in its turn, as the packets bring them
                    if later or (z[2] or 0) > frame:
                        later.append(z)
                    else:
                        zeek_line(*z, frame)
            elif client_line("." if name != "AUTH_ANSWER" else None) == "END_OF_DATA":
                state = "other"
        if id(x) in unread:
            continue
        if kind == 1:
            cmd = client_line(x.verb)
            if cmd is not None and cmd == _ZEEK_VERBS.get(x.verb):  # UpdateState(cmd, 0)
                state = "data" if cmd == "DATA" else "other"
                out.append((frame, kind, x, None))
            continue
        goes_on = False  # the part after a gap inside the reply: it continues the reply
        for part in _reply_parts(x, inside.get(id(x))) if kind == 2 else (x,):
            if part is None:  # SMTP.cc's Undelivered: the reply's code outlives it
                queue.clear()
                state, goes_on = "gap", True
                continue
            if goes_on:  # no new reply: it answers nothing and the state stays
                out.append((frame, kind, part, _UNPAIRED))
                goes_on = False
                continue
            if state == "gap":
                state = "recovery"
            cmd = queue.popleft() if queue else _UNPAIRED
            out.append((frame, kind, part, cmd))
            code = d.banner_code if kind == 0 else part.code
            if code == 220 and cmd in ("STARTTLS", "X-ANONYMOUSTLS"):
                return out, True
            state = _zeek_state(state, cmd, code)
            end = (x.end_frame if kind == 2 else d.banner_end_frame) or frame
            if (_empty_line_after(d, kind, part) or id(x) in crs) and _dpd_removes(d, end):
                # "reply code out of range": the violation removes the analyzer once the
                # packet is read (DPD's event comes after it)
                dead_after = end if dead_after is None else min(dead_after, end)
    for z in later:  # the lines after the last event
        if dead_after is None or (z[2] or 0) <= dead_after:
            zeek_line(*z, z[2] or 0)
    return out, False


_ZEEK_CODE = re.compile(r"[1-5][0-9][0-9]")  # a code SMTP.cc reads as in range (100-599)


def _dpd_removes(d, frame: int) -> bool:
    """Does an analyzer violation in ``frame`` remove Zeek's SMTP analyzer?  DPD's handler
    (base/frameworks/analyzer/dpd.zeek) does while ``c$orig$size + c$resp$size`` is at
    most DPD::ignore_violations_after once that packet is read: the bytes both sides had
    sent by then (SmtpDialogue.zeek_sizes), that packet's included."""
    sizes = d.zeek_sizes
    k = bisect.bisect_right(sizes, (frame, float("inf"))) - 1
    return k < 0 or sizes[k][1] <= ZEEK_DPD_BYTES


def _violation_frame(d, events) -> int | None:
    """The frame of the first line Zeek's SMTP analyzer reads as a reply whose code is out
    of range (no three digits from 100 to 599 first), when DPD removes the analyzer there
    (_dpd_removes): the violation's packet.  Such lines come from the side Zeek reads
    replies from, the responder's until a 250 to TURN swaps it (orig_is_sender): a line
    fastcap reads as no reply (bad_reply_line), a TLS record where no STARTTLS was accepted
    (unexpected_tls: its ContentLine splits the bytes into lines), each at the packet that
    ends its first line (its first CR or LF, where ContentLine hands it on), and after a 250
    to ATRN, which Zeek does not know, the new sender's first command."""
    turns = [f for f, kind, x in events if kind == 2 and x.code == 250 and x.answers == "TURN"]
    atrn = next((f for f, kind, x in events
                 if kind == 2 and x.code == 250 and x.answers == "ATRN"), None)
    found = []
    ends = dict(d.zeek_line_ends)  # a line's end, where Zeek's ContentLine hands it on
    for n, a in enumerate(d.anomalies):
        if a.frame is None or a.offset is None or a.kind not in ("bad_reply_line",
                                                                 "unexpected_tls"):
            continue
        side = ("s2c", "c2s")[bisect.bisect_left(turns, a.frame) % 2]  # Zeek's replies' side
        if a.direction == side and not (a.kind == "bad_reply_line"
                                        and _ZEEK_CODE.match(a.detail)):
            found.append(ends.get(n, a.frame))
    for direction, frame in d.zeek_bad_replies:  # lines after a gap (ZeekBadReply)
        if direction == ("s2c", "c2s")[bisect.bisect_left(turns, frame) % 2]:
            found.append(frame)
    if atrn is not None:  # read when its line ends
        found += [x.end_frame or f for f, kind, x in events if kind == 1 and f > atrn][:1]
    first = min(found, default=None)
    return first if first is not None and _dpd_removes(d, first) else None


def _empty_line_after(d, kind: int, x) -> bool:
    """Does a line of this reply (of the greeting: ``kind`` 0) end in CR CR LF?  fastcap
    reads it as one line end and keeps the first CR in the text; Zeek's ContentLine ends
    the line at that CR and reads an empty line after it, a reply line whose code SMTP.cc
    finds out of range (an analyzer violation).  A reply keeps the text of its first and
    last lines; a line between them so ended is seen by its bytes (_cr_replies)."""
    if kind == 0:
        return any(line.endswith("\r") for line in (d.banner_text or "").split("\n"))
    return x.text.endswith("\r") or (x.last_text or "").endswith("\r")


def _cr_replies(d) -> set[int]:
    """The ids of the replies with a line ended by CR CR LF, from their lines' bytes
    (SmtpDialogue.zeek_texts keeps those of each line whose text ends in a CR)."""
    return {id(d.replies[n]) for n, _, raw in d.zeek_texts
            if 0 <= n < len(d.replies) and raw.endswith(b"\r")}


def _early_ends(d) -> dict[int, tuple[tuple[int, bytes, int | None], ...]]:
    """The client lines Zeek reads from a "." line it ends a message at where fastcap reads
    on (SmtpDialogue.zeek_lines: after a lone CR, or ended by one; SMTP smuggling), by the
    id of the DATA the message follows: the lines between it and the next command."""
    if not d.zeek_lines:
        return {}
    out: dict[int, tuple[tuple[int, bytes, int | None], ...]] = {}
    offsets = [c.offset for c in d.commands]
    for n, c in enumerate(d.commands):
        if c.verb == "DATA":
            stop = offsets[n + 1] if n + 1 < len(offsets) else None
            lines = tuple(z for z in d.zeek_lines
                          if z[0] > c.offset and (stop is None or z[0] < stop))
            if lines:
                out[id(c)] = lines
    return out


def _reply_parts(x, gap_line: int | None) -> list:
    """A reply as Zeek's SMTP analyzer reads it (_zeek_replies), with a gap before its line
    ``gap_line`` (a line the gap cut comes after the gap's report): the parts of its lines
    before the gap, None for the gap, then the parts of the lines from there on, of which
    the first continues the reply.  Only the first and last lines' texts are kept: a part's
    first and last text is the reply's last line's where not known (a middle line's text is
    never written, see smtp_transactions)."""
    if not gap_line:
        return _zeek_replies(x)
    changes = getattr(x, "code_changes", ())
    head = replace(x, lines=gap_line, last_text=None if gap_line == 1 else x.last_text,
                   end_frame=None, code_changes=tuple(c for c in changes if c[0] < gap_line))
    rest = x.lines - gap_line
    tail = replace(x, text=x.last_text or "", lines=rest,
                   last_text=x.last_text if rest > 1 else None,
                   code_changes=tuple((c[0] - gap_line, *c[1:]) for c in changes
                                      if c[0] > gap_line))
    return [*_zeek_replies(head), None, *_zeek_replies(tail)]


def _zeek_replies(x) -> list:
    """A reply as Zeek's SMTP analyzer reads it: a line whose code is not the one of the line
    before ends the reply and begins the next ("reply code does not match the continuing
    reply"), which answers the next command waiting.  Each part is the record with its
    code, line count and first and last lines' texts."""
    changes = getattr(x, "code_changes", ())
    if not changes:
        return [x]
    starts = [(0, x.code, x.text), *(c[:3] for c in changes)]
    parts = []
    for k, (first, code, text) in enumerate(starts):
        last = starts[k + 1][0] if k + 1 < len(starts) else x.lines
        tail = x.last_text if k + 1 == len(starts) else changes[k][3]
        parts.append(replace(x, code=code, text=text, lines=last - first,
                             last_text=tail if last - first > 1 else None, code_changes=()))
    return parts


def _with_wire_texts(d):
    """The dialogue with each reply line and command argument whose text holds a backslash
    read from its bytes (SmtpDialogue.zeek_texts, zeek_args), decoded as file names are (a
    byte that is no UTF-8 as a lone surrogate, which text_bytes gives back): the text keeps
    such a byte as "\\xHH", as a peer may type it, and Zeek writes a byte 0xFF as \\xff but a
    backslash doubled (SMTP.cc hands smtp_request and smtp_reply the line's bytes)."""
    if d.zeek_args:
        commands = list(d.commands)
        for n, raw in d.zeek_args:
            if 0 <= n < len(commands):
                commands[n] = replace(commands[n],
                                      arg=raw.decode("utf-8", "surrogateescape"))
        d = replace(d, commands=tuple(commands))
    if not d.zeek_texts:
        return d
    by: dict[int, dict[int, str]] = {}
    for n, i, raw in d.zeek_texts:
        by.setdefault(n, {})[i] = raw.decode("utf-8", "surrogateescape")
    replies = list(d.replies)
    for n, texts in by.items():
        if 0 <= n < len(replies):
            r = replies[n]
            replies[n] = replace(
                r, text=texts.get(0, r.text),
                last_text=None if r.last_text is None else texts.get(r.lines - 1, r.last_text),
                code_changes=tuple((i, code, texts.get(i, text), texts.get(i - 1, before))
                                   for i, code, text, before in r.code_changes))
    banner = d.banner_text
    if -1 in by and banner is not None:
        banner = "\n".join(by[-1].get(i, t) for i, t in enumerate(banner.split("\n")))
    return replace(d, replies=tuple(replies), banner_text=banner)


def _with_tails(d):
    """The dialogue with the binary bytes after a gap that Zeek's ContentLine joins to the
    reply line the gap cut (SmtpDialogue.zeek_tails) joined to that line's text, as the
    bytes they are (escaped by the writer), the first NUL left out: ContentLine drops the
    first NUL of a direction (SetIsNULSensitive: it only flags it)."""
    if not d.zeek_tails:
        return d
    replies = list(d.replies)
    cut = [n for n, r in enumerate(replies) if r.gap_line is not None]
    for at, data in d.zeek_tails:
        n = max((k for k in cut if replies[k].offset <= at), default=None,
                key=lambda k: replies[k].offset)
        if n is None:
            continue
        r = replies[n]
        tail = data.replace(b"\0", b"", 1).decode("utf-8", "surrogateescape")
        if r.gap_line == 0:  # its first line
            replies[n] = replace(r, text=r.text + tail)
        elif r.gap_line == r.lines - 1:  # its last line
            replies[n] = replace(r, last_text=(r.last_text or "") + tail)
    return replace(d, replies=tuple(replies))


def smtp_transactions(s: Session) -> list[_Transaction]:
    """The session's smtp.log lines, by the rules of Zeek's base/protocols/smtp/main.zeek
    applied to its plaintext dialogue (and, with keys, to the dialogue inside TLS after it):
    ``trans_depth`` is one more than the messages whose end the server answered before the
    line was begun (a MAIL FROM with no answered message before it does not count one);
    ``last_reply`` the last reply line since it was begun, so a multi-line reply to the
    message's end leaves its first line there, and each of its lines counts a message
    (SMTP.cc names every line of a reply by the command it answers, and main.zeek counts
    each line answering "."), where the reply to a last BDAT chunk counts one, at its last
    line;
    ``helo`` the last HELO or EHLO argument in plaintext, whole.  A line whose end came at
    or past the frame Zeek reads as another connection's (``tcp.zeek_cut``) is not read: the
    line open then is written when Zeek removes the connection."""
    d = s.smtp
    if d is None or d.implicit_tls or not (d.banner_code or d.commands or d.replies):
        return []
    d = _with_tails(_with_wire_texts(d))
    done: list[_Transaction] = []
    messages = 0
    helo: str | None = None
    tls = False  # once STARTTLS is accepted, the lines after it (with keys) are over TLS
    bdat_last = False  # a BDAT ... LAST sent: the reply to it ends the message
    cur: _Transaction | None = None

    def begin(frame: int | None) -> _Transaction:
        return _Transaction(frame, messages + 1, helo, tls=tls)

    def flush(frame: int | None, kept: _Transaction) -> _Transaction:
        """Zeek's smtp_message: the line written and a new one begun, if the client did
        something in it; else the same line goes on (its ts and replies kept)."""
        if not kept.active:
            return kept
        done.append(kept)
        return begin(frame)

    paired, started = _zeek_pairing(d, True)
    dialogues = [(d, True, paired)]
    if started and s.smtp_tls is not None:  # the dialogue inside TLS: no greeting there
        tls_d = _with_wire_texts(s.smtp_tls)
        dialogues.append((tls_d, False, _zeek_pairing(tls_d, False)[0]))
    cut = s.tcp.zeek_cut
    for dd, plain, events in dialogues:
        for frame, kind, x, answers in events:
            # Zeek acts on a line when its line ending arrives: the time of that packet
            when = (dd.banner_end_frame if kind == 0 else x.end_frame) or frame or None
            if cut is not None and when is not None and when >= cut:
                continue  # another connection's to Zeek, a partial one: not read
            if cur is None:
                cur = begin(when)
            if kind == 0:  # the greeting: each line a reply, the last one kept
                text = (dd.banner_text or "").rpartition("\n")[2]
                cur.last_reply = f"{dd.banner_code} {text.lstrip(_BLANK).rstrip(_CR)}"
            elif kind == 1:
                # a line ended by CR CR LF: fastcap keeps its first CR, Zeek ends it there
                verb, arg = x.verb, x.arg.rstrip(_CR)
                if verb in ("HELO", "EHLO") and plain:
                    helo = cur.helo = arg
                elif verb == "RCPT" and _RCPT_TO.match(arg):
                    found = cur.rcptto if cur.rcptto is not None else []
                    for a in dict.fromkeys(_ORCPT.sub("", e) for e in _emails(arg)):
                        if len(found) >= _MAX_RCPTTO:  # smtp_too_many_rcptto_addresses
                            break
                        if a not in found:
                            found.append(a)
                    cur.rcptto, cur.active = found, True
                elif verb == "BDAT" and arg.endswith(" LAST"):  # as Zeek: case and all
                    bdat_last = True
                elif verb == "MAIL" and _MAIL_FROM.match(arg):
                    cur = flush(when, cur)  # the last message's answer may not have been seen
                    if first := next(iter(_emails(arg)), None):
                        cur.mailfrom = first
                    cur.active = True
            else:
                if plain and x.code == 220 and answers in ("STARTTLS", "X-ANONYMOUSTLS"):
                    tls = cur.tls = cur.active = True
                count = x.lines
                for n in range(1, count + 1):
                    # a middle line's text is never written: the next line overwrites it,
                    # or (a message's end) it falls on a line begun after the written one
                    line = x.text if n == 1 or x.last_text is None else x.last_text
                    cur.last_reply = f"{x.code} {line.lstrip(_BLANK).rstrip(_CR)}"
                    # the message's end answered: every line of the reply to its final
                    # dot; the last line of the reply to the last BDAT chunk
                    if answers == "END_OF_DATA" or (
                            answers == "BDAT" and bdat_last and n == count):
                        messages += 1
                        bdat_last = False
                        flush(when, cur)  # written, and a new line begun
                        cur = begin(when)
    if cur is not None and cur.active:
        done.append(cur)
    return done


def smtp_rows(s: Session, path: str) -> list[tuple[list[object], int | None]]:
    """The session's smtp.log lines, each with the frame whose time is its ts (none when it
    had no plaintext SMTP: TLS from the first byte, or no SMTP seen, or no MAIL, RCPT or
    STARTTLS).  ts is the session's first frame's time until the writer reads that frame's."""
    conn = _conn(s, path)
    # fuids: no message body is read, so no file: an empty vector, Zeek's default
    return [([*conn[:6], t.depth, t.helo, t.mailfrom, t.rcptto or None,
              None, None, None, None, None, None, None, None, None, None, None,
              t.last_reply, [conn[4], conn[2]], None, t.tls, [], _codes(s)], t.frame)
            for t in smtp_transactions(s)]


# --- ssl.log ---------------------------------------------------------------------------------

def zeek_version(v: int | None) -> str | None:
    """Zeek's spelling of a TLS version: TLSv12, TLSv13, SSLv3, ..."""
    return version_name(v)


def zeek_cipher(code: int | None) -> str | None:
    """Zeek's spelling of a cipher suite (its ``SSL::cipher_desc``), else "unknown-" and the
    number in decimal."""
    return cipher_name(code)


# the letters of a TLS 1.3 handshake's plaintext records: hellos, change-cipher-specs, alerts
_TLS13_PLAIN = frozenset("cjsil")


def _history(s: Session) -> str:
    """ssl_history: the handshake's history (``TlsHandshake.history``, Zeek's letters) less
    what Zeek, which reads no encrypted record as a message, cannot letter: the Finished
    after ChangeCipherSpec (f), application data (d), an encrypted alert, and in TLS 1.3
    the encrypted handshake even where keys let fastcap read it."""
    t = s.tls
    assert t is not None
    tls13 = is_tls13(t.version)
    alerts = iter(t.alerts)  # one "l" each, in order
    out = []
    for letter in t.history:
        low = letter.lower()
        if low == "l":
            alert = next(alerts, None)
            if alert is not None and alert.encrypted:
                continue
        elif low in "fd" or (tls13 and low not in _TLS13_PLAIN):
            continue
        out.append(letter)
    return "".join(out)


def _chain_fps(server: list[bytes], client: list[bytes]
               ) -> tuple[list[str] | None, list[str] | None]:
    """cert_chain_fps and client_cert_chain_fps as Zeek fills them: it makes both vectors
    when the first certificate of either side arrives, so once one side sent one, the other
    side's is (empty) whether it sent an empty Certificate message or none; with no
    certificate at all, both are unset.  A certificate OpenSSL cannot read has no
    fingerprint there (Zeek takes them from x509.log's records)."""
    if not server and not client:
        return None, None
    # as Zeek's files.zeek: a fingerprint only of a certificate its X509 analyzer read
    return ([fp for d in server if (fp := _der_facts(bytes(d)).fingerprint)],
            [fp for d in client if (fp := _der_facts(bytes(d)).fingerprint)])


@dataclass(frozen=True, slots=True)
class _DerFacts:
    """What ssl.log reads of one certificate's DER, whichever session sent it."""

    loads: bool  # cryptography (OpenSSL's reading, through x509lenient) loads it
    names: tuple[str, str] | None  # subject and issuer in OpenSSL's text, if they read
    fingerprint: str | None  # SHA-256, when OpenSSL reads its structure (as Zeek's X509)


@functools.lru_cache(maxsize=1024)
def _der_facts(der: bytes) -> _DerFacts:
    """A capture's sessions send the same few certificates again and again, and loading one
    and printing its names cost most of an ssl.log line: read once per distinct DER."""
    cert = load_certificate(der)
    names = _names(cert) if cert is not None else _raw_names(der)
    readable = certificate_names(der) is not None
    return _DerFacts(cert is not None, names,
                     hashlib.sha256(der).hexdigest() if readable else None)


def _leaf(check, ders: list[bytes] | None) -> CertInfo | None:
    """The leaf's facts: those the judgement used, else read from the DER."""
    if check is not None and check.certs:
        return check.certs[0]
    return cert_info(ders[0]) if ders else None


def _names(cert: x509.Certificate | None) -> tuple[str, str] | None:
    """The certificate's subject and issuer as Zeek logs them (OpenSSL's RFC 2253 text);
    None when it did not load."""
    if cert is None:
        return None
    with quiet_x509():  # what is odd about a name is data here, not a warning
        try:
            return (openssl_name(cert.subject.public_bytes()),
                    openssl_name(cert.issuer.public_bytes()))
        except Exception:  # a name cryptography reads but this walk of its DER does not
            return None


def _raw_names(der: bytes) -> tuple[str, str] | None:
    """Subject and issuer as OpenSSL prints them, read from the DER of a certificate
    ``cryptography`` refuses but whose structure reads (a PrintableString holding a NUL)."""
    found = certificate_names(der)
    if found is None:
        return None
    try:
        return openssl_name(found[1]), openssl_name(found[0])
    except Exception:  # a name this walk of its DER does not read
        return None


def _subject_issuer(leaf: CertInfo | None, ders: list[bytes] | None
                    ) -> tuple[str | None, str | None]:
    if not ders:
        return (leaf.subject, leaf.issuer) if leaf is not None else (None, None)
    facts = _der_facts(bytes(ders[0]))
    if not facts.loads:  # as Zeek: unset when OpenSSL does not read the leaf
        return facts.names or (None, None)
    if facts.names is not None:
        return facts.names
    return (leaf.subject, leaf.issuer) if leaf is not None else (None, None)


def _sni_matches(sni: str | None, leaf: CertInfo | None) -> bool | None:
    if not sni or leaf is None:
        return None
    return name_matches(leaf, sni)


def _validation(s: Session) -> str | None:
    """As validate-certs logs it: "ok", else OpenSSL's reason for the server's chain."""
    c = s.server_check
    if c is None or c.path_valid is None:
        return None
    return "ok" if c.path_valid else (c.path_error or c.problem or "failed")


def ssl_frame(s: Session) -> int | None:
    """Where Zeek begins the connection's ssl.log record, its ts: the frame completing the
    first TLS record (Zeek reads records whole), else that of the first TLS message,
    change-cipher-spec or plaintext alert (the ClientHello's, as a rule)."""
    t = s.tls
    if t is None:
        return None
    wheres = (t.client_hello_at, t.server_hello_at, t.server_certs_at, t.cert_request_at,
              t.server_key_exchange_at, t.server_hello_done_at, t.client_certificate_at,
              t.client_key_exchange_at, t.certificate_verify_at, t.client_ccs_at,
              t.server_ccs_at, *(a.at for a in t.alerts if not a.encrypted))
    frames = [w.frame for w in wheres if w is not None and w.frame is not None]
    if t.first_record_frame is not None:
        frames.append(t.first_record_frame)
    return min(frames, default=None)


def ssl_row(s: Session, path: str) -> list[object] | None:
    """The session's TLS handshake; None when it had none: also when STARTTLS was accepted
    but no TLS record followed, or when only records Zeek reads no message from were seen (a
    capture that joined the connection after its handshake: application data only), as Zeek,
    which then starts no ssl.log record, logs no line."""
    t = s.tls
    if t is None or not t.history:
        return None
    history = _history(s)
    if not history:
        return None
    if s.roles_turned:
        # after TURN the connection's responder sends the ClientHello: Zeek's SSL analyzer
        # flips its sides there (ssl_connection_flipped), its "^" before the letters, which
        # like the two chains go by the TLS roles, as fastcap's do
        history = "^" + history
    sh = t.server_hello
    last_alert = next((a for a in reversed(t.alerts) if a.description is not None), None)
    server_ders = t.server_certs if t.server_certs_at else None
    server_leaf = _leaf(s.server_check, server_ders)
    client_leaf = _leaf(s.client_check, t.client_certificate or None)
    # Zeek's curve: a TLS 1.3 server's key share, else an ECDHE ServerKeyExchange's curve
    group = sh.group if sh is not None and sh.group is not None else t.server_key_exchange_group
    return [*_conn(s, path), zeek_version(t.version),
            zeek_cipher(t.cipher),
            group_name(group), _wire(t.sni), t.resumption is not None,
            alert_name(last_alert.description if last_alert else None),
            _wire(sh.alpn if sh is not None else None), t.outcome == "completed", history,
            *_chain_fps(list(server_ders or ()), list(t.client_certificate or ())),
            *_subject_issuer(server_leaf, server_ders),
            *_subject_issuer(client_leaf, t.client_certificate),
            _sni_matches(t.sni, server_leaf if server_ders and _der_facts(
                bytes(server_ders[0])).loads else None),
            _validation(s), _codes(s)]


def _wire(name: str | None) -> bytes | None:
    """A hello's name as the bytes it was sent as, for Zeek's own escaping (the text fastcap
    keeps is escaped already: written as it is, each backslash would be doubled)."""
    return None if name is None else wire_bytes(name)


# --- x509.log --------------------------------------------------------------------------------

# OpenSSL's names of the ML-DSA algorithms (FIPS 204), for key and signature alike
_ML_DSA = {"2.16.840.1.101.3.4.3.17": "ML-DSA-44", "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
           "2.16.840.1.101.3.4.3.19": "ML-DSA-87"}
_KEY_ALGS = {"1.2.840.113549.1.1.1": "rsaEncryption", "1.2.840.10045.2.1": "id-ecPublicKey",
             "1.2.840.10040.4.1": "dsaEncryption", "1.3.101.112": "ED25519",
             "1.3.101.113": "ED448", "1.2.840.113549.1.1.10": "rsassaPss", **_ML_DSA}
# Zeek names RSA, EC and DSA keys itself, any other by OpenSSL's key type name
_KEY_TYPES = {"RSA": "rsa", "EC": "ecdsa", "DSA": "dsa", "Ed25519": "ED25519", "Ed448": "ED448"}
_CURVES = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}  # OpenSSL's short names


@dataclass(frozen=True, slots=True)
class CertRow:
    """One x509.log line: a certificate in one role, when first seen in it.  As in Zeek,
    ``host_cert`` is the first certificate of a Certificate message (the end entity, not
    one of the chain after it) and ``client_cert`` one the client sent; a certificate seen
    in two roles is two lines."""

    der: bytes
    ts_ns: int  # the time of its Certificate message's frame, once the writer has read it
    host_cert: bool
    client_cert: bool


def _serial(n: int | None) -> str | None:
    """As OpenSSL prints a serial: upper-case hex, whole bytes."""
    if n is None:
        return None
    text = format(abs(n), "X")
    text = "0" * (len(text) % 2) + text
    return "-" + text if n < 0 else text


def x509_row(row: CertRow) -> list[object]:
    info = cert_info(row.der)
    fp = hashlib.sha256(row.der).hexdigest()
    cert = load_certificate(row.der)
    if cert is None:  # OpenSSL reads its structure: what can be read without cryptography
        subject, issuer = _raw_names(row.der) or (None, None)
        return [row.ts_ns, fp, None, None, subject, issuer, *[None] * 14, row.host_cert,
                row.client_cert]
    with quiet_x509():  # what is odd about the certificate is data here, not a warning
        return _x509_values(row, info, fp, cert)


def _x509_values(row: CertRow, info: CertInfo, fp: str, cert: x509.Certificate
                 ) -> list[object]:
    """x509_row of a certificate that loads: a field it cannot read is written unset."""
    version = serial = key_alg = exponent = curve = oid = None
    uri: list[str] = []
    email: list[str] = []
    path_len = None
    try:
        version = cert.version.value + 1
        serial = _serial(cert.serial_number)
        oid = cert.public_key_algorithm_oid.dotted_string
        key_alg = _KEY_ALGS.get(oid, oid)
    except Exception:  # malformed fields: written unset
        pass
    try:
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            exponent = str(key.public_numbers().e)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            curve = _CURVES.get(key.curve.name, key.curve.name)
    except Exception:  # an algorithm cryptography does not know
        pass
    try:
        exts = x509lenient.extensions(cert)[0]
        san = exts.get_extension_for_class(x509.SubjectAlternativeName).value
        uri = san.get_values_for_type(x509.UniformResourceIdentifier)
        email = san.get_values_for_type(x509.RFC822Name)
    except Exception:  # absent or malformed
        pass
    try:
        bc = x509lenient.extensions(cert)[0].get_extension_for_class(x509.BasicConstraints).value
        path_len = bc.path_length
    except Exception:  # absent or malformed
        pass
    subject, issuer = _names(cert) or (info.subject, info.issuer)  # the one already loaded
    key_type, key_bits = _KEY_TYPES.get(info.key_type or "", None), info.key_bits
    ml_dsa = _ML_DSA.get(oid or "")
    if ml_dsa is not None:  # OpenSSL: the type's name, and the public key's size in bits
        key_type, key_bits = ml_dsa, _public_key_bits(row.der)
    sig_alg = info.signature_algorithm
    return [row.ts_ns, fp, version, serial, subject, issuer,
            _ns(info.not_before), _ns(info.not_after), key_alg, _ML_DSA.get(sig_alg, sig_alg),
            key_type, key_bits, exponent, curve,
            list(info.san_dns) or None, uri or None, email or None, list(info.san_ip) or None,
            info.is_ca, path_len, row.host_cert, row.client_cert]


def _public_key_bits(der: bytes) -> int | None:
    """The bits of the certificate's subjectPublicKey (its BIT STRING less the unused-bits
    byte), read from the DER: what OpenSSL reports as an ML-DSA key's size."""
    try:
        _, start, end = element(der, 0, len(der))  # Certificate
        _, start, end = element(der, start, end)  # TBSCertificate
        fields = elements(der, start, end, 16)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _, _, a, b = fields[5]  # serial, signature, issuer, validity, subject, SPKI
        (_, _, _, _), (tag, _, k0, k1) = elements(der, a, b, 2)
        return (k1 - k0 - 1) * 8 if tag == 0x03 and k1 > k0 else None
    except (IndexError, ValueError):  # not the DER of a certificate
        return None


def certificate_names(der: bytes) -> tuple[bytes, bytes] | None:
    """The issuer's and subject's DER of a certificate whose DER reads as X.509's
    (Certificate, TBSCertificate and its fields by their tags); None when it does not, and
    OpenSSL, so Zeek, does not read it either: Zeek then logs no x509.log line and no
    fingerprint for it."""
    try:
        tag, start, end = element(der, 0, len(der))  # Certificate
        outer = elements(der, start, end, 3)
        if tag != 0x30 or [t for t, *_ in outer] != [0x30, 0x30, 0x03]:
            return None
        fields = elements(der, outer[0][2], outer[0][3], 16)  # TBSCertificate
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        if [t for t, *_ in fields[:6]] != [0x02, 0x30, 0x30, 0x30, 0x30, 0x30]:
            return None
        validity = elements(der, fields[3][2], fields[3][3], 2)
        if [t in (0x17, 0x18) for t, *_ in validity] != [True, True]:
            return None
        (_, i0, _, i1), (_, s0, _, s1) = fields[2], fields[4]
        return der[i0:i1], der[s0:s1]
    except ValueError:  # cut short, or not DER
        return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ns(t: dt.datetime | None) -> int | None:
    if t is None:
        return None
    t = t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
    return (t - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def zeek_reads(s: Session) -> bool:
    """Whether Zeek reads the connection's bytes at all: not when it is partial
    (TCPSessionAdapter::SetPartialStatus): its client's first packet no SYN and no SYN-ACK
    seen, as a capture that began after the connection did, or its server's first packet no
    SYN, as a bare ACK some stacks send before their SYN-ACK (the state machine lets that
    ACK pass, UpdateInactiveState, but the connection stays partial) or a SYN-ACK the
    capture missed.  Its SMTP line reader and SSL analyzer then deliver nothing
    (ContentLine_Analyzer::DeliverStream skips a partial connection, as SSL_Analyzer's
    does), so it has no line in any of the three logs."""
    return s.tcp.client_by == "syn" and s.tcp.zeek_server_syn


def _gap_known_at(t) -> int | None:
    """The last frame Zeek's SSL analyzer reads of the connection: after a content gap in
    either direction (SSL_Analyzer::Undelivered) it delivers nothing more of either.  Zeek
    learns of the gap when the peer acknowledges the lost bytes, taken here as the peer's
    first packet after the last one before the gap (the server's bytes coming no earlier
    than the ClientHello they answer): the last frame read is that one.  None: no gap, or
    a handshake read without frames."""
    if not any(f is not None for f in t.history_frames):
        return None
    hello = t.client_hello_at.frame if t.client_hello_at is not None else None
    frames = [max(x.at.frame or 0, 0 if x.from_client else hello or 0)
              for x in t.stops if x.reason == "gap"]
    return min(frames, default=None)


def _cut(where, last: int):
    """``where`` (a Where, or None) if Zeek read it by frame ``last``, else None."""
    return where if where is not None and (where.frame is None or where.frame <= last) else None


def zeek_view(s: Session) -> Session:
    """The session as Zeek's SSL analyzer reads its TLS: the handshake's messages, alerts and
    certificates up to the frame a content gap stops it at (_gap_known_at), in both
    directions, and before the frame Zeek reads as another connection's (``tcp.zeek_cut``,
    a partial connection whose bytes it does not read); a certificate it did not read is
    neither logged nor validated."""
    t = s.tls
    if t is None:
        return s
    cut = s.tcp.zeek_cut
    ends = [f for f in (_gap_known_at(t), None if cut is None else cut - 1)
            if f is not None]
    if not ends:
        return s
    last = min(ends)
    keep = [f is None or f <= last for f in t.history_frames]
    history = "".join(c for c, k in zip(t.history, keep, strict=False) if k)
    sh_at, server_at = _cut(t.server_hello_at, last), _cut(t.server_certs_at, last)
    client_at = _cut(t.client_certificate_at, last)
    marks = (t.client_ccs_at, t.server_ccs_at, t.client_finished_at, t.server_finished_at)
    done = t.outcome == "completed" and all(m is None or _cut(m, last) for m in marks)
    view = replace(
        t, history=history, history_frames=tuple(f for f, k in zip(
            t.history_frames, keep, strict=False) if k),
        server_hello=t.server_hello if sh_at else None, server_hello_at=sh_at,
        version=t.version if sh_at else None, cipher=t.cipher if sh_at else None,
        server_certs=t.server_certs if server_at else (), server_certs_at=server_at,
        client_certificate=t.client_certificate if client_at else None,
        client_certificate_at=client_at,
        server_key_exchange_group=(t.server_key_exchange_group
                                   if _cut(t.server_key_exchange_at, last) else None),
        alerts=tuple(a for a in t.alerts if _cut(a.at, last)),
        outcome=t.outcome if done else "incomplete")
    return replace(s, tls=view, server_check=s.server_check if server_at else None,
                   client_check=s.client_check if client_at else None)


def zeek_reads_tls(s: Session) -> bool:
    """Whether Zeek gives the connection's TLS to its SSL analyzer: on a mail port, only
    at a 220 its SMTP analyzer pairs with STARTTLS (SMTP_Analyzer::StartTLS; no signature
    finds TLS after a greeting), so a handshake after a 220 it pairs with another command
    (a pipelined word it does not know, a gap) has no ssl.log or x509.log line.  TLS from
    the first byte (an implicit-TLS port, or no SMTP line at all) is found as it is."""
    d = s.smtp
    if d is None or d.implicit_tls or not (d.banner_code or d.commands or d.replies):
        return True
    return _zeek_pairing(d, True)[1]


# --- the three files -------------------------------------------------------------------------


class ZeekWriter:
    """Writes the three logs into ``directory`` (created if missing) as sessions come: each
    file is written beside its final name and moved over it only when complete, so a reader
    never sees half a log, and an earlier one is replaced whole.  A writer dropped before
    `close` (an error, an interrupt) removes its unfinished files."""

    def __init__(self, directory: str | os.PathLike, *, backend: str = "auto",
                 trust: str = "mozilla", ca_file: str | None = None) -> None:
        self.directory = Path(directory)
        # validate-certs.zeek's intermediate cache: the roots of the scan, loaded when first
        # needed, and the intermediates of the validated chains by their issuer's name
        self._trust = (trust, ca_file)
        self._analyzer = None
        self._intermediates: dict[bytes, tuple[bytes, ...]] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, tuple] = {}
        self._unfinished: list[tuple] = []  # (file, temporary path), removed unless closed
        self._discard = weakref.finalize(self, _discard, self._unfinished)
        # by SHA-256, host_cert and client_cert, in the order first seen
        self._certs: dict[tuple[bytes, bool, bool], CertRow] = {}
        self.lines = {name: 0 for name in LOGS}
        # the current file's lines and new certificates, held until the times of the frames
        # they are dated by are read (one more walk of the file, as the report's ladders);
        # the lines wait in an anonymous temporary file, so memory stays flat
        self._backend = backend
        self._path: str | None = None
        self._spool: BinaryIO | None = None
        self._wanted: set[int] = set()
        self._held_certs: list[tuple[tuple[bytes, bool, bool], int | None]] = []
        self._then: dict[str, None] = {}
        try:
            self._spool = tempfile.TemporaryFile()
            self._unfinished.append((self._spool, None))
            for name, fields in LOGS.items():
                tmp = self.directory / f".{name}.log.{os.getpid()}.{secrets.token_hex(4)}.tmp"
                # as any new file: mode 0666 less the umask (mkstemp would make it private)
                f = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
                self._unfinished.append((f, tmp))
                self._files[name] = (f, tmp, tuple(t for _, t in fields))
                f.write(header_bytes(name, (n for n, _ in fields), (t for _, t in fields)))
        except BaseException:
            self.abort()
            raise

    def add(self, s: Session, path: str) -> None:
        """One session's smtp.log and ssl.log lines; its certificates kept for x509.log.  The
        lines are written once the file's sessions are all in (when another file's come, or
        at `close`): their ts is the time of a frame read again then."""
        if path != self._path:
            self._flush()
            self._path = path
        self._then.update(dict.fromkeys(s.continues_into))
        if not zeek_reads(s):
            return
        for row, frame in smtp_rows(s, path):
            self._hold("smtp", row, frame)
        if not zeek_reads_tls(s):
            return
        s = zeek_view(s)
        row = ssl_row(s, path)
        if row is not None:
            row[_VALIDATION] = self._validation_status(s, row[_VALIDATION])
            self._hold("ssl", row, ssl_frame(s))
        t = s.tls
        if t is not None:
            for ders, client, at in ((t.server_certs, False, t.server_certs_at),
                                     (t.client_certificate or (), True,
                                      t.client_certificate_at)):
                for i, der in enumerate(ders):
                    key = (hashlib.sha256(der).digest(), i == 0, client)
                    if key not in self._certs and certificate_names(der) is not None:
                        self._certs[key] = CertRow(der, s.first_ts_ns, i == 0, client)
                        self._held_certs.append((key, None if at is None else at.frame))
                        if at is not None and at.frame:
                            self._wanted.add(at.frame)

    def _validation_status(self, s: Session, status: str | None) -> str | None:
        """validation_status as validate-certs.zeek finds it: the intermediates of an earlier
        chain it validated (more than two certificates) tried first, by the name of the
        leaf's issuer, then the chain sent; a validated chain's intermediates kept."""
        t = s.tls
        ders = list(t.server_certs) if t is not None and t.server_certs_at else []
        names = certificate_names(bytes(ders[0])) if ders else None
        if status is None or names is None:
            return status
        cached = self._intermediates.get(names[0])
        if cached is not None and status != "ok":
            if self._analyzer is None:
                self._analyzer = Analyzer(trust_store(*self._trust))
            at = (dt.datetime.fromtimestamp(s.first_ts_ns // 10**9, dt.UTC)
                  if s.first_ts_ns else self._analyzer.today)
            if self._analyzer.check([bytes(ders[0]), *cached], role="server", at=at).path_valid:
                return "ok"
        path = s.server_check.path_sha256 if s.server_check is not None else ()
        if status == "ok" and len(path) > 2 and len(self._intermediates) < _MAX_CACHED:
            sent = {hashlib.sha256(bytes(d)).hexdigest(): bytes(d) for d in ders}
            chain = tuple(sent.get(fp) for fp in path[1:-1])
            first = certificate_names(chain[0]) if None not in chain else None
            if first is not None:
                self._intermediates.setdefault(first[1], chain)
        return status

    def _hold(self, name: str, row: list[object], frame: int | None) -> None:
        """A line, with the session's first frame's time, spooled until its file is done."""
        _, _, types = self._files[name]
        line = row_bytes(row, types)
        self._spool.write(_HELD.pack(_LOG_NUMBERS[name], frame or 0, len(line)) + line)
        if frame:
            self._wanted.add(frame)

    def _flush(self) -> None:
        """Date the held lines by their frames' times (a frame not found, or without a time,
        leaves the session's first frame's) and write them."""
        wanted, held_certs, path, spool = self._wanted, self._held_certs, self._path, self._spool
        self._wanted, self._held_certs = set(), []
        times: dict[int, int] = {}
        if wanted and path is not None and path != "-":  # standard input is read once
            try:
                times = frame_times(path, wanted, backend=self._backend, then=list(self._then))
            except (FastcapError, OSError):  # read once already: the first frames' times stand
                times = {}
        self._then = {}
        end = spool.tell()
        spool.seek(0)
        while spool.tell() < end:
            number, frame, size = _HELD.unpack(spool.read(_HELD.size))
            line = spool.read(size)
            if frame in times:  # the first field is ts, and no line starts with "#"
                line = zeek_time(times[frame]) + line[line.index(b"\t"):]
            f, _, _ = self._files[_LOGS_BY_NUMBER[number]]
            f.write(line)
            self.lines[_LOGS_BY_NUMBER[number]] += 1
        spool.seek(0)
        spool.truncate()
        for key, frame in held_certs:
            if frame in times:
                self._certs[key] = replace(self._certs[key], ts_ns=times[frame])

    def _write(self, name: str, row: list[object]) -> None:
        f, _, types = self._files[name]
        f.write(row_bytes(row, types))
        self.lines[name] += 1

    def close(self) -> list[Path]:
        """Write x509.log's lines and every #close line, then put the files in place."""
        self._flush()
        for row in self._certs.values():
            self._write("x509", x509_row(row))
        done = []
        for name, (f, tmp, _) in self._files.items():
            f.write(close_bytes())
            f.close()
            target = self.directory / f"{name}.log"
            os.replace(tmp, target)
            done.append(target)
            self._unfinished.remove((f, tmp))
        self._files.clear()
        self._discard()  # the spool
        return done

    def abort(self) -> None:
        """Drop the unfinished files; earlier logs in the directory stay as they were."""
        self._held_certs = []
        self._files.clear()
        self._discard()

    def __enter__(self) -> ZeekWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _discard(unfinished: list[tuple]) -> None:
    for f, tmp in unfinished:
        f.close()
        if tmp is None:  # an anonymous file: gone once closed
            continue
        try:
            os.unlink(tmp)
        except OSError:
            pass
    unfinished.clear()


def write_zeek(results: Iterable[tuple[str, Iterable[Session], object]],
               directory: str | os.PathLike, *, backend: str = "auto") -> list[Path]:
    """Every session of `results` ((path, sessions, summary) per file) as Zeek logs in
    `directory`; returns the paths written."""
    writer = ZeekWriter(directory, backend=backend)
    try:
        for path, sessions, _summary in results:
            for s in sessions:
                writer.add(s, path)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
