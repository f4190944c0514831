"""Differential test: name constraints, case by case, against `openssl verify`.

A root carrying the constraints signs a leaf with the names below; fastcap's ``path_error`` and
``path_error_depth`` must be OpenSSL's error text and depth (both None when it verifies).  The
cases are the corners the generated chains of test_trust_openssl.py seldom reach: URIs with a
colon in the path, RFC 8398 SmtpUTF8Mailbox names, CNs taken as host names, IP versions,
directory names in canonical form.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import openssl_error

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CN, ORG, C = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME
DNS, IP, EMAIL = x509.DNSName, x509.IPAddress, x509.RFC822Name
URI, DIR = x509.UniformResourceIdentifier, x509.DirectoryName
SMTP_UTF8_MAILBOX = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.9")



def _san(names: list) -> x509.ExtensionType:
    """A subjectAltName of ``names``; an empty one as raw bytes, which cryptography 51 will
    not build (OpenSSL reads it as no names)."""
    if names:
        return x509.SubjectAlternativeName(names)
    return x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x00")

def _name(*attrs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def _mailbox(text: str, tag: int = 0x0C) -> x509.OtherName:
    raw = text.encode()
    return x509.OtherName(SMTP_UTF8_MAILBOX, bytes([tag, len(raw)]) + raw)


def _net(text: str):
    return IP(ipaddress.ip_network(text))


def _ip(text: str):
    return IP(ipaddress.ip_address(text))


LEAF = _name((CN, "Relay"))
CASES = {  # id: (permitted, excluded, leaf subject, leaf SAN entries or None)
    "uri_port": ([URI("mail.fabrikam.com")], None, LEAF, [URI("https://mail.fabrikam.com:443/x")]),
    "uri_colon_in_path": ([URI("mail.fabrikam.com")], None, LEAF,
                          [URI("https://mail.fabrikam.com/a:b")]),
    "uri_dot": ([URI(".fabrikam.com")], None, LEAF, [URI("https://mail.fabrikam.com/")]),
    "uri_no_authority": ([URI("fabrikam.com")], None, LEAF, [URI("mailto:pm@fabrikam.com")]),
    "eai_inside": ([EMAIL("fabrikam.com")], None, LEAF, [_mailbox("пм@fabrikam.COM")]),
    "eai_outside": ([EMAIL("fabrikam.com")], None, LEAF, [_mailbox("pm@contoso.com")]),
    "eai_a_label": ([EMAIL("xn--bcher-kva.example")], None, LEAF, [_mailbox("pm@bücher.example")]),
    "eai_leading_dot": ([EMAIL(".fabrikam.com")], None, LEAF, [_mailbox("pm@mail.fabrikam.com")]),
    "eai_excluded": (None, [EMAIL("fabrikam.com")], LEAF, [_mailbox("pm@fabrikam.com")]),
    "eai_not_utf8": ([EMAIL("fabrikam.com")], None, LEAF, [_mailbox("pm@fabrikam.com", 0x16)]),
    "eai_no_at": ([EMAIL("fabrikam.com")], None, LEAF, [_mailbox("fabrikam.com")]),
    "eai_dns_only": ([DNS("fabrikam.com")], None, LEAF, [_mailbox("pm@contoso.com")]),
    "email_local_part_case": ([EMAIL("pm@fabrikam.com")], None, LEAF, [EMAIL("PM@fabrikam.com")]),
    # OpenSSL splits each at its last "@" (a quoted local part may hold one)
    "email_quoted_at": ([EMAIL('"pm@x"@fabrikam.com')], None, LEAF,
                        [EMAIL('"pm@x"@fabrikam.com')]),
    "email_quoted_at_other": ([EMAIL('"pm@x"@fabrikam.com')], None, LEAF,
                              [EMAIL('"pm@y"@fabrikam.com')]),
    "email_local_part_nul": ([EMAIL("p\0m@fabrikam.com")], None, LEAF,
                             [EMAIL("p\0n@fabrikam.com")]),
    "cn_host_no_san": ([DNS("fabrikam.com")], None, _name((CN, "mail.contoso.com")), None),
    "cn_host_empty_san": ([DNS("fabrikam.com")], None, _name((CN, "mail.contoso.com")), []),
    "cn_second": ([DNS("fabrikam.com")], None,
                  _name((CN, "mail.fabrikam.com"), (CN, "mail.contoso.com")), None),
    "cn_not_host": ([DNS("fabrikam.com")], None, _name((CN, "Mail Relay")), None),
    "cn_ip": ([DNS("fabrikam.com")], None, _name((CN, "192.0.2.1")), None),
    "cn_embedded_nul": ([DNS("fabrikam.com")], None, _name((CN, "mail.fabrikam.com\0.x.y")), None),
    "cn_trailing_nul": ([DNS("fabrikam.com")], None, _name((CN, "mail.contoso.com\0")), None),
    "dns_trailing_dot": ([DNS("fabrikam.com")], None, LEAF, [DNS("mail.fabrikam.com.")]),
    "dns_suffix_not_label": ([DNS("fabrikam.com")], None, LEAF, [DNS("badfabrikam.com")]),
    "dns_wildcard_excluded": (None, [DNS("fabrikam.com")], LEAF, [DNS("*.fabrikam.com")]),
    "ip_v6_under_v4": ([_net("10.0.0.0/8")], None, LEAF, [_ip("::ffff:10.1.2.3")]),
    "ip_excluded": (None, [_net("2001:db8::/32")], LEAF, [_ip("2001:db8::25")]),
    "dir_canonical": ([DIR(_name((C, "US"), (ORG, "FABRIKAM  Inc")))], None,
                      _name((C, "US"), (ORG, " fabrikam inc"), (CN, "x")), None),
    "many_names": ([DNS(f"d{i}.fabrikam.com") for i in range(59)] + [DNS("fabrikam.com")], None,
                   LEAF, [DNS(f"h{i}.fabrikam.com") for i in range(70)]),  # 4,200 checks
    "dir_san_outside": ([DIR(_name((C, "US")))], None, _name((C, "US"), (CN, "x")),
                        [DIR(_name((C, "DE")))]),
}  # fmt: skip


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def _chain(key, permitted, excluded, subject, san, raw: bytes | None = None):
    """Root and leaf; ``raw`` is the nameConstraints DER when it says what ``cryptography``
    cannot (a subtree's minimum or maximum)."""
    root_name = _name((CN, "Constrained Root"))
    nc = (x509.NameConstraints(permitted, excluded) if raw is None else
          x509.UnrecognizedExtension(x509.oid.ExtensionOID.NAME_CONSTRAINTS, raw))
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(nc, True)
            .sign(key, hashes.SHA256()))
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(root_name)
         .public_key(key.public_key()).serial_number(2)
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY))
    if san is not None:
        b = b.add_extension(_san(san), False)
    return root, b.sign(key, hashes.SHA256())


def _openssl(tmp_path, root, leaf) -> tuple[str | None, int | None]:
    pem = serialization.Encoding.PEM
    return openssl_error(tmp_path, root.public_bytes(pem), leaf.public_bytes(pem), at=NOW)


@pytest.mark.parametrize("case", sorted(CASES))
def test_name_constraints_match_openssl(case, key, tmp_path):
    root, leaf = _chain(key, *CASES[case])
    got = Analyzer(TrustStore([root]), today=NOW).check(
        [leaf.public_bytes(serialization.Encoding.DER)], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)


def _der(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    assert len(body) < 0x80
    return bytes([tag, len(body)]) + body


_DNS_BASE = _der(0x82, b"fabrikam.com")  # dNSName
_URI_BASE = _der(0x86, b"fabrikam.com")  # uniformResourceIdentifier
BOUNDED = {  # id: (nameConstraints DER, leaf SAN)
    "dns_minimum_1": (_der(0x30, _der(0xA0, _der(0x30, _DNS_BASE, _der(0x80, b"\x01")))),
                      [DNS("mail.fabrikam.com")]),
    "dns_maximum": (_der(0x30, _der(0xA0, _der(0x30, _DNS_BASE, _der(0x81, b"\x03")))),
                    [DNS("mail.fabrikam.com")]),
    "excluded_minimum": (_der(0x30, _der(0xA1, _der(0x30, _DNS_BASE, _der(0x80, b"\x02")))),
                         [DNS("mail.contoso.com")]),
    "other_type_bounded": (_der(0x30, _der(0xA0, _der(0x30, _URI_BASE, _der(0x81, b"\x01")),
                                           _der(0x30, _DNS_BASE))),
                           [DNS("mail.fabrikam.com")]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BOUNDED))
def test_subtree_minimum_and_maximum_as_openssl(case, key, tmp_path):
    raw, san = BOUNDED[case]
    root, leaf = _chain(key, None, None, LEAF, san, raw=raw)
    got = Analyzer(TrustStore([root]), today=NOW).check(
        [leaf.public_bytes(serialization.Encoding.DER)], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == _openssl(tmp_path, root, leaf)


def _ip_base(size: int, v4: bool = True) -> bytes:
    """A permitted or excluded iPAddress base: 192.0.2.0/24 (or ::/0 when not ``v4``), or
    ``size`` zero octets when that is not 8 nor 32."""
    if size == 8:
        return _der(0x87, bytes([192, 0, 2, 0, 255, 255, 255, 0]))
    return _der(0x87, bytes(size if size != 32 or not v4 else 32))


def _sans(*names: bytes) -> bytes:
    return _der(0x30, _der(0x82, b"mail.fabrikam.com"), *names)


_HOST = _der(0x87, bytes([192, 0, 2, 25]))
ODD_IP = {  # id: (permitted bases, excluded bases, leaf SAN)
    "odd_base_over_ip": ([_ip_base(5)], [], _sans(_HOST)),
    "odd_base_empty": ([_ip_base(0)], [], _sans(_HOST)),
    "odd_base_16_over_v6": ([_ip_base(16)], [], _sans(_der(0x87, bytes(16)))),
    "odd_base_before_match": ([_ip_base(5), _ip_base(8)], [], _sans(_HOST)),
    "odd_base_after_match": ([_ip_base(8), _ip_base(5)], [], _sans(_HOST)),
    "odd_base_excluded": ([], [_ip_base(5)], _sans(_HOST)),
    "odd_base_no_ip": ([_ip_base(5)], [], _sans()),
    "odd_san_under_ip": ([_ip_base(8)], [], _sans(_der(0x87, bytes(5)))),
    "odd_san_under_dns": ([_DNS_BASE], [], _sans(_der(0x87, bytes(5)))),
    "odd_san_before_outside": ([_ip_base(8), _DNS_BASE], [],
                               _der(0x30, _der(0x87, bytes(5)), _der(0x82, b"contoso.com"))),
}  # fmt: skip


def _raw_san_leaf(key, san: bytes, issuer: x509.Name | None = None) -> x509.Certificate:
    """A leaf whose subjectAltName is ``san`` as encoded (cryptography would not build an
    iPAddress of other than 4 or 16 octets)."""
    return (x509.CertificateBuilder().subject_name(LEAF)
            .issuer_name(issuer or _name((CN, "Constrained Root"))).public_key(key.public_key())
            .serial_number(2)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san),
                           False)
            .sign(key, hashes.SHA256()))


@pytest.mark.parametrize("case", sorted(ODD_IP))
def test_an_ip_of_odd_size_meets_ip_constraints_as_in_openssl(case, key, tmp_path):
    """OpenSSL decodes an iPAddress base of neither 8 nor 32 octets, and a SAN iPAddress of
    neither 4 nor 16, and fails an IP address held to such a base, or such an address held to
    any iPAddress base, as of invalid syntax (nc_ip), unless a permitted base before it matched.
    ``cryptography`` holds neither: fastcap left them out and passed the chain."""
    got, expected = _judged(key, tmp_path, *ODD_IP[case])
    assert (got.path_error, got.path_error_depth) == expected
    if expected[0] == "unsupported or invalid name syntax":
        assert "octets" in got.detail and "Constrained Root" in got.detail


def _subtree(base: bytes) -> bytes:
    return _der(0x30, base)


def _judged(key, tmp_path, permitted: list[bytes], excluded: list[bytes], san: bytes):
    """fastcap's check and `openssl verify`'s (error, depth) of a leaf with the SAN ``san``
    below a root with the ``permitted`` and ``excluded`` bases (each GeneralName's DER)."""
    raw = _der(0x30, *([_der(0xA0, *map(_subtree, permitted))] if permitted else []),
               *([_der(0xA1, *map(_subtree, excluded))] if excluded else []))
    root, _ = _chain(key, None, None, LEAF, None, raw=raw)
    leaf = _raw_san_leaf(key, san)
    got = Analyzer(TrustStore([root]), today=NOW).check(
        [leaf.public_bytes(serialization.Encoding.DER)], role="client", at=NOW)
    return got, _openssl(tmp_path, root, leaf)


def _masked(address: list[int], mask: list[int]) -> bytes:
    return _der(0x87, bytes(address + mask))


_V6_HOST = _der(0x87, bytes([0, 1] * 8))
MASKS = {  # id: (permitted bases, excluded bases, leaf SAN); masks not a run of ones first
    "inside": ([_masked([192, 0, 2, 0], [255, 0, 255, 0])], [], _sans(_HOST)),
    "inside_other_octets": ([_masked([192, 9, 2, 9], [255, 0, 255, 0])], [], _sans(_HOST)),
    "outside": ([_masked([10, 0, 2, 0], [255, 0, 255, 0])], [], _sans(_HOST)),
    "excluded": ([], [_masked([192, 0, 0, 0], [255, 0, 0, 255])],
                 _sans(_der(0x87, bytes([192, 5, 5, 0])))),
    "no_ip": ([_masked([10, 0, 2, 0], [255, 0, 255, 0])], [], _sans()),
    "v6": ([_der(0x87, bytes(16) + bytes([0xFF, 0] * 8))], [], _sans(_V6_HOST)),
    "host_bits_set": ([_masked([192, 0, 2, 99], [255, 255, 255, 0])], [], _sans(_HOST)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MASKS))
def test_an_ip_constraint_mask_not_a_prefix_applies_as_in_openssl(case, key, tmp_path):
    """OpenSSL's nc_ip compares address and base under the mask octet by octet, whatever the
    mask; ``cryptography`` refuses a mask that is no run of ones then zeros, and fastcap took
    the CA as invalid (no issuer found)."""
    got, expected = _judged(key, tmp_path, *MASKS[case])
    assert (got.path_error, got.path_error_depth) == expected
    if expected[0] is not None:
        assert "Constrained Root" in got.detail


_X400 = _der(0xA3, _der(0x30, _der(0x61, _der(0x13, b"US"))))
_EDI = _der(0xA5, _der(0xA1, _der(0x0C, b"edi")))
UNHELD_BASES = {  # id: (permitted bases, leaf SAN)
    "x400_beside_dns": ([_DNS_BASE, _X400], _sans()),
    "x400_over_x400": ([_DNS_BASE, _X400], _sans(_X400)),
    "edi_alone": ([_EDI], _sans()),
    "edi_over_edi": ([_EDI], _sans(_EDI)),
    "edi_over_x400": ([_EDI], _sans(_X400)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(UNHELD_BASES))
def test_an_x400_or_edi_party_constraint_applies_as_in_openssl(case, key, tmp_path):
    """OpenSSL decodes a name-constraint base of x400Address or ediPartyName and fails only a
    name of the same form below it (unsupported constraint type); ``cryptography`` holds
    neither, and fastcap took the CA as invalid (no issuer found)."""
    permitted, san = UNHELD_BASES[case]
    got, expected = _judged(key, tmp_path, permitted, [], san)
    assert (got.path_error, got.path_error_depth) == expected
    if expected[0] is not None:
        assert "constraints are not supported" in got.detail


_AMP_ROOT = _name((ORG, "AT&T"), (CN, "Constrained Root"))
LENIENT_ROOT = {  # id: (permitted bases, leaf SAN); OpenSSL's verdict differs from 0.0.0.0/0's
    "odd_base": ([_ip_base(5)], _sans(_HOST)),
    "mask_outside": ([_masked([10, 0, 2, 0], [255, 0, 255, 0])], _sans(_HOST)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(LENIENT_ROOT))
def test_an_ip_constraint_of_a_root_read_leniently_is_as_sent(case, key, tmp_path):
    """A store root whose ``AT&T`` is a PrintableString loads only as its re-encoded copy,
    which holds 0.0.0.0/0 in place of an iPAddress base ``cryptography`` refuses: the
    constraint is the one in the root's file, as OpenSSL applies it, not the stand-in."""
    from .test_x509lenient import _pem, _printable

    permitted, san = LENIENT_ROOT[case]
    raw = _der(0x30, _der(0xA0, *map(_subtree, permitted)))
    root = (x509.CertificateBuilder().subject_name(_AMP_ROOT).issuer_name(_AMP_ROOT)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.UnrecognizedExtension(ExtensionOID.NAME_CONSTRAINTS, raw), True)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    root = _printable(root, key, "AT&T")
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(root)
    leaf = _raw_san_leaf(key, san, _AMP_ROOT).public_bytes(serialization.Encoding.DER)
    expected = openssl_error(tmp_path, _pem(root), _pem(leaf), at=NOW)
    assert expected[0] is not None
    (tmp_path / "bundle.pem").write_bytes(_pem(root))
    for store in (TrustStore.from_bundle(root, "root.der"),
                  TrustStore.from_pem_file(tmp_path / "bundle.pem")):
        got = Analyzer(store, today=NOW).check([leaf], role="client", at=NOW)
        assert (got.path_error, got.path_error_depth) == expected, got.detail
        assert "Constrained Root" in got.detail


@pytest.mark.parametrize("case", sorted(LENIENT_ROOT))
def test_an_ip_constraint_of_a_sent_ca_read_leniently_is_as_sent(case, key, tmp_path):
    """The same of an intermediate the client sends: its re-encoded copy's 0.0.0.0/0 passed
    the leaf's address where OpenSSL fails it."""
    from .test_x509lenient import _pem, _printable

    permitted, san = LENIENT_ROOT[case]
    raw = _der(0x30, _der(0xA0, *map(_subtree, permitted)))
    root, _ = _chain(key, None, None, LEAF, None, raw=_der(0x30, _der(0xA0, _subtree(
        _der(0x87, bytes(8))))))  # 0.0.0.0/0: any IPv4 address
    ca = (x509.CertificateBuilder().subject_name(_AMP_ROOT)
          .issuer_name(_name((CN, "Constrained Root"))).public_key(key.public_key())
          .serial_number(3).not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .add_extension(x509.UnrecognizedExtension(ExtensionOID.NAME_CONSTRAINTS, raw), True)
          .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    ca = _printable(ca, key, "AT&T")
    leaf = _raw_san_leaf(key, san, _AMP_ROOT).public_bytes(serialization.Encoding.DER)
    expected = openssl_error(tmp_path, root.public_bytes(serialization.Encoding.PEM), _pem(leaf),
                             _pem(ca), at=NOW)
    assert expected[0] is not None
    got = Analyzer(TrustStore([root]), today=NOW).check([leaf, ca], role="client", at=NOW)
    assert (got.path_error, got.path_error_depth) == expected, got.detail
    assert "Constrained Root,O=AT&T" in got.detail
