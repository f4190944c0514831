"""`-j N` on mapped files: worker processes read their byte ranges; this process stitches
them in file order and feeds each to one reassembler as soon as it arrives.

Reassembly, SMTP/TLS parsing and judging run here exactly as in a one-process scan
(`session.iter_sessions`), only on frames that other processes walked, decoded and selected.
So results are identical by construction (one reassembler sees every frame in order, with
the whole of its limits), sessions stream out in number order as they finish instead of
being held to the end, and only the selected frames' columns — a few dozen bytes per SMTP
frame — cross between processes, a few ranges at a time.  Walking the file is the part that
parallelises; judging sessions overlaps with it here.  (`split` deals flows out to workers
instead: the way for executors such as a Dask cluster, where this process should do little.)
Both share the engine: executors (`workers`), runs of files and their numbering (`rings`),
feeding the reassembler (`tcp.feed`), and the order sessions are handed on in
(`session.InOrder`).

Several files are read the same way, one after another, the workers reading ahead across
file borders.  Files that go on from one another (a ring buffer, `rings.follows`) share
one reassembler, so a session open when one file ends is completed from the next.  Sessions
are handed on in number order as they finish, each numbered within the file where it began,
and a file's totals right after its last session (`_Run`).  Whether a file goes on from the
previous one depends on its earliest timestamp, so a file's selected frames are held until
the file is read, and fed then, unless its first range already decides: a file with nothing
to go on from (the first, or the one after a file that could not be read) or with a frame
from before the previous file ended starts a run whatever the rest holds, so it is fed range
by range as the workers read it, and judging overlaps reading as in `iter_scan`.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import replace

from ..errors import CaptureError, CaptureWarning
from ..judge.judging import judge
from ..options import JudgeOptions
from ..read.guard import (
    FileReplaced,
    MappingGuard,
    cut_message,
    gone_warning,
    map_again,
)
from ..read.stream import is_compressed_file
from ..session import MAX_HELD, InOrder, KeysAsRead, Session, build_session, evolve
from ..tcp.carry import CARRY_MAX
from ..tcp.feed import FEED_ROWS, copied, rewritten_at, rows
from ..tcp.reassembly import Reassembler
from . import compressed, ranges
from .rings import FileStarts, NumberedOn, RunBreaks
from .split import SplitScan
from .workers import PoolExecutor, Submitter

RANGES_PER_JOB = 4  # ranges per worker: reading overlaps judging, and the last range is short
MIN_RANGE = 8 << 20
_AHEAD = 2  # ranges read ahead per worker: enough to keep them busy, and memory small


def _reader(jobs: int, workers: bool) -> Submitter:
    """`jobs` worker processes reading ranges (this process judges), or this process."""
    return PoolExecutor(jobs, local_first=False) if workers else _ReadHere()


class _ReadHere:
    """Ranges read in this process, with no workers: each range's walk is begun as it is
    submitted (`ranges.BegunRange`, carried by the task), so that the first window of the
    range after the one being judged is walked on a thread meanwhile, across file borders
    too.  A range is read in its turn by the function submitted with it."""

    def __init__(self) -> None:
        self._begun: set[ranges.BegunRange] = set()

    def submit(self, fn: Callable, task: ranges.RangeTask) -> tuple[Callable, ranges.RangeTask]:
        begun = ranges.BegunRange(task)
        self._begun.add(begun)
        return fn, replace(task, begun=begun)

    def get(self, handle: tuple[Callable, ranges.RangeTask]) -> ranges.RangeResult:
        fn, task = handle
        try:
            return fn(task)
        finally:  # read, or failed before it was: its file is let go either way
            self._begun.discard(task.begun)
            task.begun.close()

    def close(self) -> None:
        for begun in self._begun:  # not read after all: their walks end, their files go
            begun.close()
        self._begun.clear()


class _Payloads:
    """Where the reassembler reads a range's payloads: the bytes its reader carried
    (`tcp.carry`), or else the file, mapped here the first time a range needs it.  Only the
    file being read is kept mapped, guarded: another program may cut it short after its
    ranges were read, and the payloads past its new end are then gone (`cut_at`), or put
    another file under its name, whose bytes are not the payloads (`gone`)."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._map = None
        self._guard: MappingGuard | None = None
        self.told: set[str] = set()  # files whose cut is told (once, whatever its ranges)
        self.warnings: list[CaptureWarning] = []  # the cuts found, for the file's totals
        # files found replaced when mapped for their payloads: none of their rows is fed from
        # then on, carried or not, as the executor path feeds none of them
        self.gone: set[str] = set()
        self.identity: tuple[int, int] | None = None  # the file's, as its frames were read

    def tell(self, path: str, cut: int, lost: bool) -> None:
        """A cut that lost rows of `path` is told once, with the file's totals (merged
        before or after its ranges are fed); for a file replaced, where its rows not fed
        begin."""
        if lost and path not in self.told:
            self.told.add(path)
            self.warnings.append(
                gone_warning(path, cut, self.identity) if path in self.gone else
                CaptureWarning(path, cut, "cut_short", cut_message(path)))

    def taken(self, told: list[CaptureWarning]) -> list[CaptureWarning]:
        """The cut warnings found since the last call (see `warnings`) but those in `told`,
        the file's warnings so far: a range walked after the cut stops there and tells it
        too, and one cut is one line."""
        out, self.warnings = self.warnings, []
        have = {(w.path, w.offset, w.kind) for w in told}
        return [w for w in out if (w.path, w.offset, w.kind) not in have]

    def of(self, path: str, res: ranges.RangeResult):
        if res.payload is not None:
            return res.payload
        if path != self._path:
            self.close()
            self.identity = res.meta.identity
            mapped = map_again(path, res.meta.identity)  # the file its frames came from?
            if mapped is None:
                self.gone.add(path)
            self._map, self._guard = (b"", None) if mapped is None else mapped
            self._path = path
        return self._map

    def cut_at(self, need: int = 0) -> int | None:
        """Where the file being read ends now, if it was cut short before the first `need`
        bytes, which the payloads to read next lie in (or since it was mapped here)."""
        if self._map is None:
            return None
        cut = self._guard.cut_at() if self._guard is not None else None
        if len(self._map) < need:  # mapped after a cut: its ranges were read before it (a
            # file still being written only grows, and they read no further than planned)
            cut = len(self._map) if cut is None else min(cut, len(self._map))
        return cut

    def close(self) -> None:
        if self._guard is not None:
            self._guard.close()
        self._path = self._map = self._guard = None


def _fed_range(reasm: Reassembler, whole: NumberedOn, keys: KeysAsRead, payloads: _Payloads,
               path: str, res: ranges.RangeResult, first: int = FEED_ROWS
               ) -> Iterator[tuple[int, Iterator]]:
    """One range fed to the reassembler in the numbering of the whole, its secrets blocks
    added first: for each batch (the first `first` rows, then FEED_ROWS at a time), the
    rows it took and the connections it finished.  What a list of the file's ranges keeps
    of it once fed is `res.slim()`."""
    keys.add(res.meta.secrets, path, whole.base)
    cols = whole.add(res.cols, res.frames, res.flow_keys)
    buf = payloads.of(path, res)
    reasm.rebind(buf)
    carried = res.payload is not None  # copied by the reader, whatever the file does now
    if not carried and path not in payloads.gone:
        buf, now = payloads.of(path, res), payloads.cut_at()
        if rewritten_at(buf, cols, 0, len(cols), len(buf) if now is None else now) is not None:
            payloads.gone.add(path)  # written over in place: as if replaced
    if path in payloads.gone:  # replaced: reading the file stopped where its rows were lost
        payloads.tell(path, int(cols.payload_file_off[0]) if len(cols) else 0, len(cols) > 0)
        cols = rows(cols, slice(0, 0))
    # A range read after the file was cut short before where it starts finds nothing to say.
    payloads.tell(path, res.end.offset, res.meta.size < res.end.offset)
    return _batches(reasm, cols, None if carried else payloads, path, res.end.offset, first,
                    buf)


def _batches(reasm: Reassembler, cols, payloads: _Payloads | None, path: str, end: int,
             first: int, buf=b"") -> Iterator[tuple[int, Iterator]]:
    """`cols` fed `first` rows, then FEED_ROWS at a time: (rows taken, connections finished)
    per batch.  With `payloads` (read from the file itself, which another program may cut
    short while the batches go in, as they are fed while the sessions before them are
    judged; mapped as `buf`), each batch's payloads are copied out before they are fed
    (`copied`): the rows past a cut found before or while they were copied are dropped,
    and the cut is told; a batch keeps its count of rows taken."""
    if payloads is None:
        lo, size = 0, max(1, first)
        while lo < len(cols):
            batch = rows(cols, slice(lo, lo + size))
            yield len(batch), reasm.feed_cols_iter(batch)
            lo, size = lo + len(batch), FEED_ROWS
        return
    for b in copied(reasm, cols, buf, payloads.cut_at, first):
        if b.cut is not None:
            payloads.tell(path, b.cut, b.dropped or end > b.cut)
        yield b.taken, b.done
    cut = payloads.cut_at()
    if cut is not None:
        payloads.tell(path, cut, end > cut)


def _plan_task(path: str, options: JudgeOptions, jobs: int, parts: int | None
               ) -> ranges.PlanTask:
    return ranges.PlanTask(path, parts or jobs * RANGES_PER_JOB, options.ports,
                           options.backend, 1 if parts else MIN_RANGE, CARRY_MAX)


Plan = list[ranges.RangeTask | compressed.CompressedTask] | CaptureError


def _accepted(reader: Submitter, plans: Iterator[Plan], jobs: int, alone: bool
              ) -> Iterator[tuple]:
    """The ranges of each file in file order, as one walk of the file reads them, while the
    reader reads a few ahead (across file borders too); `alone`: the reader is this process,
    with no workers, so each range's walk may run ahead on a thread of its own.  Events, per
    file k in order: ("range", k, task, result) for each range (re-read here from the exact
    state when its guessed start was wrong), then ("done", k, ranges re-read); or ("error",
    k, CaptureError) for a file that is no capture.  ("replaced", k, FileReplaced) comes
    before "done" when another file was found under its name after its first ranges were
    read: they stand, and the last of them ends the file (`ranges.ended_replaced`)."""
    inflight: deque = deque()
    dropped: set[int] = set()  # files whose walk gave up: their later ranges are not read

    def work() -> Iterator[tuple[int, ranges.RangeTask | CaptureError]]:
        for k, plan in enumerate(plans):
            if isinstance(plan, CaptureError):
                yield k, plan
            else:
                for t in plan:
                    if k not in dropped:
                        yield k, replace(t, ahead=alone)

    todo = work()

    # Workers read a few ranges ahead each; this process alone begins one, whose walk
    # overlaps the judging of the one before.
    most = 1 if alone else _AHEAD * jobs

    def top_up() -> None:
        while len(inflight) < most and (item := next(todo, None)) is not None:
            k, t = item
            here = isinstance(t, CaptureError | compressed.CompressedTask)
            inflight.append((k, t, None if here else reader.submit(ranges.read_range, t)))

    top_up()
    cur, last, prev_task, reread = None, None, None, 0
    while inflight:
        k, task, handle = inflight.popleft()
        failed = task if isinstance(task, CaptureError) else None
        res = None
        if failed is None and k not in dropped:
            try:  # a compressed file is read here, where its payloads are kept
                res = compressed.read(task) if handle is None else reader.get(handle)
            except CaptureError as e:  # the file went away or changed since it was planned
                failed = e
        top_up()
        if k != cur and cur is not None:
            yield ("done", cur, reread)
            cur = None
        if k in dropped:
            continue
        if cur is None and failed is None:
            cur, last, prev_task, reread = k, None, None, 0
        if failed is None and last is not None:
            if ranges.gave_up(last, prev_task):
                dropped.add(k)
                continue
            if not ranges.joins(last.end, res):
                try:
                    res = ranges.read_range(ranges.exact_task(task, last.end))
                except CaptureError as e:
                    failed = e
                reread += 1
        if isinstance(failed, FileReplaced) and last is not None:
            dropped.add(k)  # its first ranges stand, the last of them ending the file
            yield ("replaced", k, failed)
            continue
        if failed is not None:
            dropped.add(k)
            cur = None
            yield ("error", k, failed)
            continue
        last, prev_task = res, task
        yield ("range", k, task, res)
    if cur is not None:
        yield ("done", cur, reread)


def iter_scan(path: str | os.PathLike, options: JudgeOptions, analyzer, *, jobs: int,
              parts: int | None = None, workers: bool = True, out: list | None = None,
              progress: Callable[[int, int], None] | None = None) -> Iterator[Session]:
    """The judged sessions of `path`, in number order, as `scanner.scan` gives them, with
    `jobs` processes reading `parts` byte ranges (default RANGES_PER_JOB per job, each at
    least MIN_RANGE); `workers=False` reads them here.  `out` (a list) receives the file's
    SplitScan (totals, no sessions) when the last session is out.  CaptureError for a file
    that is no capture."""
    path = os.fsdecode(path)
    tasks = ranges.plan_file(_plan_task(path, options, jobs, parts))
    size = tasks[-1].stop if tasks else 0
    alone = not (workers and len(tasks) > 1)
    reader = _reader(jobs, not alone)
    payloads = _Payloads()
    try:
        whole, order = NumberedOn(), InOrder(MAX_HELD)
        accepted: list[ranges.RangeResult] = []
        reread = 0

        keys = KeysAsRead(options.key_index)

        def judged(conns) -> Iterator[Session]:
            """In number order, judged in that order as one process judges them."""
            for conn in conns:
                s = build_session(conn, implicit_tls_ports=options.implicit_tls_ports,
                                  keys=keys.for_frame(conn.last_frame),
                                  decrypt_limit=options.decrypt_limit)
                for t in order.push(s):
                    yield judge(t, analyzer, expect_name=options.expect_name)

        with Reassembler(b"", whole.flows, server_ports=options.ports,
                         cap=options.stream_cap, backend=options.backend) as reasm:
            for event in _accepted(reader, iter([tasks]), jobs, alone):
                if event[0] == "done":
                    reread = event[2]
                    continue
                if event[0] == "error":
                    raise event[2]
                if event[0] == "replaced":
                    accepted[-1] = ranges.ended_replaced(accepted[-1], event[2])
                    continue
                _, _, task, res = event
                for _, done in _fed_range(reasm, whole, keys, payloads, path, res):
                    yield from judged(done)
                accepted.append(res.slim())
                if progress is not None:
                    progress(task.stop, size)
            reasm.defrag.finish()
            given_up = reasm.defrag.take_skipped()
            yield from judged(reasm.drain())
            skipped = reasm.skipped
        for t in order.drain():
            yield judge(t, analyzer, expect_name=options.expect_name)
    finally:
        reader.close()
        payloads.close()
    merged = ranges.merge_results(accepted, reread)
    merged.counters.skipped.update(given_up)
    merged = replace(merged, meta=merged.meta.told(*payloads.taken(merged.meta.warnings),
                                                   *keys.warnings))
    merged.counters.skipped.update(skipped)
    order.note(merged.counters)
    if out is not None:
        out.append(SplitScan(path, (), merged.counters, merged.meta, reread, "streamed"))


class _Run:
    """Files that go on from one another, reassembled as one capture: frames numbered on
    across them, as `mergecap -a` numbers them.  Sessions are handed on in the order of
    their first frame, each numbered within its own file; a file's totals follow its last
    session, once every connection numbered by the end of its frames is out.  A connection
    left open (its FIN lost, say) would hold every later session; past `max_held` sessions
    waiting for it, it is handed on as it stands (evicted, as the reassembly budget evicts),
    and its later frames begin a new session."""

    def __init__(self, options: JudgeOptions, analyzer, max_held: int = MAX_HELD,
                 keep_streams: Callable[[int, int], bool] | None = None) -> None:
        self.keys = KeysAsRead(options.key_index)  # with the run's secrets blocks as read
        self.options = replace(options, key_index=self.keys)
        self.analyzer = analyzer
        self.whole = NumberedOn()
        self.payloads = _Payloads()
        self.reasm = Reassembler(b"", self.whole.flows,
                                 server_ports=options.ports, cap=options.stream_cap,
                                 backend=options.backend)
        self.files: list[SplitScan | None] = []  # totals of the files not yet handed on
        self.starts = FileStarts()  # connections begun by the end of each file fed
        self.order = InOrder(max_held, give_way=False)  # keyed by run-wide index + 1
        self.handed = 0  # files whose totals are out
        self._told = 0  # key warnings before the file being fed
        self._rows = 0  # selected frames fed, across the run's files
        self._skipped: Counter = Counter()  # reasm.skipped when the last file ended
        self._run_ended = False  # `finish` was called: no file goes on from the last
        # (file of the run, session number in it) -> keep its streams on it
        self._keep = keep_streams

    @property
    def paths(self) -> list[str]:
        return self.whole.paths

    def add(self, found: SplitScan, parts: list[ranges.RangeResult]) -> Iterator[tuple]:
        """Feed one more file (its totals, and its ranges in order): what can be handed
        on, as (file, Session or SplitScan) in order, as it can be.  The file is begun at
        the call."""
        self.begin(found.path)
        return self._fed_whole(found, parts)

    def _fed_whole(self, found: SplitScan, parts: list[ranges.RangeResult]
                   ) -> Iterator[tuple]:
        for i, res in enumerate(parts):
            yield from self.feed(res)
            parts[i] = res.slim()  # its frames are fed: the list lets them go
        yield from self.end(found)

    def begin(self, path: str) -> None:
        """The ranges fed next are the next file's."""
        self.whole.add_file(path)
        self.files.append(None)  # its totals, once the file is read
        self._told = len(self.keys.warnings)

    def feed(self, res: ranges.RangeResult) -> Iterator[tuple]:
        """The file's next range: what can be handed on, batch by batch as it is fed, so
        that a large range's judged sessions are never all held at once.  The hold cap is
        checked where the run's FEED_ROWS-th, 2·FEED_ROWS-th, ... row has gone in, and at
        the end of each file: points that do not move with where ranges begin, so which
        connection is evicted does not depend on -j or the ranges."""
        for n, done in _fed_range(self.reasm, self.whole, self.keys, self.payloads,
                                  self.paths[-1], res, FEED_ROWS - self._rows % FEED_ROWS):
            out: list[tuple] = []
            self._take(done, out)
            self._rows += n
            self._ready(out, self._rows % FEED_ROWS == 0)
            yield from out

    def end(self, found: SplitScan) -> list[tuple]:
        """The file is read (`found`: its totals): what can be handed on now."""
        found = replace(found, meta=found.meta.told(*self.payloads.taken(found.meta.warnings),
                                                    *self.keys.warnings[self._told:]))
        now = self.reasm.skipped  # the segments this file's frames had dropped
        found.counters.skipped.update(now - self._skipped)
        self._skipped = now
        # a datagram this file's end cut goes on in the next file (as mergecap -a joins
        # them): one never completed is given up, and counted, in the file its age ran
        # out in, or where the run ends
        self.reasm.defrag.passed(self.whole.base)
        found.counters.skipped.update(self.reasm.defrag.take_skipped())
        self.files[-1] = found
        self.starts.end_file(self.order.awaited - 1 + len(self.order)
                             + self.reasm.open_connections)
        out: list[tuple] = []
        self._ready(out)
        return out

    def finish(self) -> list[tuple]:
        """End of the run: every connection still held is done."""
        out: list[tuple] = []
        self.reasm.defrag.finish()
        if self.files and self.files[-1] is not None:  # its totals are held (`_totals`)
            self.files[-1].counters.skipped.update(self.reasm.defrag.take_skipped())
        self._run_ended = True
        try:
            self._take(self.reasm.drain(), out)
        finally:
            self.reasm.close()
            self.payloads.close()
        self._ready(out)
        return out

    def _take(self, conns, out: list[tuple]) -> int:
        """Judge finished connections; hand on those next in number order."""
        n = 0
        for conn in conns:
            n += 1
            keep = self._keep is not None and self._keep(*self.starts.place(conn.index))
            _, s = self.whole.session(conn, self.options, keep)  # s.number: index + 1
            for t in self.order.push(judge(s, self.analyzer,
                                           expect_name=self.options.expect_name)):
                self._totals(t.number - 1, out)
                k, number = self.starts.place(t.number - 1)  # within its own file
                out.append((k, t if t.number == number else evolve(t, number=number)))
        return n

    def _ready(self, out: list[tuple], check: bool = True) -> None:
        """With `check`, past the hold cap, the connection every waiting session waits for
        is handed on as it stands; then the totals of every file whose sessions are all
        out."""
        while check and self.order.full:
            if not self._take(self.reasm.evict_before(self.order.awaited), out):
                break  # nothing to hand on: wait for more (never spin)
        self._totals(self.order.awaited - 1, out)

    def _totals(self, next_index: int, out: list[tuple]) -> None:
        """Each file's totals right after its last session (before session `next_index`)."""
        ends = self.starts.ends
        while self.handed < len(ends) and next_index >= ends[self.handed]:
            if (self.handed == len(self.files) - 1 and len(self.reasm.defrag)
                    and not self._run_ended):
                break  # the last file's totals wait for the datagrams the next may complete
            out.append((self.handed, self.files[self.handed]))
            self.files[self.handed] = None
            self.handed += 1


def iter_file_events(paths: list[str], options: JudgeOptions, analyzer, *, jobs: int,
                     parts: int | None = None, workers: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     max_held: int = MAX_HELD, apart: Collection[int] = (),
                     keep_streams: Callable[[int, int], bool] | None = None
                     ) -> Iterator[tuple[int, Session | SplitScan]]:
    """Mapped files, in the order given, as `split.iter_split_files` reads them (files
    that go on from one another joined), with `jobs` processes reading their ranges and
    this one reassembling and judging.  Yields (index of the file, Session) for each
    session as soon as it and every earlier one is judged, then (index, SplitScan) with the
    file's totals (or its error) after its last session.  What is held: the selected
    frames of the file being read and at most `max_held` judged sessions (see _Run).  A
    compressed file is read here, as one range (`run.compressed`), and joined like the
    others; the files whose indices are in `apart` go on from none before them.
    `keep_streams(file, number)` says which sessions keep their reassembled streams (for
    `follow`), by the index of the file where they begin and their number in it."""
    paths = [os.fsdecode(p) for p in paths]
    sizes = [_size(p) for p in paths]
    # Ranges of about one size across the files, RANGES_PER_JOB per job in all: a ring
    # buffer's files are shared out whole, a few large files are split.  One job reads the
    # files in order, so it needs no ranges.
    each = max(MIN_RANGE, sum(sizes) // (jobs * RANGES_PER_JOB)) if jobs > 1 else 0

    def plans() -> Iterator[Plan]:
        for p, size in zip(paths, sizes, strict=True):
            if is_compressed_file(p):
                yield [compressed.task(p, frozenset(options.ports), options.backend,
                                       options.piece)]
                continue
            n = parts or (-(-size // each) if each else 1)
            try:
                yield ranges.plan_file(ranges.PlanTask(p, n, options.ports, options.backend,
                                                       1 if parts else MIN_RANGE, CARRY_MAX))
            except CaptureError as e:
                yield e

    def kept(first: int) -> Callable[[int, int], bool] | None:
        """keep_streams for a run beginning at file `first`, which numbers files from it."""
        if keep_streams is None:
            return None
        return lambda f, n: keep_streams(first + f, n)

    alone = not (workers and jobs > 1)
    reader = _reader(jobs, not alone)
    run: _Run | None = None
    live = False  # the file being read is fed range by range, as its ranges come
    breaks = RunBreaks()
    try:
        parts_of_file: list[ranges.RangeResult] = []
        for event in _accepted(reader, plans(), jobs, alone):
            kind, k = event[0], event[1]
            if kind == "replaced":  # the file ends with the last range read of it
                parts_of_file[-1] = ranges.ended_replaced(parts_of_file[-1], event[2])
                continue
            if kind == "range":
                if not parts_of_file:
                    if k in apart:
                        breaks.cut()
                    # Its first frame decides its run (in most files the first range has
                    # it): its sessions are judged while the workers read the rest of it.
                    on = breaks.decides(event[3].counters)
                    if on is False or (on and run is None):
                        if run is not None:
                            yield from _in_paths(run.finish(), k - len(run.paths))
                        run = _Run(options, analyzer, max_held, kept(k))
                    if on is not None:
                        run.begin(paths[k])
                        live = True
                if live:
                    yield from _in_paths(run.feed(event[3]), k + 1 - len(run.paths))
                parts_of_file.append(event[3].slim() if live else event[3])
                if progress is not None:
                    progress(sum(sizes[:k]) + event[2].stop, sum(sizes))
                continue
            if kind == "error":
                parts_of_file = []  # what was read of it before the error goes too, unless
                if run is not None:  # it was fed live: what is judged of it is handed on
                    yield from _in_paths(run.finish(), k + int(live) - len(run.paths))
                    run = None
                live = False
                breaks.goes_on(None)
                yield k, SplitScan(paths[k], error=str(event[2]), failure=event[2])
                continue
            found = SplitScan(paths[k], (), ranges.merge_counters(
                [r.counters for r in parts_of_file]), ranges.merged_meta(parts_of_file),
                event[2], "streamed")
            on = breaks.goes_on(found.counters)
            if live:
                found = replace(found, joined=len(run.paths) > 1)
                yield from _in_paths(run.end(found), k + 1 - len(run.paths))
            else:
                if not on or run is None:
                    if run is not None:
                        yield from _in_paths(run.finish(), k - len(run.paths))
                    run = _Run(options, analyzer, max_held, kept(k))
                found = replace(found, joined=bool(run.paths))
                yield from _in_paths(run.add(found, parts_of_file), k + 1 - len(run.paths))
            parts_of_file, live = [], False
        if run is not None:
            first = len(paths) - len(run.paths)
            last, run = run, None
            yield from _in_paths(last.finish(), first)
    finally:
        if run is not None:
            run.reasm.close()
        reader.close()


def _in_paths(events: list[tuple], first: int) -> Iterator[tuple]:
    """A run's events with its file numbers made indices into the paths given."""
    for k, item in events:
        yield first + k, item


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
