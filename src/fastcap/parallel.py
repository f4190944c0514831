"""One capture scanned by several processes, with results identical to a one-process scan.

Phase one (`ranges`): byte ranges are walked, decoded and selected in parallel, then
stitched into the file's selected TCP frames with global frame numbers and flow ids.
Phase two: the flows are dealt out to workers, each reassembling and judging whole flows.
Flows never interact in the reassembler except through its shared limits (memory budget,
open-connection cap) and its clock, so each worker gets 1/N of each limit: if no worker
had to evict, the shared limits were never reached in one process either.  The clock (the
latest timestamp seen, which decides when a closed connection stops lingering) is the same
in a worker as in one process as long as timestamps never go backwards; when they do, or a
worker evicted, phase two runs again in one process.  Sessions are numbered by first frame,
as the one-process scan numbers them.

`executor` is anything with `map(fn, items) -> list`: a process pool here, a Dask client in
`fastcap.distributed`, or the built-in serial one (what the tests use to split files at many
points cheaply).
"""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import ranges
from .flows import FlowKey, FlowTable
from .reassembly import DEFAULT_BUDGET, DEFAULT_CAP, DEFAULT_MAX_OPEN, FrameCols, Reassembler
from .selection import FrameCounters
from .session import Session, build_session

_FEED_ROWS = 1 << 16


class Executor(Protocol):
    def map(self, fn: Callable, items: list) -> list: ...


class SerialExecutor:
    """Runs every task here, in order: the split logic without the processes."""

    def map(self, fn: Callable, items: list) -> list:
        return [fn(x) for x in items]


def _run_dumped(job: tuple[Callable, Any]) -> bytes:
    fn, item = job
    return _dumps(fn(item))


def _dumps(obj: Any) -> bytes:
    """Pickle with the cyclic GC paused: a result holds tens of thousands of small objects,
    and collections triggered by building them, not the pickling, would dominate."""
    was = gc.isenabled()
    gc.disable()
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        if was:
            gc.enable()


def _loads(data: bytes) -> Any:
    was = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(data)
    finally:
        if was:
            gc.enable()


class PoolExecutor:
    """`jobs` processes on this machine: this one and `jobs - 1` workers.  The first task
    of every map runs here while the workers take the rest, so its results need no copying.
    Workers are forked where the platform allows, so they start with this process's imports
    instead of paying for them again."""

    local_first = True

    def __init__(self, jobs: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.jobs = max(1, jobs)
        self._pool = ctx.Pool(self.jobs - 1) if self.jobs > 1 else None

    def map(self, fn: Callable, items: list) -> list:
        if not items:
            return []
        if self._pool is None or len(items) == 1:
            return [fn(x) for x in items]
        pending = self._pool.map_async(_run_dumped, [(fn, x) for x in items[1:]], chunksize=1)
        first = fn(items[0])
        return [first, *(_loads(b) for b in pending.get())]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class JudgeOptions:
    """What a worker needs to build and judge sessions the way `scanner.scan` does."""

    ports: frozenset[int]
    implicit_tls_ports: frozenset[int]
    expect_name: str | None = None
    trust: str = "mozilla"
    ca_file: str | None = None  # its name, for messages; workers use ca_data
    ca_data: bytes | None = None
    backend: str = "auto"
    stream_cap: int = DEFAULT_CAP
    today: Any = None  # datetime fixed by the caller: every worker judges "today" alike


@dataclass
class FlowTask:
    path: str
    cols: FrameCols
    keys: list[FlowKey]  # indexed by cols.flow (worker-local flow ids)
    share: int  # number of workers sharing the limits
    options: JudgeOptions


@dataclass
class FlowResult:
    sessions: list[Session]
    evicted: bool


def _payload_buffer(path: str):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else b""


def analyzer_for(options: JudgeOptions):
    """The Analyzer a worker judges with: same roots and same "today" as the caller's."""
    from .scanner import trust_store
    from .x509check import Analyzer, TrustStore

    store = trust_store(options.trust)
    if options.ca_data is not None:
        store = store.plus(TrustStore.from_bundle(options.ca_data, options.ca_file or "CA"))
    return Analyzer(store, today=options.today)


def reassemble_flows(task: FlowTask) -> FlowResult:
    """Phase two for one worker's flows: reassemble, read SMTP/TLS, judge."""
    from .scanner import judge

    o = task.options
    analyzer = analyzer_for(o)
    flows = FlowTable()
    flows.keys = list(task.keys)
    buf = _payload_buffer(task.path)
    out: list[Session] = []
    evicted = False

    def take(conns) -> None:
        nonlocal evicted
        for conn in conns:
            evicted |= conn.evicted
            s = build_session(conn, implicit_tls_ports=o.implicit_tls_ports)
            out.append(judge(s, analyzer, expect_name=o.expect_name))

    with Reassembler(buf, flows, server_ports=o.ports, cap=o.stream_cap,
                     budget=DEFAULT_BUDGET // task.share,
                     max_open=max(1, DEFAULT_MAX_OPEN // task.share),
                     backend=o.backend) as reasm:
        cols = task.cols
        for a in range(0, len(cols), _FEED_ROWS):
            take(reasm.feed_cols_iter(_rows(cols, slice(a, a + _FEED_ROWS))))
        take(reasm.drain())
    return FlowResult(out, evicted)


def _rows(cols: FrameCols, sel) -> FrameCols:
    return FrameCols(*(np.asarray(getattr(cols, f))[sel] for f in FrameCols.__dataclass_fields__))


def _deal(cols: FrameCols, n_flows: int, capacity: list[float]) -> list[np.ndarray]:
    """Flow ids per worker, heaviest flows first to the worker least loaded for its
    capacity (a worker whose results must be copied back gets a little less)."""
    weight = np.bincount(cols.flow, weights=np.asarray(cols.payload_caplen, np.float64) + 200,
                         minlength=n_flows)
    cap = np.asarray(capacity, np.float64)
    load = np.zeros(len(cap))
    owner = np.empty(n_flows, np.int64)
    for f in np.argsort(-weight, kind="stable"):
        w = int(np.argmin((load + weight[f]) / cap))
        owner[f] = w
        load[w] += weight[f]
    return [np.flatnonzero(owner == w) for w in range(len(cap))]


_COPY_COST = 0.8  # share of the work given to a worker whose sessions are copied back


def _flow_tasks(path: str, st: ranges.Stitched, workers: int, options: JudgeOptions,
                local_first: bool = False) -> list[FlowTask]:
    cols, keys = st.cols, st.flows.keys
    capacity = [1.0] + [_COPY_COST if local_first else 1.0] * (workers - 1)
    tasks = []
    for fids in _deal(cols, len(keys), capacity):
        if not len(fids):
            continue
        local = np.full(len(keys), -1, np.int64)
        local[fids] = np.arange(len(fids))
        sub = _rows(cols, np.flatnonzero(local[cols.flow] >= 0))
        sub.flow = local[sub.flow]
        tasks.append(FlowTask(path, sub, [keys[f] for f in fids], workers, options))
    return tasks


@dataclass
class SplitScan:
    """What a split scan found: judged sessions in number order and the file's totals."""

    sessions: list[Session]
    counters: FrameCounters
    meta: Any  # capture.CaptureMeta
    reread_ranges: int = 0
    phase_two: str = "split"  # or why it ran in one process
    notes: list[str] = field(default_factory=list)


def _one_process(path: str, cols: FrameCols, flows: FlowTable, options: JudgeOptions
                 ) -> list[Session]:
    return reassemble_flows(FlowTask(path, cols, flows.keys, 1, options)).sessions


def split_scan(path: str | os.PathLike, options: JudgeOptions, *, jobs: int,
               executor: Executor | None = None, parts: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> SplitScan:
    """Scan one file with `jobs` workers over `parts` byte ranges (default: `jobs` ranges of
    at least 1 MiB; an explicit `parts` is taken as it is, however small the ranges)."""
    path = os.fspath(path)
    own = executor is None
    ex: Any = PoolExecutor(jobs) if own else executor
    try:
        (tasks,) = ex.map(ranges.plan_file, [ranges.PlanTask(
            path, parts or jobs, options.ports, options.backend, 1 if parts else 1 << 20)])
        st = ranges.stitch(tasks, ex.map(ranges.read_range, tasks))
        if progress is not None:
            progress(st.meta.size, st.meta.size)
        cols = st.cols
        why = None
        if jobs <= 1:
            why = "one job"
        elif len(cols) > 1 and np.any(np.diff(cols.ts_ns) < 0):
            why = "timestamps go backwards"
        if why is None:
            results = ex.map(reassemble_flows, _flow_tasks(
                path, st, jobs, options, getattr(ex, "local_first", False)))
            if any(r.evicted for r in results):
                why = "a worker reached its share of the reassembly limits"
            else:
                sessions = [s for r in results for s in r.sessions]
        if why is not None:
            sessions = _one_process(path, cols, st.flows, options)
    finally:
        if own:
            ex.close()
    sessions.sort(key=lambda s: s.first_frame)
    for i, s in enumerate(sessions, 1):
        s.number = i
    return SplitScan(sessions, st.counters, st.meta, st.reread, why or "split")


def iter_split(path: str | os.PathLike, options: JudgeOptions, *, jobs: int,
               executor: Executor | None = None, parts: int | None = None,
               out: list | None = None,
               progress: Callable[[int, int], None] | None = None) -> Iterator[Session]:
    """`split_scan` as an iterator; `out` (optional list) receives the SplitScan."""
    res = split_scan(path, options, jobs=jobs, executor=executor, parts=parts,
                     progress=progress)
    if out is not None:
        out.append(res)
    yield from res.sessions
