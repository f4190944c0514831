"""DER elements, read and written: the one small reader the certificate-facing code shares
(the CA names of a CertificateRequest, certificates that are not strict DER, Zeek's names).

Reading is bounded and never recursive: each call reads one element's header inside the
bytes it is given and says where its content lies; a caller walks nesting levels itself.
"""

from __future__ import annotations

__all__ = ["DerError", "element", "elements", "encode"]


class DerError(ValueError):
    """Bytes this reader does not take: cut, longer than their container, an indefinite or
    over-long length, a high tag number."""


def element(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``pos``, which must lie
    inside ``end`` (lengths of up to 4 bytes, long form allowed, as BER writes them)."""
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
        if k == 0 or k > 4 or pos + k > end:
            raise DerError("indefinite or over-long length")
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


def encode(tag: int, body: bytes) -> bytes:
    """The DER element of ``tag`` holding ``body`` (definite, shortest length)."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body
