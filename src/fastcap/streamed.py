"""`-j N` on one mapped file: worker processes read its byte ranges; this process stitches
them in file order and feeds each to one reassembler as soon as it arrives.

Reassembly, SMTP/TLS parsing and judging run here exactly as in a one-process scan
(`session.iter_sessions`), only on frames that other processes walked, decoded and selected.
So results are identical by construction (one reassembler sees every frame in order, with
the whole of its limits), sessions stream out in number order as they finish instead of
being held to the end, and only the selected frames' columns — a few dozen bytes per SMTP
frame — cross between processes, a few ranges at a time.  Walking the file is the part that
parallelises; judging sessions overlaps with it here.  (`parallel` deals flows out to workers
instead: the way for executors such as a Dask cluster, where this process should do little.)
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from . import ranges
from .flows import FlowTable
from .parallel import JudgeOptions, SplitScan, _loads, _payload_buffer, _rows, _run_dumped
from .reassembly import Reassembler
from .session import MAX_HELD, InOrder, Session, build_session

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


def iter_scan(path: str | os.PathLike, options: JudgeOptions, analyzer, *, jobs: int,
              parts: int | None = None, workers: bool = True, out: list | None = None,
              progress: Callable[[int, int], None] | None = None) -> Iterator[Session]:
    """The judged sessions of `path`, in number order, as `scanner.scan` gives them, with
    `jobs` processes reading `parts` byte ranges (default RANGES_PER_JOB per job, each at
    least MIN_RANGE); `workers=False` reads them here.  `out` (a list) receives the file's
    SplitScan (totals, no sessions) when the last session is out.  CaptureError for a file
    that is no capture."""
    from .scanner import judge

    path = os.fspath(path)
    tasks = ranges.plan_file(ranges.PlanTask(path, parts or jobs * RANGES_PER_JOB,
                                             options.ports, options.backend,
                                             1 if parts else MIN_RANGE))
    size = tasks[-1].stop if tasks else 0
    reader: Any = _Workers(jobs) if workers and len(tasks) > 1 else _Here()
    try:
        todo, inflight = iter(tasks), deque()

        def top_up() -> None:
            while len(inflight) < _AHEAD * jobs and (t := next(todo, None)) is not None:
                inflight.append((t, reader.submit(t)))

        top_up()
        flows, order = FlowTable(), InOrder(MAX_HELD)
        accepted: list[ranges.RangeResult] = []
        prev_task, base, reread = None, 0, 0

        def judged(conns) -> Iterator[Session]:
            """In number order, judged in that order as one process judges them."""
            for conn in conns:
                s = build_session(conn, implicit_tls_ports=options.implicit_tls_ports)
                for t in order.push(s):
                    yield judge(t, analyzer, expect_name=options.expect_name)

        with Reassembler(_payload_buffer(path), flows, server_ports=options.ports,
                         cap=options.stream_cap, backend=options.backend) as reasm:
            while inflight:
                task, handle = inflight.popleft()
                res = reader.get(handle)
                top_up()
                if accepted:
                    if ranges.gave_up(accepted[-1], prev_task):
                        break
                    if not ranges.joins(accepted[-1].end, res):
                        res = ranges.read_range(ranges.exact_task(task, accepted[-1].end))
                        reread += 1
                cols = ranges.renumbered(res.cols, base, flows.ids_for(res.flow_keys))
                base += res.frames
                accepted.append(_no_cols(res))
                prev_task = task
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
