"""550 5.7.64 read beside what the wire shows of the client certificate.

Exchange Online attributes a connection by the client certificate or by the sender's IP.
When a sound certificate crossed and the reply is still 5.7.64, the inbound connector's
settings are at fault, not the certificate; when none crossed, only the IP could match.
"""

from __future__ import annotations

import datetime as dt

from fastcap.run.scanner import scan
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import SmtpScenario, converse, render, smtp_records
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import keylog_bytes, write_pcap

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9


def _relay_denied(s):
    (v,) = [v for v in s.verdicts if v.code == "relay_denied"]
    return v


def test_sound_certificate_and_5_7_64_points_at_the_connector(tmp_path):
    pki = make_pki(NOW)
    sc = SmtpScenario(
        start_ns=START, keylog=True, client_cert=pki.client,
        server_ctx=server_context(pki.server, client_auth="optional", client_cas=[pki.root],
                                  max_version="1.2"),
        client_ctx=client_context(cert=pki.client, max_version="1.2"))
    conv = converse(sc)
    cap, keys, root = tmp_path / "c.pcap", tmp_path / "c.keys", tmp_path / "root.pem"
    write_pcap(cap, render(conv, sc))
    keys.write_bytes(keylog_bytes(conv.keylog))
    root.write_bytes(pki.root.pem)
    (s,) = scan(cap, ca_file=str(root), keylog=(str(keys),))
    v = _relay_denied(s)
    cert_frame = s.tls.client_certificate_at.frame
    assert "inside TLS" in v.message and "5.7.64" in v.message
    assert f"CN=mail.fabrikam.com (frame {cert_frame}) is trusted and valid" in v.message
    assert "SAN mail.fabrikam.com" in v.message
    assert "ConnectorType" in v.hint and "TlsSenderCertificateName" in v.hint
    assert "Get-AcceptedDomain" in v.hint


def test_5_7_64_without_tls_can_only_be_the_ip(tmp_path):
    sc = SmtpScenario(start_ns=START,
                      starttls_reply="454 4.7.0 Temporary authentication failure")
    cap = tmp_path / "p.pcap"
    write_pcap(cap, smtp_records(sc))
    (s,) = scan(cap)
    v = _relay_denied(s)
    assert "plaintext reply" in v.message and "no TLS on this connection" in v.message
    assert "SenderIPAddresses" in v.message


def test_5_7_64_on_a_resumed_session_does_not_say_no_certificate_was_sent(tmp_path, tshark):
    """An abbreviated TLS 1.2 handshake (RFC 5246 §7.3) carries no CertificateRequest and no
    Certificate: the certificate of the handshake it resumes still applies, so the 5.7.64 on
    it is not "only the IP could attribute it"."""
    import dataclasses
    import ssl
    import subprocess

    pki = make_pki(NOW)
    sctx = server_context(pki.server, client_auth="optional", client_cas=[pki.root],
                          max_version="1.2")
    sctx.options |= ssl.OP_NO_TICKET  # resumed by session ID
    first = SmtpScenario(start_ns=START, keylog=True, client_cert=pki.client, server_ctx=sctx,
                         client_ctx=client_context(cert=pki.client, max_version="1.2"))
    conv = converse(first)
    again = dataclasses.replace(first, client_port=first.client_port + 1,
                                start_ns=START + 30 * 10**9, tls_session=conv.ssl_session)
    conv2 = converse(again)
    assert conv2.tls is not None and conv2.tls.resumed
    cap, keys, root = tmp_path / "r.pcap", tmp_path / "r.keys", tmp_path / "root.pem"
    write_pcap(cap, render(conv, first) + render(conv2, again))
    keys.write_bytes(keylog_bytes(conv.keylog + conv2.keylog))
    root.write_bytes(pki.root.pem)
    # the oracle: CertificateRequest (13) and Certificate (11) cross only in the first stream
    shown = subprocess.run(
        [tshark, "-n", "-r", str(cap), "-Y", "tls.handshake.type == 13",
         "-T", "fields", "-e", "tcp.stream"], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["0"]
    s1, s2 = sorted(scan(cap, ca_file=str(root), keylog=(str(keys),)), key=lambda s: s.number)
    assert s2.tls.resumption == "session_id"
    assert "is trusted and valid" in _relay_denied(s1).message  # the certificate it resumes
    v = _relay_denied(s2)
    assert "5.7.64" in v.message and "inside TLS" in v.message
    assert "sent no certificate" not in v.message and "SenderIPAddresses" not in v.message
