"""Resumed TLS sessions, from real OpenSSL clients that resume (tests/resumecap.py): the
handshake records how it resumed, and the scan links each resumption to the full handshake
that established it, carrying over that handshake's client-certificate verdict."""

from __future__ import annotations

import hashlib
import ssl
from collections import Counter

import pytest

from fastcap.cli import main
from fastcap.judge.crosssession import CrossSession
from fastcap.out.follow import format_follow
from fastcap.proto.tls import parse_flights, parse_new_session_ticket
from fastcap.proto.tls.facts import ticket_digest
from fastcap.run import scanner
from fastcap.run.scanner import scan, scan_files
from fastcap.run.workers import SerialExecutor
from fastcap.session import iter_sessions
from fastcap_synth.scenarios import make_pki
from fastcap_synth.tlsgen import client_context, handshake, server_context

from .resumecap import build


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    return build(tmp_path_factory.mktemp("resume"))


def _scan(path, ca, **kw):
    run = scan(path, ca_file=ca, **kw)
    return list(run), run.summary


def _verdicts(s):
    return {v.code: v for v in s.verdicts}


# ---------------------------------------------------------------------------- handshake facts


@pytest.mark.parametrize(("version", "tickets", "how"), [
    ("1.2", False, "session_id"), ("1.2", True, "ticket"), ("1.3", True, "psk"),
])  # fmt: skip
def test_handshake_records_how_it_resumed(version, tickets, how):
    pki = make_pki()
    sctx = server_context(pki.server, min_version=version, max_version=version)
    if not tickets:
        sctx.options |= ssl.OP_NO_TICKET
    cctx = client_context(min_version=version, max_version=version)
    first = handshake(sctx, cctx)
    again = handshake(sctx, cctx, session=first.client.session)
    assert again.outcome.resumed
    full, resumed = parse_flights(first.flights), parse_flights(again.flights)
    assert full.resumption is None and resumed.resumption == how
    assert resumed.outcome == "completed" and not resumed.server_certs
    d = resumed.to_dict()["resumption"]
    assert d["resumed"] == how
    if how == "session_id":
        assert full.established_session_id == resumed.server_hello.session_id != b""
        assert resumed.established_session_id is None
        assert full.to_dict()["resumption"]["established_session_id"] == \
            resumed.server_hello.session_id.hex()
    elif how == "ticket":  # issued in plaintext by the full handshake, offered back
        (ticket,) = full.session_tickets
        assert full.session_ticket_at is not None and "t" in full.history
        assert resumed.offered_ticket == ticket
        assert d["ticket_offered"] == {"length": len(ticket),
                                       "sha256": hashlib.sha256(ticket).hexdigest()}
        assert full.to_dict()["resumption"]["tickets_issued"] == [d["ticket_offered"]]
    else:  # TLS 1.3 tickets travel encrypted; the resumption offers its own in the clear
        assert full.session_tickets == () and "t" not in full.history
        assert resumed.offered_ticket and d["ticket_offered"] == {
            "length": len(resumed.offered_ticket),
            "sha256": hashlib.sha256(resumed.offered_ticket).hexdigest()}


def test_malformed_new_session_ticket_is_an_anomaly_not_a_crash():
    problems: list = []
    assert parse_new_session_ticket(b"\0\0\0\1\0\5ab", 0x0303, problems) is None
    assert problems and problems[0][0] == "tls.new_session_ticket.malformed"
    problems.clear()  # TLS 1.3 (met decrypted): age and nonce before, extensions after
    assert parse_new_session_ticket(b"\0\0\0\1\0\2ab", 0x0304, problems) is None
    assert problems[0][0] == "tls.new_session_ticket.malformed"
    nst = parse_new_session_ticket(b"\0\0\0\7" b"\0\0\0\1" b"\1n" b"\0\2ab" b"\0\0",
                                   0x0304, [])
    assert nst is not None and (nst.lifetime_hint, nst.ticket) == (7, b"ab")
    nst = parse_new_session_ticket(b"\0\0\0\7\0\2ab", 0x0303, [])
    assert nst is not None and (nst.lifetime_hint, nst.ticket) == (7, b"ab")


# ---------------------------------------------------------------------------- linking


def test_resumptions_inherit_the_original_client_certificate_verdict(caps):
    sessions, summary = _scan(caps.whole, caps.ca)
    assert [s.number for s in sessions] == list(range(1, 9))
    originals, resumed = sessions[:4], sessions[4:]
    assert [s.tls.resumption for s in sessions] == [None] * 4 + [p.how for p in caps.pairs]
    assert [set(_verdicts(s)) for s in originals] == [
        {"ok"}, {"no_client_cert"}, {"client_cert_expired"},
        {"tls13_encrypted", "client_cert_inferred_present"}]
    inherited = ("ok", "no_client_cert", "client_cert_expired")
    for o, r, code, how in zip(originals, resumed, inherited,
                               ("session ID", "session ticket", "session ticket"), strict=False):
        assert r.server == o.server
        got = _verdicts(r)
        assert set(got) == {"tls_session_resumed", code}
        link, orig = got["tls_session_resumed"], _verdicts(o)[code]
        sh = o.tls.server_hello_at.frame
        assert link.severity == "info" and link.frame == sh
        assert f"resumed by {how}" in link.message
        assert f"established by session {o.number} (frame {sh});" in link.message
        v = got[code]
        assert (v.severity, v.frame, v.hint) == (orig.severity, orig.frame, orig.hint)
        assert v.message == f"inherited from session {o.number} (frame {orig.frame}): " \
                            f"{orig.message}"
    # the inherited errors are still errors the admin acts on; the Postfix peer that asked
    # for a certificate went on without one, so the empty one is no problem there
    assert [scanner.has_problem(s) for s in resumed] == [False, False, True, False]
    assert summary.with_problems == 2 and summary.verdicts["tls_session_resumed"] == 4
    assert summary.verdicts["no_client_cert"] == 2 and summary.verdicts["ok"] == 2
    psk = _verdicts(resumed[3])
    assert set(psk) == {"tls_session_resumed", "tls13_encrypted"}
    assert "known only when the capture holds it and its keys are given" in \
        psk["tls_session_resumed"].message
    assert not any(v.code == "client_cert_not_requested" for s in sessions for v in s.verdicts)


def test_tls13_resumption_read_with_keys_inherits_like_tls12(caps):
    """A TLS 1.3 server issues its tickets encrypted; read with the key log, they are known,
    and the resumption that offers one back (in the clear) is linked to the handshake that
    issued it, as a TLS 1.2 one is.  The decrypted handshakes raise no anomaly."""
    sessions, _ = _scan(caps.whole, caps.ca, keylog=(str(caps.keys),))
    original, resumed = sessions[3], sessions[7]
    assert resumed.tls.resumption == "psk" and resumed.tls.offered_ticket in \
        original.tls.session_tickets
    assert "t" in original.tls.history and original.tls.session_ticket_at is not None
    assert not [a for s in sessions for a in s.tls.anomalies]
    assert set(_verdicts(original)) == {"ok"}
    got = _verdicts(resumed)
    assert set(got) == {"tls_session_resumed", "ok"}
    sh = original.tls.server_hello_at.frame
    assert f"resumed by session ticket (frame {resumed.tls.server_hello_at.frame}) the TLS " \
           f"session established by session 4 (frame {sh});" in got["tls_session_resumed"].message
    assert got["ok"].message.startswith("inherited from session 4")
    cut, _ = _scan(caps.resumptions, caps.ca, keylog=(str(caps.keys),))
    (alone,) = cut[3].verdicts  # with keys, but without the original: nothing inherited
    assert alone.code == "tls_session_resumed" and "the capture holds it" in alone.message


def test_resumption_whose_original_is_not_in_the_capture(caps):
    sessions, summary = _scan(caps.resumptions, caps.ca)
    assert [s.tls.resumption for s in sessions] == [p.how for p in caps.pairs]
    for s in sessions[:3]:
        assert set(_verdicts(s)) == {"tls_session_resumed"}  # no guess at the certificate
        v = s.verdicts[0]
        assert v.severity == "info" and v.frame == s.tls.server_hello_at.frame
        assert "established before the capture started; its client certificate cannot be " \
               "seen" in v.message
    assert set(_verdicts(sessions[3])) == {"tls_session_resumed", "tls13_encrypted"}
    assert summary.with_problems == 0


def test_split_scans_link_alike(caps, monkeypatch):
    def dicts(**kw):
        sessions, summary = _scan(caps.whole, caps.ca, **kw)
        return [s.to_dict() for s in sessions], summary.to_dict()

    whole = dicts()
    monkeypatch.setattr(scanner, "SPLIT_MIN_BYTES", 0)  # split even this small file
    assert dicts(jobs=2, parts=5) == whole  # worker processes read ranges, this one judges
    assert dicts(jobs=3, executor=SerialExecutor(), parts=3) == whole


def test_several_files_link_across_files_alike(caps):
    paths = [caps.originals, caps.resumptions]

    def dicts(**kw):
        return [([s.to_dict() for s in r.sessions], r.summary.to_dict(), r.error)
                for r in scan_files(paths, ca_file=caps.ca, **kw)]

    one = dicts()
    assert dicts(jobs=2, parts=5) == one
    assert dicts(jobs=3, executor=SerialExecutor(), parts=3) == one
    second = one[1][0]
    link = [v for v in second[0]["verdicts"] if v["code"] == "tls_session_resumed"][0]
    assert f"established by session 1 (frame {link['frame']}) of {caps.originals};" in \
        link["message"]
    assert {v["code"] for v in second[1]["verdicts"]} == {"no_client_cert",
                                                          "tls_session_resumed"}
    assert one[1][1]["with_problems"] == 1  # the expired certificate; the empty one is info


def test_link_reads_the_session_and_apply_stores_the_same(caps):
    def judged():  # judged, not yet linked
        return list(scan(caps.whole, ca_file=caps.ca, cross=CrossSession(enabled=False)))

    linked = [s.verdicts for s in _scan(caps.whole, caps.ca)[0]]
    read, stored = CrossSession(), CrossSession()
    seen = 0
    for s, t, want in zip(judged(), judged(), linked, strict=True):
        before = s.verdicts
        assert t.verdicts == before
        new = read.link(s, str(caps.whole))
        assert s.verdicts == before  # only read
        u = stored.apply(t, str(caps.whole))
        assert (u is not t) == (new is not None) and t.verdicts == before  # t stays as it was
        if new is None:
            assert u.verdicts == before == want
        else:
            assert isinstance(new, tuple) and u.verdicts == new == want != before
            seen += 1
    assert seen == 3  # the resumptions by session ID or ticket (a TLS 1.3 PSK links to nothing)
    assert CrossSession(enabled=False).link(judged()[4]) is None


@pytest.mark.parametrize("output", [["--format", "jsonl"], ["--format", "json"], ["--html"]])
def test_a_ticket_is_hashed_once_for_linking_and_every_output(caps, monkeypatch, tmp_path,
                                                             capsys, output):
    """jsonl writes each session right after linking it, json and the HTML report only after
    every session is linked: the digest travels with the handshake's facts, so a handshake
    holding a ticket hashes it once whatever the format, even when (as in a capture with
    more than the cache's 64 tickets between them) no digest is left from another session."""
    holders = Counter()
    for s in scan(caps.whole, ca_file=caps.ca, cross=CrossSession(enabled=False)):
        holders.update({*s.tls.session_tickets, s.tls.offered_ticket} - {None})
    hashed = Counter()
    real = hashlib.sha256

    def counted(data=b"", *args, **kw):
        if data in holders:
            hashed[bytes(data)] += 1
        return real(data, *args, **kw)

    real_link = CrossSession.link

    def link_after_many(self, s, path=None):
        ticket_digest.cache_clear()
        return real_link(self, s, path)

    monkeypatch.setattr(hashlib, "sha256", counted)
    monkeypatch.setattr(CrossSession, "link", link_after_many)
    ticket_digest.cache_clear()  # earlier tests scanned the same tickets
    html = output == ["--html"]
    if html:
        output = ["--html", str(tmp_path / "r.html")]
    main(["scan", "-j", "1", "--ca-file", str(caps.ca), *output, str(caps.whole)])
    written = capsys.readouterr().out
    assert len(holders) == 3 and max(holders.values()) == 2  # issued, then offered again
    assert hashed == holders
    # the report shows no digest; the JSON formats name every ticket by its own
    assert html or all(real(t).hexdigest() in written for t in holders)


def test_memory_is_bounded_and_what_is_forgotten_is_counted(caps):
    cross = CrossSession(limit=2)
    sessions, summary = _scan(caps.whole, caps.ca, cross=cross)
    assert cross.dropped > 0
    assert len(cross._origins) <= 2 and len(cross._asked) <= 2
    (key,) = [k for k in summary.limits if "forgotten" in k]
    assert summary.limits[key] == cross.dropped and "over 2 remembered" in key
    first = _verdicts(sessions[4])  # resumes session 1, whose ID was forgotten first
    assert set(first) == {"tls_session_resumed"}
    assert "forgotten: over 2 remembered" in first["tls_session_resumed"].message
    assert "no_client_cert" in _verdicts(sessions[5])  # session 2's ticket still known


def test_follow_shows_the_resumption_and_the_ticket(caps):
    text = {s.number: format_follow(s) for s in iter_sessions(caps.whole, keep_streams=True)}
    assert "S: NewSessionTicket, 1 ticket(s)" in text[2]
    assert "NewSessionTicket" not in text[1]  # session IDs only there
    for n, how in ((5, "session ID"), (6, "session ticket"), (8, "pre-shared key")):
        assert f"S: ServerHello, resumes an earlier session by {how}" in text[n]
    assert "resumes" not in text[1]


def test_resuming_a_session_that_had_no_certificate_request_inherits_nothing(tmp_path,
                                                                            tshark):
    """The original handshake of a session-ID resumption had no CertificateRequest (tshark
    finds no handshake type 13 in the capture): its client_cert_not_requested is about that
    handshake's request, not a client-certificate verdict to hand on, so the resumed
    connection says no certificate applies to it either."""
    import dataclasses
    import subprocess

    from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, converse, render
    from fastcap_synth.writers import write_pcap

    from .resumecap import NOW, PEER, T0

    pki = make_pki(NOW)
    sctx = server_context(pki.server, max_version="1.2")  # asks for no client certificate
    sctx.options |= ssl.OP_NO_TICKET
    first = SmtpScenario(banner=f"220 {PEER} ESMTP", server_name=PEER, sni=PEER,
                         commands=ACCEPTED_COMMANDS, start_ns=T0, server_ctx=sctx,
                         client_ctx=client_context(max_version="1.2"))
    conv = converse(first)
    again = dataclasses.replace(first, client_port=first.client_port + 1,
                                start_ns=T0 + 30 * 10**9, tls_session=conv.ssl_session)
    conv2 = converse(again)
    assert conv2.tls is not None and conv2.tls.resumed
    cap = tmp_path / "no-request.pcap"
    write_pcap(cap, render(conv, first) + render(conv2, again))
    requests = subprocess.run(
        [tshark, "-n", "-r", str(cap), "-Y", "tls.handshake.type == 13", "-T", "fields",
         "-e", "frame.number"], capture_output=True, text=True, check=True).stdout.split()
    assert requests == []
    original, resumed = sorted(scan(cap), key=lambda s: s.number)
    assert "client_cert_not_requested" in _verdicts(original)
    got = _verdicts(resumed)
    assert set(got) == {"tls_session_resumed"}
    assert "it had no CertificateRequest, so no client certificate applies" in (
        got["tls_session_resumed"].message)
