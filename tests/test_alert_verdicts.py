"""A receiving server's TLS alert read as its sender meant it, from real OpenSSL handshakes.

A server that requires a client certificate and gets an empty Certificate says so with
handshake_failure (TLS 1.2) or, in TLS 1.3, an encrypted certificate_required: the fix is to
bind a certificate, not to check one that was never sent.
"""

from __future__ import annotations

import datetime as dt

import pytest

from fastcap.run.scanner import scan
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, smtp_records
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import write_pcap

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PEER = "mx1.contoso.com"


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW)


def _scan(tmp_path, pki, version: str, client=None):
    server = make_leaf(pki.intermediate, PEER, sans=[PEER])
    sc = SmtpScenario(
        banner=f"220 {PEER} ESMTP Postfix", server_name=PEER, sni=PEER,
        commands=ACCEPTED_COMMANDS,
        start_ns=int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9,
        server_ctx=server_context(server, client_auth="required", client_cas=[pki.root],
                                  min_version=version, max_version=version),
        client_ctx=client_context(cert=client, min_version=version, max_version=version),
        client_cert=client,
    )
    path = tmp_path / f"required-{version}.pcap"
    write_pcap(path, smtp_records(sc))
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.pem)
    (s,) = scan(path, ca_file=str(root))
    return s


def test_tls12_server_requiring_a_certificate_gets_an_empty_one(tmp_path, pki):
    s = _scan(tmp_path, pki, "1.2")
    by = {v.code: v for v in s.verdicts}
    assert {"tls_alert", "no_client_cert"} <= set(by)
    alert, cert_frame = by["tls_alert"], s.tls.client_certificate_at.frame
    assert s.tls.client_certificate == ()
    assert "handshake_failure (40)" in alert.message
    assert f"client's empty Certificate (frame {cert_frame})" in alert.message
    assert "requires a client certificate" in alert.message
    assert "rejected" not in alert.message and "publicly trusted CA" not in alert.hint
    assert "smtp_tls_cert_file" in alert.hint


def test_tls12_server_names_the_reason_it_refused_a_certificate(tmp_path, pki):
    """A real OpenSSL server answers a client certificate without clientAuth with
    unsupported_certificate; the verdict names that reason and its fix."""
    client = make_leaf(pki.intermediate, "mail.fabrikam.com", sans=["mail.fabrikam.com"],
                       eku=("serverAuth",))
    s = _scan(tmp_path, pki, "1.2", client)
    (alert,) = [v for v in s.verdicts if v.code == "tls_alert"]
    assert "unsupported_certificate (43)" in alert.message
    assert "clientAuth" in alert.message and "1.3.6.1.5.5.7.3.2" in alert.hint


def test_tls13_alert_sized_answer_to_no_certificate_is_not_a_rejection(tmp_path, pki):
    s = _scan(tmp_path, pki, "1.3")
    by = {v.code: v for v in s.verdicts}
    assert by["client_cert_inferred_absent"].severity == "error"
    alert = by["tls_alert"]
    assert alert.severity == "warning"
    assert "requires a client certificate" in alert.message and "sent none" in alert.message
    assert "rejected" not in alert.message
    assert "smtp_tls_cert_file" in alert.hint


def test_tls12_server_with_no_shared_cipher_says_so_in_the_hello(tmp_path, pki):
    """A real OpenSSL server offered only ciphers it does not have answers the ClientHello
    with handshake_failure (RFC 5246 §7.2.2): no certificate was judged, so the verdict names
    the hello, not a client certificate."""
    server = make_leaf(pki.intermediate, PEER, sans=[PEER])
    server_ctx = server_context(server, min_version="1.2", max_version="1.2")
    server_ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384")
    client_ctx = client_context(min_version="1.2", max_version="1.2")
    client_ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
    sc = SmtpScenario(
        banner=f"220 {PEER} ESMTP Postfix", server_name=PEER, sni=PEER,
        commands=ACCEPTED_COMMANDS,
        start_ns=int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9,
        server_ctx=server_ctx, client_ctx=client_ctx,
    )
    path = tmp_path / "no-shared-cipher.pcap"
    write_pcap(path, smtp_records(sc))
    (s,) = scan(path)
    assert s.tls.client_certificate_at is None and s.tls.server_hello_at is None
    (alert,) = [v for v in s.verdicts if v.code == "tls_alert"]
    assert alert.severity == "error"
    assert "server sent fatal alert handshake_failure (40)" in alert.message
    assert "no TLS version, cipher or signature algorithm it shares" in alert.message
    assert "Certificate" not in alert.message and "smtp_tls_ciphers" in alert.hint
