"""An intermediate OpenSSL takes as invalid (a duplicate extension: EXFLAG_INVALID) is never an
issuer: `openssl verify` reports the leaf's issuer as not found.  fastcap reports the same error
and says why the certificate sent under that name was not taken."""

from __future__ import annotations

import base64
import datetime as dt
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import openssl_error
from .test_x509lenient import _content, _der, _elements

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(der: bytes) -> bytes:
    return (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der)
            + b"-----END CERTIFICATE-----\n")


def _cert(key, subject: str, issuer: str, ca: bool) -> bytes:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _duplicated(der: bytes, key) -> bytes:
    """``der`` re-signed with its first extension twice."""
    tbs, alg, _ = _elements(_content(der))
    fields = _elements(_content(tbs))
    exts = _elements(_content(_content(fields[-1])))
    fields[-1] = _der(0xA3, _der(0x30, *exts, exts[0]))
    tbs = _der(0x30, *fields)
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_an_intermediate_with_a_duplicate_extension_is_named(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    root = _cert(key, "Root", "Root", True)
    mid = _duplicated(_cert(key, "Mid", "Root", True), key)
    leaf = _cert(key, "mail.fabrikam.com", "Mid", False)
    got = Analyzer(TrustStore.from_bundle(root, "root.der"), today=NOW).check(
        [leaf, mid], role="client", at=NOW)
    expected = openssl_error(tmp_path, _pem(root), _pem(leaf), _pem(mid), at=NOW)
    assert expected == ("unable to get local issuer certificate", 0)
    assert (got.path_error, got.path_error_depth) == expected
    assert "OpenSSL takes it as invalid" in got.detail
    assert "extension 2.5.29.19 (basicConstraints) more than once" in got.detail
    assert "another key" not in got.detail
