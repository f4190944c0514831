"""A leaf that fails several checks at once: the first problem is OpenSSL's first error.

`openssl verify` builds the path first (no issuer, a self-signed leaf), then checks the
purpose, then the dates; Postfix keeps the first error nearest the leaf.  fastcap's chain
verdict named an expired leaf first whatever else was wrong and then left the rest out: an
expired leaf of an untrusted CA read as "expired" only, though a renewed certificate from
the same CA is refused all the same.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import openssl_errors
from .test_diagnose import codes, run, session, smtp, tls

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOST = "mail.fabrikam.com"
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
# OpenSSL's error at the leaf -> the verdict that says it
CODE = {
    "unable to get local issuer certificate": "client_cert_untrusted_ca",
    "self-signed certificate": "client_cert_self_signed",
    "unsuitable certificate purpose": "client_cert_no_client_auth_eku",
    "certificate has expired": "client_cert_expired",
}
CASES = {  # id: (issuer, expired, extended key usage)
    "expired_untrusted": ("Other Root", True, None),
    "expired_self_signed": (HOST, True, None),
    "expired_no_client_auth": ("Root", True, SERVER_AUTH),
    "untrusted_no_client_auth": ("Other Root", False, SERVER_AUTH),
    "self_signed_no_client_auth": (HOST, False, SERVER_AUTH),
    "expired_no_issuer_sent": ("Issuing CA", True, None),
}  # fmt: skip


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def keys():
    return {n: ec.generate_private_key(ec.SECP256R1()) for n in ("Root", "Other Root", HOST)}


def _cert(keys, subject: str, issuer: str, *, ca: bool = False, expired: bool = False,
          eku=None) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(keys.get(subject, keys[HOST]).public_key()).serial_number(7)
         .not_valid_before(NOW - 3 * DAY).not_valid_after(NOW - DAY if expired else NOW + DAY))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), False)
    return b.sign(keys.get(issuer, keys[HOST]), hashes.SHA256())


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_problem_is_openssls_and_the_others_are_still_listed(case, keys, tmp_path):
    issuer, expired, eku = CASES[case]
    root = _cert(keys, "Root", "Root", ca=True)
    leaf = _cert(keys, HOST, issuer, expired=expired, eku=eku)
    pem = serialization.Encoding.PEM
    said = openssl_errors(tmp_path, root.public_bytes(pem), leaf.public_bytes(pem), at=NOW)
    check = Analyzer(TrustStore([root]), today=NOW).check(
        [leaf.public_bytes(serialization.Encoding.DER)], role="client", at=NOW,
        expected_name=HOST)
    assert (check.path_error, check.path_error_depth) == said[0]
    got = codes(run(session(smtp(), tls()), check, None, expect_name=HOST))
    wanted = [CODE[text] for text, depth in said if depth == 0]
    if expired and "client_cert_expired" not in wanted:  # OpenSSL stops at no issuer
        wanted.append("client_cert_expired")
    if eku and CODE["unsuitable certificate purpose"] not in wanted:
        wanted.insert(1, CODE["unsuitable certificate purpose"])
    assert got == wanted
