"""Captures that begin in the middle of a conversation (ring buffers, late starts, filters).

The main test cuts real generated sessions of every standard scenario at every packet
boundary (drop the first k packets), with full-size segments and with small ones that split
SMTP lines and TLS records across packets, so a cut also lands inside a line or a record.
Whenever the cut keeps the messages that decide the client-certificate verdict, the verdict
equals the whole capture's; otherwise the session must say that it cannot tell and claim
nothing about the client certificate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
from bisect import bisect_right
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.judge.diagnose import CODES
from fastcap.judge.x509check import Analyzer
from fastcap.proto.midstart import (
    body_tail_at,
    chunk_tail_at,
    encrypted_at,
    find_start,
    tls_chain_at,
    unit_at,
)
from fastcap.proto.smtp import NEED_DATA, CutStart, SmtpConversation, parse_dialogue
from fastcap.run.scanner import scan, trust_store
from fastcap.session import iter_sessions
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import write_pcap

from .test_verdict_captures import _tcp_payload

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CAPTURE_NS = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9
SENDER = "mail.fabrikam.com"
# Verdicts that answer "did the client present a good certificate?"
CLIENT_CODES = frozenset(
    {"ok", "no_client_cert"}
    | {c for c in CODES if c.startswith("client_cert_")} - {"client_cert_not_captured"}
)
STARTTLS_CODES = frozenset({"starttls_refused", "starttls_not_offered"})
SEGMENT_SIZES = (1460, 200)  # whole flights per packet; records and lines split
MISREAD = frozenset({"not_tls", "unexpected_tls", "bad_reply_line", "bad_command", "not_smtp"})


def _record_start(data: bytes, tls_at: int, offset: int) -> int:
    """Start of the TLS record (walked from ``tls_at``) that holds stream byte ``offset``."""
    i = tls_at
    while i + 5 <= len(data):
        end = i + 5 + (data[i + 3] << 8 | data[i + 4])
        if offset < end:
            return i
        i = end
    raise AssertionError(f"offset {offset} is past the TLS records")


@dataclass
class Whole:
    """A generated session and what decides its verdicts, in stream offsets."""

    name: str
    records: list
    client_port: int
    codes: set[str]
    # stream offset a cut may reach (first kept byte) per direction, for each deciding fact
    needs: list[tuple[int, int]] = field(default_factory=list)  # (c2s limit, s2c limit)

    def cut_offsets(self, k: int) -> tuple[int, int]:
        """First stream offset kept per direction when the first k packets are dropped."""
        c = s = 0
        for r in self.records[:k]:
            port, payload = _tcp_payload(r.data)
            if port == self.client_port:
                c += len(payload)
            else:
                s += len(payload)
        return c, s

    def decisive_kept(self, k: int) -> bool:
        c, s = self.cut_offsets(k)
        return any(c <= c_need and s <= s_need for c_need, s_need in self.needs)


def _needs(session) -> list[tuple[int, int]]:
    """The cut offsets (c2s, s2c) up to which the deciding messages are all still there:
    any one pair suffices. For TLS: the server's flight from its ServerHello (or, when it asked
    for a certificate, its CertificateRequest) and, when asked, the client's flight from its
    ClientHello (or its Certificate message). For plaintext: the command and its reply."""
    smtp, tls = session.smtp, session.tls
    inf = 1 << 62
    if tls is None:
        if smtp.starttls_reply is not None:  # refused
            cmd = next(c for c in smtp.commands if c.verb == "STARTTLS")
            return [(cmd.offset, smtp.starttls_reply.offset)]
        ehlo = next(c for c in smtp.commands if c.verb == "EHLO")
        reply = next(r for r in smtp.replies if r.answers == "EHLO")
        return [(ehlo.offset, reply.offset)]
    c2s, s2c = session.c2s, session.s2c
    c_at, s_at = smtp.tls_c2s_offset, smtp.tls_s2c_offset
    servers = [_record_start(s2c.data, s_at, tls.server_hello_at.offset)]
    if tls.cert_requested:
        servers.append(_record_start(s2c.data, s_at, tls.cert_request_at.offset))
    clients = [inf]
    if tls.cert_requested:
        clients = [_record_start(c2s.data, c_at, tls.client_hello_at.offset)]
        if tls.client_certificate_at is not None:
            clients.append(_record_start(c2s.data, c_at, tls.client_certificate_at.offset))
    return [(c, s) for c in clients for s in servers]


@pytest.fixture(scope="module")
def trust(tmp_path_factory):
    pki = make_pki(NOW)
    ca = tmp_path_factory.mktemp("mid") / "root.pem"
    ca.write_bytes(pki.root.pem)
    return pki, ca


@pytest.fixture(scope="module")
def wholes(trust, tmp_path_factory):
    """Every scenario once (one real handshake), rendered at each segment size."""
    pki, ca = trust
    d = tmp_path_factory.mktemp("whole")
    analyzer = Analyzer(trust_store("mozilla", ca))
    out: dict[tuple[str, int], Whole] = {}
    for name in SCENARIO_NAMES:
        sc = scenario(name, pki, start_ns=CAPTURE_NS)
        conv = converse(sc)
        for mss in SEGMENT_SIZES:
            recs = render(conv, dataclasses.replace(sc, mss=mss))
            path = d / f"{name}-{mss}.pcap"
            write_pcap(path, recs)
            (s,) = list(scan(path, analyzer=analyzer, expect_name=SENDER))
            (kept,) = list(iter_sessions(path, keep_streams=True))
            kept = dataclasses.replace(kept, smtp=s.smtp, tls=s.tls)
            w = Whole(name, recs, sc.client_port, {v.code for v in s.verdicts})
            w.needs = _needs(kept)
            out[name, mss] = w
    return out, analyzer


@pytest.mark.parametrize(("client_port", "ports"), [(25, (25,)), (587, (25, 587))])
def test_without_a_syn_between_two_served_ports_the_greeting_tells_the_server(
        trust, tmp_path, backend, client_port, ports):
    """No SYN, and both ends on selected ports (a client sending from port 25, or from 587
    with --ports 25,587): the first frame, the server's greeting, once made the server the
    client, and the session read as no_smtp.  The side that speaks a reply first is the
    server; the verdicts are those of the whole capture."""
    pki, ca = trust
    analyzer = Analyzer(trust_store("mozilla", ca))
    for name in ("no_client_cert", "starttls_not_offered"):
        sc = dataclasses.replace(scenario(name, pki, start_ns=CAPTURE_NS),
                                 client_port=client_port)
        recs = render(converse(sc), sc)
        whole, cut = tmp_path / "whole.pcap", tmp_path / "cut.pcap"
        write_pcap(whole, recs)
        write_pcap(cut, recs[3:])  # from the greeting: the TCP handshake is not captured
        (w,) = scan(whole, analyzer=analyzer, expect_name=SENDER, ports=ports)
        (s,) = scan(cut, analyzer=analyzer, expect_name=SENDER, ports=ports, backend=backend)
        assert (s.client, s.server, s.tcp.client_by) == (w.client, w.server, "reply"), name
        assert s.server.endswith(":25") and s.smtp.banner_code == 220
        assert [v.code for v in s.verdicts] == [v.code for v in w.verdicts], name


@pytest.mark.parametrize("mss", SEGMENT_SIZES)
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_every_cut_keeps_or_withholds_the_verdict(wholes, tmp_path, backend, name, mss):
    cases, analyzer = wholes
    w = cases[name, mss]
    assert w.codes & (CLIENT_CODES | STARTTLS_CODES | {"tls13_encrypted"}), w.codes
    path = tmp_path / "cut.pcap"
    told_unknown = 0
    for k in range(len(w.records)):
        write_pcap(path, w.records[k:])
        sessions = list(scan(path, analyzer=analyzer, expect_name=SENDER, backend=backend))
        assert len(sessions) == 1, k
        (s,) = sessions
        codes = {v.code for v in s.verdicts}
        why = (k, [(v.code, v.message) for v in s.verdicts])
        # A cut at the start never makes the handshake look unfinished, and nothing is read
        # from a wrong offset: no record header taken from inside a record, no TLS as SMTP.
        assert "handshake_incomplete" not in codes, why
        if s.tls is not None:
            assert not [x for x in s.tls.stops if x.reason in ("not_tls", "corrupt")], why
        assert not {a.kind for a in s.smtp.anomalies} & MISREAD, why
        if k <= 3:  # only the TCP handshake is gone: the conversation opens as it did
            assert codes == w.codes and s.mid_session is None, why
            continue
        c_cut, s_cut = w.cut_offsets(k)
        if s.smtp.replies or s.smtp.commands or s.tls is not None:
            assert "capture_started_mid_session" in codes, why
            assert s.mid_session is not None and s.mid_session.first_frame == 1
        if w.decisive_kept(k):
            assert codes & CLIENT_CODES == w.codes & CLIENT_CODES, why
            assert codes & STARTTLS_CODES == w.codes & STARTTLS_CODES, why
            assert ("tls13_encrypted" in codes) == ("tls13_encrypted" in w.codes), why
            assert "client_cert_not_captured" not in codes, why
        else:
            assert not codes & (CLIENT_CODES | STARTTLS_CODES), why
            if s.tls is not None and s.tls.history:
                (v,) = [v for v in s.verdicts if v.code == "client_cert_not_captured"]
                assert v.severity == "warning" and "not visible" in v.message, why
                told_unknown += 1
    if w.codes & CLIENT_CODES or "tls13_encrypted" in w.codes:
        assert told_unknown, "no cut lost the deciding messages: the test cut too little"


def test_capture_starting_at_starttls_reads_the_whole_handshake(wholes, tmp_path):
    """The reported case: no SYN, banner or EHLO; the client's stream begins with STARTTLS."""
    cases, analyzer = wholes
    w = cases["ok_client_cert", 1460]
    k = next(i for i, r in enumerate(w.records)
             if _tcp_payload(r.data)[1].startswith(b"STARTTLS"))
    path = tmp_path / "starttls.pcap"
    write_pcap(path, w.records[k:])
    (s,) = list(scan(path, analyzer=analyzer, expect_name=SENDER))
    assert s.tls.outcome == "completed" and {x.reason for x in s.tls.stops} <= {"end"}
    assert s.tls.server_hello is not None and s.tls.client_certificate
    assert s.smtp.starttls_accepted and s.smtp.banner_text is None
    codes = [v.code for v in s.verdicts]
    assert codes[0] == "ok" and "capture_started_mid_session" in codes
    (v,) = [v for v in s.verdicts if v.code == "capture_started_mid_session"]
    assert v.severity == "info" and v.frame == 1
    assert "after the SMTP greeting and EHLO" in v.message
    assert "client's stream begins with STARTTLS (frame 1)" in v.message
    assert "server's stream begins with a 220 reply (frame 2)" in v.message
    d = s.to_dict()["mid_session"]
    assert d["c2s"]["what"] == "STARTTLS" and d["s2c"]["kind"] == "smtp"
    assert pickle.loads(pickle.dumps(s)).mid_session == s.mid_session  # -j N copies sessions


def test_client_certificate_cut_off_says_what_is_missing(wholes, tmp_path):
    """The capture keeps the server's flight with its CertificateRequest but the client's
    stream begins after (or inside) its Certificate, as when the client's first packets of
    that flight were lost: whether a certificate was sent is not visible, and its chain is
    not judged."""
    cases, analyzer = wholes
    w = cases["expired_client_cert", 200]
    k = next(i for i, r in enumerate(w.records)
             if (p := _tcp_payload(r.data))[0] != w.client_port and p[1][:1] == b"\x16")
    path = tmp_path / "late.pcap"
    seen = set()
    for j in range(1, 12):  # drop the client's first j data packets from the ServerHello on
        recs, dropped = [], 0
        for r in w.records[k:]:
            port, payload = _tcp_payload(r.data)
            if port == w.client_port and payload and dropped < j:
                dropped += 1
                continue
            recs.append(r)
        write_pcap(path, recs)
        (s,) = list(scan(path, analyzer=analyzer, expect_name=SENDER))
        t = s.tls
        codes = {v.code for v in s.verdicts}
        assert t.cert_requested and "handshake_incomplete" not in codes
        if t.client_certificate_at is not None:
            assert "client_cert_expired" in codes  # still in view: judged as a whole capture
            continue
        seen.add(s.mid_session.c2s.skipped > 0)
        (v,) = [v for v in s.verdicts if v.code == "client_cert_not_captured"]
        assert "asked for a client certificate" in v.message
        assert "whether one was sent is not visible" in v.message
        assert not codes & CLIENT_CODES
    assert seen == {True, False}  # began inside a record (skipped) and at one


def test_client_certificate_without_its_request_in_view_is_not_judged(wholes, tmp_path):
    """The capture begins right after the server's first flight: the client's Certificate is
    there, but the request it answered and the ServerHello are not."""
    cases, analyzer = wholes
    w = cases["expired_client_cert", 1460]
    k = 1 + next(i for i, r in enumerate(w.records)
                 if (p := _tcp_payload(r.data))[0] != w.client_port and p[1][:1] == b"\x16")
    path = tmp_path / "after-server-hello.pcap"
    write_pcap(path, w.records[k:])
    (s,) = list(scan(path, analyzer=analyzer, expect_name=SENDER))
    assert s.tls.client_certificate and s.tls.server_hello is None
    codes = {v.code for v in s.verdicts}
    assert not codes & CLIENT_CODES and "tls_alert" in codes  # the alert is still a fact
    (v,) = [v for v in s.verdicts if v.code == "client_cert_not_captured"]
    assert "a client Certificate message is in view (frame 1)" in v.message
    assert "not judged" in v.message and v.frame == s.mid_session.s2c.frame


# -- where a cut stream begins ---------------------------------------------------------------

REC = b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00"  # ServerHelloDone in a record
APP = b"\x17\x03\x03\x00\x03abc"


@pytest.mark.parametrize(("data", "from_client", "offset", "kind"), [
    (REC + APP, False, 0, "tls"),
    (b"TTLS\r\n" + REC + APP, True, 6, "tls"),
    (b"\x99" * 7 + APP + APP, False, 7, "tls"),  # the tail of a record, then records
    (b"\x17\x03\x03\x00\x02ab" + b"zz" + APP, False, 9, "tls"),  # one header is not a chain
    (b"ady\r\n250 OK\r\n", False, 5, "smtp"),
    (b"250-PIPELINING\r\n250 OK\r\n", False, 0, "smtp"),
    (b"LO mail\r\nSTARTTLS\r\n", True, 9, "smtp"),
    (b"ello\r\nsend the report\r\nQUIT\r\n", True, 23, "smtp"),  # prose is not a command
    (b"ehlo x\r\n", True, 0, "smtp"),  # at a segment start any case counts
    (b"no such thing here", False, 18, "none"),
    (b"", True, 0, "empty"),
])
def test_find_start(data, from_client, offset, kind):
    start = find_start(data, len(data), from_client)
    assert (start.offset, start.kind) == (offset, kind)
    assert start.skipped == (offset if kind != "empty" else 0)


def test_a_record_cut_by_the_end_of_the_data_counts_only_at_a_segment_start():
    rec = b"\x16\x03\x03\x01\x00" + bytes(100)  # a 256-byte record cut by the data's end
    assert tls_chain_at(rec, 0, len(rec)) and not tls_chain_at(rec, 0, len(rec), cut_ok=False)
    assert not tls_chain_at(b"\x16\x03\x03\x00\x00" + APP, 0, 13)  # empty records: no
    start = find_start(rec, len(rec), False)
    assert (start.offset, start.what) == (0, "a TLS handshake record")
    # After junk, a header whose length overshoots is as likely noise: nothing is read.
    assert find_start(b"junk" + rec, 4 + len(rec), False).kind == "none"
    whole = b"junk" + REC  # ... but a record that ends right at the end of the data is taken
    assert find_start(whole, len(whole), False).offset == 4


def test_encrypted_at_tells_ciphertext_from_plaintext_handshake():
    assert encrypted_at(APP, 0)
    assert not encrypted_at(REC, 0)
    assert encrypted_at(b"\x16\x03\x03\x00\x28" + b"\x9a\xbc\xde\xf0" + bytes(36), 0)
    assert encrypted_at(b"\x15\x03\x03\x00\x1a" + bytes(26), 0)
    assert not encrypted_at(b"\x15\x03\x03\x00\x02\x02\x28", 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_find_start_on_any_bytes(data, from_client):
    start = find_start(data, len(data), from_client)
    assert 0 <= start.offset <= len(data)
    if start.kind in ("smtp", "tls"):
        assert unit_at(data, start.offset, len(data), from_client) == start.kind
    else:
        assert start.offset == len(data)


# -- the SMTP reader from where the capture began --------------------------------------------


@dataclass
class Stream:
    data: bytes = b""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def frame_at(self, offset: int) -> int | None:
        i = bisect_right(self.starts, offset) - 1
        return self.frames[i] if 0 <= offset < len(self.data) and i >= 0 else None


def _streams(*msgs: tuple[str, bytes]) -> tuple[Stream, Stream]:
    c2s, s2c = Stream(), Stream()
    for i, (who, data) in enumerate(msgs, 1):
        s = c2s if who == "c" else s2c
        s.starts.append(len(s.data))
        s.frames.append(i)
        s.data += data
    return c2s, s2c


def test_replies_before_the_clients_first_byte_answer_lost_commands():
    c2s, s2c = _streams(("s", b"250-mx Hello\r\n250 STARTTLS\r\n"), ("c", b"STARTTLS\r\n"),
                        ("s", b"220 go ahead\r\n"), ("c", REC), ("s", REC))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 28))
    assert d.banner_text is None and d.starttls_offered is None
    assert [(r.code, r.answers) for r in d.replies] == [(250, None), (220, "STARTTLS")]
    assert "reply_before_capture" in {a.kind for a in d.anomalies}
    assert d.starttls_accepted and (d.tls_c2s_offset, d.tls_s2c_offset) == (10, 42)


def test_a_greeting_at_the_start_before_the_client_is_the_banner():
    c2s, s2c = _streams(("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO a\r\n"), ("s", b"250 mx\r\n"))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 14))
    assert d.banner_code == 220 and [r.answers for r in d.replies] == ["EHLO"]


def test_a_220_before_a_client_speaking_tls_answered_starttls():
    c2s, s2c = _streams(("s", b"220 2.0.0 ready\r\n"), ("c", REC + APP), ("s", REC))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 17))
    assert d.banner_text is None and d.starttls_accepted
    assert (d.tls_c2s_offset, d.tls_s2c_offset) == (0, 17)
    assert [(r.code, r.answers) for r in d.replies] == [(220, None)]


def test_a_354_before_the_clients_first_byte_means_message_content_follows():
    body = b"RCPT TO:<in@body>\r\nSTARTTLS\r\n.\r\n"
    c2s, s2c = _streams(("s", b"354 go ahead\r\n"), ("c", body), ("s", b"250 queued\r\n"),
                        ("c", b"QUIT\r\n"), ("s", b"221 bye\r\n"))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 14))
    assert [c.verb for c in d.commands] == ["QUIT"] and d.message_bytes == len(body) - 3
    assert [(r.code, r.answers) for r in d.replies] == [
        (354, None), (250, "END_OF_DATA"), (221, "QUIT")]
    assert d.starttls_accepted is None


CUT_DIALOGUES = {
    "replies_before_client": (b"TLS\r\n" + REC, b"ady\r\n250 OK\r\n220 go\r\n" + REC,
                              CutStart(5, 5, 21)),
    "greeting_first": (b"EHLO a\r\nQUIT\r\n", b"220 mx\r\n250 mx\r\n221 bye\r\n",
                       CutStart(0, 0, 8)),
    "tls_both": (REC + APP, b"\x99\x99" + REC + APP, CutStart(0, 2, 2)),
    "server_tls_client_starttls": (b"STARTTLS\r\n" + REC, REC, CutStart(0, 0, 0)),
    "content_after_354": (b"STARTTLS\r\n.\r\nQUIT\r\n", b"354 go\r\n250 ok\r\n221 bye\r\n",
                          CutStart(0, 0, 8)),
    "inside_content": (b"Send it to Bob\r\nRCPT TO:<x>\r\n.\r\nQUIT\r\n",
                       b"250 queued\r\n221 bye\r\n", CutStart(0, 0, 0, c2s_body=True)),
    "inside_chunk": (b"Send it\r\nQuit it\r\nBDAT 4 LAST\r\nHELPQUIT\r\n",
                     b"250 chunk ok\r\n250 queued\r\n221 bye\r\n",
                     CutStart(0, 0, 0, c2s_chunk_end=18)),
}


BODY_TAIL = b"Send the figures to Bob before noon.\r\nThanks\r\n.\r\n"


@pytest.mark.parametrize("data,tail", [
    (BODY_TAIL + b"QUIT\r\n", True),
    (b"ll be late.\r\nHELP\r\n.\r\n", True),  # a cut line, then one like a command
    (b".\r\nQUIT\r\n", True),  # the end-of-data line alone in its segment
    (b"RCPT TO:<b@c>\r\nDATA\r\n" + BODY_TAIL, False),  # the content's DATA is in view
    (b"BDAT 40 LAST\r\n" + BODY_TAIL, False),
    (b"QUIT\r\n", False),  # no end-of-data line: commands
    (b"\x17\x03\x03\x00\x20\x01\n.\r\n", False),  # ciphertext that holds "\n.\r\n"
])
def test_body_tail_at(data, tail):
    assert body_tail_at(data, 0, len(data)) is tail


def test_a_capture_that_begins_inside_message_content_reads_it_as_content():
    """No 354 in view, but a "." line before any DATA: the client's lines up to it are the
    tail of message content, even those that read like commands (SEND, RCPT), and the 250
    after it answers the content, as after a DATA."""
    c2s, s2c = _streams(("c", BODY_TAIL), ("s", b"250 2.6.0 Queued\r\n"), ("c", b"QUIT\r\n"),
                        ("s", b"221 2.0.0 Bye\r\n"))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 0, c2s_body=True))
    assert [c.verb for c in d.commands] == ["QUIT"] and d.message_bytes == len(BODY_TAIL) - 3
    assert [(r.code, r.answers) for r in d.replies] == [(250, "END_OF_DATA"), (221, "QUIT")]
    assert [a.kind for a in d.anomalies] == ["no_banner"]


def test_a_capture_cut_inside_message_content_end_to_end(tmp_path, backend):
    """The capture's first frame is a line of the body that reads like a command."""
    from fastcap_synth.scenarios import make_pki as pki_for

    head = b"Subject: report\r\n\r\n".ljust(198, b"x") + b"\r\n"  # 200 bytes: one segment
    body = (head + BODY_TAIL[:-5]).decode()  # the generator ends the line and adds "."
    sc = scenario("starttls_not_offered", pki_for(), client_port=40004, mss=200,
                  commands=[("MAIL FROM:<a@fabrikam.com>", "250 2.1.0 Sender OK"),
                            ("RCPT TO:<b@contoso.com>", "250 2.1.5 Recipient OK"),
                            ("DATA", "354 Start mail input"),
                            (body + "\r\n.", "250 2.6.0 Queued mail for delivery"),
                            ("QUIT", "221 2.0.0 Bye")])
    records = render(converse(sc), sc)
    k = next(i for i, r in enumerate(records) if _tcp_payload(r.data)[1].startswith(b"Send "))
    path = tmp_path / "inside-content.pcap"
    write_pcap(path, records[k:])
    (s,) = list(iter_sessions(path, backend=backend))
    assert s.mid_session.c2s.kind == "body" and s.mid_session.c2s.frame == 1
    assert [c.verb for c in s.smtp.commands] == ["QUIT"]
    assert [r.answers for r in s.smtp.replies] == ["END_OF_DATA", "QUIT"]


CHUNK_TAIL = b"Send the figures to Bob before noon.\r\nThanks, Quit\r\n"


@pytest.mark.parametrize("data,at", [
    (CHUNK_TAIL + b"BDAT 9 LAST\r\nRegards\r\nQUIT\r\n", len(CHUNK_TAIL)),
    (b"res to Bob" + b"BDAT 9 LAST\r\nRegards\r\n", 10),  # a chunk ends mid-line
    (CHUNK_TAIL + b"BDAT 900\r\nRegards\r\n", len(CHUNK_TAIL)),  # the data ends inside
    (b"x\r\nBDAT 4\r\nabcdBDAT 0 LAST\r\n", 3),  # chunk after chunk
    (CHUNK_TAIL + b"BDAT 9 LAST\r\nRegards\r\nxQUIT\r\n", None),  # no command after it
    (b"RCPT TO:<b@c>\r\nBDAT 9 LAST\r\nRegards\r\n", None),  # commands before it
    (CHUNK_TAIL + b"QUIT\r\nBDAT 9 LAST\r\nRegards\r\n", None),
    (b"BDAT 9 LAST\r\nRegards\r\nQUIT\r\n", None),  # begins with the command
    (CHUNK_TAIL + b".\r\nBDAT 9 LAST\r\nRegards\r\n", None),  # DATA's content
    (CHUNK_TAIL + b"QUIT\r\n", None),  # no BDAT in view
])
def test_chunk_tail_at(data, at):
    assert chunk_tail_at(data, 0, len(data)) == at


def test_a_capture_that_begins_inside_a_bdat_chunk_reads_it_as_content():
    """A BDAT chunk is sized, not terminated (RFC 3030 §2): the client's bytes up to the
    next BDAT are the tail of the chunk before it, lines that read like commands (SEND,
    QUIT) too, and the 250 after them answers that chunk."""
    c2s, s2c = _streams(("c", CHUNK_TAIL + b"BDAT 9 LAST\r\nRegards\r\n"),
                        ("s", b"250 2.0.0 chunk ok\r\n250 2.6.0 Queued\r\n"),
                        ("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n"))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, 0, c2s_chunk_end=len(CHUNK_TAIL)))
    assert [c.verb for c in d.commands] == ["BDAT", "QUIT"]
    assert d.message_bytes == len(CHUNK_TAIL) + 9
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "BDAT"), (250, "BDAT"), (221, "QUIT")]
    assert [a.kind for a in d.anomalies] == ["no_banner"]
    # A reply captured before the client's first byte answers a command sent before the
    # capture: the client's bytes are still the chunk's tail.
    lead = b"250 2.1.5 Recipient OK\r\n"
    c2s, s2c = _streams(("s", lead), ("c", CHUNK_TAIL + b"BDAT 9 LAST\r\nRegards\r\n"),
                        ("s", b"250 2.0.0 chunk ok\r\n250 2.6.0 Queued\r\n"))
    d = parse_dialogue(c2s, s2c, cut=CutStart(0, 0, len(lead), c2s_chunk_end=len(CHUNK_TAIL)))
    assert [(r.code, r.answers) for r in d.replies] == [(250, None), (250, "BDAT"),
                                                         (250, "BDAT")]
    assert [c.verb for c in d.commands] == ["BDAT"] and d.message_bytes == len(CHUNK_TAIL) + 9


def test_a_capture_cut_inside_a_bdat_chunk_end_to_end(tmp_path, backend):
    """The capture's first frame is inside the first of two BDAT chunks, at a line that
    reads like a command (tshark reads Send, Than and Quit there as commands: it keeps no
    state across a capture that began mid-chunk)."""
    from fastcap_synth.scenarios import make_pki as pki_for

    head = b"Subject: report\r\n\r\n".ljust(188, b"x") + b"\r\n"  # with "BDAT n": 200
    chunk = head + CHUNK_TAIL
    first = b"BDAT %d\r\n" % len(chunk) + chunk
    sc = scenario("starttls_not_offered", pki_for(), client_port=40005, mss=200,
                  commands=[("MAIL FROM:<a@fabrikam.com>", "250 2.1.0 Sender OK"),
                            ("RCPT TO:<b@contoso.com>", "250 2.1.5 Recipient OK"),
                            (first.decode()[:-2], "250 2.0.0 chunk received"),
                            ("BDAT 9 LAST\r\nRegards", "250 2.6.0 Queued mail for delivery"),
                            ("QUIT", "221 2.0.0 Bye")])
    records = render(converse(sc), sc)
    k = next(i for i, r in enumerate(records) if _tcp_payload(r.data)[1].startswith(b"Send "))
    path = tmp_path / "inside-chunk.pcap"
    write_pcap(path, records[k:])
    (s,) = list(iter_sessions(path, backend=backend))
    assert s.mid_session.c2s.kind == "chunk" and s.mid_session.c2s.frame == 1
    assert [c.verb for c in s.smtp.commands] == ["BDAT", "QUIT"]
    assert [r.answers for r in s.smtp.replies] == ["BDAT", "BDAT", "QUIT"]
    assert s.smtp.message_bytes == len(CHUNK_TAIL) + 9


def _drain(conv: SmtpConversation) -> list:
    out = []
    while (ev := conv.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def _feed_all(plan: list[tuple[str, bytes | None, int]], cut: CutStart) -> list:
    conv = SmtpConversation(cut=cut)
    out = []
    for direction, data, off in plan:
        if data is None:
            conv.feed_eof(direction)
        else:
            conv.feed(direction, data, off)
        out += _drain(conv)
    return out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CUT_DIALOGUES)), st.data())
def test_reading_from_a_cut_does_not_depend_on_chunking(name, data):
    c2s, s2c, cut = CUT_DIALOGUES[name]

    def pieces(direction: str, stream: bytes, start: int) -> list:
        cuts = sorted(data.draw(st.sets(st.integers(start + 1, max(start + 1, len(stream) - 1)),
                                        max_size=6)))
        bounds = [start, *[c for c in cuts if c < len(stream)], len(stream)]
        pairs = zip(bounds[:-1], bounds[1:], strict=True)
        return [(direction, stream[a:b], a) for a, b in pairs if b > a]

    queues = [pieces("c2s", c2s, cut.c2s_offset), pieces("s2c", s2c, cut.s2c_offset)]
    plan = []
    while queues[0] or queues[1]:
        q = queues[0] if queues[0] and (not queues[1] or data.draw(st.booleans())) else queues[1]
        plan.append(q.pop(0))
    plan += [("c2s", None, 0), ("s2c", None, 0)]
    whole = [("c2s", c2s[cut.c2s_offset:], cut.c2s_offset),
             ("s2c", s2c[cut.s2c_offset:], cut.s2c_offset), ("c2s", None, 0), ("s2c", None, 0)]
    assert _feed_all(plan, cut) == _feed_all(whole, cut)
