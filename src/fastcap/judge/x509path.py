"""Certificate path validation as the mail servers' OpenSSL does it, not as browsers do.

Postfix and Exim hand the peer's chain to OpenSSL's ``X509_verify_cert`` with default flags
(trusted-first, no X509_STRICT, no partial chains); Exchange's CryptoAPI follows the same
RFC 5280 rules.  ``cryptography``'s verifier adds the CA/Browser-Forum profile on top, which
rejects certificates that every MTA accepts (no Authority Key Identifier, no SAN on a client
certificate), so fastcap builds and checks the path itself, step for step as OpenSSL 3.0:

1. build: issuer by name and key identifiers, the trust store first, then what the peer sent;
   among several candidates the first valid at the verification time wins (signatures are
   not looked at while choosing, as in OpenSSL);
2. extensions: unhandled critical extensions, CA-ness (basicConstraints, keyUsage), purpose
   (EKU, keyUsage, Netscape cert type) on every certificate, pathLenConstraint;
3. signatures and validity, from the anchor down;
4. name constraints of the CAs on the names below them (``x509names``).

``cryptography`` still parses the certificates; signatures are checked by the caller's
function (x509check accepts SHA-1 there, as OpenSSL does).  Nothing here raises on hostile
certificates, and the work is bounded (path length, candidates per name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509

from ..proto.tls.der import DerError, element, elements, encode
from . import x509lenient, x509names
from .x509names import canon_name

__all__ = ["AFTER_BUILD_REASONS", "AnchorIndex", "PathResult", "validate"]

MAX_PATH = 10  # certificates in a path; OpenSSL allows 101, real chains have 2-4
MAX_CANDIDATES = 16  # issuers tried per name (store and sent alike)
MAX_SENT = 32  # certificates of a peer's chain considered as intermediates

# X509_V_ERR numbers and texts, as `openssl verify` prints them.
UNABLE_TO_GET_ISSUER_CERT = 2
CERT_SIGNATURE_FAILURE = 7
CERT_NOT_YET_VALID = 9
CERT_HAS_EXPIRED = 10
ERROR_IN_CERT_NOT_BEFORE_FIELD = 13
ERROR_IN_CERT_NOT_AFTER_FIELD = 14
DEPTH_ZERO_SELF_SIGNED_CERT = 18
SELF_SIGNED_CERT_IN_CHAIN = 19
UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
CERT_CHAIN_TOO_LONG = 22
INVALID_CA = 79
PATH_LENGTH_EXCEEDED = 25
INVALID_PURPOSE = 26
UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY = 6
KEYUSAGE_NO_CERTSIGN = 32
UNHANDLED_CRITICAL_EXTENSION = 34

REASONS = {
    **x509names.REASONS,
    UNABLE_TO_GET_ISSUER_CERT: "unable to get issuer certificate",
    UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: "unable to decode issuer public key",
    CERT_SIGNATURE_FAILURE: "certificate signature failure",
    CERT_NOT_YET_VALID: "certificate is not yet valid",
    CERT_HAS_EXPIRED: "certificate has expired",
    ERROR_IN_CERT_NOT_BEFORE_FIELD: "format error in certificate's notBefore field",
    ERROR_IN_CERT_NOT_AFTER_FIELD: "format error in certificate's notAfter field",
    DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
    SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in certificate chain",
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "unable to get local issuer certificate",
    CERT_CHAIN_TOO_LONG: "certificate chain too long",
    INVALID_CA: "invalid CA certificate",
    PATH_LENGTH_EXCEEDED: "path length constraint exceeded",
    INVALID_PURPOSE: "unsuitable certificate purpose",
    KEYUSAGE_NO_CERTSIGN: "key usage does not include certificate signing",
    UNHANDLED_CRITICAL_EXTENSION: "unhandled critical extension",
}

# What the default callback of `openssl verify` forgives, going on with the next check.
FORGIVEN = frozenset({CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, INVALID_CA,
                      PATH_LENGTH_EXCEEDED, INVALID_PURPOSE, UNHANDLED_CRITICAL_EXTENSION})

_TIME_ERRORS = frozenset({CERT_NOT_YET_VALID, CERT_HAS_EXPIRED, ERROR_IN_CERT_NOT_BEFORE_FIELD,
                          ERROR_IN_CERT_NOT_AFTER_FIELD})

# What OpenSSL says when it finds no path to an anchor; every other reason comes after one.
BUILD_REASONS = frozenset(REASONS[c] for c in (
    UNABLE_TO_GET_ISSUER_CERT, UNABLE_TO_GET_ISSUER_CERT_LOCALLY, CERT_CHAIN_TOO_LONG,
    DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN))
AFTER_BUILD_REASONS = frozenset(REASONS.values()) - BUILD_REASONS

# Extensions OpenSSL 3.0 understands when critical (v3_purp.c's supported list).
_HANDLED_CRITICAL = frozenset(
    {
        "2.16.840.1.113730.1.1",  # Netscape cert type
        "2.5.29.15",  # keyUsage
        "2.5.29.17",  # subjectAltName
        "2.5.29.19",  # basicConstraints
        "2.5.29.32",  # certificatePolicies
        "2.5.29.31",  # cRLDistributionPoints
        "2.5.29.37",  # extKeyUsage
        "1.3.6.1.5.5.7.1.7",  # sbgp-ipAddrBlock
        "1.3.6.1.5.5.7.1.8",  # sbgp-autonomousSysNum
        "1.3.6.1.5.5.7.48.1.5",  # id-pkix-ocsp-nocheck
        "2.5.29.36",  # policyConstraints
        "1.3.6.1.5.5.7.1.14",  # proxyCertInfo
        "2.5.29.30",  # nameConstraints
        "2.5.29.33",  # policyMappings
        "2.5.29.54",  # inhibitAnyPolicy
    }
)
_NS_CERT_TYPE = "2.16.840.1.113730.1.1"

# keyUsage bits as OpenSSL numbers them (first octet of the BIT STRING).
KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT, KU_KEY_AGREEMENT, KU_KEY_CERT_SIGN = (
    0x80, 0x20, 0x08, 0x04,
)
_KU_BITS = {
    "digital_signature": 0x80,
    "content_commitment": 0x40,
    "key_encipherment": 0x20,
    "data_encipherment": 0x10,
    "key_agreement": 0x08,
    "key_cert_sign": 0x04,
    "crl_sign": 0x02,
}
# Netscape cert type bits.
NS_SSL_CLIENT, NS_SSL_SERVER, NS_SSL_CA, NS_ANY_CA = 0x80, 0x40, 0x04, 0x07
# EKU OIDs that satisfy each role. anyExtendedKeyUsage does not (OpenSSL 3.0 ignores it here);
# the two "Server Gated Crypto" OIDs still count for servers.
_ROLE_EKUS = {
    "client": frozenset({"1.3.6.1.5.5.7.3.2"}),
    "server": frozenset(
        {"1.3.6.1.5.5.7.3.1", "2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"}
    ),
}
_LEAF_KU = {
    "client": KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT,
    "server": KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT,
}
_LEAF_NS = {"client": NS_SSL_CLIENT, "server": NS_SSL_SERVER}

# Key family of a signature algorithm and of a public key: an issuer whose key cannot have
# made the signature is not considered at all (OpenSSL's check_sig_alg_match).
_SIG_FAMILY = {
    **{f"1.2.840.113549.1.1.{n}": "rsa" for n in (2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16)},
    **{f"1.2.840.10045.4.{n}": "ec" for n in ("1", "3.1", "3.2", "3.3", "3.4")},
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
    "1.2.840.10040.4.3": "dsa",
    "2.16.840.1.101.3.4.3.1": "dsa",
    "2.16.840.1.101.3.4.3.2": "dsa",
}
_KEY_FAMILY = {
    "1.2.840.113549.1.1.1": "rsa",
    "1.2.840.113549.1.1.10": "rsa",
    "1.2.840.10045.2.1": "ec",
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
    "1.2.840.10040.4.1": "dsa",
}

@dataclass(frozen=True, slots=True)
class PathResult:
    """OpenSSL's answer for one chain: trusted or not, the path it built (leaf first, the
    anchor last when trusted) and, on failure, the first error with the depth of the
    certificate it concerns (0 = leaf) and the stage that failed (build, extensions,
    signature, time)."""

    ok: bool
    path: tuple[x509.Certificate, ...]
    anchors: int  # how many certificates at the top of ``path`` came from the trust store
    code: int | None = None
    reason: str | None = None
    depth: int | None = None
    stage: str | None = None
    note: str = ""  # specifics for the admin (which usage, which date...)
    # Every error `openssl verify` prints, in its order, as (code, depth, stage, note): its
    # callback forgives some (an expired certificate, a purpose, a CA flag...) and goes on.
    errors: tuple[tuple[int, int, str, str], ...] = ()

    @property
    def message(self) -> str:
        """One line: ``reason at depth N (subject): note``."""
        if self.ok:
            return "ok"
        return self._line(self.reason, self.depth, self.note)

    @property
    def lines(self) -> tuple[str, ...]:
        """Every error OpenSSL prints, one line each, as :attr:`message` words the first."""
        return tuple(self._line(REASONS[code], depth, note)
                     for code, depth, _, note in self.errors)

    def _line(self, reason: str | None, depth: int | None, note: str) -> str:
        subject = "?"
        if depth is not None and 0 <= depth < len(self.path):
            subject = _subject_text(self.path[depth])
        text = f"{reason} at depth {depth} ({subject})"
        return f"{text}: {note}" if note else text


def _subject_text(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "empty subject"
    except Exception:
        return "?"


# --- per-certificate facts -------------------------------------------------------------------


class _Facts:
    """What OpenSSL caches per certificate (its ``ex_flags``), computed once."""

    __slots__ = (
        "cert", "der", "subject", "issuer", "invalid", "critical", "bc", "ca", "pathlen",
        "ku", "eku", "ns", "skid", "akid", "akid_serial", "v1", "self_issued", "self_signed",
        "nb", "na", "serial", "nc", "why",
    )

    def __init__(self, cert: x509.Certificate, der: bytes) -> None:
        self.cert = cert
        self.der = der
        self.subject = canon_name(_safe(lambda: cert.subject))
        self.issuer = canon_name(_safe(lambda: cert.issuer))
        self.invalid = self.subject is None or self.issuer is None
        self.why = "its names do not decode" if self.invalid else ""  # what made it invalid
        self.critical = False
        self.bc = False
        self.ca = False
        self.pathlen: int | None = None
        self.ku: int | None = None
        self.eku: frozenset[str] | None = None
        self.ns: int | None = None
        self.skid: bytes | None = None
        self.akid: x509.AuthorityKeyIdentifier | None = None
        self.akid_serial: int | None = None  # its authorityCertSerialNumber, as OpenSSL has it
        self.nc = False  # carries nameConstraints
        self.serial = _safe(lambda: cert.serial_number)
        self.v1 = _safe(lambda: cert.version) == x509.Version.v1
        self._extensions()
        self.nb = _safe(lambda: cert.not_valid_before_utc)
        self.na = _safe(lambda: cert.not_valid_after_utc)
        if self.nb is None or self.na is None:
            self.invalid = True
            self.why = self.why or "its validity does not decode"
        self.self_issued = not self.invalid and self.subject == self.issuer
        self.self_signed = (
            self.self_issued and akid_matches(self, self) and _sig_alg_matches(cert, cert)
        )

    def _extensions(self) -> None:
        try:
            exts = x509lenient.extensions(self.cert)[0]
        except Exception as exc:  # duplicate or undecodable extension: OpenSSL's EXFLAG_INVALID
            self.invalid = True
            self.why = self.why or f"its extensions do not decode ({exc})"
            return
        twice = [o for o in x509lenient.repeated(self.cert) if o in x509lenient.OPENSSL_DECODED]
        if twice:
            self.invalid = True
            self.why = self.why or "it carries " + ", ".join(
                f"extension {o} ({x509lenient.OPENSSL_DECODED[o]})" for o in twice
            ) + " more than once"
        for oid, critical in x509lenient.undecodable(self.cert):  # read without them
            if oid == "2.5.29.37" and (sent := x509lenient.usages(self.cert)) is not None:
                self.eku = frozenset(sent)  # decoded by OpenSSL: no usage, or none held
            elif oid in x509lenient.OPENSSL_DECODED:
                self.invalid = True
                self.why = self.why or (f"its extension {oid} "
                                        f"({x509lenient.OPENSSL_DECODED[oid]}) does not decode")
            elif critical and oid not in _HANDLED_CRITICAL:
                self.critical = True
        for ext in exts:
            oid = ext.oid.dotted_string
            if ext.critical and oid not in _HANDLED_CRITICAL:
                self.critical = True
            value = ext.value
            if isinstance(value, x509.BasicConstraints):
                self.bc, self.ca, self.pathlen = True, value.ca, value.path_length
            elif isinstance(value, x509.KeyUsage):
                self.ku = sum(bit for name, bit in _KU_BITS.items() if getattr(value, name))
            elif isinstance(value, x509.ExtendedKeyUsage):  # with those the copy left out
                self.eku = frozenset(x509lenient.usages(self.cert) or (
                    o.dotted_string for o in value))
            elif isinstance(value, x509.SubjectKeyIdentifier):
                self.skid = value.digest
            elif isinstance(value, x509.AuthorityKeyIdentifier):
                self.akid = value
                self.akid_serial = value.authority_cert_serial_number
                alone = x509lenient.akid_alone(self.cert)
                if alone is not None:  # the copy has one field without the other: as sent
                    self.akid_serial = alone[1]
            elif isinstance(value, x509.NameConstraints):
                self.nc = True
            elif oid == _NS_CERT_TYPE and isinstance(value, x509.UnrecognizedExtension):
                self.ns = _bit_string_first_octet(value.value)
        if self.ku == 0 and not x509lenient.lone_agreement_bits(self.cert):
            # OpenSSL 3.0 refuses an empty keyUsage (RFC 5280 4.2.1.3)
            self.invalid = True
            self.why = self.why or "its keyUsage allows nothing"

    def valid_at(self, at: dt.datetime) -> int:
        """0 valid, CERT_NOT_YET_VALID or CERT_HAS_EXPIRED (notAfter itself is expired,
        as in OpenSSL)."""
        if self.nb is None or self.na is None:
            return CERT_HAS_EXPIRED
        if at < self.nb:
            return CERT_NOT_YET_VALID
        if at >= self.na:
            return CERT_HAS_EXPIRED
        return 0


def _safe(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception:
        return None


def _bit_string_first_octet(der: bytes) -> int | None:
    """First octet of a DER BIT STRING's bits (0 when empty), its unused bits cleared as
    OpenSSL clears them; None when it is not one."""
    if len(der) < 3 or der[0] != 0x03 or der[1] >= 0x80 or der[1] != len(der) - 2:
        return None
    if der[1] < 2:
        return 0
    return der[3] & (0xFF << der[2]) & 0xFF if der[1] == 2 and der[2] < 8 else der[3]


def _sig_alg_matches(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        sig = _SIG_FAMILY.get(cert.signature_algorithm_oid.dotted_string)
        key = _KEY_FAMILY.get(issuer.public_key_algorithm_oid.dotted_string)
    except Exception:
        return False
    return sig is not None and sig == key


def akid_matches(issuer: _Facts, subject: _Facts) -> bool:
    """OpenSSL's X509_check_akid: key id, issuer name and serial, each only when present."""
    akid = subject.akid
    if akid is None:
        return True
    if akid.key_identifier is not None and issuer.skid is not None:
        if akid.key_identifier != issuer.skid:
            return False
    if subject.akid_serial is not None:
        if subject.akid_serial != issuer.serial:
            return False
    for gn in akid.authority_cert_issuer or ():
        if isinstance(gn, x509.DirectoryName):
            return canon_name(gn.value) == issuer.issuer
    return True


def likely_issued(issuer: _Facts, subject: _Facts) -> bool:
    """Names, key identifiers and key type agree; the signature is not looked at."""
    return (
        not issuer.invalid
        and not subject.invalid
        and issuer.subject == subject.issuer
        and akid_matches(issuer, subject)
        and _sig_alg_matches(subject.cert, issuer.cert)
    )


def check_ca(f: _Facts) -> int:
    """OpenSSL's check_ca: 0 not a CA, 1 basicConstraints CA, 3 v1 self-signed root,
    4 keyUsage with keyCertSign only, 5 Netscape CA type."""
    if f.ku is not None and not f.ku & KU_KEY_CERT_SIGN:
        return 0
    if f.bc:
        return 1 if f.ca else 0
    if f.v1 and f.self_signed:
        return 3
    if f.ku is not None:
        return 4
    if f.ns is not None and f.ns & NS_ANY_CA:
        return 5
    return 0


def purpose_problem(f: _Facts, role: str, as_ca: bool) -> str | None:
    """Why ``f`` may not serve ``role`` (sslclient/sslserver), or None when it may."""
    if f.eku is not None and not f.eku & _ROLE_EKUS[role]:
        return "extended key usage lacks " + ("clientAuth" if role == "client" else "serverAuth")
    if as_ca:
        ca = check_ca(f)
        if ca == 0:
            return "not a CA certificate"
        if ca == 5 and not (f.ns or 0) & NS_SSL_CA:
            return "Netscape cert type is not an SSL CA"
        return None
    if role == "client":
        if f.ku is not None and not f.ku & _LEAF_KU[role]:
            return "key usage allows neither digitalSignature nor keyAgreement"
        if f.ns is not None and not f.ns & NS_SSL_CLIENT:
            return "Netscape cert type excludes SSL client"
        return None
    if f.ns is not None and not f.ns & NS_SSL_SERVER:
        return "Netscape cert type excludes SSL server"
    if f.ku is not None and not f.ku & _LEAF_KU[role]:
        return "key usage allows none of digitalSignature, keyEncipherment, keyAgreement"
    return None


# --- the trust store -------------------------------------------------------------------------


class AnchorIndex:
    """Trust-store certificates by canonical subject, so a lookup costs one dict access
    however many roots the store holds.  A root's facts are worked out when its name is first
    looked up: a scan asks for a few of the store's roots, and working out all of them up
    front was half the cost of making an Analyzer (~15 ms of every run)."""

    __slots__ = ("_by_subject",)

    def __init__(self, roots: Iterable[x509.Certificate],
                 subjects: Iterable[tuple | None] | None = None) -> None:
        """``subjects``: each root's `subject_key`, when already known (a cached store)."""
        roots = tuple(roots)
        keys = map(subject_key, roots) if subjects is None else subjects
        by_subject: dict[tuple, list[x509.Certificate] | tuple[_Facts, ...]] = {}
        for cert, subject in zip(roots, keys, strict=True):
            if subject is not None:
                by_subject.setdefault(subject, []).append(cert)
        self._by_subject = by_subject

    def candidates(self, issuer: tuple | None) -> Sequence[_Facts]:
        if issuer is None:
            return ()
        found = self._by_subject.get(issuer, ())
        if isinstance(found, list):  # first lookup of this name
            found = self._by_subject[issuer] = tuple(
                f for f in map(_facts_of, found) if f is not None and f.subject is not None)
        return found[:MAX_CANDIDATES]


def subject_key(cert: x509.Certificate) -> tuple | None:
    """The canonical subject a root is found by (None when its name does not decode)."""
    return canon_name(_safe(lambda: cert.subject))


def invalid(cert: x509.Certificate) -> bool:
    """Whether OpenSSL takes ``cert`` as invalid (its EXFLAG_INVALID): never an issuer, and
    no issuer is ever found for it."""
    f = _facts_of(cert)
    return f is None or f.invalid


def self_signed_reading(cert: x509.Certificate) -> tuple[bool, str]:
    """Whether OpenSSL takes ``cert``, when it names itself as its issuer, as self-signed (its
    EXFLAG_SS, set without looking at the signature), and the words for why: a self-signed
    certificate is never given another issuer, and one it refuses gets its issuer looked
    for.  (False, "") when ``cert`` does not name itself or OpenSSL takes it as invalid."""
    f = _facts_of(cert)
    if f is None or not f.self_issued:
        return False, ""
    akid = f.akid
    if f.self_signed:
        if akid is None:
            return True, "it has no Authority Key Identifier"
        if akid.key_identifier is None:
            return True, "its Authority Key Identifier names no key"
        if f.skid is None:
            return True, ("it has no Subject Key Identifier to hold its Authority Key"
                          " Identifier against")
        return True, "its Authority Key Identifier names its own key"
    if akid is not None and akid.key_identifier is not None and f.skid is not None \
            and akid.key_identifier != f.skid:
        return False, (f"its Authority Key Identifier names another key "
                       f"({akid.key_identifier.hex()}) than its own ({f.skid.hex()})")
    if f.akid_serial is not None and f.akid_serial != f.serial:
        return False, (f"its Authority Key Identifier names issuer serial number"
                       f" {f.akid_serial:x}, not its own ({_hex(f.serial)})")
    if not akid_matches(f, f):
        return False, "its Authority Key Identifier names another issuer"
    return False, "its signature algorithm does not fit its own key type"


def _hex(n: object) -> str:
    return f"{n:x}" if isinstance(n, int) else "?"


def _facts_of(cert: x509.Certificate) -> _Facts | None:
    try:
        from cryptography.hazmat.primitives.serialization import Encoding

        return _Facts(cert, cert.public_bytes(Encoding.DER))
    except Exception:
        return None


def _best(candidates: Iterable[_Facts], subject: _Facts, at: dt.datetime) -> _Facts | None:
    """First candidate valid at ``at``, else the one expiring last (OpenSSL's choice)."""
    fallback = None
    for cand in candidates:
        if not likely_issued(cand, subject):
            continue
        if cand.valid_at(at) == 0:
            return cand
        if fallback is None or (cand.na is not None and fallback.na is not None
                                and cand.na > fallback.na):
            fallback = cand
    return fallback


# --- validation ------------------------------------------------------------------------------


def validate(
    leaf: x509.Certificate,
    sent: Sequence[x509.Certificate],
    anchors: AnchorIndex,
    *,
    role: str,
    at: dt.datetime,
    signed_by: Callable[[x509.Certificate, x509.Certificate], bool],
    malformed_times: Callable[[x509.Certificate], tuple[str | None, str | None]] | None = None,
    as_sent: Callable[[x509.Certificate], bytes] | None = None,
) -> PathResult:
    """``openssl verify -attime AT -purpose ssl<role> -CAfile STORE -untrusted SENT LEAF``.

    ``sent`` are the other certificates the peer presented, in any order; ``signed_by`` checks
    one signature; ``malformed_times`` gives a certificate's notBefore and notAfter as sent
    when OpenSSL's time check cannot take them; ``as_sent`` a certificate's DER as sent or as
    its file holds it (a re-encoded copy holds stand-ins for what ``cryptography`` refuses,
    e.g. an iPAddress constraint base). Never raises on hostile certificates."""
    try:
        return _validate(leaf, sent, anchors, role, at, signed_by,
                         malformed_times or (lambda _: (None, None)), as_sent)
    except Exception as exc:  # a bug or an unforeseen certificate: untrusted, said plainly
        return PathResult(False, (leaf,), 0, None, f"verification error: {exc!r}"[:200], 0,
                          "build")


def _validate(
    leaf: x509.Certificate,
    sent: Sequence[x509.Certificate],
    anchors: AnchorIndex,
    role: str,
    at: dt.datetime,
    signed_by: Callable[[x509.Certificate, x509.Certificate], bool],
    malformed_times: Callable[[x509.Certificate], tuple[str | None, str | None]],
    as_sent: Callable[[x509.Certificate], bytes] | None,
) -> PathResult:
    first = _facts_of(leaf)
    if first is None:
        return PathResult(False, (leaf,), 0, UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                          REASONS[UNABLE_TO_GET_ISSUER_CERT_LOCALLY], 0, "build",
                          "the certificate does not encode")
    untrusted: list[_Facts] = []
    seen = {first.der}
    for cert in sent[:MAX_SENT]:
        f = _facts_of(cert)
        if f is not None and f.der not in seen:
            seen.add(f.der)
            untrusted.append(f)
    chain, trusted_from, error = _build(first, untrusted, anchors, at)
    path = tuple(f.cert for f in chain)
    anchors_n = len(chain) - trusted_from
    errors: list[tuple[int, int, str, str]] = []
    if error is not None:
        code, depth, note = error
        errors.append((code, depth, "build", note))
    if error is None or error[0] in FORGIVEN:
        errors += [(c, d, "extensions", n) for c, d, n in _check_extensions(chain, role)]
        errors += [(c, d, "time" if c in _TIME_ERRORS else "signature", n)
                   for c, d, n in _check_signatures_and_time(chain, at, signed_by,
                                                              malformed_times)]
    if all(e[0] in FORGIVEN for e in errors):
        err = x509names.check_name_constraints(
            [f.cert for f in chain], [f.self_issued for f in chain],
            [x509lenient.subtrees(as_sent(f.cert) if as_sent else f.der) if f.nc else None
             for f in chain])
        if err is not None:
            errors.append((err[0], err[1], "name constraints", err[2]))
    if errors:
        code, depth, stage, note = errors[0]
        return PathResult(False, path, anchors_n, code, REASONS[code], depth, stage, note,
                          tuple(errors))
    return PathResult(True, path, anchors_n)


def _trusted(f: _Facts) -> bool:
    """A store certificate is an anchor only when self-signed (no partial chains)."""
    return f.self_signed and not f.invalid


def _build(
    leaf: _Facts, untrusted: list[_Facts], anchors: AnchorIndex, at: dt.datetime
) -> tuple[list[_Facts], int, tuple[int, int, str] | None]:
    chain = [leaf]
    num_untrusted = 1
    do_trusted, do_untrusted = True, bool(untrusted)
    trusted = False
    for _ in range(4 * MAX_PATH + 4):  # each turn grows the chain or clears a search flag
        if not (do_trusted or do_untrusted):
            break
        if do_trusted:
            curr = chain[-1]
            issuer = None if len(chain) > MAX_PATH else _best(
                anchors.candidates(curr.issuer), curr, at)
            if issuer is not None:
                found, ss = True, True
                if not curr.self_signed:
                    chain.append(issuer)
                    ss = issuer.self_signed
                elif issuer.der != curr.der:  # a self-signed look-alike of an anchor
                    found = False
                else:  # the self-signed certificate is itself an anchor
                    num_untrusted -= 1
                    chain[-1] = issuer
                if found:
                    do_untrusted = False
                    if any(_trusted(f) for f in chain[num_untrusted:]):
                        trusted = True
                        break
                    if not ss:  # a store intermediate: look for its issuer in the store
                        continue
            if not do_untrusted:
                break
        if do_untrusted:
            curr = chain[-1]
            issuer = None
            if not curr.self_signed and len(chain) <= MAX_PATH:
                in_chain = {f.der for f in chain}
                # The bound is per name: certificates of other names are no candidates, and
                # a peer sending a whole bundle must not hide the issuer behind them.
                pool = [f for f in untrusted
                        if f.subject == curr.issuer and f.der not in in_chain][:MAX_CANDIDATES]
                issuer = _best(pool, curr, at)
            if issuer is None:
                do_untrusted, do_trusted = False, True
                continue
            untrusted.remove(issuer)
            chain.append(issuer)
            num_untrusted += 1
    if trusted:
        return chain, num_untrusted, None
    depth = len(chain) - 1
    if len(chain) > MAX_PATH:
        return chain, num_untrusted, (CERT_CHAIN_TOO_LONG, depth, f"more than {MAX_PATH}")
    top = chain[-1]
    if top.self_signed:
        code = DEPTH_ZERO_SELF_SIGNED_CERT if len(chain) == 1 else SELF_SIGNED_CERT_IN_CHAIN
        return chain, num_untrusted, (code, depth, "not in the trust store")
    code = (UNABLE_TO_GET_ISSUER_CERT if num_untrusted < len(chain)
            else UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
    note = "issuer neither sent nor in the trust store"
    sent = [f for f in untrusted if f.subject == top.issuer]
    stored = anchors.candidates(top.issuer)
    if top.invalid:
        note = f"OpenSSL takes the certificate as invalid: {top.why}"
    elif sent and all(f.invalid for f in sent):  # OpenSSL's EXFLAG_INVALID: never an issuer
        note = (f"a certificate of the issuer's name was sent, but OpenSSL takes it as invalid:"
                f" {sent[0].why}")
    elif code == UNABLE_TO_GET_ISSUER_CERT and any(likely_issued(f, top) for f in sent):
        # Once a store certificate is on the chain, OpenSSL's search in what the peer sent is
        # over: a store CA that is not self-signed ends the chain however well its issuer came.
        note = ("its issuer was sent, but OpenSSL looks for the issuer of a trust-store"
                " certificate only in the trust store, and this one is no anchor (not"
                " self-signed)")
    elif sent:  # e.g. a re-keyed CA's old certificate
        note = ("a certificate of the issuer's name was sent, but with another key (the key"
                " identifier or key type does not match)")
    elif stored:
        note = ("a certificate of the issuer's name is in the trust store, but it is not taken"
                " as the issuer (the key identifier or key type does not match)")
    return chain, num_untrusted, (code, depth, note)


def _check_extensions(chain: list[_Facts], role: str) -> list[tuple[int, int, str]]:
    """OpenSSL's check_extensions: every error, since `openssl verify` forgives them all."""
    found: list[tuple[int, int, str]] = []
    plen = 0
    n = len(chain)
    for i, f in enumerate(chain):
        if f.critical:
            found.append((UNHANDLED_CRITICAL_EXTENSION, i,
                          "a critical extension OpenSSL does not know"))
        if i > 0:
            ca = check_ca(f)
            if ca == 0 or (i + 1 < n and ca != 1):
                why = ("keyUsage lacks keyCertSign" if f.ku is not None
                       and not f.ku & KU_KEY_CERT_SIGN else
                       "basicConstraints CA:FALSE" if f.bc and not f.ca else
                       "no basicConstraints CA:TRUE")
                found.append((INVALID_CA, i, why))
        problem = purpose_problem(f, role, as_ca=i > 0)
        if problem is not None:
            found.append((INVALID_PURPOSE, i, problem))
        if i > 1 and f.pathlen is not None and plen > f.pathlen:
            found.append((PATH_LENGTH_EXCEEDED, i,
                          f"pathLenConstraint {f.pathlen}, {plen} CA(s) below"))
        if i > 0 and not f.self_issued:
            plen += 1
    return found


def _check_signatures_and_time(
    chain: list[_Facts],
    at: dt.datetime,
    signed_by: Callable[[x509.Certificate, x509.Certificate], bool],
    malformed_times: Callable[[x509.Certificate], tuple[str | None, str | None]],
) -> list[tuple[int, int, str]]:
    """OpenSSL's internal_verify, from the anchor down: it stops at the first error its
    callback does not forgive (all but an expired certificate)."""
    found: list[tuple[int, int, str]] = []
    n = len(chain) - 1
    for depth in range(n, -1, -1):
        f = chain[depth]
        if depth < n:
            issuer = chain[depth + 1]
            if issuer.ku is not None and not issuer.ku & KU_KEY_CERT_SIGN:
                return [*found, (KEYUSAGE_NO_CERTSIGN, depth + 1, "keyUsage lacks keyCertSign")]
            if _safe(issuer.cert.public_key) is None:
                return [*found, (UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY, depth + 1, "")]
            if not _same_inner_outer_alg(f.der) or not signed_by(f.cert, issuer.cert):
                why = "not signed by " + _subject_text(issuer.cert)
                if not _ecdsa_value_is_der(f.cert):
                    why = "its ECDSA signature value is not DER, which OpenSSL refuses; " + why
                return [*found, (CERT_SIGNATURE_FAILURE, depth, why)]
        # X509_cmp_time takes one form only; notBefore is checked before notAfter
        bad_nb, bad_na = malformed_times(f.cert)
        state = f.valid_at(at)
        if bad_nb:
            return [*found, (ERROR_IN_CERT_NOT_BEFORE_FIELD, depth, f"notBefore {bad_nb!r}"
                             " is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")]
        if state == CERT_NOT_YET_VALID:
            return [*found, (state, depth,
                             f"valid only from {f.nb.isoformat() if f.nb else '?'}")]
        if bad_na:
            return [*found, (ERROR_IN_CERT_NOT_AFTER_FIELD, depth, f"notAfter {bad_na!r}"
                             " is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")]
        if state == CERT_HAS_EXPIRED:
            found.append((state, depth, f"expired {f.na.isoformat() if f.na else '?'}"))
    return found


def _ecdsa_value_is_der(cert: x509.Certificate) -> bool:
    """False when ``cert`` is signed with ECDSA and its Ecdsa-Sig-Value is not DER (a long
    length, an INTEGER not in its shortest form, bytes after it): OpenSSL re-encodes the
    value and fails the signature when the bytes differ.  True for other algorithms."""
    try:
        if not cert.signature_algorithm_oid.dotted_string.startswith("1.2.840.10045.4."):
            return True
        sig = cert.signature
        tag, body, end = element(sig, 0, len(sig))
        parts = elements(sig, body, end, 2)
        if tag != 0x30 or len(parts) != 2 or any(t != 0x02 for t, *_ in parts):
            return False
        again = b"".join(
            encode(0x02, (n := int.from_bytes(sig[b:e], "big", signed=True)).to_bytes(
                (n if n >= 0 else ~n).bit_length() // 8 + 1, "big", signed=True))
            for _, _, b, e in parts)
        return encode(0x30, again) == sig
    except (DerError, ValueError):
        return False


def _tlv(der: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, start of content, end of content) of the DER element at ``pos``, or None."""
    try:
        return element(der, pos, len(der))
    except DerError:
        return None


def _same_inner_outer_alg(der: bytes) -> bool:
    """The signature algorithm inside the signed part equals the outer one (X509_verify
    refuses a certificate where they differ)."""
    cert = _tlv(der, 0)
    if cert is None:
        return False
    tbs = _tlv(der, cert[1])
    if tbs is None:
        return False
    outer = _tlv(der, tbs[2])
    pos = tbs[1]
    el = _tlv(der, pos)
    if el is not None and el[0] == 0xA0:  # [0] version
        pos = el[2]
    serial = _tlv(der, pos)
    if serial is None or outer is None:
        return False
    inner = _tlv(der, serial[2])
    if inner is None:
        return False
    return der[serial[2] : inner[2]] == der[tbs[2] : outer[2]]
