"""Judge the certificates a TLS peer presented, the way a mail admin needs it judged.

Exchange Online attributes on-premises mail by the sender's TLS client certificate; when it
refuses (``550 5.7.64 TenantAttribution``) the admin needs one specific reason: expired, not yet
valid, self-signed, untrusted root, missing intermediate, wrong key usage or wrong name. The
specific causes are checked first; path validation (``x509path``: RFC 5280 as the MTAs' OpenSSL
does it, not the browsers' web-PKI profile) has the last word, and what only the web-PKI
profile would refuse becomes a note (``x509profile``).

Certificates arrive from the wire, so nothing here raises on malformed DER: a bad certificate
becomes a :class:`CertInfo` carrying ``parse_error`` and a :class:`ChainCheck` with problem
``unparseable``.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import datetime as dt
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509 import verification as xv

from ..proto.tls.der import DerError, element
from ..verdict import CertInfo, ChainCheck
from ..verdict import iso_time as _iso
from ..verdict import one_line as _one_line
from . import anchorcache, x509lenient, x509path, x509profile
from .cabundle import certifi_bundle as _certifi_bundle
from .x509names import canon_name, host_matches, sender_name_fits

if TYPE_CHECKING:  # imported where a missing issuer asks for evidence: a rare case
    from .issuer_evidence import EvidenceIndex, Finding

__all__ = [
    "Analyzer",
    "CertInfo",
    "ChainCheck",
    "TrustStore",
    "cert_info",
    "name_matches",
    "sender_name_matches",
    "sender_names",
]

_UTC = dt.UTC

_EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "serverAuth",
    "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.3": "codeSigning",
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.5": "ipsecEndSystem",
    "1.3.6.1.5.5.7.3.6": "ipsecTunnel",
    "1.3.6.1.5.5.7.3.7": "ipsecUser",
    "1.3.6.1.5.5.7.3.8": "timeStamping",
    "1.3.6.1.5.5.7.3.9": "OCSPSigning",
    "1.3.6.1.5.5.7.3.17": "ipsecIKE",
    "2.5.29.37.0": "anyExtendedKeyUsage",
    "1.3.6.1.4.1.311.20.2.2": "smartcardLogon",
    "1.3.6.1.4.1.311.10.3.4": "encryptedFileSystem",
    "1.3.6.1.5.2.3.5": "kerberosPKINITKDC",
}

# Signature algorithm OID -> (OpenSSL-style name, hash). The hash is the fallback when
# cryptography cannot name it (e.g. md2), since weak hashes are exactly what we must report.
_SIG_ALGS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.2": ("md2WithRSAEncryption", "md2"),
    "1.2.840.113549.1.1.4": ("md5WithRSAEncryption", "md5"),
    "1.2.840.113549.1.1.5": ("sha1WithRSAEncryption", "sha1"),
    "1.2.840.113549.1.1.10": ("rsassaPss", None),
    "1.2.840.113549.1.1.11": ("sha256WithRSAEncryption", "sha256"),
    "1.2.840.113549.1.1.12": ("sha384WithRSAEncryption", "sha384"),
    "1.2.840.113549.1.1.13": ("sha512WithRSAEncryption", "sha512"),
    "1.2.840.113549.1.1.14": ("sha224WithRSAEncryption", "sha224"),
    "1.2.840.10045.4.1": ("ecdsa-with-SHA1", "sha1"),
    "1.2.840.10045.4.3.1": ("ecdsa-with-SHA224", "sha224"),
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", "sha512"),
    "1.2.840.10040.4.3": ("dsa-with-SHA1", "sha1"),
    "2.16.840.1.101.3.4.3.1": ("dsa-with-SHA224", "sha224"),
    "2.16.840.1.101.3.4.3.2": ("dsa-with-SHA256", "sha256"),
    "1.3.101.112": ("ED25519", None),
    "1.3.101.113": ("ED448", None),
}
_WEAK_HASHES = frozenset({"md2", "md5", "sha1"})

_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)

_ROLE_EKU = {"client": "clientAuth", "server": "serverAuth"}
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)


# --- parsing ---------------------------------------------------------------------------------


def _cns(name: x509.Name) -> tuple[str, ...]:
    return tuple(
        a.value if isinstance(a.value, str) else a.value.decode("utf-8", "replace")
        for a in name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    )


def _cn(name: x509.Name) -> str | None:
    cns = _cns(name)
    return cns[0] if cns else None


def _is_self_signed(cert: x509.Certificate, tbs: bytes | None = None) -> bool:
    """Same name on both sides and the signature checks out with the certificate's own key
    (over ``tbs``, the bytes as sent, when ``cert`` is a re-encoded copy)."""
    try:
        subject = canon_name(cert.subject)  # names compare as OpenSSL's X509_NAME_cmp
        return subject is not None and subject == canon_name(cert.issuer) and _signed_by(
            cert, cert, tbs)
    except Exception:  # malformed names
        return False


def _key(cert: x509.Certificate) -> tuple[str | None, int | None]:
    try:
        key = cert.public_key()
    except Exception:  # unsupported algorithm (GOST, SM2...) or a malformed key
        oid = getattr(cert, "public_key_algorithm_oid", None)
        return (oid.dotted_string if oid is not None else None), None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, None


def _signature(cert: x509.Certificate) -> tuple[str | None, str | None]:
    oid = cert.signature_algorithm_oid.dotted_string
    name, fallback_hash = _SIG_ALGS.get(oid, (oid, None))
    try:
        algo = cert.signature_hash_algorithm
        digest = algo.name if algo is not None else None
    except Exception:  # UnsupportedAlgorithm: md2, odd PSS parameters...
        digest = fallback_hash
    return name, digest


def _key_usage(ku: x509.KeyUsage) -> tuple[str, ...]:
    out = []
    for name in _KEY_USAGE_FIELDS:
        try:
            if getattr(ku, name):
                out.append(name)
        except ValueError:  # encipher_only/decipher_only are undefined without key_agreement
            pass
    return tuple(out)


# otherName types `openssl x509 -text` names, with the one string type it prints of each
_OTHER_NAMES = {
    "1.3.6.1.5.5.7.8.9": ("SmtpUTF8Mailbox", 0x0C),
    "1.3.6.1.5.5.7.8.5": ("XmppAddr", 0x0C),
    "1.3.6.1.5.5.7.8.7": ("SRVName", 0x16),
    "1.3.6.1.4.1.311.20.2.3": ("UPN", 0x0C),
    "1.3.6.1.5.5.7.8.8": ("NAIRealm", 0x0C),
}
_OTHER_LONG_NAMES = {"1.3.6.1.5.5.7.8.3": "Permanent Identifier"}
# Directory-name attributes OpenSSL knows by name, as (its short name, which
# X509_NAME_oneline writes, its long name, which a registered ID is shown by): those of mail
# servers' and EV certificates, not OpenSSL's whole table (others are shown dotted)
_ATTRIBUTE_NAMES = {
    "2.5.4.6": ("C", "countryName"), "2.5.4.8": ("ST", "stateOrProvinceName"),
    "2.5.4.7": ("L", "localityName"), "2.5.4.10": ("O", "organizationName"),
    "2.5.4.11": ("OU", "organizationalUnitName"), "2.5.4.3": ("CN", "commonName"),
    "1.2.840.113549.1.9.1": ("emailAddress", "emailAddress"),
    "2.5.4.5": ("serialNumber", "serialNumber"),
    "0.9.2342.19200300.100.1.25": ("DC", "domainComponent"),
    "0.9.2342.19200300.100.1.1": ("UID", "userId"),
    "0.9.2342.19200300.100.1.3": ("mail", "rfc822Mailbox"),
    "2.5.4.9": ("street", "streetAddress"), "2.5.4.12": ("title", "title"),
    "2.5.4.42": ("GN", "givenName"), "2.5.4.4": ("SN", "surname"),
    "2.5.4.17": ("postalCode", "postalCode"), "2.5.4.43": ("initials", "initials"),
    "2.5.4.44": ("generationQualifier", "generationQualifier"),
    "2.5.4.46": ("dnQualifier", "dnQualifier"), "2.5.4.65": ("pseudonym", "pseudonym"),
    "2.5.4.97": ("organizationIdentifier", "organizationIdentifier"),
    "2.5.4.15": ("businessCategory", "businessCategory"),
    "2.5.4.13": ("description", "description"), "2.5.4.41": ("name", "name"),
    "2.5.4.20": ("telephoneNumber", "telephoneNumber"),
    "1.2.840.113549.1.9.2": ("unstructuredName", "unstructuredName"),
    "1.3.6.1.4.1.311.60.2.1.1": ("jurisdictionL", "jurisdictionLocalityName"),
    "1.3.6.1.4.1.311.60.2.1.2": ("jurisdictionST", "jurisdictionStateOrProvinceName"),
    "1.3.6.1.4.1.311.60.2.1.3": ("jurisdictionC", "jurisdictionCountryName"),
}  # fmt: skip
# Long names of the other OIDs a mail certificate's registeredID names: key purposes and the
# otherName types (OBJ_obj2txt: a known OID by its long name, any other dotted)
_LONG_NAMES = {
    "1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
    "1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection", "2.5.29.37.0": "Any Extended Key Usage",
    "1.3.6.1.4.1.311.20.2.3": "Microsoft User Principal Name",
    "1.3.6.1.5.5.7.8.9": "Smtp UTF8 Mailbox", "1.3.6.1.5.5.7.8.7": "SRVName",
    "1.3.6.1.5.5.7.8.5": "XmppAddr", "1.3.6.1.5.5.7.8.3": "Permanent Identifier",
    **{oid: long for oid, (_, long) in _ATTRIBUTE_NAMES.items()},
}  # fmt: skip
_UNHELD_PREFIX = {0x81: "email:", 0x82: "DNS:", 0x86: "URI:"}


# `openssl x509 -text` writes a SAN's directory name into a buffer of 256 octets
_ONELINE_ROOM = 255
# the octets of a string type whose letters are not one octet each (by its universal tag), as
# OpenSSL prints them; ``cryptography`` keeps the tag of a name's value only as ``_type``
_ONELINE_CODECS = {30: "utf-16-be", 28: "utf-32-be"}  # BMPString, UniversalString


def _oneline(name: x509.Name) -> str:
    """A directory name as X509_NAME_oneline writes it (see `_oneline_of`)."""
    return _oneline_of(tuple(
        tuple((attr.oid.dotted_string, attr.value if isinstance(attr.value, bytes)
               else attr.value.encode(_ONELINE_CODECS.get(
                   getattr(getattr(attr, "_type", None), "value", None), "utf-8")))
              for attr in rdn)
        for rdn in name.rdns))


def _oneline_of(rdns: Iterable[Iterable[tuple[str, bytes]]]) -> str:
    """RDNs of (dotted type, value's octets) as X509_NAME_oneline writes them: ``/C=US/CN=x``,
    the attributes of one multi-valued RDN joined by ``+``, a ``/`` or ``+`` in a value
    escaped by ``\\``, and every octet outside printable ASCII as ``\\xHH``.  Cut as OpenSSL
    cuts it: the attributes up to the first whose text would pass 255 characters, so a long
    name reads as the one `openssl x509 -text` prints (empty when its first attribute is too
    long)."""
    out = []
    size = 0
    for rdn in rdns:
        for i, (oid, value) in enumerate(rdn):
            text = "".join("\\" + chr(c) if c in b"/+" else chr(c) if 0x20 <= c <= 0x7E
                           else f"\\x{c:02X}" for c in value)
            part = f"{'+' if i else '/'}{_ATTRIBUTE_NAMES.get(oid, (oid,))[0]}={text}"
            size += len(part)
            if size > _ONELINE_ROOM:
                return "".join(out)
            out.append(part)
    return "".join(out)


def _octets(raw: bytes) -> str:
    """An IA5String's octets as `openssl x509 -text` prints them (as they are), written so
    that no value can pass for another: printable ASCII as itself, every other octet, and the
    backslash, as ``\\xHH`` (not decoded: ``p\\xC3\\xA9m`` is no ASCII name, and an
    octet UTF-8 does not hold is no U+FFFD)."""
    if raw.isascii() and (text := raw.decode("ascii")).isprintable() and "\\" not in text:
        return text  # the common case, told in C without a look at each octet
    return "".join(chr(c) if 0x20 <= c <= 0x7E and c != 0x5C else f"\\x{c:02X}" for c in raw)


def _letters(raw: bytes) -> str:
    """A UTF8String's octets as its letters when they are UTF-8 (what a terminal shows of
    OpenSSL's octets), each octet of a character that is not printable, and of the backslash,
    as ``\\xHH``; as `_octets` when they are not UTF-8 (no U+FFFD in their place)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _octets(raw)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(ch if ch.isprintable() and ch != "\\"
                   else "".join(f"\\x{b:02X}" for b in ch.encode())
                   for ch in text)


def _other_name(gn: x509.OtherName) -> str:
    """An otherName as `openssl x509 -text` names it: its type, then its text when a string
    of the type OpenSSL prints, else ``<unsupported>``."""
    oid = gn.type_id.dotted_string
    name, wanted = _OTHER_NAMES.get(oid, (_OTHER_LONG_NAMES.get(oid, oid), None))
    text = "<unsupported>"
    with contextlib.suppress(DerError, IndexError):
        tag, body, end = element(gn.value, 0, len(gn.value))
        if tag == wanted or wanted is None and tag in (0x0C, 0x16):
            raw = gn.value[body:end]
            text = _letters(raw) if tag == 0x0C else _octets(raw)
    return f"othername: {name}::{text}"


def _shown(gn: x509.GeneralName) -> str | None:
    """A SAN entry other than a DNS name or an IP address, as `openssl x509 -text` names it."""
    if isinstance(gn, x509.RFC822Name):
        return f"email:{_octets(gn.value.encode('utf-8', 'surrogateescape'))}"
    if isinstance(gn, x509.UniformResourceIdentifier):
        return f"URI:{_octets(gn.value.encode('utf-8', 'surrogateescape'))}"
    if isinstance(gn, x509.DirectoryName):
        return f"DirName:{_oneline(gn.value)}"
    if isinstance(gn, x509.RegisteredID):
        oid = gn.value.dotted_string
        return f"Registered ID:{_LONG_NAMES.get(oid, oid)}"
    if isinstance(gn, x509.OtherName):
        return _other_name(gn)
    return None


def _san_other(cert: x509.Certificate, san: Iterable[x509.GeneralName]) -> tuple[str, ...]:
    """The entries of ``san`` other than DNS names and IP addresses, with those of ``cert``'s
    subjectAltName that ``cryptography`` does not hold in their place (`x509lenient`)."""
    held = iter(san)
    entries = x509lenient.san_entries(cert)
    if entries is None:
        return tuple(t for gn in held if (t := _shown(gn)) is not None)
    out = []
    for tag, content, why in entries:
        if why is None:  # none left when the copy could not read the SAN either
            t = _shown(gn) if (gn := next(held, None)) is not None else None
            if tag == 0xA4 and t is not None and (rdns := x509lenient.name_values(content)):
                t = "DirName:" + _oneline_of(rdns)  # the octets sent, not the copy's UTF-8
        elif tag == 0x87:
            t = f"IP Address:<invalid length={len(content)}>"
        elif tag in _UNHELD_PREFIX:
            t = _UNHELD_PREFIX[tag] + _octets(content)
        else:
            t = "X400Name:<unsupported>" if tag == 0xA3 else "EdiPartyName:<unsupported>"
        if t is not None:
            out.append(t)
    return tuple(out)


def _load(der: bytes) -> tuple[CertInfo, x509.Certificate | None]:
    """Parse field by field so one broken extension does not hide the subject or the dates."""
    errors: list[str] = []
    blank: dict[str, Any] = dict(
        sha256=hashlib.sha256(der).hexdigest(),
        sha1=hashlib.sha1(der).hexdigest().upper(),
        size=len(der),
        subject=None,
        issuer=None,
        subject_cn=None,
        subject_cns=(),
        issuer_cn=None,
        san_dns=(),
        san_ip=(),
        serial=None,
        not_before=None,
        not_after=None,
        key_type=None,
        key_bits=None,
        signature_algorithm=None,
        signature_hash=None,
        key_usage=(),
        ext_key_usage=None,
        is_ca=None,
        self_signed=False,
        parse_error=None,
    )
    try:
        loaded = x509lenient.load(der)
    except Exception as exc:  # hostile input: anything the parser throws is a parse error
        blank["parse_error"] = _one_line(f"not a DER certificate: {exc}")
        return CertInfo(**blank), None
    cert = loaded.cert

    def field(label: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            errors.append(f"{label}: {exc}")
            return None

    f = blank
    f["subject"] = field("subject", lambda: cert.subject.rfc4514_string())
    f["issuer"] = field("issuer", lambda: cert.issuer.rfc4514_string())
    f["subject_cns"] = field("subject", lambda: _cns(cert.subject)) or ()
    f["subject_cn"] = f["subject_cns"][0] if f["subject_cns"] else None
    f["issuer_cn"] = field("issuer", lambda: _cn(cert.issuer))
    serial = field("serial", lambda: cert.serial_number)
    if serial is not None:
        f["serial"] = f"{serial:X}" if serial >= 0 else f"-{-serial:X}"
    f["not_before"] = field("validity", lambda: cert.not_valid_before_utc)
    f["not_after"] = field("validity", lambda: cert.not_valid_after_utc)
    if loaded.fixes:  # a time OpenSSL cannot compare: no validity to judge it by
        bad = x509lenient.malformed_times(der)
        f["not_before"] = None if bad[0] else f["not_before"]
        f["not_after"] = None if bad[1] else f["not_after"]
    f["key_type"], f["key_bits"] = _key(cert)
    sig = field("signature", lambda: _signature(cert))
    if sig is not None:
        f["signature_algorithm"], f["signature_hash"] = sig
    f["self_signed"] = _is_self_signed(cert, loaded.tbs)
    exts = field("extensions", lambda: x509lenient.extensions(cert)[0])
    sent = x509lenient.usages(cert)  # e.g. none, or OIDs the copy left out: as sent
    if exts is not None:
        for ext in exts:
            value = ext.value
            if isinstance(value, x509.SubjectAlternativeName):
                f["san_dns"] = tuple(value.get_values_for_type(x509.DNSName))
                f["san_ip"] = tuple(str(ip) for ip in value.get_values_for_type(x509.IPAddress))
                f["san_other"] = _san_other(cert, value)
            elif isinstance(value, x509.KeyUsage):
                f["key_usage"] = _key_usage(value)
                lone = x509lenient.lone_agreement_bits(cert)  # cleared in the copy: as sent
                f["key_usage"] += tuple(n for n in lone if n not in f["key_usage"])
            elif isinstance(value, x509.ExtendedKeyUsage):
                f["ext_key_usage"] = tuple(
                    _EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in value
                )
            elif isinstance(value, x509.BasicConstraints):
                f["is_ca"] = value.ca
    if sent is not None:
        f["ext_key_usage"] = tuple(_EKU_NAMES.get(o, o) for o in sent)
    sans = field("extensions", lambda: x509lenient.copies(cert, "2.5.29.17"))
    if sans:
        f["san_repeated"] = True
        f["san_dns"] = tuple(n for s in sans for n in s.get_values_for_type(x509.DNSName))
        f["san_ip"] = tuple(str(ip) for s in sans for ip in s.get_values_for_type(x509.IPAddress))
        f["san_other"] = tuple(t for s in sans for gn in s if (t := _shown(gn)) is not None)
    if errors:
        # Dedupe labels that share one underlying failure (subject + subject_cn).
        f["parse_error"] = _one_line("; ".join(dict.fromkeys(errors)))
    return CertInfo(**f), cert


@contextlib.contextmanager
def quiet_x509() -> Iterator[None]:
    """Silence what cryptography warns of a certificate: its deprecation warnings (e.g. a
    non-positive serial) and the UserWarning of a name it would not build (a CN over 64
    characters, a country code not of two).  Certificates from the wire are judged here and
    reported as data, not as warnings on stderr.  fastcap's own code warns of nothing in
    this scope, so the whole category is ignored (the deprecation warning is one of its
    kind)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def load_certificate(der: bytes) -> x509.Certificate | None:
    """``der`` parsed, or None when cryptography refuses it; quiet as :func:`quiet_x509`.
    A certificate that is not strict DER but that OpenSSL reads comes back as its re-encoded
    copy (`x509lenient`): its fields are right, its bytes are not those sent.

    For the writers that show a certificate from the wire (PEM export, Zeek's x509.log,
    ``follow``): what is odd about it is judged here, so they print no warning of their own,
    and any exception hostile bytes raise means "unparseable", as in :func:`cert_info`."""
    with quiet_x509():
        try:
            return x509lenient.load(der).cert
        except Exception:
            return None


def cert_info(der: bytes) -> CertInfo:
    """Describe one DER certificate; never raises (a malformed one carries ``parse_error``)."""
    with quiet_x509():
        return _load(der)[0]


# --- names -----------------------------------------------------------------------------------


def name_matches(info: CertInfo, expected: str) -> bool:
    """Whether a server certificate answers to the host name ``expected``: its SAN DNS names,
    else each subject CN, matched as OpenSSL's X509_check_host does with Postfix's flags
    (`x509names.host_matches`).  An ``expected`` wildcard is compared literally."""
    names = _san_dns(info) or info.subject_cns or ((info.subject_cn,) if info.subject_cn else ())
    return any(host_matches(n, expected) for n in names)


def sender_names(info: CertInfo) -> tuple[str, ...]:
    """The names Exchange Online holds against an inbound connector's
    TlsSenderCertificateName: the SAN DNS names and every subject CN, together."""
    cns = info.subject_cns or ((info.subject_cn,) if info.subject_cn else ())
    return tuple(dict.fromkeys((*_san_dns(info), *cns)))


def _san_dns(info: CertInfo) -> tuple[str, ...]:
    """The SAN DNS names a name check finds: none when the SAN is present more than once
    (OpenSSL's X509_get_ext_d2i then finds none; the CNs are checked instead)."""
    return () if info.san_repeated else info.san_dns


def sender_name_matches(info: CertInfo, expected: str) -> bool:
    """Whether a client certificate fits ``expected`` as an inbound connector's
    TlsSenderCertificateName (`x509names.sender_name_fits`)."""
    return sender_name_fits(sender_names(info), expected)


# --- trust -----------------------------------------------------------------------------------


class TrustStore:
    """Trust anchors, both as certificates (for our own diagnosis) and as a verifier ``Store``.

    Immutable by convention: :meth:`plus` returns a new store.  A root that is not strict DER
    but that OpenSSL loads is held as its re-encoded copy (`x509lenient`), as a certificate
    sent is: its fingerprint is the copy's, and `written` keeps the bytes of the file.
    """

    __slots__ = ("roots", "store", "source", "_fingerprints", "_ders", "_by_subject",
                 "_anchor_index", "_cache", "_subjects", "written")

    def __init__(self, roots: Iterable[x509.Certificate], source: str = "",
                 written: Mapping[bytes, bytes] | None = None) -> None:
        """``written``: a re-encoded root's DER -> its DER as the store's file holds it."""
        unique: dict[bytes, x509.Certificate] = {}
        for cert in roots:
            unique.setdefault(cert.fingerprint(hashes.SHA256()), cert)
        self._fill(unique, source, written=written)

    def _fill(self, unique: dict[bytes, x509.Certificate], source: str,
              cache: anchorcache.Entry | None = None,
              subjects: tuple[tuple | None, ...] | None = None,
              written: Mapping[bytes, bytes] | None = None) -> None:
        """The store of ``unique`` (SHA-256 fingerprint -> root, in order); ``cache`` is where
        a bundle file's parse is kept, ``subjects`` the roots' keys when read from there."""
        self._cache = cache
        self._subjects = subjects
        self.written: Mapping[bytes, bytes] = dict(written or {})
        self.roots: tuple[x509.Certificate, ...] = tuple(unique.values())
        self.source = source
        self._fingerprints = tuple(unique)  # SHA-256 of each root, in the order of roots
        self._ders = frozenset(unique)
        self._by_subject: dict[tuple | None, list[x509.Certificate]] | None = None
        self._anchor_index: EvidenceIndex | None = None
        # cryptography refuses an empty Store; with no anchors nothing can verify anyway.
        self.store: xv.Store | None = xv.Store(list(self.roots)) if self.roots else None

    def __len__(self) -> int:
        return len(self.roots)

    def __repr__(self) -> str:
        return f"TrustStore({len(self.roots)} roots from {self.source or '?'})"

    def contains(self, cert: x509.Certificate) -> bool:
        """This exact certificate is an anchor (e.g. a self-signed one the admin trusts)."""
        return cert.fingerprint(hashes.SHA256()) in self._ders

    def issuer_of(self, cert: x509.Certificate,
                  tbs: bytes | None = None) -> x509.Certificate | None:
        """An anchor whose name and key sign ``cert`` (a same-named anchor with another key is
        not the issuer: re-keyed roots are a real cause of 'untrusted')."""
        issuer = _name_of(cert, "issuer")
        if issuer is None:
            return None
        for candidate in self._named(issuer):
            if _signed_by(cert, candidate, tbs):
                return candidate
        return None

    def _named(self, name: x509.Name) -> list[x509.Certificate]:
        """The anchors whose subject equals ``name`` as OpenSSL compares names (canonical
        form: ASCII case and runs of spaces do not count), in store order."""
        if self._by_subject is None:
            by_key: dict[tuple | None, list[x509.Certificate]] = {}
            for cert, key in zip(self.roots, self.subject_keys(), strict=True):
                by_key.setdefault(key, []).append(cert)
            self._by_subject = by_key
        key = canon_name(name)
        return list(self._by_subject.get(key, ())) if key is not None else []

    def subject_keys(self) -> tuple[tuple | None, ...]:
        """Each root's canonical subject (`x509path.subject_key`), worked out once per store
        or read with the cached bundle."""
        if self._subjects is None:
            with quiet_x509():
                self._subjects = tuple(map(x509path.subject_key, self.roots))
        return self._subjects

    def anchor_index(self) -> EvidenceIndex:
        """The anchors indexed by organization, named domains and known intermediates, built
        on first need (most captures never ask) and then kept: it depends on the store alone,
        so a bundle file's index is cached with its parse."""
        if self._anchor_index is None:
            from .issuer_evidence import EvidenceIndex

            index = None
            cache = self._cache
            if cache is not None and cache.payload is not None and "index" in cache.payload:
                try:
                    index = anchorcache.index_from_plain(cache.payload["index"], self.roots,
                                                         self.subject_keys())
                except (KeyError, TypeError, ValueError, IndexError):
                    index = None
            if index is None:
                index = EvidenceIndex.build(self.roots, self.issuer_of)
                if cache is not None:
                    anchorcache.save(cache, self.roots, self.subject_keys(), index,
                                     self.written)
            self._anchor_index = index
        return self._anchor_index

    def issuer_evidence(self, cert: x509.Certificate) -> Finding:
        """What ties the issuer of ``cert``, which the store does not hold, to the store;
        nothing, when the certificate's fields are too odd to read."""
        from .issuer_evidence import Finding, find_evidence

        try:
            return find_evidence(cert, self.anchor_index())
        except Exception:  # hostile input: no evidence, never a crash
            return Finding(())

    @classmethod
    def _from_pem_bytes(cls, data: bytes, source: str, *, strict: bool) -> TrustStore:
        certs = []
        written: dict[bytes, bytes] = {}
        with quiet_x509():  # e.g. a bundled root's non-positive serial
            for i, block in enumerate(_PEM_CERT.findall(data)):
                try:
                    certs.append(x509.load_pem_x509_certificate(block))
                except Exception as exc:
                    # what OpenSSL loads and cryptography refuses, as of a certificate sent
                    cert = _lenient_root(_pem_body(block), written)
                    if cert is not None:
                        certs.append(cert)
                    elif strict:
                        raise ValueError(
                            f"{source}: certificate #{i + 1} is malformed: {exc}") from exc
        return cls(certs, source, written)

    @classmethod
    def _from_bundle_file(cls, path: str) -> TrustStore:
        """A CA bundle's roots (bad blocks skipped), from the per-user cache when it holds this
        very file's parse (`anchorcache`), else parsed and then cached."""
        data = Path(path).read_bytes()
        entry = anchorcache.lookup(path, data)
        if entry.payload is not None:
            store = cls._from_cache(entry, path)
            if store is not None:
                return store
        store = cls._from_pem_bytes(data, path, strict=False)
        store._cache = entry = anchorcache.Entry(entry.file, entry.key, None)
        anchorcache.save(entry, store.roots, store.subject_keys(), None, store.written)
        return store

    @classmethod
    def _from_cache(cls, entry: anchorcache.Entry, path: str) -> TrustStore | None:
        """The store as cached, or None when the cached parse does not load."""
        assert entry.payload is not None
        try:
            unique: dict[bytes, x509.Certificate] = {}
            written: dict[bytes, bytes] = {}
            with quiet_x509():
                for der in anchorcache.ders(entry.payload):
                    try:
                        cert = x509.load_der_x509_certificate(der)
                        fingerprint = hashlib.sha256(der).digest()
                    except ValueError:  # a root read from its re-encoded copy
                        cert = _lenient_root(der, written)
                        if cert is None:
                            return None
                        fingerprint = cert.fingerprint(hashes.SHA256())
                    unique.setdefault(fingerprint, cert)
            subjects = anchorcache.subjects(entry.payload, len(unique))
        except Exception:
            return None
        store = cls.__new__(cls)
        store._fill(unique, path, entry, None if subjects is None else tuple(subjects), written)
        return store

    @classmethod
    def mozilla(cls) -> TrustStore:
        """The Mozilla roots shipped by certifi: close to what Exchange Online trusts."""
        return cls._from_bundle_file(_certifi_bundle())

    @classmethod
    def system(cls) -> TrustStore:
        """The operating system's bundle (Debian path first, then what OpenSSL was built with)."""
        import ssl  # several ms to import, and only this store needs it

        paths = ssl.get_default_verify_paths()
        files = [
            "/etc/ssl/certs/ca-certificates.crt",
            paths.cafile,
            paths.openssl_cafile,
        ]
        tried = []
        for f in files:
            if f and f not in tried:
                tried.append(f)
                if os.path.isfile(f):
                    store = cls._from_bundle_file(f)
                    if store.roots:
                        return store
        for d in (paths.capath, paths.openssl_capath):
            if d and os.path.isdir(d):
                tried.append(d)
                data = b"".join(_read_quietly(p) for p in sorted(Path(d).iterdir()) if p.is_file())
                store = cls._from_pem_bytes(data, d, strict=False)
                if store.roots:
                    return store
        raise ValueError(
            "no system CA bundle found (tried: " + ", ".join(tried or ["nothing"]) + ")"
        )

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Anchors from a PEM bundle (``--ca-file``); a lone DER certificate is accepted too."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read CA file: {exc.strerror or exc}") from exc
        return cls.from_bundle(data, str(path))

    @classmethod
    def from_bundle(cls, data: bytes, path: str) -> TrustStore:
        """Like from_pem_file, for a bundle already read (sent to workers as bytes, so their
        machines need not see the file); `path` names it in errors."""
        if b"-----BEGIN" not in data:
            written: dict[bytes, bytes] = {}
            with quiet_x509():  # as a PEM bundle's certificates are read
                cert = _lenient_root(data, written)
            if cert is None:
                raise ValueError(f"{path}: neither PEM nor a DER certificate")
            return cls([cert], str(path), written)
        if b"-----BEGIN TRUSTED CERTIFICATE-----" in data:
            # OpenSSL reads this form with its trust and reject settings; taking the
            # certificate without them could trust what the file refuses.
            raise ValueError(f"{path}: holds a TRUSTED CERTIFICATE (OpenSSL's -trustout form), "
                             "whose trust settings fastcap does not read: give the plain "
                             "certificate (openssl x509 -in FILE -out plain.pem)")
        store = cls._from_pem_bytes(data, str(path), strict=True)
        if not store.roots:
            raise ValueError(f"{path}: no PEM certificate found")
        return store

    def plus(self, other: TrustStore) -> TrustStore:
        """Both stores' anchors, this one's first, each once.  Built from what the two already
        know: the fingerprints, and the roots' canonical subjects when this store has them
        (the Mozilla store reads them with its cached parse).  Hashing and decoding its ~120
        roots again cost ~7 ms of every ``--ca-file`` run's start-up."""
        sources = " + ".join(s for s in (self.source, other.source) if s)
        unique: dict[bytes, x509.Certificate] = {}
        keys: dict[bytes, tuple | None] = {}
        known = self._subjects is not None  # else worked out when first needed, as before
        for store in (self, other):
            subjects = store.subject_keys() if known else (None,) * len(store.roots)
            for fp, cert, key in zip(store._fingerprints, store.roots, subjects, strict=True):
                if fp not in unique:
                    unique[fp], keys[fp] = cert, key
        merged = TrustStore.__new__(TrustStore)
        merged._fill(unique, sources, None, tuple(keys.values()) if known else None,
                     {**other.written, **self.written})
        return merged


def _pem_body(block: bytes) -> bytes:
    """The bytes between a PEM block's two armour lines; empty when they are not base64."""
    try:
        return base64.b64decode(block[27:-25])
    except ValueError:
        return b""


def _lenient_root(der: bytes, written: dict[bytes, bytes]) -> x509.Certificate | None:
    """``der`` loaded as `x509lenient` loads a certificate sent, or None when it does not
    load; a re-encoded copy's DER is noted in ``written`` with the bytes it stands for."""
    try:
        loaded = x509lenient.load(der)
    except Exception:
        return None
    if loaded.tbs is not None:
        written[_der(loaded.cert)] = bytes(der)
    return loaded.cert


def _read_quietly(p: Path) -> bytes:
    try:
        return p.read_bytes() + b"\n"
    except OSError:
        return b""


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate,
               tbs: bytes | None = None) -> bool:
    """Signature check by hand: ``verify_directly_issued_by`` refuses SHA-1 ECDSA, and old
    SHA-1 roots and leaves are exactly what must still be recognised.  ``tbs``: the signed
    bytes as sent, when ``cert`` is a re-encoded copy (`x509lenient`)."""
    try:
        key = issuer.public_key()
        sig, tbs = cert.signature, tbs or cert.tbs_certificate_bytes
        digest = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, tbs, cert.signature_algorithm_parameters, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, tbs, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(sig, tbs, digest)
        else:
            return False
        return True
    except Exception:  # unsupported algorithm, bad signature, malformed fields
        return False


# --- analysis --------------------------------------------------------------------------------


def _also(path: x509path.PathResult, said: tuple[int | None, int | None],
          pinned: bool = False) -> str:
    """The errors OpenSSL lists beside the one a verdict states (``said``: code, depth), in
    its order: `openssl verify` goes on after those its callback forgives, and an admin who
    fixes only the first would meet the next one at the next try."""
    if pinned and path.stage == "build":  # the pinned leaf's missing path is forgiven
        return ""
    rest = [line for (code, depth, _, _), line in zip(path.errors, path.lines, strict=True)
            if (code, depth) != said]
    return "; OpenSSL also finds: " + "; ".join(rest) if rest else ""


def _as_said(path: x509path.PathResult, role: str) -> str:
    """OpenSSL's first error on a chain it built no path from, as `openssl verify` prints it
    and as Postfix logs it (tls_verify.c; the peer's name and address left out), so that the
    verdict can be found in either.  Empty for an error neither would give: fastcap's own
    bound on a path's length, or a failure of the check itself."""
    code, depth = path.code, path.depth
    if code is None or depth is None or code == x509path.CERT_CHAIN_TOO_LONG:
        return ""
    concerned = path.path[depth] if 0 <= depth < len(path.path) else None
    said = (f'; openssl verify: "error {code} at {depth} depth lookup: {path.reason}"'
            + (f" ({_rfc4514(concerned, 'subject')})" if concerned is not None else ""))
    if code == x509path.DEPTH_ZERO_SELF_SIGNED_CERT:
        logged = "certificate verification failed for …: self-signed certificate"
    elif code in (x509path.SELF_SIGNED_CERT_IN_CHAIN, x509path.UNABLE_TO_GET_ISSUER_CERT_LOCALLY):
        try:
            issuer = _oneline(concerned.issuer) if concerned is not None else "<unknown>"
        except Exception:  # a name that does not decode
            issuer = "?"
        logged = f"certificate verification failed for …: untrusted issuer {issuer}"
    else:  # Postfix names the certificate's purpose: a CA's above the leaf
        logged = (f"{'CA' if depth else role} certificate verification failed for …:"
                  f" num={code}:{path.reason}")
    return f'{said}; Postfix: "{logged}"'


def _validity(info: CertInfo, at: dt.datetime) -> str:
    if info.not_before is None or info.not_after is None:
        return "unknown"
    if at < info.not_before:
        return "not_yet_valid"
    if at >= info.not_after:  # OpenSSL: a certificate is expired at its notAfter second
        return "expired"
    return "valid"


# EKU entries OpenSSL accepts for each role: anyExtendedKeyUsage does not count (OpenSSL 3.0,
# hence Postfix and Exim, refuse such a leaf); the old Server Gated Crypto OIDs do for servers.
_ROLE_EKU_OK = {
    "client": frozenset({"clientAuth"}),
    "server": frozenset({"serverAuth", "2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"}),
}


def _eku_ok(info: CertInfo, role: str) -> bool:
    eku = info.ext_key_usage
    return eku is None or not _ROLE_EKU_OK[role].isdisjoint(eku)


def _weak_key(info: CertInfo) -> str | None:
    t, bits = info.key_type, info.key_bits
    if t == "DSA" or (t == "RSA" and bits is not None and bits < 2048):
        return f"{t} {bits}"
    if t == "EC" and bits is not None and bits < 256:
        return f"{t} {bits}"
    return None


def _utc(t: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC: capture timestamps are."""
    return t.replace(tzinfo=_UTC) if t.tzinfo is None else t.astimezone(_UTC)


class Analyzer:
    """Memoised certificate analysis: 10,000 sessions presenting the same chain on the same
    capture day cost one analysis.

    ``today`` is fixed when the analyzer is made so that cached verdicts stay consistent.
    """

    def __init__(self, trust: TrustStore, *, today: dt.datetime | None = None) -> None:
        self.trust = trust
        self.today = _utc(today) if today is not None else dt.datetime.now(_UTC)
        self.cache_hits = 0
        self.cache_misses = 0
        self._results: dict[tuple[bytes, str, dt.date, int, str | None], ChainCheck] = {}
        self._parsed: dict[bytes, tuple[CertInfo, x509.Certificate | None]] = {}
        self._limits: dict[str, tuple[dt.datetime, ...]] = {}  # SHA-256 -> `_store_limits`
        # A re-encoded copy's DER -> (the DER sent, its tbsCertificate as sent), `x509lenient`.
        self._sent: dict[bytes, tuple[bytes, bytes]] = {}
        for copy, der in trust.written.items():  # roots as the store's file holds them
            if (tbs := x509lenient.original_tbs(der)) is not None:
                self._sent[copy] = (der, tbs)
        with quiet_x509():  # e.g. a bundled root's non-positive serial
            self._anchors = x509path.AnchorIndex(trust.roots, trust.subject_keys())

    def check(
        self,
        ders: Sequence[bytes],
        *,
        role: str,
        at: dt.datetime,
        expected_name: str | None = None,
    ) -> ChainCheck:
        """Verdict on ``ders`` (leaf first, as sent) at capture time ``at``; never raises on
        malformed certificates. Results are shared by every ``at`` on the same UTC day that
        lies between the same validity limits of the certificates involved (`phase`)."""
        if role not in _ROLE_EKU:
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        at = _utc(at)
        h = hashlib.sha256()
        for der in ders:
            h.update(len(der).to_bytes(4, "big"))
            h.update(der)
        key = (h.digest(), role, at.date(), self.phase(ders, at), expected_name)
        hit = self._results.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        self.cache_misses += 1
        with quiet_x509():
            result = self._analyse(ders, role, at, expected_name)
        self._results[key] = result
        return result

    def phase(self, ders: Sequence[bytes], at: dt.datetime) -> int:
        """How many notBefore and notAfter times of the certificates sent, and of the store's
        certificates a path from them can reach, have come by ``at``: a chain whose leaf (or
        root) expires at noon is valid at 11:00 and expired at 13:00, so the day's shared
        result is split there."""
        n = 0
        for der in ders:
            got = self._parsed.get(bytes(der))
            if got is None:
                with quiet_x509():
                    got = self._parse(der)
            info = got[0]
            n += info.not_before is not None and info.not_before <= at
            n += info.not_after is not None and info.not_after <= at
            limits = self._limits.get(info.sha256)
            if limits is None:
                with quiet_x509():  # a store root's facts, e.g. its non-positive serial
                    limits = self._limits[info.sha256] = self._store_limits(got[1])
            n += bisect.bisect_right(limits, at)
        return n

    def _store_limits(self, cert: x509.Certificate | None) -> tuple[dt.datetime, ...]:
        """The validity limits, sorted, of the store certificates that may issue ``cert`` or,
        by issuer name, one above it: the ones path building may choose at some time."""
        todo = [canon_name(_name_of(cert, "issuer")) if cert is not None else None]
        seen: set[tuple] = set()
        out: list[dt.datetime] = []
        while todo and len(seen) <= x509path.MAX_PATH:
            name = todo.pop()
            if name is None or name in seen:
                continue
            seen.add(name)
            for f in self._anchors.candidates(name):
                out += [t for t in (f.nb, f.na) if isinstance(t, dt.datetime)]
                todo.append(f.issuer)
        return tuple(sorted(out))

    def _parse(self, der: bytes) -> tuple[CertInfo, x509.Certificate | None]:
        der = bytes(der)
        got = self._parsed.get(der)
        if got is None:
            got = self._parsed[der] = _load(der)
            copy = _der(got[1]) if got[1] is not None else der
            tbs = x509lenient.original_tbs(der) if copy != der else None
            if tbs is not None:
                self._sent[copy] = (der, tbs)
        return got

    def _tbs(self, cert: x509.Certificate) -> bytes | None:
        """The signed bytes as sent when ``cert`` is a re-encoded copy, else None."""
        sent = self._sent.get(_der(cert)) if self._sent else None
        return sent[1] if sent else None

    def _signed(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        return _signed_by(cert, issuer, self._tbs(cert))

    def _malformed_times(self, cert: x509.Certificate) -> tuple[str | None, str | None]:
        """notBefore and notAfter as sent, each when OpenSSL's time check cannot take it (a
        re-encoded copy only: a strict certificate's are in its one form)."""
        sent = self._sent.get(_der(cert)) if self._sent else None
        return x509lenient.malformed_times(sent[0]) if sent else (None, None)

    def _sent_der(self, cert: x509.Certificate) -> bytes:
        der = _der(cert)
        sent = self._sent.get(der) if self._sent else None
        return sent[0] if sent else der

    def _analyse(
        self, ders: Sequence[bytes], role: str, at: dt.datetime, expected_name: str | None
    ) -> ChainCheck:
        parsed = [self._parse(d) for d in ders]
        infos = tuple(p[0] for p in parsed)
        weak_sigs = tuple(
            (i, c.signature_hash)
            for i, c in enumerate(infos)
            if c.signature_hash in _WEAK_HASHES and not c.self_signed
        )
        weak_keys = tuple((i, w) for i, c in enumerate(infos) if (w := _weak_key(c)))

        def verdict(problem: str | None, detail: str, **kw: Any) -> ChainCheck:
            fields: dict[str, Any] = dict(
                role=role,
                certs=infos,
                leaf_valid_at_capture="unknown",
                leaf_valid_today="unknown",
                trusted=problem is None,
                problem=problem,
                detail=detail,
                expected_name=expected_name,
                name_matches=None,
                eku_ok=None,
                weak_signatures=weak_sigs,
                weak_keys=weak_keys,
            )
            fields.update(kw)
            return ChainCheck(**fields)

        if not parsed:
            return verdict("unparseable", "no certificate was presented", trusted=None)
        leaf_info, leaf = parsed[0]
        if leaf is None or leaf_info.parse_error is not None:
            return verdict(
                "unparseable", f"leaf certificate: {leaf_info.parse_error}", trusted=None
            )

        intermediates = [c for _, c in parsed[1:] if c is not None]
        fixed = [(i, x509lenient.fixes(c, bytes(d)))
                 for i, (d, (_, c)) in enumerate(zip(ders, parsed, strict=True)) if c is not None]
        lax = [f"certificate #{i} is not strict DER ({'; '.join(why)})" for i, how in fixed
               if (why := [w for w in how if w != x509lenient.TELETEX_LATIN1])]
        lax += [f"certificate #{i} holds {x509lenient.TELETEX_LATIN1}" for i, how in fixed
                if x509lenient.TELETEX_LATIN1 in how]
        # RFC 5280 allows each extension once; a repeat of one OpenSSL decodes makes the
        # certificate invalid to it, which path validation says (x509path)
        lax += [f"certificate #{i} carries extension {', '.join(twice)} more than once"
                for i, (_, c) in enumerate(parsed) if c is not None and (twice := [
                    o for o in x509lenient.repeated(c) if o not in x509lenient.OPENSSL_DECODED])]
        lax += [f"certificate #{i} carries extension {', '.join(bad)} that does not decode"
                for i, (_, c) in enumerate(parsed) if c is not None and (bad := [
                    o for o, _ in x509lenient.undecodable(c)
                    if o not in x509lenient.OPENSSL_DECODED])]
        path = self._verify(leaf, intermediates, role, at)
        path_infos = [self._parse(self._sent_der(c))[0] for c in path.path]
        # A verifier weighs digests and keys on the path it builds (OpenSSL's security
        # level checks, Exchange Online's SHA-1 refusal), not an unused extra sent beside it.
        on_path = {i.sha256 for i in path_infos}
        weak_sigs = tuple(w for w in weak_sigs if infos[w[0]].sha256 in on_path)
        weak_keys = tuple(w for w in weak_keys if infos[w[0]].sha256 in on_path)
        common = dict(
            leaf_valid_at_capture=_validity(leaf_info, at),
            leaf_valid_today=_validity(leaf_info, self.today),
            name_matches=(
                None if expected_name is None
                # the client's certificate is held to the connector, the server's to the SNI
                else sender_name_matches(leaf_info, expected_name) if role == "client"
                else name_matches(leaf_info, expected_name)
            ),
            eku_ok=_eku_ok(leaf_info, role),
            path_valid=path.ok,
            path_error=None if path.ok else path.reason,
            path_error_depth=path.depth,
            path_sha256=tuple(i.sha256 for i in path_infos),
            path_errors=tuple((x509path.REASONS[c], d) for c, d, _, _ in path.errors),
        )
        who = leaf_info.subject or "leaf"
        # The capture's day, not its time: this result serves every session of that day,
        # whichever was judged first (with -j N, that depends on the workers).
        day = at.date().isoformat()
        # OpenSSL's order, which Postfix keeps (the first error nearest the leaf): the path is
        # built first, then the purpose checked, then the dates; what follows is still said
        # beside the first (the dates and the usage have fields of their own).
        pinned = self.trust.contains(leaf)
        # OpenSSL takes a certificate naming itself as its issuer for self-signed without
        # looking at the signature, and looks for no other issuer: it says "self-signed
        # certificate" of one a CA signed, and looks for the issuer of one its own key signed
        # when the Authority Key Identifier names another key; one it takes as invalid is never
        # self-signed to it, and gets no issuer either.
        taken, why = x509path.self_signed_reading(leaf)
        if not pinned and (taken or (leaf_info.self_signed and not why
                                     and not x509path.invalid(leaf))):
            detail = (f"{who} is self-signed and not in the trust store" if leaf_info.self_signed
                      else self._taken_as_self_signed(who, leaf, intermediates, why))
            return verdict("self_signed", detail + _as_said(path, role)
                           + _also(path, (path.code, path.depth)), **common)
        if path.stage == "build" and not pinned:
            problem, detail = self._unbuilt(leaf, intermediates, at, path, lax)
            if why:  # it names itself, and OpenSSL looked for its issuer all the same
                detail = (f"{who} names itself as its issuer and its own key signed it, but"
                          f" OpenSSL does not take it as self-signed, since {why}, and looks"
                          f" for that issuer: {detail}"
                          if leaf_info.self_signed else
                          f"{who} names itself as its issuer and OpenSSL looks for that"
                          f" issuer, since {why}: {detail}")
            return verdict(problem, detail + _as_said(path, role)
                           + _also(path, (path.code, path.depth)), **common)
        # The leaf's purpose and dates are verdicts of their own; any other error on a path
        # built to an anchor (a CA's date, CA flag or path length, a name constraint) fails
        # the path whatever the leaf, and OpenSSL may print it first: said as such below.
        own = {(x509path.INVALID_PURPOSE, 0) if not common["eku_ok"] else None,
               (x509path.CERT_HAS_EXPIRED, 0), (x509path.CERT_NOT_YET_VALID, 0)}
        leaf_only = path.stage == "build" or all((c, d) in own for c, d, _, _ in path.errors)
        if not common["eku_ok"] and leaf_only:
            usages = ", ".join(leaf_info.ext_key_usage or ())
            return verdict(
                "wrong_usage",
                f"{who} lacks the {_ROLE_EKU[role]} extended key usage (has: {usages})"
                + _also(path, (x509path.INVALID_PURPOSE, 0), pinned),
                **common,
            )
        if common["leaf_valid_at_capture"] == "expired" and leaf_only:
            return verdict(
                "expired",
                f"{who} expired {_iso(leaf_info.not_after)}, before the capture ({day})"
                + _also(path, (x509path.CERT_HAS_EXPIRED, 0), pinned),
                **common,
            )
        if common["leaf_valid_at_capture"] == "not_yet_valid" and leaf_only:
            return verdict(
                "not_yet_valid",
                f"{who} is valid only from {_iso(leaf_info.not_before)}, after the capture"
                f" ({day})" + _also(path, (x509path.CERT_NOT_YET_VALID, 0), pinned),
                **common,
            )
        if pinned and (path.ok or path.stage == "build"):
            # Only the missing partial chain is forgiven: an anchor that fails its own checks
            # (purpose, a critical extension) is refused by OpenSSL all the same.
            return verdict(None, f"{who} is itself in the trust store", **common)

        if path.ok:
            # OpenSSL accepts SHA-1; Exchange Online does not, so fastcap does not either.
            below_anchor = path_infos[: len(path_infos) - path.anchors]
            weak = [(i, c) for i, c in enumerate(below_anchor) if c.signature_hash in _WEAK_HASHES]
            if weak:
                i, c = weak[0]
                return verdict(
                    "weak_signature",
                    f"certificate #{i} ({c.subject}) is signed with {c.signature_hash}, which"
                    " verifiers reject, although a trusted CA signed it",
                    **common,
                )
            notes = x509profile.notes(path.path, path.anchors, role, self.trust.store, at)
            notes += tuple(f"{n}; OpenSSL accepts it" for n in lax)
            return verdict(
                None, f"{who} chains to a trusted root", profile_notes=notes, **common
            )
        # the path reached a trusted anchor and failed a later check: name it
        detail = path.message + _also(path, (path.code, path.depth))
        detail += "; " + "; ".join(lax) + ", which OpenSSL reads" if lax else ""
        return verdict("invalid", detail, **common)

    def _unbuilt(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        at: dt.datetime,
        path: x509path.PathResult,
        lax: list[str],
    ) -> tuple[str, str]:
        """Problem and detail of a chain no path to a trusted anchor was built from."""
        if path.depth == 0 and x509path.invalid(leaf):
            # OpenSSL finds no issuer for a leaf it takes as invalid, whichever is at hand
            problem, detail = "invalid", path.message
        else:
            problem, detail = self._diagnose(leaf, intermediates, at, path)
        if lax:
            detail += "; " + "; ".join(lax) + ", which OpenSSL reads"
        return problem, detail

    def _taken_as_self_signed(self, who: str, leaf: x509.Certificate,
                              intermediates: list[x509.Certificate], why: str) -> str:
        """Detail for a certificate OpenSSL takes as self-signed, though its own key did not
        sign it: which key did, as far as the store and the chain sent tell."""
        signer = self.trust.issuer_of(leaf, self._tbs(leaf))
        if signer is not None:
            by = (f"the trusted CA {_rfc4514(signer, 'subject')} signed it, but OpenSSL never"
                  " looks for the issuer of a certificate it takes as self-signed")
        elif sent := [c for c in intermediates if self._signed(leaf, c)]:
            by = (f"{_rfc4514(sent[0], 'subject')}, sent with it, signed it, but OpenSSL never"
                  " looks for the issuer of a certificate it takes as self-signed")
        else:
            by = "a key neither sent nor in the trust store signed it"
        return (f"{who} names itself as its issuer and {why}, so OpenSSL takes it as"
                f" self-signed without checking its signature, though its own key did not sign"
                f" it: {by}; it is not in the trust store; reissued with an Authority Key"
                " Identifier naming its CA's key (or a subject other than its issuer), it would"
                " be checked against that CA")

    def _verify(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        role: str,
        at: dt.datetime,
    ) -> x509path.PathResult:
        """OpenSSL's path validation of ``leaf`` with the other certificates sent, at ``at``."""
        return x509path.validate(
            leaf, intermediates, self._anchors, role=role, at=at, signed_by=self._signed,
            malformed_times=self._malformed_times, as_sent=self._sent_der,
        )

    def _diagnose(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        at: dt.datetime,
        path: x509path.PathResult,
    ) -> tuple[str, str]:
        """Walk up the chain as sent to tell a missing intermediate from an untrusted root.
        A store issuer met on the way is named (another path the peer sent may reach it);
        else the end of the path OpenSSL built is, which its error and Postfix's log name."""
        top = path.path[-1] if path.path else None
        if path.code == x509path.SELF_SIGNED_CERT_IN_CHAIN and top is not None and not (
                _is_self_signed(top, self._tbs(top))):
            # a CA naming itself as its issuer (a re-keyed CA under its old name) that OpenSSL
            # takes as self-signed: the store or the chain may hold the CA that signed it
            taken, why = x509path.self_signed_reading(top)
            if taken:
                return "untrusted_root", "chain certificate " + self._taken_as_self_signed(
                    _rfc4514(top, "subject"), top, intermediates, why)
        current = leaf
        seen = {leaf.fingerprint(hashes.SHA256())}
        while True:
            if self.trust.issuer_of(current, self._tbs(current)) is not None:
                why = _explain_invalid(intermediates, at, path.message, seen)
                end = self._path_end(path)
                top = path.path[-1] if path.path else None
                if end is not None and end[0] == "untrusted_root" and top is not None and (
                        top.fingerprint(hashes.SHA256()) not in seen):
                    # e.g. a cross-signed copy out of date: OpenSSL took the self-signed one
                    why += ("; of the certificates sent under one name OpenSSL takes the first"
                            f" valid at the time, so its path went another way: {end[1]}")
                return "invalid", why
            if current is not leaf and _is_self_signed(current, self._tbs(current)):
                return self._path_end(path) or ("untrusted_root", _root_text(current))
            parent = None
            wanted = _name_of(current, "issuer")
            for cand in intermediates:
                fp = cand.fingerprint(hashes.SHA256())
                if fp not in seen and wanted is not None and _same_name(
                        _name_of(cand, "subject"), wanted):
                    if self._signed(current, cand):
                        parent = cand
                        break
                    parent = parent or cand
            if parent is None:
                return self._path_end(path) or _missing_issuer(
                    current, current is leaf, self.trust.issuer_evidence)
            seen.add(parent.fingerprint(hashes.SHA256()))
            current = parent

    def _path_end(self, path: x509path.PathResult) -> tuple[str, str] | None:
        """Problem and detail at the top of the path OpenSSL built, where its first error is
        about that certificate (a root not trusted, an issuer not found): of several sent
        under one name it takes the first valid at the time, which the walk above, led by
        signatures, may pass by.  None for any other error."""
        if not path.path or path.code not in (x509path.SELF_SIGNED_CERT_IN_CHAIN,
                                              x509path.UNABLE_TO_GET_ISSUER_CERT_LOCALLY):
            return None
        top = path.path[-1]
        if self.trust.issuer_of(top, self._tbs(top)) is not None:
            return "invalid", path.message
        if path.code == x509path.SELF_SIGNED_CERT_IN_CHAIN:
            return "untrusted_root", _root_text(top)
        return _missing_issuer(top, len(path.path) == 1, self.trust.issuer_evidence)


def _root_text(root: x509.Certificate) -> str:
    return f"chain ends at root {_rfc4514(root, 'subject')}, which is not in the trust store"


def _missing_issuer(
    cert: x509.Certificate, is_leaf: bool, evidence: Callable[[x509.Certificate], Finding]
) -> tuple[str, str]:
    """The issuer of ``cert`` was neither sent nor found in the store: a missing intermediate
    only when evidence ties it to a trusted hierarchy, else an untrusted (private) CA."""
    issuer = _rfc4514(cert, "issuer")
    whose = "" if is_leaf else f" of chain certificate {_rfc4514(cert, 'subject')}"
    finding = evidence(cert)
    if finding.tied:
        why = "; ".join(e.text for e in finding.evidence)
        return "missing_intermediate", (
            f"issuer {issuer}{whose} was neither sent nor found in the trust store, but {why}"
        )
    if not is_leaf:
        return "untrusted_root", (
            f"chain ends at issuer {issuer}, which is not in the trust store"
        )
    why = finding.against or (
        "no known intermediate, organization or caIssuers host ties it to a trusted root"
    )
    return "untrusted_root", (
        f"issued by {issuer}, which was not sent and is not a trusted CA: {why} (a private CA)"
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _same_name(a: x509.Name | None, b: x509.Name) -> bool:
    """Equal as OpenSSL compares names (canonical form), not as ``x509.Name`` does."""
    key = canon_name(b) if a is not None else None
    return key is not None and canon_name(a) == key


def _name_of(cert: x509.Certificate, which: str) -> x509.Name | None:
    """``cert.subject`` or ``cert.issuer``; None when it does not decode.  cryptography decodes
    names lazily, so a certificate that loaded can still raise here on hostile bytes (an
    unknown string tag raises KeyError, for one)."""
    try:
        return getattr(cert, which)
    except Exception:
        return None


def _rfc4514(cert: x509.Certificate, which: str) -> str:
    try:
        return getattr(cert, which).rfc4514_string()
    except Exception:
        return "?"


def _explain_invalid(intermediates: list[x509.Certificate], at: dt.datetime, error: str,
                     walked: set[bytes]) -> str:
    """Name the sent CA certificate that was out of date, the usual cause behind the verifier's
    terse 'not valid at validation time'.  Only one on the way up from the leaf (``walked``,
    SHA-256 fingerprints) counts: a stale extra the peer also sent is not why."""
    for i, cert in enumerate(intermediates, start=1):
        if cert.fingerprint(hashes.SHA256()) not in walked:
            continue
        try:
            if at < cert.not_valid_before_utc:
                state = "not yet valid"
            elif at >= cert.not_valid_after_utc:  # expired at its notAfter, as in OpenSSL
                state = "expired"
            else:
                continue
        except Exception:  # unreadable validity: leave it to the verifier's message
            continue
        return f"chain certificate #{i} ({_rfc4514(cert, 'subject')}) was {state} at capture time"
    return error
