"""Differential test: fastcap's certificate name match against OpenSSL's X509_check_host.

The oracle is a real handshake through Python's ``ssl`` (OpenSSL), which checks the host name
with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, as Postfix does, and the subject CN when there is
no DNS SAN.  ``name_matches`` (the analyzer's answer) and the diagnosis's own match must give
OpenSSL's answer for every certificate below.  The host names are the references a verifier
is given; fastcap trims a trailing dot and spaces from those (tested apart), never from the
certificate's names.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from fastcap.judge.diagnose import _leaf_names
from fastcap.judge.evidence import _names
from fastcap.judge.x509check import cert_info, name_matches
from fastcap.judge.x509names import host_matches, sender_name_fits

NOW = dt.datetime.now(dt.UTC)
D = x509.DNSName
CASES = [  # (subject CNs, SAN entries or None for no extension, host)
    ((), [D("mail.fabrikam.com")], "mail.fabrikam.com"),
    ((), [D("MAIL.Fabrikam.com")], "mail.fabrikam.COM"),
    ((), [D("mail.fabrikam.com.")], "mail.fabrikam.com"),  # trailing dot in the certificate
    ((), [D("*.fabrikam.com.")], "mail.fabrikam.com"),
    ((), [D(" mail.fabrikam.com")], "mail.fabrikam.com"),
    ((" mail.fabrikam.com",), None, "mail.fabrikam.com"),
    (("mail.fabrikam.com ",), None, "mail.fabrikam.com"),
    ((), [D("*.fabrikam.com")], "mail.fabrikam.com"),
    ((), [D("*.fabrikam.com")], "fabrikam.com"),
    ((), [D("*.fabrikam.com")], "a.mail.fabrikam.com"),
    ((), [D("*.fabrikam.com")], "mail_1.fabrikam.com"),  # a wildcard stands for LDH only
    ((), [D("*.fabrikam.com")], "xn--bcher-kva.fabrikam.com"),
    ((), [D("*.com")], "fabrikam.com"),
    ((), [D("*.co.uk")], "fabrikam.co.uk"),
    ((), [D("x*.fabrikam.com")], "xy.fabrikam.com"),  # partial wildcards: refused
    ((), [D("*x.fabrikam.com")], "yx.fabrikam.com"),
    ((), [D("**.fabrikam.com")], "ab.fabrikam.com"),
    ((), [D("*.*.fabrikam.com")], "a.b.fabrikam.com"),
    ((), [D("mail.*.fabrikam.com")], "mail.a.fabrikam.com"),
    ((), [D("*.fabrikam.com")], "*.fabrikam.com"),
    ((), [D("xn--bcher-kva.example")], "XN--BCHER-KVA.example"),
    (("mail.fabrikam.com",), [], "mail.fabrikam.com"),  # empty SAN: the CN counts
    (("mail.fabrikam.com",), [x509.RFC822Name("pm@fabrikam.com")], "mail.fabrikam.com"),
    (("mail.fabrikam.com",), [D("smtp.fabrikam.com")], "mail.fabrikam.com"),
    (("mail.fabrikam.com",), [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))],
     "mail.fabrikam.com"),
    (("Fabrikam Relay", "mail.fabrikam.com"), None, "mail.fabrikam.com"),  # every CN
    (("mail.fabrikam.com", "smtp.fabrikam.com"), None, "smtp.fabrikam.com"),
    (("*.fabrikam.com",), None, "mail.fabrikam.com"),
    ((), [D("mail.fabrikam.com"), D("smtp.fabrikam.com")], "smtp.fabrikam.com"),
]


def _san(names: list) -> x509.ExtensionType:
    """A subjectAltName of ``names``; an empty one as raw bytes, which cryptography 51 will
    not build (OpenSSL reads it as no names)."""
    if names:
        return x509.SubjectAlternativeName(names)
    return x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x00")


@pytest.fixture(scope="module")
def ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Name Test Root")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca, cns, san) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    root, root_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, c) for c in cns]))
         .issuer_name(root.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=1))
         .not_valid_after(NOW + dt.timedelta(days=30)))
    if san is not None:
        b = b.add_extension(_san(san), False)
    return b.sign(root_key, hashes.SHA256()), key


def _openssl_accepts(ca, leaf, key, host: str, tmp_path) -> bool:
    """Whether an OpenSSL client asking for ``host`` accepts ``leaf`` (in-memory handshake)."""
    pem = tmp_path / "server.pem"
    pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pem)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca[0].public_bytes(serialization.Encoding.PEM).decode())
    client_ctx.hostname_checks_common_name = True
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
                if side is client:
                    return True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                assert exc.verify_code == 62, exc.verify_message  # hostname mismatch only
                return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize(("cns", "san", "host"), CASES)
def test_name_match_is_openssls(ca, cns, san, host, tmp_path):
    leaf, key = _leaf(ca, cns, san)
    info = cert_info(leaf.public_bytes(serialization.Encoding.DER))
    want = _openssl_accepts(ca, leaf, key, host, tmp_path)
    assert name_matches(info, host) is want
    assert any(host_matches(n, host) for n in _leaf_names(info)) is want
    if want:  # the connector's check takes CN and SAN together: it accepts at least as much
        assert sender_name_fits(_names(info), host)


@pytest.mark.parametrize("host", ["mail.fabrikam.com.", " Mail.Fabrikam.com ", "MAIL.FABRIKAM.COM"])
def test_the_name_looked_for_is_trimmed_not_the_certificates(host):
    assert host_matches("mail.fabrikam.com", host)
    assert host_matches("*.fabrikam.com", host)
    assert not host_matches("mail.fabrikam.com.", host.strip().rstrip("."))
    assert not host_matches("mail.fabrikam.com", "")
