"""A leaf naming itself as its issuer, held to `openssl verify`: OpenSSL 3.0 takes it as
self-signed when its Authority Key Identifier does not name another key (and its signature
algorithm fits its own key), without looking at the signature, and then looks for no other
issuer; otherwise it looks for that issuer.  The verdict follows what OpenSSL said, error 18
("self-signed certificate", which Postfix logs as such) or error 20 (an issuer not found),
whichever key signed the certificate and whether a CA of that name is trusted or sent."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .openssl_oracle import OPENSSL
from .test_diagnose import run, session, smtp, tls
from .test_no_path_openssl import _held_to_openssl
from .test_x509path import DAY, NOW, Made, issue

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

CN = "mail.fabrikam.com"


def _named_self(signer: Made | None, *, aki: str = "none", ski: bool = True,
                rsa_key: bool = False, serial: int | None = None) -> Made:
    """A leaf whose issuer is its own subject, signed by ``signer``'s key (its own when None);
    ``aki``: none, own (its own key id), signer (the signer's), other (a third key's), serial
    (its name and another serial number)."""
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
           else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
         .not_valid_before(NOW - 30 * DAY).not_valid_after(NOW + 300 * DAY)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                               ExtendedKeyUsageOID.SERVER_AUTH]), False)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(CN)]), False))
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    signing = signer.key if signer is not None else key
    if aki == "own":
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            key.public_key()), False)
    elif aki == "signer":
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signing.public_key()), False)
    elif aki == "other":
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ec.generate_private_key(ec.SECP256R1()).public_key()), False)
    elif aki == "serial":
        b = b.add_extension(x509.AuthorityKeyIdentifier(
            None, [x509.DirectoryName(name)], (serial or 1) + 1), False)
    return Made(b.sign(signing, hashes.SHA256()), key)


def _cases() -> dict[str, tuple[list[Made], Made, list[Made], str]]:
    """(trust store, leaf, sent, the key that signed it as the detail must name it)."""
    other = issue("Other Root", None, ca=True)
    ca = issue(CN, None, ca=True)  # a CA of the leaf's own name
    stranger = issue("Stranger", None, ca=True)
    return {
        "no AKI, unknown signer": ([other], _named_self(stranger), [], "neither sent"),
        "no AKI, unknown signer, a trusted CA of that name": (
            [ca], _named_self(stranger), [], "neither sent"),
        "no AKI, signed by the trusted CA of that name": (
            [ca], _named_self(ca), [], f"the trusted CA CN={CN} signed it"),
        "no AKI, signed by the CA sent": ([other], _named_self(ca), [ca], "sent with it"),
        "AKI of its own key, signed by the trusted CA": (
            [ca], _named_self(ca, aki="own"), [], "the trusted CA"),
        "AKI key id, no SKI": ([other], _named_self(stranger, aki="signer", ski=False), [],
                               "neither sent"),
        "AKI of the signer's key, unknown signer": (
            [other], _named_self(stranger, aki="signer"), [], ""),
        "AKI of the signer's key, another trusted CA of that name": (
            [ca], _named_self(stranger, aki="signer"), [], ""),
        "AKI of the signer's key, the CA sent": ([other], _named_self(ca, aki="signer"), [ca],
                                                 ""),
        "AKI of the signer's key, the CA trusted": ([ca], _named_self(ca, aki="signer"), [],
                                                    ""),
        "RSA key signed with ECDSA": ([other], _named_self(stranger, rsa_key=True), [], ""),
        "its own signature, AKI of another key": (
            [other], _named_self(None, aki="other"), [], ""),
        "its own signature, AKI of another serial": (
            [other], _named_self(None, aki="serial", serial=1000), [], ""),
        "its own signature": ([other], _named_self(None), [], ""),
        # OpenSSL 3.0 takes a certificate with an empty keyUsage as invalid: never self-signed
        "its own signature, an empty keyUsage": ([other], issue(CN, None, ca=False, ku=set()),
                                                 [], ""),
    }


CASES = _cases()


@pytest.mark.parametrize("role", ["client", "server"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_verdict_follows_openssls_reading_of_a_self_named_leaf(case, role, tmp_path):
    store, leaf, sent, signer = CASES[case]
    said, check = _held_to_openssl(store, leaf, sent, role, tmp_path)
    chains = (check, None) if role == "client" else (None, check)
    codes = {v.code: v.message for v in run(session(smtp(), tls()), *chains)}
    if not said:
        assert check.problem is None and f"{role}_cert_self_signed" not in codes
        return
    number, depth, text, _ = said[0]
    words = f'openssl verify: "error {number} at {depth} depth lookup: {text}"'
    assert words in check.detail, check.detail
    if number == 18:  # OpenSSL and Postfix say "self-signed certificate": so does fastcap
        assert check.problem == "self_signed", check.detail
        message = codes[f"{role}_cert_self_signed"]
        assert words in message and "self-signed certificate" in message
        assert ("is self-signed and not in the trust store" in check.detail) == (
            case == "its own signature")
        if case != "its own signature":  # said why, and which key signed it
            assert "takes it as self-signed without checking its signature" in check.detail
            assert signer in check.detail, check.detail
    else:  # OpenSSL looked for an issuer: fastcap does not call it self-signed
        assert check.problem != "self_signed", check.detail
        assert f"{role}_cert_self_signed" not in codes
        if number == 20:
            assert any(why in check.detail for why in (
                "OpenSSL looks for that issuer", "OpenSSL does not take it as self-signed",
                "OpenSSL takes the certificate as invalid: its keyUsage allows nothing",
            )), check.detail


def _rekeyed(root: Made, *, aki: bool) -> Made:
    """A CA under ``root``'s own name with a new key, certified by ``root`` (a re-keyed CA),
    with or without an Authority Key Identifier naming the root's key."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(root.cert.subject)
         .issuer_name(root.cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - 30 * DAY).not_valid_after(NOW + 300 * DAY)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if aki:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            root.key.public_key()), False)
    return Made(b.sign(root.key, hashes.SHA256()), key)


@pytest.mark.parametrize("aki", [False, True], ids=["no AKI", "AKI of the root"])
@pytest.mark.parametrize("root_at", ["store", "sent"])
def test_a_ca_under_its_roots_name_is_read_as_openssl_reads_it(aki, root_at, tmp_path):
    """Without an Authority Key Identifier, OpenSSL takes the re-keyed CA as self-signed and
    stops there (error 19 at depth 1), though the root of that name signed it: the message
    says so and names the root, trusted or sent, instead of an untrusted root of its own."""
    root = issue("Contoso CA", None, ca=True)
    ca = _rekeyed(root, aki=aki)
    leaf = issue(CN, ca, ca=False)
    store = [root] if root_at == "store" else [issue("Other Root", None, ca=True)]
    sent = [ca] if root_at == "store" else [ca, root]
    said, check = _held_to_openssl(store, leaf, sent, "client", tmp_path)
    if aki:  # OpenSSL looks for its issuer and finds the root
        assert [n for n, *_ in said] == ([] if root_at == "store" else [19]), said
        assert "names itself as its issuer" not in check.detail
        return
    assert [(n, d) for n, d, *_ in said] == [(19, 1)]
    assert check.problem == "untrusted_root", check.detail
    assert check.detail.startswith(
        "chain certificate CN=Contoso CA names itself as its issuer and it has no Authority"
        " Key Identifier, so OpenSSL takes it as self-signed"), check.detail
    by = ("the trusted CA CN=Contoso CA signed it" if root_at == "store"
          else "CN=Contoso CA, sent with it, signed it")
    assert by in check.detail, check.detail
