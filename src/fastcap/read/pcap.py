"""Classic libpcap format: global header and the pure-Python record walker.

The walker mirrors csrc/walk.c:fc_walk_pcap field for field; tests assert both give identical
columns, so either can serve when the other is unavailable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .frames import F_OVER_SNAPLEN, F_SNAPPED, FrameWindow
from .walkstatus import BLOCK, CORRUPT, END, FULL, TRUNCATED, WalkStatus

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
# Alexey Kuznetzov's modified pcap (Linux libpcap patches of 1999): microsecond times, and
# more bytes after each record's usual 16 (interface index, protocol, packet type, padding)
# that say nothing fastcap reads: 8 in the 1999-10-29 patch's files, 12 in the 1999-09-15
# patch's.  The magic does not say which; as Wireshark does, the first records decide.
MAGIC_MODIFIED = 0xA1B2CD34
HEADER_LEN = 24
# `rules` (one int the walkers take): bit 0 nanosecond times; bit 1 each record's two
# lengths in the order of files before version 2.3 (original first); bit 2 in that order
# where the first is the larger (version 2.3 files were written both ways), as Wireshark
# reads them; bits 8 to 15 the bytes each record header has after the usual 16.
R_NANO, R_SWAPPED, R_MAYBE_SWAPPED = 1, 2, 4
_MODIFIED_EXTRAS = (8, 12)  # tried in this order, as Wireshark tries them
_TRIED = 3  # records read to choose


def record_len(rules: int) -> int:
    """Bytes of each record's header under `rules`."""
    return 16 + (rules >> 8 & 0xFF)
# Where another capture's file header begins (files concatenated) the walk stops, and its
# caller reads the header: a record whose first word is a pcap magic number in either byte
# order (so either reading of it), and whose next four bytes are version 2.0 to 2.4 in
# either byte order.  A packet stamped so would be from 2055, 2083 or 2106, with a fraction
# that is that version.
MAGICS = frozenset({MAGIC_US, MAGIC_NS, MAGIC_MODIFIED, 0xD4C3B2A1, 0x4D3CB2A1, 0x34CDB2A1})
VERSIONS = frozenset(struct.pack(o + "HH", 2, minor) for o in "<>" for minor in range(5))


@dataclass(frozen=True, slots=True)
class PcapHeader:
    big_endian: bool
    swapped: bool  # byte order differs from this machine's
    nanosecond: bool
    version: tuple[int, int]
    snaplen: int
    linktype: int
    fcs_len: int  # FCS bytes at the end of each frame (0 when the header says none)
    modified: bool = False  # Kuznetzov's magic: longer record headers
    extra: int = 0  # bytes each record header has after the usual 16

    @property
    def rules(self) -> int:
        """How the walkers read records (see R_NANO)."""
        major, minor = self.version
        order = (R_SWAPPED if (major == 2 and minor < 3) or major == 543
                 else R_MAYBE_SWAPPED if (major, minor) == (2, 3) else 0)
        return (R_NANO if self.nanosecond else 0) | order | self.extra << 8


def parse_header(head: bytes) -> PcapHeader | None:
    """Parse the 24-byte global header, or None when the magic is not pcap."""
    if len(head) < 4:
        return None
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", head)
        if magic in (MAGIC_US, MAGIC_NS, MAGIC_MODIFIED):
            break
    else:
        return None
    if len(head) < HEADER_LEN:
        raise ValueError("pcap file header is cut short")
    vmaj, vmin, _zone, _sigfigs, snaplen, lt_field = struct.unpack_from(order + "HHiIII", head, 4)
    # libpcap: bits 0-25 link type, bit 26 "FCS length present", bits 28-31 FCS length in
    # 16-bit words.
    fcs_len = ((lt_field >> 28) & 0xF) * 2 if lt_field & 0x04000000 else 0
    native_big = struct.pack("=I", 1) == struct.pack(">I", 1)
    big = order == ">"
    return PcapHeader(
        big_endian=big,
        swapped=big != native_big,
        nanosecond=magic == MAGIC_NS,
        version=(vmaj, vmin),
        snaplen=snaplen,
        linktype=lt_field & 0x03FFFFFF,
        fcs_len=fcs_len,
        modified=magic == MAGIC_MODIFIED,
    )


def with_records(hdr: PcapHeader, buf, size: int, at: int = 0) -> PcapHeader:
    """`hdr` with the record header length its file's records have.  Kuznetzov's magic is
    used by two layouts (8 or 12 more bytes); as Wireshark chooses, the first that reads
    the first three records without a flaw, else the one with the fewest flaws (a fraction
    of a second too large, a length past the snap length or the link type's largest, a
    captured length above the original, an unknown protocol or packet type, a record cut
    short).  `buf` holds the header at `at`; `size`: how much of `buf` is here."""
    if not hdr.modified:
        return hdr
    o = ">" if hdr.big_endian else "<"
    best = None
    for extra in _MODIFIED_EXTRAS:
        flaws, off = 0, at + HEADER_LEN
        for _ in range(_TRIED):
            if off == size:
                break
            if size - off < 16 + extra:
                flaws += 1
                break
            _sec, frac, incl, orig, _ifindex, proto, ptype = struct.unpack_from(
                o + "IIIIIHB", buf, off)
            ok = incl <= _LARGEST
            flaws += (frac >= 1_000_000) + (not ok) + (incl > hdr.snaplen) + (orig > 1 << 27)
            flaws += (incl > orig) + (_ifindex > 10000) + (ptype > 4) + (
                not (proto >= 0x0600 or proto in (0x0060, 0x0200, 0x0400) or proto <= 0x17))
            if not ok:
                break
            off += 16 + extra + incl
            if off > size:
                flaws += 1
                break
        if best is None or flaws < best[0]:
            best = (flaws, extra)
        if not flaws:
            break
    return replace(hdr, extra=best[1])


_LARGEST = 262144  # Wireshark's largest snap length for most link types


def walk_pcap_py(
    buf, length: int, start: int, big_endian: bool, rules: int, snaplen: int, max_caplen: int,
    win: FrameWindow, row0: int, next_frame: int,
) -> tuple[int, WalkStatus]:
    """Fill win rows from row0 with the records found from `start`; return (rows, status)."""
    rec = struct.Struct((">" if big_endian else "<") + "IIII")
    frac_mul = 1 if rules & R_NANO else 1000
    hl = record_len(rules)
    width = win.slab_width
    off, n, fno, cap = start, row0, next_frame, win.cap
    view = memoryview(buf)
    while True:
        if n == cap:
            return n - row0, WalkStatus(FULL, off, fno)
        if off >= length:
            return n - row0, WalkStatus(END, off, fno)
        if length - off < hl:
            return n - row0, WalkStatus(TRUNCATED, off, fno, hl)
        ts_sec, ts_frac, incl, orig = rec.unpack_from(buf, off)
        if rules & R_SWAPPED or (rules & R_MAYBE_SWAPPED and incl > orig):
            incl, orig = orig, incl
        if ts_sec in MAGICS and bytes(view[off + 4: off + 8]) in VERSIONS:
            return n - row0, WalkStatus(BLOCK, off, fno, ts_sec)
        if incl > max_caplen:
            return n - row0, WalkStatus(CORRUPT, off, fno, incl)
        if incl > length - off - hl:
            return n - row0, WalkStatus(TRUNCATED, off, fno, hl + incl)
        flags = 0
        if incl < orig:
            flags |= F_SNAPPED
        if snaplen and incl > snaplen:
            flags |= F_OVER_SNAPLEN
        k = min(incl, width)
        win.slab[n, :k] = view[off + hl : off + hl + k]
        win.slab[n, k:] = 0
        win.offset[n] = off + hl
        win.caplen[n] = incl
        win.orig_len[n] = orig
        win.ts_ns[n] = ts_sec * 1_000_000_000 + ts_frac * frac_mul
        win.iface[n] = 0
        win.frame_no[n] = fno
        win.flags[n] = flags
        n += 1
        fno += 1
        off += hl + incl
