"""Selected frames fed to a reassembler a bounded number of rows at a time, the one way every
scan feeds it (one process, the streamed `-j N` run, and flows dealt to workers).

The reassembler's state does not depend on where a batch ends, so the cut only bounds what
one call holds: the connections a batch finishes are handed on (and their memory let go)
before the next batch is read.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .reassembly import Connection, FrameCols, Reassembler

FEED_ROWS = 1 << 16  # rows per call: large enough to amortise the call, small enough to stream


def rows(cols: FrameCols, sel: slice | np.ndarray) -> FrameCols:
    """The rows `sel` of every column (a copy for an index array, a view for a slice)."""
    return FrameCols(*(np.asarray(getattr(cols, f))[sel] for f in FrameCols.__dataclass_fields__))


def _payload_ends(cols: FrameCols) -> np.ndarray:
    return (np.asarray(cols.payload_file_off, np.int64)
            + np.asarray(cols.payload_caplen, np.int64))


def payload_end(cols: FrameCols) -> int:
    """The file offset just past the last payload byte the rows need (0 for no rows)."""
    return int(_payload_ends(cols).max()) if len(cols) else 0


def within(cols: FrameCols, end: int) -> tuple[FrameCols, bool]:
    """The rows whose payload lies wholly before file offset `end` (a file cut short there
    while it was read: past it the mapping reads as zeros), and whether any row was not."""
    ok = _payload_ends(cols) <= end
    return (cols, False) if ok.all() else (rows(cols, ok), True)


def concat(parts: list[FrameCols]) -> FrameCols:
    """Parts of columns, in order, as one."""
    names = FrameCols.__dataclass_fields__
    if not parts:
        return FrameCols(*(np.empty(0, np.int64) for _ in names))
    return FrameCols(*(np.concatenate([np.asarray(getattr(p, f)) for p in parts])
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
