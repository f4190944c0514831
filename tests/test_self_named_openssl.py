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
            assert "OpenSSL looks for that issuer" in check.detail or (
                "OpenSSL does not take it as self-signed" in check.detail), check.detail
