"""The payload bytes of selected frames, copied out of the capture by the process that read
them, so that a reassembler in another process need not map the file.

With `-j N` the workers walk the file and the main process reassembles.  Reading payloads
through its own mapping, the main process took a page fault for nearly every SMTP frame
(the workers had touched those pages, it had not) and paid again to unmap them: on a 2 GB
capture with 1,000 sessions, 60-85 ms of its time against 11 ms when a single process
reads, while the payloads themselves were half a megabyte per 256 MB range.  Carried, they
cross with the frames' columns, and the main process touches only memory it owns.

The copy keeps each frame's bytes exactly as the reassembler would have read them from the
file: its captured payload, cut to the payload length and to the end of the file (both
cores apply the same cuts), so reassembling the carried columns against the carried bytes
gives the same connections as reassembling the original columns against the file.

The copy is one C call per batch of rows (`fc_gather`) where the C module serves the scan's
backend; a slice and a join per row cost 1.6 us, 0.13 s of a 200 MB capture's 0.78 s of
walking, selecting and reassembling, 30 us for each of its 4,196 sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import _ffi
from .reassembly import FrameCols

CARRY_MAX = 8 << 20  # bytes per range: more stays in the file, read through a mapping


@dataclass(frozen=True, slots=True)
class Carried:
    """Columns whose payload offsets index `payload` instead of the file."""

    cols: FrameCols
    payload: bytes | bytearray  # only read, through the buffer protocol


def readable_lengths(cols: FrameCols, size: int) -> np.ndarray:
    """Bytes of each row's payload a reassembler reads from a buffer of `size` bytes: the
    captured length, no more than the payload length, within the buffer."""
    off = np.asarray(cols.payload_file_off, np.int64)
    plen = np.maximum(np.asarray(cols.payload_len, np.int64), 0)
    cap = np.minimum(np.maximum(np.asarray(cols.payload_caplen, np.int64), 0), plen)
    inside = (off >= 0) & (off <= size)
    return np.where(inside, np.minimum(cap, size - np.minimum(off, size)), 0)


def gathered(buf, off: np.ndarray, lengths: np.ndarray, backend: str = "auto"
             ) -> bytes | bytearray:
    """The bytes buf[off[i], off[i] + lengths[i]) of every row, back to back (int64 arrays),
    copied in one C call when `backend` uses C, into the bytearray it returns then (made
    bytes, that 8 MB took a second copy that cost more than the gather).  ValueError names
    the first row of nonzero length reaching outside `buf` (`readable_lengths` gives none)."""
    off, lengths = np.ascontiguousarray(off, np.int64), np.ascontiguousarray(lengths, np.int64)
    outside = (lengths != 0) & ((off < 0) | (lengths < 0) | (off > len(buf) - lengths))
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"payload row {i} ({int(lengths[i])} bytes at {int(off[i])}) lies "
                         f"outside a buffer of {len(buf)} bytes")
    total = int(lengths.sum())
    if total == 0:
        return b""
    if _ffi.use_native(backend):
        ffi, out = _ffi.ffi, bytearray(total)
        with ffi.from_buffer("uint8_t[]", buf) as src:  # released here, as below
            got = _ffi.lib.fc_gather(src, len(buf), ffi.from_buffer("int64_t[]", off),
                                     ffi.from_buffer("int64_t[]", lengths), len(off),
                                     ffi.from_buffer("uint8_t[]", out), total)
        if got != total:
            raise ValueError(f"fc_gather: payload row {-got - 1} lies outside the buffer")
        return out
    with memoryview(buf) as mv:  # released here, so the mapping can be closed
        return b"".join([mv[o: o + n] for o, n in zip(off.tolist(), lengths.tolist(),
                                                      strict=True) if n])


def carried(cols: FrameCols, buf, limit: int = CARRY_MAX, backend: str = "auto"
            ) -> Carried | None:
    """`cols` with their payloads copied out of `buf` (the capture, mapped), or None when
    those would take more than `limit` bytes (the rows then keep pointing into the file).
    `backend` (auto/native/python) says whether C copies them."""
    lengths = readable_lengths(cols, len(buf))
    if int(lengths.sum()) > limit:
        return None
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    payload = gathered(buf, np.asarray(cols.payload_file_off), lengths, backend)
    off_dtype = np.asarray(cols.payload_file_off).dtype
    cap_dtype = np.asarray(cols.payload_caplen).dtype
    return Carried(replace(cols, payload_file_off=starts.astype(off_dtype, copy=False),
                           payload_caplen=lengths.astype(cap_dtype)), payload)
