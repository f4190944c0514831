"""fastcap.proto.smtp: realistic dialogues, chunking invariance, arbitrary bytes, gaps, secrets."""

from __future__ import annotations

import base64
import json
from bisect import bisect_right
from contextlib import ExitStack
from dataclasses import dataclass, field
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.proto import smtp
from fastcap.proto.smtp import (
    NEED_DATA,
    Anomaly,
    AuthResponse,
    Banner,
    Closed,
    Command,
    CutStart,
    DataBody,
    Gap,
    Reply,
    SmtpConversation,
    SmtpDialogue,
    StartTls,
    dialogue,
    machine,
    parse,
    parse_dialogue,
)
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import converse

from .workcount import Tally, python_lines

# -- builders ------------------------------------------------------------------------------


@dataclass
class Stream:
    """A reassembled direction as the reassembler will hand it over."""

    data: bytes = b""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # segment start offsets
    frames: list[int] = field(default_factory=list)  # frame number of each segment

    def frame_at(self, offset: int) -> int | None:
        if not 0 <= offset < len(self.data):
            return None
        i = bisect_right(self.starts, offset) - 1
        return self.frames[i] if i >= 0 else None

    def punch(self, offset: int, size: int) -> Stream:
        """Lose [offset, offset+size) as a capture would: zeroed bytes plus a gap entry."""
        data = self.data[:offset] + bytes(size) + self.data[offset + size :]
        return Stream(data, [*self.gaps, (offset, size)], self.starts, self.frames)


def session(*msgs: tuple[str, bytes], first_frame: int = 4) -> tuple[Stream, Stream]:
    """Messages in wire order ("c" client, "s" server); each one is one frame."""
    c2s, s2c = Stream(), Stream()
    for i, (who, data) in enumerate(msgs):
        st_ = c2s if who == "c" else s2c
        st_.starts.append(len(st_.data))
        st_.frames.append(first_frame + i)
        st_.data += data
    return c2s, s2c


def drain(conv: SmtpConversation) -> list:
    out = []
    while (ev := conv.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def pieces(s: Stream, sizes: list[int] | None = None, explicit_gaps: bool = True,
           start: int = 0) -> list:
    """A stream cut into ("data", offset, bytes) / ("gap", offset, size) steps, then EOF;
    read from ``start`` (a CutStart offset): what lies before is not there."""
    steps: list = []
    pos, k = start, 0
    gaps = sorted((max(o, start), o + n - max(o, start)) for o, n in s.gaps if o + n > start)
    bounds = [*gaps, (len(s.data), 0)]
    for goff, gsize in bounds:
        while pos < goff:
            n = goff - pos if not sizes else min(sizes[k % len(sizes)], goff - pos)
            k += 1
            steps.append(("data", pos, s.data[pos : pos + n]))
            pos += n
        if gsize:
            if explicit_gaps or goff + gsize >= len(s.data):
                steps.append(("gap", goff, gsize))
            pos = max(pos, goff + gsize)
    steps.append(("eof", pos, b""))
    return steps


def run(schedule: list, implicit_tls: bool = False, drain_each: bool = True,
        cut: CutStart | None = None, frames: tuple[Stream, Stream] | None = None) -> list:
    """``frames``: the (c2s, s2c) streams whose frame_at the conversation is given, as
    parse_dialogue gives it."""
    frame_at = None if frames is None else (frames[0].frame_at, frames[1].frame_at)
    conv = SmtpConversation(implicit_tls=implicit_tls, cut=cut, frame_at=frame_at)
    out: list = []
    for d, (kind, off, data) in schedule:
        if kind == "data":
            conv.feed(d, data, off)
        elif kind == "gap":
            conv.feed_gap(d, off, data)
        else:
            conv.feed_eof(d)
        if drain_each:
            out += drain(conv)
    return out + drain(conv)


def whole(c2s: Stream, s2c: Stream, implicit_tls: bool = False, frames: bool = False) -> list:
    sched = [("c2s", p) for p in pieces(c2s)] + [("s2c", p) for p in pieces(s2c)]
    return run(sched, implicit_tls, frames=(c2s, s2c) if frames else None)


def dialogue_of(events: list, c2s: Stream, s2c: Stream) -> SmtpDialogue:
    return SmtpDialogue.from_events(events, c2s.frame_at, s2c.frame_at)


# -- realistic dialogues --------------------------------------------------------------------

BANNER = (
    b"220 contoso-com.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
    b"Mon, 15 Jan 2024 09:30:00 +0000\r\n"
)
EHLO = b"EHLO mail.fabrikam.com\r\n"
EHLO_REPLY = (
    b"250-contoso-com.mail.protection.outlook.com Hello [203.0.113.10]\r\n"
    b"250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"
)
DENIED = (
    b"550 5.7.64 TenantAttribution; Relay Access Denied [BN8NAM12FT041.eop-nam12.prod."
    b"protection.outlook.com 2024-01-15T09:30:01.123Z]\r\n"
)
CLIENT_HELLO = b"\x16\x03\x01\x00\x2c\x01\x00\x00\x28\x03\x03" + bytes(range(40))
SERVER_HELLO = b"\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03" + bytes(range(45))
BODY = (
    b"From: alerts@fabrikam.com\r\nTo: it@contoso.com\r\nSubject: nightly\r\n\r\n"
    b"MAIL FROM:<looks@like.a.command>\r\nQUIT\r\n..this line was dot-stuffed\r\n"
    b"..\r\nRCPT TO:<x@y>\r\n.\rnot an end\r\nAll systems nominal.\r\n"
)

PLAIN_SECRET = base64.b64encode(b"\0svc-relay@fabrikam.com\0S3cr3t!Pa55").decode()
LOGIN_USER = base64.b64encode(b"svc-relay@fabrikam.com").decode()
LOGIN_PASS = base64.b64encode(b"Hunter2-Passw0rd").decode()
GSSAPI_BLOB = base64.b64encode(bytes(range(256)) * 4).decode()  # > MAX_LINE once in a line
SECRETS = [PLAIN_SECRET, LOGIN_USER, LOGIN_PASS, GSSAPI_BLOB[:40], "S3cr3t", "Hunter2", "svc-relay"]


def starttls_accepted():
    return session(
        ("s", BANNER),
        ("c", EHLO),
        ("s", EHLO_REPLY),
        ("c", b"STARTTLS\r\n"),
        ("s", b"220 2.0.0 SMTP server ready\r\n"),
        ("c", CLIENT_HELLO),
        ("s", SERVER_HELLO),
    )


def starttls_refused_relay_denied():
    return session(
        ("s", BANNER),
        ("c", EHLO),
        ("s", EHLO_REPLY),
        ("c", b"STARTTLS\r\n"),
        ("s", b"454 4.7.0 TLS not available due to local problem\r\n"),
        ("c", b"MAIL FROM:<alerts@fabrikam.com> SIZE=2048\r\n"),
        ("s", b"250 2.1.0 Sender OK\r\n"),
        ("c", b"RCPT TO:<it@contoso.com>\r\n"),
        ("s", DENIED),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Service closing transmission channel\r\n"),
    )


def pipelined_data():
    return session(
        ("s", BANNER),
        ("c", EHLO),
        ("s", EHLO_REPLY),
        (
            "c",
            b"MAIL FROM:<a@fabrikam.com>\r\nRCPT TO:<b@contoso.com>\r\n"
            b"RCPT TO:<c@contoso.com>\r\nDATA\r\n",
        ),
        ("s", b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n" + DENIED),
        ("s", b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"),
        ("c", BODY + b".\r\nQUIT\r\n"),
        ("s", b"250 2.6.0 <1@fabrikam.com> Queued mail for delivery\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    )


def bdat_chunks():
    return session(
        ("s", BANNER),
        ("c", EHLO),
        ("s", EHLO_REPLY),
        (
            "c",
            b"MAIL FROM:<a@fabrikam.com> BODY=BINARYMIME\r\nRCPT TO:<b@contoso.com>\r\n"
            b"BDAT 21\r\nQUIT\r\nRSET\r\nDATA\r\n.\r\nBDAT 0 LAST\r\n",
        ),
        (
            "s",
            b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
            b"250 2.0.0 21 octets received\r\n250 2.6.0 Queued\r\n",
        ),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    )


def auth_session():
    return session(
        ("s", BANNER),
        ("c", EHLO),
        ("s", b"250-mx.contoso.com\r\n250-AUTH LOGIN PLAIN GSSAPI\r\n250 STARTTLS\r\n"),
        ("c", f"AUTH PLAIN {PLAIN_SECRET}\r\n".encode()),
        ("s", b"535 5.7.3 Authentication unsuccessful\r\n"),
        ("c", b"AUTH LOGIN\r\n"),
        ("s", b"334 VXNlcm5hbWU6\r\n"),
        ("c", f"{LOGIN_USER}\r\n".encode()),
        ("s", b"334 UGFzc3dvcmQ6\r\n"),
        ("c", f"{LOGIN_PASS}\r\n".encode()),
        ("s", b"235 2.7.0 Authentication successful\r\n"),
        ("c", f"X-EXPS GSSAPI {GSSAPI_BLOB}\r\n".encode()),
        ("s", b"334 <blob>\r\n"),
        ("c", f"{GSSAPI_BLOB}{GSSAPI_BLOB}\r\n".encode()),
        ("s", b"235 2.7.0 ok\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    )


SCENARIOS = {
    "accepted": starttls_accepted,
    "refused": starttls_refused_relay_denied,
    "pipelined": pipelined_data,
    "bdat": bdat_chunks,
    "auth": auth_session,
}


def test_exchange_online_starttls_accepted():
    c2s, s2c = starttls_accepted()
    d = parse_dialogue(c2s, s2c)
    assert d.banner_code == 220 and d.banner_frame == 4
    assert d.banner_host == "contoso-com.mail.protection.outlook.com"
    assert d.banner_names_exchange_online
    assert (d.ehlo_verb, d.ehlo_name, d.ehlo_frame) == ("EHLO", "mail.fabrikam.com", 5)
    assert d.capabilities[:3] == ("SIZE", "PIPELINING", "DSN") and "CHUNKING" in d.capabilities
    assert d.starttls_offered is True
    assert d.starttls_command_frame == 7
    assert d.starttls_reply is not None
    assert (d.starttls_reply.code, d.starttls_reply.enhanced, d.starttls_reply.frame) == (
        220,
        "2.0.0",
        8,
    )
    assert d.starttls_reply.text == "2.0.0 SMTP server ready"
    assert d.starttls_accepted is True
    tls_c2s = len(EHLO) + len(b"STARTTLS\r\n")
    tls_s2c = len(BANNER) + len(EHLO_REPLY) + len(b"220 2.0.0 SMTP server ready\r\n")
    assert (d.tls_c2s_offset, d.tls_s2c_offset) == (tls_c2s, tls_s2c)
    assert (d.tls_c2s_frame, d.tls_s2c_frame) == (9, 10)
    assert [c.verb for c in d.commands] == ["EHLO", "STARTTLS"]
    assert d.anomalies == () and d.gaps == () and d.relay_denied == () and d.closed

    conv = SmtpConversation()
    conv.feed("c2s", c2s.data[:40], 0)
    conv.feed("s2c", s2c.data, 0)
    evs = drain(conv)
    assert evs[-1] == StartTls(True, tls_c2s, tls_s2c)
    assert conv.take_tls_bytes("s2c") == SERVER_HELLO
    assert conv.take_tls_bytes("c2s") == CLIENT_HELLO[: 40 - tls_c2s]
    conv.feed("c2s", c2s.data[40:], 40)
    assert conv.take_tls_bytes("c2s") == CLIENT_HELLO[40 - tls_c2s :]
    assert conv.take_tls_bytes("c2s") == b""
    conv.feed_eof("c2s")
    assert drain(conv) == []
    conv.feed_eof("s2c")
    assert drain(conv) == [Closed()]
    assert conv.next_event() is NEED_DATA


def test_starttls_refused_then_tenant_attribution_denied():
    c2s, s2c = starttls_refused_relay_denied()
    evs = whole(c2s, s2c)
    starttls = [e for e in evs if isinstance(e, StartTls)]
    assert starttls == [StartTls(False, len(EHLO) + 10, len(BANNER) + len(EHLO_REPLY) + 50)]
    d = dialogue_of(evs, c2s, s2c)
    assert d == parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is False and d.starttls_offered is True
    assert d.starttls_reply is not None and d.starttls_reply.code == 454
    assert d.starttls_reply.enhanced == "4.7.0"
    assert d.tls_c2s_offset is None and d.tls_s2c_offset is None
    assert [(r.code, r.enhanced, r.frame, r.answers) for r in d.relay_denied] == [
        (550, "5.7.64", 12, "RCPT")
    ]
    assert d.relay_denied[0].text.startswith("5.7.64 TenantAttribution; Relay Access Denied")
    assert [(c.verb, c.arg, c.frame) for c in d.commands] == [
        ("EHLO", "mail.fabrikam.com", 5),
        ("STARTTLS", "", 7),
        ("MAIL", "FROM:<alerts@fabrikam.com> SIZE=2048", 9),
        ("RCPT", "TO:<it@contoso.com>", 11),
        ("QUIT", "", 13),
    ]
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "EHLO"),
        (454, "STARTTLS"),
        (250, "MAIL"),
        (550, "RCPT"),
        (221, "QUIT"),
    ]
    assert d.anomalies == () and d.closed
    json.dumps(d.to_dict())


def test_pipelining_pairs_fifo_and_body_is_skipped():
    c2s, s2c = pipelined_data()
    evs = whole(c2s, s2c)
    kinds = [
        (type(e).__name__, getattr(e, "verb", None) or getattr(e, "answers", None)) for e in evs
    ]
    assert kinds == [
        ("Banner", None),
        ("Command", "EHLO"),
        ("Reply", "EHLO"),
        ("Command", "MAIL"),
        ("Reply", "MAIL"),
        ("Command", "RCPT"),
        ("Reply", "RCPT"),
        ("Command", "RCPT"),
        ("Reply", "RCPT"),
        ("Command", "DATA"),
        ("Reply", "DATA"),
        ("DataBody", None),
        ("Reply", "END_OF_DATA"),
        ("Command", "QUIT"),
        ("Reply", "QUIT"),
        ("Closed", None),
    ]
    body = next(e for e in evs if isinstance(e, DataBody))
    body_off = c2s.data.index(BODY)
    assert body == DataBody(len(BODY), body_off)
    replies = [e for e in evs if isinstance(e, Reply)]
    assert replies[3].code == 550 and replies[3].enhanced == "5.7.64"
    assert replies[4].code == 354
    d = parse_dialogue(c2s, s2c)
    assert [c.verb for c in d.commands] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert d.message_bytes == len(BODY)
    assert [r.frame for r in d.relay_denied] == [8] and d.anomalies == ()
    # Pipelined commands share a frame; the replies to them share another.
    assert [c.frame for c in d.commands[1:5]] == [7, 7, 7, 7]
    assert [r.frame for r in d.replies[1:4]] == [8, 8, 8]


def test_bdat_chunks_skip_by_size():
    c2s, s2c = bdat_chunks()
    evs = whole(c2s, s2c)
    bodies = [e for e in evs if isinstance(e, DataBody)]
    chunk_off = c2s.data.index(b"QUIT\r\nRSET")
    last = chunk_off + 21 + len(b"BDAT 0 LAST\r\n")
    assert bodies == [DataBody(21, chunk_off), DataBody(0, last)]
    d = dialogue_of(evs, c2s, s2c)
    assert [(c.verb, c.arg) for c in d.commands] == [
        ("EHLO", "mail.fabrikam.com"),
        ("MAIL", "FROM:<a@fabrikam.com> BODY=BINARYMIME"),
        ("RCPT", "TO:<b@contoso.com>"),
        ("BDAT", "21"),
        ("BDAT", "0 LAST"),
        ("QUIT", ""),
    ]
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "EHLO"),
        (250, "MAIL"),
        (250, "RCPT"),
        (250, "BDAT"),
        (250, "BDAT"),
        (221, "QUIT"),
    ]
    assert d.anomalies == ()


def _assert_no_secrets(*objs) -> None:
    for obj in objs:
        text = repr(obj) + (json.dumps(obj.to_dict()) if isinstance(obj, SmtpDialogue) else "")
        for secret in SECRETS:
            assert secret not in text, secret


@pytest.mark.parametrize("one_sided", [False, True])
def test_auth_credentials_never_kept(one_sided):
    c2s, s2c = auth_session()
    if one_sided:  # the server side was not captured: pairing must guess, and still redact
        s2c = Stream()
    evs = whole(c2s, s2c)
    d = parse_dialogue(c2s, s2c)
    assert d == dialogue_of(evs, c2s, s2c)
    _assert_no_secrets(evs, d)
    assert [(c.verb, c.arg) for c in d.commands] == [
        ("EHLO", "mail.fabrikam.com"),
        ("AUTH", "PLAIN"),
        ("AUTH", "LOGIN"),
        ("X-EXPS", "GSSAPI"),
        ("QUIT", ""),
    ]
    responses = [e for e in evs if isinstance(e, AuthResponse)]
    assert [r.size for r in responses] == [
        len(LOGIN_USER) + 2,
        len(LOGIN_PASS) + 2,
        2 * len(GSSAPI_BLOB) + 2,
    ]
    if not one_sided:
        assert [(r.code, r.answers) for r in d.replies] == [
            (250, "EHLO"),
            (535, "AUTH"),
            (334, "AUTH"),
            (334, "AUTH_RESPONSE"),
            (235, "AUTH_RESPONSE"),
            (334, "AUTH"),
            (235, "AUTH_RESPONSE"),
            (221, "QUIT"),
        ]
        assert d.capabilities == ("AUTH", "STARTTLS")
    else:
        assert d.replies == () and d.banner_code is None
        assert {a.kind for a in d.anomalies} >= {"no_banner", "replies_missing"}


def test_credential_like_line_out_of_context_is_dropped():
    c2s, s2c = session(
        ("s", BANNER), ("c", f"{LOGIN_PASS}\r\n".encode()), ("s", b"500 5.5.2 unrecognized\r\n")
    )
    evs = whole(c2s, s2c)
    _assert_no_secrets(evs, parse_dialogue(c2s, s2c))
    assert any(isinstance(e, Anomaly) and e.kind == "credential_like_line" for e in evs)
    assert [e for e in evs if isinstance(e, Reply)][0].answers == "AUTH_RESPONSE"


def test_a_lone_cr_ends_a_line_as_zeeks_line_reader_does():
    """Zeek's SMTP analyzer keeps its ContentLine readers' default CR_as_EOL: a CR that no LF
    follows ends the line, so a client line and a reply line holding one are two lines each
    (as CRLF, a CR run before the LF stays one line end).  Fed whole or byte by byte."""
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", b"250 hi\r\n"),
        ("c", b"MAIL FROM:<a@contoso.com>\rRCPT TO:<b@fabrikam.com>\r\n"),
        ("s", b"250 2.1.0 ok\r250 2.1.5 ok\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert d == parse_dialogue(c2s, s2c, _general=True)
    sched = [("c2s", p) for p in pieces(c2s, [1])] + [("s2c", p) for p in pieces(s2c, [1])]
    assert dialogue_of(run(sched, frames=(c2s, s2c)), c2s, s2c) == d
    assert [(c.verb, c.arg) for c in d.commands] == [
        ("EHLO", "mail.fabrikam.com"), ("MAIL", "FROM:<a@contoso.com>"),
        ("RCPT", "TO:<b@fabrikam.com>"), ("QUIT", "")]
    assert [(r.code, r.text, r.answers) for r in d.replies] == [
        (250, "hi", "EHLO"), (250, "2.1.0 ok", "MAIL"), (250, "2.1.5 ok", "RCPT"),
        (221, "bye", "QUIT")]
    assert [(a.kind, a.direction) for a in d.anomalies] == [("bare_cr", "c2s"),
                                                            ("bare_cr", "s2c")]


def test_long_line_bare_lf_and_pairing_survive():
    long_arg = b"a" * 10_000
    c2s, s2c = session(
        ("s", b"220-mx.example.net ESMTP\r\n220-second line\r\n220 third\r\n"),
        ("c", b"HELO client\n"),
        ("s", b"250 mx.example.net\r\n"),
        ("c", b"NOOP " + long_arg + b"\r\n"),
        ("s", b"500 5.5.2 line too long\r\n"),
        ("c", b"quit\r\n"),
        ("s", b"221 bye\r\n"),
    )
    evs = whole(c2s, s2c)
    assert evs[0] == Banner(220, "mx.example.net ESMTP\nsecond line\nthird", 0)
    anomalies = [(e.kind, e.direction) for e in evs if isinstance(e, Anomaly)]
    assert anomalies == [("bare_lf", "c2s"), ("line_too_long", "c2s")]
    noop = next(e for e in evs if isinstance(e, Command) and e.verb == "NOOP")
    assert len(noop.arg) == smtp.MAX_LINE - 5
    d = dialogue_of(evs, c2s, s2c)
    assert [(r.code, r.answers) for r in d.replies] == [(250, "HELO"), (500, "NOOP"), (221, "QUIT")]
    assert d.capabilities == () and d.starttls_offered is False
    assert not d.banner_names_exchange_online


def test_server_only_capture_replies_unpaired():
    _, s2c = starttls_refused_relay_denied()
    d = parse_dialogue(Stream(), s2c)
    assert d.banner_names_exchange_online and d.commands == ()
    assert all(r.answers is None for r in d.replies) and len(d.replies) == 5
    assert [a.kind for a in d.anomalies] == ["reply_without_command"] * 5
    assert d.relay_denied[0].frame == 12 and d.closed


def test_implicit_tls_parses_no_smtp():
    c2s, s2c = session(("c", CLIENT_HELLO), ("s", SERVER_HELLO))
    evs = whole(c2s, s2c, implicit_tls=True)
    assert evs == [StartTls(True, 0, 0, implicit=True), Closed()]
    d = parse_dialogue(c2s, s2c, implicit_tls=True)
    assert d.implicit_tls and d.starttls_accepted is None
    assert (d.tls_c2s_offset, d.tls_s2c_offset, d.tls_c2s_frame, d.tls_s2c_frame) == (0, 0, 4, 5)
    conv = SmtpConversation(implicit_tls=True)
    conv.feed("c2s", CLIENT_HELLO, 0)
    assert conv.take_tls_bytes("c2s") == CLIENT_HELLO


def test_tls_on_port_25_without_starttls():
    c2s, s2c = session(("c", CLIENT_HELLO), ("s", SERVER_HELLO))
    d = parse_dialogue(c2s, s2c)
    assert [(a.kind, a.direction) for a in d.anomalies] == [
        ("unexpected_tls", "s2c"),
        ("no_banner", "s2c"),
        ("unexpected_tls", "c2s"),
    ]
    assert d.closed


XANON_EHLO_REPLY = EHLO_REPLY.replace(b"250-STARTTLS\r\n", b"250-X-ANONYMOUSTLS\r\n")


@pytest.mark.parametrize("general", [False, True])
def test_x_anonymoustls_hands_over_to_tls_as_starttls_does(general):
    """Exchange's X-ANONYMOUSTLS (its STARTTLS between its own servers): a 220 to it means
    TLS follows, so the handshake is read from there, not taken for SMTP lines."""
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", XANON_EHLO_REPLY), ("c", b"X-ANONYMOUSTLS\r\n"),
        ("s", b"220 2.0.0 SMTP server ready\r\n"), ("c", CLIENT_HELLO), ("s", SERVER_HELLO),
    )
    d = parse_dialogue(c2s, s2c, _general=general)
    assert d.starttls_accepted is True and d.anomalies == ()
    assert d.starttls_command_frame == 7 and d.starttls_reply.answers == "X-ANONYMOUSTLS"
    at = (len(EHLO) + 16, len(BANNER + XANON_EHLO_REPLY) + 29)  # after the command, the 220
    assert (d.tls_c2s_offset, d.tls_s2c_offset) == at
    assert (d.tls_c2s_frame, d.tls_s2c_frame) == (9, 10)
    assert StartTls(True, *at) in whole(c2s, s2c)


def _turned(*turn: tuple[str, bytes]) -> tuple[Stream, Stream]:
    """EHLO and a 250 to TURN, then ``turn`` (the new receiver's greeting and the new
    sender's HELO, in some order), then the new sender's MAIL and QUIT, each answered."""
    return session(
        ("s", BANNER), ("c", EHLO), ("s", b"250 hi\r\n"), ("c", b"TURN\r\n"),
        ("s", b"250 OK\r\n"), *turn, ("s", b"MAIL FROM:<x@contoso.com>\r\n"),
        ("c", b"250 ok\r\n"), ("s", b"QUIT\r\n"), ("c", b"221 bye\r\n"))


def test_after_a_250_to_turn_the_server_sends_the_commands():
    """RFC 821 §4.1.1: after a 250 to TURN the roles swap; the new receiver greets and the
    server's lines are commands (Zeek's SMTP analyzer swaps its sides there too).  Each
    record keeps the frame it was carried in, fed in one piece or byte by byte."""
    c2s, s2c = _turned(("c", b"220 relay ready\r\n"), ("s", b"HELO mx.contoso.com\r\n"),
                       ("c", b"250 hi\r\n"))
    fast, general = parse_dialogue(c2s, s2c), parse_dialogue(c2s, s2c, _general=True)
    sched = [("c2s", p) for p in pieces(c2s, [1])] + [("s2c", p) for p in pieces(s2c, [3])]
    folded = dialogue_of(run(sched, frames=(c2s, s2c)), c2s, s2c)
    assert fast == general == folded
    assert [(c.verb, c.frame) for c in general.commands] == [
        ("EHLO", 5), ("TURN", 7), ("HELO", 10), ("MAIL", 12), ("QUIT", 14)]
    assert [(r.code, r.answers, r.frame) for r in general.replies] == [
        (250, "EHLO", 6), (250, "TURN", 8), (220, None, 9), (250, "HELO", 11),
        (250, "MAIL", 13), (221, "QUIT", 15)]
    assert [(a.kind, a.frame) for a in general.anomalies] == [("roles_turned", 8)]
    # the sender's facts are the new sender's: the mail and its STARTTLS are its own
    assert (general.ehlo_verb, general.ehlo_name, general.ehlo_frame) == (
        "HELO", "mx.contoso.com", 10)
    assert general.starttls_offered is False and general.capabilities == ()
    assert general.closed


def test_after_turn_without_a_greeting_the_first_reply_answers_the_first_command():
    """Zeek's SMTP analyzer keeps no greeting to wait for after a 250 to TURN: a new receiver
    that answers the new sender's HELO without greeting first has that 250 answer HELO, and
    each reply after it the command it follows, not the one before."""
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", b"250 hi\r\n"), ("c", b"TURN\r\n"),
        ("s", b"250 OK\r\n"), ("s", b"HELO mx.contoso.com\r\n"), ("c", b"250 hi\r\n"),
        ("s", b"MAIL FROM:<x@contoso.com>\r\n"), ("c", b"250 ok\r\n"), ("s", b"QUIT\r\n"),
        ("c", b"221 bye\r\n"))
    fast, general = parse_dialogue(c2s, s2c), parse_dialogue(c2s, s2c, _general=True)
    sched = [("s2c", p) for p in pieces(s2c, [2])] + [("c2s", p) for p in pieces(c2s, [1])]
    folded = dialogue_of(run(sched, frames=(c2s, s2c)), c2s, s2c)
    assert fast == general == folded
    assert [(r.code, r.answers, r.frame) for r in general.replies] == [
        (250, "EHLO", 6), (250, "TURN", 8), (250, "HELO", 10), (250, "MAIL", 12),
        (221, "QUIT", 14)]
    assert [a.kind for a in general.anomalies] == ["roles_turned"]


def test_after_turn_a_late_greeting_answers_the_first_command_as_in_zeek():
    """Zeek's SMTP analyzer pairs replies in the order they were captured and keeps no
    greeting to wait for after a 250 to TURN: a new receiver whose 220 comes after the new
    sender's HELO has that 220 answer HELO, and the 250 after it answer nothing; the MAIL
    after them is paired as usual.  However the streams are fed."""
    c2s, s2c = _turned(("s", b"HELO mx.contoso.com\r\n"), ("c", b"220 relay ready\r\n"),
                       ("c", b"250 hi\r\n"))
    fast, general = parse_dialogue(c2s, s2c), parse_dialogue(c2s, s2c, _general=True)
    for sched in ([("s2c", p) for p in pieces(s2c, [2])] + [("c2s", p) for p in pieces(c2s, [1])],
                  [("c2s", p) for p in pieces(c2s, [3])] + [("s2c", p) for p in pieces(s2c)]):
        assert dialogue_of(run(sched, frames=(c2s, s2c)), c2s, s2c) == general
    assert fast == general
    assert [(c.verb, c.frame) for c in general.commands] == [
        ("EHLO", 5), ("TURN", 7), ("HELO", 9), ("MAIL", 12), ("QUIT", 14)]
    assert [(r.code, r.answers, r.frame) for r in general.replies] == [
        (250, "EHLO", 6), (250, "TURN", 8), (220, "HELO", 10), (250, None, 11),
        (250, "MAIL", 13), (221, "QUIT", 15)]
    assert [a.kind for a in general.anomalies] == ["roles_turned"] and general.closed


def test_x_anonymoustls_refused_is_named_in_the_verdict():
    from fastcap.judge.diagnose import _starttls_verdicts

    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", XANON_EHLO_REPLY), ("c", b"X-ANONYMOUSTLS\r\n"),
        ("s", b"454 4.7.0 TLS not available\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"),
    )
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is False and d.starttls_reply.code == 454
    (v,) = _starttls_verdicts(None, d)
    assert v.code == "starttls_refused" and "refused X-ANONYMOUSTLS (frame 8)" in v.message


def test_plaintext_after_starttls_is_flagged():
    c2s, s2c = session(
        ("s", BANNER), ("c", b"STARTTLS\r\nEHLO injected\r\n"), ("s", b"220 2.0.0 ready\r\n")
    )
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted and [(a.kind, a.direction) for a in d.anomalies] == [
        ("not_tls", "c2s")
    ]


def test_not_smtp_at_all():
    c2s, s2c = session(
        ("s", b"SSH-2.0-OpenSSH_9.6\r\n" + b"\x00\x01binary\n" * 20),
        ("c", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff\xfe\n" * 20),
    )
    d = parse_dialogue(c2s, s2c)
    kinds = [a.kind for a in d.anomalies]
    assert kinds.count("not_smtp") == 2 and "no_banner" in kinds and d.closed


def test_first_reply_that_is_not_a_greeting_answers_the_first_command():
    c2s, s2c = session(
        ("c", b"EHLO a\r\n"), ("s", b"250 hi\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n")
    )
    d = parse_dialogue(c2s, s2c)
    assert d.banner_code is None and [a.kind for a in d.anomalies] == ["no_banner"]
    assert [(r.code, r.answers) for r in d.replies] == [(250, "EHLO"), (221, "QUIT")]
    d = parse_dialogue(Stream(), Stream(b"421 4.3.2 Service not available\r\n", [], [0], [1]))
    assert (d.banner_code, d.banner_frame, d.anomalies) == (421, 1, ())


def test_waiting_for_names_the_direction_that_blocks():
    conv = SmtpConversation()
    assert conv.next_event() is NEED_DATA and conv.waiting_for == "s2c"
    conv.feed("c2s", EHLO)  # early talker: still waiting for the greeting
    assert conv.next_event() is NEED_DATA and conv.waiting_for == "s2c"
    conv.feed("s2c", BANNER[:10])
    conv.feed("s2c", BANNER[10:] + b"250 ok\r\n")
    assert [type(e) for e in drain(conv)] == [Banner, Command, Reply]
    assert conv.waiting_for == "c2s"
    conv.feed_eof("c2s")
    assert drain(conv) == [] and conv.waiting_for == "s2c"
    conv.feed_eof("s2c")
    assert drain(conv) == [Closed()] and conv.next_event() is NEED_DATA


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_synthetic_exchange_online_sessions(pki, name):
    """Real OpenSSL handshakes from fastcap_synth, laid out as the reassembler will hand them."""
    conv = converse(scenario(name, pki))
    c2s, s2c = session(*(("c" if m.from_client else "s", m.data) for m in conv.messages))
    d = parse_dialogue(c2s, s2c)
    assert d.banner_names_exchange_online and d.ehlo_name == "mail.fabrikam.com"
    assert d.anomalies == () and d.gaps == () and d.closed
    assert d.starttls_offered is (conv.starttls != "not_offered")
    assert d.starttls_accepted is {"accepted": True, "refused": False}.get(conv.starttls)
    if conv.starttls == "accepted":
        assert c2s.data[d.tls_c2s_offset] == s2c.data[d.tls_s2c_offset] == 0x16
        assert d.tls_c2s_frame == next(
            i + 4 for i, m in enumerate(conv.messages) if m.label == "tls-handshake"
        )
        assert d.relay_denied == ()  # it happened, but inside TLS
    else:
        assert d.tls_c2s_offset is None
        assert [r.answers for r in d.relay_denied] == ["RCPT"]


# -- gaps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [3, 12])
def test_a_command_line_two_gaps_cut_counts_once_as_one_gap_does(at):
    """Zeek's ContentLine keeps a cut line's head across every gap inside it and hands it
    on whole at its end: a command line two gaps cut is one line, as with one gap.  So its
    middle piece, between the gaps, is no unit of its own (no reply answers it) and the
    second gap is inside the line the first cut (joined); nor is a tail a command, whatever
    word it starts with."""
    c2s, s2c = pipelined_data()
    rcpt = c2s.data.index(b"RCPT TO:<b@")
    one = parse_dialogue(c2s.punch(rcpt + at, 3), s2c)
    line = c2s.data.index(b"\n", rcpt) - rcpt
    two = c2s.punch(rcpt + at, 3).punch(rcpt + line - 6, 2)
    evs = whole(two, s2c)
    d = parse_dialogue(two, s2c)
    assert d == dialogue_of(evs, two, s2c)
    assert [(c.verb, c.cut) for c in d.commands] == [(c.verb, c.cut) for c in one.commands]
    assert [(r.code, r.answers) for r in d.replies] == [
        (r.code, r.answers) for r in one.replies]
    assert [a.kind for a in d.anomalies] == [a.kind for a in one.anomalies]
    assert [(g.offset, g.joined) for g in d.gaps] == [(rcpt + at, False),
                                                       (rcpt + line - 6, True)]
    # a tail that starts with a verb is still the rest of the cut line
    tail = c2s.data[: rcpt + at] + b"x" * 3 + b"DATA" + c2s.data[rcpt + line - 1 :]
    d = parse_dialogue(Stream(tail, c2s.gaps, c2s.starts, c2s.frames).punch(rcpt + at, 3),
                       s2c)
    assert [(r.code, r.answers) for r in d.replies] == [
        (r.code, r.answers) for r in one.replies]


def test_gap_inside_pipelined_commands_resyncs():
    c2s, s2c = pipelined_data()
    rcpt = c2s.data.index(b"RCPT TO:<b@")
    c2s = c2s.punch(rcpt + 3, 10)  # the middle of the first RCPT line is lost
    evs = whole(c2s, s2c)
    assert Gap("c2s", rcpt + 3, 10) in evs
    d = parse_dialogue(c2s, s2c)
    assert d == dialogue_of(evs, c2s, s2c)
    assert [c.verb for c in d.commands] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert [g.size for g in d.gaps] == [10]
    # The cut RCPT line still counts once (by its head), so the FIFO stays aligned.
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "EHLO"),
        (250, "MAIL"),
        (250, ""),
        (550, "RCPT"),
        (354, "DATA"),
        (250, "END_OF_DATA"),
        (221, "QUIT"),
    ]
    assert [a.kind for a in d.anomalies] == ["line_cut_by_gap"]
    assert [r.frame for r in d.relay_denied] == [8] and d.message_bytes == len(BODY)


def test_gap_at_start_and_end():
    c2s, s2c = starttls_refused_relay_denied()
    c2s = c2s.punch(0, 5)  # capture began in the middle of the EHLO line
    s2c = Stream(s2c.data, [(len(s2c.data), 100)], s2c.starts, s2c.frames)  # lost tail
    evs = whole(c2s, s2c)
    assert evs[1] == Gap("c2s", 0, 5)
    assert Gap("s2c", len(s2c.data), 100) in evs
    d = parse_dialogue(c2s, s2c)
    assert d == dialogue_of(evs, c2s, s2c)
    assert d.ehlo_name is None and d.commands[0].verb == "STARTTLS"
    assert [a.kind for a in d.anomalies] == ["line_cut_by_gap"]
    # The rest of the cut EHLO line still counts as one command, so pairing holds.
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, ""),
        (454, "STARTTLS"),
        (250, "MAIL"),
        (550, "RCPT"),
        (221, "QUIT"),
    ]
    assert d.starttls_accepted is False and d.relay_denied[0].answers == "RCPT"


def test_a_gap_that_ends_a_multi_line_reply_ends_it_there():
    """The end of the multi-line EHLO reply is lost; the STARTTLS 220 right after the gap
    is the next reply, not a line of the cut 250 one.  Before, it was (reply_code_mismatch):
    STARTTLS went unanswered and the TLS start was guessed inside the ServerHello."""
    c2s, s2c = starttls_accepted()
    cut = s2c.data.index(b"250-STARTTLS")
    s2c = s2c.punch(cut, s2c.data.index(b"220 2.0.0") - cut)
    evs = whole(c2s, s2c)
    d = parse_dialogue(c2s, s2c)
    assert d == dialogue_of(evs, c2s, s2c)
    assert [(r.code, r.answers) for r in d.replies] == [(250, "EHLO"), (220, "STARTTLS")]
    assert [a.kind for a in d.anomalies] == ["reply_unfinished"]
    assert d.starttls_accepted is True and d.tls_s2c_offset == s2c.data.index(SERVER_HELLO)
    assert "STARTTLS" not in d.capabilities  # lost with the gap, not guessed
    # a gap between lines of one reply, and a line of the same code after it: one reply
    same = starttls_accepted()[1].punch(cut, len(b"250-STARTTLS\r\n"))
    d = parse_dialogue(c2s, same)
    assert [(r.code, r.answers) for r in d.replies] == [(250, "EHLO"), (220, "STARTTLS")]
    assert "SMTPUTF8" in d.capabilities and d.anomalies == ()


def test_lost_starttls_reply_inferred_from_client_hello():
    c2s, s2c = starttls_accepted()
    reply = s2c.data.index(b"220 2.0.0")
    s2c = s2c.punch(reply, len(b"220 2.0.0 SMTP server ready\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is True and d.starttls_reply is None
    assert (d.tls_c2s_offset, d.tls_s2c_offset) == (len(EHLO) + 10, s2c.data.index(SERVER_HELLO))
    assert [(a.kind, a.direction) for a in d.anomalies] == [("starttls_inferred", "s2c")]
    # Server side not captured at all: the client's ClientHello tells.
    d = parse_dialogue(c2s, Stream())
    assert d.starttls_accepted is True and d.tls_c2s_offset == len(EHLO) + 10
    assert [a.kind for a in d.anomalies] == ["no_banner", "replies_missing", "starttls_inferred"]


def test_lost_starttls_reply_then_plaintext_is_a_refusal():
    """The gap took the 454 whole and the client went on with MAIL in plaintext: a client
    sends TLS after STARTTLS only on a 220 (RFC 3207 §4), so TLS never began. That is a
    refusal (starttls_accepted False), not a handshake the capture missed; with no client
    bytes after STARTTLS nothing is decided."""
    from fastcap.judge.diagnose import _starttls_verdicts

    c2s, s2c = starttls_refused_relay_denied()
    reply = b"454 4.7.0 TLS not available due to local problem\r\n"
    s2c = s2c.punch(s2c.data.index(reply), len(reply))
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is False and d.starttls_reply is None
    assert d.tls_c2s_offset is None and d.starttls_command_frame == 7
    assert [(a.kind, a.frame) for a in d.anomalies] == [("reply_lost", 10),
                                                         ("starttls_not_taken", 9)]
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "EHLO"), (250, "MAIL"), (550, "RCPT"), (221, "QUIT")]
    (v,) = _starttls_verdicts(None, d)
    assert v.code == "starttls_refused" and v.frame == 7
    assert "not captured, and the client went on in plaintext (frame 9)" in v.message
    assert dialogue_of(whole(c2s, s2c, frames=True), c2s, s2c) == d
    # Both stopped after STARTTLS (its reply lost): no evidence either way.
    stop = c2s.data.index(b"STARTTLS\r\n") + 10
    c2s = Stream(c2s.data[:stop], [], c2s.starts[:2], c2s.frames[:2])
    s2c = Stream(s2c.data[: s2c.gaps[0][0]], [], s2c.starts[:2], s2c.frames[:2])
    s2c = s2c.punch(len(s2c.data), 0)
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is None
    assert "starttls_not_taken" not in [a.kind for a in d.anomalies]


def _ehlo_reply_lost(*rest: tuple[str, bytes], ehlo_reply: bytes = EHLO_REPLY):
    """A dialogue whose EHLO reply a gap took whole (frame 6 lost): what follows it is
    ``rest``, one frame each from frame 7."""
    c2s, s2c = session(("s", BANNER), ("c", EHLO), ("s", ehlo_reply), *rest)
    return c2s, s2c.punch(len(BANNER), len(ehlo_reply))


def test_a_reply_lost_whole_does_not_shift_the_pairing():
    """The gap took the EHLO reply whole: the 454 after it (frame 8) came after the client's
    STARTTLS (frame 7), which the client sends only once EHLO is answered, so it answers
    STARTTLS, as tshark shows it in frame order, not EHLO (every later reply was one
    command off: STARTTLS 'answered' by MAIL's 250)."""
    from fastcap.judge.diagnose import _starttls_verdicts

    c2s, s2c = _ehlo_reply_lost(
        ("c", b"STARTTLS\r\n"), ("s", b"454 4.7.0 TLS not available\r\n"),
        ("c", b"MAIL FROM:<a@fabrikam.com>\r\n"), ("s", b"250 2.1.0 Sender OK\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert [(r.code, r.answers, r.frame) for r in d.replies] == [
        (454, "STARTTLS", 8), (250, "MAIL", 10), (221, "QUIT", 12)]
    assert d.starttls_accepted is False and d.starttls_reply.code == 454
    assert [(a.kind, a.frame) for a in d.anomalies] == [("reply_lost", 8)]
    (v,) = _starttls_verdicts(None, d)
    assert v.code == "starttls_refused" and v.frame == 8 and "454 4.7.0" in v.message
    # The same events however the bytes come, and none decided without frames.
    ref = whole(c2s, s2c, frames=True)
    sizes = [1]
    server_first = [("s2c", p) for p in pieces(s2c, sizes)] + [("c2s", p) for p in pieces(c2s)]
    client_first = [("c2s", p) for p in pieces(c2s, sizes)] + [("s2c", p) for p in pieces(s2c)]
    assert run(server_first, frames=(c2s, s2c)) == run(client_first, frames=(c2s, s2c)) == ref
    assert dialogue_of(ref, c2s, s2c) == d
    assert [r.answers for r in whole(c2s, s2c) if isinstance(r, Reply)][:2] == ["EHLO", "STARTTLS"]


def test_a_reply_lost_whole_before_an_accepted_starttls():
    """The 220 after the gap answers STARTTLS: TLS begins after it, with no inference."""
    c2s, s2c = _ehlo_reply_lost(
        ("c", b"STARTTLS\r\n"), ("s", b"220 2.0.0 SMTP server ready\r\n"),
        ("c", CLIENT_HELLO), ("s", SERVER_HELLO))
    d = parse_dialogue(c2s, s2c)
    assert d.starttls_accepted is True and d.starttls_reply.answers == "STARTTLS"
    assert (d.tls_c2s_frame, d.tls_s2c_frame) == (9, 10)
    assert [a.kind for a in d.anomalies] == ["reply_lost"]


def test_a_lost_reply_is_found_whether_or_not_the_client_pipelines():
    """MAIL's reply lost whole: the client sent RCPT only after it, then QUIT, on which a
    client always waits (RFC 2920 §3.1). The two replies captured from the gap on answer the
    last two commands, so the 550 answers RCPT, with PIPELINING offered or not."""
    for ehlo_reply in (EHLO_REPLY, EHLO_REPLY.replace(b"250-PIPELINING\r\n", b"")):
        c2s, s2c = session(
            ("s", BANNER), ("c", EHLO), ("s", ehlo_reply),
            ("c", b"MAIL FROM:<a@fabrikam.com>\r\n"), ("s", b"250 2.1.0 Sender OK\r\n"),
            ("c", b"RCPT TO:<b@contoso.com>\r\n"), ("s", DENIED),
            ("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n"))
        s2c = s2c.punch(len(BANNER + ehlo_reply), len(b"250 2.1.0 Sender OK\r\n"))
        d = parse_dialogue(c2s, s2c)
        assert d.relay_denied[0].answers == "RCPT" and d.relay_denied[0].frame == 10
        assert [(a.kind, a.frame) for a in d.anomalies] == [("reply_lost", 10)]


def _pipelined_group(lost: int):
    """MAIL, two RCPTs and DATA pipelined in frame 7 (RFC 2920), each reply in a frame of its
    own (8 to 11), and reply ``lost`` of the four taken whole by a gap."""
    replies = [b"250 2.1.0 Sender OK\r\n", b"250 2.1.5 Recipient OK\r\n", DENIED,
               b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", EHLO_REPLY),
        ("c", b"MAIL FROM:<a@fabrikam.com>\r\nRCPT TO:<b@contoso.com>\r\n"
              b"RCPT TO:<c@contoso.com>\r\nDATA\r\n"),
        *[("s", r) for r in replies],
        ("c", b"Subject: hi\r\n\r\nHello\r\n.\r\n"),
        ("s", b"250 2.6.0 Queued mail for delivery\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n"))
    at = len(BANNER + EHLO_REPLY) + sum(map(len, replies[:lost]))
    return c2s, s2c.punch(at, len(replies[lost]))


@pytest.mark.parametrize("lost", [0, 1, 2])
def test_a_lost_reply_in_a_pipelined_group_does_not_shift_the_pairing(lost):
    """The group's replies all come before the client's next bytes (the content, sent on
    354): those captured after the gap answer the group's last commands, so the gap took
    the first of the rest (tshark, in frame order: the four commands in frame 7, the replies
    in frames 8 to 11). FIFO pairing put each later reply one command off: the 550 'answered'
    the first RCPT (or MAIL), and DATA's 354 the second RCPT."""
    c2s, s2c = _pipelined_group(lost)
    d = parse_dialogue(c2s, s2c)
    verbs = ["MAIL", "RCPT", "RCPT", "DATA"]
    codes = [250, 250, 550, 354]
    want = [(250, "EHLO", 6)] + [
        (codes[k], verb, 8 + k) for k, verb in enumerate(verbs) if k != lost
    ] + [(250, "END_OF_DATA", 13), (221, "QUIT", 15)]
    assert [(r.code, r.answers, r.frame) for r in d.replies] == want
    assert [(a.kind, a.detail[:15]) for a in d.anomalies] == [
        ("reply_lost", f"reply to {verbs[lost]!r}")]
    assert [r.answers for r in d.relay_denied] == ([] if lost == 2 else ["RCPT"])
    assert d.message_bytes == 22
    # The same events however the bytes come (each direction waits on the other's).
    ref = whole(c2s, s2c, frames=True)
    for sizes in ([1], [7, 3]):
        server_first = [("s2c", p) for p in pieces(s2c, sizes)] + [
            ("c2s", p) for p in pieces(c2s, sizes)]
        client_first = [("c2s", p) for p in pieces(c2s, sizes)] + [
            ("s2c", p) for p in pieces(s2c, sizes)]
        assert run(server_first, frames=(c2s, s2c)) == ref
        assert run(client_first, frames=(c2s, s2c)) == ref
    assert dialogue_of(ref, c2s, s2c) == d


def test_a_lost_reply_in_a_pipelined_group_undecided_keeps_fifo():
    """Where the count cannot be trusted, FIFO stands: a second gap among the group's
    replies, or a count that would pair a reply with a command sent after it."""
    c2s, s2c = _pipelined_group(0)
    s2c = s2c.punch(s2c.data.index(DENIED), len(DENIED))
    d = parse_dialogue(c2s, s2c)
    # MAIL's 250 and the 550 lost: the second RCPT's 250 cannot be told apart (FIFO: MAIL);
    # the 354 after the second gap is the one reply before the content: DATA's.
    assert [(r.code, r.answers) for r in d.replies][1:3] == [(250, "MAIL"), (354, "DATA")]
    assert [a.detail[:15] for a in d.anomalies] == ["reply to 'RCPT'"] * 2
    # The first RCPT's 250 and the 354 lost: the 550 is the one reply in view before the
    # content, but the second gap may hold more of the group's (its bytes have no frame).
    c2s, s2c = _pipelined_group(1)
    at = s2c.data.index(b"354 ")
    s2c = s2c.punch(at, s2c.data.index(b"\n", at) + 1 - at)
    d = parse_dialogue(c2s, s2c)
    assert [(r.code, r.answers) for r in d.replies][1:4] == [
        (250, "MAIL"), (550, "RCPT"), (250, "END_OF_DATA")]
    # The server's stream ends early: one reply from the gap on, for four commands (RSET,
    # MAIL, RCPT, QUIT), would pair the 250 (frame 10) with QUIT, sent at frame 11.
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", EHLO_REPLY), ("c", b"RSET\r\n"),
        ("s", b"250 2.0.0 Resetting\r\n"), ("c", b"MAIL FROM:<a@fabrikam.com>\r\n"),
        ("s", b"250 2.1.0 Sender OK\r\n"), ("c", b"RCPT TO:<b@contoso.com>\r\nQUIT\r\n"))
    s2c = s2c.punch(len(BANNER + EHLO_REPLY), len(b"250 2.0.0 Resetting\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert [(r.answers, r.frame) for r in d.replies] == [("EHLO", 6), ("RSET", 10)]
    assert [a.kind for a in d.anomalies] == ["replies_missing"]


def test_gap_inside_body_and_chunk():
    c2s, s2c = pipelined_data()
    body = c2s.data.index(BODY)
    d = parse_dialogue(c2s.punch(body + 10, 20), s2c)
    assert d.message_bytes == len(BODY) and [r.answers for r in d.replies][-2:] == [
        "END_OF_DATA",
        "QUIT",
    ]
    c2s, s2c = bdat_chunks()
    chunk = c2s.data.index(b"QUIT\r\nRSET")
    d = parse_dialogue(c2s.punch(chunk + 2, 30), s2c)  # swallows the end of the chunk
    assert [c.verb for c in d.commands][-2:] == ["BDAT", "QUIT"]
    # "BDAT 0 LAST" lost its head in the gap; its tail still counts, so QUIT gets 221.
    assert [(r.code, r.answers) for r in d.replies][-3:] == [
        (250, "BDAT"),
        (250, ""),
        (221, "QUIT"),
    ]
    assert [a.kind for a in d.anomalies] == ["line_cut_by_gap"]


# -- caps and feeding contract -------------------------------------------------------------


def test_buffer_cap_drops_as_gap(monkeypatch):
    monkeypatch.setattr(machine, "MAX_BUFFER", 200)
    conv = SmtpConversation()
    conv.feed("s2c", BANNER + EHLO_REPLY + b"250 ok\r\n" * 50, 0)  # no c2s yet: all waits
    conv.feed("s2c", b"221 bye\r\n")
    conv.feed_eof("s2c")
    conv.feed("c2s", EHLO + b"QUIT\r\n", 0)
    conv.feed_eof("c2s")
    evs = drain(conv)
    assert [e.kind for e in evs if isinstance(e, Anomaly)][0] == "buffer_full"
    assert any(isinstance(e, Gap) for e in evs) and evs[-1] == Closed()


def test_anomaly_cap(monkeypatch):
    monkeypatch.setattr(machine, "MAX_ANOMALIES", 3)
    c2s = b"".join(b"NOOP " + b"x" * 5000 + b"\r\n" for _ in range(6))
    evs = whole(Stream(c2s), Stream())
    kinds = [e.kind for e in evs if isinstance(e, Anomaly)]
    assert kinds == ["no_banner", "line_too_long", "replies_missing", "anomaly_cap"]


def test_roles_turned_is_kept_past_the_anomaly_cap(monkeypatch):
    """A 250 to TURN swaps the roles whatever came before: the record of it is no anomaly
    to cap, so a dialogue whose oddities filled MAX_ANOMALIES still reads the new sender's
    lines as its commands, and its session still says the roles turned."""
    from fastcap.session import roles_turned

    monkeypatch.setattr(machine, "MAX_ANOMALIES", 2)
    c2s, s2c = session(
        ("s", BANNER), ("c", EHLO), ("s", b"250 hi\r\n"),
        *[m for bad in (b"x!\r\n", b"y!\r\n", b"z!\r\n")
          for m in (("c", bad), ("s", b"500 what\r\n"))],
        ("c", b"TURN\r\n"), ("s", b"250 OK\r\n"), ("c", b"220 relay ready\r\n"),
        ("s", b"HELO mx.contoso.com\r\n"), ("c", b"250 hi\r\n"),
        ("s", b"QUIT\r\n"), ("c", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert [a.kind for a in d.anomalies] == [
        "bad_command", "bad_command", "anomaly_cap", "roles_turned"]
    assert roles_turned(d) and d.ehlo_name == "mx.contoso.com"
    assert [c.verb for c in d.commands][-2:] == ["HELO", "QUIT"]
    assert dialogue_of(whole(c2s, s2c), c2s, s2c) == d
    monkeypatch.setattr(dialogue, "MAX_ITEMS", 1)  # the dialogue's own list cap: likewise
    d = parse_dialogue(c2s, s2c)
    kinds = [a.kind for a in d.anomalies]  # (the commands' and replies' caps add list_caps)
    assert "list_cap" in kinds
    assert [k for k in kinds if k != "list_cap"] == ["bad_command", "roles_turned"]
    assert roles_turned(d)


def test_overlap_and_late_data_are_ignored():
    c2s, s2c = starttls_refused_relay_denied()
    conv = SmtpConversation()
    conv.feed("s2c", s2c.data, 0)
    conv.feed("c2s", c2s.data[:20], 0)
    conv.feed("c2s", c2s.data[10:], 10)  # 10 bytes fed twice
    conv.feed_eof("c2s")
    conv.feed_eof("s2c")
    conv.feed("s2c", b"250 late\r\n")
    evs = drain(conv)
    kinds = [e.kind for e in evs if isinstance(e, Anomaly)]
    assert kinds == ["overlap", "data_after_eof"]
    assert [e for e in evs if not isinstance(e, Anomaly)] == [
        e for e in whole(c2s, s2c) if not isinstance(e, Anomaly)
    ]


def test_bad_direction_is_a_caller_error():
    with pytest.raises(ValueError):
        SmtpConversation().feed("up", b"x")  # type: ignore[arg-type]


def test_large_body_through_parse_dialogue():
    big = b"x" * 999 + b"\r\n"
    body = big * 3000  # 3 MB, more than MAX_BUFFER: parse_dialogue feeds on demand
    c2s, s2c = session(
        ("s", BANNER),
        ("c", b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
        ("s", b"250 ok\r\n250 ok\r\n354 go\r\n"),
        ("c", body + b".\r\n"),
        ("s", b"250 queued\r\n"),
    )
    d = parse_dialogue(c2s, s2c)
    assert d.message_bytes == len(body) and d.anomalies == () and d.closed


# -- properties ----------------------------------------------------------------------------


@st.composite
def schedules(draw, c2s: Stream, s2c: Stream, cut: CutStart | None = None):
    """Both directions cut at random (sometimes byte by byte) and interleaved at random;
    with ``cut``, each read from its CutStart offset."""
    mode = draw(st.sampled_from(["random", "bytewise", "whole"]))
    sizes = {
        "random": draw(st.lists(st.integers(1, 64), min_size=1, max_size=30)),
        "bytewise": [1],
        "whole": None,
    }[mode]
    explicit = draw(st.booleans())
    queues = [
        [("c2s", p) for p in pieces(c2s, sizes, explicit, cut.c2s_offset if cut else 0)],
        [("s2c", p) for p in pieces(s2c, sizes, explicit, cut.s2c_offset if cut else 0)],
    ]
    total = len(queues[0]) + len(queues[1])
    picks = draw(st.lists(st.booleans(), min_size=total, max_size=total))
    out = []
    for pick in picks:
        q = queues[0] if (pick and queues[0]) or not queues[1] else queues[1]
        out.append(q.pop(0))
    return out, draw(st.booleans())


def _check_invariant(data, c2s: Stream, s2c: Stream, implicit: bool = False) -> list:
    ref = whole(c2s, s2c, implicit, frames=True)
    sched, drain_each = data.draw(schedules(c2s, s2c))
    assert run(sched, implicit, drain_each, frames=(c2s, s2c)) == ref
    server_first = [("s2c", p) for p in pieces(s2c)] + [("c2s", p) for p in pieces(c2s)]
    assert run(server_first, implicit, frames=(c2s, s2c)) == ref
    assert dialogue_of(ref, c2s, s2c) == parse_dialogue(c2s, s2c, implicit_tls=implicit)
    assert ref.count(Closed()) == 1 and ref[-1] == Closed()
    return ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_chunking_does_not_change_events(name, data):
    c2s, s2c = SCENARIOS[name]()
    if data.draw(st.booleans()):  # sometimes lose a few bytes somewhere
        s = data.draw(st.sampled_from(["c2s", "s2c"]))
        stream = c2s if s == "c2s" else s2c
        off = data.draw(st.integers(0, len(stream.data) - 1))
        stream = stream.punch(off, data.draw(st.integers(1, 40)))
        c2s, s2c = (stream, s2c) if s == "c2s" else (c2s, stream)
    evs = _check_invariant(data, c2s, s2c)
    if name == "auth":
        _assert_no_secrets(evs)


C_TOKENS = [
    b"EHLO x\r\n",
    b"HELO y\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"RCPT TO:<c@d>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT x\r\n",
    b"STARTTLS\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH PLAIN c2VjcmV0\r\n",
    b"c2VjcmV0\r\n",
    b".\r\n",
    b"..x\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"QUIT\r\n",
    b"\x16\x03\x01\x00",
    b"x" * 50,
    b"hello world\r\n",
    b"NOOP\n",
    b"\x00\xff",
    b"Subject: DATA\r\n",
]
S_TOKENS = [
    b"220 mx.example ESMTP\r\n",
    b"250-PIPELINING\r\n",
    b"250-STARTTLS\r\n",
    b"250 OK\r\n",
    b"354 go\r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"235 2.7.0 ok\r\n",
    b"220 2.0.0 ready\r\n",
    b"454 4.7.0 TLS not available\r\n",
    DENIED,
    b"500 5.5.1 bad\r\n",
    b"221 bye\r\n",
    b"\x16\x03\x03\x00\x02",
    b"garbage\r\n",
    b"\r\n",
    b"250",
    b"-",
    b" ",
    b"\n",
]


@st.composite
def streams(draw, tokens: list[bytes]) -> Stream:
    if draw(st.booleans()):
        data = draw(st.binary(max_size=300))
    else:
        data = b"".join(draw(st.lists(st.sampled_from(tokens), max_size=25)))
    starts = list(range(0, max(len(data), 1), 17))
    stream = Stream(data, [], starts, [i + 1 for i in range(len(starts))])
    for _ in range(draw(st.integers(0, 3)) if data else 0):
        off = draw(st.integers(0, len(data) - 1))
        if not any(a <= off < a + n for a, n in stream.gaps):
            stream = stream.punch(off, min(draw(st.integers(1, 30)), len(data) - off))
    if data and draw(st.integers(0, 5)) == 0:  # lost the tail of the stream too
        stream.gaps.append((len(data), draw(st.integers(1, 30))))
    return stream


SMALL_CAPS = {"MAX_LINE": 6, "MAX_REPLY_LINES": 2, "MAX_ANOMALIES": 5, "MAX_BAD_LINES": 2}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c2s=streams(C_TOKENS),
    s2c=streams(S_TOKENS),
    implicit=st.booleans(),
    small_caps=st.booleans(),
    data=st.data(),
)
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(
    c2s, s2c, implicit, small_caps, data
):
    with ExitStack() as stack:
        if small_caps:  # reach the line, reply, anomaly and junk caps with short inputs
            for name, value in SMALL_CAPS.items():
                stack.enter_context(mock.patch.object(machine, name, value))
        evs = _check_invariant(data, c2s, s2c, implicit)
        json.dumps(parse_dialogue(c2s, s2c, implicit_tls=implicit).to_dict())
    end = max(len(c2s.data), len(s2c.data)) + 30
    assert all(0 <= e.offset <= end for e in evs if hasattr(e, "offset"))
    assert {e.kind for e in evs if isinstance(e, Anomaly)} <= set(smtp.ANOMALY_KINDS)


def _line_end_before(buf: bytes | bytearray, start: int) -> int:
    """_line_end as it was: the LF looked for first (to the buffer's end, if none), then the
    CRs between, counted."""
    nl = buf.find(b"\n", start)
    stop = len(buf) if nl < 0 else nl
    cr = buf.find(b"\r", start, stop)
    if cr < 0 or buf.count(b"\r", cr, stop) == stop - cr:
        return nl
    return cr


@settings(max_examples=400, deadline=None)
@given(buf=st.lists(st.sampled_from([b"\r", b"\n", b"x", b"\r\n"]), max_size=30).map(b"".join),
       data=st.data())
def test_a_line_ends_where_the_scan_to_its_lf_found_it(buf, data):
    start = data.draw(st.integers(0, len(buf)))
    stop = data.draw(st.integers(start, len(buf)))
    assert machine._line_end(buf, start) == _line_end_before(buf, start)
    assert machine._line_end(buf, start, stop) == _line_end_before(buf[:stop], start)


_CR_C_TOKENS = [*C_TOKENS, b"\r", b"\r\r\r", b"NOOP\r", b"\n", b"x"]
_CR_S_TOKENS = [*S_TOKENS, b"\r", b"250 ok\r", b"\r\r\n", b"\n"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c2s=streams(_CR_C_TOKENS), s2c=streams(_CR_S_TOKENS), small_caps=st.booleans(),
       data=st.data())
def test_lone_cr_lines_read_as_by_the_scan_to_the_lf(c2s, s2c, small_caps, data):
    """Where each line ends, looked for from its start to its end alone (with the last run of
    lone CRs remembered), is where the scan to the LF found it: the same events and dialogue,
    however the bytes come."""
    def before(side, start, stop=None):
        return _line_end_before(side.buf if stop is None else side.buf[:stop], start)

    with ExitStack() as stack:
        if small_caps:  # long lines, and runs of CRs skipped with them
            stack.enter_context(mock.patch.object(machine, "MAX_LINE", 6))
        evs = _check_invariant(data, c2s, s2c)
        d = parse_dialogue(c2s, s2c)
        stack.enter_context(mock.patch.object(machine._Side, "line_end", before))
        assert whole(c2s, s2c, frames=True) == evs
        assert parse_dialogue(c2s, s2c) == d


def test_reply_lines_holding_a_backslash_keep_their_bytes_for_the_zeek_logs(monkeypatch):
    """A text keeps each byte that is no UTF-8 as "\\xHH", as a server may type it too: the
    bytes of each line whose text holds a backslash are kept for the Zeek logs (which write
    them as Zeek does), not for the JSON, alike whichever way the reply was read."""
    c2s, s2c = session(("s", b"220 mx \xff\r\n"), ("c", b"EHLO a\r\n"),
                       ("s", b"250-a\\b\r\n250-\xff\r\n251-x\\xff\r\n251 ok\r\n"),
                       ("c", b"NOOP\r\n"), ("s", b"250 \\\r\n"), ("c", b"QUIT\r\n"),
                       ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert d.zeek_texts == ((-1, 0, b"mx \xff"), (0, 0, b"a\\b"), (0, 1, b"\xff"),
                            (0, 2, b"x\\xff"), (1, 0, b"\\"))
    assert d.banner_text == "mx \\xff" and d.replies[0].code_changes[0][2:] == ("x\\xff", "\\xff")
    assert d == parse_dialogue(c2s, s2c, _general=True) == dialogue_of(whole(c2s, s2c), c2s, s2c)
    assert "zeek_texts" not in d.to_dict()
    plain = session(("s", b"220 mx \xff\r\n"), ("c", b"NOOP\r\n"), ("s", b"250-\\\r\n250 \xff\r\n"))
    assert parse._parse_plain(*plain) == parse_dialogue(*plain, _general=True)
    assert parse_dialogue(*plain).zeek_texts == (
        (-1, 0, b"mx \xff"), (0, 0, b"\\"), (0, 1, b"\xff"))
    # past MAX_REPLY_LINES, only the lines the logs read: the last, and each code change's
    monkeypatch.setattr(machine, "MAX_REPLY_LINES", 2)
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"NOOP\r\n"), ("s", b"".join(
        b"%d%s\\%d\r\n" % (250 + (k >= 3), b" " if k == 5 else b"-", k) for k in range(6))))
    assert [i for _, i, _ in parse_dialogue(c2s, s2c).zeek_texts] == [0, 1, 2, 3, 5]


def test_reply_lines_ended_by_cr_cr_lf_keep_their_bytes_for_the_zeek_logs(monkeypatch):
    """A reply line ended by CR CR LF is two lines to Zeek (its ContentLine ends one at each
    CR), the second empty: a violation. A reply keeps the text of its first and last lines
    only, so the bytes of each line whose text ends in a CR are kept for the Zeek logs, a
    middle one and one past MAX_REPLY_LINES too, alike whichever way the reply was read."""
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"),
                       ("s", b"250-a\r\n250-b\r\r\n250-c\r\n250 d\r\n"),
                       ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert d.zeek_texts == ((0, 1, b"b\r"),)
    assert d == parse_dialogue(c2s, s2c, _general=True) == dialogue_of(whole(c2s, s2c), c2s, s2c)
    assert dialogue.zeek_may_violate(d)
    assert not dialogue.zeek_may_violate(parse_dialogue(*session(
        ("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250-a\r\n250-b\r\n250 c\r\n"))))
    monkeypatch.setattr(machine, "MAX_REPLY_LINES", 2)
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"NOOP\r\n"), ("s", b"".join(
        b"250%s%d%s\r\n" % (b" " if k == 5 else b"-", k, b"\r" if k == 3 else b"")
        for k in range(6))))
    d = parse_dialogue(c2s, s2c)
    assert d.zeek_texts == ((0, 3, b"3\r"),)
    assert d == dialogue_of(whole(c2s, s2c), c2s, s2c)


@pytest.mark.parametrize(("head", "kind"), [(b"hello", "bad_reply_line"),
                                          (b"\x16\x03\x01\x00\x05hello", "unexpected_tls")])
@pytest.mark.parametrize("tail", [b" there\r\n", b" there\r\r\n", b" there\n", b"\r\n"])
def test_a_bad_reply_line_keeps_the_frame_zeeks_line_reader_ends_it_in(head, kind, tail):
    """Zeek's ContentLine hands a line on at its first CR or LF, so a reply line with no code
    is a violation to Zeek's SMTP analyzer in the packet holding that byte, not the one the
    line begins in (TLS bytes too: lines to ContentLine): that frame is kept for the Zeek
    logs (not the JSON), alike whichever way the dialogue was read."""
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 hi\r\n"),
                       ("c", b"NOOP\r\n"), ("s", b"250 ok\r\n"), ("s", head),
                       ("s", tail), ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    (n,) = [k for k, a in enumerate(d.anomalies) if a.kind == kind]
    assert d.anomalies[n].frame == 9 and d.zeek_line_ends == ((n, 10),)
    assert d == dialogue_of(whole(c2s, s2c, frames=True), c2s, s2c)
    assert "zeek_line_ends" not in d.to_dict()


def test_a_codeless_line_after_a_gap_keeps_the_frame_zeeks_line_reader_ends_it_in():
    """A server line after a gap at a line's start is a line of its own to Zeek's
    ContentLine, handed on at its first CR or LF: with no code, its violation is in the
    packet holding that byte (ZeekBadReply's frame), alike whichever way it was read."""
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"NOOP\r\n"), ("s", b"250-one\r\n"),
                       ("s", b"LIN"), ("s", b"ING\r\n250 ok\r\n"), ("c", b"QUIT\r\n"),
                       ("s", b"221 bye\r\n"))
    s2c = s2c.punch(8, 9)  # "250-one\r\n" lost
    d = parse_dialogue(c2s, s2c)
    assert d.zeek_bad_replies == (("s2c", 8),)
    assert d == dialogue_of(whole(c2s, s2c, frames=True), c2s, s2c)


def test_command_arguments_holding_a_backslash_keep_their_bytes_for_the_zeek_logs():
    """As a reply's text, a command's argument keeps each byte that is no UTF-8 as "\\xHH",
    as a client may type it too: the bytes of each argument whose text holds a backslash are
    kept for the Zeek logs, not for the JSON, alike whichever way the line was read; an AUTH
    line keeps no bytes (its argument may carry credentials)."""
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"EHLO a\xffb \t\r\n"), ("s", b"250 hi\r\n"),
                       ("c", b"MAIL FROM:<a\\xff@b>\r\n"), ("s", b"250 ok\r\n"),
                       ("c", b"RCPT TO:<c@d>\r\n"), ("s", b"250 ok\r\n"),
                       ("c", b"AUTH PLAIN \xff\\\r\n"), ("s", b"503 no\r\n"),
                       ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c)
    assert d.zeek_args == ((0, b"a\xffb"), (1, b"FROM:<a\\xff@b>"))
    assert [c.arg for c in d.commands[:2]] == ["a\\xffb", "FROM:<a\\xff@b>"]
    assert d == parse_dialogue(c2s, s2c, _general=True) == dialogue_of(whole(c2s, s2c), c2s, s2c)
    assert parse._parse_plain(c2s, s2c) == d
    assert "zeek_args" not in d.to_dict()


# -- the fast path of parse_dialogue ---------------------------------------------------------

_UNITS = [  # (client bytes, server reply): one exchange of a plain dialogue
    (EHLO, EHLO_REPLY),
    (b"HELO mail.fabrikam.com\r\n", b"250 mx.contoso.com\r\n"),
    (b"MAIL FROM:<a@fabrikam.com> SIZE=2048\r\n", b"250 2.1.0 Sender OK\r\n"),
    (b"rcpt to:<b@contoso.com>  \r\n", DENIED),
    (b"RCPT TO:<c@contoso.com>\r\n", b"250 2.1.5 Recipient OK\r\n"),
    (b"DATA\r\n", b"354 Start mail input\r\n"),
    (BODY + b".\r\n", b"250 2.6.0 Queued mail for delivery\r\n"),
    (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
    (f"{LOGIN_USER}\r\n".encode(), b"235 2.7.0 ok\r\n"),
    (b"STARTTLS\r\n", b"454 4.7.0 TLS not available\r\n"),
    (b"STARTTLS\r\n", b"220 2.0.0 SMTP server ready\r\n"),
    (b"STARTTLS\r\n", b"250 odd but possible\r\n"),
    (b"BDAT 5 LAST\r\nhello", b"250 2.0.0 ok\r\n"),
    (b"NOOP\r\n", b"250 2.0.0 OK\r\n"),
    (b"XYZZY\r\n", b"500 5.5.1 unknown\r\n"),
    (b"RSET\n", b"250 OK\r\n"),
    (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    (b"", b"250 an unasked reply\r\n"),
    (b"NOOP\r\n", b""),
    (b"BDAT 6\r\nQUIT\r\n", b"250 2.0.0 6 octets received\r\n"),  # a chunk like a command
]

_FOLLOW = {b"DATA\r\n": 6, b"AUTH LOGIN\r\n": 8}  # unit index that must come next
_ACCEPTED = 10  # STARTTLS answered 220: TLS follows


@st.composite
def plain_dialogues(draw) -> tuple[Stream, Stream]:
    """Mostly well-formed dialogues (the fast path's ground), sometimes with an odd unit, a
    byte changed, a side cut short, or the last replies missing (the server's stream ended
    first), so both paths are compared near their border."""
    banner = draw(st.sampled_from([BANNER, b"220-mx\r\n220 ready\r\n", b"554 go away\r\n",
                                   b""]))
    odd = draw(st.integers(0, 2)) == 0
    pool = range(len(_UNITS)) if odd else (0, 1, 2, 3, 4, 5, 7, 9, 10, 13, 16)
    picks = draw(st.lists(st.sampled_from(pool), max_size=10))
    units = []
    for i in picks:
        units.append(_UNITS[i])
        if not odd and _UNITS[i][0] in _FOLLOW:
            units.append(_UNITS[_FOLLOW[_UNITS[i][0]]])
        if not odd and i == _ACCEPTED:
            break
    c = b"".join(u[0] for u in units)
    answered = len(units) - draw(st.sampled_from([0, 0, 1, 2, 3]))  # the rest get no reply
    s = banner + b"".join(u[1] for u in units[: max(0, answered)])
    if units and units[-1] is _UNITS[_ACCEPTED] and answered == len(units) or draw(
            st.integers(0, 5)) == 0:
        c, s = c + CLIENT_HELLO, s + SERVER_HELLO
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        which = draw(st.booleans())
        data = bytearray(c if which else s)
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.sampled_from([0x0A, 0x0D, 0x20, 0x2D, 0x2E, 0x35, 0x16, 0x41]))
        c, s = (bytes(data), s) if which else (c, bytes(data))
    if draw(st.integers(0, 6)) == 0:
        c = c[: draw(st.integers(0, len(c)))]
    if draw(st.integers(0, 6)) == 0:
        s = s[: draw(st.integers(0, len(s)))]
    c2s = Stream(c, [], list(range(0, max(len(c), 1), 23)))
    s2c = Stream(s, [], list(range(0, max(len(s), 1), 29)))
    c2s.frames = [2 * i + 2 for i in range(len(c2s.starts))]
    s2c.frames = [2 * i + 1 for i in range(len(s2c.starts))]
    return c2s, s2c


@st.composite
def dialogue_inputs(draw) -> tuple[Stream, Stream, bool, CutStart | None]:
    """What parse_dialogue gets: plain dialogues (the fast path's ground) or token soup, with
    bytes lost here and there, sometimes on an implicit-TLS port, sometimes read from a
    CutStart (a capture that began mid-conversation)."""
    if draw(st.booleans()):
        c2s, s2c = draw(plain_dialogues())
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            which = draw(st.booleans())
            stream = c2s if which else s2c
            if stream.data:
                off = draw(st.integers(0, len(stream.data) - 1))
                stream = stream.punch(off, min(draw(st.integers(1, 30)), len(stream.data) - off))
            c2s, s2c = (stream, s2c) if which else (c2s, stream)
    else:
        c2s, s2c = draw(streams(C_TOKENS)), draw(streams(S_TOKENS))
    implicit = draw(st.integers(0, 7)) == 0
    cut = None
    if draw(st.integers(0, 3)) == 0:
        c_off = draw(st.integers(0, len(c2s.data)))
        s_off = draw(st.integers(0, len(s2c.data)))
        body = draw(st.integers(0, 3)) == 0
        chunk_end = None if body or draw(st.integers(0, 2)) else draw(
            st.integers(c_off, len(c2s.data) + 8))  # inside a BDAT chunk's tail
        cut = CutStart(c_off, s_off, draw(st.integers(s_off, len(s2c.data))), body, chunk_end)
    return c2s, s2c, implicit, cut


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inp=dialogue_inputs(),
    small_caps=st.booleans(),
    chunk=st.sampled_from([parse.FEED_CHUNK, 1, 7]),
    data=st.data(),
)
def test_parse_dialogue_one_result_whichever_path(inp, small_caps, chunk, data):
    """parse_dialogue as production calls it, its general path (no _parse_plain; events
    folded as SmtpConversation makes them) fed in other chunks, and the public API
    (next_event, fed in random pieces and order, folded by SmtpDialogue.from_events) must
    give one and the same dialogue; the fast path must decline rather than guess."""
    c2s, s2c, implicit, cut = inp
    taken = []
    plain = parse._parse_plain

    def spy(c, s, *tunnel):
        taken.append(plain(c, s, *tunnel) is not None)
        return plain(c, s, *tunnel)

    with ExitStack() as stack:
        if small_caps:
            for name, value in SMALL_CAPS.items():
                stack.enter_context(mock.patch.object(machine, name, value))
        with mock.patch.object(parse, "_parse_plain", spy):
            prod = parse_dialogue(c2s, s2c, implicit_tls=implicit, cut=cut)
        with mock.patch.object(parse, "FEED_CHUNK", chunk):
            general = parse_dialogue(c2s, s2c, implicit_tls=implicit, cut=cut, _general=True)
        sched, drain_each = data.draw(schedules(c2s, s2c, cut))
        public = dialogue_of(run(sched, implicit, drain_each, cut, (c2s, s2c)), c2s, s2c)
    assert prod.to_dict() == general.to_dict() == public.to_dict()
    assert prod == general == public  # every field, the ones only the diagnosis reads too
    assert taken == ([] if implicit or cut else [taken[0]])
    if taken and taken[0]:  # the fast path reports only the ends it takes
        assert [a.kind for a in prod.anomalies] in ([], ["no_banner"], ["replies_missing"])


@pytest.mark.parametrize("name", ["accepted", "refused", "pipelined", "auth"])
def test_fast_path_takes_the_usual_dialogues(name):
    c2s, s2c = SCENARIOS[name]()
    fast = parse._parse_plain(c2s, s2c)
    assert fast is not None
    assert parse_dialogue(c2s, s2c, _general=True) == fast


_UNANSWERED = {  # the server's stream ends before the last commands are answered
    "quit": [("c", EHLO), ("s", b"250 mx\r\n"), ("c", b"MAIL FROM:<a@fabrikam.com>\r\n"),
             ("s", b"250 2.1.0 ok\r\n"), ("c", b"RCPT TO:<b@contoso.com>\r\n"),
             ("s", b"250 2.1.5 ok\r\n"), ("c", b"QUIT\r\n")],
    "refused_then_rcpt": [("c", EHLO), ("s", b"250 mx\r\n"), ("c", b"STARTTLS\r\n"),
                          ("s", b"454 4.7.0 TLS not available\r\n"),
                          ("c", b"MAIL FROM:<a@fabrikam.com>\r\nRCPT TO:<b@contoso.com>\r\n"),
                          ("s", b"250 2.1.0 ok\r\n")],
    "after_content": [("c", b"HELO a\r\n"), ("s", b"250 mx\r\n"), ("c", b"DATA\r\n"),
                      ("s", b"354 go\r\n"), ("c", BODY + b".\r\nQUIT\r\n")],
    "first": [("c", EHLO)],
    "starttls_last": [("c", EHLO), ("s", EHLO_REPLY), ("c", b"STARTTLS\r\n")],
}


@pytest.mark.parametrize("name", sorted(_UNANSWERED))
def test_fast_path_takes_commands_left_unanswered(name):
    c2s, s2c = session(("s", BANNER), *_UNANSWERED[name])
    fast = parse._parse_plain(c2s, s2c)
    assert fast is not None
    assert [a.kind for a in fast.anomalies] == ["replies_missing"]
    assert fast == parse_dialogue(c2s, s2c, _general=True)


def test_fast_path_takes_two_empty_streams():
    fast = parse._parse_plain(Stream(), Stream())
    assert fast is not None
    assert [a.kind for a in fast.anomalies] == ["no_banner"]
    assert fast == parse_dialogue(Stream(), Stream(), _general=True)


@pytest.mark.parametrize("last", [b"DATA\r\n", b"AUTH LOGIN\r\n", b"STARTTLS\r\nQUIT\r\n",
                                  b"TURN\r\n"])
def test_fast_path_declines_an_unanswered_command_the_general_path_guesses_after(last):
    """After these, what the client sends next decides how it is read (content, an auth
    response, TLS): the general path's to guess (a STARTTLS that is the client's last bytes
    leaves nothing to guess from, and is the fast path's)."""
    c2s, s2c = session(("s", BANNER), ("c", EHLO), ("s", b"250 mx\r\n"), ("c", last))
    assert parse._parse_plain(c2s, s2c) is None


def test_fast_path_declines_gaps_and_bdat():
    c2s, s2c = starttls_refused_relay_denied()
    assert parse._parse_plain(c2s.punch(30, 4), s2c) is None
    assert parse._parse_plain(*bdat_chunks()) is None
    # a chunk that reads like a command, and a reply that would pair with it
    chunk_like_quit = session(("s", BANNER), ("c", b"BDAT 6 LAST\r\nQUIT\r\n"),
                              ("s", b"250 2.0.0 ok\r\n221 2.0.0 Bye\r\n"))
    assert parse._parse_plain(*chunk_like_quit) is None


def test_a_cap_patched_where_it_is_read_reaches_both_paths(monkeypatch):
    """Each cap has one home (machine for MAX_*), read at call time by the state machine and
    by the fast path alike: a long line under a small MAX_LINE is not the fast path's."""
    c2s, s2c = session(("s", b"220 a\r\n"), ("c", b"NOOP 0123456789\r\n"), ("s", b"250 ok\r\n"),
                       ("c", b"QUIT\r\n"), ("s", b"221 b\r\n"))  # only a client line is long
    assert parse._parse_plain(c2s, s2c) is not None
    monkeypatch.setattr(machine, "MAX_LINE", 8)
    assert parse._parse_plain(c2s, s2c) is None
    d = parse_dialogue(c2s, s2c)
    assert "line_too_long" in [a.kind for a in d.anomalies]
    assert d == parse_dialogue(c2s, s2c, _general=True)


# -- regressions found by test_parse_dialogue_one_result_whichever_path ------------------------


@pytest.mark.parametrize("client", [b"EHLO ma\rl.fabrikam.com\r\n", b"QUIT\r\nSTARTTLS\r ",
                                    b"EHLO mail\r\r\nNOOP\r\n", b"EHLO ma\r\rx\r\n"])
def test_a_cr_that_ends_a_long_line_at_a_piece_boundary_is_read_as_in_one_piece(
        client, monkeypatch):
    """An over-long line's bytes are skipped as they come; a CR at the end of what has come
    may end the line (no LF after it) or not, so it waits for the next byte however the
    stream was cut into pieces."""
    monkeypatch.setattr(machine, "MAX_LINE", 6)
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", client))
    whole = parse_dialogue(c2s, s2c, _general=True)
    assert "line_too_long" in [a.kind for a in whole.anomalies]
    for chunk in (1, 2, 3, 9):
        monkeypatch.setattr(parse, "FEED_CHUNK", chunk)
        assert parse_dialogue(c2s, s2c, _general=True) == whole


def test_a_run_of_lone_crs_is_read_in_work_linear_in_its_length():
    """Each CR of a run that no LF ends is a line's end (CR_as_EOL), so a run of n CRs is n
    lines, and where each line's run ends was looked for a byte at a time, in Python: n * n
    steps (a few kB of CRs after AUTH, each line answered 334, held a scan for seconds, a
    64 kB piece of them for minutes). The run is now walked by bytes methods."""
    n = 1500
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", b"EHLO a\r\nAUTH LOGIN\r\n"),
                       ("s", b"250 mx\r\n" + b"334 VXNlcm5hbWU6\r\n" * (n + 2)),
                       ("c", b"\r" * n + b"x\r\n"))
    with python_lines(200 * n, machine.__file__):
        d = parse_dialogue(c2s, s2c)
    assert [r.answers for r in d.replies].count("AUTH_RESPONSE") == n + 1
    assert [a.kind for a in d.anomalies] == ["bare_cr"]


class _ScannedBuffer(bytearray):
    """The state machine's byte buffers, counting the bytes their searches look at: each
    find/count from its start to where it stops (the match, or its end)."""

    tally: Tally

    def find(self, sub, start=0, end=None):  # type: ignore[override]
        at = super().find(sub, start, end)
        stop = len(self) if end is None else min(end, len(self))
        self.tally.add(max(0, (at + 1 if at >= 0 else stop) - start))
        return at

    def count(self, sub, start=0, end=None):  # type: ignore[override]
        stop = len(self) if end is None else min(end, len(self))
        self.tally.add(max(0, stop - start))
        return super().count(sub, start, end)


class _ScanningPattern:
    """A compiled pattern counting the bytes each search looks at, as _ScannedBuffer."""

    def __init__(self, pattern, tally: Tally) -> None:
        self.pattern, self.tally = pattern, tally

    def search(self, buf, pos=0, endpos=None):
        m = self.pattern.search(buf, pos, len(buf) if endpos is None else endpos)
        stop = len(buf) if endpos is None else min(endpos, len(buf))
        self.tally.add(max(0, (m.start() + 1 if m else stop) - pos))
        return m

    def __getattr__(self, name):
        return getattr(self.pattern, name)


def _bytes_scanned(monkeypatch, client: bytes, server: bytes) -> tuple[int, list]:
    """The bytes the state machine's line-end searches looked at, reading a dialogue fed whole
    in each direction, and its events."""
    tally = Tally(10**12, "bytes scanned")
    buffer = type("Buffer", (_ScannedBuffer,), {"tally": tally})
    with monkeypatch.context() as m:
        m.setattr(machine, "bytearray", buffer, raising=False)
        for name in ("_EOL_RE", "_NOT_CR_RE"):
            m.setattr(machine, name, _ScanningPattern(getattr(machine, name), tally))
        conv = SmtpConversation()
        for direction, data in (("s2c", server), ("c2s", client)):
            conv.feed(direction, data)
            conv.feed_eof(direction)
        events = drain(conv)
    return tally.count, events


_LONE_CR_DIALOGUES = {  # name: n -> (client, server), n + 2 replies each
    "commands": lambda n: (b"EHLO a\r\n" + b"NOOP\r" * n + b"QUIT\r\n",
                           b"220 mx\r\n" + b"250 ok\r\n" * (n + 2)),
    "cr_run": lambda n: (b"AUTH LOGIN\r\n" + b"\r" * n + b"QUIT\r\n",
                         b"220 mx\r\n" + b"334 VXNlcm5hbWU6\r\n" * (n + 2)),
    "replies": lambda n: (b"EHLO a\r\n" + b"NOOP\r\n" * (n + 1),
                          b"220 mx\r\n250 ok\r\n" + b"250 ok\r" * n + b"250 ok\r\n"),
}


@pytest.mark.parametrize("name", sorted(_LONE_CR_DIALOGUES))
def test_lone_cr_lines_are_found_in_work_linear_in_the_bytes(monkeypatch, name):
    """Each lone-CR line's end was looked for to the end of its run (no LF in it: the whole
    buffer), so 60,000 NOOPs each ended by a lone CR, each answered, took seconds, and so did
    a run of CRs (each an empty line: here auth responses) and replies ended so. Now each
    search stops at the line's end (its first CR or LF, and the CRs after it, looked at
    once)."""
    scanned = []
    for n in (2000, 8000):
        client, server = _LONE_CR_DIALOGUES[name](n)
        work, events = _bytes_scanned(monkeypatch, client, server)
        assert [type(e).__name__ for e in events].count("Reply") == n + 2
        assert [e.kind for e in events if isinstance(e, Anomaly)] == ["bare_cr"]
        scanned.append(work)
        assert work <= 8 * (len(client) + len(server)), n
    assert scanned[1] <= 4.5 * scanned[0]  # 4 times the bytes, about 4 times the work

_CR_RUNS = {  # a run of CRs longer than MAX_LINE + 1 (6 + 1 here), and what follows it
    "lone_then_text": (b"EHLO a" + b"\r" * 10 + b"x\r\nQUIT\r\n", b"250 ok\r\n" * 12),
    "own_line": (b"NOOP\r\n" + b"\r" * 9 + b"NOOP\r\n", b"250 ok\r\n" * 11),
    "long_head": (b"NOOP 0123456789" + b"\r" * 9 + b"QUIT\r\n", b"250 ok\r\n" * 11),
    "then_lf": (b"EHLO a" + b"\r" * 10 + b"\nQUIT\r\n", b"250 ok\r\n221 bye\r\n"),
    "at_eof": (b"EHLO a\r\n" + b"\r" * 12, b"250 ok\r\n500 what\r\n"),
    "auth": (b"AUTH LOGIN\r\n" + b"\r" * 9 + b"dXNlcg==\r\n", b"334 VXNlcm5hbWU6\r\n" * 11),
    "content": (b"NOOP" + b"\r" * 9 + b"x\r\n.\r\nQUIT\r\n",
                b"250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"),
    "starttls": (b"STARTTLS" + b"\r" * 9 + b"\x16\x03\x01\x00\x01\x01",
                 b"220 go ahead\r\n\x16\x03\x03\x00\x01\x01"),
    "reply": (b"NOOP\r\nQUIT\r\n", b"250 ok" + b"\r" * 9 + b"x\r\n221 bye\r\n"),
}


@pytest.mark.parametrize("name", sorted(_CR_RUNS))
def test_a_long_run_of_crs_reads_the_same_wherever_a_piece_ends(name, monkeypatch):
    """Each CR of a run that an LF does not end is a line's end (a lone CR), and a run
    before an LF is one line end: which it is, only the byte after the run tells. A run
    longer than MAX_LINE + 1 at the end of a fed piece is not kept (its buffer stays small)
    but counted, so the dialogue is the same wherever the pieces end; it used to be read as
    the tail of one long line, a dozen lines fewer."""
    monkeypatch.setattr(machine, "MAX_LINE", 6)
    c, s = _CR_RUNS[name]
    c2s, s2c = session(("s", b"220 mx\r\n"), ("c", c), ("s", s))
    one = whole(c2s, s2c)
    for which, data in (("c2s", c2s.data), ("s2c", s2c.data)):
        for k in range(len(data) + 1):
            other = [("s2c" if which == "c2s" else "c2s", p)
                     for p in pieces(s2c if which == "c2s" else c2s)]
            cut = [(which, ("data", 0, data[:k])), (which, ("data", k, data[k:])),
                   (which, ("eof", len(data), b""))]
            assert run(other + cut) == one, (which, k)  # the first piece read before the next
    assert parse_dialogue(c2s, s2c) == dialogue_of(one, c2s, s2c)


def _public(c2s: Stream, s2c: Stream, implicit: bool, cut: CutStart, sizes=None) -> SmtpDialogue:
    """The public API, each direction fed from its cut offset, drained after every piece."""
    sched = [("c2s", p) for p in pieces(c2s, sizes, True, cut.c2s_offset)]
    sched += [("s2c", p) for p in pieces(s2c, sizes, True, cut.s2c_offset)]
    return dialogue_of(run(sched, implicit, True, cut, (c2s, s2c)), c2s, s2c)


def test_implicit_tls_read_from_a_cut_checks_its_first_bytes():
    """TLS begins at 0 on an implicit-TLS port; read from a cut past it, the first bytes read
    are still the ones to check (parse_dialogue used to feed none)."""
    c2s, s2c = Stream(b"", [], [0], [1]), Stream(b"250-STARTTLS\r\n", [], [0], [1])
    cut = CutStart(0, 2, 2)
    d = parse_dialogue(c2s, s2c, implicit_tls=True, cut=cut)
    assert [(a.kind, a.offset) for a in d.anomalies] == [("not_tls", 2)]
    assert d == _public(c2s, s2c, True, cut) == _public(c2s, s2c, True, cut, [1])


def test_lead_reply_read_to_its_end_whatever_the_chunking():
    """A reply begun before the lead's end is read to its end even when its bytes arrive
    later (the state machine used to stop at the lead's end if it had to wait for them)."""
    text = b"220 mx.contoso.com Microsoft ESMTP MAIL Service ready\r\n\x16"
    c2s, s2c = Stream(b"", [], [0], [2]), Stream(text, [], [0, 29], [1, 3])
    cut = CutStart(0, 30, 31)
    d = parse_dialogue(c2s, s2c, cut=cut)
    assert [(a.kind, a.offset) for a in d.anomalies] == [
        ("bad_reply_line", 30), ("missing_line_ending", 55), ("bad_reply_line", 55),
        ("no_banner", 56),
    ]
    assert d == _public(c2s, s2c, False, cut) == _public(c2s, s2c, False, cut, [1])
    assert d == dialogue_of(
        run([("c2s", ("eof", 0, b"")), ("s2c", ("data", 30, text[30:])), ("s2c", ("eof", 56, b""))],
            drain_each=False, cut=cut), c2s, s2c)


def test_tls_that_killed_the_lead_reply_infers_no_starttls():
    """A lead reply whose next line is a TLS record writes the server's direction off
    (unexpected_tls); those same bytes must not then be taken as "TLS came first, STARTTLS
    was accepted before the capture". The check used to look at the head seen before the
    read, so the answer depended on whether the client's end was known first."""
    text = (b"550 5.7.64 TenantAttribution; Relay Access Denied [BN8NAM12FT041.eop-nam12.prod"
            b".protection.outlook.com 2024-01-15T09:30:01.123Z]\r\n\x16\x03\x03\x00\x02")
    c2s, s2c = Stream(b"", [], [0], [1]), Stream(text, [], [0, 17, 34, 51, 68, 85, 102, 119],
                                                 [1, 2, 3, 4, 5, 6, 7, 8])
    cut = CutStart(0, 71, 72)
    d = parse_dialogue(c2s, s2c, cut=cut)
    kinds = [a.kind for a in d.anomalies]
    assert kinds == ["bad_reply_line", "unexpected_tls", "no_banner"]
    assert d.starttls_accepted is None and d.tls_s2c_offset is None
    late_client_end = [("s2c", ("data", 71, text[71:])), ("s2c", ("eof", len(text), b"")),
                       ("c2s", ("eof", 0, b""))]
    assert d == dialogue_of(run(late_client_end, drain_each=False, cut=cut), c2s, s2c)
    assert d == _public(c2s, s2c, False, cut) == _public(c2s, s2c, False, cut, [1])


def test_tls_after_the_lead_whatever_the_chunking():
    """After the lead's replies, server TLS records mean a cut STARTTLS reply only if nothing
    of the piece was read; that used to be judged by a buffer position, which depends on how
    the bytes were fed."""
    c2s, s2c = session(("s", b"220-mx\r\n220 ready\r\n"), ("c", b"\x16"), ("s", SERVER_HELLO))
    cut = CutStart(0, 0, 1)
    d = parse_dialogue(c2s, s2c, cut=cut)
    kinds = [(a.kind, a.offset) for a in d.anomalies]
    assert d.banner_code == 220 and ("unexpected_tls", 19) in kinds
    assert "reply_lost" not in [k for k, _ in kinds]
    with mock.patch.object(parse, "FEED_CHUNK", 1):
        assert parse_dialogue(c2s, s2c, cut=cut, _general=True) == d
    assert d == _public(c2s, s2c, False, cut) == _public(c2s, s2c, False, cut, [1])


@pytest.mark.parametrize(("sent", "text"), [
    (b"250 2.1.0 SenLOSTder OK\r\n", "2.1.0 Sender OK"),  # a gap inside the text
    (b"25LOST0 2.1.0 Sender OK\r\n", "2.1.0 Sender OK"),  # ... inside the code
    (b"250 2.1.0 caf\xc3LOST\xa9 OK\r\n", "2.1.0 caf\u00e9 OK"),  # ... inside a character
    (b"250-2.1.0 one\r\n250 2.1.0 SenLOSTder OK\r\n", "2.1.0 Sender OK"),  # in a last line
    (b"250 2.1.0 SenLOSTder\x07 OK\r\n", "2.1.0 Sender\x07 OK"),  # a control byte after it
])
def test_a_reply_line_a_gap_cuts_is_read_on_past_the_gap(sent, text):
    """Zeek's line reader (ContentLine) keeps the head of a line a gap cuts and hands it on
    joined with the bytes after the gap up to the line's end, so Zeek's reply (and its
    smtp.log last_reply) is head and tail: the reply's text is that, whatever the gap cut
    (a reply whose code it cut was lost before), and ``gap_line`` is the line it cut."""
    c2s, s2c = starttls_refused_relay_denied()
    data = s2c.data.replace(b"250 2.1.0 Sender OK\r\n", sent)
    s2c = Stream(data, [], s2c.starts, s2c.frames).punch(data.index(b"LOST"), 4)
    for sizes in (None, [1], [3]):
        sched = [("c2s", p) for p in pieces(c2s, sizes)] + [("s2c", p) for p in pieces(s2c, sizes)]
        d = dialogue_of(run(sched), c2s, s2c)
        assert d == parse_dialogue(c2s, s2c)
        (r,) = [r for r in d.replies if r.answers == "MAIL"]
        assert (r.code, r.last_text or r.text, r.gap_line) == (250, text, r.lines - 1)
        assert [(x.code, x.answers) for x in d.replies[-2:]] == [(550, "RCPT"), (221, "QUIT")]


def test_a_tab_after_a_reply_code_ends_the_reply_as_a_space_does():
    """RFC 5321 §4.2 puts SP after the last line's code; servers also send a tab, and Zeek's
    SMTP analyzer (any byte but "-" there ends the reply, the text from the first non-blank)
    and tshark (smtp.response.code 250, parameter "2.1.0 Sender OK") read it as a space.  It
    was a bad reply line, so the RCPT's 550 answered the MAIL and QUIT's 221 the RCPT."""
    c2s, s2c = starttls_refused_relay_denied()
    data = s2c.data.replace(b"250 2.1.0 Sender OK", b"250\t2.1.0 Sender OK")
    s2c = Stream(data, [], s2c.starts, s2c.frames)
    d = parse_dialogue(c2s, s2c)
    assert d == dialogue_of(whole(c2s, s2c), c2s, s2c)
    assert [(r.code, r.answers) for r in d.replies[-3:]] == [
        (250, "MAIL"), (550, "RCPT"), (221, "QUIT")]
    assert (d.replies[-3].text, d.replies[-3].enhanced) == ("2.1.0 Sender OK", "2.1.0")
    assert d.anomalies == ()


def test_a_cut_starttls_reply_is_not_read_on_into_tls_records():
    """A gap took the end of the 220 to STARTTLS and the start of the ServerHello: the bytes
    after it are TLS, whose first LF byte ends no reply line, so the cut line is not read
    on past the gap (as it is when text follows): TLS begins where the gap does, as before
    cut lines were read on, not at that LF inside the ServerHello (not_tls)."""
    c2s, s2c = starttls_accepted()
    cut = s2c.data.index(b"ver ready")
    s2c = s2c.punch(cut, s2c.data.index(SERVER_HELLO) + 5 - cut)
    for sizes in (None, [1]):
        sched = [("c2s", p) for p in pieces(c2s, sizes)] + [("s2c", p) for p in pieces(s2c, sizes)]
        d = dialogue_of(run(sched), c2s, s2c)
        assert d == parse_dialogue(c2s, s2c)
        assert (d.starttls_accepted, d.starttls_reply.text, d.tls_s2c_offset, d.anomalies) == (
            True, "2.0.0 SMTP ser", cut, ())


@pytest.mark.parametrize("line", [b"MAIL FROM:<", b"250 2.1.0 Sender OK"])
def test_a_line_whose_lf_alone_a_gap_follows_ends_at_its_cr(line):
    """Zeek's ContentLine ends a line at a lone CR (CR_as_EOL, its default for SMTP) and
    swallows a LF right after it across a gap: a command or reply line ending in CR | gap |
    LF is whole before the gap (no ``cut``, no ``gap_line``), read as the dialogue with the
    gap after its CRLF is, whatever the chunking."""
    def lines(lf_after: bool) -> tuple[list, list]:
        c2s, s2c = starttls_refused_relay_denied()
        side = c2s if line.startswith(b"MAIL") else s2c
        end = side.data.index(b"\r\n", side.data.index(line)) + 1  # the LF
        data = side.data[:end + lf_after] + b"LOST" + side.data[end + lf_after:]
        cut = Stream(data, [], side.starts, side.frames).punch(end + lf_after, 4)
        c2s, s2c = (cut, s2c) if side is c2s else (c2s, cut)
        for sizes in (None, [1], [3]):
            sched = [("c2s", p) for p in pieces(c2s, sizes)]
            sched += [("s2c", p) for p in pieces(s2c, sizes)]
            d = dialogue_of(run(sched), c2s, s2c)
            assert d == parse_dialogue(c2s, s2c)
        return ([(c.verb, c.arg, c.cut) for c in d.commands],
                [(r.code, r.answers, r.last_text or r.text, r.gap_line) for r in d.replies])

    got = lines(False)
    assert got == lines(True)
    verb = "MAIL" if line.startswith(b"MAIL") else "RCPT"
    assert [x for x in got[0] if x[0] == verb][0][2] is False
