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
# Ixia's lcap: pcap with 4 more bytes at the end of the file header (the records' total
# length); the hardware capture's times are in nanoseconds, the software capture's in
# microseconds.
MAGIC_IXIA_HW = 0x1C0001AC
MAGIC_IXIA_SW = 0x1C0001AB
HEADER_LEN = 24
MAX_HEADER_LEN = 28  # Ixia's
# `rules` (one int the walkers take): bit 0 nanosecond times; bit 1 each record's two
# lengths in the order of files before version 2.3 (original first); bit 2 in that order
# where the first is the larger (version 2.3 files were written both ways), as Wireshark
# reads them; bits 8 to 15 the bytes each record header has after the usual 16.
R_NANO, R_SWAPPED, R_MAYBE_SWAPPED = 1, 2, 4
# Record header forms the standard magic is also written with, told apart (as Wireshark
# tells them) by how well the first records read: (bytes after the usual 16, their kind).
# Red Hat 6.1's libpcap (the 1999-04-17 patch) wrote Kuznetzov's 8-byte tail under the
# standard magic; Nokia's IPSO writes 4 bytes of its own.
_PLAIN, _TAIL, _NOKIA = 0, 1, 2
_STANDARD_FORMS = ((0, _PLAIN), (8, _TAIL), (4, _NOKIA))
_MODIFIED_FORMS = ((8, _TAIL), (12, _TAIL))  # tried in this order, as Wireshark tries them
_TRIED = 3  # records read to choose
# AIX's libpcap writes version 2.2 headers with an RFC 1573 ifType for the link type, and
# nanosecond times; Wireshark takes a version 2.2 file of these four types for AIX's.
_AIX_LINKTYPES = {6: 1, 9: 6, 15: 10, 24: 0}  # Ethernet, Token Ring, FDDI, loopback


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
    extra: int = 0  # bytes each record header has after the usual 16
    forms: tuple[tuple[int, int], ...] = ()  # record header forms to choose from (see with_records)
    header_len: int = HEADER_LEN

    @property
    def rules(self) -> int:
        """How the walkers read records (see R_NANO)."""
        major, minor = self.version
        order = (R_SWAPPED if (major == 2 and minor < 3) or major == 543
                 else R_MAYBE_SWAPPED if (major, minor) == (2, 3) else 0)
        return (R_NANO if self.nanosecond else 0) | order | self.extra << 8


_MAGICS_READ = {MAGIC_US: (False, HEADER_LEN), MAGIC_NS: (True, HEADER_LEN),
                MAGIC_MODIFIED: (False, HEADER_LEN), MAGIC_IXIA_HW: (True, MAX_HEADER_LEN),
                MAGIC_IXIA_SW: (False, MAX_HEADER_LEN)}


def parse_header(head: bytes) -> PcapHeader | None:
    """Parse the file header (24 bytes, 28 for Ixia's), or None when the magic is not
    pcap."""
    if len(head) < 4:
        return None
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", head)
        if magic in _MAGICS_READ:
            break
    else:
        return None
    nanosecond, header_len = _MAGICS_READ[magic]
    if len(head) < header_len:
        raise ValueError("pcap file header is cut short")
    vmaj, vmin, _zone, _sigfigs, snaplen, lt_field = struct.unpack_from(order + "HHiIII", head, 4)
    # libpcap: bits 0-25 link type, bit 26 "FCS length present", bits 28-31 FCS length in
    # 16-bit words.
    fcs_len = ((lt_field >> 28) & 0xF) * 2 if lt_field & 0x04000000 else 0
    linktype = lt_field & 0x03FFFFFF
    native_big = struct.pack("=I", 1) == struct.pack(">I", 1)
    big = order == ">"
    forms: tuple[tuple[int, int], ...] = ()
    if magic == MAGIC_MODIFIED:
        forms = _MODIFIED_FORMS
    elif magic == MAGIC_US and (vmaj, vmin) == (2, 2) and lt_field in _AIX_LINKTYPES:
        linktype, nanosecond = _AIX_LINKTYPES[lt_field], True
    elif magic == MAGIC_US and not ((vmaj == 2 and vmin <= 3) or vmaj == 543):
        forms = _STANDARD_FORMS  # older versions predate the other forms
    return PcapHeader(
        big_endian=big,
        swapped=big != native_big,
        nanosecond=nanosecond,
        version=(vmaj, vmin),
        snaplen=snaplen,
        linktype=linktype,
        fcs_len=fcs_len,
        forms=forms,
        header_len=header_len,
    )


def with_records(hdr: PcapHeader, buf, size: int, at: int = 0) -> PcapHeader:
    """`hdr` with the record header form its file's records have, where its magic leaves
    a choice: as Wireshark chooses, the first form that reads the first three records
    without a flaw, else the one with the fewest flaws (a fraction of a second too large,
    a length past the snap length or the link type's largest, a captured length above the
    original, a record cut short; in a tail, an unknown protocol or packet type; in
    Nokia's 4 bytes, a value unlike those seen).  `buf` holds the header at `at`; `size`:
    how much of `buf` is here."""
    if not hdr.forms:
        return hdr
    o = ">" if hdr.big_endian else "<"
    best = None
    for extra, kind in hdr.forms:
        flaws = _flaws(buf, size, at + hdr.header_len, o, hdr.snaplen, extra, kind)
        if best is None or flaws < best[0]:
            best = (flaws, extra)
        if not flaws:
            break
    return replace(hdr, extra=best[1], forms=())


def _flaws(buf, size: int, off: int, o: str, snaplen: int, extra: int, kind: int) -> int:
    """How many flaws the first records from `off` have when read in one form."""
    flaws = 0
    for _ in range(_TRIED):
        if off == size:
            break
        if size - off < 16 + extra:
            return flaws + 1
        _sec, frac, incl, orig = struct.unpack_from(o + "IIII", buf, off)
        ok = incl <= _LARGEST
        flaws += (frac >= 1_000_000) + (not ok) + (incl > snaplen) + (orig > 1 << 27)
        flaws += incl > orig
        if kind == _TAIL:
            ifindex, proto, ptype = struct.unpack_from(o + "IHB", buf, off + 16)
            flaws += (ifindex > 10000) + (ptype > 4) + (
                not (proto >= 0x0600 or proto in (0x0060, 0x0200, 0x0400) or proto <= 0x17))
        elif kind == _NOKIA:
            flaws += not _nokia_like(buf, off + 16)
        if not ok:
            break
        off += 16 + extra + incl
        if off > size:
            return flaws + 1
    return flaws


def _nokia_like(buf, off: int) -> bool:
    """The 4 bytes after a Nokia record's usual 16 have been seen only as 0xXfbfYZ0W (X 9
    or b, Y b or d, Z 6 or 9, W 1 or 2).  Wireshark reads them in this machine's byte
    order, whatever the file's; so does this, to choose as it chooses."""
    (v,) = struct.unpack_from("=I", buf, off)
    return (v & 0x0FFF00F0 == 0x0FBF0000 and v >> 28 in (0x9, 0xB)
            and v >> 12 & 0xF in (0xB, 0xD) and v >> 8 & 0xF in (0x6, 0x9)
            and v & 0xF in (1, 2))


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
