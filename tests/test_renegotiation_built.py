"""TLS 1.2 renegotiations OpenSSL's command line tools cannot record (tests/renegcap.py builds
them record by record), each held to what tshark decrypts with the same key log."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from fastcap.run.scanner import scan
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import SERVER_NAME, make_pki

from .renegcap import ALERT, HANDSHAKE, HELLO_REQUEST, Renegotiating, client_hello, message
from .tlskeys import tshark_path

needs_tshark = pytest.mark.skipif(tshark_path() is None, reason="tshark is not installed")


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def _start_ns(pki) -> int:
    return int(pki.server.cert.not_valid_before_utc.timestamp() + 86400) * 10**9


def _tshark(capture: Path, keys: Path) -> list[tuple[int, str, str]]:
    """(frame, handshake types, SMTP command) of each TLS frame tshark decrypts."""
    out = subprocess.run(
        [tshark_path() or "tshark", "-n", "-r", str(capture), "-o",
         f"tls.keylog_file:{keys}", "-Y", "tls", "-T", "fields", "-e", "frame.number",
         "-e", "tls.handshake.type", "-e", "smtp.req.command"],
        capture_output=True, text=True, check=True, timeout=300).stdout
    return [(int(f), t, c) for f, t, c in (line.split("\t") for line in out.splitlines())]


@needs_tshark
def test_a_refused_client_hello_is_paired_with_no_server_hello(tmp_path, pki):
    """The client renegotiates, the server refuses with a warning no_renegotiation and the
    connection goes on; later the server renegotiates and asks for a certificate.  The
    ServerHello answers the second ClientHello, whose random the key log names (the refused
    one has no line): paired by order, the renegotiation's keys were taken for the refused
    hello and decryption stopped at its ChangeCipherSpec."""
    s = Renegotiating()
    s.smtp_to_starttls()
    s.handshake(1, pki.server.der)
    s.app(True, b"EHLO mail.fabrikam.com\r\n")
    s.app(False, b"250 mx.contoso.com\r\n")
    s.send(True, s.record(True, HANDSHAKE, client_hello(b"\xee" * 32)))
    s.send(False, s.record(False, ALERT, b"\x01\x64"))  # warning no_renegotiation
    s.app(True, b"MAIL FROM:<a@fabrikam.com>\r\n")
    s.app(False, b"250 2.1.0 Sender OK\r\n")
    s.send(False, s.record(False, HANDSHAKE, message(HELLO_REQUEST)))
    s.handshake(3, pki.server.der, request=True, client_der=pki.client.der)
    s.app(True, b"RCPT TO:<b@contoso.com>\r\n")
    s.app(False, b"250 2.1.5 Recipient OK\r\n")
    s.app(True, b"QUIT\r\n")
    capture, keys = s.write(tmp_path, "refused_then_asked", _start_ns(pki))
    seen = _tshark(capture, keys)
    assert [f for f, t, _c in seen if "13" in t.split(",")] == [22]  # CertificateRequest
    assert [(c, f) for f, _t, c in seen if c] == [
        ("EHLO", 13), ("MAIL", 17), ("RCPT", 25), ("QUIT", 27)]
    (sess,) = scan(capture, ports=(25,), keylog=(str(keys),))
    assert sess.decryption.error is None
    assert sess.tls.cert_request_at.frame == 22 and sess.tls.client_certificate_at.frame == 23
    assert [(c.verb, c.frame) for c in sess.smtp_tls.commands] == [
        ("EHLO", 13), ("MAIL", 17), ("RCPT", 25), ("QUIT", 27)]
    assert [(a.description_name, a.at.frame) for a in sess.tls.alerts] == [
        ("no_renegotiation", 16)]


@needs_tshark
def test_the_renegotiations_server_certificate_is_judged(tmp_path, pki):
    """A server sends one certificate in the first handshake and an expired one in the
    renegotiation (which asks for the client's): the verdicts rest on the certificate the
    server last sent, and say that a renegotiation sent it."""
    now = pki.server.cert.not_valid_before_utc + dt.timedelta(days=1)
    expired = make_leaf(pki.intermediate, SERVER_NAME, sans=[SERVER_NAME],
                        not_before=now - dt.timedelta(days=30),
                        not_after=now - dt.timedelta(days=2))
    s = Renegotiating()
    s.smtp_to_starttls()
    s.handshake(1, pki.server.der)
    s.app(True, b"EHLO mail.fabrikam.com\r\n")
    s.send(False, s.record(False, HANDSHAKE, message(HELLO_REQUEST)))
    s.handshake(2, expired.der, request=True, client_der=pki.client.der)
    s.app(True, b"QUIT\r\n")
    capture, keys = s.write(tmp_path, "server_cert_changed", _start_ns(pki))
    certs = subprocess.run(
        [tshark_path() or "tshark", "-n", "-r", str(capture), "-o",
         f"tls.keylog_file:{keys}", "-Y", "tls.handshake.type == 2", "-T", "fields",
         "-e", "frame.number", "-e", "tls.handshake.certificate"],
        capture_output=True, text=True, check=True, timeout=300).stdout.split()
    assert certs == ["10", pki.server.der.hex(), "16", expired.der.hex()]
    (sess,) = scan(capture, ports=(25,), keylog=(str(keys),))
    assert sess.tls.server_certs == (expired.der,) and sess.tls.server_certs_at.frame == 16
    (v,) = [v for v in sess.verdicts if v.code == "server_cert_expired"]
    assert v.frame == 16 and "(frame 16, sent in a renegotiation)" in v.message


@needs_tshark
def test_a_renegotiation_to_another_version_is_decrypted_with_its_own(tmp_path, pki):
    """The first handshake is TLS 1.2 (AES-GCM), the renegotiation's ServerHello chooses TLS
    1.1 (AES-CBC, HMAC-SHA1) and both sides go on: its keys come from the TLS 1.1 key
    schedule, as tshark derives them.  OpenSSL would refuse the change, so it is noted."""
    s = Renegotiating()
    s.smtp_to_starttls()
    s.handshake(1, pki.server.der)
    s.app(True, b"EHLO mail.fabrikam.com\r\n")
    s.send(False, s.record(False, HANDSHAKE, message(HELLO_REQUEST)))
    s.handshake(2, pki.server.der, request=True, client_der=pki.client.der, version=0x0302)
    s.app(True, b"QUIT\r\n")
    capture, keys = s.write(tmp_path, "version_changed", _start_ns(pki))
    seen = _tshark(capture, keys)
    assert [(c, f) for f, _t, c in seen if c] == [("EHLO", 13), ("QUIT", 19)]
    assert [f for f, t, _c in seen if "20" in t.split(",")] == [11, 12, 17, 18]  # Finished
    (sess,) = scan(capture, ports=(25,), keylog=(str(keys),))
    assert sess.decryption.error is None
    assert [(c.verb, c.frame) for c in sess.smtp_tls.commands] == [("EHLO", 13), ("QUIT", 19)]
    (a,) = sess.tls.anomalies
    assert a.code == "tls.renegotiation.version_changed" and a.at.frame == 16
    assert "chose TLS1.1, the first handshake TLS1.2" in a.message
