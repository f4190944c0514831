"""The shortcuts that keep a session's Python cost down give what the plain ways give:
records built through their slot descriptors, frames looked up many at a time, the TLS 1.3
inference kept for the session asked about again, endpoint texts kept per address."""

from __future__ import annotations

import dataclasses
from enum import IntEnum

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.judge import diagnose
from fastcap.pickling import maker
from fastcap.proto.smtp import dialogue as dialogue_module
from fastcap.proto.smtp import machine
from fastcap.proto.smtp.dialogue import CommandRecord, ReplyRecord, _DialogueBuilder
from fastcap.proto.smtp.events import AUTH_VERBS
from fastcap.proto.tls import const, parse_handshake
from fastcap.proto.tls.facts import AlertInfo, StreamStop, TlsAnomaly, Where
from fastcap.proto.tls.inference import ClientCertInference, _infer, infer_client_cert
from fastcap.session import addr_text, endpoint_text
from fastcap.tcp.reassembly import StreamDir
from fastcap.verdict import Verdict

from .test_tls import SESSIONS, flights, streams


@pytest.mark.parametrize("cls, values", [
    (ReplyRecord, (250, "2.0.0", "ok", 12, 7, "EHLO", "HELP", 3, 9, ((1, 251, "x"),), 2)),
    (CommandRecord, ("EHLO", "mail.example", 0, 4, 5, True)),
    (AlertInfo, (True, 2, 42, False, Where(3, 4))),
    (TlsAnomaly, (False, "tls.x", "odd", Where(0, None))),
    (StreamStop, (True, "end", "stream ended at offset 9", Where(9, 2))),
])
def test_maker_builds_what_the_class_builds(cls, values):
    make = maker(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for built in (make(*values), make(**dict(zip(names, values, strict=True)))):
        assert type(built) is cls and built == cls(*values)
        assert hash(built) == hash(cls(*values))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, names[0], values[0])
    with pytest.raises(TypeError):
        make(*values[:-1])  # no defaults: every field is given


def test_maker_wants_a_compact_class():
    with pytest.raises(TypeError, match="compact"):
        maker(ClientCertInference)  # frozen and slotted, but not compact


def _stream_dir(fake) -> StreamDir:
    ends = [*fake.starts[1:], len(fake.data)]
    return StreamDir(
        data=fake.data, gaps=list(fake.gaps),
        seg_offset=np.array(fake.starts, np.int64),
        seg_len=np.array([e - s for s, e in zip(fake.starts, ends, strict=True)], np.int32),
        seg_frame=np.array(fake.frames, np.int64), seen_bytes=len(fake.data), capped=False,
        isn=0, syn_frame=None, fin_frame=None, rst_frame=None)


def test_frames_at_is_frame_at_of_each_offset():
    s = StreamDir(data=bytes(40), gaps=[(10, 5)], seg_offset=np.array([0, 15, 30], np.int64),
                  seg_len=np.array([10, 10, 10], np.int32),
                  seg_frame=np.array([3, 8, 5], np.int64), seen_bytes=40, capped=False,
                  isn=0, syn_frame=None, fin_frame=None, rst_frame=None)
    offsets = [None, -1, 0, 9, 10, 14, 15, 24, 25, 30, 39, 40, 10**9]
    assert s.frames_at(offsets) == [None if o is None else s.frame_at(o) for o in offsets]
    assert s.frames_at(offsets) == [None, None, 3, 3, None, None, 8, 8, None, 5, 5, None, None]
    assert s.frames_at([]) == []


@pytest.mark.parametrize("args", SESSIONS, ids=lambda a: "-".join(map(str, a)))
def test_a_handshake_reads_the_same_with_frames_looked_up_at_once(args):
    c, s = streams(flights(*args), b"220 ready\r\n", b"220 ready\r\n")
    plain = parse_handshake(c, s, 11, 11)  # the test streams look frames up one by one
    cd, sd = _stream_dir(c), _stream_dir(s)
    assert parse_handshake(cd, sd, 11, 11) == plain
    assert plain.client_hello_at.frame is not None and plain.server_hello_at.frame is not None


def test_the_inference_kept_is_the_inference_made():
    hs = [parse_handshake(*streams(flights(*args))) for args in SESSIONS if args[0] == "1.3"]
    assert hs and all(h.tls13_encrypted for h in hs)
    for h in hs:
        first = infer_client_cert(h)
        assert first == _infer(h) and infer_client_cert(h) is first
    assert [infer_client_cert(h) for h in hs] == [_infer(h) for h in hs]
    tls12 = parse_handshake(*streams(flights("1.2", "optional", "client")))
    assert infer_client_cert(tls12) == _infer(tls12)
    assert not infer_client_cert(tls12).decided


def test_endpoint_text_is_the_same_for_any_bytes_like_address():
    v4 = b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, 7])
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    for addr, want in ((v4, "192.0.2.7:25"), (v6, "[2001:db8::1]:25")):
        assert endpoint_text(addr, 25) == want == endpoint_text(bytearray(addr), 25)
        assert endpoint_text(addr, 25) == want  # kept
    assert addr_text(v6) == "2001:db8::1"


_REPLIES = [
    b"220 mx.example ESMTP ready\r\n",
    b"250-mx.example Hello [192.0.2.7]\r\n250-SIZE 157286400\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
    b"250 2.1.0 Sender OK\r\n",
    b"550 5.7.64 TenantAttribution; Relay Access Denied\r\n",
    b"354\r\n",
    b"220 caf\xc3\xa9 \xff bytes\r\n",
    b"250-" + b"x" * 40 + b"\r\n250 " + b"y" * 3000 + b"\r\n",  # past the memo's length
]


@pytest.mark.parametrize("raw", _REPLIES)
def test_a_reply_kept_reads_as_one_read_now(raw):
    got = machine._reply_read(raw)
    again = machine._reply_read(raw)  # kept, when short
    now = machine._reply_read_now(raw, machine.MAX_LINE, machine.MAX_REPLY_LINES)
    assert got == again == now and got is not None
    code, texts, enhanced = got
    whole = machine._whole_reply(b"junk" + raw + b"250 next\r\n", 4)
    assert whole == (code, list(texts), 4 + len(raw))
    assert enhanced == machine._enhanced(list(texts))
    kept = len(raw) <= machine._REPLY_MEMO_MAX
    if raw.count(b"\r\n") == 1:
        assert (again is got) == kept
    else:  # kept by the lines after the first: those are the texts read before
        assert all(a is b for a, b in zip(again[1][1:], got[1][1:], strict=True)) == kept


def test_an_ehlo_reply_naming_a_new_client_reads_its_keywords_kept():
    # Exchange Online's EHLO reply names the client's address, so it recurs only after it
    def ehlo(addr: bytes) -> bytes:
        return (b"250-mx.example Hello [" + addr + b"]\r\n250-SIZE 157286400\r\n"
                b"250-STARTTLS\r\n250 8BITMIME\r\n")

    first = machine._reply_read(ehlo(b"192.0.2.7"))
    hits = machine._reply_lines_kept.cache_info().hits
    second = machine._reply_read(ehlo(b"192.0.2.8"))
    assert machine._reply_lines_kept.cache_info().hits == hits + 1
    assert second == (250, ("mx.example Hello [192.0.2.8]", *first[1][1:]), None)
    assert all(a is b for a, b in zip(first[1][1:], second[1][1:], strict=True))


_LINE_TEXT = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from([b"220", b"250", b"421", b"550"]),
    texts=st.lists(_LINE_TEXT, min_size=1, max_size=6),
    last_sep=st.sampled_from([b" ", b"\t", b""]),
    max_line=st.integers(1, 20),
    max_lines=st.integers(1, 7),
)
def test_a_reply_read_by_its_lines_reads_as_one_read_now(code, texts, last_sep, max_line,
                                                         max_lines):
    *more, last = texts
    raw = b"".join(code + b"-" + t + b"\r\n" for t in more)
    raw += code + last_sep + (last if last_sep else b"") + b"\r\n"
    assert machine._WHOLE_REPLY_RE.fullmatch(raw)  # a reply as _reply_at hands it over
    saved = machine.MAX_LINE, machine.MAX_REPLY_LINES
    machine.MAX_LINE, machine.MAX_REPLY_LINES = max_line, max_lines
    try:
        got, again = machine._reply_read(raw), machine._reply_read(raw)
    finally:
        machine.MAX_LINE, machine.MAX_REPLY_LINES = saved
    assert got == again == machine._reply_read_now(raw, max_line, max_lines)


@pytest.mark.parametrize("lines", [
    ("mx.example Hello [192.0.2.7]", "SIZE 157286400", "starttls", "", "  8BITMIME x"),
    ["mx.example", "PIPELINING", "AUTH LOGIN PLAIN"],  # a list, as the state machine has it
    ("mx.example",),
    ("mx.example", *[f"X-KEY{i} arg" for i in range(40)], "STARTTLS"),  # past the memo's size
])
def test_ehlo_keywords_kept_are_the_ones_read(lines):
    builder = _DialogueBuilder(lambda _: None, lambda _: None)
    builder.reply(250, None, lines, 0, "EHLO")
    hits = dialogue_module._capabilities_kept.cache_info().hits
    builder.reply(250, None, lines, 0, "EHLO")  # read again: kept, when short
    kept = len(lines) <= dialogue_module._CAPS_MEMO_LINES
    assert dialogue_module._capabilities_kept.cache_info().hits == hits + kept
    words = tuple(t.split(None, 1)[0].upper() for t in lines[1:] if t.split())
    dialogue = builder.finish()
    assert dialogue.capabilities == words
    assert dialogue.starttls_offered == ("STARTTLS" in words)


def test_a_kept_reply_still_obeys_the_caps_read_now(monkeypatch):
    raw = b"250-first\r\n250-second line\r\n250 third\r\n"
    assert machine._reply_read(raw) == (250, ("first", "second line", "third"), None)
    monkeypatch.setattr(machine, "MAX_REPLY_LINES", 2)
    assert machine._reply_read(raw) is None and machine._whole_reply(raw, 0) is None
    monkeypatch.setattr(machine, "MAX_REPLY_LINES", 128)
    monkeypatch.setattr(machine, "MAX_LINE", 8)
    assert machine._reply_read(raw) is None
    monkeypatch.undo()
    assert machine._reply_read(raw) == (250, ("first", "second line", "third"), None)


@pytest.mark.parametrize("head, want", [
    (b"EHLO mail.example", ("EHLO", "mail.example")),
    (b"ehlo\tmail.example", ("EHLO", "mail.example")),
    (b"STARTTLS", ("STARTTLS", "")),
    (b"MAIL FROM:<a@example.com> SIZE=10", ("MAIL", "FROM:<a@example.com> SIZE=10")),
    (b"BDAT 10 LAST", None),
    (b"FROB x", None),
    (b"", None),
    (b"-EHLO", None),
])
def test_a_known_command_reads_as_the_verb_pattern_does(head, want):
    assert machine._known_command(head) == want == machine._known_command(head)
    assert machine._known_command_now(head) == want


@pytest.mark.parametrize("head", [b"AUTH PLAIN c2VjcmV0", b"auth login", b"X-EXPS GSSAPI abc"])
def test_auth_lines_are_read_but_never_kept(head):
    before = machine._known_command_kept.cache_info()
    got = machine._known_command(head)
    assert got == machine._known_command_now(head) and got is not None
    assert got[0] in AUTH_VERBS and got[1] in ("PLAIN", "LOGIN", "GSSAPI")
    after = machine._known_command_kept.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


_ENUMS = [v for v in vars(const).values()
          if isinstance(v, type) and issubclass(v, IntEnum) and v is not IntEnum]


@pytest.mark.parametrize("enum", _ENUMS, ids=lambda e: e.__name__)
def test_name_of_is_the_enum_members_name(enum):
    for member in enum:
        assert const.name_of(enum, int(member)) == enum(int(member)).name
    for value, width, want in ((0x0A0A, 4, "GREASE(0x0a0a)"), (0x1234, 4, "unknown(0x1234)"),
                               (0xFE, 2, "unknown(0xfe)")):
        if value not in enum._value2member_map_:
            assert const.name_of(enum, value, width) == want


def test_version_name_table_is_the_rule_it_was_made_by():
    assert len(const._VERSION_NAMES) == len(const.TlsVersion)
    for value in [*const._VERSION_NAMES, 0x7F17, 0x7F1C, 0x0399, 0x1234, 0x0200]:
        assert const.version_name(value) == const._version_name(value)
    assert [const.version_name(v) for v in (0x0300, 0x0303, 0x0304, 0x7F17, 0x1234)] == [
        "SSLv3", "TLS1.2", "TLS1.3", "TLS1.3-draft-23", "unknown(0x1234)"]


def test_a_verdict_made_is_the_verdict_the_class_makes():
    for values in (("ok", "ok", "fine", "", 3), ("tls_alert", "error", "x", "y", None)):
        made = diagnose._verdict(*values)
        assert type(made) is Verdict and made == Verdict(*values)
        assert hash(made) == hash(Verdict(*values)) and made.to_dict() == Verdict(*values).to_dict()
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.code = "other"
