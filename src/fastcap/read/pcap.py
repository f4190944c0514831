"""Classic libpcap format: global header and the pure-Python record walker.

The walker mirrors csrc/walk.c:fc_walk_pcap field for field; tests assert both give identical
columns, so either can serve when the other is unavailable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .frames import F_OVER_SNAPLEN, F_SNAPPED, FrameWindow
from .walkstatus import BLOCK, CORRUPT, END, FULL, TRUNCATED, WalkStatus

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
HEADER_LEN = 24
# Where another capture's file header begins (files concatenated) the walk stops, and its
# caller reads the header: a record whose first word is a pcap magic number in either byte
# order (so either reading of it), and whose next four bytes are version 2.0 to 2.4 in
# either byte order.  A packet stamped so would be from 2055, 2083 or 2106, with a fraction
# that is that version.
MAGICS = frozenset({MAGIC_US, MAGIC_NS, 0xD4C3B2A1, 0x4D3CB2A1})
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


def parse_header(head: bytes) -> PcapHeader | None:
    """Parse the 24-byte global header, or None when the magic is not pcap."""
    if len(head) < 4:
        return None
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", head)
        if magic in (MAGIC_US, MAGIC_NS):
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
    )


def walk_pcap_py(
    buf, length: int, start: int, big_endian: bool, nanos: bool, snaplen: int, max_caplen: int,
    win: FrameWindow, row0: int, next_frame: int,
) -> tuple[int, WalkStatus]:
    """Fill win rows from row0 with the records found from `start`; return (rows, status)."""
    rec = struct.Struct((">" if big_endian else "<") + "IIII")
    frac_mul = 1 if nanos else 1000
    width = win.slab_width
    off, n, fno, cap = start, row0, next_frame, win.cap
    view = memoryview(buf)
    while True:
        if n == cap:
            return n - row0, WalkStatus(FULL, off, fno)
        if off >= length:
            return n - row0, WalkStatus(END, off, fno)
        if length - off < 16:
            return n - row0, WalkStatus(TRUNCATED, off, fno, 16)
        ts_sec, ts_frac, incl, orig = rec.unpack_from(buf, off)
        if ts_sec in MAGICS and bytes(view[off + 4: off + 8]) in VERSIONS:
            return n - row0, WalkStatus(BLOCK, off, fno, ts_sec)
        if incl > max_caplen:
            return n - row0, WalkStatus(CORRUPT, off, fno, incl)
        if incl > length - off - 16:
            return n - row0, WalkStatus(TRUNCATED, off, fno, 16 + incl)
        flags = 0
        if incl < orig:
            flags |= F_SNAPPED
        if snaplen and incl > snaplen:
            flags |= F_OVER_SNAPLEN
        k = min(incl, width)
        win.slab[n, :k] = view[off + 16 : off + 16 + k]
        win.slab[n, k:] = 0
        win.offset[n] = off + 16
        win.caplen[n] = incl
        win.orig_len[n] = orig
        win.ts_ns[n] = ts_sec * 1_000_000_000 + ts_frac * frac_mul
        win.iface[n] = 0
        win.frame_no[n] = fno
        win.flags[n] = flags
        n += 1
        fno += 1
        off += 16 + incl
