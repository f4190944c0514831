"""A compressed file among several, read as one range of the run it belongs to.

A ring buffer whose older members were compressed (by a job that gzips closed files, say)
is still one capture: a connection open at the end of one member
goes on in the next.  Joining members takes one reassembler fed every member's selected
frames in order, and that reassembler reads their payloads by offset, later, after the next
member is read.  A mapped file keeps its payloads where they are; a compressed one is
decompressed once, in pieces that are gone by then.  So the payloads of its selected frames
are copied out of each piece as it is walked (`tcp.carry`, the copy `-j N` makes) into
memory, and past `SPILL_AFTER` bytes into an anonymous temporary file that the range then
maps: memory stays bounded however much SMTP the member holds, and the file is gone when
its mapping is.  The walk is the one `scan` makes of a compressed file alone
(`read.stream.StreamCapture`); only where the payloads are kept differs.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ..errors import CaptureError
from ..options import PIECE
from ..read.capture import WalkState
from ..read.stream import StreamCapture
from ..select.flows import FlowTable
from ..select.selection import FrameCounters, iter_selected
from ..tcp.carry import carried
from ..tcp.feed import concat
from ..tcp.reassembly import FrameCols
from .ranges import RangeResult

SPILL_AFTER = 8 << 20  # payload bytes kept in memory; more go to a temporary file


@dataclass(frozen=True)
class CompressedTask:
    """The one range of a compressed file: the whole of it, read in this process (its
    payloads end up in this process's memory or temporary file), `piece` decompressed
    bytes at a time."""

    path: str
    ports: frozenset[int]
    backend: str = "auto"
    piece: int = PIECE
    stop: int = 0  # the compressed size: how far reading it takes the progress report
    index: int = 0
    ahead: bool = False  # as RangeTask's, which it stands in for: no effect here


def task(path: str, ports: frozenset[int], backend: str = "auto", piece: int = PIECE
         ) -> CompressedTask:
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    return CompressedTask(path, ports, backend, piece, size)


class _Payloads:
    """The payload bytes copied so far, at the offsets they are appended at: in memory up
    to `limit` bytes, then all of them in an anonymous temporary file, written unbuffered
    so that a failed write (a full disk) fails there and nothing is left to flush."""

    def __init__(self, path: str, limit: int) -> None:
        self._path, self._limit = path, limit
        self._chunks: list[bytes] = []
        self._file = None
        self.size = 0

    def append(self, data: bytes | bytearray) -> int:
        """Keep `data`; the offset it starts at."""
        at = self.size
        self.size += len(data)
        with self._told():
            if self._file is None and self.size > self._limit:
                self._file = tempfile.TemporaryFile(prefix="fastcap-", buffering=0)  # noqa: SIM115
                for chunk in self._chunks:
                    self._write(chunk)
                self._chunks = []
            if self._file is not None:
                self._write(data)
            else:
                self._chunks.append(data)
        return at

    def _write(self, data: bytes | bytearray) -> None:
        with memoryview(data) as view:
            while view:  # an unbuffered write may take part of it
                view = view[self._file.write(view):]

    def buffer(self):
        """All the bytes kept: bytes, or a read-only mapping of the temporary file."""
        if self._file is None:
            return b"".join(self._chunks)
        with self._told(), self._file:  # the mapping keeps the file, deleted when it goes
            return mmap.mmap(self._file.fileno(), self.size, access=mmap.ACCESS_READ)

    @contextmanager
    def _told(self) -> Iterator[None]:
        """An OSError (no temporary directory, a full disk) as the file's one-line error."""
        try:
            yield
        except OSError as e:
            self.close()
            raise CaptureError(self._path, f"cannot keep the payloads of its SMTP frames in a "
                                           f"temporary file ({e.strerror or e}): set TMPDIR "
                                           f"to a directory with room") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._chunks, self._file = [], None


def read(task: CompressedTask, spill_after: int | None = None) -> RangeResult:
    """The range of a compressed file (`task`): its selected frames, with their payloads
    carried, and its totals, as one walk of the decompressed file finds them.  CaptureError
    for a file that cannot be read or decompressed at all; damage further on ends the walk
    with a warning, as it ends `scan`'s.  `spill_after`: payload bytes kept in memory
    (default SPILL_AFTER)."""
    counters, flows = FrameCounters(), FlowTable()
    kept = _Payloads(task.path, SPILL_AFTER if spill_after is None else spill_after)
    parts: list[FrameCols] = []
    try:
        with StreamCapture(task.path, backend=task.backend, piece=task.piece) as cap:
            for sel in iter_selected(cap, task.ports, counters, flows):
                # the piece these offsets index goes with the next window: copy them now
                c = carried(FrameCols.of(sel), cap.buffer, 1 << 62, task.backend)
                at = kept.append(c.payload)
                off = np.asarray(c.cols.payload_file_off, np.int64) + at
                parts.append(replace(c.cols, payload_file_off=off))
            meta, end = cap.meta, cap.end_state or WalkState(0, 1)
        payload = kept.buffer()
    except BaseException:
        kept.close()
        raise
    return RangeResult(task.index, None, end, False, counters, meta, concat(parts), flows.keys,
                       payload)
