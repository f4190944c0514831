"""Where a chain that mail servers accept departs from the web-PKI (CA/Browser-Forum) profile.

Postfix, Exim and Exchange validate paths by RFC 5280 alone (see ``x509path``). Browsers and
``cryptography``'s verifier also demand the CA/B-Forum profile: Authority and Subject Key
Identifiers, a SAN on every leaf, short positive serials, critical basicConstraints on CAs...
Such deviations do not make a chain untrusted for mail, but an admin replacing a certificate
should know them, so they become notes, never a verdict of their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509 import verification as xv

from . import x509lenient

__all__ = ["notes"]

_ANY_EKU = "2.5.29.37.0"
# Signature algorithms outside the CA/B-Forum list that OpenSSL verifies all the same.
_OFF_PROFILE_SIGNATURES = {
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
    "1.2.840.10040.4.3": "DSA",
    "2.16.840.1.101.3.4.3.1": "DSA",
    "2.16.840.1.101.3.4.3.2": "DSA",
}
_PROFILE_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def _ext(cert: x509.Certificate, cls: type) -> x509.Extension[Any] | None:
    try:
        return x509lenient.extensions(cert)[0].get_extension_for_class(cls)
    except Exception:  # absent, or undecodable (then path validation refused it already)
        return None


def _label(i: int, cert: x509.Certificate) -> str:
    try:
        subject = cert.subject.rfc4514_string() or "empty subject"
    except Exception:
        subject = "?"
    return f"#{i + 1} ({subject})"


def _cert_notes(i: int, cert: x509.Certificate, is_ca: bool) -> list[str]:
    out: list[str] = []
    who = _label(i, cert)
    try:
        self_issued = cert.subject == cert.issuer
    except Exception:
        self_issued = False
    if cert.version != x509.Version.v3:
        out.append(f"{who} is an X.509 {cert.version.name} certificate")
    algorithm = _OFF_PROFILE_SIGNATURES.get(cert.signature_algorithm_oid.dotted_string)
    if algorithm is not None:
        out.append(f"{who} is signed with {algorithm}")
    try:
        key = cert.public_key()
    except Exception:  # an algorithm cryptography does not load: the verifier note says so
        key = None
    if isinstance(key, ed25519.Ed25519PublicKey):
        out.append(f"{who} has an Ed25519 key")
    elif isinstance(key, ed448.Ed448PublicKey):
        out.append(f"{who} has an Ed448 key")
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _PROFILE_CURVES:
        out.append(f"{who} has a key on curve {key.curve.name}")
    serial = cert.serial_number
    if serial <= 0:
        out.append(f"{who} has a {'zero' if serial == 0 else 'negative'} serial number")
    elif (serial.bit_length() + 8) // 8 > 20:  # DER length, with the sign octet
        out.append(f"{who} has a serial number longer than 20 octets")
    if not self_issued and _ext(cert, x509.AuthorityKeyIdentifier) is None:
        out.append(f"{who} has no Authority Key Identifier")
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if is_ca:
        if _ext(cert, x509.SubjectKeyIdentifier) is None:
            out.append(f"{who} is a CA without Subject Key Identifier")
        if bc is not None and not bc.critical:
            out.append(f"{who} is a CA whose basicConstraints is not critical")
        if ku is None:
            out.append(f"{who} is a CA without keyUsage")
        if eku is not None and any(o.dotted_string == _ANY_EKU for o in eku.value):
            out.append(f"{who} is a CA with anyExtendedKeyUsage")
    else:
        san = _ext(cert, x509.SubjectAlternativeName)
        try:
            unnamed = not cert.subject.rdns
        except Exception:
            unnamed = False
        # RFC 5280 4.2.1.6, which `openssl verify -x509_strict` checks
        if unnamed and san is None:
            out.append(f"{who} has an empty subject and no subjectAltName: nothing names it")
        elif unnamed and san is not None and not san.critical:
            out.append(f"{who} has an empty subject and a subjectAltName not marked critical")
        elif san is None:
            out.append(f"{who} has no subjectAltName (named by its CN only)")
        if bc is not None and bc.value.ca:
            out.append(f"{who} is a leaf marked CA:TRUE")
        if ku is not None and ku.value.key_cert_sign:
            out.append(f"{who} is a leaf whose keyUsage allows certificate signing")
        if eku is not None and eku.critical:
            out.append(f"{who} has a critical extended key usage")
    return out


def notes(
    path: Sequence[x509.Certificate],
    anchors: int,
    role: str,
    store: xv.Store | None,
    at: dt.datetime,
) -> tuple[str, ...]:
    """Web-PKI deviations of a path that validated (leaf first; the last ``anchors`` came
    from the trust store and are not judged: the admin did not pick them)."""
    out: list[str] = []
    below = list(path[: max(1, len(path) - anchors)])
    for i, cert in enumerate(below):
        try:
            out += _cert_notes(i, cert, is_ca=i > 0)
        except Exception as exc:  # odd but accepted encodings: say so, do not fail
            out.append(f"{_label(i, cert)} could not be profiled: {type(exc).__name__}")
    if not out and store is not None and len(path) > 1:
        why = _webpki_refusal(path[0], below[1:], role, store, at)
        if why:
            out.append(f"a web-PKI verifier refuses it: {why}")
    return tuple(out)


def _webpki_refusal(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    role: str,
    store: xv.Store,
    at: dt.datetime,
) -> str | None:
    """What ``cryptography``'s verifier still objects to (signature algorithm, key size or
    curve, name encodings...) once EKU and SAN, judged elsewhere, are let through."""
    try:
        builder = xv.PolicyBuilder().store(store).time(at)
        policy_cls = getattr(xv, "ExtensionPolicy", None)
        if policy_cls is not None:
            ee = (
                policy_cls.webpki_defaults_ee()
                .may_be_present(x509.ExtendedKeyUsage, xv.Criticality.AGNOSTIC, None)
                .may_be_present(x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None)
            )
            builder = builder.extension_policies(
                ca_policy=policy_cls.webpki_defaults_ca(), ee_policy=ee
            )
        builder.build_client_verifier().verify(leaf, intermediates)
        return None
    except Exception as exc:
        text = " ".join(str(exc).split())
        return text[:200] or type(exc).__name__
