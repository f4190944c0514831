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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .reassembly import FrameCols

CARRY_MAX = 8 << 20  # bytes per range: more stays in the file, read through a mapping


@dataclass(frozen=True, slots=True)
class Carried:
    """Columns whose payload offsets index `payload` instead of the file."""

    cols: FrameCols
    payload: bytes


def readable_lengths(cols: FrameCols, size: int) -> np.ndarray:
    """Bytes of each row's payload a reassembler reads from a buffer of `size` bytes: the
    captured length, no more than the payload length, within the buffer."""
    off = np.asarray(cols.payload_file_off, np.int64)
    plen = np.maximum(np.asarray(cols.payload_len, np.int64), 0)
    cap = np.minimum(np.maximum(np.asarray(cols.payload_caplen, np.int64), 0), plen)
    inside = (off >= 0) & (off <= size)
    return np.where(inside, np.minimum(cap, size - np.minimum(off, size)), 0)


def carried(cols: FrameCols, buf, limit: int = CARRY_MAX) -> Carried | None:
    """`cols` with their payloads copied out of `buf` (the capture, mapped), or None when
    those would take more than `limit` bytes (the rows then keep pointing into the file)."""
    lengths = readable_lengths(cols, len(buf))
    total = int(lengths.sum())
    if total > limit:
        return None
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    with memoryview(buf) as mv:  # released here, so the mapping can be closed
        payload = b"".join([mv[o: o + n] for o, n in zip(
            np.asarray(cols.payload_file_off).tolist(), lengths.tolist(), strict=True) if n])
    off_dtype = np.asarray(cols.payload_file_off).dtype
    cap_dtype = np.asarray(cols.payload_caplen).dtype
    return Carried(replace(cols, payload_file_off=starts.astype(off_dtype, copy=False),
                           payload_caplen=lengths.astype(cap_dtype)), payload)
