"""pcapng: Section Header, Interface Description and the other non-packet blocks, plus the
pure-Python packet-block walker that mirrors csrc/walk.c:fc_walk_pcapng.

Packet blocks (EPB, SPB, obsolete PB) are framed by the walker; every other block comes back
here, so the state a section carries (byte order, interfaces) lives in one place: `Section`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np

from .frames import F_NO_TS, F_OVER_SNAPLEN, F_SNAPPED, FrameWindow
from .walkstatus import (
    BAD_IFACE,
    BLOCK,
    CORRUPT,
    END,
    FULL,
    TRUNCATED,
    IfaceParams,
    WalkStatus,
    ts_to_ns,
)

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002
BT_SPB = 0x00000003
BT_NRB = 0x00000004
BT_ISB = 0x00000005
BT_EPB = 0x00000006
BT_DSB = 0x0000000A
BT_CUSTOM = (0x00000BAD, 0x40000BAD)
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_FCSLEN = 13
IF_TSOFFSET = 14

# Blocks other than packets that the reader needs itself (the walkers step over the rest and
# count them): interface descriptions and decryption secrets are parsed, custom and systemd
# journal blocks are numbered as frames, as Wireshark numbers them.
NEEDED_BLOCKS = frozenset({BT_IDB, BT_DSB, 0x00000009, 0x00000BAD, 0x40000BAD})
QUIET_TYPES = 8  # block types a walk counts at most (fc_status.quiet_type)
# The smallest length of each block type whose fixed fields Wireshark reads (a shorter one
# is damage, and tshark stops there): the walkers hand these to the caller, which warns.
MIN_BLOCK = {BT_NRB: 16, BT_ISB: 24, BT_DSB: 20, 0x00000009: 35, 0x00000BAD: 16,
             0x40000BAD: 16}

BLOCK_NAMES = {
    BT_SHB: "section header", BT_IDB: "interface description", BT_PB: "packet",
    BT_SPB: "simple packet", BT_NRB: "name resolution", BT_ISB: "interface statistics",
    BT_EPB: "enhanced packet", BT_DSB: "decryption secrets",
    0x00000009: "systemd journal", 0x00000BAD: "custom", 0x40000BAD: "custom",
}


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface; `index` is global across all sections of the file.  Frozen:
    the walk hands it on to the stages after it in the capture's metadata."""

    index: int
    section: int
    linktype: int
    snaplen: int
    tsres_pow2: bool = False
    tsres_exp: int = 6
    tsoffset_s: int = 0
    fcs_len: int | None = None
    name: str | None = None

    def params(self) -> IfaceParams:
        return IfaceParams(self.snaplen, self.tsres_pow2, self.tsres_exp, self.tsoffset_s,
                           self.index)


@dataclass(frozen=True, slots=True)
class Section:
    """A section header and the interfaces met in it so far.  Frozen: a walk state that
    starts another walk (a range, a stream's next piece) holds it, so a walk that meets an
    interface makes a new one (`with_interface`) rather than add to one another walk has."""

    index: int
    offset: int
    big_endian: bool
    version: tuple[int, int]
    interfaces: tuple[Interface, ...] = ()

    def with_interface(self, ifc: Interface) -> Section:
        """This section with `ifc` met in it too."""
        return replace(self, interfaces=(*self.interfaces, ifc))


TLS_KEY_LOG = 0x544C534B  # secrets type "TLSK": an NSS key log
MAX_KEY_LOG_KEPT = 64 << 20  # key log bytes of secrets blocks kept per capture


@dataclass(frozen=True, slots=True)
class SecretsBlock:
    """A Decryption Secrets Block kept by reference, with the text of a TLS key log (type
    TLS_KEY_LOG) kept too, up to MAX_KEY_LOG_KEPT bytes per walk, so it is read only once;
    `frame` is the number of the first frame after it: its keys serve the sessions whose
    last frame is that one or later."""

    offset: int
    secrets_type: int
    data_offset: int
    data_len: int
    frame: int = 0
    data: bytes = b""


def padded(blen: int) -> int:
    """A block's length rounded up to a multiple of 4, as Wireshark reads it: some writers
    leave the padding out of both length fields.  A damaged length that was a multiple of 4
    (any flip of its two low bits) never rounds back to itself, so damage is still found."""
    return (blen + 3) & ~3


def trailer_is_a_header(buf, off: int, blen: int, order: str) -> bool:
    """Whether the block at `off`, framed with length `blen` (padded, its trailer matching),
    is in truth a damaged length that reached another block's leading length: the word its
    trailer was read from is then preceded by that block's type (any type: a reader skips
    one it does not know by its length, as tshark does, so it is a block all the same), and
    the word before that is the trailer of a block that ends there, whose leading length
    (the one at `off`, damaged, or that of a block it swallowed, 12 bytes on at least)
    agrees with it.  An EPB of 72 bytes whose length reads 77 to 80 pads to 80, and the
    next EPB's own length 80 stands where its trailer would: taken whole, it hides the next
    block's header, and that block is lost too.  Such a block is damage to resynchronise
    past; in a sound block the two words before the trailer are packet data or options,
    and so rarely a length that frames a block ending there.  Only the block's own bytes
    are read: the answer does not depend on how much of the file follows (a range, a
    stream piece).  The walkers ask only where the word before the type could be such a
    length (9 up to `blen` - 8), so the usual block costs one comparison more."""
    (w,) = struct.unpack_from(order + "I", buf, off + blen - 12)
    p = padded(w)
    if not 12 <= p <= blen - 8:
        return False
    start = off + blen - 8 - p  # where the block that ends before the type begins
    return start == off or (start >= off + 12 and padded(
        struct.unpack_from(order + "I", buf, start + 4)[0]) == p)


def beyond(length: int, upto: int, more: bool) -> int | None:
    """None where the bytes up to `upto` are in hand (`length`); else what a check reading
    them returns: `upto` where more may follow (`more`: a range's or a stream piece's end,
    not the data's), so the walk asks for them, or 0, the check standing as at the end of
    the data.  So where a range or a piece ends never changes a verdict."""
    if upto <= length:
        return None
    return upto if more else 0


def unpadded_damage(buf, length: int, off: int, blen: int, order: str, max_block: int,
                    more: bool = False) -> int:
    """Whether a length left unpadded (a field not a multiple of 4, rounded up to `blen`)
    is damage: 0 it stands, 1 damage, or the bytes from `off` the verdict needs (`beyond`).
    Damage to a length can round it up to a field of a later block that passes for its
    trailer: an EPB of 36 bytes reading 57 pads to 60, where the next EPB's captured length
    57 stands.  Such a block is refused where what follows it is no block header (not the
    end of the data, a section header, or a length of 12 to `max_block`) and, it being a
    packet block, a block is framed where its packet data ends, inside it: the block that
    the damaged length swallowed.  A sound unpadded block followed by damage is kept, as
    Wireshark keeps it.  Only unpadded lengths pay for it (csrc/walk.c:unpadded_damage is
    its twin)."""
    nxt = off + blen
    if (need := beyond(length, nxt + 8, more)) is not None:
        return need and need - off
    btype, field = struct.unpack_from(order + "II", buf, nxt)
    if btype == BT_SHB or 12 <= field <= max_block:
        return 0
    (own,) = struct.unpack_from(order + "I", buf, off)
    if own not in (BT_EPB, BT_PB) or blen < 32:
        return 0
    end = 32 + padded(struct.unpack_from(order + "I", buf, off + 20)[0])
    if end >= blen:
        return 0
    (inner,) = struct.unpack_from(order + "I", buf, off + end + 4)
    q = padded(inner)
    if not 12 <= inner <= max_block:
        return 0
    if (need := beyond(length, off + end + q, more)) is not None:
        return need and need - off
    return int(padded(struct.unpack_from(order + "I", buf, off + end + q - 4)[0]) == q)


def swallows_a_block(buf, length: int, off: int, first: int, blen: int, order: str,
                     max_block: int, more: bool = False) -> int:
    """Whether the block at `off`, of length `blen`, swallowed a block that begins inside
    it: 0 no, 1 yes, or the bytes from `off` the verdict needs (`beyond`).  Swallowed: at
    some `s` from `first` on (4-aligned, its header inside), the word before is a trailer
    that frames the block as ending there (rounded up, it is `s`), and a block follows with
    a sane length reaching past `blen` and a trailer matching it (after any number of
    blocks framed wholly inside, passed), of these blocks at least one of a known type (a
    reader skips the others by their length, as tshark does, but any type may be bytes of
    packet data: the known types are the evidence).  A length damaged to
    one a field of a later block passes the trailer check for (an EPB of 36 bytes reading
    60, where the next EPB's captured length 57 rounds up to 60; a statistics block of 24
    reading 48, where it stands at 20 of the next EPB) is so found.  Packet blocks are
    searched from where their data ends (their options: a sound one's begin with an option
    code and length, no block header), other blocks from 12 (`swallow_from`); a block's
    bytes cost one comparison a word, and the chains passed cost at most one step a word:
    a block passed by two chains would have the same length in both (its trailer), so the
    same block before it, back to a start, and a start's trailer word is its own offset,
    never a passed block's length (csrc/walk.c:swallows_a_block is its twin)."""
    n = (blen - 8 - first) // 4 + 1  # places s = first, first + 4, ..., s + 8 <= blen
    if n <= 0:
        return 0
    words = np.frombuffer(buf, np.dtype(order + "u4"), n, off + first - 4).astype(np.int64)
    for k in np.flatnonzero(((words + 3) & ~3) == first + 4 * np.arange(n)).tolist():
        s = first + 4 * k
        btype, field = struct.unpack_from(order + "II", buf, off + s)
        if not 12 <= field <= max_block:
            continue
        t, q = s, padded(field)
        past, known = True, btype in BLOCK_NAMES
        while t + q <= blen:  # sound blocks wholly inside are passed
            past = False
            if padded(struct.unpack_from(order + "I", buf, off + t + q - 4)[0]) != q:
                break
            t += q
            if t + 8 > blen:
                break
            btype, field = struct.unpack_from(order + "II", buf, off + t)
            if not 12 <= field <= max_block:
                break
            q = padded(field)
            past, known = True, known or btype in BLOCK_NAMES
        if not past or not known:
            continue
        if (need := beyond(length, off + t + q, more)) is not None:
            if need:
                return need - off
            continue
        if padded(struct.unpack_from(order + "I", buf, off + t + q - 4)[0]) == q:
            return 1
    return 0


def swallow_from(buf, off: int, blen: int, order: str) -> int:
    """Where in the block at `off` (of type and length framed, `blen`) swallows_a_block
    searches, as the walkers call it: past a packet block's data (`blen` where it leaves
    none, or claims more than there is), nowhere in a simple packet block (its data fills
    it), from 12 in any other."""
    btype, = struct.unpack_from(order + "I", buf, off)
    if btype == BT_SPB:
        return blen
    if btype in (BT_EPB, BT_PB):
        if blen < 32:
            return blen
        caplen = struct.unpack_from(order + "I", buf, off + 20)[0]
        return blen if caplen > blen - 32 else 32 + padded(caplen)
    return 12


def byte_order_of_shb(buf, off: int) -> bool | None:
    """True for big endian, False for little, None when the byte-order magic is wrong."""
    if len(buf) - off < 12:
        return None
    magic = bytes(buf[off + 8 : off + 12])
    if magic == b"\x1a\x2b\x3c\x4d":
        return True
    if magic == b"\x4d\x3c\x2b\x1a":
        return False
    return None


def iter_options(body: bytes, order: str):
    """Yield (code, value) of an options list; stops quietly at the end or a cut option."""
    pos = 0
    while pos + 4 <= len(body):
        code, olen = struct.unpack_from(order + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            return
        end = pos + 4 + olen
        if end > len(body):
            return
        yield code, body[pos + 4 : end]
        pos = end + (-olen % 4)


def cut_option(body: bytes, order: str) -> int | None:
    """Where in `body` (an options list) the first option whose length runs past the list
    begins; None when every option fits.  iter_options stops there without a word, and
    Wireshark refuses the whole file: the options after it (if_tsresol, say) go unread."""
    pos = 0
    while pos + 4 <= len(body):
        code, olen = struct.unpack_from(order + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            return None
        if pos + 4 + olen > len(body):
            return pos
        pos += 4 + olen + (-olen % 4)
    return None


_OPTION_SIZES = {IF_TSRESOL: 1, IF_FCSLEN: 1, IF_TSOFFSET: 8}


def parse_idb(body: bytes, order: str, index: int, section: int) -> Interface:
    """Parse an IDB body (after type/length, before the trailing length)."""
    if len(body) < 8:
        raise ValueError("interface description block is shorter than its fixed fields")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
    opts: dict[str, object] = {}  # the options read, by Interface field
    # As Wireshark takes them: a one-byte option only at length 1, an eight-byte one only
    # at length 8, and only the first such of a code (a second, damage say, is ignored).
    taken: set[int] = set()
    for code, value in iter_options(body[8:], order):
        size = _OPTION_SIZES.get(code)
        if size is not None and (len(value) != size or code in taken):
            continue
        taken.add(code)
        if code == IF_TSRESOL:
            opts["tsres_pow2"] = bool(value[0] & 0x80)
            opts["tsres_exp"] = value[0] & 0x7F
        elif code == IF_TSOFFSET:
            (opts["tsoffset_s"],) = struct.unpack_from(order + "q", value)
        elif code == IF_FCSLEN:
            opts["fcs_len"] = value[0]
        elif code == IF_NAME:
            opts["name"] = value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return Interface(index=index, section=section, linktype=linktype, snaplen=snaplen,
                     **opts)  # type: ignore[arg-type]


def walk_pcapng_py(
    buf, length: int, start: int, big_endian: bool, ifaces: list[IfaceParams], max_block: int,
    win: FrameWindow, row0: int, next_frame: int, quiet_max: int = 0, more: bool = False,
) -> tuple[int, WalkStatus]:
    """Frame packet blocks from `start` into win rows from row0; return (rows, status).
    Blocks the caller only counts are stepped over and counted, up to `quiet_max` types
    (see fc_status.quiet_max); `more`: bytes may follow `length` (see fc_status.more)."""
    order = ">" if big_endian else "<"
    u32 = struct.Struct(order + "I")
    two = struct.Struct(order + "II")
    tail = struct.Struct(order + "I4xI")  # the word before the block type, the trailer
    pkt = struct.Struct(order + "IIIII")
    width = win.slab_width
    view = memoryview(buf)
    off, n, fno, cap = start, row0, next_frame, win.cap
    quiet: dict[int, int] = {}
    held = min(quiet_max, QUIET_TYPES)

    def status(code: int, at: int, frame: int, detail: int = 0) -> tuple[int, WalkStatus]:
        return n - row0, WalkStatus(code, at, frame, detail, tuple(quiet.items()))

    while True:
        if n == cap:
            return status(FULL, off, fno)
        if off >= length:
            return status(END, off, fno)
        if length - off < 12:
            return status(TRUNCATED, off, fno, 12)
        btype, blen = two.unpack_from(buf, off)
        if btype == BT_SHB:
            return status(BLOCK, off, fno, btype)
        if blen < 12 or blen > max_block:
            return status(CORRUPT, off, fno, blen)
        field, blen = blen, padded(blen)
        if blen > length - off:
            return status(TRUNCATED, off, fno, blen)
        last, trailer = tail.unpack_from(buf, off + blen - 12)
        if padded(trailer) != blen or (9 <= last <= blen - 8
                                       and trailer_is_a_header(buf, off, blen, order)):
            return status(CORRUPT, off, fno, field)
        if field != blen:
            verdict = unpadded_damage(buf, length, off, blen, order, max_block, more)
            if verdict > 1:  # the verdict needs bytes past `length`: decided with them
                return status(TRUNCATED, off, fno, verdict)
            if verdict:
                return status(CORRUPT, off, fno, field)
        flags = 0
        units = 0
        if btype in (BT_EPB, BT_PB):
            if blen < 32:
                return status(CORRUPT, off, fno, blen)
            first, ts_hi, ts_lo, caplen, orig = pkt.unpack_from(buf, off + 8)
            if btype == BT_PB:  # obsolete Packet Block: 16-bit interface id, 16-bit drops
                (first,) = struct.unpack_from(order + "H", buf, off + 8)
            iface_id = first
            units = (ts_hi << 32) | ts_lo
            if caplen > blen - 32:
                return status(CORRUPT, off, fno, caplen)
            if 32 + padded(caplen) < blen:
                verdict = swallows_a_block(buf, length, off, 32 + padded(caplen), blen, order,
                                           max_block, more)
                if verdict > 1:
                    return status(TRUNCATED, off, fno, verdict)
                if verdict:
                    return status(CORRUPT, off, fno, field)
            data = off + 28
        elif btype == BT_SPB:
            if blen < 16:
                return status(CORRUPT, off, fno, blen)
            iface_id = 0
            (orig,) = u32.unpack_from(buf, off + 8)
            caplen = min(blen - 16, orig)
            if ifaces and ifaces[0].snaplen and caplen > ifaces[0].snaplen:
                caplen = ifaces[0].snaplen
            data = off + 12
            flags |= F_NO_TS
        else:
            verdict = swallows_a_block(buf, length, off, 12, blen, order, max_block, more)
            if verdict > 1:
                return status(TRUNCATED, off, fno, verdict)
            if verdict:
                return status(CORRUPT, off, fno, field)
            if (btype not in NEEDED_BLOCKS and (btype in quiet or len(quiet) < held)
                    and blen >= MIN_BLOCK.get(btype, 12)):
                quiet[btype] = quiet.get(btype, 0) + 1
                off += blen
                continue
            return status(BLOCK, off, fno, btype)
        if iface_id >= len(ifaces):
            return status(BAD_IFACE, off, fno, iface_id)
        ifc = ifaces[iface_id]
        if caplen < orig:
            flags |= F_SNAPPED
        if ifc.snaplen and caplen > ifc.snaplen:
            flags |= F_OVER_SNAPLEN
        k = min(caplen, width)
        win.slab[n, :k] = view[data : data + k]
        win.slab[n, k:] = 0
        win.offset[n] = data
        win.caplen[n] = caplen
        win.orig_len[n] = orig
        win.ts_ns[n] = 0 if flags & F_NO_TS else ts_to_ns(
            units, ifc.tsres_pow2, ifc.tsres_exp, ifc.tsoffset_s)
        win.iface[n] = ifc.global_index
        win.frame_no[n] = fno
        win.flags[n] = flags
        n += 1
        fno += 1
        off += blen
