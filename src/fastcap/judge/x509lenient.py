"""Certificates that are not strict DER but that OpenSSL reads.

``cryptography`` parses DER strictly and refuses what OpenSSL (and so Postfix, a receiving MTA
and Zeek) accepts, and what CAs have issued: a DEFAULT encoded explicitly (an extension's
critical FALSE, basicConstraints' cA FALSE, version 1, a name-constraints subtree's minimum 0),
a BOOLEAN TRUE other than 0xFF in those fields, a version other than v1 and v3, an empty
nameConstraints or subjectAltName (refused by ``cryptography`` from version 51), a
PrintableString in the issuer or subject holding other ASCII characters (``*.contoso.com``,
``AT&T``, an e-mail address, a NUL), a TeletexString there or in a directoryName whose octets
are no UTF-8 (valid DER; OpenSSL reads Latin-1), a length in a longer form than needed (``81 05``)
or of indefinite form, or a string in BER's constructed form (an extension's OCTET STRING, a
keyUsage BIT STRING cut into pieces, a name's UTF8String), anywhere in the certificate or an
extension's value, and an implicitly tagged one wherever its type is known (a GeneralName of the
subjectAltName, the issuerAltName, the CRL distribution points, the authority key identifier or
information access, a name constraint; a keyIdentifier, a reasons BIT STRING); and values
OpenSSL decodes with a meaning the copy keeps: keyUsage bits with the unused ones set (it masks
them) or encipherOnly or decipherOnly without keyAgreement (meaningless: cleared,
`lone_agreement_bits`), a pathLenConstraint without cA or beyond a long (never applied), a
GeneralName of a form ``cryptography`` does not hold (left out: no mail server's check looks at
an x400Address, an ediPartyName or a non-ASCII IA5String; an iPAddress of neither 4 nor 16
octets, or a name-constraint base of neither 8 nor 32, meets IP constraints as sent, through
`san_entries` and `subtrees`; an empty extKeyUsage is `no_usage`, an authorityKeyIdentifier's
serial number or issuer alone is `akid_alone`). Such a certificate is read from a copy
re-encoded without them; nothing else is rewritten, and anything else stays unparseable. When
only its extensions are refused, the certificate object is the one sent and only its extensions
come from the copy; when loading itself fails, or its names do not decode, the object is the
copy and `Loaded.tbs` keeps the signed bytes as sent, over which every signature is checked.
Fingerprints and exports keep the bytes sent. The walk never recurses and visits each element
once.

An extension present more than once, or whose value does not decode as its type, is no DER
matter, but ``cryptography`` refuses it too and OpenSSL reads it: its extensions are read from
a copy that keeps the first of each and leaves out those that do not decode (`repeated` and
`undecodable` name them; OpenSSL takes the certificate as invalid only when one of them is of
`OPENSSL_DECODED`).


An OBJECT IDENTIFIER ``cryptography`` cannot hold (more than 63 octets, an arc past 2**128),
which OpenSSL reads, is left out of an extKeyUsage (`usages` gives them all as sent); an
extension of such an OID is read under the stand-in 2.999, unknown to OpenSSL as it is.  A
name-constraint base of x400Address or ediPartyName is read as a registeredID 2.999, its form
kept in `subtrees`: OpenSSL fails the names of that form below it."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..proto.tls.der import DerError, collect, definite, element, elements, encode

_MAX_EXTENSIONS = 256  # more than any real certificate; past it, nothing is re-encoded
_MAX_SUBTREES = 4096
_MAX_RDNS = 256
_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_BASIC_CONSTRAINTS = bytes.fromhex("0603551d13")  # 2.5.29.19, as encoded
_NAME_CONSTRAINTS = bytes.fromhex("0603551d1e")  # 2.5.29.30
_SUBJECT_ALT_NAME = bytes.fromhex("0603551d11")  # 2.5.29.17
_ISSUER_ALT_NAME = bytes.fromhex("0603551d12")  # 2.5.29.18
_KEY_USAGE = bytes.fromhex("0603551d0f")  # 2.5.29.15
_NAMED_BITS = {_KEY_USAGE: "keyUsage",
               bytes.fromhex("06096086480186f8420101"): "nsCertType"}
_EXT_KEY_USAGE = bytes.fromhex("0603551d25")  # 2.5.29.37
_CRL_DISTRIBUTION_POINTS = bytes.fromhex("0603551d1f")  # 2.5.29.31
_AUTHORITY_KEY_ID = bytes.fromhex("0603551d23")  # 2.5.29.35
_ACCESS = (bytes.fromhex("06082b06010505070101"),  # authorityInfoAccess
           bytes.fromhex("06082b0601050507010b"))  # subjectInfoAccess
# GeneralName's implicitly tagged strings, in constructed form ([1] IA5String ...)
_IMPLICIT_STRINGS = {0xA1: "rfc822Name", 0xA2: "dNSName", 0xA6: "uniformResourceIdentifier",
                     0xA7: "iPAddress"}
_LENGTHS = "a length not in its shortest definite form"
# The extensions OpenSSL 3.0 decodes in every certificate it verifies
# (ossl_x509v3_cache_extensions): one present twice does not decode (X509_get_ext_d2i finds
# it more than once), and the certificate is invalid, never an issuer nor issued.
OPENSSL_DECODED = {
    "2.5.29.19": "basicConstraints",
    "1.3.6.1.5.5.7.1.14": "proxyCertInfo",
    "2.5.29.15": "keyUsage",
    "2.5.29.37": "extKeyUsage",
    "2.16.840.1.113730.1.1": "nsCertType",
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.17": "subjectAltName",
    "2.5.29.30": "nameConstraints",
    "2.5.29.31": "crlDistributionPoints",
    "1.3.6.1.5.5.7.1.7": "sbgp-ipAddrBlock",
    "1.3.6.1.5.5.7.1.8": "sbgp-autonomousSysNum",
}
_TYPES = {3: "BIT STRING", 4: "OCTET STRING", 12: "UTF8String", 19: "PrintableString",
          22: "IA5String", 23: "UTCTime", 24: "GeneralizedTime", 30: "BMPString"}


class _Bad(DerError):
    """Not a violation this module rewrites."""


def _sequence(value: bytes) -> tuple[int, int]:
    """(start, end) of the contents of ``value``, a SEQUENCE and nothing after it."""
    tag, body, end = element(value, 0, len(value))
    if tag != 0x30 or end != len(value):
        raise _Bad
    return body, end


def _seqs(value: bytes, body: int, end: int, limit: int) -> list[tuple[int, int]]:
    """(start, end) of the contents of each element in ``value[body:end]``, all SEQUENCEs."""
    out = []
    for t, _, b, stop in elements(value, body, end, limit):
        if t != 0x30:
            raise _Bad
        out.append((b, stop))
    return out


def _boolean(der: bytes, body: int, end: int, fixes: list[str], what: str) -> bytes | None:
    """A DEFAULT FALSE BOOLEAN as DER has it: None (omitted) for FALSE, 0xFF for TRUE."""
    if end - body != 1:
        raise _Bad
    if der[body] == 0:
        fixes.append(f"{what} FALSE encoded explicitly")
        return None
    if der[body] != 0xFF:
        fixes.append(f"{what} TRUE encoded as {der[body]:#04x}")
    return b"\x01\x01\xff"


def _basic_constraints(value: bytes, fixes: list[str]) -> bytes:
    """cA as DER has it; a pathLenConstraint OpenSSL never applies is left out: one without
    cA TRUE (a CA it is not), and one beyond what ``cryptography`` holds (OpenSSL's long
    overflows, which it reads as no limit).  A negative one stays: OpenSSL refuses it."""
    body, end = _sequence(value)
    ca, out, pathlen = False, b"", b""
    for t, start, b, stop in elements(value, body, end, 2):
        if t == 0x01:
            flag = _boolean(value, b, stop, fixes, "basicConstraints cA")
            ca, out = flag is not None, out + (flag or b"")
        elif t == 0x02 and stop > b and value[b] < 0x80 and (not ca or stop - b > 9):
            fixes.append("basicConstraints pathLenConstraint "
                         + ("without cA TRUE" if not ca else "beyond 2**64, no limit to OpenSSL"))
        elif t == 0x02:
            pathlen = value[start:stop]
        else:
            out += value[start:stop]
    return encode(0x30, out + pathlen)


def _bits(value: bytes, fixes: list[str], what: str) -> bytes:
    """A named-bit BIT STRING with its unused bits cleared: OpenSSL masks them, cryptography
    refuses them set."""
    tag, body, end = element(value, 0, len(value))
    if tag != 0x03 or end != len(value) or end - body < 2 or value[body] > 7:
        return value
    last = value[end - 1] & (0xFF << value[body]) & 0xFF
    if last != value[end - 1]:
        fixes.append(f"{what} with unused bits set")
        value = value[: end - 1] + bytes([last])
    if what == "keyUsage" and _lone_agreement_bits(value[body + 1 : end]):
        fixes.append("keyUsage encipherOnly or decipherOnly without keyAgreement")
        bits = bytearray(value[body + 1 : end])
        bits[0] &= 0xFE
        if len(bits) > 1:
            bits[1] &= 0x7F
        value = value[: body + 1] + bytes(bits)
    return value


def _lone_agreement_bits(bits: bytes) -> bool:
    """Whether keyUsage ``bits`` (after the unused-bits octet) set encipherOnly or
    decipherOnly without keyAgreement: ``cryptography`` refuses them; to OpenSSL they mean
    nothing, but are bits all the same (the keyUsage is not empty)."""
    return bool(bits) and not bits[0] & 0x08 and bool(
        bits[0] & 0x01 or len(bits) > 1 and bits[1] & 0x80)


def _name_constraints(value: bytes, fixes: list[str],
                      seen: tuple[list[Subtree], list[Subtree]] | None = None) -> bytes | None:
    """The value re-encoded, or None when it constrains nothing (OpenSSL: no constraint).
    ``seen`` gets each permitted and excluded subtree the copy keeps, as `Subtree`."""
    body, end = _sequence(value)
    out = b""
    for t, _, b, stop in elements(value, body, end, 2):
        if t not in (0xA0, 0xA1):
            raise _Bad
        trees = b""
        for sb, sstop in _seqs(value, b, stop, _MAX_SUBTREES):
            subtree, bounded, ip, form = b"", False, None, None
            for n, (ft, fstart, fb, fstop) in enumerate(elements(value, sb, sstop, 3)):
                if n == 0 and ft == 0x87:
                    ip = value[fb:fstop]
                if n == 0 and ft == 0x87 and (why := _ip_base_refused(ip or b"")):
                    fixes.append(f"nameConstraints iPAddress {why}")
                    subtree += _IP_STAND_IN  # applied from ``seen``, as OpenSSL has it
                    continue
                if n == 0 and ft in _UNHELD_FORMS:
                    form = _UNHELD_FORMS[ft]
                    fixes.append(f"nameConstraints {form}")
                    subtree += _FORM_STAND_IN  # applied from ``seen``, as OpenSSL has it
                    continue
                if n == 0:  # the base, a GeneralName
                    subtree += _general_name(value, fstart, fstop, fixes)[1]
                    continue
                bounded = bounded or ft != 0x80 or any(value[fb:fstop])
                if ft == 0x80 and value[fb:fstop] == b"\x00":
                    fixes.append("nameConstraints minimum 0 encoded explicitly")
                    continue
                subtree += value[fstart:fstop]
            trees += encode(0x30, subtree) if subtree else b""
            if subtree and seen is not None:
                seen[t & 1].append(Subtree(not bounded, ip, form))
        if not trees:
            fixes.append("empty nameConstraints subtrees")
            continue
        out += encode(t, trees)
    if not out:
        fixes.append("empty nameConstraints")
        return None
    return encode(0x30, out)


def _general_names(value: bytes, fixes: list[str]) -> bytes:
    """GeneralNames (a SEQUENCE) as `_names` re-encodes them."""
    body, end = _sequence(value)
    return encode(0x30, _names(value, body, end, fixes))


def _names(value: bytes, body: int, end: int, fixes: list[str]) -> bytes:
    """The GeneralNames in ``value[body:end]``, each as `_general_name` has it; those
    ``cryptography`` does not hold are left out (OpenSSL reads them; no check of a mail
    server's looks at them)."""
    out = b""
    for _, start, _, stop in elements(value, body, end, _MAX_SUBTREES):
        t, name = _general_name(value, start, stop, fixes)
        why = _unheld(t, name)
        if why:
            fixes.append(f"a GeneralName cryptography does not hold ({why}), left out")
        else:
            out += name
    return out


def _general_name(value: bytes, start: int, stop: int, fixes: list[str]) -> tuple[int, bytes]:
    """(tag, element) of the GeneralName at ``value[start:stop]``, an implicitly tagged string
    in BER's constructed form joined: `der.definite` cannot tell it from a constructed
    element of the same tag, OpenSSL reads it (its template knows the type) and joins the
    pieces as in any string."""
    tag = value[start]
    if tag == 0xA4:  # a directoryName: its Name as `_name` has it
        _, body, end = element(value, start, stop)
        return tag, encode(0xA4, _name(value, body, end, fixes))
    if tag not in _IMPLICIT_STRINGS:
        return tag, value[start:stop]
    fixes.append(f"{_IMPLICIT_STRINGS[tag]} in constructed form")
    return tag & ~0x20, encode(tag & ~0x20, collect(value, start, stop)[0])


def _implicit(value: bytes, start: int, stop: int, fixes: list[str], what: str) -> bytes:
    """The implicitly tagged string at ``value[start:stop]``, primitive (its pieces joined
    when it is in constructed form, as OpenSSL joins them)."""
    tag = value[start]
    if not tag & 0x20:
        return value[start:stop]
    fixes.append(f"{what} in constructed form")
    return encode(tag & ~0x20, collect(value, start, stop)[0])


def _ip_base_refused(octets: bytes) -> str | None:
    """Why ``cryptography`` refuses the iPAddress name-constraint base ``octets``, or None:
    neither 8 nor 32 octets (OpenSSL fails an IP address held to it as of unsupported
    syntax), a mask that is no run of ones then zeros, or an address with bits outside its
    mask (OpenSSL compares under the mask, octet by octet).  The copy holds a stand-in in its
    place; `subtrees` gives the base as sent."""
    half = len(octets) // 2
    if len(octets) not in (8, 32):
        return f"of {len(octets)} octets"
    inverted = ((1 << (8 * half)) - 1) ^ int.from_bytes(octets[half:], "big")
    if inverted & (inverted + 1):
        return f"mask {octets[half:].hex(':')} not a prefix"
    if int.from_bytes(octets[:half], "big") & inverted:
        return f"address {octets[:half].hex(':')} with bits outside its mask"
    return None


# 2.999, X.660's example arc: in place of an extension's OID cryptography cannot hold (an
# extension OpenSSL knows by no name either: ignored, or refused when critical)
_EXTENSION_STAND_IN = bytes.fromhex("8837")
_IP_STAND_IN = encode(0x87, bytes(8))  # 0.0.0.0/0, in place of a base cryptography refuses
_FORM_STAND_IN = encode(0x88, _EXTENSION_STAND_IN)  # registeredID 2.999, the same for a form
_UNHELD_FORMS = {0xA3: "x400Address", 0xA5: "ediPartyName"}  # GeneralNames it does not hold


@dataclass(frozen=True, slots=True)
class Subtree:
    """What ``cryptography`` does not keep of a name-constraint subtree: whether it has
    neither a maximum nor a minimum other than 0 (OpenSSL's nc_minmax_valid), its
    iPAddress base's octets as sent (None when the base is of another type), and the form of
    a base it does not hold at all (x400Address, ediPartyName; None for the others)."""

    unbounded: bool
    ip: bytes | None
    form: str | None = None


def subtrees(der: bytes) -> tuple[tuple[Subtree, ...], tuple[Subtree, ...]] | None:
    """The permitted and excluded subtrees of the first nameConstraints of the certificate
    ``der``, one for each subtree its read extension holds, in order; None without one, or
    when it does not read."""
    for oid, _, value in _extension_list(der):
        if oid == _NAME_CONSTRAINTS[2:]:
            seen: tuple[list[Subtree], list[Subtree]] = ([], [])
            try:
                _name_constraints(b"".join(_definite_all(value, [])), [], seen)
            except DerError:
                return None
            return tuple(seen[0]), tuple(seen[1])
    return None


def san_entries(cert: x509.Certificate) -> tuple[tuple[int, bytes, str | None], ...] | None:
    """Each GeneralName of the subjectAltName of ``cert`` in order, as (tag of its primitive
    form, contents, a directoryName's as sent, why ``cryptography`` does not hold it or None),
    when ``cryptography`` refuses the extensions; None when it reads them (or there is no
    subjectAltName): its names are then all there are."""
    for value in _refused(cert, _SUBJECT_ALT_NAME)[:1]:
        out = []
        with contextlib.suppress(DerError):
            body, end = _sequence(value)
            for _, start, _, stop in elements(value, body, end, _MAX_SUBTREES):
                tag, name = _general_name(value, start, stop, [])
                why = _unheld(tag, name)
                if tag == 0xA4:  # a directoryName as sent: a TeletexString's own octets
                    name = value[start:stop]
                content = name[element(name, 0, len(name))[1]:]
                out.append((tag, content, why))
            return tuple(out)
    return None


def _crl_distribution_points(value: bytes, fixes: list[str]) -> bytes:
    """Each DistributionPoint's GeneralNames (fullName, cRLIssuer) and reasons BIT STRING
    with their implicitly tagged strings primitive."""
    body, end = _sequence(value)
    out = b""
    for b, stop in _seqs(value, body, end, _MAX_SUBTREES):
        point = b""
        for ft, fstart, fb, fstop in elements(value, b, stop, 3):
            if ft == 0xA0:  # [0] EXPLICIT DistributionPointName: fullName [0] or an RDN [1]
                choice = elements(value, fb, fstop, 1)
                if not choice:
                    raise _Bad
                nt, nstart, nb, nstop = choice[0]
                inner = (encode(nt, _names(value, nb, nstop, fixes)) if nt == 0xA0
                         else value[nstart:nstop])
                point += encode(0xA0, inner)
            elif ft == 0xA2:  # cRLIssuer
                point += encode(0xA2, _names(value, fb, fstop, fixes))
            elif ft & 0x1F == 1:  # reasons
                point += _implicit(value, fstart, fstop, fixes, "reasons BIT STRING")
            else:
                point += value[fstart:fstop]
        out += encode(0x30, point)
    return encode(0x30, out)


def _authority_key_id(value: bytes, fixes: list[str]) -> bytes:
    """keyIdentifier and authorityCertIssuer with their implicitly tagged strings
    primitive."""
    body, end = _sequence(value)
    out = b""
    fields = elements(value, body, end, 3)
    tags = {t for t, *_ in fields}
    for t, start, b, stop in fields:
        if t & 0x1F == 0 and t & 0xC0 == 0x80:
            out += _implicit(value, start, stop, fixes, "keyIdentifier")
        elif t == 0xA1:
            out += encode(0xA1, _names(value, b, stop, fixes))
            if 0x82 not in tags:  # a serial number stands in, which `akid_alone` discounts
                fixes.append("authorityKeyIdentifier issuer without serial number")
                out += b"\x82\x01\x00"
        elif t == 0x82 and 0xA1 not in tags:  # left out; `akid_alone` reads it
            fixes.append("authorityKeyIdentifier serial number without issuer")
        else:
            out += value[start:stop]
    return encode(0x30, out)


def _access(value: bytes, fixes: list[str]) -> bytes:
    """An authority or subject information access: each accessLocation as `_general_name`
    has it."""
    body, end = _sequence(value)
    out = b""
    for t, _, b, stop in elements(value, body, end, _MAX_SUBTREES):
        parts = elements(value, b, stop, 2)
        if t != 0x30 or len(parts) != 2:
            raise _Bad
        method = value[parts[0][1] : parts[0][3]]
        out += encode(0x30, method + _general_name(value, parts[1][1], parts[1][3], fixes)[1])
    return encode(0x30, out)


def _unheld(tag: int, name: bytes) -> str | None:
    """Why ``cryptography`` refuses the GeneralName ``name`` (of ``tag``), which OpenSSL
    decodes; None when it takes it."""
    if tag in (0xA3, 0xA5):
        return "x400Address" if tag == 0xA3 else "ediPartyName"
    content = name[element(name, 0, len(name))[1]:]
    if tag == 0x87 and len(content) not in (4, 16):
        return f"an iPAddress of {len(content)} octets"
    if tag in (0x81, 0x82, 0x86) and any(c >= 0x80 for c in content):
        return f"an {_IMPLICIT_STRINGS[tag | 0x20]} not in ASCII"
    return None


def _name(der: bytes, start: int, end: int, fixes: list[str]) -> bytes:
    """A Name whose PrintableStrings holding other ASCII characters (``*``, ``@``, ``&``, ``_``,
    a NUL or another control character) are tagged IA5String, whose alphabet holds all of
    ASCII: same length, same text, and a type OpenSSL canonicalises alike; and whose
    TeletexStrings that are no UTF-8 (``cryptography`` reads none other) are UTF8Strings of
    their octets read as Latin-1, as OpenSSL converts a TeletexString to compare names."""
    tag, body, stop = element(der, start, end)
    if tag != 0x30 or stop != end:
        raise _Bad
    out = b""
    changed = False
    for rt, _, rb, rstop in elements(der, body, stop, _MAX_RDNS):
        if rt != 0x31:
            raise _Bad
        rdn = b""
        for at, astart, ab, astop in elements(der, rb, rstop, _MAX_RDNS):
            attr = der[astart:astop]
            parts = elements(der, ab, astop, 2) if at == 0x30 else []
            if len(parts) == 2 and parts[1][0] in (0x13, 0x14):
                vt, vstart, vb, vstop = parts[1]
                text = der[vb:vstop]
                odd = set(text) - _PRINTABLE
                if vt == 0x13 and odd and all(c < 0x80 for c in odd):
                    fixes.append("PrintableString holding " + "".join(sorted(map(chr, odd))))
                    attr = der[astart:vstart] + b"\x16" + der[vstart + 1 : astop]
                elif vt == 0x14 and not _utf8(text):
                    fixes.append(TELETEX_LATIN1)
                    attr = encode(0x30, der[parts[0][1] : parts[0][3]]
                                  + encode(0x0C, text.decode("latin-1").encode()))
            changed |= attr != der[astart:astop]
            rdn += attr
        out += encode(0x31, rdn)
    return encode(0x30, out) if changed else der[start:end]


# Not a departure from DER: a TeletexString may hold any octets; only ``cryptography`` reads
# none but UTF-8 ones, so the copy holds them as a UTF8String of their Latin-1 letters.
TELETEX_LATIN1 = ("a TeletexString of octets outside UTF-8 (valid DER), whose octets OpenSSL"
                  " takes as Latin-1 letters")


def _utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _extension(der: bytes, body: int, end: int, fixes: list[str]) -> bytes:
    parts = elements(der, body, end, 3)
    if not parts or parts[0][0] != 0x06 or parts[-1][0] != 0x04:
        raise _Bad
    oid = der[parts[0][1] : parts[0][3]]
    out = oid
    if _oid_unheld(der[parts[0][2] : parts[0][3]]):  # OpenSSL knows it by no name either
        fixes.append(f"extension {_dotted(der[parts[0][2] : parts[0][3]])} past what"
                     f" cryptography holds, read as {_dotted(_EXTENSION_STAND_IN)}")
        out = encode(0x06, _EXTENSION_STAND_IN)
    for t, _, b, stop in parts[1:-1]:
        if t != 0x01:
            raise _Bad
        out += _boolean(der, b, stop, fixes, "extension critical flag") or b""
    value = der[parts[-1][2] : parts[-1][3]]
    joined: list[int] = []
    try:
        flat = b"".join(_definite_all(value, joined))
    except DerError:  # not DER inside: left as it is, for whoever reads it
        flat, joined = value, []
    _note(flat != value, joined, fixes)
    value = flat
    if oid == _BASIC_CONSTRAINTS:
        value = _basic_constraints(value, fixes)
    elif oid == _NAME_CONSTRAINTS:
        nc = _name_constraints(value, fixes)
        if nc is None:
            return b""  # dropped: it constrains nothing
        value = nc
    elif oid == _SUBJECT_ALT_NAME and value == b"\x30\x00":
        # RFC 5280 wants one name at least (cryptography 51 refuses none); OpenSSL reads no
        # names, and its host check then falls back to the CN: as without the extension
        fixes.append("empty subjectAltName")
        return b""
    elif oid in (_SUBJECT_ALT_NAME, _ISSUER_ALT_NAME):
        value = _general_names(value, fixes)
        if value == b"\x30\x00":  # none left that cryptography holds: none to read
            return b""
    elif oid in _ACCESS:
        value = _access(value, fixes)
    elif oid == _CRL_DISTRIBUTION_POINTS:
        value = _crl_distribution_points(value, fixes)
    elif oid == _AUTHORITY_KEY_ID:
        value = _authority_key_id(value, fixes)
    elif oid in _NAMED_BITS:
        value = _bits(value, fixes, _NAMED_BITS[oid])
    elif oid == _EXT_KEY_USAGE:
        value = _ext_key_usage(value, fixes)
    return encode(0x30, out + encode(0x04, value))


def _ext_key_usage(value: bytes, fixes: list[str]) -> bytes:
    """The extKeyUsage without the OIDs ``cryptography`` cannot hold (`usages` gives them
    all); as it was when it is not a SEQUENCE of OBJECT IDENTIFIERs."""
    body, end = _sequence(value)
    out = b""
    for t, start, b, stop in elements(value, body, end, _MAX_SUBTREES):
        if t == 0x06 and _oid_unheld(value[b:stop]):
            fixes.append(f"extKeyUsage {_dotted(value[b:stop])} past what cryptography holds")
        else:
            out += value[start:stop]
    return encode(0x30, out)


def _oid_der(oid: bytes) -> bool:
    """Whether the contents ``oid`` of an OBJECT IDENTIFIER are DER (each arc in its
    shortest form, the last one complete), as OpenSSL wants them."""
    return bool(oid) and not oid[-1] & 0x80 and not any(
        c == 0x80 and (i == 0 or not oid[i - 1] & 0x80) for i, c in enumerate(oid))


def _oid_unheld(oid: bytes) -> bool:
    """Whether the OBJECT IDENTIFIER contents ``oid`` are DER that ``cryptography`` cannot
    hold: more than 63 octets, or an arc past 2**128.  OpenSSL reads any."""
    if not _oid_der(oid):
        return False
    try:
        x509.ObjectIdentifier(_dotted(oid))
    except ValueError:
        return True
    return False


def _note(changed: bool, joined: list[int], fixes: list[str]) -> None:
    """Say what `der.definite` rewrote: strings joined from their constructed form, else
    lengths."""
    for tag in dict.fromkeys(joined):
        fixes.append(f"{_TYPES.get(tag, f'a string of tag {tag}')} in constructed form")
    if changed and not joined:
        fixes.append(_LENGTHS)


def _definite_all(value: bytes, joined: list[int]) -> list[bytes]:
    """Each element of ``value`` with definite, shortest lengths (`der.definite`)."""
    out, pos = [], 0
    while pos < len(value):
        if len(out) >= _MAX_EXTENSIONS:
            raise DerError("too many elements")
        flat, pos = definite(value, pos, len(value), joined)
        out.append(flat)
    return out


_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_TIME_FORMS = {  # the forms X.680 allows, which OpenSSL reads and its time check refuses
    _UTC_TIME: re.compile(rb"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(Z|[+-]\d{4})?"),
    _GENERALIZED_TIME: re.compile(
        rb"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)?(\d\d)?(?:[.,]\d+)?(Z|[+-]\d{4})?"),
}


def _strict_time(tag: int, text: bytes) -> bool:
    """The one form OpenSSL's X509_cmp_time compares: YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ."""
    return (len(text) == (13 if tag == _UTC_TIME else 15) and text[:-1].isdigit()
            and text[-1:] == b"Z")


def _lenient_time(tag: int, text: bytes) -> bytes | None:
    """A time in another form X.680 allows (no seconds, a fraction, an offset, no zone read
    as UTC) as the DER element of the same instant, or None when it is none of them."""
    m = _TIME_FORMS[tag].fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, zone = m.groups()
    y = int(year) + (0 if tag == _GENERALIZED_TIME else 2000 if int(year) < 50 else 1900)
    try:
        when = dt.datetime(y, int(month), int(day), int(hour), int(minute or 0),
                           int(second or 0), tzinfo=dt.UTC)
        if zone and zone != b"Z":
            sign = 1 if zone[:1] == b"+" else -1
            when -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    except (ValueError, OverflowError):
        return None
    if tag == _UTC_TIME and 1950 <= when.year < 2050:
        return encode(_UTC_TIME, when.strftime("%y%m%d%H%M%SZ").encode())
    return encode(_GENERALIZED_TIME, f"{when.year:04d}{when:%m%d%H%M%S}Z".encode())


def _validity(der: bytes, start: int, end: int, fixes: list[str]) -> bytes:
    """Validity with each time not in OpenSSL's one form re-encoded as the same instant, so
    that the certificate is read; its verification fails on that field all the same."""
    tag, body, stop = element(der, start, end)
    if tag != 0x30 or stop != end:
        raise _Bad
    out = b""
    for label, (t, first, b, last) in zip(("notBefore", "notAfter"),
                                          elements(der, body, stop, 2), strict=False):
        text = der[b:last]
        if t in _TIME_FORMS and not _strict_time(t, text):
            fixed = _lenient_time(t, text)
            if fixed is None:
                raise _Bad
            fixes.append(f"{label} {text.decode('ascii', 'replace')!r} not in the form"
                         f" {'YYMMDDHHMMSSZ' if t == _UTC_TIME else 'YYYYMMDDHHMMSSZ'}")
            out += fixed
        else:
            out += der[first:last]
    return encode(0x30, out)


def malformed_times(der: bytes) -> tuple[str | None, str | None]:
    """The notBefore and notAfter of ``der`` (as sent) that are not in the one form OpenSSL's
    time check takes, as text; None for each that is (or when ``der`` does not read).
    OpenSSL reads such a certificate and fails its verification on that field."""
    try:
        der = definite(der, 0, len(der))[0]
        _, body, end = element(der, 0, len(der))
        _, tbs, tbs_end = element(der, body, end)
        fields = elements(der, tbs, tbs_end, 10)
        _, _, vb, ve = fields[4 if fields[0][0] == 0xA0 else 3]
        times = elements(der, vb, ve, 2)
    except (DerError, IndexError):
        return None, None
    bad = [der[b:e].decode("ascii", "replace") if t not in _TIME_FORMS or
           not _strict_time(t, der[b:e]) else None for t, _, b, e in times]
    return (bad + [None, None])[0], (bad + [None, None])[1]


def _odd_version(der: bytes, body: int, end: int) -> int | None:
    """The value of a version field other than v1 and v3 (v2's 1, 3, -1...), which OpenSSL 3.0
    reads and verifies as any other (and cryptography refuses), when its INTEGER is DER;
    else None.  The copy reads it as v3: OpenSSL treats only v1 apart."""
    tag, b, stop = element(der, body, end)
    value = der[b:stop]
    if tag != 0x02 or stop != end or not value:
        return None
    if len(value) > 1 and (value[0] == 0 and value[1] < 0x80 or
                           value[0] == 0xFF and value[1] >= 0x80):
        return None  # not in its shortest form: OpenSSL refuses it too
    number = int.from_bytes(value, "big", signed=True)
    return None if number in (0, 2) else number


def canonical(der: bytes, *, once: bool = False, skip: frozenset[int] = frozenset()
              ) -> tuple[bytes, tuple[str, ...]] | None:
    """``der`` with its extensions re-encoded as DER, and what was rewritten; None when
    nothing was or it is not a certificate's frame.  ``once``: keep only the first of an
    extension present more than once; ``skip``: leave out the extensions of these indexes
    (neither is said in what was rewritten: both are DER).  The outer signature is left as it
    was: the copy is read, never verified."""
    fixes: list[str] = []
    seen: set[bytes] = set()
    dropped = False
    try:
        joined: list[int] = []
        flat, stop = definite(der, 0, len(der), joined)
        _note(flat != der[:stop], joined, fixes)
        der = flat
        tag, body, end = element(der, 0, len(der))
        if tag != 0x30:
            return None
        top = elements(der, body, end, 3)
        if len(top) != 3 or top[0][0] != 0x30:
            return None
        tbs = b""
        fields = elements(der, top[0][2], top[0][3], 10)
        names = (2, 4) if fields and fields[0][0] != 0xA0 else (3, 5)  # issuer, subject
        for i, (t, start, b, stop) in enumerate(fields):
            if t == 0xA0 and i == 0 and der[b:stop] == b"\x02\x01\x00":
                fixes.append("version 1 encoded explicitly")
            elif t == 0xA0 and i == 0 and (odd := _odd_version(der, b, stop)) is not None:
                fixes.append(f"version field {odd}, neither v1 nor v3")
                tbs += encode(0xA0, b"\x02\x01\x02")
            elif i in names:
                tbs += _name(der, start, stop, fixes)
            elif i == names[0] + 1:
                tbs += _validity(der, start, stop, fixes)
            elif t == 0xA3:
                seq, sb, sstop = element(der, b, stop)
                if seq != 0x30 or sstop != stop:
                    return None
                exts = b""
                for n, (et, _, eb, estop) in enumerate(
                        elements(der, sb, sstop, _MAX_EXTENSIONS)):
                    oid = _oid_of(der, et, eb, estop)
                    if oid is None:
                        return None
                    if n in skip or once and oid in seen:
                        dropped = True
                        continue
                    seen.add(oid)
                    exts += _extension(der, eb, estop, fixes)
                tbs += encode(0xA3, encode(0x30, exts)) if exts else b""
            else:
                tbs += der[start:stop]
    except DerError:
        return None
    if not fixes and not dropped:
        return None
    rest = der[top[1][1] : top[2][3]]
    return encode(0x30, encode(0x30, tbs) + rest), tuple(dict.fromkeys(fixes))


def _oid_of(der: bytes, tag: int, body: int, end: int) -> bytes | None:
    """The OBJECT IDENTIFIER (its contents) an Extension at ``der[body:end]`` starts with;
    None when the element is no SEQUENCE or does not start with one."""
    if tag != 0x30 or body >= end:
        return None
    t, b, stop = element(der, body, end)
    return der[b:stop] if t == 0x06 else None


def name_values(der: bytes) -> tuple[tuple[tuple[str, bytes], ...], ...] | None:
    """The RDNs of the Name ``der`` as sent: each attribute's dotted type and its value's
    octets, whatever its string type (a copy holds a Latin-1 TeletexString as UTF-8, where
    OpenSSL prints the octets); None when it is no Name."""
    try:
        tag, body, end = element(der, 0, len(der))
        if tag != 0x30:
            return None
        rdns = []
        for rt, _, rb, rstop in elements(der, body, end, _MAX_RDNS):
            if rt != 0x31:
                return None
            rdn = []
            for at, _, ab, astop in elements(der, rb, rstop, _MAX_RDNS):
                parts = elements(der, ab, astop, 2) if at == 0x30 else []
                if len(parts) != 2 or parts[0][0] != 0x06 or parts[1][0] & 0x20:
                    return None  # a string in constructed form: as the copy has it
                rdn.append((_dotted(der[parts[0][2]:parts[0][3]]),
                            der[parts[1][2]:parts[1][3]]))
            rdns.append(tuple(rdn))
        return tuple(rdns)
    except DerError:
        return None


def _dotted(oid: bytes) -> str:
    arcs, n = [], 0
    for octet in oid:
        n = n << 7 | octet & 0x7F
        if not octet & 0x80:
            arcs.append(n)
            n = 0
    if not arcs:
        return ""
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _read(der: bytes, **how: object) -> tuple[x509.Extensions, tuple[str, ...]] | None:
    """The extensions of ``der``'s copy made as ``how`` says (`canonical`), and what was not
    strict DER in them; None when there is no copy or its extensions do not read."""
    try:
        fixed = canonical(der, **how)  # type: ignore[arg-type]
        if fixed is not None:
            return x509.load_der_x509_certificate(fixed[0]).extensions, fixed[1]
    except Exception:
        pass
    return None


def extensions(cert: x509.Certificate) -> tuple[x509.Extensions, tuple[str, ...]]:
    """The certificate's extensions (the first of any present more than once, none of those
    whose value does not decode: `undecodable`), and what was not strict DER in them (empty
    when nothing); raises as ``cert.extensions`` does when no known rewrite makes them
    readable."""
    try:
        return cert.extensions, ()
    except Exception as exc:
        strict = exc
    der = cert.public_bytes(Encoding.DER)
    got = _read(der) or _read(der, once=True)
    if got is None and (broken := _broken(der)):
        got = _read(der, once=True, skip=frozenset(n for n, _, _ in broken))
    if got is None:
        raise strict
    return got


def _extension_list(der: bytes) -> list[tuple[bytes, bool, bytes]]:
    """(OID contents, critical, value) of each extension of the certificate ``der``, in
    order; empty when it has none or they are not in an Extension's frame."""
    try:
        der = definite(der, 0, len(der))[0]
        _, body, end = element(der, 0, len(der))
        _, tbs, tbs_end = element(der, body, end)
        tag, _, b, stop = elements(der, tbs, tbs_end, 10)[-1]
        if tag != 0xA3:
            return []
        _, sb, sstop = element(der, b, stop)
        out = []
        for et, _, eb, estop in elements(der, sb, sstop, _MAX_EXTENSIONS):
            oid = _oid_of(der, et, eb, estop)
            if oid is None:
                return []
            parts = elements(der, eb, estop, 3)
            out.append((oid, len(parts) == 3 and parts[1][0] == 0x01
                        and der[parts[1][2]:parts[1][3]] not in (b"", b"\x00"),
                        der[parts[-1][2]:parts[-1][3]]))
        return out
    except (DerError, IndexError):
        return []


def _broken(der: bytes) -> list[tuple[int, str, bool]]:
    """(index, dotted OID, critical) of the extensions of ``der`` that ``cryptography`` does
    not decode even alone (a value not of its type); OpenSSL reads the certificate."""
    listed = _extension_list(der)
    every = frozenset(range(len(listed)))
    return [(n, _dotted(oid), critical) for n, (oid, critical, _) in enumerate(listed)
            if _read(der, skip=every - {n}) is None]


def undecodable(cert: x509.Certificate) -> tuple[tuple[str, bool], ...]:
    """(dotted OID, critical) of the extensions of ``cert`` whose value does not decode as its
    type, which ``cryptography`` refuses and OpenSSL reads; empty when none."""
    try:
        cert.extensions  # noqa: B018 -- parsed once and kept when it reads
        return ()
    except Exception:
        pass
    return tuple((oid, critical) for _, oid, critical in _broken(cert.public_bytes(Encoding.DER)))


def _refused(cert: x509.Certificate, oid: bytes) -> list[bytes]:
    """The values, lengths made definite, of ``cert``'s extensions ``oid`` (as encoded) when
    ``cryptography`` refuses its extensions; empty when it reads them."""
    try:
        cert.extensions  # noqa: B018 -- parsed once and kept when it reads
        return []
    except Exception:
        pass
    out = []
    for found, _, value in _extension_list(cert.public_bytes(Encoding.DER)):
        with contextlib.suppress(DerError):
            out += [definite(value, 0, len(value))[0]] if found == oid[2:] else []
    return out


def lone_agreement_bits(cert: x509.Certificate) -> tuple[str, ...]:
    """Which of encipher_only and decipher_only ``cert``'s keyUsage, which ``cryptography``
    refuses, sets without keyAgreement (the copy clears them; `openssl x509 -text` shows
    them); empty when none."""
    for value in _refused(cert, _KEY_USAGE)[:1]:
        with contextlib.suppress(DerError):
            tag, body, end = element(value, 0, len(value))
            if tag != 0x03 or end - body < 2:
                return ()
            bits = bytes(value[body + 1 : end - 1]) + bytes(
                [value[end - 1] & (0xFF << min(value[body], 7)) & 0xFF])
            if not _lone_agreement_bits(bits):
                return ()
            return (*(("encipher_only",) if bits[0] & 0x01 else ()),
                    *(("decipher_only",) if len(bits) > 1 and bits[1] & 0x80 else ()))
    return ()


def usages(cert: x509.Certificate) -> tuple[str, ...] | None:
    """The dotted OIDs of ``cert``'s extKeyUsage in order, as sent, when ``cryptography``
    refuses its extensions (it cannot hold some of them: `_oid_unheld`) and each is an OBJECT
    IDENTIFIER OpenSSL decodes; None otherwise."""
    for value in _refused(cert, _EXT_KEY_USAGE)[:1]:
        with contextlib.suppress(DerError):
            body, end = _sequence(value)
            found = elements(value, body, end, _MAX_SUBTREES)
            oids = [value[b:stop] for t, _, b, stop in found if t == 0x06]
            if len(oids) == len(found) and all(map(_oid_der, oids)):
                return tuple(map(_dotted, oids))
    return None


def no_usage(cert: x509.Certificate) -> bool:
    """Whether ``cert``'s extKeyUsage is an empty SEQUENCE: ``cryptography`` refuses it (RFC
    5280 wants one usage at least), OpenSSL reads it as allowing no usage at all."""
    return b"\x30\x00" in _refused(cert, _EXT_KEY_USAGE)


def akid_alone(cert: x509.Certificate) -> tuple[str, int | None] | None:
    """("serial", its value) or ("issuer", None) when the authorityKeyIdentifier of ``cert``
    holds one of authorityCertSerialNumber and authorityCertIssuer without the other (the
    copy leaves the serial number out, or gives the issuer a stand-in one); None otherwise.
    ``cryptography`` refuses either alone; OpenSSL checks what is there."""
    for value in _refused(cert, _AUTHORITY_KEY_ID)[:1]:
        try:
            _, body, end = element(value, 0, len(value))
            fields = {t: value[b:stop] for t, _, b, stop in elements(value, body, end, 3)}
        except DerError:
            return None
        if (0x82 in fields) == (0xA1 in fields):
            return None
        if 0xA1 in fields:
            return "issuer", None
        return "serial", int.from_bytes(fields[0x82], "big", signed=True)
    return None


def repeated(cert: x509.Certificate) -> tuple[str, ...]:
    """The extensions (dotted OIDs) ``cert`` carries more than once, which ``cryptography``
    refuses and OpenSSL reads; empty when none (or its extensions do not read at all)."""
    try:
        cert.extensions  # noqa: B018 -- parsed once and kept when it reads
        return ()
    except Exception:
        pass
    count: dict[bytes, int] = {}
    for oid, _, _ in _extension_list(cert.public_bytes(Encoding.DER)):
        count[oid] = count.get(oid, 0) + 1
    return tuple(_dotted(oid) for oid, n in count.items() if n > 1)


def copies(cert: x509.Certificate, oid: str) -> tuple[x509.ExtensionType, ...]:
    """The value of each copy of the extension ``oid`` (dotted) that ``cert`` carries more
    than once, in order, each that decodes; empty when it carries it once or not at all.
    ``openssl x509 -text`` prints every copy; its lookups by type find none."""
    if oid not in repeated(cert):
        return ()
    der = cert.public_bytes(Encoding.DER)
    listed = _extension_list(der)
    every = frozenset(range(len(listed)))
    out = []
    for n, (found, _, _) in enumerate(listed):
        got = _read(der, skip=every - {n}) if _dotted(found) == oid else None
        if got is not None:
            out.extend(e.value for e in got[0] if e.oid.dotted_string == oid)
    return tuple(out)


def original_tbs(der: bytes) -> bytes | None:
    """The tbsCertificate element of ``der`` as sent: what its signature covers (lengths and
    all, as OpenSSL keeps them)."""
    try:
        stop = definite(der, 0, len(der))[1]
        body = 2 if der[1] == 0x80 else element(der, 0, stop)[1]
        return der[body : definite(der, body, stop)[1]]
    except (DerError, IndexError):
        return None


@dataclass(frozen=True)
class Loaded:
    """A certificate as OpenSSL would read it.  ``tbs`` is set when ``cert`` is a re-encoded
    copy (its own signed bytes are not those sent): signatures are checked over ``tbs``."""

    cert: x509.Certificate
    fixes: tuple[str, ...]
    tbs: bytes | None


def _copy(der: bytes) -> Loaded | None:
    """``der`` read from its re-encoded copy; None when no known rewrite makes one that
    ``cryptography`` loads."""
    fixed = canonical(der)
    tbs = original_tbs(der)
    if fixed is None or tbs is None:
        return None
    try:
        return Loaded(x509.load_der_x509_certificate(fixed[0]), fixed[1], tbs)
    except Exception:
        return None


def _names_decode(cert: x509.Certificate) -> bool:
    """``cryptography`` decodes names when first asked: a string in BER's constructed form
    loads, then raises here."""
    try:
        return cert.subject is not None and cert.issuer is not None
    except Exception:
        return False


def load(der: bytes) -> Loaded:
    """``der`` loaded strictly, else from its re-encoded copy when only the violations above
    stop it (or make its names unreadable); raises as ``load_der_x509_certificate`` does
    otherwise."""
    der = bytes(der)
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception:
        copy = _copy(der)
        if copy is None:
            raise
        return copy
    if not _names_decode(cert) and (copy := _copy(der)) is not None and _names_decode(copy.cert):
        return copy
    try:
        fixes = extensions(cert)[1]
    except Exception:  # unreadable all the same: the caller reports it
        fixes = ()
    return Loaded(cert, fixes, None)


def fixes(cert: x509.Certificate, der: bytes) -> tuple[str, ...]:
    """What is not strict DER in ``der``, which ``load`` made ``cert``; empty when nothing is
    (or it is unreadable anyway)."""
    try:
        if cert.public_bytes(Encoding.DER) != der:  # the re-encoded copy
            fixed = canonical(der)
            return fixed[1] if fixed else ()
        return extensions(cert)[1]  # strict extensions are parsed once per object
    except Exception:
        return ()
