"""Captures scanned by an executor's tasks, with results identical to a one-process scan:
the way for a Dask cluster, where this process should do little.  Local worker processes
go through `streamed` instead, where this process judges.  Both run on the same engine:
executors (`workers`), ring-buffer runs and their numbering (`rings`), feeding (`tcp.feed`).

Phase one (`ranges`): byte ranges are walked, decoded and selected in parallel, then
stitched into the file's selected TCP frames with global frame numbers and flow ids.
Phase two: the flows are dealt out to workers, each reassembling and judging whole flows.
Flows never interact in the reassembler except through its shared limits (memory budget,
open-connection cap) and its clock, so each worker gets 1/N of each limit: if no worker
had to evict, the shared limits were never reached in one process either.  The clock (the
latest timestamp seen, which decides when a closed connection stops lingering) is the same
in a worker as in one process as long as timestamps never go backwards; when they do, or a
worker evicted, phase two runs again in one process.  Sessions are numbered by first frame,
as the one-process scan numbers them.  A compressed file is read in this process, its
payloads carried and kept here (`run.compressed`), so a run holding one is reassembled here.

`executor` is a `workers.Executor`: a process pool, a Dask client in `distributed`, or the
serial one (what the tests use to split files at many points cheaply).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import CaptureError, CaptureWarning
from ..judge.judging import analyzer_for as analyzer_for  # re-exported: it used to live here
from ..judge.judging import judge
from ..options import JudgeOptions as JudgeOptions
from ..read.guard import cut_message, gone_warning, map_again, same_file
from ..read.stream import is_compressed_file
from ..select.flows import FlowKey, FlowTable
from ..select.fragments import FRAG_ROW
from ..select.selection import FrameCounters
from ..session import KeysAsRead, Session
from ..tcp.feed import concat, fed, record_end, rewritten_at, rows, within
from ..tcp.reassembly import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_OPEN,
    TOMB_GROUPS,
    FrameCols,
    Reassembler,
)
from . import compressed, ranges
from .rings import NumberedOn, numbered_in_files, runs, session_in_chain
from .workers import Executor, PoolExecutor

_HELD_MAX = 256  # files held open through a scan (`_hold`): the first, of many


@dataclass(frozen=True)
class FlowTask:
    """Some flows of a chain of files.  Rows of file i are cols[file_rows[i]:file_rows[i+1]];
    frame numbers count on across the chain, file i's starting after frame_offsets[i].
    Frozen, its sequences tuples: it is handed to a worker, and the same chain's lists
    serve the next task."""

    paths: tuple[str, ...]
    cols: FrameCols
    # indexed by cols.flow, the run's own flow numbers: a worker's share keeps them, since
    # the reassembler's records of closed connections are grouped by flow number
    keys: tuple[FlowKey, ...] | dict[int, FlowKey]
    share: int  # number of workers sharing the limits
    options: JudgeOptions
    file_rows: tuple[int, ...] = ()
    frame_offsets: tuple[int, ...] = ()
    sizes: tuple[int, ...] = ()  # file i's size when its frames were read
    # file i's `file_identity` when its frames were read (`CaptureMeta.identity`)
    identities: tuple[tuple[int, int] | None, ...] = ()
    # file i's descriptor, held open in this process since before its ranges were read,
    # for a file replaced meanwhile (never sent to a worker: only `_in_one` has it)
    held: tuple[int | None, ...] = ()
    # file i's payloads, carried by its reader here (a compressed file, `run.compressed`):
    # its rows' payload offsets index them (never sent to a worker: only `_in_one` has them)
    carried: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FlowResult:
    """What a worker hands back for a FlowTask: built once its flows are all fed."""

    sessions: tuple[tuple[int, Session], ...]  # (index of the file holding its first frame,
    # session)
    evicted: bool
    # per file of the task: the segments its frames had the reassembler drop, and the IP
    # fragments given up (`select.fragments`), by reason
    skipped: tuple[Counter, ...] = ()
    # per file of the task: where it ended when found cut short since its frames were read
    # (the sessions are then of no use: their payloads past the cut read as zeros or gaps)
    cuts: tuple[int | None, ...] = ()
    # per file of the task: where its payloads begin, when another file was found under its
    # name (none of its rows is fed then)
    replaced: tuple[int | None, ...] = ()


def _fed_carried(reasm: Reassembler, payload, cols: FrameCols, a: int, b: int,
                 take: Callable) -> None:
    """Rows [a, b) of `cols` fed with the payloads their reader carried: copied as the file
    was read, whatever it became since."""
    reasm.rebind(payload)
    try:
        for done in fed(reasm, cols, a, b):
            take(done)
    finally:
        reasm.rebind(b"")


def _fed_file(reasm: Reassembler, path: str, cols: FrameCols, a: int, b: int, size: int,
              take: Callable, identity: tuple[int, int] | None = None,
              fd: int | None = None) -> tuple[int | None, int | None]:
    """Rows [a, b) of `cols`, file `path`'s, fed with its payloads read from the file,
    mapped and guarded here: another program may have cut it short since its frames were
    read (it was `size` bytes then), or cut it while it is mapped (whose pages past the new
    end would raise SIGBUS, with the C module answered by zeros), or put another file under
    its name (it was `identity` then).  Where it was found to end, if it was cut short
    before the payloads the rows need, feeding stopping there; and where the rows' payloads
    begin, if it was replaced or written over in place (`rewritten_at`), none fed.  With
    `fd`, the file held open since before it was read is read, whatever is under its name."""
    mapped = map_again(path, identity, fd)
    if mapped is None:
        return None, int(cols.payload_file_off[a])
    buf, guard = mapped
    now = guard.cut_at() if guard is not None else None
    # the same file, but written over since?
    moved = rewritten_at(buf, cols, a, b, len(buf) if now is None else now)
    if moved is not None:
        if guard is not None:
            guard.close()
        return None, moved
    need = min(size, record_end(rows(cols, slice(a, b)))) if size else 0
    cut = len(buf) if len(buf) < need else None
    try:
        if cut is None:
            reasm.rebind(buf)
            batches = fed(reasm, cols, a, b)
            # looked before each batch too: without the C module, the pages past a cut
            # must be made zeros before they are touched (`MappingGuard.look`)
            while (cut := guard.cut_at() if guard is not None else None) is None:
                done = next(batches, None)
                if done is None:
                    break
                take(done)
        return cut, None
    finally:
        reasm.rebind(b"")
        if guard is not None:  # before the unmap: the addresses may be reused
            guard.close()


def reassemble_flows(task: FlowTask) -> FlowResult:
    """Phase two for one worker's flows: reassemble, read SMTP/TLS, judge.  The reassembler
    reads each file's payload in turn, so a connection open when one ring-buffer file ends
    goes on in the next, as does an IP datagram whose fragments that end cut."""
    o = task.options
    analyzer = analyzer_for(o)
    flows = FlowTable()
    flows.keys = task.keys if isinstance(task.keys, dict) else list(task.keys)  # type: ignore[assignment]
    offsets = task.frame_offsets or [0]
    bounds = task.file_rows or [0, len(task.cols)]
    out: list[tuple[int, Session]] = []
    evicted = False
    skipped = [Counter() for _ in task.paths]
    cuts: list[int | None] = [None] * len(task.paths)
    replaced: list[int | None] = [None] * len(task.paths)
    sizes = task.sizes or [0] * len(task.paths)
    identities = task.identities or [None] * len(task.paths)
    held = task.held or [None] * len(task.paths)
    kept = task.carried or [None] * len(task.paths)

    def take(conns) -> None:
        nonlocal evicted
        for conn in conns:
            evicted |= conn.evicted
            first, s = session_in_chain(conn, task.paths, offsets, o)
            out.append((first, judge(s, analyzer, expect_name=o.expect_name)))

    with Reassembler(b"", flows, server_ports=o.ports, cap=o.stream_cap,
                     budget=DEFAULT_BUDGET // task.share,
                     max_open=max(1, DEFAULT_MAX_OPEN // task.share),
                     backend=o.backend) as reasm:
        for i, path in enumerate(task.paths):
            a, b = bounds[i], bounds[i + 1]
            before = reasm.skipped
            if a < b and kept[i] is not None:
                _fed_carried(reasm, kept[i], task.cols, a, b, take)
            elif a < b:
                cuts[i], replaced[i] = _fed_file(reasm, path, task.cols, a, b, sizes[i],
                                                 take, identities[i], held[i])
            # a datagram a file's end cut goes on in the next (mergecap -a joins them),
            # unless its age ran out by the file's last frame
            if i + 1 < len(offsets):
                reasm.defrag.passed(offsets[i + 1])
            skipped[i] = reasm.skipped - before
            skipped[i].update(reasm.defrag.take_skipped())
        reasm.defrag.finish()  # those never completed: given up where the run ends
        skipped[-1].update(reasm.defrag.take_skipped())
        take(reasm.drain())
    return FlowResult(tuple(out), evicted, tuple(skipped), tuple(cuts), tuple(replaced))


def _deal(cols: FrameCols, n_flows: int, capacity: list[float]) -> list[np.ndarray]:
    """Flow ids per worker, heaviest first to the worker least loaded for its capacity (a
    worker whose results must be copied back gets a little less).  Flows are dealt by their
    number modulo TOMB_GROUPS, all those of one group to one worker: the reassembler groups
    its records of closed connections so, and a flow's record gives way to later closes of
    its group's flows, in a worker as in one process."""
    weight = np.bincount(cols.flow, weights=np.asarray(cols.payload_caplen, np.float64) + 200,
                         minlength=n_flows)
    group = np.arange(n_flows) % TOMB_GROUPS
    weight = np.bincount(group, weights=weight, minlength=min(n_flows, TOMB_GROUPS))
    cap = np.asarray(capacity, np.float64)
    load = np.zeros(len(cap))
    owner = np.empty(len(weight), np.int64)
    for f in np.argsort(-weight, kind="stable"):
        w = int(np.argmin((load + weight[f]) / cap))
        owner[f] = w
        load[w] += weight[f]
    return [np.flatnonzero(owner[group] == w) for w in range(len(cap))]


_COPY_COST = 0.75  # share of the work given to a worker whose sessions are copied back


def _flow_tasks(chain: _Chain, workers: int, options: JudgeOptions,
                local_first: bool = False) -> list[FlowTask]:
    cols, keys = chain.cols, chain.flows.keys
    capacity = [1.0] + [_COPY_COST if local_first else 1.0] * (workers - 1)
    tasks = []
    for fids in _deal(cols, len(keys), capacity):
        if not len(fids):
            continue
        mine = np.zeros(len(keys), bool)
        mine[fids] = True
        picked = np.flatnonzero(mine[cols.flow])
        # the flows keep their numbers: a worker numbering its share anew would remember
        # closed connections one process has forgotten (see TOMB_GROUPS), and count a late
        # segment of one as late where one process starts a connection
        tasks.append(FlowTask(tuple(chain.paths), rows(cols, picked),
                              {int(f): keys[f] for f in fids}, workers, options,
                              tuple(np.searchsorted(picked, chain.file_rows).tolist()),
                              tuple(chain.frame_offsets), tuple(chain.sizes),
                              tuple(chain.identities)))
    return tasks


@dataclass(frozen=True)
class SplitScan:
    """What a split scan found in one file: judged sessions in number order (those whose
    first frame is in this file) and the file's totals, or why the file could not be read."""

    path: str
    sessions: tuple[Session, ...] = ()
    counters: FrameCounters | None = None
    meta: Any = None  # capture.CaptureMeta
    reread_ranges: int = 0
    phase_two: str = "split"  # or why it ran in one process
    error: str | None = None
    failure: CaptureError | None = field(default=None, repr=False)
    joined: bool = False  # read on from the file before it, one run of a ring's files


@dataclass
class _Chain:
    """Consecutive files read as one capture: frames numbered on across them."""

    paths: list[str]
    cols: FrameCols
    flows: FlowTable
    file_rows: list[int]  # cols rows of file i: [file_rows[i], file_rows[i+1])
    frame_offsets: list[int]
    sizes: list[int] = field(default_factory=list)  # file i's size when it was read
    identities: list[tuple[int, int] | None] = field(default_factory=list)  # and its identity
    held: list[int | None] = field(default_factory=list)  # as FlowTask.held
    carried: list[Any] = field(default_factory=list)  # as FlowTask.carried


def _chain(paths: list[str], stitched: list[ranges.Stitched | None], run: list[int],
           held: dict[int, int] | None = None) -> _Chain:
    """The files of one run as one capture: frames numbered on, flows numbered across;
    `held`: the descriptors held of files (by index) found replaced as they were read."""
    whole, parts, file_rows = NumberedOn(), [], [0]
    for i in run:
        st = stitched[i]
        whole.add_file(paths[i])
        parts.append(whole.add(st.cols, st.frames, st.flows.keys))
        file_rows.append(file_rows[-1] + len(st.cols))
    return _Chain(whole.paths, concat(parts), whole.flows, file_rows, whole.offsets,
                  [stitched[i].meta.size for i in run],
                  [stitched[i].meta.identity for i in run],
                  [(held or {}).get(i) if _replaced(stitched[i]) else None for i in run],
                  [_carried(stitched[i]) for i in run])


def _carried(st: ranges.Stitched):
    """The payloads the file's one reader carried (a compressed file's), or None: its rows
    index the file."""
    return st.ranges[0].payload if len(st.ranges) == 1 else None


def _replaced(st: ranges.Stitched) -> bool:
    """Whether its ranges found the file replaced after the first were read."""
    return any(w.kind == "replaced" for w in st.meta.warnings)


def _hold(plan: list[ranges.RangeTask] | CaptureError) -> int | None:
    """The planned file opened here before its ranges are read, if it is still the file
    planned: should another take its name meanwhile, the payloads of the ranges read
    before are read from this one (`FlowTask.held`)."""
    if isinstance(plan, CaptureError) or not plan:
        return None
    try:
        fd = os.open(plan[0].path, os.O_RDONLY)
    except OSError:
        return None
    if not same_file(plan[0].path, plan[0].identity, fd) or plan[0].identity is None:
        os.close(fd)
        return None
    return fd


def _within_cuts(chain: _Chain, cuts: list[int | None], replaced: list[int | None]
                 ) -> _Chain:
    """`chain` without the rows whose payloads lie past where their file was found cut
    short (the file as cut, read as the walk of a cut file reads it), nor those of a file
    found replaced (whose payloads were never read)."""
    parts, file_rows = [], [0]
    for i, (cut, gone) in enumerate(zip(cuts, replaced, strict=True)):
        part = rows(chain.cols, slice(chain.file_rows[i], chain.file_rows[i + 1]))
        if gone is not None:
            part = rows(part, slice(0, 0))
        elif cut is not None:
            part = within(part, cut)[0]
        parts.append(part)
        file_rows.append(file_rows[-1] + len(part))
    return replace(chain, cols=concat(parts), file_rows=file_rows)


def _plan(task: ranges.PlanTask) -> list[ranges.RangeTask] | CaptureError:
    try:
        return ranges.plan_file(task)
    except CaptureError as e:
        return e


def _read_compressed(task: compressed.CompressedTask) -> ranges.RangeResult | CaptureError:
    """A compressed file's one range, read in this process, which keeps its payloads
    (`run.compressed`) for phase two, as a local scan of a ring keeps them."""
    try:
        return compressed.read(task)
    except CaptureError as e:
        return e


def _read(task: ranges.RangeTask) -> ranges.RangeResult | CaptureError:
    """Phase one for one range, its error returned: a file changed since it was planned
    ends where its ranges read before ended (`ranges.stitch`), the other files unharmed."""
    try:
        return ranges.read_range(task)
    except CaptureError as e:
        return e


def _skipped(results: list[FlowResult], files: int) -> list[Counter]:
    """Per file, the segments the workers' reassemblers dropped, summed."""
    out = [Counter() for _ in range(files)]
    for r in results:
        for total, part in zip(out, r.skipped, strict=False):
            total.update(part)
    return out


class _PhaseTwo:
    """What phase two found in a run of files: sessions (with the index of the file of
    each's first frame), why it ran where it did, the segments dropped per file, and where
    each file was found cut short, or replaced, since its frames were read (None: neither)."""

    def __init__(self, results: list[FlowResult], why: str, files: int) -> None:
        self.sessions = [s for r in results for s in r.sessions]
        self.why, self.skipped = why, _skipped(results, files)
        self.cuts = _earliest([r.cuts for r in results], files)
        self.replaced = _earliest([r.replaced for r in results], files)

    def found(self) -> bool:
        """Whether any file was found cut short or replaced."""
        return any(c is not None for c in self.cuts + self.replaced)


def _earliest(found: list[list[int | None]], files: int) -> list[int | None]:
    """Per file, the earliest offset any worker found (None: none found one)."""
    out: list[int | None] = [None] * files
    for offsets in found:
        for i, at in enumerate(offsets):
            if at is not None:
                out[i] = at if out[i] is None else min(out[i], at)
    return out


def _in_one(chain: _Chain, options: JudgeOptions) -> FlowResult:
    return reassemble_flows(FlowTask(tuple(chain.paths), chain.cols,
                                     tuple(chain.flows.keys), 1, options,
                                     tuple(chain.file_rows), tuple(chain.frame_offsets),
                                     tuple(chain.sizes), tuple(chain.identities),
                                     tuple(chain.held), tuple(chain.carried)))


def _phase_two(chain: _Chain, options: JudgeOptions, jobs: int, ex: Any) -> _PhaseTwo:
    cols, why, files = chain.cols, None, len(chain.paths)
    if jobs <= 1:
        why = "one job"
    elif any(p is not None for p in chain.carried):
        # its payloads are in this process only, kept as it was read
        why = "a compressed file"
    elif len(cols) > 1 and np.any(np.diff(cols.ts_ns) < 0):
        why = "timestamps go backwards"
    elif len(cols) and np.any(np.asarray(cols.flags) & FRAG_ROW):
        # a datagram's fragments belong to no flow until it is whole: one defragmenter
        # sees them all, as in a one-process scan
        why = "IP fragments"
    if why is None:
        results = ex.map(reassemble_flows, _flow_tasks(
            chain, jobs, options, getattr(ex, "local_first", False)))
        found = _PhaseTwo(results, "split", files)
        if found.found() or not any(r.evicted for r in results):
            return found
        why = "a worker reached its share of the reassembly limits"
    return _PhaseTwo([_in_one(chain, options)], why, files)


def _phase_two_as_cut(chain: _Chain, options: JudgeOptions, jobs: int, ex: Any
                      ) -> _PhaseTwo:
    """`_phase_two`; where a file was found cut short (by another program, since its
    frames were read), again in one process over the rows before the cut, until no earlier
    cut is found: the sessions of the files as cut, whichever worker found the cut first.
    A file found replaced by another is read so without any of its rows, unless this
    process holds it open (`chain.held`): it is then read so from there, once."""
    found = _phase_two(chain, options, jobs, ex)
    files = len(chain.paths)
    cuts: list[int | None] = [None] * files
    replaced: list[int | None] = [None] * files
    retry = {i for i, fd in enumerate(chain.held) if fd is not None}
    while found.found():  # each cut found again lies before the last; a replaced file's
        # rows are all left out, so it is not mapped again
        cuts = [k if c is None else c for c, k in zip(found.cuts, cuts, strict=True)]
        again = [None if i in retry else c for i, c in enumerate(found.replaced)]
        retry.clear()  # read from where it is held now: what is found then stands
        replaced = [k if c is None else c for c, k in zip(again, replaced, strict=True)]
        found = _PhaseTwo([_in_one(_within_cuts(chain, cuts, replaced), options)],
                          "a file was cut short or replaced while it was read", files)
    found.cuts, found.replaced = cuts, replaced
    return found


def iter_split_files(paths: list[str | os.PathLike], options: JudgeOptions, *, jobs: int,
                     executor: Executor | None = None, parts: int | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     apart: Collection[int] = ()) -> Iterator[SplitScan]:
    """Scan files with `jobs` workers, each over `parts` byte ranges (default: `jobs` ranges
    of at least 1 MiB; an explicit `parts` is taken as it is, however small the ranges).
    Files that continue one another are reassembled as one capture: a session open at the
    end of one is completed from the next and reported once, in the file where it began,
    its frame numbers counting on into the next files (as `mergecap -a` numbers them).
    Results come in the order of `paths`, each run of files as soon as it is done, and a
    run's frames and sessions are let go once it has been handed on.  The files whose
    indices are in `apart` go on from none before them (`rings.RunBreaks.cut`)."""
    paths = [os.fsdecode(p) for p in paths]
    own = executor is None
    ex: Any = PoolExecutor(jobs) if own else executor
    held: dict[int, int] = {}  # descriptors of files, by index (`_hold`)
    try:
        # a compressed file is read here, one range, as a local scan reads it in a ring
        squeezed = [is_compressed_file(p) for p in paths]
        mapped = iter(ex.map(_plan, [ranges.PlanTask(p, parts or jobs, options.ports,
                                                     options.backend, 1 if parts else 1 << 20)
                                     for p, z in zip(paths, squeezed, strict=True) if not z]))
        plans: list = [[compressed.task(p, frozenset(options.ports), options.backend)] if z
                       else next(mapped) for p, z in zip(paths, squeezed, strict=True)]
        tasks = [t for plan, z in zip(plans, squeezed, strict=True)
                 if not z and not isinstance(plan, CaptureError) for t in plan]
        held.update((k, fd) for k, plan in enumerate(plans[:_HELD_MAX])
                    if not squeezed[k] and (fd := _hold(plan)) is not None)
        done = iter(ex.map(_read, tasks))
        stitched: list[ranges.Stitched | None] = []
        for k, plan in enumerate(plans):
            st = None if isinstance(plan, CaptureError) else ranges.stitch(
                plan, [_read_compressed(plan[0]) if squeezed[k] else next(done)
                       for _ in plan])
            if isinstance(st, CaptureError):  # the file went away or changed since planned
                plans[k], st = st, None
            stitched.append(st)
        if progress is not None:
            total = sum(st.meta.size for st in stitched if st is not None)
            progress(total, total)
        run_of = {run[0]: run for run in runs(
            [None if st is None else st.counters for st in stitched], apart)}
        for i, (path, plan) in enumerate(zip(paths, plans, strict=True)):
            if isinstance(plan, CaptureError):
                yield SplitScan(path, error=str(plan), failure=plan)
            elif i in run_of:
                yield from _run_results(paths, stitched, run_of[i], options, jobs, ex, held)
    finally:
        for fd in held.values():
            os.close(fd)
        if own:
            ex.close()


def _run_results(paths: list[str], stitched: list[ranges.Stitched | None], run: list[int],
                 options: JudgeOptions, jobs: int, ex: Any, held: dict[int, int]
                 ) -> Iterator[SplitScan]:
    chain = _chain(paths, stitched, run, held)
    keys = KeysAsRead(options.key_index)  # every secrets block of the run, by frame
    for i, base in zip(run, chain.frame_offsets, strict=True):
        told = len(keys.warnings)
        st = stitched[i]
        keys.add(st.meta.secrets, paths[i], base)
        stitched[i] = replace(st, meta=st.meta.told(*keys.warnings[told:]))
    two = _phase_two_as_cut(chain, replace(options, key_index=keys), jobs, ex)
    per_file = numbered_in_files(two.sessions, len(run))
    out = []
    for i, sessions, dropped, cut, gone in zip(run, per_file, two.skipped, two.cuts,
                                               two.replaced, strict=True):
        st = stitched[i]
        st.counters.skipped.update(dropped)
        meta = st.meta
        if gone is not None:  # told once, where reading it stopped: its payloads
            meta = replace(meta, warnings=tuple(w for w in meta.warnings
                                                if w.kind != "replaced")).told(
                gone_warning(paths[i], gone, meta.identity))
        elif cut is not None:
            meta = meta.told(CaptureWarning(paths[i], cut, "cut_short", cut_message(paths[i])))
        out.append(SplitScan(paths[i], tuple(sessions), st.counters, meta, st.reread,
                             two.why, joined=i != run[0]))
        stitched[i] = None  # the run's frames go with it
    yield from out


def split_files(paths: list[str | os.PathLike], options: JudgeOptions, *, jobs: int,
                executor: Executor | None = None, parts: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[SplitScan]:
    """iter_split_files as a list."""
    return list(iter_split_files(paths, options, jobs=jobs, executor=executor, parts=parts,
                                 progress=progress))


def split_scan(path: str | os.PathLike, options: JudgeOptions, *, jobs: int,
               executor: Executor | None = None, parts: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> SplitScan:
    """One file with `jobs` workers (see split_files); CaptureError if it is no capture."""
    (res,) = split_files([path], options, jobs=jobs, executor=executor, parts=parts,
                         progress=progress)
    if res.failure is not None:
        raise res.failure
    return res


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


def numbered(res: SplitScan) -> SplitScan:
    """A file's sessions put in order of first frame and numbered from 1, as a scan of
    that file alone numbers them."""
    (sessions,) = numbered_in_files([(0, s) for s in res.sessions], 1)
    return replace(res, sessions=tuple(sessions))
