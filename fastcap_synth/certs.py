"""Throw-away PKI for synthetic TLS handshakes.

The diagnoses fastcap makes hinge on certificate details (issuer chain, validity window, EKU,
subject names, signature hash), so tests need certificates that are wrong in exactly one way.
EC P-256 keys are the default because generating them is nearly free.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ec", "ec384", "rsa2048", "rsa4096", "rsa1024"]
HashName = Literal["sha256", "sha1", "sha384"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_EKU = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
}
_HASH = {"sha256": hashes.SHA256, "sha1": hashes.SHA1, "sha384": hashes.SHA384}


@dataclass
class Issued:
    """A certificate, its private key and the chain of issuers above it (nearest first)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cn(self) -> str | None:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256 of the DER certificate (the usual 'thumbprint')."""
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def chain_pem(self, *, include_root: bool = False) -> bytes:
        """This certificate followed by its issuers, as a TLS peer would send them."""
        certs = [self.cert, *self.chain]
        if not include_root and len(certs) > 1 and _self_signed(certs[-1]):
            certs = certs[:-1]
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    def write_pem(self, directory: str | Path) -> tuple[Path, Path]:
        """Write chain and key files; ``ssl`` can only load a certificate chain from disk."""
        d = Path(directory)
        cert_path = d / f"cert-{self.cert.serial_number:x}.pem"
        key_path = d / f"key-{self.cert.serial_number:x}.pem"
        cert_path.write_bytes(self.chain_pem())
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path

    def load_into(self, context: ssl.SSLContext) -> None:
        """``context.load_cert_chain`` via a temporary directory that is removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="fastcap-synth-") as tmp:
            cert_path, key_path = self.write_pem(tmp)
            context.load_cert_chain(cert_path, key_path)


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def new_key(kind: KeyKind = "ec") -> PrivateKey:
    """Generate a private key of the requested kind."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    raise ValueError(f"unknown key kind {kind!r}")


def _default_window(
    not_before: dt.datetime | None, not_after: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        not_before or now - dt.timedelta(days=1),
        not_after or now + dt.timedelta(days=365),
    )


def _name(cn: str, org: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_ca(
    cn: str,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: KeyKind = "ec",
    parent: Issued | None = None,
    org: str | None = "Fastcap Test PKI",
    hash: HashName = "sha256",
    extensions: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """A root CA, or an intermediate signed by ``parent``. Validity defaults to now-1d..+365d.
    ``extensions`` are added as non-critical (AIA, CRL distribution points...)."""
    nb, na = _default_window(not_before, not_after)
    k = new_key(key)
    subject = _name(cn, org)
    issuer_key = parent.key if parent else k
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.cert.subject if parent else subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    cert = _sign(builder, issuer_key, hash)
    chain = [parent.cert, *parent.chain] if parent else []
    return Issued(cert, k, chain)


def make_leaf(
    issuer: Issued | None,
    cn: str,
    *,
    sans: Sequence[str] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    eku: Sequence[str] = ("serverAuth", "clientAuth"),
    key: KeyKind = "ec",
    hash: HashName = "sha256",
    self_signed: bool = False,
    org: str | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
    subject: x509.Name | None = None,
) -> Issued:
    """An end-entity certificate; ``sans`` entries that parse as IPs become IP SANs.

    With ``self_signed=True`` the issuer is ignored (and may be None). ``extensions`` are
    added as non-critical (an AIA caIssuers URL, say). ``subject`` replaces the name made of
    ``cn`` and ``org`` (one cryptography would not build from them, say).
    """
    if issuer is None and not self_signed:
        raise ValueError("issuer is required unless self_signed=True")
    nb, na = _default_window(not_before, not_after)
    k = new_key(key)
    subject = _name(cn, org) if subject is None else subject
    signer = None if self_signed else issuer
    is_rsa = isinstance(k, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.cert.subject if signer else subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
    )
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([_EKU[e] for e in eku]), critical=False
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
    if signer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),
            critical=False,
        )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    cert = _sign(builder, signer.key if signer else k, hash)
    chain = [signer.cert, *signer.chain] if signer else []
    return Issued(cert, k, chain)


# AlgorithmIdentifier DER for the SHA-256 signature cryptography produces, and its SHA-1 twin.
_ALG_SHA256_TO_SHA1 = {
    bytes.fromhex("300d06092a864886f70d01010b0500"): bytes.fromhex(
        "300d06092a864886f70d0101050500"
    ),
    bytes.fromhex("300a06082a8648ce3d040302"): bytes.fromhex("300906072a8648ce3d0401"),
}


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _content(der: bytes) -> bytes:
    """Content octets of a single DER TLV (definite length only, as DER requires)."""
    first = der[1]
    if first < 0x80:
        return der[2 : 2 + first]
    n = first & 0x7F
    length = int.from_bytes(der[2 : 2 + n], "big")
    return der[2 + n : 2 + n + length]


def _sign(builder: x509.CertificateBuilder, key: PrivateKey, hash: HashName) -> x509.Certificate:
    """Sign ``builder``; SHA-1 is done by hand because cryptography refuses to sign with it.

    Legacy SHA-1 client certificates still exist in the wild and must be diagnosable, so the
    certificate is built with SHA-256, then its TBS is re-labelled and re-signed with SHA-1.
    """
    if hash != "sha1":
        return builder.sign(key, _HASH[hash]())
    draft = builder.sign(key, hashes.SHA256())
    tbs = _content(draft.tbs_certificate_bytes)
    for old, new in _ALG_SHA256_TO_SHA1.items():
        if old in tbs:
            tbs = _tlv(0x30, tbs.replace(old, new, 1))
            break
    else:
        raise ValueError("unexpected signature algorithm in draft certificate")
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    else:
        sig = key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    return x509.load_der_x509_certificate(_tlv(0x30, tbs + new + _tlv(0x03, b"\x00" + sig)))


def with_serial(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, content: bytes) -> bytes:
    """``cert`` re-signed by ``key`` (ECDSA with SHA-256) with a serial ``cryptography`` will not
    build: the INTEGER's raw content octets (too long, negative, zero), as issuers have written
    them and OpenSSL still accepts."""
    tbs = _content(cert.tbs_certificate_bytes)
    version, rest = tbs[:5], tbs[5:]  # [0] { INTEGER 2 }, then the serial
    serial_end = 2 + rest[1]
    new_tbs = _tlv(0x30, version + _tlv(0x02, content) + rest[serial_end:])
    sig = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    ecdsa_sha256 = bytes.fromhex("300a06082a8648ce3d040302")
    return _tlv(0x30, new_tbs + ecdsa_sha256 + _tlv(0x03, b"\x00" + sig))


def cert_summary(der: bytes) -> tuple[str | None, str]:
    """(subject CN or None, SHA-256 hex) of a DER certificate, e.g. one seen on the wire."""
    cert = x509.load_der_x509_certificate(der)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (str(attrs[0].value) if attrs else None, cert.fingerprint(hashes.SHA256()).hex())
