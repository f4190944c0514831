"""A certificate's subject or issuer as Zeek logs it: OpenSSL's RFC 2253 form
(``X509_NAME_print_ex`` with ``XN_FLAG_RFC2253``).

It differs from cryptography's RFC 4514 text, which the rest of fastcap shows: attributes
go by OpenSSL's short names (``emailAddress=``, ``serialNumber=``, ``street=``,
``jurisdictionC=``, not dotted OIDs), bytes outside printable ASCII are escaped as ``\\XX``
(``M\\C3\\BCller``), the values of a multi-valued RDN are reversed with the RDNs, and an
attribute OpenSSL has no name for is its dotted OID with its DER value in hex (``#0C03...``).
The name's own DER is read, so each value is printed from the string type it was sent as.
"""

from __future__ import annotations

from ..proto.tls.der import element, elements

_MAX_ITEMS = 4096  # RDNs in a name, attributes in an RDN: far more than any certificate has
# OpenSSL's short names of the attribute types a certificate name carries
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "title", "2.5.4.13": "description", "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress", "2.5.4.17": "postalCode", "2.5.4.18": "postOfficeBox",
    "2.5.4.20": "telephoneNumber", "2.5.4.41": "name", "2.5.4.42": "GN", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier", "2.5.4.54": "dmdName", "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier", "1.2.840.113549.1.9.1": "emailAddress",
    "1.2.840.113549.1.9.2": "unstructuredName", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID", "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST", "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}
# string types OpenSSL prints as text, by tag: the codec of their content (None: its bytes
# as they are, for UTF8String); the others are dumped as DER
_STRING_CODECS = {12: None, 18: "latin-1", 19: "latin-1", 20: "latin-1", 22: "latin-1",
                  26: "latin-1", 28: "utf-32-be", 30: "utf-16-be"}
_BACKSLASHED = frozenset(b',+"\\<>;')


def _oid(body: bytes) -> str:
    first, arcs, n = body[0], [], 0
    arcs += [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    for byte in body[1:]:
        n = n << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(n)
            n = 0
    return ".".join(map(str, arcs))


def _escape(raw: bytes) -> str:
    out = []
    last = len(raw) - 1
    for i, b in enumerate(raw):
        if b in _BACKSLASHED or (i == 0 and b in b"# ") or (i == last and b == 0x20):
            out.append("\\" + chr(b))
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


def _value(oid: str, tag: int, tlv: bytes, body: bytes) -> str:
    name = _SHORT_NAMES.get(oid)
    if name is None or tag not in _STRING_CODECS:
        return f"{name or oid}=#{tlv.hex().upper()}"
    codec = _STRING_CODECS[tag]
    raw = body if codec is None else body.decode(codec, "replace").encode("utf-8")
    return f"{name}={_escape(raw)}"


def openssl_name(der: bytes) -> str:
    """A DER Name (``x509.Name.public_bytes()``) as OpenSSL prints it with RFC 2253 flags:
    the last RDN first, attributes by OpenSSL's short names, values escaped as it does."""
    _, start, end = element(der, 0, len(der))
    avas = []
    for _, _, s0, s1 in elements(der, start, end, _MAX_ITEMS):  # each RDN, a SET
        for _, _, a0, a1 in elements(der, s0, s1, _MAX_ITEMS):  # each AttributeTypeAndValue
            (_, _, o0, o1), (tag, v, b0, b1) = list(elements(der, a0, a1, _MAX_ITEMS))[:2]
            avas.append((len(avas), _oid(der[o0:o1]), tag, der[v:b1], der[b0:b1], s0))
    parts: list[str] = []
    rdn = None
    for _, oid, tag, tlv, body, set_at in reversed(avas):
        text = _value(oid, tag, tlv, body)
        if set_at == rdn:
            parts[-1] += "+" + text
        else:
            parts.append(text)
            rdn = set_at
    return ",".join(parts)
