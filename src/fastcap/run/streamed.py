"""`-j N` on mapped files: worker processes read their byte ranges; this process stitches
them in file order and feeds each to one reassembler as soon as it arrives.

Reassembly, SMTP/TLS parsing and judging run here exactly as in a one-process scan
(`session.iter_sessions`), only on frames that other processes walked, decoded and selected.
So results are identical by construction (one reassembler sees every frame in order, with
the whole of its limits), sessions stream out in number order as they finish instead of
being held to the end, and only the selected frames' columns — a few dozen bytes per SMTP
frame — cross between processes, a few ranges at a time.  Walking the file is the part that
parallelises; judging sessions overlaps with it here.  (`parallel` deals flows out to workers
instead: the way for executors such as a Dask cluster, where this process should do little.)

Several files are read the same way, one after another, the workers reading ahead across
file borders.  Files that go on from one another (a ring buffer, `parallel.follows`) share
one reassembler, so a session open when one file ends is completed from the next.  Sessions
are handed on in number order as they finish, each numbered within the file where it began,
and a file's totals right after its last session (`_Run`).  Whether a file goes on from the
previous one depends on its earliest timestamp, so a file's selected frames are held until
the file is read, and fed then.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CaptureError
from ..judge.judging import judge
from ..options import JudgeOptions
from ..select.flows import FlowTable
from ..session import MAX_HELD, InOrder, Session, build_session
from ..tcp.reassembly import Reassembler
from . import ranges
from .parallel import (
    SplitScan,
    _loads,
    _payload_buffer,
    _rows,
    _run_dumped,
    follows,
    session_in_chain,
)

RANGES_PER_JOB = 4  # ranges per worker: reading overlaps judging, and the last range is short
MIN_RANGE = 8 << 20
_AHEAD = 2  # ranges read ahead per worker: enough to keep them busy, and memory small
_FEED_ROWS = 1 << 16


class _Here:
    """Ranges read in this process, when asked for: the same path without workers."""

    def submit(self, task: ranges.RangeTask) -> ranges.RangeTask:
        return task

    def get(self, handle: ranges.RangeTask) -> ranges.RangeResult:
        return ranges.read_range(handle)

    def close(self) -> None:
        pass


class _Workers:
    """`jobs` forked processes reading ranges (spawned where fork is not available)."""

    def __init__(self, jobs: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._pool = ctx.Pool(jobs)

    def submit(self, task: ranges.RangeTask) -> Any:
        return self._pool.apply_async(_run_dumped, ((ranges.read_range, task),))

    def get(self, handle: Any) -> ranges.RangeResult:
        return _loads(handle.get())

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


def _no_cols(res: ranges.RangeResult) -> ranges.RangeResult:
    """The range's totals and walk states without its frames, once they are fed."""
    res.cols = ranges.concat([])
    res.flow_keys = []
    return res


def _plan_task(path: str, options: JudgeOptions, jobs: int, parts: int | None
               ) -> ranges.PlanTask:
    return ranges.PlanTask(path, parts or jobs * RANGES_PER_JOB, options.ports,
                           options.backend, 1 if parts else MIN_RANGE)


Plan = list[ranges.RangeTask] | CaptureError


def _accepted(reader: Any, plans: Iterator[Plan], jobs: int) -> Iterator[tuple]:
    """The ranges of each file in file order, as one walk of the file reads them, while the
    reader reads a few ahead (across file borders too).  Events, per file k in order:
    ("range", k, task, result) for each range (re-read here from the exact state when its
    guessed start was wrong), then ("done", k, ranges re-read); or ("error", k, CaptureError)
    for a file that is no capture."""
    inflight: deque = deque()
    dropped: set[int] = set()  # files whose walk gave up: their later ranges are not read

    def work() -> Iterator[tuple[int, ranges.RangeTask | CaptureError]]:
        for k, plan in enumerate(plans):
            if isinstance(plan, CaptureError):
                yield k, plan
            else:
                for t in plan:
                    if k not in dropped:
                        yield k, t

    todo = work()

    def top_up() -> None:
        while len(inflight) < _AHEAD * jobs and (item := next(todo, None)) is not None:
            k, t = item
            inflight.append((k, t, None if isinstance(t, CaptureError) else reader.submit(t)))

    top_up()
    cur, last, prev_task, reread = None, None, None, 0
    while inflight:
        k, task, handle = inflight.popleft()
        failed = task if isinstance(task, CaptureError) else None
        res = None
        if failed is None and k not in dropped:
            try:
                res = reader.get(handle)
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
    path = os.fspath(path)
    tasks = ranges.plan_file(_plan_task(path, options, jobs, parts))
    size = tasks[-1].stop if tasks else 0
    reader: Any = _Workers(jobs) if workers and len(tasks) > 1 else _Here()
    try:
        flows, order = FlowTable(), InOrder(MAX_HELD)
        accepted: list[ranges.RangeResult] = []
        base, reread = 0, 0

        def judged(conns) -> Iterator[Session]:
            """In number order, judged in that order as one process judges them."""
            for conn in conns:
                s = build_session(conn, implicit_tls_ports=options.implicit_tls_ports)
                for t in order.push(s):
                    yield judge(t, analyzer, expect_name=options.expect_name)

        with Reassembler(_payload_buffer(path), flows, server_ports=options.ports,
                         cap=options.stream_cap, backend=options.backend) as reasm:
            for event in _accepted(reader, iter([tasks]), jobs):
                if event[0] == "done":
                    reread = event[2]
                    continue
                if event[0] == "error":
                    raise event[2]
                _, _, task, res = event
                cols = ranges.renumbered(res.cols, base, flows.ids_for(res.flow_keys))
                base += res.frames
                accepted.append(_no_cols(res))
                for lo in range(0, len(cols), _FEED_ROWS):
                    yield from judged(reasm.feed_cols_iter(
                        _rows(cols, slice(lo, lo + _FEED_ROWS))))
                del cols
                if progress is not None:
                    progress(task.stop, size)
            yield from judged(reasm.drain())
        for t in order.drain():
            yield judge(t, analyzer, expect_name=options.expect_name)
    finally:
        reader.close()
    whole = ranges.merge_results(accepted, reread)
    order.note(whole.counters)
    if out is not None:
        out.append(SplitScan(path, [], whole.counters, whole.meta, reread, "streamed"))


class _Run:
    """Files that go on from one another, reassembled as one capture: frames numbered on
    across them, as `mergecap -a` numbers them.  Sessions are handed on in the order of
    their first frame, each numbered within its own file; a file's totals follow its last
    session, once every connection numbered by the end of its frames is out.  A connection
    left open (its FIN lost, say) would hold every later session; past `max_held` sessions
    waiting for it, it is handed on as it stands (evicted, as the reassembly budget evicts),
    and its later frames begin a new session."""

    def __init__(self, options: JudgeOptions, analyzer, path: str,
                 max_held: int = MAX_HELD) -> None:
        self.options, self.analyzer, self.max_held = options, analyzer, max_held
        self.flows = FlowTable()
        self.reasm = Reassembler(_payload_buffer(path), self.flows, server_ports=options.ports,
                                 cap=options.stream_cap, backend=options.backend)
        self.paths: list[str] = []
        self.offsets: list[int] = []  # frames before each file
        self.files: list[SplitScan | None] = []  # totals of the files not yet handed on
        self.ends: list[int] = []  # connections numbered by the end of each file fed
        self.held: list[tuple[int, int, Session]] = []  # (index, file, session), a heap
        self.base = self.next = self.handed = 0

    def add(self, found: SplitScan, parts: list[ranges.RangeResult]) -> list[tuple]:
        """Feed one more file (its totals, and its ranges in order); what can be handed
        on now, as (file, Session or SplitScan) in order."""
        if self.paths:
            self.reasm.rebind(_payload_buffer(found.path))
        self.paths.append(found.path)
        self.offsets.append(self.base)
        self.files.append(found)
        out: list[tuple] = []
        for res in parts:
            cols = ranges.renumbered(res.cols, self.base, self.flows.ids_for(res.flow_keys))
            self.base += res.frames
            _no_cols(res)
            for lo in range(0, len(cols), _FEED_ROWS):
                self._take(self.reasm.feed_cols_iter(
                    _rows(cols, slice(lo, lo + _FEED_ROWS))))
                out += self._ready()
        self.ends.append(self.next + len(self.held) + self.reasm.open_connections)
        return out + self._ready()

    def finish(self) -> list[tuple]:
        """End of the run: every connection still held is done."""
        try:
            self._take(self.reasm.drain())
        finally:
            self.reasm.close()
        return self._ready()

    def _take(self, conns) -> None:
        for conn in conns:
            k, s = session_in_chain(conn, self.paths, self.offsets, self.options)
            heapq.heappush(self.held, (conn.index, k, judge(
                s, self.analyzer, expect_name=self.options.expect_name)))

    def _ready(self) -> list[tuple]:
        out: list[tuple] = []
        while True:
            self._hand_on(out)
            if len(self.held) <= self.max_held:
                return out
            waiting = len(self.held)
            self._take(self.reasm.evict_before(self.next + 1))  # the one all others wait for
            if len(self.held) == waiting:  # nothing to hand on: wait for more (never spin)
                return out

    def _hand_on(self, out: list[tuple]) -> None:
        """The sessions next in number order, each file's totals right after its last."""
        while True:
            while self.handed < len(self.ends) and self.next >= self.ends[self.handed]:
                out.append((self.handed, self.files[self.handed]))
                self.files[self.handed] = None
                self.handed += 1
            if not (self.held and self.held[0][0] == self.next):
                return
            index, k, s = heapq.heappop(self.held)
            s.number = index - (self.ends[k - 1] if k else 0) + 1  # within its own file
            out.append((k, s))
            self.next += 1


def iter_file_events(paths: list[str], options: JudgeOptions, analyzer, *, jobs: int,
                     parts: int | None = None, workers: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     max_held: int = MAX_HELD) -> Iterator[tuple[int, Session | SplitScan]]:
    """Mapped files, in the order given, as `parallel.iter_split_files` reads them (files
    that go on from one another joined), with `jobs` processes reading their ranges and
    this one reassembling and judging.  Yields (index of the file, Session) for each
    session as soon as it and every earlier one is judged, then (index, SplitScan) with the
    file's totals (or its error) after its last session.  What is held: the selected
    frames of the file being read and at most `max_held` judged sessions (see _Run)."""
    paths = [os.fspath(p) for p in paths]
    sizes = [_size(p) for p in paths]
    # Ranges of about one size across the files, RANGES_PER_JOB per job in all: a ring
    # buffer's files are shared out whole, a few large files are split.  One job reads the
    # files in order, so it needs no ranges.
    each = max(MIN_RANGE, sum(sizes) // (jobs * RANGES_PER_JOB)) if jobs > 1 else 0

    def plans() -> Iterator[Plan]:
        for p, size in zip(paths, sizes, strict=True):
            n = parts or (-(-size // each) if each else 1)
            try:
                yield ranges.plan_file(ranges.PlanTask(p, n, options.ports, options.backend,
                                                       1 if parts else MIN_RANGE))
            except CaptureError as e:
                yield e

    reader: Any = _Workers(jobs) if workers and jobs > 1 else _Here()
    run: _Run | None = None
    try:
        parts_of_file: list[ranges.RangeResult] = []
        prev_end = None
        for event in _accepted(reader, plans(), jobs):
            kind, k = event[0], event[1]
            if kind == "range":
                parts_of_file.append(event[3])
                if progress is not None:
                    progress(sum(sizes[:k]) + event[2].stop, sum(sizes))
                continue
            if kind == "error":
                parts_of_file = []  # what was read of it before the error goes too
                if run is not None:
                    yield from _in_paths(run.finish(), k - len(run.paths))
                    run = None
                prev_end = None
                yield k, SplitScan(paths[k], error=str(event[2]), failure=event[2])
                continue
            found = SplitScan(paths[k], [], ranges.merge_counters(
                [r.counters for r in parts_of_file]), ranges.merge_meta(
                [r.meta for r in parts_of_file]), event[2], "streamed")
            if run is None or not follows(prev_end, found.counters.first_ts_ns):
                if run is not None:
                    yield from _in_paths(run.finish(), k - len(run.paths))
                run = _Run(options, analyzer, paths[k], max_held)
            prev_end = found.counters.last_ts_ns
            yield from _in_paths(run.add(found, parts_of_file), k + 1 - len(run.paths))
            parts_of_file = []
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
