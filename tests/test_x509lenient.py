"""Certificates that are not strict DER but that OpenSSL reads: basicConstraints' cA FALSE
encoded explicitly, TRUE as 0x01, an explicit subtree minimum of 0, an empty
nameConstraints.  fastcap judges them as `openssl verify` does, says they are not strict DER,
and keeps their original bytes for signatures and fingerprints."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from fastcap.judge import x509lenient
from fastcap.judge.x509check import Analyzer, TrustStore, cert_info
from fastcap.out.report import export_certs
from fastcap.out.textsafe import printable
from fastcap.run.scanner import scan

from .openssl_oracle import openssl_error

OPENSSL = shutil.which("openssl")
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lax Root")])
LEAF_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.fabrikam.com")])


def _der(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _raw(oid, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, value)


_DNS = _der(0x82, b"fabrikam.com")
BC_CA_FALSE = _raw(ExtensionOID.BASIC_CONSTRAINTS, _der(0x30, b"\x01\x01\x00"))
BC_CA_TRUE_01 = _raw(ExtensionOID.BASIC_CONSTRAINTS, _der(0x30, b"\x01\x01\x01"))
NC_MIN_0 = _raw(ExtensionOID.NAME_CONSTRAINTS,
                _der(0x30, _der(0xA0, _der(0x30, _DNS, _der(0x80, b"\x00")))))
NC_MIN_0_OUTSIDE = _raw(ExtensionOID.NAME_CONSTRAINTS,
                        _der(0x30, _der(0xA0, _der(0x30, _der(0x82, b"contoso.com"),
                                                   _der(0x80, b"\x00")))))
NC_EMPTY = _raw(ExtensionOID.NAME_CONSTRAINTS, _der(0x30))


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def _root(key, bc=None, nc=None, name: x509.Name = ROOT_NAME) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
         .add_extension(bc or x509.BasicConstraints(ca=True, path_length=None), True))
    if nc is not None:
        b = b.add_extension(nc, True)
    return b.sign(key, hashes.SHA256())


def _leaf(key, bc=None, lax: str | None = None, issuer: x509.Name = ROOT_NAME) -> bytes:
    """A leaf; ``lax`` re-signs it with an explicit "critical_false" in each non-critical
    extension, "critical_true_01" (TRUE as 0x01), or as an X.509 v1 certificate with an
    explicit "version_1"."""
    b = (x509.CertificateBuilder().subject_name(LEAF_NAME).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(2)
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.fabrikam.com")]), False))
    if bc is not None:
        b = b.add_extension(bc, True)
    der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return der if lax is None else _resign(der, key, lax)


def _elements(der: bytes) -> list[bytes]:
    """The whole elements (header and content) inside one DER content."""
    out, pos = [], 0
    while pos < len(der):
        size, at = der[pos + 1], pos + 2
        if size >= 0x80:
            at += size & 0x7F
            size = int.from_bytes(der[pos + 2:at], "big")
        out.append(der[pos:at + size])
        pos = at + size
    return out


def _content(element: bytes) -> bytes:
    return element[2 + (element[1] & 0x7F if element[1] >= 0x80 else 0):]


def _resign(der: bytes, key, lax: str) -> bytes:
    fields = _elements(_content(_elements(_content(der))[0]))
    if lax == "critical_false":
        exts = [_elements(_content(e)) for e in _elements(_content(_content(fields[-1])))]
        fields[-1] = _der(0xA3, _der(0x30, *(
            _der(0x30, e[0], b"\x01\x01\x00", e[1]) if len(e) == 2 else _der(0x30, *e)
            for e in exts)))
    elif lax == "critical_true_01":
        fields[-1] = fields[-1].replace(b"\x01\x01\xff", b"\x01\x01\x01")
    elif lax.startswith("version_field_"):  # another version value, as hex: 01 is v2
        fields[0] = _der(0xA0, _der(0x02, bytes.fromhex(lax[14:])))
    else:  # version_1: explicit [0] INTEGER 0 and no extensions
        fields = [_der(0xA0, b"\x02\x01\x00"), *fields[1:-1]]
    tbs = _der(0x30, *fields)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


def _pem(der: bytes) -> bytes:
    """PEM of ``der`` as sent (cryptography would not write a certificate it cannot load)."""
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _openssl(tmp_path, root: x509.Certificate, leaf: bytes,
             *untrusted: bytes) -> tuple[str | None, int | None]:
    return openssl_error(tmp_path, root.public_bytes(serialization.Encoding.PEM), _pem(leaf),
                         b"".join(map(_pem, untrusted)), at=NOW)


CASES = {  # id: (root extensions, leaf extensions, expected note)
    "leaf_ca_false": ({}, {"bc": BC_CA_FALSE}, "basicConstraints cA FALSE encoded explicitly"),
    "leaf_critical_false": ({}, {"lax": "critical_false"},
                            "extension critical flag FALSE encoded explicitly"),
    "leaf_version_1": ({}, {"lax": "version_1"}, "version 1 encoded explicitly"),
    "leaf_critical_true_01": ({}, {"bc": x509.BasicConstraints(ca=False, path_length=None),
                                   "lax": "critical_true_01"},
                              "extension critical flag TRUE encoded as 0x01"),
    "leaf_version_2": ({}, {"lax": "version_field_01"}, "version field 1, neither v1 nor v3"),
    "leaf_version_4": ({}, {"lax": "version_field_03"}, "version field 3, neither v1 nor v3"),
    "leaf_version_minus_1": ({}, {"lax": "version_field_ff"},
                             "version field -1, neither v1 nor v3"),
    "root_ca_true_01": ({"bc": BC_CA_TRUE_01}, {}, None),
    "root_nc_minimum_0": ({"nc": NC_MIN_0}, {}, None),
    "root_nc_minimum_0_outside": ({"nc": NC_MIN_0_OUTSIDE}, {}, None),
    "root_nc_empty": ({"nc": NC_EMPTY}, {}, None),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_lax_der_judged_as_openssl(case, key, tmp_path):
    root_kw, leaf_kw, note = CASES[case]
    root, leaf = _root(key, **root_kw), _leaf(key, **leaf_kw)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.certs[0].parse_error is None
    assert got.certs[0].sha256 == hashlib.sha256(leaf).hexdigest()
    if note is not None:
        assert any("not strict DER" in n and note in n for n in got.profile_notes)


@pytest.mark.parametrize("lax", ["critical_false", "version_1"])
def test_a_copy_is_checked_over_the_bytes_sent(key, lax):
    """Loading refuses these, so fastcap reads a re-encoded copy; its signature, self-signature
    and fingerprint are still those of the bytes sent."""
    leaf = _leaf(key, lax=lax)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(leaf)
    got = Analyzer(TrustStore([_root(key)]), today=NOW).check([leaf], role="client", at=NOW)
    assert got.path_error is None
    assert got.path_sha256[0] == hashlib.sha256(leaf).hexdigest()
    broken = leaf[:-1] + bytes([leaf[-1] ^ 1])
    got = Analyzer(TrustStore([_root(key)]), today=NOW).check([broken], role="client", at=NOW)
    assert got.path_error == "certificate signature failure"
    own = _leaf(key, lax=lax, issuer=LEAF_NAME)
    info = cert_info(own)
    assert info.self_signed and info.parse_error is None
    assert info.sha256 == hashlib.sha256(own).hexdigest()
    assert not cert_info(own[:-1] + bytes([own[-1] ^ 1])).self_signed


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
def test_lax_leaf_without_its_issuer_says_so(key, tmp_path):
    leaf = _leaf(key, bc=BC_CA_FALSE)
    other = _root(ec.generate_private_key(ec.SECP256R1()))
    got = Analyzer(TrustStore([_root(key)]), today=NOW).check([leaf], role="client", at=NOW)
    assert got.path_error is None
    got = Analyzer(TrustStore([other]), today=NOW).check([leaf], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, other, leaf)
    assert "not strict DER (basicConstraints cA FALSE encoded explicitly)" in got.detail


def test_signature_still_covers_the_bytes_sent(key):
    """The re-encoded copy is only read: a lax leaf whose signature is broken still fails."""
    leaf = bytearray(_leaf(key, bc=BC_CA_FALSE))
    leaf[-1] ^= 1
    got = Analyzer(TrustStore([_root(key)]), today=NOW).check([bytes(leaf)], role="client",
                                                               at=NOW)
    assert got.path_error == "certificate signature failure"


def test_canonical_rewrites_only_known_violations(key):
    leaf = _leaf(key, bc=BC_CA_FALSE)
    fixed, fixes = x509lenient.canonical(leaf)
    assert fixes == ("basicConstraints cA FALSE encoded explicitly",)
    assert b"\x01\x01\x00" not in fixed[:len(fixed) - 80]
    bc = x509.load_der_x509_certificate(fixed).extensions.get_extension_for_class(
        x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    assert x509lenient.canonical(_leaf(key)) is None  # strict already: nothing to do
    # A BOOLEAN of two octets is not a known violation: left unparseable.
    bad = leaf.replace(_der(0x30, b"\x01\x01\x00"), _der(0x30, b"\x01\x02\x00\x00"))
    assert x509lenient.canonical(bad) is None
    assert cert_info(bad).parse_error is not None


def test_an_empty_subject_alt_name_reads_as_none(key):
    """RFC 5280 wants a name at least; cryptography 51 refuses an empty subjectAltName, OpenSSL
    reads it as no names (its host check then takes the CN). The copy goes without it, and
    the certificate's CN is its name, whichever cryptography reads it."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.com")])
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(7).not_valid_before(start)
           .not_valid_after(start + dt.timedelta(days=30))
           .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                                                     b"\x30\x00"), False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    fixed, fixes = x509lenient.canonical(der)
    assert fixes == ("empty subjectAltName",)
    assert not list(x509.load_der_x509_certificate(fixed).extensions)
    info = cert_info(der)
    assert info.parse_error is None and info.san_dns == () and info.subject_cn == "mail.contoso.com"


def test_hostile_bytes_never_raise(key):
    leaf = _leaf(key, bc=BC_CA_FALSE)
    rng = random.Random(7)
    for _ in range(300):
        b = bytearray(leaf)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out = x509lenient.canonical(bytes(b))
        assert out is None or isinstance(out[0], bytes)
        cert_info(bytes(b))
    for cut in range(0, len(leaf), 7):
        assert x509lenient.canonical(leaf[:cut]) is None


def _printable(der: bytes, key, *texts: str) -> bytes:
    """``der`` re-signed with each UTF8String ``texts`` tagged PrintableString instead."""
    tbs = _elements(_content(der))[0]
    for text in texts:
        raw = text.encode()
        assert b"\x0c" + bytes([len(raw)]) + raw in tbs
        tbs = tbs.replace(b"\x0c" + bytes([len(raw)]) + raw, b"\x13" + bytes([len(raw)]) + raw)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


def _intermediate(key, name: x509.Name) -> bytes:
    """A CA ``name`` the root issued."""
    return (x509.CertificateBuilder().subject_name(name).issuer_name(ROOT_NAME)
            .public_key(key.public_key()).serial_number(3)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def _named(*attrs: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


AMP = _named((NameOID.ORGANIZATION_NAME, "AT&T"), (NameOID.COMMON_NAME, "Lax CA"))
AMP_CASE = _named((NameOID.ORGANIZATION_NAME, "at&t"), (NameOID.COMMON_NAME, "LAX CA"))
NUL = _named((NameOID.ORGANIZATION_NAME, "Corporat\x00on"), (NameOID.COMMON_NAME, "Lax CA"))
PRINTABLE = {  # id: (intermediate's name, its PrintableStrings, leaf's issuer, leaf's)
    "leaf_subject_star": (AMP, (), AMP, ("*.fabrikam.com",)),
    "intermediate_and_issuer": (AMP, ("AT&T",), AMP, ("AT&T",)),
    "intermediate_other_case": (AMP, ("AT&T",), AMP_CASE, ()),
    "issuer_other_case": (AMP_CASE, (), AMP, ("AT&T", "*.fabrikam.com")),
    # a NUL, as in a null-prefix attack's certificates: OpenSSL reads it (IA5 holds it)
    "intermediate_and_issuer_nul": (NUL, ("Corporat\x00on",), NUL, ("Corporat\x00on",)),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(PRINTABLE))
def test_printable_string_with_other_ascii_as_openssl(case, key, tmp_path):
    """CAs put ``*``, ``&`` or ``@`` in PrintableStrings, forgers a NUL; OpenSSL reads them
    and compares names in its canonical form, whatever the string type."""
    ca_name, in_ca, issuer, in_leaf = PRINTABLE[case]
    root = _root(key)
    ca = _intermediate(key, ca_name)
    ca = _printable(ca, key, *in_ca)
    leaf = (x509.CertificateBuilder()
            .subject_name(_named((NameOID.COMMON_NAME, "*.fabrikam.com")))
            .issuer_name(issuer).public_key(key.public_key()).serial_number(2)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    leaf = _printable(leaf, key, *in_leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf, ca], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf, ca)
    assert got.path_error is None and got.name_matches
    assert all(c.parse_error is None for c in got.certs)
    assert got.path_sha256[:2] == (hashlib.sha256(leaf).hexdigest(),
                                   hashlib.sha256(ca).hexdigest())
    if in_ca or in_leaf:
        assert any("PrintableString holding" in n for n in got.profile_notes)


def _teletex(der: bytes, key) -> bytes:
    """``der`` re-signed with each UTF8String ``Soci?t?`` a TeletexString of ``Société`` in
    Latin-1, of the same length."""
    tbs = _elements(_content(der))[0]
    assert b"\x0c\x07Soci?t?" in tbs
    tbs = tbs.replace(b"\x0c\x07Soci?t?", b"\x14\x07Soci\xe9t\xe9")
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


_T61 = _named((NameOID.ORGANIZATION_NAME, "Soci?t?"), (NameOID.COMMON_NAME, "Lax CA"))
_T61_UTF8 = _named((NameOID.ORGANIZATION_NAME, "Société"), (NameOID.COMMON_NAME, "Lax CA"))
_CA = _named((NameOID.COMMON_NAME, "Lax CA"))
TELETEX = {  # id: (intermediate's name, leaf's issuer, leaf's subject, leaf's SAN DirName)
    "leaf_subject": (_CA, _CA, _T61, None),
    "intermediate_and_issuer": (_T61, _T61, LEAF_NAME, None),
    "issuer_in_utf8": (_T61, _T61_UTF8, LEAF_NAME, None),
    "san_dirname": (_CA, _CA, LEAF_NAME, _T61),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(TELETEX))
def test_a_teletex_string_of_latin_1_judged_as_openssl(case, key, tmp_path):
    """A TeletexString holds any octets; OpenSSL reads each as a Latin-1 letter and compares
    names in UTF-8.  ``cryptography`` reads none that is no UTF-8: fastcap took such a
    subject as unparseable, and a subjectAltName holding such a DirName as undecodable (the
    leaf invalid), where `openssl verify` accepts both."""
    ca_name, issuer, subject, dirname = TELETEX[case]
    root = _root(key)
    ca = _intermediate(key, ca_name)
    san = [x509.DNSName("mail.fabrikam.com")] + ([x509.DirectoryName(dirname)] if dirname else [])
    leaf = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.SubjectAlternativeName(san), False)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    if ca_name is _T61:
        ca = _teletex(ca, key)
    if _T61 in (issuer, subject, dirname):
        leaf = _teletex(leaf, key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf, ca], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf, ca)
    assert got.path_error is None and got.problem is None and got.name_matches
    assert all(c.parse_error is None for c in got.certs)
    assert got.certs[0].san_dns == ("mail.fabrikam.com",)
    if subject is _T61:
        assert got.certs[0].subject == "CN=Lax CA,O=Société"
    # valid DER (a TeletexString holds any octets): the note says what OpenSSL makes of it
    teletex = [n for n in got.profile_notes if "TeletexString" in n]
    assert teletex and all("Latin-1" in n and "not strict DER" not in n for n in teletex)


CORPUS = Path(__file__).parent / "data" / "corpus" / "zeek__tls-missing-intermediate.pcap"


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
def test_a_real_leaf_with_explicit_ca_false_is_judged(tmp_path):
    """Zeek's capture: a Starfield-issued leaf whose basicConstraints encodes cA FALSE, sent
    without its intermediate.  OpenSSL reads it and cannot find its issuer; so does fastcap."""
    sessions = [s for s in scan(CORPUS, ports=[443], implicit_tls_ports=[443])
                if s.tls is not None and s.tls.server_certs]
    lax = [s for s in sessions if hashlib.sha256(s.tls.server_certs[0]).hexdigest()
           .startswith("611101")]
    assert len(lax) == 2
    for s in lax:
        codes = {v.code for v in s.verdicts}
        assert "cert_unparseable" not in codes and "server_cert_incomplete_chain" in codes
        assert "not strict DER (basicConstraints cA FALSE" in s.server_check.detail
    leaf = lax[0].tls.server_certs[0]
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    done = subprocess.run([OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-CAfile",
                           certifi.where(), str(tmp_path / "leaf.pem")],
                          capture_output=True, text=True, timeout=30)
    assert "unable to get local issuer certificate" in done.stderr
    assert lax[0].server_check.path_error == "unable to get local issuer certificate"


def test_export_writes_the_bytes_sent(key, tmp_path):
    """A certificate fastcap reads from a re-encoded copy is exported as sent, DER and PEM."""
    (s,) = [s for s in scan(CORPUS, ports=[443], implicit_tls_ports=[443])
            if s.tls is not None and s.tls.server_certs][:1]
    lax = _leaf(key, lax="critical_false")
    s = dataclasses.replace(s, tls=dataclasses.replace(s.tls, server_certs=[lax]))
    assert export_certs(s, tmp_path) == []
    digest = hashlib.sha256(lax).hexdigest()
    assert (tmp_path / f"{digest}.der").read_bytes() == lax
    pem = (tmp_path / f"{digest}.pem").read_bytes()
    done = subprocess.run([OPENSSL or "openssl", "x509", "-outform", "DER"], input=pem,
                          capture_output=True, timeout=30) if OPENSSL else None
    assert done is None or done.stdout == lax
    assert base64.b64decode(b"".join(pem.splitlines()[1:-1])) == lax


def _header(tag: int, n: int, form: str) -> bytes:
    """A header of length ``n`` in a ``form`` OpenSSL reads and DER forbids: "81" (long form
    for a short length), "8200" (a leading zero octet), "80" (indefinite)."""
    if form == "81":
        return bytes([tag, 0x81, n])
    if form == "8200":
        return bytes([tag, 0x83, 0]) + n.to_bytes(2, "big")
    return bytes([tag, 0x80])


def _long(element: bytes, form: str) -> bytes:
    """``element`` with its own length in ``form``."""
    body = _content(element)
    return _header(element[0], len(body), form) + body + (b"\0\0" if form == "80" else b"")


LENGTHS = {  # id: (which element of the leaf, form)
    "serial_81": ("serial", "81"),
    "subject_8200": ("subject", "8200"),
    "validity_80": ("validity", "80"),
    "extensions_8200": ("extensions", "8200"),
    "san_value_81": ("san", "81"),
    "tbs_80": ("tbs", "80"),
    "outer_8200": ("outer", "8200"),
    "signature_81": ("signature", "81"),  # the BIT STRING holding it
    "public_key_8200": ("public_key", "8200"),
}


def _lengthen(der: bytes, key, where: str, form: str, sign: bool = True) -> bytes:
    """``der`` with one element's length in ``form``, signed over the tbsCertificate as it
    then is (``sign``), else still over the DER one."""
    tbs, alg, sig = _elements(_content(der))
    fields = _elements(_content(tbs))  # version, serial, alg, issuer, validity, subject, ...
    at = {"serial": 1, "validity": 4, "subject": 5, "extensions": 7}.get(where)
    if at is not None:
        fields[at] = _long(fields[at], form)
    elif where == "public_key":
        alg_id, bits = _elements(_content(fields[6]))
        fields[6] = _der(0x30, alg_id, _long(bits, form))
    elif where == "san":  # the GeneralNames inside the extension's OCTET STRING
        ext = _elements(_content(_content(fields[7])))[0]
        oid, value = _elements(_content(ext))
        value = _der(0x04, _long(_content(value), form))
        fields[7] = _der(0xA3, _der(0x30, _der(0x30, oid, value)))
    new_tbs = (_long(_der(0x30, *fields), form) if where == "tbs"
               else _der(0x30, *fields))
    if sign:
        sig = _der(0x03, b"\x00" + key.sign(new_tbs, ec.ECDSA(hashes.SHA256())))
    whole = _der(0x30, new_tbs, alg, _long(sig, form) if where == "signature" else sig)
    return _long(whole, form) if where == "outer" else whole


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(LENGTHS))
def test_lengths_in_a_long_form_judged_as_openssl(case, key, tmp_path):
    """OpenSSL reads a length longer than needed or indefinite (cryptography refuses both) and
    checks the signature over the tbsCertificate as sent: so does fastcap."""
    where, form = LENGTHS[case]
    root = _root(key)
    leaf = _lengthen(_leaf(key), key, where, form)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(leaf).extensions  # noqa: B018
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf) == (None, None)
    assert got.certs[0].parse_error is None and got.name_matches
    assert got.certs[0].sha256 == hashlib.sha256(leaf).hexdigest()
    assert any("a length not in its shortest definite form" in n for n in got.profile_notes)
    if where not in ("outer", "san", "signature"):  # signed bytes changed: old signature fails
        stale = _lengthen(_leaf(key), key, where, form, sign=False)
        got = Analyzer(TrustStore([root]), today=NOW).check([stale], role="client", at=NOW)
        assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, stale)
        assert got.path_error == "certificate signature failure"


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("how", ["length_81", "printable_amp"])
def test_a_root_cryptography_refuses_is_an_anchor_as_in_openssl(how, key, tmp_path, monkeypatch):
    """A trust-store root OpenSSL loads and cryptography refuses is read from its re-encoded
    copy, from a --ca-file, a lone DER file or a bundle (parsed, then from the cache), and
    reported by the bytes of the file."""
    name = AMP if how == "printable_amp" else ROOT_NAME
    root = _root(key, name=name).public_bytes(serialization.Encoding.DER)
    root = (_lengthen(root, key, "serial", "81") if how == "length_81"
            else _printable(root, key, "AT&T"))
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(root)
    leaf = _leaf(key, issuer=name)
    expected = openssl_error(tmp_path, _pem(root), _pem(leaf), at=NOW)
    assert expected == (None, None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(root) + _pem(_leaf(key)))
    other = TrustStore([_root(key, name=LEAF_NAME)])
    parsed = TrustStore._from_bundle_file(str(bundle))
    assert list((tmp_path / "cache").rglob("anchors-*.json"))
    cached = TrustStore._from_bundle_file(str(bundle))
    assert cached._cache is not None and cached._cache.payload is not None
    stores = [TrustStore.from_pem_file(bundle), TrustStore.from_bundle(root, "root.der"),
              parsed, cached, other.plus(cached)]
    for i, store in enumerate(stores):
        got = Analyzer(store, today=NOW).check([leaf], role="client", at=NOW)
        assert (i, got.path_error, got.path_error_depth) == (i, *expected)
        assert got.path_sha256 == (hashlib.sha256(leaf).hexdigest(),
                                   hashlib.sha256(root).hexdigest())


@pytest.mark.parametrize("body", [b"A", b"AAAA", b"!!!!", b"MAA="])
def test_a_root_no_reading_makes_load_is_skipped_or_named(body, tmp_path):
    """A block that is no certificate however read: skipped in a bundle, named as malformed
    in a --ca-file."""
    block = b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n"
    root = _root(ec.generate_private_key(ec.SECP256R1()))
    data = block + root.public_bytes(serialization.Encoding.PEM)
    assert TrustStore._from_pem_bytes(data, "bundle", strict=False).roots == (root,)
    with pytest.raises(ValueError, match="ca.pem: certificate #1 is malformed"):
        TrustStore.from_bundle(data, "ca.pem")


def _openssl_reads(tmp_path, der: bytes) -> bool:
    (tmp_path / "one.pem").write_bytes(_pem(der))
    return subprocess.run([OPENSSL, "x509", "-noout", "-in", str(tmp_path / "one.pem")],
                          capture_output=True, timeout=30).returncode == 0


def _ku_leaf(key, ku: x509.KeyUsage, form: str) -> bytes:
    """A leaf whose keyUsage is in a BER ``form`` OpenSSL joins: its extnValue a constructed
    OCTET STRING ("octets" one piece, "octets_split" two, "octets_80" of indefinite length),
    or the BIT STRING inside it constructed ("bits"); or a constructed INTEGER serial
    ("serial") or a version INTEGER not in its shortest form ("version_0002"), which OpenSSL
    refuses."""
    der = (x509.CertificateBuilder().subject_name(LEAF_NAME).issuer_name(ROOT_NAME)
           .public_key(key.public_key()).serial_number(2)
           .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.fabrikam.com")]), False)
           .add_extension(ku, True).sign(key, hashes.SHA256())
           .public_bytes(serialization.Encoding.DER))
    fields = _elements(_content(_elements(_content(der))[0]))
    san, ku_ext = _elements(_content(_content(fields[7])))
    oid, critical, value = _elements(_content(ku_ext))
    bits = _content(value)
    value = {"octets": _der(0x24, value),
             "octets_split": _der(0x24, _der(0x04, bits[:2]), _der(0x04, bits[2:])),
             "octets_80": b"\x24\x80" + value + b"\0\0",
             "bits": _der(0x04, _der(0x23, bits))}.get(form, value)
    fields[7] = _der(0xA3, _der(0x30, san, _der(0x30, oid, critical, value)))
    if form == "serial":
        fields[1] = _der(0x22, fields[1])
    if form == "version_0002":  # an INTEGER not in its shortest form
        fields[0] = _der(0xA0, _der(0x02, b"\x00\x02"))
    tbs = _der(0x30, *fields)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


KU_SIGN = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
KU_ENCIPHER = x509.KeyUsage(False, False, True, False, False, False, False, False, False)


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("form", ["octets", "octets_split", "octets_80", "bits", "serial",
                                  "version_0002"])
@pytest.mark.parametrize("ku", [KU_SIGN, KU_ENCIPHER], ids=["sign", "encipher"])
def test_strings_in_constructed_form_judged_as_openssl(form, ku, key, tmp_path):
    """BER lets a string be cut into pieces in a constructed element; OpenSSL joins them in
    any string (an extension's value, a keyUsage), so its keyUsage still rules the purpose.
    It refuses a constructed INTEGER: such a certificate is unparseable in both."""
    root, leaf = _root(key), _ku_leaf(key, ku, form)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(leaf).extensions  # noqa: B018
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    if form in ("serial", "version_0002"):
        assert not _openssl_reads(tmp_path, leaf)
        assert got.certs[0].parse_error is not None and got.path_error is None
        return
    assert _openssl_reads(tmp_path, leaf)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.certs[0].parse_error is None and got.name_matches
    assert got.path_error == (None if ku is KU_SIGN else "unsuitable certificate purpose")
    what = "BIT STRING" if form == "bits" else "OCTET STRING"
    assert any(f"not strict DER ({what} in constructed form)" in n
               for n in (got.detail, *got.profile_notes))


def test_joined_strings_follow_openssls_limits():
    """Pieces of any tag, up to five levels deep; an end-of-contents inside a definite
    length, a constructed INTEGER, and a sixth level are refused or left as they are."""
    from fastcap.proto.tls.der import DerError, definite

    def flat(hexed: str) -> tuple[bytes, list[int]]:
        raw, joined = bytes.fromhex(hexed.replace(" ", "")), []
        return definite(raw, 0, len(raw), joined)[0], joined

    assert flat("2480 0401aa 0c01bb 0000") == (b"\x04\x02\xaa\xbb", [4])
    assert flat("3007 2305 030300aabb") == (b"\x30\x05\x03\x03\x00\xaa\xbb", [3])
    deep = "0401aa"
    for _ in range(5):
        deep = "24" + f"{len(deep) // 2:02x}" + deep
    assert flat("24" + f"{len(deep) // 2:02x}" + deep)[0] == b"\x04\x01\xaa"
    with pytest.raises(DerError):
        flat("24" + f"{len(deep) // 2 + 2:02x}" + "24" + f"{len(deep) // 2:02x}" + deep)
    with pytest.raises(DerError):
        flat("2406 0401aa 0000 ")
    assert flat("2203 020101") == (b"\x22\x03\x02\x01\x01", [])


def _timed(der: bytes, key, not_before: bytes, not_after: bytes) -> bytes:
    """``der`` re-signed with its validity's times as given (tag 0x17 UTCTime when 13 or 11
    characters or with an offset after 10 digits and 2 more, else 0x18 GeneralizedTime)."""
    def time(text: bytes) -> bytes:
        return _der(0x17 if len(text.rstrip(b"Z").split(b"+")[0]) in (10, 12) else 0x18, text)

    tbs, _, _ = _elements(_content(der))
    fields = _elements(_content(tbs))
    at = 4 if fields[0][0] == 0xA0 else 3
    fields[at] = _der(0x30, time(not_before), time(not_after))
    tbs = _der(0x30, *fields)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


TIMES = {  # id: (whose, notBefore, notAfter); NOW is 2026-06-01 12:00 UTC
    "utc_no_seconds": ("leaf", b"2605311200Z", b"2606021200Z"),
    "generalized_fraction": ("leaf", b"20260531120000.5Z", b"20260602120000Z"),
    "utc_offset_after": ("leaf", b"260531120000Z", b"260602120000+0100"),
    "generalized_no_zone_after": ("leaf", b"20260531120000Z", b"20260602120000"),
    "not_yet_valid_first": ("leaf", b"260601130000Z", b"2606021200Z"),
    "root_after": ("root", b"260531120000Z", b"2606021200Z"),
}


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(TIMES))
def test_times_in_other_forms_judged_as_openssl(case, key, tmp_path):
    """X.680 allows a time without seconds, with a fraction or an offset; OpenSSL reads such
    a certificate, and its time check, which takes YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ only,
    fails it on that field (notBefore's form before the not-yet-valid test, notAfter's after).
    cryptography refuses it: fastcap read it as unparseable."""
    whose, not_before, not_after = TIMES[case]
    root = _root(key).public_bytes(serialization.Encoding.DER)
    leaf = _leaf(key)
    if whose == "root":
        root = _timed(root, key, not_before, not_after)
    else:
        leaf = _timed(leaf, key, not_before, not_after)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(root if whose == "root" else leaf)
    store = TrustStore.from_bundle(root, "root.der")
    got = Analyzer(store, today=NOW).check([leaf], role="client", at=NOW)
    expected = openssl_error(tmp_path, _pem(root), _pem(leaf), at=NOW)
    assert (got.path_error, got.path_error_depth) == expected, got.detail
    assert expected[0] is not None and all(c.parse_error is None for c in got.certs)
    field = "notBefore" if "notBefore" in expected[0] else "notAfter"
    if "format error" in expected[0]:
        text = (not_before if field == "notBefore" else not_after).decode()
        assert f"{field} {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ" in got.detail
    if whose == "leaf" and "format error" in expected[0]:  # no time to show or judge by
        assert getattr(got.certs[0], "not_before" if field == "notBefore" else "not_after") is None


def test_a_time_in_no_form_stays_unparseable(key):
    leaf = _timed(_leaf(key), key, b"yesterdayZ", b"260602120000Z")
    assert x509lenient.canonical(leaf) is None
    assert x509lenient.malformed_times(leaf) == ("yesterdayZ", None)
    assert cert_info(leaf).parse_error is not None


def _ecdsa_value(form: str, key) -> bytes:
    """A leaf whose ECDSA signature value is re-encoded in ``form``:
    "81" a long length, "pad" an INTEGER with a needless leading zero, "tail" a byte after."""
    der = _leaf(key)
    tbs, alg, _ = _elements(_content(der))
    r, s = _elements(_content(key.sign(tbs, ec.ECDSA(hashes.SHA256()))))
    if form == "81":
        value = bytes([0x30, 0x81, len(r + s)]) + r + s
    elif form == "pad":
        value = _der(0x30, _der(0x02, b"\x00" + _content(r)), s)
    else:
        value = _der(0x30, r, s) + b"\x00"
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + value))


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("form", ["81", "pad", "tail"])
def test_an_ecdsa_value_not_in_der_fails_as_in_openssl_and_says_so(form, key, tmp_path):
    """OpenSSL re-encodes an ECDSA signature value and fails it unless the bytes are the same;
    the verdict names that, not only a signature that does not verify."""
    root = _root(key)
    leaf = _ecdsa_value(form, key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.path_error == "certificate signature failure"
    assert "its ECDSA signature value is not DER" in got.detail
    fine = Analyzer(TrustStore([root]), today=NOW).check([_leaf(key)], role="client", at=NOW)
    assert fine.path_error is None


def _oid(dotted: str) -> bytes:
    """The DER OBJECT IDENTIFIER of ``dotted``."""
    arcs = [int(a) for a in dotted.split(".")]
    body = b""
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        part = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            part.append(0x80 | arc & 0x7F)
        body += bytes(reversed(part))
    return _der(0x06, body)


def _repeated(der: bytes, key, oid: str, value: bytes) -> bytes:
    """``der`` re-signed with two more extensions ``oid`` (dotted) of ``value``."""
    tbs, alg, _ = _elements(_content(der))
    fields = _elements(_content(tbs))
    one = _der(0x30, _oid(oid), _der(0x04, value))
    fields[-1] = _der(0xA3, _der(0x30, *_elements(_content(_content(fields[-1]))), one, one))
    tbs = _der(0x30, *fields)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


REPEATS = {  # id: (extension OID, its value); OpenSSL decodes the first six, not the others
    "subjectAltName": ("2.5.29.17", _der(0x30, _der(0x82, b"mail.fabrikam.com"))),
    "basicConstraints": ("2.5.29.19", _der(0x30)),
    "keyUsage": ("2.5.29.15", _der(0x03, b"\x07\x80")),
    "extKeyUsage": ("2.5.29.37", _der(0x30, _der(0x06, bytes.fromhex("2b06010505070302")))),
    "crlDistributionPoints": ("2.5.29.31", _der(0x30, _der(0x30, _der(0xA0, _der(
        0xA0, _der(0x86, b"http://crl.fabrikam.com/ca.crl")))))),
    "nsCertType": ("2.16.840.1.113730.1.1", _der(0x03, b"\x07\x80")),
    "issuerAltName": ("2.5.29.18", _der(0x30, _der(0x82, b"fabrikam.com"))),
    "authorityInfoAccess": ("1.3.6.1.5.5.7.1.1", _der(0x30, _der(
        0x30, _der(0x06, bytes.fromhex("2b06010505073002")), _der(0x86, b"http://ca/")))),
    "private": ("1.3.6.1.4.1.311.20.2", _der(0x1E, "Machine".encode("utf-16-be"))),
}  # fmt: skip


CA_NAME = _named((NameOID.COMMON_NAME, "Lax CA"))


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("whose", ["leaf", "intermediate"])
@pytest.mark.parametrize("case", sorted(REPEATS))
def test_a_repeated_extension_judged_as_openssl(case, whose, key, tmp_path):
    """RFC 5280 allows each extension once; OpenSSL reads a certificate that repeats one, and
    takes it as invalid (never an issuer's subject nor an issuer) only when the repeat is of
    one it decodes.  fastcap read any repeat as unparseable."""
    oid, value = REPEATS[case]
    root = _root(key)
    leaf, sent = _leaf(key), []
    if whose == "intermediate":
        ca = (x509.CertificateBuilder().subject_name(CA_NAME).issuer_name(ROOT_NAME)
              .public_key(key.public_key()).serial_number(3)
              .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
              .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        leaf, sent = _leaf(key, issuer=CA_NAME), [_repeated(ca, key, oid, value)]
    else:
        leaf = _repeated(leaf, key, oid, value)
    odd = (sent or [leaf])[0]
    assert _openssl_reads(tmp_path, odd)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf, *sent], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf, *sent)
    assert got.problem != "unparseable" and all(c.parse_error is None for c in got.certs)
    assert got.certs[0].subject_cn == "mail.fabrikam.com"
    copies = 3 if case == "subjectAltName" and whose == "leaf" else 1  # each, as OpenSSL shows
    assert got.certs[0].san_dns == ("mail.fabrikam.com",) * copies
    i = len(sent)
    if got.path_error is None:
        assert got.problem is None
        assert any(f"certificate #{i} carries extension {oid}" in n and "more than once" in n
                   for n in got.profile_notes)
    elif whose == "leaf":  # invalid whichever CA is at hand: not judged by its issuer
        stranger = _root(ec.generate_private_key(ec.SECP256R1()), name=CA_NAME)
        alone = Analyzer(TrustStore([stranger]), today=NOW).check([leaf], role="client", at=NOW)
        for check in (got, alone):
            assert check.problem == "invalid"
            assert f"OpenSSL takes the certificate as invalid: it carries extension {oid}" \
                   in check.detail and "more than once" in check.detail
    else:
        assert f"but OpenSSL takes it as invalid: it carries extension {oid}" in got.detail


def _pieces(tag: int, text: bytes, piece: int = 0x04) -> bytes:
    """``text`` as a string of ``tag`` in BER's constructed form: two pieces of tag ``piece``
    (OpenSSL joins the pieces whatever their tag)."""
    half = len(text) // 2
    return _der(tag | 0x20, _der(piece, text[:half]), _der(piece, text[half:]))


def _cn_name(value: bytes) -> bytes:
    return _der(0x30, _der(0x31, _der(0x30, _oid("2.5.4.3"), value)))


def _constructed(key, where: str) -> bytes:
    """A leaf for mail.fabrikam.com with one string in BER's constructed form: its subject CN
    a UTF8String or a PrintableString (and no SAN), its issuer's CN, or its SAN dNSName
    ([2] IMPLICIT IA5String, cut into IA5String pieces or in an indefinite length) or
    iPAddress."""
    tbs, alg, _ = _elements(_content(_leaf(key)))
    fields = _elements(_content(tbs))  # version, serial, alg, issuer, validity, subject, ...
    if where.startswith("subject"):  # and no SAN: the CN is its name
        fields[5] = _cn_name(_pieces(0x0C, b"mail.fabrikam.com", 0x0C) if where.endswith("utf8")
                             else _pieces(0x13, b"mail.fabrikam.com"))
        del fields[7]
    elif where == "issuer_utf8":
        fields[3] = _cn_name(_pieces(0x0C, b"Lax Root"))
    else:
        name = {"san_dns": _pieces(0x82, b"mail.fabrikam.com", 0x16),
                "san_dns_80": b"\xa2\x80" + _der(0x16, b"mail.fabrikam.com") + b"\0\0",
                "san_ip": _der(0x82, b"mail.fabrikam.com") + _pieces(0x87, bytes([192, 0, 2, 25]))
                }[where]  # fmt: skip
        san = _der(0x30, _oid("2.5.29.17"), _der(0x04, _der(0x30, name)))
        fields[7] = _der(0xA3, _der(0x30, san))
    tbs = _der(0x30, *fields)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + sig))


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("where", ["subject_utf8", "subject_printable", "issuer_utf8",
                                   "san_dns", "san_dns_80", "san_ip"])
def test_names_in_constructed_form_judged_as_openssl(where, key, tmp_path):
    """OpenSSL joins a string's pieces in a name and in an implicitly tagged GeneralName of the
    subjectAltName as anywhere else, and compares, matches and chains by the joined text.
    fastcap read such a leaf as unparseable."""
    root, leaf = _root(key), _constructed(key, where)
    assert _openssl_reads(tmp_path, leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf) == (None, None)
    info = got.certs[0]
    assert got.problem is None and info.parse_error is None and got.name_matches
    assert info.sha256 == hashlib.sha256(leaf).hexdigest()
    assert info.subject_cn == "mail.fabrikam.com" and info.issuer_cn == "Lax Root"
    assert info.san_dns == (() if where.startswith("subject") else ("mail.fabrikam.com",))
    assert info.san_ip == (("192.0.2.25",) if where == "san_ip" else ())
    assert any("not strict DER" in n and "in constructed form" in n for n in got.profile_notes)


BROKEN = {  # id: (extension OID, a value that does not decode as its type, critical)
    "authorityInfoAccess": ("1.3.6.1.5.5.7.1.1", _der(0x30, _der(0x02, b"\x01")), False),
    "certificatePolicies": ("2.5.29.32", _der(0x04, b"\x00"), False),
    "authorityInfoAccess_critical": ("1.3.6.1.5.5.7.1.1", _der(0x30, _der(0x02, b"\x01")), True),
    "keyUsage": ("2.5.29.15", _der(0x04, b"\x00"), False),
    "extKeyUsage": ("2.5.29.37", _der(0x02, b"\x01"), False),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_extension_that_does_not_decode_judged_as_openssl(case, key, tmp_path):
    """OpenSSL reads a certificate whose extension's value does not decode as its type; it
    takes it as invalid when the extension is one it decodes for every certificate, refuses
    it when the extension is critical and unknown to it, and accepts it otherwise.  fastcap
    read it as unparseable."""
    oid, value, critical = BROKEN[case]
    tbs, alg, _ = _elements(_content(_leaf(key)))
    fields = _elements(_content(tbs))
    ext = _der(0x30, _oid(oid), *([b"\x01\x01\xff"] if critical else []), _der(0x04, value))
    fields[-1] = _der(0xA3, _der(0x30, *_elements(_content(_content(fields[-1]))), ext))
    tbs = _der(0x30, *fields)
    leaf = _der(0x30, tbs, alg, _der(0x03, b"\x00" + key.sign(tbs, ec.ECDSA(hashes.SHA256()))))
    root = _root(key)
    assert _openssl_reads(tmp_path, leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.problem != "unparseable" and got.certs[0].parse_error is None
    assert got.certs[0].san_dns == ("mail.fabrikam.com",) and got.name_matches
    said = f"extension {oid}" if oid in x509lenient.OPENSSL_DECODED or critical else oid
    assert said in " ".join((got.detail, *got.profile_notes))
    assert "does not decode" in " ".join((got.detail, *got.profile_notes))


def _with(key, *exts: tuple[str | bytes, bytes, bool], san: bool = True) -> bytes:
    """A leaf for mail.fabrikam.com with ``exts`` (dotted OID or its DER, value, critical)
    added after its SAN, or in its place when ``san`` is False."""
    tbs, alg, _ = _elements(_content(_leaf(key)))
    fields = _elements(_content(tbs))
    added = [_der(0x30, _oid(o) if isinstance(o, str) else o,
                  *([b"\x01\x01\xff"] if c else []), _der(0x04, v)) for o, v, c in exts]
    kept = _elements(_content(_content(fields[-1]))) if san else []
    fields[-1] = _der(0xA3, _der(0x30, *kept, *added))
    tbs = _der(0x30, *fields)
    return _der(0x30, tbs, alg, _der(0x03, b"\x00" + key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


_MAIL = _der(0x82, b"mail.fabrikam.com")
REFUSED = {  # id: (extension, whether it replaces the SAN); cryptography refuses each value
    "keyUsage_unused_bits_set": (("2.5.29.15", _der(0x03, b"\x05\xa1"), True), True),
    "basicConstraints_pathlen_without_ca": (("2.5.29.19", _der(0x30, _der(0x02, b"\x00")),
                                             True), True),
    "basicConstraints_pathlen_2_72": (("2.5.29.19", _der(0x30, b"\x01\x01\xff", _der(
        0x02, b"\x01" + bytes(9))), True), True),
    "extKeyUsage_empty": (("2.5.29.37", _der(0x30), False), True),
    "san_x400Address": (("2.5.29.17", _der(0x30, _MAIL, _der(0xA3, _der(0x30, _der(
        0x61, _der(0x13, b"US"))))), False), False),
    "san_ediPartyName": (("2.5.29.17", _der(0x30, _MAIL, _der(0xA5, _der(0xA1, _der(
        0x0C, b"edi")))), False), False),
    "san_ip_5_octets": (("2.5.29.17", _der(0x30, _MAIL, _der(0x87, bytes(5))), False), False),
    "san_uri_not_ascii": (("2.5.29.17", _der(0x30, _MAIL, _der(0x86, b"http://\xff/")), False),
                          False),
    "ian_ediPartyName": (("2.5.29.18", _der(0x30, _der(0xA5, _der(0xA1, _der(
        0x0C, b"edi")))), False), True),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_value_cryptography_refuses_judged_as_openssl(case, key, tmp_path):
    """OpenSSL decodes extension values ``cryptography`` refuses: keyUsage bits with the unused
    ones set (it masks them), a pathLenConstraint without cA or beyond a long (no limit), an
    empty extKeyUsage (no usage at all), GeneralNames of forms cryptography does not hold.
    fastcap took such a certificate as invalid, as OpenSSL takes one it cannot decode."""
    ext, keep_san = REFUSED[case]
    leaf, root = _with(key, ext, san=keep_san), _root(key)
    with pytest.raises(Exception):  # noqa: B017 -- ValueError or UnsupportedGeneralNameType
        x509.load_der_x509_certificate(leaf).extensions  # noqa: B018
    assert _openssl_reads(tmp_path, leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.certs[0].parse_error is None
    assert got.certs[0].san_dns == ("mail.fabrikam.com",) and got.name_matches
    if case == "extKeyUsage_empty":
        assert got.problem == "wrong_usage" and got.certs[0].ext_key_usage == ()
    else:
        assert got.problem is None
        assert any("not strict DER" in n or "cryptography" in n for n in got.profile_notes)


_URI = b"http://crl.fabrikam.com/ca.crl"
_CA_ISSUERS = _oid("1.3.6.1.5.5.7.48.2")
IMPLICIT = {  # id: extension holding an implicitly tagged string in BER's constructed form
    "crlDistributionPoints_fullName": ("2.5.29.31", _der(0x30, _der(0x30, _der(0xA0, _der(
        0xA0, _pieces(0x86, _URI, 0x16)))))),
    "crlDistributionPoints_indefinite": ("2.5.29.31", _der(0x30, _der(0x30, _der(0xA0, _der(
        0xA0, b"\xa6\x80" + _der(0x16, _URI) + b"\0\0"))))),
    "crlDistributionPoints_cRLIssuer": ("2.5.29.31", _der(0x30, _der(0x30, _der(0xA0, _der(
        0xA0, _der(0x86, _URI))), _der(0xA2, _pieces(0x82, b"fabrikam.com", 0x16))))),
    "crlDistributionPoints_reasons": ("2.5.29.31", _der(0x30, _der(0x30, _der(0xA0, _der(
        0xA0, _der(0x86, _URI))), _der(0xA1, _der(0x03, b"\x01\x60"))))),
    "authorityKeyIdentifier_keyIdentifier": ("2.5.29.35", _der(0x30, _pieces(
        0x80, b"\x01\x02\x03\x04\x05\x06\x07\x08"))),
    "authorityKeyIdentifier_issuer": ("2.5.29.35", _der(0x30, _der(0xA1, _pieces(
        0x82, b"fabrikam.com", 0x16)), _der(0x82, b"\x01"))),
    "authorityInfoAccess_caIssuers": ("1.3.6.1.5.5.7.1.1", _der(0x30, _der(0x30, _CA_ISSUERS,
                                      _pieces(0x86, b"http://ca.fabrikam.com/ca.cer", 0x16)))),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(IMPLICIT))
def test_implicit_strings_in_constructed_form_judged_as_openssl(case, key, tmp_path):
    """OpenSSL joins the pieces of an implicitly tagged string wherever its template knows the
    type: a GeneralName of the CRL distribution points, of the authority key identifier or of
    the authority information access, a keyIdentifier, the reasons BIT STRING.  fastcap took a
    certificate with such crlDistributionPoints or authorityKeyIdentifier as invalid, and
    lost the caIssuers URI."""
    oid, value = IMPLICIT[case]
    leaf, root = _with(key, (oid, value, False)), _root(key)
    assert _openssl_reads(tmp_path, leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.problem is None and got.certs[0].parse_error is None
    assert any("in constructed form" in n for n in got.profile_notes)
    exts = x509lenient.extensions(x509lenient.load(leaf).cert)[0]
    assert exts.get_extension_for_oid(x509.ObjectIdentifier(oid))
    if case == "authorityInfoAccess_caIssuers":
        aia = exts.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        assert aia[0].access_location.value == "http://ca.fabrikam.com/ca.cer"


NC_BASES = {  # a permitted dNSName in constructed form; one beside an iPAddress of 4 octets
    "constructed": lambda name: _der(0x30, _pieces(0x82, name, 0x16)),
    "odd_ip": lambda name: _der(0x30, _der(0x82, name)) + _der(0x30, _der(0x87, bytes(4))),
}


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("form", sorted(NC_BASES))
@pytest.mark.parametrize("permitted", [b"fabrikam.com", b"contoso.com"])
def test_a_name_constraint_cryptography_refuses_applies_as_in_openssl(form, permitted, key,
                                                                      tmp_path):
    """OpenSSL joins a nameConstraints dNSName in constructed form, and decodes a permitted
    iPAddress of neither 8 nor 32 octets (applied only to IP addresses, none in this leaf),
    and applies the constraints; ``cryptography`` refuses both, and fastcap took the root as
    invalid."""
    nc = _raw(ExtensionOID.NAME_CONSTRAINTS, _der(0x30, _der(0xA0, NC_BASES[form](permitted))))
    root = _root(key, nc=nc)
    leaf = _leaf(key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    expected = _openssl(tmp_path, root, leaf)
    assert (got.path_error, got.path_error_depth) == expected
    assert (expected[0] is None) is (permitted == b"fabrikam.com")


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
def test_a_repeated_subject_alt_name_shown_and_matched_as_openssl(key, tmp_path):
    """`openssl x509 -text` prints every copy of a repeated subjectAltName; its host check
    (X509_get_ext_d2i finds the extension more than once, so none) falls back to the CN.
    fastcap showed the first copy's names and matched by them."""
    leaf = _with(key, ("2.5.29.17", _der(0x30, _der(0x82, b"relay.fabrikam.com")), False),
                 ("2.5.29.17", _der(0x30, _der(0x82, b"smtp.fabrikam.com")), False), san=False)
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    shown = subprocess.run([OPENSSL, "x509", "-noout", "-text", "-in", str(tmp_path / "leaf.pem")],
                           capture_output=True, text=True, timeout=30).stdout
    info = cert_info(leaf)
    assert info.san_dns == ("relay.fabrikam.com", "smtp.fabrikam.com")
    assert all(f"DNS:{n}" in shown for n in info.san_dns)
    analyzer = Analyzer(TrustStore([_root(key)]), today=NOW)
    for host in ("mail.fabrikam.com", "relay.fabrikam.com", "smtp.fabrikam.com"):
        said = subprocess.run([OPENSSL, "x509", "-noout", "-in", str(tmp_path / "leaf.pem"),
                               "-checkhost", host], capture_output=True, text=True,
                              timeout=30).stdout
        got = analyzer.check([leaf], role="server", at=NOW, expected_name=host)
        assert got.name_matches is ("does match" in said), (host, said)
        assert got.problem == "invalid"


OTHER_NAME = _named((NameOID.COMMON_NAME, "Other Root"))
LONE = {  # id: authorityKeyIdentifier with a serial number or an issuer alone
    "serial_of_the_root": _der(0x30, _der(0x82, b"\x01")),
    "serial_of_another": _der(0x30, _der(0x82, b"\x07")),
    "issuer_of_the_root": _der(0x30, _der(0xA1, _der(0xA4, ROOT_NAME.public_bytes()))),
    "issuer_of_another": _der(0x30, _der(0xA1, _der(0xA4, OTHER_NAME.public_bytes()))),
    "issuer_dns_only": _der(0x30, _der(0xA1, _der(0x82, b"fabrikam.com"))),
}


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(LONE))
def test_an_authority_key_id_serial_or_issuer_alone_judged_as_openssl(case, key, tmp_path):
    """RFC 5280 wants authorityCertIssuer and authorityCertSerialNumber together;
    ``cryptography`` refuses one alone, OpenSSL decodes it and checks what is there against
    the issuer (X509_check_akid).  fastcap took the certificate as invalid."""
    leaf, root = _with(key, ("2.5.29.35", LONE[case], False)), _root(key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    expected = _openssl(tmp_path, root, leaf)
    assert (got.path_error, got.path_error_depth) == expected
    assert (expected[0] is None) is ("another" not in case)


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("bits", ["05a1", "0504", "0005"])
def test_netscape_cert_type_unused_bits_cleared_as_in_openssl(bits, key, tmp_path):
    """OpenSSL clears a BIT STRING's unused bits: a root that is a CA by its Netscape cert
    type alone is no CA when its CA bits lie in the unused ones.  fastcap read them."""
    ns = _raw(x509.ObjectIdentifier("2.16.840.1.113730.1.1"), _der(0x03, bytes.fromhex(bits)))
    root = (x509.CertificateBuilder().subject_name(ROOT_NAME).issuer_name(ROOT_NAME)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(ns, False).sign(key, hashes.SHA256()))
    leaf = _leaf(key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)


@pytest.mark.parametrize("bits", ["0081", "0001", "078080", "070080"])
def test_encipher_or_decipher_only_without_key_agreement_judged_as_openssl(bits, key,
                                                                             tmp_path):
    """keyUsage encipherOnly or decipherOnly without keyAgreement: ``cryptography`` refuses
    it, OpenSSL reads the bits (meaningless alone, yet not an empty keyUsage) and judges the
    rest.  fastcap took the certificate as invalid."""
    leaf = _with(key, ("2.5.29.15", _der(0x03, bytes.fromhex(bits)), True))
    root = _root(key)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    expected = _openssl(tmp_path, root, leaf)
    assert (got.path_error, got.path_error_depth) == expected
    assert (expected[0] is None) is bits.startswith(("0081", "0780"))


def _shown(tmp_path, der: bytes, field: str) -> list[str]:
    """The items `openssl x509 -text` prints under the extension ``field``."""
    (tmp_path / "shown.pem").write_bytes(_pem(der))
    text = subprocess.run([OPENSSL, "x509", "-noout", "-text", "-in", str(tmp_path / "shown.pem")],
                          capture_output=True, timeout=30).stdout.decode("utf-8", "replace")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(field))
    return lines[at + 1].strip().split(", ")


def _dn(*attrs: tuple[str, str]) -> bytes:
    """A Name's DER of (dotted OID, text) attributes, one to an RDN."""
    return x509.Name([x509.NameAttribute(x509.ObjectIdentifier(oid), text)
                      for oid, text in attrs]).public_bytes()


def _typed_cn(tag: int, octets: bytes) -> bytes:
    """A Name's DER of one CN, a string of type ``tag`` holding ``octets``."""
    return _der(0x30, _der(0x31, _der(0x30, _oid("2.5.4.3"), _der(tag, octets))))


def _other(oid: str, value: bytes) -> bytes:
    return _der(0xA0, _oid(oid), _der(0xA0, value))


SHOWN_SAN = {  # id: a GeneralName beside the dNSName, which OpenSSL names
    "x400Address": _der(0xA3, _der(0x30, _der(0x61, _der(0x13, b"US")))),
    "ediPartyName": _der(0xA5, _der(0xA1, _der(0x0C, b"edi"))),
    "ip_5_octets": _der(0x87, bytes(5)),
    "registeredID": _der(0x88, _oid("1.2.3.4")[2:]),
    "email": _der(0x81, b"pm@fabrikam.com"),
    "uri": _der(0x86, b"https://fabrikam.com/"),
    "dirName": _der(0xA4, x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "Relay")])
                    .public_bytes()),
    # names OpenSSL knows: a directory name's attributes by their short names (the EV and
    # personal ones mail certificates carry), a registered ID by its long name
    "dirName_ev": _der(0xA4, _dn(("1.3.6.1.4.1.311.60.2.1.3", "US"), ("2.5.4.15", "Private"),
                                 ("1.3.6.1.4.1.311.60.2.1.2", "Delaware"), ("2.5.4.5", "42"),
                                 ("2.5.4.97", "VATUS-42"), ("1.3.6.1.4.1.311.60.2.1.1", "Dover"),
                                 ("2.5.4.3", "Relay"))),
    "dirName_personal": _der(0xA4, _dn(
        ("2.5.4.43", "P"), ("2.5.4.44", "Jr"), ("2.5.4.46", "q"), ("2.5.4.65", "pm"),
        ("2.5.4.13", "desk"), ("2.5.4.41", "Pat"), ("2.5.4.20", "555 0100"),
        ("1.2.840.113549.1.9.2", "relay"), ("0.9.2342.19200300.100.1.3", "pm@fabrikam.com"),
        ("0.9.2342.19200300.100.1.25", "com"), ("0.9.2342.19200300.100.1.1", "pm"))),
    "dirName_multi_valued": _der(0xA4, x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "Relay"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fabrikam")])]).public_bytes()),
    "dirName_separators": _der(0xA4, _dn(("2.5.4.3", "a+b/c=d\\e"), ("2.5.4.10", "/x"))),
    "dirName_unknown": _der(0xA4, _dn(("2.5.4.6", "US"), ("1.2.3.4", "x"))),
    # X509_NAME_oneline writes into 256 octets: attributes while the text fits in 255, then none
    "dirName_long": _der(0xA4, _dn(*[("2.5.4.11", f"unit{i:02d}-" + "x" * 20) for i in range(12)])),
    "dirName_255": _der(0xA4, _dn(("2.5.4.11", "u" * 120), ("2.5.4.11", "v" * 127))),
    "dirName_256": _der(0xA4, _dn(("2.5.4.11", "u" * 120), ("2.5.4.11", "v" * 128))),
    "dirName_escapes_cut": _der(0xA4, _dn(("2.5.4.11", "/" * 100), ("2.5.4.11", "\n" * 40))),
    "dirName_first_too_long": _der(0xA4, _dn(("2.5.4.11", "u" * 300), ("2.5.4.6", "US"))),
    # X509_NAME_oneline prints a value's octets whatever its string type
    "dirName_bmp": _der(0xA4, _typed_cn(0x1E, "Relé".encode("utf-16-be"))),
    "dirName_universal": _der(0xA4, _typed_cn(0x1C, "Re".encode("utf-32-be"))),
    # a TeletexString of Latin-1 octets: its octets, not the UTF-8 fastcap reads it as
    "dirName_teletex": _der(0xA4, _typed_cn(0x14, b"Rel\xe9")),
    "registeredID_client_auth": _der(0x88, _oid("1.3.6.1.5.5.7.3.2")[2:]),
    "registeredID_email_protection": _der(0x88, _oid("1.3.6.1.5.5.7.3.4")[2:]),
    "registeredID_upn": _der(0x88, _oid("1.3.6.1.4.1.311.20.2.3")[2:]),
    "registeredID_smtp_utf8_mailbox": _der(0x88, _oid("1.3.6.1.5.5.7.8.9")[2:]),
    "registeredID_common_name": _der(0x88, _oid("2.5.4.3")[2:]),
    "registeredID_unnamed": _der(0x88, _oid("2.23.140.1.2.1")[2:]),
    "upn": _other("1.3.6.1.4.1.311.20.2.3", _der(0x0C, b"relay@fabrikam.com")),
    "smtp_utf8_mailbox": _other("1.3.6.1.5.5.7.8.9", _der(0x0C, "пм@fabrikam.com".encode())),
    "srv_name": _other("1.3.6.1.5.5.7.8.7", _der(0x16, b"_smtp.fabrikam.com")),
    "othername_integer": _other("1.2.3.4", _der(0x02, b"\x05")),
    "othername_ia5": _other("1.2.3.4", _der(0x16, b"text")),
    "permanent_identifier": _other("1.3.6.1.5.5.7.8.3", _der(0x30, _der(0x0C, b"x"))),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(SHOWN_SAN))
def test_every_san_entry_shown_as_openssl_names_it(case, key, tmp_path):
    """`openssl x509 -text` names every subjectAltName entry; fastcap showed the DNS names and
    IP addresses only, and nothing of the forms ``cryptography`` does not hold."""
    leaf = _with(key, ("2.5.29.17", _der(0x30, _MAIL, SHOWN_SAN[case]), False), san=False)
    info = cert_info(leaf)
    assert info.parse_error is None
    shown = _shown(tmp_path, leaf, "X509v3 Subject Alternative Name")
    assert [f"DNS:{n}" for n in info.san_dns] + list(info.san_other) == shown
    assert info.to_dict()["san_other"] == shown[1:]


RAW_SAN = {  # id: an rfc822Name or URI of octets an IA5String does not hold, or that hide
    "email_utf8": _der(0x81, "pm@bücher.example".encode()),
    "email_ff": _der(0x81, b"p\xffm@fabrikam.com"),  # no UTF-8: cryptography refuses it
    "email_replacement_char": _der(0x81, "p\ufffdm@fabrikam.com".encode()),
    "email_escape_sequence": _der(0x81, b"pm\x1b[2J\x1b[31m@fabrikam.com"),
    "email_newline_markup": _der(0x81, b'pm@x\n<script>"&</script>'),
    "email_forged_escape": _der(0x81, b"p\\xC3\\xA9m@fabrikam.com"),
    "uri_utf8": _der(0x86, "https://bücher.example/".encode()),
    "uri_right_to_left": _der(0x86, "https://fabrikam.com/\u202egpj.exe".encode()),
}  # fmt: skip


def _unescaped(text: str) -> bytes:
    """The octets ``text`` stands for: each ``\\xHH`` one octet, every other character its
    UTF-8."""
    return re.sub(rb"\\x([0-9A-F]{2})", lambda m: bytes.fromhex(m.group(1).decode()),
                  text.encode())


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(RAW_SAN))
def test_an_email_or_uri_is_shown_octet_for_octet(case, key, tmp_path):
    """`openssl x509 -text` prints an rfc822Name's or URI's octets as they are; fastcap decoded
    them as UTF-8, with U+FFFD for what does not decode, so a name of other octets read as a
    UTF-8 one (or two names as one).  Shown as printable ASCII with every other octet, and
    the backslash, as ``\\xHH``: the octets OpenSSL prints, and safe in every output."""
    leaf = _with(key, ("2.5.29.17", _der(0x30, _MAIL, RAW_SAN[case]), False), san=False)
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    said = subprocess.run([OPENSSL, "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(tmp_path / "leaf.pem")], capture_output=True, timeout=30).stdout
    raw = said.split(b"\n", 1)[1].strip().split(b"DNS:mail.fabrikam.com, ", 1)[1]
    info = cert_info(leaf)
    assert info.parse_error is None
    (shown,) = info.san_other
    assert shown.isascii() and shown.isprintable()
    assert _unescaped(shown) == raw
    assert json.loads(json.dumps(info.to_dict()))["san_other"] == [shown]
    assert printable(shown).replace("\\\\", "\\") == shown  # only its escapes are escaped


_MAILBOX = "1.3.6.1.5.5.7.8.9"  # SmtpUTF8Mailbox, a UTF8String
RAW_OTHER_NAME = {  # id: an otherName's string, and whether what it holds is UTF-8
    "mailbox_utf8": (_other(_MAILBOX, _der(0x0C, "пм@bücher.example".encode())), True),
    "mailbox_ff": (_other(_MAILBOX, _der(0x0C, b"p\xffm@fabrikam.com")), False),
    "mailbox_forged_escape": (_other(_MAILBOX, _der(0x0C, b"p\\xFFm@fabrikam.com")), True),
    "mailbox_escape_sequence": (_other(_MAILBOX, _der(0x0C, b"pm\x1b[31m@fabrikam.com")), True),
    "srv_name_utf8": (_other("1.3.6.1.5.5.7.8.7", _der(0x16, "_smtp.bücher".encode())), False),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(RAW_OTHER_NAME))
def test_an_other_name_string_is_shown_as_it_is_held(case, key, tmp_path):
    """`openssl x509 -text` prints an otherName's string octet for octet; fastcap decoded it
    with U+FFFD for what UTF-8 does not hold, so octet 0xFF read as a real U+FFFD.  A
    UTF8String of valid UTF-8 is shown as its letters (controls and the backslash
    ``\\xHH``), any other string as `test_an_email_or_uri_is_shown_octet_for_octet`."""
    der, utf8 = RAW_OTHER_NAME[case]
    leaf = _with(key, ("2.5.29.17", _der(0x30, _MAIL, der), False), san=False)
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    said = subprocess.run([OPENSSL, "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(tmp_path / "leaf.pem")], capture_output=True, timeout=30).stdout
    raw = said.split(b"\n", 1)[1].strip().split(b"DNS:mail.fabrikam.com, ", 1)[1]
    (shown,) = cert_info(leaf).san_other
    assert shown.isprintable() and (shown.isascii() or utf8)
    assert _unescaped(shown) == raw


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("bits", ["0081", "0001", "078080", "070080", "0089", "078880"])
def test_encipher_and_decipher_only_shown_as_openssl(bits, key, tmp_path):
    """`openssl x509 -text` prints Encipher Only and Decipher Only with or without Key
    Agreement; fastcap left them out without it (``cryptography`` refuses them)."""
    leaf = _with(key, ("2.5.29.15", _der(0x03, bytes.fromhex(bits)), True))
    names = {"Digital Signature": "digital_signature", "Key Agreement": "key_agreement",
             "Encipher Only": "encipher_only", "Decipher Only": "decipher_only"}
    shown = [names[n] for n in _shown(tmp_path, leaf, "X509v3 Key Usage")]
    assert list(cert_info(leaf).key_usage) == shown


def _arcs(*arcs: int) -> bytes:
    """An OBJECT IDENTIFIER under 1.3 of ``arcs``."""
    return _oid(".".join(map(str, (1, 3, *arcs))))


_CLIENT_AUTH = _oid("1.3.6.1.5.5.7.3.2")
_LONG_OID = _arcs(*[1] * 70)  # more than the 63 octets cryptography holds
_BIG_ARC = _arcs(2**130)  # an arc past what cryptography holds
BIG_OIDS = {  # id: (whose, extKeyUsage value)
    "leaf_long_and_client_auth": ("leaf", _der(0x30, _LONG_OID, _CLIENT_AUTH)),
    "leaf_big_arc_and_client_auth": ("leaf", _der(0x30, _CLIENT_AUTH, _BIG_ARC)),
    "leaf_long_alone": ("leaf", _der(0x30, _LONG_OID)),
    "root_big_arc_alone": ("root", _der(0x30, _BIG_ARC)),
    "root_big_arc_and_client_auth": ("root", _der(0x30, _BIG_ARC, _CLIENT_AUTH)),
}  # fmt: skip


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("case", sorted(BIG_OIDS))
def test_an_extended_key_usage_cryptography_cannot_hold_judged_as_openssl(case, key, tmp_path):
    """OpenSSL decodes an extKeyUsage OID of any length; ``cryptography`` refuses one of more
    than 63 octets or with an arc past 2**128, and fastcap took the certificate as invalid.
    The usage counts for no purpose, and is shown as `openssl x509 -text` shows it."""
    whose, value = BIG_OIDS[case]
    ext = ("2.5.29.37", value, False)
    if whose == "leaf":
        root, leaf = _root(key), _with(key, ext)
        odd = leaf
    else:
        raw = _raw(x509.ObjectIdentifier("2.5.29.37"), value)
        root, leaf = _root(key, nc=raw), _leaf(key)
        odd = root.public_bytes(serialization.Encoding.DER)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(odd).extensions  # noqa: B018
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW)
    expected = _openssl(tmp_path, root, leaf)
    assert (got.path_error, got.path_error_depth) == expected
    assert (expected[0] is None) is (value.count(_CLIENT_AUTH) == 1)
    names = {"TLS Web Client Authentication": "clientAuth"}
    shown = [names.get(n, n) for n in _shown(tmp_path, odd, "X509v3 Extended Key Usage")]
    # OpenSSL cuts an OID's text at 79 characters (i2t_ASN1_OBJECT into 80); fastcap does not
    assert [n[:79] for n in cert_info(odd).ext_key_usage] == shown


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("critical", [False, True])
@pytest.mark.parametrize("oid", [_LONG_OID, _BIG_ARC], ids=["long", "big_arc"])
def test_an_extension_of_an_oid_cryptography_cannot_hold_judged_as_openssl(oid, critical, key,
                                                                            tmp_path):
    """An extension whose own OID ``cryptography`` cannot hold: OpenSSL reads the certificate,
    ignores the extension, and refuses it when critical (unknown to it).  fastcap took the
    whole certificate as unparseable."""
    leaf, root = _with(key, (oid, _der(0x05), critical)), _root(key)
    assert _openssl_reads(tmp_path, leaf)
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf], role="client", at=NOW,
                                                         expected_name="mail.fabrikam.com")
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)
    assert got.certs[0].parse_error is None and got.name_matches
    assert got.certs[0].sha256 == hashlib.sha256(leaf).hexdigest()
    assert got.problem == ("invalid" if critical else None)
    dotted = x509lenient._dotted(_content(oid))
    assert f"extension {dotted} past what cryptography holds" in " ".join(
        (got.detail, *got.profile_notes))
