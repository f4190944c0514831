"""Path validation the way mail servers do it: the motivating cases, through Analyzer.check and
through the verdicts an admin reads.  (tests/test_trust_openssl.py compares with OpenSSL.)"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fastcap.judge import x509path
from fastcap.judge.diagnose import PROBLEM_CODES, diagnose
from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap.judge.x509names import UNSUPPORTED_NAME_SYNTAX, check_name_constraints
from fastcap_synth.certs import with_serial

from .openssl_oracle import OPENSSL, openssl_error, openssl_errors
from .test_diagnose import session, smtp, tls

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
KEY_USES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign")


class Made:
    def __init__(self, cert: x509.Certificate, key) -> None:
        self.cert, self.key = cert, key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def issue(cn: str, parent: Made | None, *, ca: bool, aki: bool = True, ski: bool = True,
          bc: object = "default", bc_critical: bool = True, ku: set[str] | None | str = "default",
          eku: list | None | str = "default", san: bool = True, extra=(),
          not_before=NOW - 30 * DAY, not_after=NOW + 300 * DAY, key=None) -> Made:
    """A certificate wrong (or merely unusual) in exactly the ways asked for."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signer = parent.key if parent else key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(parent.cert.subject if parent else name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after))
    if bc == "default":
        bc = x509.BasicConstraints(ca=ca, path_length=None)
    if bc is not None:
        b = b.add_extension(bc, bc_critical)
    if ku == "default":
        ku = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature"}
    if ku is not None:
        b = b.add_extension(x509.KeyUsage(**{f: f in ku for f in KEY_USES},
                                          encipher_only=False, decipher_only=False), True)
    if eku == "default":
        eku = None if ca else [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), False)
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if aki and parent is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), False)
    if san and not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical)
    digest = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Made(b.sign(signer, digest), key)


@pytest.fixture(scope="module")
def root() -> Made:
    return issue("Mail Root", None, ca=True)


@pytest.fixture(scope="module")
def inter(root) -> Made:
    return issue("Mail Issuing CA", root, ca=True)


def check(root: Made, *chain: Made, role: str = "client", at=NOW, store=None):
    analyzer = Analyzer(TrustStore(store or [root.cert]), today=NOW)
    return analyzer.check([c.der for c in chain], role=role, at=at)


def verdicts(result) -> dict[str, str]:
    out = diagnose(session(smtp(), tls()), result, None)
    return {v.code: v.severity for v in out}


def test_no_authority_key_identifier_anywhere_is_trusted_with_one_note(root):
    inter = issue("No AKI CA", root, ca=True, aki=False)
    leaf = issue("mail.fabrikam.com", inter, ca=False, aki=False)
    r = check(root, leaf, inter)
    assert (r.trusted, r.problem, r.path_valid, r.path_error) == (True, None, True, None)
    assert len(r.path_sha256) == 3 and r.path_sha256[0] == r.certs[0].sha256
    notes = " / ".join(r.profile_notes)
    assert "#1 (CN=mail.fabrikam.com) has no Authority Key Identifier" in notes
    assert "#2 (CN=No AKI CA) has no Authority Key Identifier" in notes
    assert r.to_dict()["profile_notes"] == list(r.profile_notes)
    got = verdicts(r)
    assert got == {"ok": "ok", "cert_profile_note": "info"}
    assert "cert_profile_note" not in PROBLEM_CODES  # scan's exit status is unaffected


def test_cn_only_client_certificate_is_trusted_with_a_note(root, inter):
    leaf = issue("mail.fabrikam.com", inter, ca=False, san=False)
    r = check(root, leaf, inter)
    assert (r.trusted, r.problem, r.path_valid) == (True, None, True)
    assert r.profile_notes == ("#1 (CN=mail.fabrikam.com) has no subjectAltName (named by its "
                               "CN only)",)
    assert set(verdicts(r)) == {"ok", "cert_profile_note"}


@pytest.mark.parametrize("san", [None, False, True])  # none, not critical, critical
def test_an_empty_subject_is_noted_as_openssls_strict_check_says(root, san, tmp_path):
    """RFC 5280 4.2.1.6: a certificate with an empty subject must carry a critical
    subjectAltName; `openssl verify -x509_strict` fails it otherwise ("Subject empty and
    Subject Alt Name extension not critical", or "Subject name empty" without one), and
    plain `openssl verify` accepts it.  fastcap noted nothing, and a leaf without a SAN as
    "named by its CN only", though it has no CN."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(root.cert.subject)
         .public_key(key.public_key()).serial_number(9)
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             root.key.public_key()), False))
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.fabrikam.com")]),
                            san)
    leaf = Made(b.sign(root.key, hashes.SHA256()), key)
    pem = serialization.Encoding.PEM
    args = (tmp_path, root.cert.public_bytes(pem), leaf.cert.public_bytes(pem))
    strict = {text for text, depth in openssl_errors(*args, at=NOW, flags=("-x509_strict",))
              if depth == 0}
    r = check(root, leaf)
    assert (r.path_error, r.path_error_depth) == openssl_error(*args, at=NOW) == (None, None)
    assert r.trusted and r.problem is None
    notes = {n.removeprefix("#1 (empty subject) ") for n in r.profile_notes}
    said = {"Subject empty and Subject Alt Name extension not critical":
            "has an empty subject and a subjectAltName not marked critical",
            "Subject name empty": "has an empty subject and no subjectAltName: nothing names it"}
    assert notes == {note for text, note in said.items() if text in strict}


def test_a_clean_chain_has_no_note(root, inter):
    r = check(root, issue("mail.fabrikam.com", inter, ca=False), inter)
    assert (r.trusted, r.profile_notes) == (True, ())
    assert set(verdicts(r)) == {"ok"}


def test_ca_profile_deviations_are_notes(root):
    inter = issue("Loose CA", root, ca=True, ski=False, bc_critical=False)
    r = check(root, issue("mail.fabrikam.com", inter, ca=False), inter)
    assert r.trusted is True
    assert any("#2 (CN=Loose CA) is a CA without Subject Key Identifier" in n
               for n in r.profile_notes)
    assert any("basicConstraints is not critical" in n for n in r.profile_notes)


def test_ed25519_chain_is_trusted_with_notes():
    root = issue("Ed Root", None, ca=True, key=ed25519.Ed25519PrivateKey.generate())
    leaf = issue("mail.fabrikam.com", root, ca=False, key=ed25519.Ed25519PrivateKey.generate())
    r = check(root, leaf)
    assert (r.trusted, r.path_valid) == (True, True)
    assert r.profile_notes == ("#1 (CN=mail.fabrikam.com) is signed with Ed25519",
                               "#1 (CN=mail.fabrikam.com) has an Ed25519 key")


def test_any_extended_key_usage_alone_is_not_client_auth(root, inter):
    leaf = issue("mail.fabrikam.com", inter, ca=False,
                 eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    r = check(root, leaf, inter)
    assert (r.trusted, r.problem, r.eku_ok, r.path_valid) == (False, "wrong_usage", False, False)
    assert (r.path_error, r.path_error_depth) == ("unsuitable certificate purpose", 0)
    assert "client_cert_no_client_auth_eku" in verdicts(r)


def test_intermediate_without_basic_constraints_is_an_invalid_ca(root):
    inter = issue("Not Really A CA", root, ca=True, bc=None)
    r = check(root, issue("mail.fabrikam.com", inter, ca=False), inter)
    assert (r.trusted, r.problem, r.path_valid) == (False, "invalid", False)
    assert (r.path_error, r.path_error_depth) == ("invalid CA certificate", 1)
    assert "CN=Not Really A CA" in r.detail
    assert verdicts(r).get("client_cert_untrusted_ca") == "error"
    # The admin reads that the root is trusted and which check on the way failed.
    (v,) = [v for v in diagnose(session(smtp(), tls()), r, None)
            if v.code == "client_cert_untrusted_ca"]
    assert "chains to a trusted root, but the path fails validation" in v.message
    assert "CN=Not Really A CA" in v.message


def test_eku_on_an_intermediate_restricts_the_chain(root):
    inter = issue("Server-only CA", root, ca=True, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    assert check(root, leaf, inter, role="server").trusted is True
    r = check(root, leaf, inter, role="client")
    assert (r.trusted, r.path_error, r.path_error_depth) == (
        False, "unsuitable certificate purpose", 1)


def test_path_length_constraint(root):
    top = issue("Top CA", root, ca=True, bc=x509.BasicConstraints(ca=True, path_length=0))
    low = issue("Low CA", top, ca=True)
    r = check(root, issue("mail.fabrikam.com", low, ca=False), low, top)
    assert (r.trusted, r.path_error, r.path_error_depth) == (
        False, "path length constraint exceeded", 2)


def test_leaf_key_usage_must_allow_the_handshake(root, inter):
    leaf = issue("mail.fabrikam.com", inter, ca=False, ku={"key_encipherment"})
    assert check(root, leaf, inter, role="server").trusted is True  # RSA key transport
    r = check(root, leaf, inter, role="client")
    assert (r.trusted, r.path_error, r.path_error_depth) == (
        False, "unsuitable certificate purpose", 0)
    assert "key usage" in r.detail


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("whose", ["leaf", "intermediate"])
def test_a_key_usage_with_no_bit_set_is_invalid_as_in_openssl(root, inter, whose, tmp_path):
    """OpenSSL 3.0 takes a certificate whose keyUsage allows nothing as invalid (RFC 5280
    4.2.1.3): no issuer is found for it, and it is no issuer.  fastcap refused it for its
    purpose only."""
    if whose == "leaf":
        ca, leaf = inter, issue("mail.fabrikam.com", inter, ca=False, ku=set())
    else:
        ca = issue("Mail Issuing CA", root, ca=True, ku=set(), key=inter.key)
        leaf = issue("mail.fabrikam.com", ca, ca=False)
    r = check(root, leaf, ca)
    expected = openssl_error(tmp_path, root.cert.public_bytes(serialization.Encoding.PEM),
                             leaf.cert.public_bytes(serialization.Encoding.PEM),
                             ca.cert.public_bytes(serialization.Encoding.PEM), at=NOW)
    assert (r.path_error, r.path_error_depth) == expected
    assert r.trusted is False and "keyUsage allows nothing" in r.detail


def test_unknown_critical_extension_is_refused(root, inter):
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00")
    r = check(root, issue("mail.fabrikam.com", inter, ca=False, extra=[(odd, True)]), inter)
    assert (r.trusted, r.path_error, r.path_error_depth) == (
        False, "unhandled critical extension", 0)


def test_expired_root_is_named(inter):
    old_root = issue("Old Root", None, ca=True, not_after=NOW - DAY)
    mid = issue("Mid CA", old_root, ca=True)
    r = check(old_root, issue("mail.fabrikam.com", mid, ca=False), mid)
    assert (r.trusted, r.problem) == (False, "invalid")
    assert (r.path_error, r.path_error_depth) == ("certificate has expired", 2)
    assert "CN=Old Root" in r.detail


def test_wrong_signer_with_the_issuers_name(root, inter):
    twin = issue("Mail Issuing CA", root, ca=True)  # same name, other key
    leaf = issue("mail.fabrikam.com", inter, ca=False, aki=False)
    r = check(root, leaf, twin)
    assert (r.trusted, r.path_error, r.path_error_depth) == (
        False, "certificate signature failure", 0)
    # Sent after the right one, the twin is never tried (OpenSSL takes the first valid).
    assert check(root, leaf, inter, twin).trusted is True


def test_a_valid_candidate_is_preferred_to_an_expired_one(root):
    key_holder = issue("Renewed CA", root, ca=True, not_after=NOW - DAY)
    renewed = Made(_reissue(key_holder, root, not_after=NOW + 300 * DAY), key_holder.key)
    leaf = issue("mail.fabrikam.com", renewed, ca=False)
    r = check(root, leaf, key_holder, renewed)
    assert (r.trusted, r.path_sha256[1]) == (True, Analyzer(TrustStore([root.cert]))
                                      .check([renewed.der], role="client", at=NOW).certs[0].sha256)


def _reissue(ca: Made, parent: Made, *, not_after) -> x509.Certificate:
    c = ca.cert
    b = (x509.CertificateBuilder().subject_name(c.subject).issuer_name(c.issuer)
         .public_key(c.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(c.not_valid_before_utc).not_valid_after(not_after))
    for ext in c.extensions:
        b = b.add_extension(ext.value, ext.critical)
    return b.sign(parent.key, hashes.SHA256())


def test_intermediates_in_any_order_and_twice(root):
    top = issue("Top CA", root, ca=True)
    low = issue("Low CA", top, ca=True)
    leaf = issue("mail.fabrikam.com", low, ca=False)
    r = check(root, leaf, top, low, top, leaf)
    assert (r.trusted, len(r.path_sha256)) == (True, 4)


def test_an_intermediate_alone_in_the_store_is_no_anchor(root, inter):
    """No partial chains: OpenSSL needs the self-signed root."""
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    r = check(root, leaf, store=[inter.cert])
    assert (r.trusted, r.path_valid) == (False, False)
    assert (r.path_error, r.path_error_depth) == ("unable to get issuer certificate", 1)
    assert check(root, leaf, store=[inter.cert, root.cert]).trusted is True


def test_pinned_leaf_stays_trusted_though_openssl_would_not(root, inter):
    """fastcap's choice: a leaf the admin put in the store is trusted as such."""
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    r = check(root, leaf, store=[leaf.cert])
    assert (r.trusted, r.problem) == (True, None)
    assert (r.path_valid, r.path_error) == (False, "unable to get local issuer certificate")


def test_sha1_path_validates_but_is_refused(root, inter):
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    sha1 = _sha1_twin(leaf.cert, inter)
    r = Analyzer(TrustStore([root.cert]), today=NOW).check(
        [sha1, inter.der], role="client", at=NOW)
    assert (r.path_valid, r.trusted, r.problem) == (True, False, "weak_signature")


def _sha1_twin(cert: x509.Certificate, issuer: Made) -> bytes:
    from fastcap_synth.certs import _sign

    b = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
         .public_key(cert.public_key()).serial_number(cert.serial_number)
         .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        b = b.add_extension(ext.value, ext.critical)
    return _sign(b, issuer.key, "sha1").public_bytes(serialization.Encoding.DER)


def test_long_hostile_chain_is_bounded(root):
    """A peer sending 60 CAs, each issuing the next: the path is capped."""
    chain = [root]
    for i in range(60):
        chain.append(issue(f"Ladder {i}", chain[-1], ca=True))
    leaf = issue("mail.fabrikam.com", chain[-1], ca=False)
    r = check(root, leaf, *reversed(chain[1:]))
    assert (r.trusted, r.path_error) == (False, "certificate chain too long")
    assert len(r.path_sha256) <= x509path.MAX_PATH + 1


@pytest.mark.parametrize("content, note", [
    (b"\x01" * 21, "has a serial number longer than 20 octets"),
    (b"\xff\x01", "has a negative serial number"),
    (b"\x00", "has a zero serial number"),
])
def test_odd_serials_are_notes_not_verdicts(root, content, note):
    """`openssl verify` accepts all three; the web-PKI profile refuses them."""
    leaf = issue("mail.fabrikam.com", root, ca=False)
    der = with_serial(leaf.cert, root.key, content)
    r = Analyzer(TrustStore([root.cert]), today=NOW).check([der], role="client", at=NOW)
    assert (r.trusted, r.problem, r.path_valid) == (True, None, True)
    assert r.profile_notes == (f"#1 (CN=mail.fabrikam.com) {note}",)


def _constrained_root(permitted=None, excluded=None) -> Made:
    return issue("Constrained Root", None, ca=True,
                 extra=[(x509.NameConstraints(permitted, excluded), True)])


def test_name_constraints_permit_and_refuse():
    root = _constrained_root(permitted=[x509.DNSName("fabrikam.com")])
    inside = check(root, issue("mail.fabrikam.com", root, ca=False))
    assert (inside.trusted, inside.path_valid) == (True, True)
    outside = check(root, issue("mail.contoso.com", root, ca=False))
    assert (outside.trusted, outside.problem) == (False, "invalid")
    assert (outside.path_error, outside.path_error_depth) == ("permitted subtree violation", 0)
    assert "mail.contoso.com" in outside.detail and "CN=Constrained Root" in outside.detail


def test_name_constraints_reach_a_cn_only_leaf_and_exclusions():
    root = _constrained_root(excluded=[x509.DNSName("fabrikam.com")])
    r = check(root, issue("mail.fabrikam.com", root, ca=False, san=False))
    assert (r.trusted, r.path_error) == (False, "excluded subtree violation")
    assert check(root, issue("mail.contoso.com", root, ca=False, san=False)).trusted is True


@pytest.mark.parametrize("string_type", ["IA5String", "UTF8String"])
@pytest.mark.parametrize("constraint", [
    x509.NameConstraints([x509.RFC822Name("fabrikam.com")], None),
    x509.NameConstraints(None, [x509.DNSName("contoso.com")]),
])  # fmt: skip
def test_a_subject_email_not_in_ia5string_fails_any_name_constraints(constraint, string_type):
    # OpenSSL reads a subject emailAddress only as IA5String; under a CA with name
    # constraints of any kind, another string type is "unsupported or invalid name syntax".
    from cryptography.x509.name import _ASN1Type

    root = issue("Constrained Root", None, ca=True, extra=[(constraint, True)])
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "mail.fabrikam.com"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "postmaster@fabrikam.com",
                           _type=_ASN1Type[string_type]),
    ])  # fmt: skip
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(root.cert.subject)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.fabrikam.com")]),
                           False)
            .sign(root.key, hashes.SHA256()))
    r = check(root, Made(cert, key))
    if string_type == "IA5String":
        assert (r.path_valid, r.path_error) == (True, None)
    else:
        assert (r.path_valid, r.path_error_depth) == (False, 0)
        assert r.path_error == "unsupported or invalid name syntax"


def _v1(cn: str, parent: Made | None) -> Made:
    """An X.509 v1 certificate (no version field, no extensions): old roots still are."""
    from fastcap_synth.certs import _content, _tlv

    key = ec.generate_private_key(ec.SECP256R1())
    signer = parent.key if parent else key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    draft = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(parent.cert.subject if parent else name).public_key(key.public_key())
             .serial_number(77).not_valid_before(NOW - 30 * DAY)
             .not_valid_after(NOW + 30 * DAY).sign(signer, hashes.SHA256()))
    tbs = _tlv(0x30, _content(draft.tbs_certificate_bytes)[5:])  # drop [0] { INTEGER 2 }
    sig = signer.sign(tbs, ec.ECDSA(hashes.SHA256()))
    ecdsa_sha256 = bytes.fromhex("300a06082a8648ce3d040302")
    der = _tlv(0x30, tbs + ecdsa_sha256 + _tlv(0x03, b"\x00" + sig))
    return Made(x509.load_der_x509_certificate(der), key)


def test_v1_root_is_an_anchor_but_a_v1_intermediate_is_no_ca():
    """OpenSSL's check_ca: a v1 self-signed root passes (code 3), a v1 intermediate does not."""
    root = _v1("V1 Root", None)
    assert root.cert.version == x509.Version.v1
    r = check(root, issue("mail.fabrikam.com", root, ca=False))
    assert (r.trusted, r.path_valid) == (True, True)
    mid = _v1("V1 Mid", root)
    r = check(root, issue("mail.fabrikam.com", mid, ca=False), mid)
    assert (r.trusted, r.path_error, r.path_error_depth) == (False, "invalid CA certificate", 1)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_anchor_index_works_out_a_root_on_first_lookup_as_it_would_up_front():
    """Facts are made per subject when first asked for; the candidates are those an index
    built up front gives: same roots, same order, unparseable names left out."""
    store = TrustStore.mozilla()
    roots = list(store.roots)
    index = x509path.AnchorIndex(roots)
    up_front: dict[tuple, list] = {}
    for cert in roots:
        f = x509path._facts_of(cert)
        if f is not None and f.subject is not None:
            up_front.setdefault(f.subject, []).append(f.der)
    assert len(up_front) > 50
    for subject, ders in up_front.items():
        first = index.candidates(subject)
        assert [f.der for f in first] == ders[:x509path.MAX_CANDIDATES]
        assert index.candidates(subject) == first  # worked out once, then kept
    assert index.candidates(None) == () and index.candidates((("2.5.4.3", "x"),)) == ()


def test_many_unrelated_certificates_do_not_hide_the_issuer(root, inter):
    """A peer sending a bundle: 20 CAs of other names before the intermediate.  The bound is
    on candidates of one name, so the path is found, as OpenSSL finds it."""
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    others = [issue(f"Other CA {i}", None, ca=True) for i in range(20)]
    r = check(root, leaf, *others, inter)
    assert (r.trusted, r.path_valid, len(r.path_sha256)) == (True, True, 3)


@pytest.mark.parametrize("issuer_cn, found", [
    ("  MAIL\t\tROOT ", True),  # ASCII case and white space do not count
    ("Mail\u00a0Root", False),  # a no-break space is no space to OpenSSL
    ("Mail\x1cRoot", False),  # nor is a separator control Python splits on
])  # fmt: skip
def test_issuer_names_compare_as_openssl_canonicalises_them(root, issuer_cn, found):
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.fabrikam.com")]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY))
    leaf = Made(b.sign(root.key, hashes.SHA256()), key)
    r = check(root, leaf)
    assert r.path_valid is found, r.path_error
    if not found:
        assert r.path_error == "unable to get local issuer certificate"


@pytest.mark.parametrize("root_type, issuer_type, issuer_value, found", [
    ("NumericString", "NumericString", "47 11", True),
    ("NumericString", "PrintableString", "47 11", False),  # not canonicalised: type counts
    ("NumericString", "NumericString", "47  11", False),  # and so do its spaces
    ("PrintableString", "UTF8String", "47  11", True),  # canonicalised to UTF8String
])  # fmt: skip
def test_issuer_names_of_uncanonicalised_types_compare_as_written(root_type, issuer_type,
                                                                  issuer_value, found):
    from cryptography.x509.name import _ASN1Type

    def name(value: str, string_type: str) -> x509.Name:
        return x509.Name([
            x509.NameAttribute(NameOID.SERIAL_NUMBER, value, _type=_ASN1Type[string_type]),
            x509.NameAttribute(NameOID.COMMON_NAME, "Numbered Root")])

    key = ec.generate_private_key(ec.SECP256R1())
    subject = name("47 11", root_type)
    anchor = Made(x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                  .public_key(key.public_key()).serial_number(1)
                  .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                  .sign(key, hashes.SHA256()), key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = Made(x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.x.com")]))
                .issuer_name(name(issuer_value, issuer_type)).public_key(leaf_key.public_key())
                .serial_number(2).not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
                .sign(key, hashes.SHA256()), leaf_key)
    assert check(anchor, leaf).path_valid is found


def test_names_that_differ_only_in_case_are_one_name_to_the_diagnosis(root):
    """A self-signed leaf whose issuer spells its subject in other case is self-signed to
    OpenSSL (error 18), and a sent intermediate so named is the leaf's issuer: neither may be
    called a missing, private CA."""
    key = ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, issuer: str, signer, *, ca: bool = False) -> Made:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY))
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        return Made(b.sign(signer, hashes.SHA256()), key)

    own = check(root, cert("Mail.Fabrikam.com", "mail.fabrikam.com", key))
    assert (own.problem, own.path_error) == ("self_signed", "self-signed certificate")
    assert own.certs[0].self_signed is True
    other = ec.generate_private_key(ec.SECP256R1())
    mid = cert("Fabrikam Issuing CA", "Elsewhere Root", other, ca=True)
    leaf = cert("mail.fabrikam.com", "FABRIKAM ISSUING CA", key)
    r = check(root, leaf, mid)
    assert (r.path_error, r.path_error_depth) == ("unable to get local issuer certificate", 1)
    assert r.problem == "untrusted_root" and "not sent" not in r.detail
    assert "chain ends at issuer CN=Elsewhere Root" in r.detail


def test_a_stale_extra_certificate_is_not_blamed(root, inter):
    """The store holds the intermediate alone; the peer also sends an expired certificate off
    the path.  The message is OpenSSL's (no root above the intermediate), not the stale one."""
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    stale = issue("Old Cross Root", None, ca=True, not_before=NOW - 900 * DAY,
                  not_after=NOW - 100 * DAY)
    r = check(root, leaf, stale, inter, store=[inter.cert])
    assert (r.trusted, r.problem) == (False, "invalid")
    assert "Old Cross Root" not in r.detail
    assert r.detail.startswith("unable to get issuer certificate at depth 1 (CN=Mail Issuing CA)")


@pytest.mark.parametrize("issuer_cn", ["Mail Root", "MAIL  ROOT"])
def test_no_path_built_is_not_said_to_chain_to_a_trusted_root(root, issuer_cn):
    """The root signs the leaf, but the leaf's Authority Key Identifier names another key:
    OpenSSL builds no path (error 20).  The message must not claim a trusted root, nor call
    the root, named by the leaf in other case, a private CA."""
    other = ec.generate_private_key(ec.SECP256R1())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(other.public_key())
    made = issue("mail.fabrikam.com", root, ca=False, aki=False, extra=[(aki, False)])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])
    b = (x509.CertificateBuilder().subject_name(made.cert.subject).issuer_name(name)
         .public_key(made.key.public_key()).serial_number(made.cert.serial_number)
         .not_valid_before(made.cert.not_valid_before_utc)
         .not_valid_after(made.cert.not_valid_after_utc))
    for ext in made.cert.extensions:
        b = b.add_extension(ext.value, ext.critical)
    leaf = Made(b.sign(root.key, hashes.SHA256()), made.key)
    r = check(root, leaf)
    assert (r.trusted, r.problem, r.path_error) == (
        False, "invalid", "unable to get local issuer certificate")
    assert "is in the trust store, but it is not taken as the issuer" in r.detail
    (v,) = diagnose(session(smtp(), tls()), r, None)
    assert v.code == "client_cert_untrusted_ca"
    assert "chains to a trusted root" not in v.message
    assert "no path to a trusted root was built" in v.message
    bad = issue("No CA", root, ca=True, bc=None)  # reached the root, failed on the way
    reached = check(root, issue("mail.fabrikam.com", bad, ca=False), bad)
    assert reached.path_error == "invalid CA certificate"
    (v,) = diagnose(session(smtp(), tls()), reached, None)
    assert "chains to a trusted root, but the path fails validation" in v.message


def test_an_out_of_date_sent_issuer_is_named(root):
    """The verifier took a valid look-alike that leads nowhere; the sent issuer that leads to
    the trusted root was expired, at its notAfter second."""
    elsewhere = issue("Elsewhere Root", None, ca=True)
    valid = issue("Mail Issuing CA", elsewhere, ca=True)
    expired = issue("Mail Issuing CA", root, ca=True, key=valid.key, not_after=NOW)
    leaf = issue("mail.fabrikam.com", valid, ca=False)
    r = check(root, leaf, expired, valid)
    assert (r.trusted, r.problem) == (False, "invalid")
    assert r.detail == (
        "chain certificate #1 (CN=Mail Issuing CA) was expired at capture time; of the"
        " certificates sent under one name OpenSSL takes the first valid at the time, so its"
        " path went another way: chain ends at issuer CN=Elsewhere Root, which is not in the"
        ' trust store; openssl verify: "error 20 at 1 depth lookup: unable to get local issuer'
        ' certificate" (CN=Mail Issuing CA); Postfix: "certificate verification failed for …:'
        ' untrusted issuer /CN=Elsewhere Root"')


@pytest.mark.parametrize("hours", [(-1, 1), (1, -1)])
def test_a_leaf_expiring_during_the_day_is_judged_at_each_time(root, inter, hours):
    """notAfter at noon: valid at 11:00, expired at 13:00, in whichever order they come."""
    leaf = issue("mail.fabrikam.com", inter, ca=False, not_after=NOW)
    analyzer = Analyzer(TrustStore([root.cert]), today=NOW)
    for h in hours:
        r = analyzer.check([leaf.der, inter.der], role="client", at=NOW + h * dt.timedelta(hours=1))
        assert (r.trusted, r.problem) == ((True, None) if h < 0 else (False, "expired"))


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
@pytest.mark.parametrize("hours", [(-1, 1), (1, -1)])
@pytest.mark.parametrize("stale", ["root", "store_intermediate"])
def test_a_store_certificate_expiring_during_the_day_is_judged_at_each_time(hours, stale,
                                                                            tmp_path):
    """A root (or an intermediate the store holds) whose notAfter is noon: openssl verify
    -attime accepts the chain at 11:00 and refuses it at 13:00.  fastcap kept the first
    result of the day, since only the certificates sent split it."""
    root = issue("Noon Root", None, ca=True, not_after=NOW if stale == "root" else NOW + DAY)
    inter = issue("Noon CA", root, ca=True,
                  not_after=NOW if stale == "store_intermediate" else NOW + DAY)
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    store = [root.cert] + ([inter.cert] if stale == "store_intermediate" else [])
    sent = [leaf.der] + ([inter.der] if stale == "root" else [])
    analyzer = Analyzer(TrustStore(store), today=NOW)
    pem = serialization.Encoding.PEM
    for h in hours:
        at = NOW + h * dt.timedelta(hours=1)
        r = analyzer.check(sent, role="client", at=at)
        expected = openssl_error(tmp_path, b"".join(c.public_bytes(pem) for c in store),
                                 leaf.cert.public_bytes(pem),
                                 inter.cert.public_bytes(pem) if stale == "root" else b"",
                                 at=at)
        assert (r.path_error, r.path_error_depth) == expected
        assert r.trusted is (h < 0)


def test_a_store_root_with_a_zero_serial_warns_of_nothing(root):
    """A store root is worked out when a chain first names it; one with a zero serial makes
    ``cryptography`` warn, which must not reach stderr, whichever step looks at it first."""
    with warnings.catch_warnings():  # the test's own load warns; the check must not
        warnings.simplefilter("ignore")
        zero = x509.load_der_x509_certificate(with_serial(root.cert, root.key, b"\x00"))
    leaf = issue("mail.fabrikam.com", root, ca=False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        r = Analyzer(TrustStore([zero]), today=NOW).check([leaf.der], role="client", at=NOW)
    assert r.trusted is True and [str(w.message) for w in said] == []


def test_an_issuer_of_the_right_name_but_another_key_is_said_so(root):
    """A re-keyed intermediate: the peer sends the old one, whose key identifier is not the one
    the leaf names.  OpenSSL finds no issuer; the note says one of that name came, not none."""
    old = issue("Mail Issuing CA", root, ca=True)
    new = issue("Mail Issuing CA", root, ca=True)
    leaf = issue("mail.fabrikam.com", new, ca=False)
    r = check(root, leaf, old)
    assert (r.path_error, r.path_error_depth) == ("unable to get local issuer certificate", 0)
    assert "issuer's name was sent, but with another key" in r.detail
    assert "neither sent" not in r.detail


def test_a_pinned_self_signed_leaf_still_passes_its_own_checks():
    """OpenSSL anchors a self-signed leaf from the store but still checks its purpose and its
    critical extensions; so does fastcap."""
    def pinned(**kw) -> Made:
        return issue("mail.fabrikam.com", None, ca=False, **kw)

    good = pinned()
    r = check(good, good)
    assert (r.trusted, r.detail) == (True, "CN=mail.fabrikam.com is itself in the trust store")
    no_signing = pinned(ku={"key_encipherment"})
    r = check(no_signing, no_signing)
    assert (r.trusted, r.problem, r.path_error) == (False, "invalid",
                                                    "unsuitable certificate purpose")
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    unknown = pinned(extra=[(odd, True)])
    r = check(unknown, unknown)
    assert (r.trusted, r.path_error) == (False, "unhandled critical extension")


def _constrained_pair(subtrees: int, sans: int) -> list[x509.Certificate]:
    """A leaf whose SANs all sit under the last of a CA's permitted DNS subtrees: each name
    is held against every subtree, the most checks a pair of that size can cost."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Constrained CA")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def build(subject, extensions):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(start + dt.timedelta(days=30)))
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b.sign(key, hashes.SHA256())

    ca = build(ca_name, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.NameConstraints([x509.DNSName(f"d{i}.example") for i in range(subtrees)], None),
         True)])
    last = f"d{subtrees - 1}.example"
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay")]), [
        (x509.SubjectAlternativeName([x509.DNSName(f"h{j}.{last}") for j in range(sans)]),
         False)])
    return [leaf, ca]


def test_name_constraint_checks_are_bounded_per_pair():
    """255 SANs (and the subject) under 255 subtrees are checked; past 65,536 checks a pair
    is refused as OpenSSL refuses one past its own bound, so hostile certificates cannot
    make a scan slow."""
    assert check_name_constraints(_constrained_pair(255, 255), [False, True]) is None
    assert check_name_constraints(_constrained_pair(256, 256), [False, True]) == (
        UNSUPPORTED_NAME_SYNTAX, 0, "too many names and constraints")
