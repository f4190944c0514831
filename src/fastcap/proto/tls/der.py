"""DER elements, read and written: the one small reader the certificate-facing code shares
(the CA names of a CertificateRequest, certificates that are not strict DER, Zeek's names).

Reading is bounded and never recursive: each call reads one element's header inside the
bytes it is given and says where its content lies; a caller walks nesting levels itself.
Lengths are read as OpenSSL's decoder reads them: the long form of any size, with leading
zero octets (`definite` also takes the indefinite form of a constructed element, and a string
in BER's constructed form).
"""

from __future__ import annotations

__all__ = ["DerError", "collect", "definite", "element", "elements", "encode"]


class DerError(ValueError):
    """Bytes this reader does not take: cut, longer than their container, an indefinite or
    over-long length, a high tag number."""


def element(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``pos``, which must lie
    inside ``end`` (a definite length, long form allowed with any number of octets)."""
    if pos + 2 > end:
        raise DerError("element cut short")
    tag, first = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag number")  # none in a certificate or a name
    pos += 2
    if first < 0x80:
        length = first
    else:
        k = first & 0x7F
        if k == 0 or pos + k > end:
            raise DerError("indefinite length or one cut short")
        length = int.from_bytes(der[pos : pos + k], "big")
        pos += k
    if pos + length > end:
        raise DerError("element runs past its container")
    return tag, pos, pos + length


def elements(der: bytes, start: int, end: int, limit: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in
    ``der[start:end]``, at most ``limit`` of them."""
    out = []
    while start < end:
        if len(out) >= limit:
            raise DerError(f"more than {limit} elements")
        tag, body, stop = element(der, start, end)
        out.append((tag, start, body, stop))
        start = stop
    return out


_MAX_NESTING = 30  # OpenSSL's ASN1_MAX_CONSTRUCTED_NEST; a certificate nests about 10 deep
_MAX_STRING_NEST = 5  # OpenSSL's ASN1_MAX_STRING_NEST
# Universal types OpenSSL reads in constructed form, joining the pieces: every string and
# time type (BIT STRING, OCTET STRING, UTF8String ... BMPString).  It refuses a constructed
# BOOLEAN, INTEGER, NULL, OBJECT IDENTIFIER or ENUMERATED; those stay as they are.
_STRINGS = frozenset({3, 4, 12, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30})


def collect(der: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The contents of the constructed string at ``pos`` (inside ``end``) joined, and where
    it ends: OpenSSL's asn1_collect, which concatenates the contents of the primitive pieces
    in order, whatever their tags, through at most five levels of constructed pieces."""
    stack: list[int | None] = []  # end of each open piece, None when indefinite
    parts: list[bytes] = []
    while True:
        limit = next((e for e in reversed(stack) if e is not None), end)
        if stack:
            top = stack[-1]
            eoc = pos + 2 <= limit and der[pos : pos + 2] == b"\0\0"
            if top is None and eoc or pos == top:
                pos += 2 if top is None else 0
                stack.pop()
                if not stack:
                    return b"".join(parts), pos
                continue
            if eoc:
                raise DerError("end-of-contents inside a definite length")
        if pos + 2 > limit:
            raise DerError("element cut short")
        if der[pos + 1] == 0x80:
            if not der[pos] & 0x20:
                raise DerError("indefinite length of a primitive element")
            body, stop = pos + 2, None
        else:
            _, body, stop = element(der, pos, limit)
        if not der[pos] & 0x20:
            parts.append(der[body:stop])
            pos = stop
            continue
        if len(stack) > _MAX_STRING_NEST:
            raise DerError("string nested too deep")
        stack.append(stop)
        pos = body


def definite(der: bytes, pos: int, end: int,
             joined: list[int] | None = None) -> tuple[bytes, int]:
    """The element at ``pos`` (inside ``end``) re-encoded with every length definite and in
    its shortest form, as DER has them, and where it ends in ``der``.  OpenSSL reads a long
    form longer than needed, a constructed element of indefinite length (ended by two zero
    octets) and a string in constructed form (its pieces joined); ``cryptography`` refuses
    all three.  The tag of each string joined is added to ``joined``.  Other contents are
    copied as they are."""
    stack: list[tuple[int, list[bytes], int | None]] = []  # (tag, parts, end or None)
    limit = end  # the end of the innermost definite element
    out: list[bytes] = []
    while True:
        if stack:
            top_end = stack[-1][2]
            closed = (pos == top_end if top_end is not None
                      else pos + 2 <= limit and der[pos : pos + 2] == b"\0\0")
            if closed:
                pos += 0 if top_end is not None else 2
                tag, parts, _ = stack.pop()
                limit = next((e for _, _, e in reversed(stack) if e is not None), end)
                (stack[-1][1] if stack else out).append(encode(tag, b"".join(parts)))
                if not stack:
                    return out[0], pos
                continue
        if pos + 2 > limit:
            raise DerError("element cut short")
        tag = der[pos]
        if tag & 0xE0 == 0x20 and tag & 0x1F in _STRINGS:  # universal, constructed
            body_bytes, stop = collect(der, pos, limit)
            if joined is not None:
                joined.append(tag & 0x1F)
            (stack[-1][1] if stack else out).append(encode(tag & 0x1F, body_bytes))
            if not stack:
                return out[0], stop
            pos = stop
            continue
        if der[pos + 1] == 0x80:  # indefinite: a constructed element's contents follow
            if not tag & 0x20 or tag & 0x1F == 0x1F:
                raise DerError("indefinite length of a primitive element")
            body, stop = pos + 2, None
        else:
            tag, body, stop = element(der, pos, limit)
        if tag & 0x20:
            if len(stack) >= _MAX_NESTING:
                raise DerError("nested too deep")
            stack.append((tag, [], stop))
            if stop is not None:
                limit = stop
            pos = body
        else:
            (stack[-1][1] if stack else out).append(encode(tag, der[body:stop]))
            if not stack:
                return out[0], stop
            pos = stop


def encode(tag: int, body: bytes) -> bytes:
    """The DER element of ``tag`` holding ``body`` (definite, shortest length)."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body
