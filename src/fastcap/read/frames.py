"""FrameWindow: one window of the frame index as a struct of numpy arrays.

The walker (C or Python) fills these columns; everything downstream works on whole columns,
never on one frame at a time.  Memory stays bounded because a window holds at most `cap` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._ffi import FRAME_FLAGS

# FrameWindow.flags bits: enum fc_frame_flag in csrc/fastcap.h.
F_NO_TS = FRAME_FLAGS["NO_TS"]
F_SNAPPED = FRAME_FLAGS["SNAPPED"]
F_OVER_SNAPLEN = FRAME_FLAGS["OVER_SNAPLEN"]
# The time a selected frame without one (F_NO_TS) is handed to the reassembler with: FC_NO_TS
# in csrc/fastcap.h.  It moves no clock, and a connection's times are its dated frames'.
NO_TS = -(2**63)


@dataclass
class FrameWindow:
    offset: np.ndarray  # int64 file offset of the packet bytes
    caplen: np.ndarray  # uint32
    orig_len: np.ndarray  # uint32
    ts_ns: np.ndarray  # int64 ns since the epoch
    iface: np.ndarray  # uint32 global interface index
    frame_no: np.ndarray  # int64, 1-based (Wireshark's frame.number)
    flags: np.ndarray  # uint8 F_* bits
    slab: np.ndarray  # uint8 (n, slab_width): first bytes of each packet, zero-filled

    @classmethod
    def allocate(cls, cap: int, slab_width: int) -> FrameWindow:
        return cls.allocate_many(1, cap, slab_width)[0]

    @classmethod
    def allocate_many(cls, k: int, cap: int, slab_width: int) -> list[FrameWindow]:
        """`k` windows, each column of all of them one allocation: freed together, glibc's
        malloc keeps them for the next walk instead of giving them back and faulting them in
        again."""
        cols = [np.empty((k, cap), t) for t in
                (np.int64, np.uint32, np.uint32, np.int64, np.uint32, np.int64, np.uint8)]
        slab = np.empty((k, cap, slab_width), np.uint8)
        return [cls(*(c[i] for c in cols), slab=slab[i]) for i in range(k)]

    def __len__(self) -> int:
        return len(self.offset)

    def head(self, n: int) -> FrameWindow:
        """The first n rows (views, no copy)."""
        return FrameWindow(
            self.offset[:n], self.caplen[:n], self.orig_len[:n], self.ts_ns[:n],
            self.iface[:n], self.frame_no[:n], self.flags[:n], self.slab[:n],
        )

    @property
    def cap(self) -> int:
        return len(self.offset)

    @property
    def slab_width(self) -> int:
        return self.slab.shape[1]


def record_ends(buf: np.ndarray, pcapng: bool, offset: np.ndarray, caplen: np.ndarray,
                flags: np.ndarray) -> np.ndarray:
    """Where each frame's record ends in `buf` (int64): a pcap record with its packet data,
    a pcapng block with its padding, options and trailing length, read from the block's
    own length (its start is before the packet data, so it is readable wherever the data
    is).  A file cut short inside that tail drops the record as truncated, so a reader
    that finds a cut after the walk must keep a frame only when its record ends by it."""
    offset = np.asarray(offset, np.int64)
    ends = offset + np.asarray(caplen, np.int64)
    if not pcapng or not len(offset):
        return ends
    # an Enhanced (or obsolete) Packet Block's data follows 28 bytes, a Simple one's 12
    start = offset - np.where((np.asarray(flags) & F_NO_TS) != 0, 12, 28)
    ok = (start >= 0) & (start + 8 <= len(buf))
    at = np.where(ok, start, 0)[:, None] + np.arange(8)
    b = buf[np.minimum(at, max(len(buf) - 1, 0))].astype(np.int64) if len(buf) else \
        np.zeros((len(offset), 8), np.int64)
    little = b[:, 4] | b[:, 5] << 8 | b[:, 6] << 16 | b[:, 7] << 24
    big = b[:, 7] | b[:, 6] << 8 | b[:, 5] << 16 | b[:, 4] << 24
    blen = np.where(b[:, 0] != 0, little, big)  # the type (2, 3 or 6) tells the byte order
    blen = (blen + 3) & ~3  # padded, as the walk frames it (some writers leave it out)
    return np.where(ok & (start + blen >= ends), start + blen, ends)
