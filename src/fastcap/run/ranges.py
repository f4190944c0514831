"""Split one capture into byte ranges that are walked, decoded and selected independently.

A range's first record is found the way `resync` finds records after damage (a chain of
well-framed pcapng blocks, or of plausible pcap headers), starting from a state guessed from
the file's head.  Each range reads up to the first record that starts at or after its end, so
consecutive ranges join exactly when the next range started where the previous one stopped,
in the same state.  `stitch` checks that for every border and re-reads any range whose guess
was wrong (a false start inside packet data, a new section or interface mid-file, a resync
that needed the previous record's time) from the exact state: the result never depends on
where the borders fell.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import CaptureError, CaptureWarning
from ..read import pcap, pcapng, resync
from ..read.capture import DEFAULT_WINDOW, Capture, CaptureMeta, WalkState
from ..read.capture import (
    merge_meta as merge_meta,  # its home before reading and running were split
)
from ..read.guard import FileReplaced, replaced_message, same_file
from ..read.walkstatus import MAX_BLOCK, MAX_CAPLEN
from ..select.checksums import add_flow_sums
from ..select.flows import FlowKey, FlowTable
from ..select.selection import FrameCounters, iter_selected
from ..tcp.carry import carried
from ..tcp.feed import concat as concat  # re-exported: it used to live here
from ..tcp.feed import rewritten_at, rows, within
from ..tcp.reassembly import FrameCols
from .rings import NumberedOn
from .rings import renumbered as renumbered  # re-exported: it used to live here

_YEAR_S = 366 * 86400
_PRELUDE_BLOCKS = 4096  # blocks read to learn a pcapng file's interfaces before its packets


@dataclass(frozen=True)
class RangeTask:
    """Read records starting in [begin, stop): from `state` exactly when `exact`, else from
    the first record found at or after `begin` with `state` as the guess."""

    path: str
    index: int
    begin: int
    stop: int
    state: WalkState | None  # None: the file's own start
    exact: bool
    ports: frozenset[int]
    backend: str = "auto"
    carry: int = 0  # carry the selected frames' payloads when they take at most this many bytes
    ahead: bool = False  # walk ahead on a thread: no other reader has the other cores
    # the file's `file_identity` when it was planned: a range that finds another file under
    # its name reads none of it (FileReplaced)
    identity: tuple[int, int] | None = None
    # Its walk, begun in this process before its turn (BegunRange); never sent to a worker.
    begun: BegunRange | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RangeResult:
    """What a worker read of one byte range, handed back across processes: frozen, so that
    a range held in a file's list is the one read (`slim` and `ended_replaced` make the
    changed copies a list then holds)."""

    index: int
    start: WalkState | None  # where reading began (None: the file's start)
    end: WalkState
    start_used: bool  # a resync before the first record relied on the guessed state
    counters: FrameCounters
    meta: CaptureMeta
    cols: FrameCols  # usable TCP frames on the ports; frame numbers from 1 in this range
    flow_keys: list[FlowKey]  # the range's own flow ids index this list
    # The selected frames' payloads (tcp.carry), which cols' payload offsets then index;
    # None: they index the file.
    payload: bytes | bytearray | None = None

    @property
    def frames(self) -> int:
        first = 1 if self.start is None else self.start.frame
        return self.end.frame - first

    def slim(self) -> RangeResult:
        """This range's totals and walk states without its frames, once they are fed: what
        a file's list of ranges keeps while the next ones are read."""
        return replace(self, cols=concat([]), flow_keys=[], payload=None)


def _header(buf) -> pcap.PcapHeader | None:
    try:
        hdr = pcap.parse_header(bytes(buf[: pcap.MAX_HEADER_LEN]))
    except ValueError:  # cut short: the first range's walk reports it
        return None
    return None if hdr is None else pcap.with_records(hdr, buf, len(buf))


def guess_state(cap: Capture) -> WalkState:
    """The state a walk is in after the file's header (pcap) or its first section header and
    the interface blocks ahead of the first packet (pcapng): right for every later range of
    a single-section capture whose interfaces are all described up front."""
    mm, size = cap.buffer, cap.meta.size
    if cap.meta.format == "pcap":
        hdr = _header(mm)
        ref = None
        first = pcap.HEADER_LEN if hdr is None else hdr.header_len
        if hdr is not None and size >= first + 4:
            (ref,) = struct.unpack_from(">I" if hdr.big_endian else "<I", mm, first)
        return WalkState(first, 1, ref_s=ref or None)  # 0: a hole's zeros
    big = pcapng.byte_order_of_shb(mm, 0) if size >= 28 else None
    if big is None:
        return WalkState(0, 1)
    order = ">" if big else "<"
    interfaces: list[pcapng.Interface] = []
    (off,) = struct.unpack_from(order + "I", mm, 4)
    for _ in range(_PRELUDE_BLOCKS):
        if off + 12 > size:
            break
        btype, blen = struct.unpack_from(order + "II", mm, off)
        blen = pcapng.padded(blen)
        if btype in (pcapng.BT_EPB, pcapng.BT_SPB, pcapng.BT_PB) or blen < 12:
            break
        if btype == pcapng.BT_IDB and off + blen <= size:
            try:
                ifc = pcapng.parse_idb(bytes(mm[off + 8: off + blen - 4]), order,
                                       len(interfaces), 0)
            except ValueError:
                break
            interfaces.append(ifc)
        off += blen
    section = pcapng.Section(0, 0, big, struct.unpack_from(order + "HH", mm, 12),
                             tuple(interfaces))
    return WalkState(0, 1, section=section, params=tuple(i.params() for i in interfaces),
                     interfaces=tuple(interfaces))


def plan(cap: Capture, parts: int, ports: Iterable[int], backend: str = "auto",
         min_bytes: int = 1 << 20, carry: int = 0) -> list[RangeTask]:
    """`parts` ranges of about equal size, none under `min_bytes` (small files are not worth
    a worker); the first starts at the file's start.  `carry`: see RangeTask."""
    size, ports = cap.meta.size, frozenset(ports)
    guess = guess_state(cap)
    parts = max(1, min(parts, size // max(1, min_bytes) or 1))
    cuts = [size * i // parts for i in range(parts + 1)]
    return [RangeTask(cap.path, i, cuts[i], cuts[i + 1], None if i == 0 else guess, False,
                      ports, backend, carry, identity=cap.meta.identity)
            for i in range(parts)]


@dataclass(frozen=True)
class PlanTask:
    path: str
    parts: int
    ports: frozenset[int]
    backend: str = "auto"
    min_bytes: int = 1 << 20
    carry: int = 0  # see RangeTask


def plan_file(task: PlanTask) -> list[RangeTask]:
    """`plan` for a file opened where this runs (a cluster worker needs to see the file; the
    client need not).  CaptureError for a file that is not a capture."""
    with Capture(task.path, backend=task.backend) as cap:
        return plan(cap, task.parts, task.ports, task.backend, task.min_bytes, task.carry)


def _find_start(cap: Capture, task: RangeTask) -> WalkState:
    arr = np.frombuffer(cap.buffer, dtype=np.uint8)
    size, state = cap.meta.size, task.state
    if cap.meta.format == "pcap":
        hdr = _header(cap.buffer)
        ref = state.ref_s
        lo, hi = (1, 2**32 - 1) if ref is None else (ref - _YEAR_S, ref + _YEAR_S)
        at = None if hdr is None else resync.next_pcap_record(
            arr, max(task.begin, hdr.header_len), size, hdr.big_endian, hdr.rules,
            min(MAX_CAPLEN, 2**32 - 1), lo, hi)
    else:
        big = state.section.big_endian if state.section is not None else None
        at = resync.next_pcapng_block(arr, task.begin, size, big, MAX_BLOCK)
    return state.moved(size if at is None else at, 1)


def read_range(task: RangeTask) -> RangeResult:
    """Phase one of a split scan, for one range (runs in a worker, or here, where its walk
    may have been begun before its turn)."""
    return (task.begun or BegunRange(task, walk=False)).result()


class BegunRange:
    """`read_range(task)` under way: its capture opened and, with `walk` where the task
    may walk ahead, its first window walked on a thread from now on, so that what the
    caller does until it asks for the `result()` (judging the file before) overlaps the
    walk.  An error opening the file is raised by `result()`, in the range's turn.  The
    capture is closed by `result()`, or by `close()` when the range is not read after all."""

    def __init__(self, task: RangeTask, walk: bool = True) -> None:
        self.task = task
        self._cap: Capture | None = None
        self._start: WalkState | None = None
        self._error: Exception | None = None
        # A range of n bytes holds at most n/16 records: a window no bigger than that.
        rows = min(DEFAULT_WINDOW, max(0, task.stop - task.begin) // 16 + 16)
        try:
            try:
                cap = self._cap = Capture(task.path, backend=task.backend, window=rows)
            except CaptureError:  # the new bytes of a file replaced are not its error
                if not same_file(task.path, task.identity):
                    raise FileReplaced(task.path, offset=task.begin) from None
                raise
            if task.identity is not None and cap.meta.identity != tuple(task.identity):
                raise FileReplaced(task.path, offset=task.begin)  # a capture, but another
            cap.read_ahead &= task.ahead  # unless read alone, other workers have the cores
            start = task.state
            if start is not None and not task.exact:
                start = _find_start(cap, task)
            self._start = start
            if walk:
                cap.walk_first_ahead(start, task.stop)
        except Exception as e:  # noqa: BLE001 - raised in the range's turn, by result()
            self.close()
            self._error = e

    def result(self) -> RangeResult:
        if self._error is not None:
            raise self._error
        cap, task, start = self._cap, self.task, self._start
        assert cap is not None
        try:
            counters, flows = FrameCounters(), FlowTable()
            parts = [FrameCols.of(sel) for sel in iter_selected(
                cap, task.ports, counters, flows, start=start, stop=task.stop)]
            walked = cols = concat(parts)
            payload = None
            if task.carry and (moved := _rewritten(cap, walked)) is not None:
                # written over in place since its frames were walked: the range's rows are
                # not fed, and the file ends where their payloads begin
                cap.rewritten(moved)
                walked = cols = rows(walked, slice(0, 0))
            limit, backend = task.carry, task.backend
            if limit and (c := carried(cols, cap.buffer, limit, backend)) is not None:
                cols, payload = c.cols, c.payload
            cut = cap.cut_at()
            if cut is not None:  # cut short by now: what was copied past it reads as zeros
                cols, payload = within(walked, cut)[0], None
                if limit and (c := carried(cols, cap.buffer, limit, backend)) is not None:
                    cols, payload = c.cols, c.payload
                if cut < task.stop:
                    cap.cut_short(cut)
            return RangeResult(task.index, start, cap.end_state, cap.start_used, counters,
                               cap.meta, cols, flows.keys, payload)
        finally:
            self.close()

    def close(self) -> None:
        """Done with, or not wanted after all: its walk finished and its file let go."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.close()


def _rewritten(cap: Capture, cols: FrameCols) -> int | None:
    """`tcp.feed.rewritten_at` over a range's rows, in the file as it ends now: checked
    before their payloads are copied out (uncopied, the reader of the payloads checks)."""
    if not len(cols):
        return None
    cut = cap.cut_at()
    return rewritten_at(cap.buffer, cols, 0, len(cols),
                        len(cap.buffer) if cut is None else cut)


@dataclass(frozen=True)
class Stitched:
    """A whole file's phase-one results, as one sequential walk would have produced them."""

    meta: CaptureMeta
    counters: FrameCounters
    cols: FrameCols  # global frame numbers and flow ids
    flows: FlowTable
    reread: int = 0  # ranges read again because their guessed start was wrong
    frames: int = 0  # frame numbers the file uses (packets and frame-numbered blocks)
    ranges: tuple[RangeResult, ...] = field(default=(), repr=False)


def joins(prev_end: WalkState, res: RangeResult) -> bool:
    """The range began exactly where its predecessor's walk ended, in the same state."""
    return (res.start is not None and not res.start_used
            and res.start.key() == prev_end.key())


def gave_up(prev: RangeResult, prev_task: RangeTask) -> bool:
    """The walk of the previous range stopped before its end, at damage it could not get
    past: as for one walk, the file ends there."""
    return prev.end.offset < prev_task.stop


def exact_task(task: RangeTask, prev_end: WalkState) -> RangeTask:
    """`task` to be read again from where its predecessor's walk ended, in that state."""
    exact = prev_end.moved(prev_end.offset, 1)
    return RangeTask(task.path, task.index, prev_end.offset, task.stop, exact, True,
                     task.ports, task.backend, task.carry, identity=task.identity)


def ended_replaced(last: RangeResult, failed: FileReplaced) -> RangeResult:
    """`last` as it ends its file: another file was found under the name of the file it is
    a range of, after it was read; the ranges read before stand, and the file ends where
    `last` ended, told as one process tells it."""
    return replace(last, meta=last.meta.told(CaptureWarning(
        failed.path, last.end.offset, "replaced", replaced_message(failed.path))))


def stitch(tasks: list[RangeTask], results: list[RangeResult | CaptureError],
           read: Callable[[RangeTask], RangeResult] = read_range) -> Stitched | CaptureError:
    """Check every border; re-read (in order, from the exact state) each range that does not
    join its predecessor; merge the rest.  A range that failed (a result that is an error, or
    its re-read raising one) fails the file, unless it found the file replaced after earlier
    ranges were read: the file then ends where they did (`ended_replaced`)."""
    if all(isinstance(r, RangeResult) for r in results):  # else given in the tasks' order
        results = sorted(results, key=lambda r: r.index)
    if isinstance(results[0], CaptureError):
        return results[0]
    accepted: list[RangeResult] = [results[0]]
    reread = 0
    for before, task, res in zip(tasks, tasks[1:], results[1:], strict=False):
        if gave_up(accepted[-1], before):
            break
        try:
            if isinstance(res, CaptureError):
                raise res
            if not joins(accepted[-1].end, res):
                reread += 1
                res = read(exact_task(task, accepted[-1].end))
        except FileReplaced as e:
            accepted[-1] = ended_replaced(accepted[-1], e)
            break
        except CaptureError as e:  # the file went away or changed since it was planned
            return e
        accepted.append(res)
    return merge_results(accepted, reread)


def merge_counters(parts: list[FrameCounters]) -> FrameCounters:
    """The counters of a file's ranges, given in file order, as one walk would count."""
    out = FrameCounters()
    for c in parts:
        for name, v in c.__dict__.items():
            if name in ("first_ts_ns", "last_ts_ns", "first_dated_ns", "last_dated_ns"):
                continue
            if name == "checksums_first":  # the file's first: the first part's that has one
                out.checksums_first = v if out.checksums_first < 0 else out.checksums_first
                continue
            if name == "checksums_flows":
                add_flow_sums(out.checksums_flows, ((k, *t) for k, t in v.items()))
                continue
            if isinstance(v, Counter):
                getattr(out, name).update(v)
            else:
                setattr(out, name, getattr(out, name) + v)
        if c.first_ts_ns is not None:
            out.first_ts_ns = c.first_ts_ns if out.first_ts_ns is None else min(
                out.first_ts_ns, c.first_ts_ns)
            out.last_ts_ns = c.last_ts_ns if out.last_ts_ns is None else max(
                out.last_ts_ns, c.last_ts_ns)
        if out.first_dated_ns is None:  # parts in file order
            out.first_dated_ns = c.first_dated_ns
        if c.last_dated_ns is not None:
            out.last_dated_ns = c.last_dated_ns
    return out


def merged_meta(accepted: list[RangeResult]) -> CaptureMeta:
    """The metadata of joined ranges, as one walk of the file fills it: their secrets
    blocks' frame numbers (counted from 1 in each range) are made the file's."""
    meta = merge_meta([r.meta for r in accepted])
    if meta.secrets:
        secrets, base = [], 0
        for r in accepted:
            secrets += [replace(b, frame=b.frame + base) for b in r.meta.secrets]
            base += r.frames
        meta = replace(meta, secrets=tuple(secrets))
    return meta


def merge_results(accepted: list[RangeResult], reread: int) -> Stitched:
    """Joined ranges, in file order, as one walk of the file."""
    whole = NumberedOn()
    parts = [whole.add(r.cols, r.frames, r.flow_keys) for r in accepted]
    return Stitched(merged_meta(accepted),
                    merge_counters([r.counters for r in accepted]), concat(parts), whole.flows,
                    reread, whole.base, tuple(accepted))
