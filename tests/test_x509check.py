"""x509check: each way a presented chain can be wrong gets its own specific verdict."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.judge.x509check import Analyzer, CertInfo, TrustStore, cert_info, name_matches
from fastcap_synth.certs import make_ca, make_leaf

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Fastcap Root")
    inter = make_ca("Fastcap Issuing CA", parent=root)
    return root, inter


@pytest.fixture(scope="module")
def trust(pki) -> TrustStore:
    return TrustStore([pki[0].cert], "synth")


@pytest.fixture
def analyzer(trust) -> Analyzer:
    return Analyzer(trust, today=NOW)


def leaf(inter, **kw):
    kw.setdefault("sans", ["mail.contoso.com"])
    return make_leaf(inter, "mail.contoso.com", **kw)


# --- chain verdicts --------------------------------------------------------------------------


def test_valid_chain_is_trusted(pki, analyzer):
    root, inter = pki
    cert = leaf(inter)
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (True, None), r.detail
    assert r.leaf_valid_at_capture == r.leaf_valid_today == "valid"
    assert r.eku_ok is True and r.name_matches is None
    assert [c.sha256 for c in r.certs] == [cert.sha256, inter.sha256]
    assert r.weak_signatures == () and r.weak_keys == ()
    json.dumps(r.to_dict())  # JSON-ready


def test_valid_chain_server_role_with_name(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, eku=("serverAuth",))
    r = analyzer.check(
        [cert.der, inter.der], role="server", at=NOW, expected_name="MAIL.contoso.com"
    )
    assert (r.trusted, r.problem, r.name_matches, r.eku_ok) == (True, None, True, True)


def test_name_mismatch_is_reported_but_not_a_trust_problem(pki, analyzer):
    _, inter = pki
    cert = leaf(inter)
    r = analyzer.check([cert.der, inter.der], role="server", at=NOW, expected_name="x.fabrikam.com")
    assert (r.trusted, r.problem, r.name_matches) == (True, None, False)


def test_expired_at_capture_valid_today(pki, trust):
    _, inter = pki
    cert = leaf(inter, not_before=NOW - 30 * DAY, not_after=NOW - 10 * DAY)
    # today is before expiry; the capture was taken after it
    a = Analyzer(trust, today=NOW - 20 * DAY)
    r = a.check([cert.der, inter.der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (False, "expired")
    assert (r.leaf_valid_at_capture, r.leaf_valid_today) == ("expired", "valid")


def test_valid_at_capture_expired_today():
    root = make_ca("Old Root", not_before=NOW - 400 * DAY)
    inter = make_ca("Old Issuing", parent=root, not_before=NOW - 400 * DAY)
    cert = leaf(inter, not_before=NOW - 30 * DAY, not_after=NOW - 10 * DAY)
    a = Analyzer(TrustStore([root.cert]), today=NOW)
    r = a.check([cert.der, inter.der], role="client", at=NOW - 20 * DAY)
    assert (r.leaf_valid_at_capture, r.leaf_valid_today) == ("valid", "expired")
    assert (r.trusted, r.problem) == (True, None), r.detail  # verified at capture time


def test_expired_intermediate_is_named(pki):
    root, _ = pki
    inter = make_ca("Lapsed Issuing", parent=root, not_after=NOW - DAY, not_before=NOW - 9 * DAY)
    cert = leaf(inter, not_before=NOW - 2 * DAY)
    r = Analyzer(TrustStore([root.cert]), today=NOW).check(
        [cert.der, inter.der], role="client", at=NOW
    )
    assert (r.trusted, r.problem) == (False, "invalid")
    assert "Lapsed Issuing" in r.detail and "expired" in r.detail


def test_not_yet_valid(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, not_before=NOW + 10 * DAY, not_after=NOW + 100 * DAY)
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (False, "not_yet_valid")
    assert r.leaf_valid_at_capture == r.leaf_valid_today == "not_yet_valid"


@pytest.mark.parametrize("send_root", [False, True])
def test_untrusted_root(analyzer, send_root):
    # Another organization: an issuer with the trusted root's O= would count as evidence of a
    # missing intermediate of that root.
    other_root = make_ca("Other Root", org="Other PKI")
    other_inter = make_ca("Other Issuing", parent=other_root, org="Other PKI")
    cert = leaf(other_inter)
    chain = [cert.der, other_inter.der] + ([other_root.der] if send_root else [])
    r = analyzer.check(chain, role="client", at=NOW)
    assert (r.trusted, r.problem) == (False, "untrusted_root"), r.detail
    assert "Other" in r.detail


def test_missing_intermediate(pki, analyzer):
    _, inter = pki
    r = analyzer.check([leaf(inter).der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (False, "missing_intermediate"), r.detail
    assert "Fastcap Issuing CA" in r.detail


def test_intermediate_in_store_needs_not_be_sent(pki):
    root, inter = pki
    a = Analyzer(TrustStore([root.cert]).plus(TrustStore([inter.cert])), today=NOW)
    r = a.check([leaf(inter).der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (True, None), r.detail


def test_self_signed_leaf(analyzer):
    cert = make_leaf(None, "mail.contoso.com", sans=["mail.contoso.com"], self_signed=True)
    r = analyzer.check([cert.der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (False, "self_signed")
    assert r.certs[0].self_signed is True


def test_self_signed_leaf_pinned_in_store_is_trusted():
    cert = make_leaf(None, "mail.contoso.com", self_signed=True)
    r = Analyzer(TrustStore([cert.cert]), today=NOW).check([cert.der], role="client", at=NOW)
    assert (r.trusted, r.problem) == (True, None)


def test_wrong_usage_client_role(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, eku=("serverAuth",))
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW)
    assert (r.trusted, r.problem, r.eku_ok) == (False, "wrong_usage", False)
    assert "clientAuth" in r.detail


def test_wrong_usage_server_role(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, eku=("clientAuth",))
    r = analyzer.check([cert.der, inter.der], role="server", at=NOW)
    assert (r.problem, r.eku_ok) == ("wrong_usage", False)


def test_no_eku_extension_means_any_usage(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, eku=())
    assert cert_info(cert.der).ext_key_usage is None
    for role in ("client", "server"):
        r = analyzer.check([cert.der, inter.der], role=role, at=NOW)
        assert (r.eku_ok, r.trusted, r.problem) == (True, True, None), r.detail


def test_cn_only_client_certificate_verifies(pki, analyzer):
    """No SAN at all: still a usable client certificate, matched by CN."""
    _, inter = pki
    cert = make_leaf(inter, "mail.contoso.com")
    r = analyzer.check(
        [cert.der, inter.der], role="client", at=NOW, expected_name="mail.contoso.com"
    )
    assert (r.trusted, r.problem, r.name_matches) == (True, None, True), r.detail


def test_sha1_signed_leaf_is_weak(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, hash="sha1")
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW)
    assert r.weak_signatures == ((0, "sha1"),)
    assert r.certs[0].signature_hash == "sha1"
    assert r.certs[0].signature_algorithm == "ecdsa-with-SHA1"
    assert r.problem == "weak_signature" and r.trusted is False  # the verifier forbids SHA-1
    assert "signed with sha1" in r.detail and "trusted CA signed it" in r.detail


def test_sha1_self_signed_root_is_not_a_weak_signature():
    root = make_ca("Old Root", hash="sha1")
    inter = make_ca("New Issuing", parent=root)
    cert = leaf(inter)
    r = Analyzer(TrustStore([root.cert]), today=NOW).check(
        [cert.der, inter.der, root.der], role="client", at=NOW
    )
    assert r.weak_signatures == ()


def test_weak_certificates_sent_beside_the_path_are_not_weighed(pki, analyzer):
    """A SHA-1 signed or RSA 1024 certificate the peer sends but the path does not use: a
    verifier never looks at it (OpenSSL's `verify` accepts the chain), so neither does the
    weak_signature or weak_key verdict.  On the path, the same digest is weighed."""
    root, inter = pki
    old = make_ca("Old Issuing CA", parent=root, hash="sha1")
    small = leaf(inter, key="rsa1024", sans=["old.contoso.com"])
    cert = leaf(inter)
    r = analyzer.check([cert.der, inter.der, old.der, small.der], role="client", at=NOW)
    assert (r.trusted, r.weak_signatures, r.weak_keys) == (True, (), ())
    via_old = analyzer.check([leaf(old).der, old.der, inter.der], role="client", at=NOW)
    assert via_old.weak_signatures == ((1, "sha1"),) and via_old.problem == "weak_signature"


def test_rsa1024_leaf_is_weak(pki, analyzer):
    _, inter = pki
    cert = leaf(inter, key="rsa1024")
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW)
    assert r.weak_keys == ((0, "RSA 1024"),)
    assert (r.certs[0].key_type, r.certs[0].key_bits) == ("RSA", 1024)


def test_empty_chain_and_bad_role(analyzer):
    r = analyzer.check([], role="client", at=NOW)
    assert (r.trusted, r.problem) == (None, "unparseable")
    with pytest.raises(ValueError):
        analyzer.check([], role="relay", at=NOW)


def test_naive_capture_time_is_utc(pki, analyzer):
    _, inter = pki
    cert = leaf(inter)
    r = analyzer.check([cert.der, inter.der], role="client", at=NOW.replace(tzinfo=None))
    assert r.problem is None


# --- names -----------------------------------------------------------------------------------


def _info(cn="ignored.example", sans=()):
    return cert_info(make_leaf(None, cn, sans=sans, self_signed=True).der)


NAME_TABLE = [
    # (subject CN, SANs, expected name, matches)
    ("x", ["mail.contoso.com"], "mail.contoso.com", True),
    ("x", ["mail.contoso.com"], "MAIL.Contoso.COM", True),
    ("x", ["Mail.Contoso.com"], "mail.contoso.com", True),
    ("x", ["a.contoso.com", "mail.contoso.com"], "mail.contoso.com", True),
    ("x", ["mail.contoso.com"], "contoso.com", False),
    ("mail.contoso.com", ["other.contoso.com"], "mail.contoso.com", False),  # CN ignored
    ("mail.contoso.com", [], "mail.contoso.com", True),  # CN fallback
    ("Mail.Contoso.com", [], "mail.contoso.com", True),
    ("mail.contoso.com", [], "contoso.com", False),
    ("x", ["*.contoso.com"], "mail.contoso.com", True),
    ("x", ["*.contoso.com"], "MAIL.CONTOSO.COM", True),
    ("x", ["*.contoso.com"], "contoso.com", False),
    ("x", ["*.contoso.com"], "a.b.contoso.com", False),
    ("x", ["*.com"], "contoso.com", False),  # as OpenSSL's X509_check_host: no wildcard TLD
    ("x", ["*.co.uk"], "contoso.co.uk", True),
    ("*.contoso.com", [], "mail.contoso.com", True),  # wildcard CN fallback
    ("x", ["*.contoso.com"], "*.contoso.com", True),  # expected wildcard: literal
    ("x", ["*.Contoso.com"], "*.contoso.COM", True),
    ("x", ["mail.contoso.com"], "*.contoso.com", False),
    ("x", ["*.fabrikam.com"], "*.contoso.com", False),
    ("x", ["192.0.2.1"], "192.0.2.1", False),  # IP SANs are not names
]


@pytest.mark.parametrize(("cn", "sans", "expected", "ok"), NAME_TABLE)
def test_name_matching(cn, sans, expected, ok):
    assert name_matches(_info(cn, sans), expected) is ok


# --- CertInfo --------------------------------------------------------------------------------


def test_cert_info_fields(pki):
    root, inter = pki
    cert = make_leaf(
        inter,
        "mail.contoso.com",
        sans=["mail.contoso.com", "smtp.contoso.com", "192.0.2.7"],
        key="rsa2048",
        org="Contoso",
    )
    info = cert_info(cert.der)
    assert info.parse_error is None
    assert info.sha1 == hashlib.sha1(cert.der).hexdigest().upper()
    assert info.sha256 == hashlib.sha256(cert.der).hexdigest() == cert.sha256
    assert info.size == len(cert.der)
    assert info.subject == "CN=mail.contoso.com,O=Contoso"
    assert info.subject_cn == "mail.contoso.com"
    assert info.issuer_cn == "Fastcap Issuing CA"
    assert info.san_dns == ("mail.contoso.com", "smtp.contoso.com")
    assert info.san_ip == ("192.0.2.7",)
    assert (info.key_type, info.key_bits) == ("RSA", 2048)
    assert info.signature_algorithm == "ecdsa-with-SHA256"  # signed by the EC intermediate
    assert info.signature_hash == "sha256"
    assert info.ext_key_usage == ("serverAuth", "clientAuth")
    assert info.key_usage == ("digital_signature", "key_encipherment")
    assert info.is_ca is False and info.self_signed is False
    assert int(info.serial, 16) == cert.cert.serial_number
    assert info.not_before == cert.cert.not_valid_before_utc
    assert info.not_after.tzinfo is not None
    d = info.to_dict()
    assert d["not_after"] == info.not_after.isoformat()
    assert d["ext_key_usage"] == ["serverAuth", "clientAuth"]
    json.dumps(d)

    ca = cert_info(root.der)
    assert (ca.is_ca, ca.self_signed, ca.key_type, ca.key_bits) == (True, True, "EC", 256)
    assert ca.signature_algorithm == "ecdsa-with-SHA256"
    assert "key_cert_sign" in ca.key_usage

    rsa_signed = cert_info(make_leaf(None, "rsa.example", key="rsa2048", self_signed=True).der)
    assert rsa_signed.signature_algorithm == "sha256WithRSAEncryption"
    assert rsa_signed.self_signed is True and rsa_signed.ext_key_usage == (
        "serverAuth",
        "clientAuth",
    )


def test_cert_info_fields_match_dataclass_contract():
    fields = set(CertInfo.__dataclass_fields__)
    assert fields == set(cert_info(b"").to_dict())


# --- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "der",
    [b"", b"\x00", b"garbage, not a certificate", b"\x30\x82\xff\xff" + b"\x00" * 10],
)
def test_garbage_der(der, analyzer):
    info = cert_info(der)
    assert info.parse_error and info.size == len(der) and info.subject is None
    r = analyzer.check([der], role="client", at=NOW)
    assert (r.trusted, r.problem, r.leaf_valid_at_capture) == (None, "unparseable", "unknown")


def test_truncated_der(pki, analyzer):
    _, inter = pki
    der = leaf(inter).der
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        assert cert_info(der[:cut]).parse_error
        r = analyzer.check([der[:cut], inter.der], role="client", at=NOW)
        assert r.problem == "unparseable"


def test_garbage_intermediate_does_not_hide_the_leaf(pki, analyzer):
    _, inter = pki
    r = analyzer.check([leaf(inter).der, b"junk"], role="client", at=NOW)
    assert r.problem == "missing_intermediate"
    assert r.certs[1].parse_error


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(analyzer, data):
    info = cert_info(data)
    assert info.parse_error is not None
    r = analyzer.check([data], role="client", at=NOW)
    assert r.problem == "unparseable"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_certificates_never_raise(pki, analyzer, data):
    _, inter = pki
    der = bytearray(inter.der)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(der) - 1))
        der[i] = data.draw(st.integers(0, 255))
    info = cert_info(bytes(der))
    info.to_dict()
    r = analyzer.check([bytes(der), inter.der], role="server", at=NOW, expected_name="a.b")
    r.to_dict()


# --- memoisation -----------------------------------------------------------------------------


def test_one_analysis_serves_many_sessions(pki, trust):
    _, inter = pki
    chain = [leaf(inter).der, inter.der]
    a = Analyzer(trust, today=NOW)
    day_start = NOW.replace(hour=0, minute=0, second=0)
    results = {
        id(a.check(chain, role="client", at=day_start + dt.timedelta(seconds=i * 80)))
        for i in range(1000)
    }
    assert (a.cache_misses, a.cache_hits) == (1, 999)
    assert len(results) == 1
    a.check(chain, role="server", at=NOW)
    a.check(chain, role="client", at=NOW + DAY)
    a.check(chain, role="client", at=NOW, expected_name="mail.contoso.com")
    a.check(chain[:1], role="client", at=NOW)
    assert a.cache_misses == 5


# --- trust stores ----------------------------------------------------------------------------


def test_trust_store_from_pem_file(pki, tmp_path):
    root, inter = pki
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(root.pem + b"\n" + inter.pem)
    store = TrustStore.from_pem_file(bundle)
    assert len(store) == 2
    assert len(store.plus(TrustStore([root.cert]))) == 2  # deduplicated
    der = tmp_path / "ca.der"
    der.write_bytes(root.der)
    assert len(TrustStore.from_pem_file(der)) == 1


@pytest.mark.parametrize(
    "content",
    [
        None,
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ],
)
def test_trust_store_bad_file_names_the_path(tmp_path, content):
    path = tmp_path / "bad.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.pem"):
        TrustStore.from_pem_file(path)


def test_trusted_certificate_form_is_refused_with_what_to_do(pki, tmp_path):
    """OpenSSL's `-trustout` form carries trust and reject settings after the certificate:
    read without them it could trust what the file refuses, so it is named, not skipped as
    if the file held no certificate (or, beside plain ones, dropped without a word)."""
    import subprocess

    root, inter = pki
    plain = tmp_path / "root.pem"
    plain.write_bytes(root.pem)
    trusted = tmp_path / "trusted.pem"
    try:
        subprocess.run(["openssl", "x509", "-in", str(plain), "-trustout", "-addreject",
                        "clientAuth", "-out", str(trusted)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot write the -trustout form here: {exc}")
    assert b"BEGIN TRUSTED CERTIFICATE" in trusted.read_bytes()
    for data in (trusted.read_bytes(), inter.pem + trusted.read_bytes()):
        trusted.write_bytes(data)
        with pytest.raises(ValueError, match=r"trusted\.pem: holds a TRUSTED CERTIFICATE.*"
                                             r"openssl x509 -in FILE -out plain\.pem"):
            TrustStore.from_pem_file(trusted)


def test_mozilla_store_does_not_trust_synth(pki):
    store = TrustStore.mozilla()
    assert len(store) > 50
    _, inter = pki
    r = Analyzer(store, today=NOW).check([leaf(inter).der, inter.der], role="client", at=NOW)
    assert r.problem == "untrusted_root"


def test_system_store_loads_or_explains():
    try:
        store = TrustStore.system()
    except ValueError as exc:
        assert "no system CA bundle" in str(exc)
    else:
        assert len(store) > 0


def test_empty_trust_store(pki):
    _, inter = pki
    r = Analyzer(TrustStore([]), today=NOW).check(
        [leaf(inter).der, inter.der], role="client", at=NOW
    )
    assert (r.trusted, r.problem) == (False, "untrusted_root")
