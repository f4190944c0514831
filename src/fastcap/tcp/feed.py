"""Selected frames fed to a reassembler a bounded number of rows at a time, the one way every
scan feeds it (one process, the streamed `-j N` run, and flows dealt to workers).

The reassembler's state does not depend on where a batch ends, so the cut only bounds what
one call holds: the connections a batch finishes are handed on (and their memory let go)
before the next batch is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..select.fragments import FRAG_ROW
from .carry import Carried, carried, readable_lengths
from .reassembly import Connection, FrameCols, Reassembler

FEED_ROWS = 1 << 16  # rows per call: large enough to amortise the call, small enough to stream


def rows(cols: FrameCols, sel: slice | np.ndarray) -> FrameCols:
    """The rows `sel` of every column (a copy for an index array, a view for a slice)."""
    return FrameCols(*(None if (c := getattr(cols, f)) is None else np.asarray(c)[sel]
                       for f in FrameCols.__dataclass_fields__))


def _payload_ends(cols: FrameCols) -> np.ndarray:
    return (np.asarray(cols.payload_file_off, np.int64)
            + np.asarray(cols.payload_caplen, np.int64))


def payload_end(cols: FrameCols) -> int:
    """The file offset just past the last payload byte the rows need (0 for no rows)."""
    return int(_payload_ends(cols).max()) if len(cols) else 0


def _record_ends(cols: FrameCols) -> np.ndarray:
    """Where each row's record ends in the file (its payload's end where not known)."""
    ends = _payload_ends(cols)
    return ends if cols.record_end is None else np.maximum(ends, cols.record_end)


def record_end(cols: FrameCols) -> int:
    """The file offset just past the last record the rows come from (0 for no rows)."""
    return int(_record_ends(cols).max()) if len(cols) else 0


def within(cols: FrameCols, end: int) -> tuple[FrameCols, bool]:
    """The rows whose record lies wholly before file offset `end` (a file cut short there
    while it was read: past it the mapping reads as zeros), and whether any row was not.
    The file cut there before it is read drops a record reaching past `end` as truncated,
    though its payload may end before (a pcapng block's padding, options and trailing
    length, or a link layer's trailer, follow it)."""
    ok = _record_ends(cols) <= end
    return (cols, False) if ok.all() else (rows(cols, ok), True)


SAMPLED_ROWS = 64  # rows whose TCP headers `rewritten_at` compares, spread over the rows


def rewritten_at(buf, cols: FrameCols, lo: int, hi: int, end: int) -> int | None:
    """Where the payloads of rows [lo, hi) begin in the file `buf` maps, if its bytes are no
    longer those their frames were read from (the file written over in place since): the
    TCP headers just before the payloads of SAMPLED_ROWS rows (of rows not IP fragments,
    before `end`, where the file now ends), the first, the last and others evenly spaced
    between them, must still hold the sequence and acknowledgement numbers and the window
    read then.  A rewrite of more than one row in SAMPLED_ROWS - 1 of them, wherever it
    lies, changes one of those; a few hundred bytes per window or range.  A file only
    appended to keeps them, and one cut short is told as cut."""
    ok = np.flatnonzero(((np.asarray(cols.flags[lo:hi]) & FRAG_ROW) == 0)
                        & (np.asarray(cols.payload_file_off[lo:hi]) <= min(end, len(buf))))
    if len(ok) > SAMPLED_ROWS:
        ok = ok[np.linspace(0, len(ok) - 1, SAMPLED_ROWS).astype(np.int64)]
    for i in (ok + lo).tolist():
        off = int(cols.payload_file_off[i])
        want = (int(cols.seq[i]) & 0xFFFFFFFF).to_bytes(4, "big") + \
            (int(cols.ack[i]) & 0xFFFFFFFF).to_bytes(4, "big")
        window = (int(cols.window[i]) & 0xFFFF).to_bytes(2, "big")
        if not any(buf[off - n + 12] >> 4 == n // 4 and buf[off - n + 4: off - n + 12] == want
                   and buf[off - n + 14: off - n + 16] == window
                   for n in range(20, 61, 4) if off >= n):
            return int(cols.payload_file_off[lo])
    return None


def concat(parts: list[FrameCols]) -> FrameCols:
    """Parts of columns, in order, as one."""
    names = FrameCols.__dataclass_fields__
    if not parts:
        return FrameCols(*(np.empty(0, np.int64) for _ in names))
    return FrameCols(*(None if any(getattr(p, f) is None for p in parts) else
                       np.concatenate([np.asarray(getattr(p, f)) for p in parts])
                       for f in names))


def fed(reasm: Reassembler, cols: FrameCols, lo: int = 0, hi: int | None = None
        ) -> Iterator[Iterator[Connection]]:
    """Rows [lo, hi) of `cols` fed FEED_ROWS at a time; for each batch, the connections it
    finished (exhaust each before asking for the next batch)."""
    hi = len(cols) if hi is None else hi
    if lo == 0 and hi == len(cols) and hi <= FEED_ROWS:
        if hi:
            yield reasm.feed_cols_iter(cols)
        return
    for at in range(lo, hi, FEED_ROWS):
        yield reasm.feed_cols_iter(rows(cols, slice(at, min(hi, at + FEED_ROWS))))


COPY_MAX = 8 << 20  # payload bytes `copied` takes out of a mapped file at once


@dataclass(frozen=True, slots=True)
class Batch:
    """What `copied` fed at once: `taken` rows of the columns, the connections that
    finished (exhaust them before the next batch), and where the file was found to end if
    it was cut short by then, with whether rows past that end were left out."""

    taken: int
    done: Iterator[Connection]
    cut: int | None
    dropped: bool


def copied(reasm: Reassembler, cols: FrameCols, buf, cut_at: Callable[[int], int | None],
           first: int = FEED_ROWS) -> Iterator[Batch]:
    """`cols` fed from their payloads in `buf`, a mapped file another program may cut short
    meanwhile: `first` rows, then FEED_ROWS at a time, each batch split further to copy no
    more than COPY_MAX bytes.  Each batch's payloads are copied out of the file first, then
    `cut_at(need)` (where the file ends now if cut short, for payloads in its first `need`
    bytes) is asked: a cut found then may have come while they were copied, so the rows
    past it are left out and the rest, whose bytes were still there, are fed from the copy.
    Feeding straight from the mapping, a cut while the core read it fed zeros (the guard's
    pages) as payloads.  Asked before the copy too: without the C module the pages past a
    cut are made zeros then (`MappingGuard.look`).  The reassembler stays bound to the last
    copy; rebind it before feeding from elsewhere."""
    lo, stop = 0, max(1, first)
    while lo < len(cols):
        part = rows(cols, slice(lo, min(stop, len(cols))))
        sizes = np.cumsum(readable_lengths(part, len(buf)))
        n = max(1, int(np.searchsorted(sizes, COPY_MAX, side="right")))
        if n < len(part):
            part = rows(part, slice(0, n))
        need = record_end(part)
        cut = cut_at(need)
        kept, dropped = (part, False) if cut is None else within(part, cut)
        got = carried(kept, buf, int(sizes[-1]), reasm.backend)
        assert got is not None
        if cut is None and (cut := cut_at(need)) is not None:  # cut while copying
            ok = _record_ends(kept) <= cut
            if not ok.all():
                got, dropped = Carried(rows(got.cols, ok), got.payload), True
        reasm.rebind(got.payload)
        yield Batch(len(part), reasm.feed_cols_iter(got.cols) if len(got.cols) else iter(()),
                    cut, dropped)
        lo += len(part)
        if lo >= stop:
            stop += FEED_ROWS
