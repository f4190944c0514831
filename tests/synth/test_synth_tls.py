"""Test PKI and real OpenSSL handshakes through memory BIOs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastcap_synth.certs import cert_summary, make_ca, make_leaf
from fastcap_synth.tlsgen import client_context, handshake, records, server_context

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Synth Root")
    inter = make_ca("Synth Issuing CA", parent=root)
    return {
        "root": root,
        "inter": inter,
        "server": make_leaf(inter, "mx.contoso.com", sans=["mx.contoso.com", "192.0.2.25"]),
        "client": make_leaf(inter, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        "expired": make_leaf(
            inter,
            "old.fabrikam.com",
            not_before=NOW - dt.timedelta(days=400),
            not_after=NOW - dt.timedelta(days=2),
        ),
        "foreign": make_leaf(make_ca("Someone Else Root"), "evil.fabrikam.com"),
    }


def test_chain_and_attributes(pki):
    leaf, inter, root = pki["client"], pki["inter"], pki["root"]
    leaf.cert.verify_directly_issued_by(inter.cert)
    inter.cert.verify_directly_issued_by(root.cert)
    assert leaf.chain == [inter.cert, root.cert]
    assert leaf.chain_pem().count(b"BEGIN CERTIFICATE") == 2  # root omitted, as TLS peers do
    assert leaf.cn == "mail.fabrikam.com" and cert_summary(leaf.der) == (leaf.cn, leaf.sha256)
    assert leaf.sha256 == leaf.cert.fingerprint(hashes.SHA256()).hex()
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {o.dotted_string for o in eku} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    san = pki["server"].cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.25"]
    assert pki["expired"].cert.not_valid_after_utc < NOW


def test_leaf_variants():
    ss = make_leaf(None, "self.example", self_signed=True, key="rsa1024", hash="sha1", eku=())
    ss.cert.public_key().verify(  # the hand-made SHA-1 signature really verifies
        ss.cert.signature, ss.cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1()
    )
    ec_sha1 = make_leaf(make_ca("EC Root"), "ec.example", hash="sha1")
    assert isinstance(ec_sha1.cert.signature_hash_algorithm, hashes.SHA1)
    assert ss.cert.issuer == ss.cert.subject and ss.chain == []
    assert isinstance(ss.key, rsa.RSAPrivateKey) and ss.key.key_size == 1024
    assert isinstance(ss.cert.signature_hash_algorithm, hashes.SHA1)
    with pytest.raises(x509.ExtensionNotFound):
        ss.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    with pytest.raises(ValueError):
        make_leaf(None, "x")


def _hs_types(flight: bytes) -> list[int]:
    """Handshake message types in the plaintext handshake records of a TLS 1.2 flight."""
    out = []
    for ctype, frag in records(flight):
        if ctype == 20:  # ChangeCipherSpec: what follows is encrypted
            break
        off = 0
        while ctype == 22 and off + 4 <= len(frag):
            out.append(frag[off])
            off += 4 + int.from_bytes(frag[off + 1 : off + 4], "big")
    return out


def test_tls12_client_chain(pki):
    sess = handshake(
        server_context(pki["server"], client_auth="optional", client_cas=[pki["root"]]),
        client_context(cert=pki["client"], max_version="1.2"),
        server_hostname="mx.contoso.com",
    )
    o = sess.outcome
    assert o.completed and o.version == "TLSv1.2" and o.client_cert_requested
    assert o.peer_cert_der == pki["client"].der
    assert [f for f, _ in sess.flights] == [True, False, True, False]
    assert _hs_types(sess.flights[0][1]) == [1]
    assert 13 in _hs_types(sess.flights[1][1])  # CertificateRequest
    first = records(sess.flights[2][1])[0][1]
    assert first[0] == 11 and int.from_bytes(first[1:4], "big") > 100  # client Certificate
    new = sess.send(True, b"EHLO mail.fabrikam.com\r\n") + sess.send(False, b"250 hi\r\n")
    assert [f for f, _ in new] == [True, False]
    assert all(r[0] == 23 for _, b in new for r in records(b))
    assert b"EHLO" not in b"".join(b for _, b in new)
    assert bytes(sess.received[True]) == b"EHLO mail.fabrikam.com\r\n"
    assert bytes(sess.received[False]) == b"250 hi\r\n"


def test_tls12_empty_certificate_when_client_has_none(pki):
    sess = handshake(
        server_context(pki["server"], client_auth="optional", client_cas=[pki["root"]]),
        client_context(max_version="1.2"),
    )
    assert sess.outcome.completed and sess.outcome.peer_cert_der is None
    assert records(sess.flights[2][1])[0] == (22, bytes.fromhex("0b000003000000"))


def test_not_requested_means_no_certificate_request(pki):
    sess = handshake(
        server_context(pki["server"]), client_context(cert=pki["client"], max_version="1.2")
    )
    assert sess.outcome.completed and not sess.outcome.client_cert_requested
    assert 13 not in _hs_types(sess.flights[1][1])
    assert 11 not in _hs_types(sess.flights[2][1])


@pytest.mark.parametrize(
    ("client", "auth", "version", "peer_error", "alert"),
    [
        (None, "required", "1.2", "HANDSHAKE_FAILURE", 40),
        (None, "required", "1.3", "CERTIFICATE_REQUIRED", None),
        ("expired", "optional", "1.2", "CERTIFICATE_EXPIRED", 45),
        ("expired", "optional", "1.3", "CERTIFICATE_EXPIRED", None),
        ("foreign", "optional", "1.2", "UNKNOWN_CA", 48),
    ],
)
def test_server_alerts(pki, client, auth, version, peer_error, alert):
    sess = handshake(
        server_context(pki["server"], client_auth=auth, client_cas=[pki["root"]]),
        client_context(cert=pki[client] if client else None, max_version=version),
    )
    o = sess.outcome
    assert not o.completed and o.alert_by == "server" and peer_error in o.peer_error
    assert o.version == f"TLSv{version}"
    from_client, last = sess.flights[-1]
    assert not from_client
    if alert is not None:  # TLS 1.2 alerts are plaintext: fatal(2), description
        assert records(last) == [(21, bytes([2, alert]))]
    else:  # TLS 1.3 hides the alert in an application_data record
        assert [r[0] for r in records(last)] == [23]


def test_client_alert_on_untrusted_server(pki):
    sess = handshake(
        server_context(pki["server"]),
        client_context(trust=[make_ca("Unrelated Root")], check_hostname=True),
        server_hostname="mx.contoso.com",
    )
    assert sess.outcome.alert_by == "client" and "CERTIFICATE_VERIFY_FAILED" in sess.outcome.error
    assert sess.flights[-1][0] is True


def test_tls13_application_data_and_close(pki):
    sess = handshake(
        server_context(pki["server"], client_auth="optional", client_cas=[pki["root"]]),
        client_context(cert=pki["client"], min_version="1.3"),
    )
    assert sess.outcome.completed and sess.outcome.version == "TLSv1.3"
    sess.send(True, b"x" * 40000)  # spans several records
    assert len(sess.received[True]) == 40000
    closing = sess.close(False)
    # close_notify in TLS 1.3: one application_data record of 1 + 1 + 1 + 16 (tag) bytes.
    assert [(f, [(t, len(b)) for t, b in records(d)]) for f, d in closing] == [(False, [(23, 19)])]
    assert sess.client.read(1) == b""  # the client saw EOF
