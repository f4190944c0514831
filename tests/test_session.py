"""End to end on captures made from real OpenSSL handshakes: each SMTP/STARTTLS situation
comes out of Capture → selection → reassembly → SMTP → TLS with the facts it was built with,
however the frames are cut up and reordered, on both backends."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace

import pytest
from cryptography import x509

from fastcap.session import iter_sessions
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import SERVER_NAME, Message, converse, render
from fastcap_synth.writers import write_pcap


@pytest.fixture(scope="module")
def conversations():
    """One real OpenSSL run per scenario, reused by every test in this module."""
    pki = make_pki()
    out = {}
    for i, name in enumerate(SCENARIO_NAMES):
        sc = scenario(name, pki, client_port=40000 + i)
        out[name] = (sc, converse(sc))
    return out


def _one_session(path, backend="auto"):
    (s,) = list(iter_sessions(path, backend=backend))
    return s


def _write(tmp_path, name, sc, conv, shuffle_seed=None, mss=None):
    if mss is not None:
        sc.mss = mss
    records = render(conv, sc)
    if shuffle_seed is not None:  # swap neighbours: out-of-order arrival, same frames
        rng = random.Random(shuffle_seed)
        for i in range(3, len(records) - 1):
            if rng.random() < 0.4:
                records[i], records[i + 1] = records[i + 1], records[i]
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, records)
    return path


EXPECT = {
    # name: (starttls_accepted, tls version, cert requested, client cert, outcome, alert)
    "ok_client_cert": (True, "TLS1.2", True, "chain", "completed", None),
    "no_client_cert": (True, "TLS1.2", True, "empty", "completed", None),
    "cert_not_requested": (True, "TLS1.2", False, "absent", "completed", None),
    "expired_client_cert": (True, "TLS1.2", True, "chain", "alert", "certificate_expired"),
    "untrusted_ca": (True, "TLS1.2", True, "chain", "alert", "unknown_ca"),
    "name_mismatch": (True, "TLS1.2", True, "chain", "completed", None),
    "starttls_refused": (False, None, None, None, None, None),
    "starttls_not_offered": (None, None, None, None, None, None),
    "tls13_client_cert": (True, "TLS1.3", False, "absent", "completed", None),
}


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenario_facts(tmp_path, conversations, name, backend):
    sc, conv = conversations[name]
    s = _one_session(_write(tmp_path, name, sc, conv), backend)
    accepted, version, requested, client_cert, outcome, alert = EXPECT[name]
    assert s.number == 1 and s.first_frame == 1
    assert s.client == f"{sc.client_ip}:{sc.client_port}" and s.server.endswith(":25")
    assert s.tcp.syn_seen and s.tcp.c2s_gaps == () and s.tcp.s2c_gaps == ()
    assert s.smtp.banner_names_exchange_online
    assert s.smtp.ehlo_name == sc.ehlo_name
    assert s.smtp.starttls_offered == (name != "starttls_not_offered")
    assert s.smtp.starttls_accepted == accepted
    if version is None:
        assert s.tls is None
        return
    t = s.tls
    assert t.version_name == version
    assert t.cert_requested == requested
    assert t.sni == sc.sni
    if client_cert == "absent":
        assert t.client_certificate is None
    elif client_cert == "empty":
        assert t.client_certificate == ()
    else:
        assert t.client_certificate and t.client_certificate[0] == sc.client_cert.der
    if version == "TLS1.2":
        leaf = x509.load_der_x509_certificate(t.server_certs[0])
        cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == SERVER_NAME and len(t.server_certs) == 2
    else:
        assert t.server_certs == ()  # encrypted in TLS 1.3
    assert t.outcome == outcome
    if alert:
        (a,) = [a for a in t.alerts if not a.encrypted]
        assert not a.from_client and a.description_name == alert
    assert t.tls13_encrypted == (version == "TLS1.3")


def test_starttls_after_turn_reads_the_responder_as_the_tls_client(tmp_path, conversations,
                                                                    backend):
    """RFC 821 §4.1.1: after a 250 to TURN the responder sends the mail, so after its STARTTLS
    it is the TLS client: its ClientHello and certificate, sent toward the originator, are
    the handshake's client side, not a server certificate with no ClientHello."""
    sc, conv = conversations["ok_client_cert"]
    first, *rest = conv.messages
    turned = replace(conv, messages=[first, *(Message(c, t, "turn") for c, t in (
        (True, b"EHLO relay.contoso.com\r\n"), (False, b"250 hi\r\n"), (True, b"TURN\r\n"),
        (False, b"250 OK\r\n"), (True, b"220 relay.contoso.com ready\r\n"))),
        *(replace(m, from_client=not m.from_client) for m in rest)],
        closer_is_client=not conv.closer_is_client)
    s = _one_session(_write(tmp_path, "turned", sc, turned), backend)
    assert [a.kind for a in s.smtp.anomalies] == ["roles_turned"] and s.smtp.starttls_accepted
    t = s.tls
    assert t.version_name == "TLS1.2" and t.cert_requested and t.outcome == "completed"
    assert t.sni == sc.sni and t.client_certificate[0] == sc.client_cert.der
    leaf = x509.load_der_x509_certificate(t.server_certs[0])
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == SERVER_NAME


@pytest.mark.parametrize("name", ["no_client_cert", "ok_client_cert", "expired_client_cert"])
@pytest.mark.parametrize("seed", [1, 2])
def test_tiny_reordered_segments_give_the_same_facts(tmp_path, conversations, name, seed):
    sc, conv = conversations[name]
    mss = sc.mss
    try:
        ref = _one_session(_write(tmp_path, "ref", sc, conv))
        got = {b: _one_session(_write(tmp_path, f"tiny{b}", sc, conv, seed, mss=7), b)
               for b in ("native", "python")}
    finally:
        sc.mss = mss
    for s in got.values():
        assert s.tcp.out_of_order + s.tcp.retransmissions > 0 or seed is None
        assert s.tcp.c2s_gaps == () and s.tcp.s2c_gaps == ()
        t, r = s.tls, ref.tls
        assert (t.version_name, t.cipher, t.client_certificate, t.server_certs, t.outcome) == (
            r.version_name, r.cipher, r.client_certificate, r.server_certs, r.outcome)
        assert [c.verb for c in s.smtp.commands] == [c.verb for c in ref.smtp.commands]
    a, b = got["native"].to_dict(), got["python"].to_dict()
    assert a == b


def test_sessions_are_numbered_by_first_frame_across_interleaving(tmp_path, conversations):
    """Three sessions whose frames interleave: numbers follow first frames, not finish order."""
    recs = []
    for k, name in enumerate(("no_client_cert", "cert_not_requested", "ok_client_cert")):
        sc, conv = conversations[name]
        start = sc.start_ns
        sc.start_ns = 1_700_000_000_000_000_000 + k * 1_000_000  # 1 ms apart: interleaved
        try:
            recs += render(conv, sc)
        finally:
            sc.start_ns = start
    recs.sort(key=lambda r: r.ts_ns)
    path = tmp_path / "three.pcap"
    write_pcap(path, recs)
    sessions = list(iter_sessions(path))
    assert [s.number for s in sessions] == [1, 2, 3]
    assert [s.client.rsplit(":", 1)[1] for s in sessions] == ["40001", "40002", "40000"]
    assert sessions[0].first_frame < sessions[1].first_frame < sessions[2].first_frame
    assert sessions[0].tls.client_certificate == ()
    assert sessions[1].tls.client_certificate is None
    ok_cert = conversations["ok_client_cert"][0].client_cert.der
    assert sessions[2].tls.client_certificate[0] == ok_cert


def _follow(*args):
    return subprocess.run([sys.executable, "-m", "fastcap.cli", "follow", *args],
                          capture_output=True, text=True, timeout=120)


def test_follow_prints_dialogue_and_handshake(tmp_path, conversations):
    sc, conv = conversations["no_client_cert"]
    path = _write(tmp_path, "follow", sc, conv)
    r = _follow(str(path), "--session", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Session 1: 203.0.113.10:40001 -> 198.51.100.25:25" in out
    assert "S: 220 contoso-com.mail.protection.outlook.com" in out
    assert "C: EHLO mail.fabrikam.com" in out and "C: STARTTLS" in out
    assert "S: CertificateRequest" in out
    assert "C: Certificate, EMPTY (no certificate)" in out
    lines = out.splitlines()
    assert lines.index(next(x for x in lines if "C: STARTTLS" in x)) < lines.index(
        next(x for x in lines if "ClientHello" in x))
    r = _follow(str(path), "--session", "2")
    assert r.returncode == 2 and "no session 2 (the capture has 1" in r.stderr


def test_follow_never_shows_credentials_and_escapes_control_characters(tmp_path, conversations):
    sc, conv = conversations["starttls_refused"]
    secret = "dXNlcgBwYXNzd29yZDEyMw=="
    evil = "evil\x1b[2J.example"
    sc2 = scenario("starttls_refused", make_pki(), ehlo_name=evil,
                   commands=[(f"AUTH PLAIN {secret}", "235 2.7.0 ok"),
                             ("AUTH LOGIN", "334 VXNlcm5hbWU6"), ("c2VjcmV0dXNlcg==", "334 x"),
                             ("c2VjcmV0cGFzcw==", "235 ok"), ("QUIT", "221 bye")])
    path = tmp_path / "auth.pcap"
    from fastcap_synth.smtpgen import smtp_records

    write_pcap(path, smtp_records(sc2))
    r = _follow(str(path), "--session", "1")
    assert r.returncode == 0, r.stderr
    for s in (secret, "c2VjcmV0dXNlcg==", "c2VjcmV0cGFzcw=="):
        assert s not in r.stdout
    assert "AUTH PLAIN [credentials hidden]" in r.stdout
    assert "\x1b" not in r.stdout and "evil\\x1b[2J.example" in r.stdout


def test_implicit_tls_port_starts_tls_at_byte_zero(tmp_path, conversations):
    """Port 465 style: no SMTP before TLS; the handshake is parsed from the first byte."""
    from fastcap_synth.smtpgen import Conversation

    sc, conv = conversations["no_client_cert"]
    tls_only = Conversation()
    tls_only.messages = [m for m in conv.messages if m.label.startswith("tls")]
    port = sc.server_port
    sc.server_port = 465
    try:
        path = tmp_path / "smtps.pcap"
        write_pcap(path, render(tls_only, sc))
    finally:
        sc.server_port = port
    (s,) = list(iter_sessions(path, ports={465}))
    assert s.smtp.implicit_tls and s.smtp.banner_code is None
    assert s.tls.client_hello_at.frame == 4 and s.tls.client_certificate == ()
    r = _follow(str(path), "--session", "1", "--ports", "465", "--implicit-tls-ports", "465")
    assert r.returncode == 0 and "C: Certificate, EMPTY" in r.stdout


def test_plaintext_smtp_on_an_implicit_tls_port_is_read_as_smtp(tmp_path, conversations,
                                                                 backend):
    """A server on port 465 that greets in plaintext (tshark -d tcp.port==465,smtp reads
    the same EHLO, STARTTLS, 220): the dialogue and its STARTTLS are read, with a warning,
    instead of a handshake_incomplete made of "bad headers"."""
    from fastcap.judge.diagnose import diagnose

    sc, conv = conversations["no_client_cert"]
    whole = _one_session(_write(tmp_path, "whole", sc, conv), backend)
    port = sc.server_port
    sc.server_port = 465
    try:
        path = _write(tmp_path, "plain465", sc, conv)
    finally:
        sc.server_port = port
    (s,) = list(iter_sessions(path, ports={465}, implicit_tls_ports={465}, backend=backend))
    assert not s.smtp.implicit_tls and s.smtp.banner_code == 220
    assert s.smtp.starttls_accepted and s.smtp.tls_c2s_frame == whole.smtp.tls_c2s_frame
    assert [(a.kind, a.frame) for a in s.smtp.anomalies] == [("plaintext_on_tls_port", 4)]
    assert s.tls.outcome == "completed" and s.tls.client_certificate == ()
    (v,) = [v for v in diagnose(s, None, None) if v.code == "plaintext_on_tls_port"]
    assert v.severity == "warning" and v.frame == 4 and ":465" in v.message


@pytest.mark.parametrize("label,extra", [("starttls", b"RSET\r\n"),
                                         ("starttls-reply", b"250 injected\r\n")])
def test_plaintext_pipelined_after_starttls_does_not_hide_the_handshake(
        tmp_path, conversations, backend, label, extra):
    """CVE-2011-0411's command injection: plaintext sent after the STARTTLS line (or its 220)
    in the same write. TLS is read from the hello after it, as Wireshark reads it; the
    plaintext is reported as not_tls."""
    import dataclasses

    sc, conv = conversations["no_client_cert"]
    messages = [dataclasses.replace(m, data=m.data + extra) if m.label == label else m
                for m in conv.messages]
    s = _one_session(_write(tmp_path, label, sc, dataclasses.replace(conv, messages=messages)),
                     backend)
    whole = _one_session(_write(tmp_path, "whole", sc, conv), backend)
    assert s.smtp.starttls_accepted and "not_tls" in [a.kind for a in s.smtp.anomalies]
    assert s.tls.outcome == "completed" and s.tls.client_certificate == ()
    assert s.tls.client_hello_at.frame == whole.tls.client_hello_at.frame
    assert s.tls.server_hello_at.frame == whole.tls.server_hello_at.frame


def test_a_lost_starttls_line_does_not_hide_the_handshake(tmp_path, conversations, backend):
    """The capture lost the segment carrying STARTTLS: the 220 and the TLS records after it
    are still read as the handshake, not as a session that stayed in plaintext."""
    sc, conv = conversations["no_client_cert"]
    whole = _one_session(_write(tmp_path, "whole", sc, conv), backend)
    records = [r for r in render(conv, sc) if not r.data.endswith(b"STARTTLS\r\n")]
    path = tmp_path / "lost.pcap"
    write_pcap(path, records)
    s = _one_session(path, backend)
    assert s.tcp.c2s_gaps and s.tls is not None
    assert s.tls.outcome == "completed" and s.tls.client_certificate == ()
    assert s.tls.client_hello_at.frame == whole.tls.client_hello_at.frame - 1


@pytest.mark.parametrize("word", [b"X-ANONYMOUSTLS", b"X_ANONYMOUSTLS", b"x_anonymousTLS"])
def test_x_anonymoustls_is_followed_as_starttls(tmp_path, conversations, backend, word):
    """Exchange's X-ANONYMOUSTLS in place of STARTTLS: the same hand-over, the same handshake
    frames, and no TLS record read as an SMTP line.  Zeek's SMTP analyzer (ParseCmd, any
    case) also reads X_ANONYMOUSTLS, its own name for the command, and starts TLS on its 220."""
    import dataclasses

    sc, conv = conversations["no_client_cert"]

    def swap(m):
        if m.label == "starttls":
            return dataclasses.replace(m, data=word + b"\r\n")
        if m.label == "ehlo-reply":
            return dataclasses.replace(m, data=m.data.replace(b"-STARTTLS", b"-X-ANONYMOUSTLS"))
        return m

    whole = _one_session(_write(tmp_path, "whole", sc, conv), backend)
    xconv = dataclasses.replace(conv, messages=[swap(m) for m in conv.messages])
    s = _one_session(_write(tmp_path, "xanon", sc, xconv), backend)
    assert s.smtp.starttls_accepted and s.smtp.anomalies == ()
    assert s.smtp.starttls_command_frame == whole.smtp.starttls_command_frame
    assert (s.smtp.tls_c2s_frame, s.smtp.tls_s2c_frame) == (
        whole.smtp.tls_c2s_frame, whole.smtp.tls_s2c_frame)
    assert s.tls.outcome == "completed" and s.tls.client_certificate == ()


def test_a_reply_lost_whole_keeps_the_later_replies_paired(tmp_path, conversations, backend):
    """The capture lost the segment carrying the EHLO reply: the 454 after it answers the
    STARTTLS sent before it (tshark, in frame order: STARTTLS frame 6, 454 frame 7), not
    EHLO, so the refusal quotes the 454 and not MAIL's 250."""
    sc, conv = conversations["starttls_refused"]
    ehlo_reply = next(m.data for m in conv.messages if m.label == "ehlo-reply")
    records = [r for r in render(conv, sc) if not r.data.endswith(ehlo_reply)]
    path = tmp_path / "lost-ehlo-reply.pcap"
    write_pcap(path, records)
    s = _one_session(path, backend)
    assert s.tcp.s2c_gaps and s.smtp.starttls_accepted is False
    assert (s.smtp.starttls_reply.code, s.smtp.starttls_reply.frame) == (454, 7)
    assert [r.answers for r in s.smtp.replies] == ["STARTTLS", "MAIL", "RCPT", "QUIT"]


def test_a_lost_starttls_reply_then_plaintext_is_refused(tmp_path, conversations, backend):
    """The capture lost the 454: the client's MAIL in plaintext after STARTTLS shows TLS
    never began (RFC 3207 §4; tshark: STARTTLS frame 7, MAIL frame 8), so the verdict is
    starttls_refused, not handshake_incomplete."""
    from fastcap.judge.diagnose import _starttls_verdicts

    sc, conv = conversations["starttls_refused"]
    refusal = next(m.data for m in conv.messages if m.label == "starttls-reply")
    records = [r for r in render(conv, sc) if not r.data.endswith(refusal)]
    path = tmp_path / "lost-starttls-reply.pcap"
    write_pcap(path, records)
    s = _one_session(path, backend)
    assert s.tcp.s2c_gaps and s.smtp.starttls_accepted is False and s.tls is None
    (v,) = _starttls_verdicts(s, s.smtp)
    assert v.code == "starttls_refused" and v.frame == 7 and "plaintext (frame 8)" in v.message


def test_plaintext_injected_after_starttls_then_tls_is_no_refusal(tmp_path, conversations,
                                                                  backend):
    """RSET sent with STARTTLS in one write (CVE-2011-0411) and none of the server's frames
    after the EHLO reply captured: the plaintext after STARTTLS is no refusal when the
    client's ClientHello follows it. Whether TLS began stays open, as for any lost reply,
    and the handshake is read from the hello."""
    import dataclasses

    from .test_verdict_captures import _tcp_payload

    sc, conv = conversations["no_client_cert"]
    messages = [dataclasses.replace(m, data=m.data + b"RSET\r\n") if m.label == "starttls"
                else m for m in conv.messages]
    records = render(dataclasses.replace(conv, messages=messages), sc)
    i = next(k for k, r in enumerate(records) if _tcp_payload(r.data)[1].startswith(b"STARTTLS"))
    records = records[:i] + [r for r in records[i:] if _tcp_payload(r.data)[0] != 25]
    path = tmp_path / "injected-no-server.pcap"
    write_pcap(path, records)
    s = _one_session(path, backend)
    assert s.smtp.starttls_accepted is None and s.tls is not None
    assert "starttls_not_taken" not in [a.kind for a in s.smtp.anomalies]
    assert s.tls.client_hello_at is not None


@pytest.mark.parametrize("hexaddr,text", [
    ("00000000000000000000ffff0a000001", "10.0.0.1"),
    ("20010db8000000000000000000000001", "2001:db8::1"),
    ("fe800000000000000202b3fffe1e8329", "fe80::202:b3ff:fe1e:8329"),
    ("00000000000000000000000000000000", "::"),
])
def test_addresses_print_like_wireshark(hexaddr, text):
    from fastcap.session import addr_text, endpoint_text

    assert addr_text(bytes.fromhex(hexaddr)) == text
    assert endpoint_text(bytes.fromhex(hexaddr), 25) == (f"[{text}]:25" if ":" in text
                                                         else f"{text}:25")
