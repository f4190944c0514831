"""Structure-aware mutations of pcap/pcapng files, TLS records and DER certificates, for the
fuzz tests in test_fuzz.py.

Every mutation is a pure function of its input and a `random.Random`, so a failing example
replays from its seed alone.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

# Values a hostile length field is set to: empty, all ones, huge, and the sign boundaries.
EVIL_U32 = (0, 1, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF, 1 << 24, 0x10000)


@dataclass(frozen=True)
class Block:
    """One record (pcap) or block (pcapng) of a capture file, as the file lays it out."""

    offset: int
    length: int  # bytes, header and trailer included
    order: str  # "<" or ">"
    kind: int  # pcapng block type; -1 for a pcap record, -2 for the pcap file header
    # Offsets (absolute) of 32-bit length fields inside the block.
    len_fields: tuple[int, ...]


def split_blocks(data: bytes) -> list[Block]:
    """The records/blocks of a well-formed prefix of `data` (stops quietly at the first that
    does not fit): the boundaries mutations cut, duplicate and reorder at."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return _pcapng_blocks(data)
    for order in ("<", ">"):
        if len(data) >= 24 and struct.unpack_from(order + "I", data)[0] in (0xA1B2C3D4,
                                                                             0xA1B23C4D):
            return _pcap_blocks(data, order)
    return []


def _pcap_blocks(data: bytes, order: str) -> list[Block]:
    out = [Block(0, 24, order, -2, (16,))]  # snaplen
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(order + "I", data, off + 8)[0]
        if off + 16 + incl > len(data):
            break
        out.append(Block(off, 16 + incl, order, -1, (off + 8, off + 12)))
        off += 16 + incl
    return out


def _pcapng_blocks(data: bytes) -> list[Block]:
    out: list[Block] = []
    off, order = 0, "<"
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            magic = data[off + 8:off + 12]
            order = ">" if magic == b"\x1a\x2b\x3c\x4d" else "<"
        btype, blen = struct.unpack_from(order + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            break
        fields = [off + 4, off + blen - 4]
        if btype == 6 and blen >= 32:  # EPB: captured and original length
            fields += [off + 20, off + 24]
        elif btype == 3 and blen >= 16:  # SPB: original length
            fields.append(off + 8)
        elif btype == 1 and blen >= 20:  # IDB: snaplen, first option length
            fields.append(off + 12)
        out.append(Block(off, blen, order, btype, tuple(fields)))
        off += blen
    return out


def _put32(buf: bytearray, at: int, value: int, order: str) -> None:
    if 0 <= at <= len(buf) - 4:
        struct.pack_into(order + "I", buf, at, value & 0xFFFFFFFF)


MUTATIONS = ("bitflip", "overwrite", "truncate_boundary", "truncate_random", "length_field",
             "duplicate", "reorder", "insert_garbage", "delete_range", "splice_header")


def mutate_capture(data: bytes, rng: random.Random, op: str | None = None) -> bytes:
    """One mutation of a capture file.  `op` picks it (see MUTATIONS), else chosen at random."""
    op = op or rng.choice(MUTATIONS)
    buf = bytearray(data)
    blocks = split_blocks(data)
    if not buf:
        return bytes(rng.randbytes(rng.randrange(1, 64)))
    if op == "bitflip":
        for _ in range(rng.randrange(1, 9)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif op == "overwrite":
        i = rng.randrange(len(buf))
        n = rng.randrange(1, 17)
        buf[i:i + n] = rng.randbytes(min(n, len(buf) - i))
    elif op == "truncate_boundary" and blocks:
        b = rng.choice(blocks)
        cut = rng.choice([b.offset, b.offset + b.length, b.offset + rng.randrange(b.length),
                          b.offset + 4, b.offset + 8, b.offset + b.length - 1])
        del buf[max(cut, 1):]
    elif op == "length_field" and blocks:
        b = rng.choice(blocks)
        at = rng.choice(b.len_fields)
        if 0 <= at <= len(buf) - 4:
            old = struct.unpack_from(b.order + "I", buf, at)[0]
            new = rng.choice([*EVIL_U32, old + 1, old - 1, old + 4, old - 4, old * 2,
                              old + rng.randrange(1, 1 << 20)])
            _put32(buf, at, new, b.order)
    elif op == "duplicate" and blocks:
        b = rng.choice(blocks)
        chunk = buf[b.offset:b.offset + b.length]
        at = rng.choice(blocks)
        pos = at.offset + (at.length if rng.random() < 0.5 else 0)
        buf[pos:pos] = chunk * rng.randrange(1, 4)
    elif op == "reorder" and len(blocks) >= 2:
        i, j = sorted(rng.sample(range(len(blocks)), 2))
        a, b = blocks[i], blocks[j]
        pieces = [buf[:a.offset], buf[b.offset:b.offset + b.length],
                  buf[a.offset + a.length:b.offset], buf[a.offset:a.offset + a.length],
                  buf[b.offset + b.length:]]
        buf = bytearray(b"".join(pieces))
    elif op == "insert_garbage":
        pos = rng.choice([b.offset for b in blocks] or [0]) if rng.random() < 0.7 else \
            rng.randrange(len(buf) + 1)
        garbage = rng.choice([rng.randbytes(rng.randrange(1, 40)), b"\0" * rng.randrange(1, 40),
                              b"\xff" * rng.randrange(1, 40)])
        buf[pos:pos] = garbage
    elif op == "delete_range":
        i = rng.randrange(len(buf))
        del buf[i:i + rng.randrange(1, 64)]
    elif op == "splice_header" and blocks:
        # A block header copied over another block: plausible type, wrong lengths.
        src, dst = rng.choice(blocks), rng.choice(blocks)
        buf[dst.offset:dst.offset + 8] = data[src.offset:src.offset + 8]
    else:  # the structural mutation had nothing to work on
        cut = rng.randrange(1, len(buf) + 1)
        del buf[cut:]
    return bytes(buf) if buf else b"\0"


def packet_data_spans(data: bytes) -> list[tuple[int, int]]:
    """(file offset, captured length) of the packet bytes of each pcap record / EPB / SPB."""
    out = []
    for b in split_blocks(data):
        if b.kind == -1:
            out.append((b.offset + 16, b.length - 16))
        elif b.kind == 6 and b.length >= 32:
            caplen = struct.unpack_from(b.order + "I", data, b.offset + 20)[0]
            out.append((b.offset + 28, min(caplen, b.length - 32)))
        elif b.kind == 3 and b.length >= 16:
            out.append((b.offset + 12, b.length - 16))
    return out


# Header bytes worth planting: IP versions/IHLs, VLAN TPIDs, IPv6 extension headers, TCP data
# offsets, address families of the NULL/LOOP link types.
_HEADER_VALUES = (0x00, 0x01, 0x02, 0x04, 0x06, 0x11, 0x2B, 0x2C, 0x3A, 0x3B, 0x3C, 0x40, 0x41,
                  0x45, 0x46, 0x4F, 0x50, 0x60, 0x81, 0x86, 0x88, 0x91, 0xA8, 0xDD, 0xF0, 0xFF)


def mutate_headers(data: bytes, rng: random.Random, edits: int = 4) -> bytes:
    """Overwrite bytes in the first 96 bytes of random packets (link, IP and TCP headers)."""
    spans = [s for s in packet_data_spans(data) if s[1] > 0]
    if not spans:
        return mutate_capture(data, rng, "bitflip")
    buf = bytearray(data)
    for _ in range(edits):
        off, n = rng.choice(spans)
        i = off + rng.randrange(min(n, 96))
        if rng.random() < 0.6:
            buf[i] = rng.choice(_HEADER_VALUES)
        elif rng.random() < 0.5:
            buf[i] ^= 1 << rng.randrange(8)
        else:
            buf[i:i + 2] = rng.choice([b"\x81\x00", b"\x88\xa8", b"\x86\xdd", b"\x08\x00",
                                       b"\xff\xff", b"\x00\x00"])[:len(buf) - i]
    return bytes(buf)


# --- TLS records --------------------------------------------------------------------------


def tls_length_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of length fields in a stream of TLS records: record lengths, handshake
    lengths, and the vectors inside ClientHello/ServerHello/Certificate messages that sit
    whole inside one record."""
    out: list[tuple[int, int]] = []
    off = 0
    while off + 5 <= len(data):
        ctype, rlen = data[off], int.from_bytes(data[off + 3:off + 5], "big")
        out.append((off + 3, 2))
        body_at = off + 5
        if ctype == 22:
            p = body_at
            end = min(body_at + rlen, len(data))
            while p + 4 <= end:
                mtype, mlen = data[p], int.from_bytes(data[p + 1:p + 4], "big")
                out.append((p + 1, 3))
                _inner_fields(data, mtype, p + 4, min(p + 4 + mlen, end), out)
                p += 4 + mlen
        off = body_at + rlen
    return out


def _inner_fields(data: bytes, mtype: int, p: int, end: int, out: list[tuple[int, int]]) -> None:
    try:
        if mtype in (1, 2):  # hello: version, random, session id, ...
            q = p + 34
            out.append((q, 1))
            q += 1 + data[q]
            if mtype == 1:
                out.append((q, 2))
                q += 2 + int.from_bytes(data[q:q + 2], "big")
                out.append((q, 1))
                q += 1 + data[q]
            else:
                q += 3
            if q + 2 <= end:
                out.append((q, 2))
                q += 2
                while q + 4 <= end:
                    out.append((q + 2, 2))
                    q += 4 + int.from_bytes(data[q + 2:q + 4], "big")
        elif mtype == 11:  # certificate: (TLS 1.2 form) list length, then each entry
            out.append((p, 3))
            q = p + 3
            while q + 3 <= end:
                out.append((q, 3))
                q += 3 + int.from_bytes(data[q:q + 3], "big")
    except IndexError:
        return


def mutate_tls(data: bytes, rng: random.Random) -> bytes:
    """One hostile edit of a TLS byte stream, biased to length fields."""
    buf = bytearray(data)
    if not buf:
        return bytes(rng.randbytes(rng.randrange(1, 8)))
    fields = tls_length_fields(data)
    op = rng.randrange(6)
    if op <= 2 and fields:
        at, size = rng.choice(fields)
        old = int.from_bytes(buf[at:at + size], "big")
        top = (1 << (8 * size)) - 1
        new = rng.choice([0, 1, top, top - 1, old + 1, old - 1, old + 4, old * 2,
                          rng.randrange(top + 1)])
        buf[at:at + size] = (new & top).to_bytes(size, "big")
    elif op == 3:
        i = rng.randrange(len(buf))
        buf[i] = rng.randrange(256)
    elif op == 4:
        cut = rng.choice([a for a, _ in fields] or [0]) if rng.random() < 0.5 else \
            rng.randrange(len(buf) + 1)
        del buf[cut:]
    else:
        i = rng.randrange(len(buf))
        del buf[i:i + rng.randrange(1, 40)]
    return bytes(buf)


# --- DER --------------------------------------------------------------------------------------


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_tlvs(der: bytes, limit: int = 4000) -> list[tuple[int, int, int]]:
    """(tag offset, length-octets offset, content length) of every TLV reachable by walking
    constructed types from the start of `der` (at most `limit` entries)."""
    out: list[tuple[int, int, int]] = []
    stack = [(0, len(der))]
    while stack and len(out) < limit:
        p, end = stack.pop()
        while p + 2 <= end and len(out) < limit:
            tag, first = der[p], der[p + 1]
            if first < 0x80:
                n, hdr = first, 2
            else:
                k = first & 0x7F
                if k == 0 or k > 4 or p + 2 + k > end:
                    break
                n, hdr = int.from_bytes(der[p + 2:p + 2 + k], "big"), 2 + k
            if p + hdr + n > end:
                break
            out.append((p, p + 1, n))
            if tag & 0x20:
                stack.append((p + hdr, p + hdr + n))
            p += hdr + n
    return out


def mutate_der(der: bytes, rng: random.Random) -> bytes:
    """One structure-aware edit of a DER certificate: a TLV's length set to 0, huge, or off
    by one, a cut at a TLV boundary, a tag change, or a TLV duplicated or dropped."""
    tlvs = der_tlvs(der)
    buf = bytearray(der)
    if not tlvs or not buf:
        return bytes(rng.randbytes(8))
    tag_at, len_at, n = rng.choice(tlvs)
    first = buf[len_at]
    k = 1 + (first & 0x7F if first >= 0x80 else 0)
    hdr = 1 + k
    op = rng.randrange(7)
    if op == 0:  # new length, re-encoded (the content stays as it was)
        new = rng.choice([0, 1, n - 1, n + 1, n + 2, 0x7F, 0x80, 0xFFFF, 0xFFFFFF, 0x7FFFFFFF])
        buf[len_at:len_at + k] = der_len(max(new, 0))
    elif op == 1:  # length octets that no DER parser should take
        buf[len_at:len_at + k] = rng.choice([b"\x80", b"\x85\x01\x00\x00\x00\x00", b"\xff",
                                             b"\x84\xff\xff\xff\xff", b"\x81\x05"])
    elif op == 2:  # cut at the start, inside or at the end of a TLV
        cut = rng.choice([tag_at, len_at, tag_at + hdr, tag_at + hdr + n // 2,
                          tag_at + hdr + n])
        del buf[max(cut, 1):]
    elif op == 3:
        buf[tag_at] = rng.choice([0x00, 0x05, 0x30, 0x31, 0xA0, 0xA3, 0x1F, 0xFF,
                                  buf[tag_at] ^ 0x20])
    elif op == 4:  # duplicate the TLV in place
        whole = buf[tag_at:tag_at + hdr + n]
        buf[tag_at:tag_at] = whole
    elif op == 5:  # drop it
        del buf[tag_at:tag_at + hdr + n]
    else:
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def nested_sequences(depth: int, core: bytes = b"\x05\x00") -> bytes:
    """`depth` SEQUENCEs each holding the next, around `core` (built inside out, no recursion)."""
    out = core
    for _ in range(depth):
        out = b"\x30" + der_len(len(out)) + out
    return out


def nested_indefinite(depth: int) -> bytes:
    """BER indefinite-length SEQUENCEs nested `depth` deep (invalid DER on purpose)."""
    return b"\x30\x80" * depth + b"\x00\x00" * depth
