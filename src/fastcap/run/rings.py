"""Ring buffers: consecutive files that go on from one another, read as one capture.

A run of such files is numbered on as `mergecap -a` numbers it (frame numbers counting on
from file to file) with one flow table across the files, so one reassembler completes a
connection left open at a file's end from the next file.  Each session is then told back
in the numbers of the file holding its first frame, naming the later files it reaches.  The
same numbering on joins the byte ranges of one file (`ranges.merge_results`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection

import numpy as np

from ..options import JudgeOptions
from ..select.flows import FlowKey, FlowTable
from ..select.selection import FrameCounters
from ..session import Session, build_session, evolve, keys_for
from ..tcp.reassembly import Connection, FrameCols

RING_GAP_NS = 60 * 10**9  # a longer pause between two files: not one capture's ring buffer


def follows(prev_end: int | None, first: int | None) -> bool:
    """A file goes on from the previous one (a ring buffer) when it starts no earlier than
    that one ended, and within RING_GAP_NS of it: `first` is the time of its first frame,
    `prev_end` of the previous file's last (None after an unreadable file), as the capture
    tool wrote them.  Files that overlap in time, lie far apart or hold no timestamps stand
    alone.  Frames stamped exactly 1970 (a hole of zeros) say nothing of when a file began
    or ended; nor does a frame inside a file, whose time damage may have changed."""
    return (prev_end is not None and first is not None
            and prev_end <= first <= prev_end + RING_GAP_NS)


class RunBreaks:
    """Whether each file, taken in order, goes on from the one before: the one rule for
    where runs begin, whether the files are all known up front or arrive one by one."""

    def __init__(self) -> None:
        self._prev_end: int | None = None

    def decides(self, first_part: FrameCounters) -> bool | None:
        """Whether the next file goes on from the one before, known from the totals of its
        first part: False when it starts a run (the first file, one after a file that
        could not be read or held no timestamps, or one whose first frame is from before
        the previous file ended or over RING_GAP_NS after it), True when it goes on, None
        when its first part holds no timestamp (its whole totals decide)."""
        if self._prev_end is None:
            return False
        first = first_part.first_dated_ns
        return None if first is None else follows(self._prev_end, first)

    def cut(self) -> None:
        """The next file does not go on from the one before it, whatever their times say
        (a file read elsewhere, such as a pipe, lies between them)."""
        self._prev_end = None

    def goes_on(self, counters: FrameCounters | None) -> bool:
        """The next file (its totals; None for a file that could not be read, which stands
        alone and ends the run before it)."""
        if counters is None:
            self._prev_end = None
            return False
        on = follows(self._prev_end, counters.first_dated_ns)
        self._prev_end = counters.last_dated_ns
        return on


def runs(totals: list[FrameCounters | None], apart: Collection[int] = ()
         ) -> list[list[int]]:
    """Indices of the files (their totals, None if unreadable) grouped into runs; a file
    whose index is in `apart` starts one (see `RunBreaks.cut`)."""
    out: list[list[int]] = []
    breaks = RunBreaks()
    for i, counters in enumerate(totals):
        if i in apart:
            breaks.cut()
        if breaks.goes_on(counters) and out:
            out[-1].append(i)
        elif counters is not None:
            out.append([i])
    return out


def renumbered(cols: FrameCols, frame_base: int, flow_ids: np.ndarray) -> FrameCols:
    """`cols` of one part in the numbering of the whole: frames counted on from
    `frame_base`, the part's flow ids mapped through `flow_ids` (FlowTable.ids_for)."""
    flow = np.asarray(cols.flow, np.int64)
    if len(flow):  # an IP fragment row of no known flow keeps -1 (`select.fragments`)
        flow = np.where(flow >= 0, np.append(flow_ids, -1)[flow], flow)
    return FrameCols(np.asarray(cols.frame_no, np.int64) + frame_base, cols.ts_ns,
                     flow, cols.from_a, cols.payload_file_off,
                     cols.seq, cols.ack, cols.flags, cols.window, cols.payload_len,
                     cols.payload_caplen, cols.record_end)


class NumberedOn:
    """Parts (byte ranges of a file, or files of a run) joined in order: frame numbers
    counted on and flow ids merged into one table.  `offsets[i]`: frames before file i."""

    def __init__(self) -> None:
        self.flows = FlowTable()
        self.base = 0  # frames numbered so far
        self.paths: list[str] = []
        self.offsets: list[int] = []

    def add_file(self, path: str) -> None:
        """The parts that follow belong to `path`."""
        self.paths.append(path)
        self.offsets.append(self.base)

    def add(self, cols: FrameCols, frames: int, flow_keys: list[FlowKey]) -> FrameCols:
        """A part's columns (numbered from 1, its own flow ids) in the numbering of the
        whole; `frames`: the frame numbers the part uses."""
        out = renumbered(cols, self.base, self.flows.ids_for(flow_keys))
        self.base += frames
        return out

    def session(self, conn: Connection, options: JudgeOptions, keep_streams: bool = False
                ) -> tuple[int, Session]:
        """See session_in_chain."""
        return session_in_chain(conn, self.paths, self.offsets, options, keep_streams)


def _shift(conn: Connection, delta: int) -> None:
    """Frame numbers from the chain's count to the count of the session's own file."""
    if not delta:
        return
    conn.first_frame -= delta
    conn.last_frame -= delta
    for d in (conn.c2s, conn.s2c):
        d.seg_frame = d.seg_frame - delta
        for name in ("syn_frame", "fin_frame", "rst_frame"):
            if getattr(d, name) is not None:
                setattr(d, name, getattr(d, name) - delta)
    if conn.zeek_cut is not None:
        conn.zeek_cut -= delta
    if conn.after_reset is not None:  # a closed session begun in an earlier file: not named
        first, rst = (f - delta for f in conn.after_reset)
        conn.after_reset = (first, rst) if first > 0 else None


def session_in_chain(conn: Connection, paths: list[str], offsets: list[int],
                     options: JudgeOptions, keep_streams: bool = False
                     ) -> tuple[int, Session]:
    """(index of the file holding its first frame, the session) for a connection of a chain
    of files whose frame numbers count on, file i's after `offsets[i]`: frames numbered in
    its own file, `continues_into` naming the later files it reaches; with `keep_streams`,
    its reassembled streams kept on it (as `follow` shows them)."""
    first = bisect_right(offsets, conn.first_frame - 1) - 1
    last = bisect_right(offsets, conn.last_frame - 1) - 1
    keys = keys_for(options.key_index, conn.last_frame)  # by the chain's frame numbers
    _shift(conn, offsets[first])
    return first, build_session(conn, implicit_tls_ports=options.implicit_tls_ports,
                                keys=keys, decrypt_limit=options.decrypt_limit,
                                keep_streams=keep_streams,
                                continues_into=paths[first + 1: last + 1])


class FileStarts:
    """Session numbers of a run restarting at 1 in each file, as a scan of that file alone
    numbers them: a session's run-wide index (0-based, first-frame order across the run)
    less the sessions that began in earlier files."""

    def __init__(self) -> None:
        self.ends: list[int] = []  # sessions begun by the end of each file

    def end_file(self, begun: int) -> None:
        """The next file starts: `begun` sessions began in this file and earlier ones."""
        self.ends.append(begun)

    def place(self, index: int) -> tuple[int, int]:
        """(file, number in that file) of the session with run-wide `index`."""
        k = bisect_right(self.ends, index)
        return k, index - (self.ends[k - 1] if k else 0) + 1


def numbered_in_files(found: list[tuple[int, Session]], files: int) -> list[list[Session]]:
    """Sessions of a run, each with the file holding its first frame, put in first-frame
    order per file and numbered from 1 in it: for sessions gathered from workers, whose
    reassemblers each counted only their own connections."""
    found = sorted(found, key=lambda ks: (ks[0], ks[1].first_frame))
    per_file = np.bincount([k for k, _ in found], minlength=files)
    starts = FileStarts()
    for begun in np.cumsum(per_file)[:-1].tolist():
        starts.end_file(begun)
    out: list[list[Session]] = [[] for _ in range(files)]
    for index, (_k, s) in enumerate(found):
        k, number = starts.place(index)
        out[k].append(s if s.number == number else evolve(s, number=number))
    return out
