"""The main job: every SMTP session of a capture, with its certificates judged and a verdict
list a mail admin can act on.  `scan()` is the embedding API; the CLI only formats it."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .crosssession import CrossSession
from .diagnose import is_problem
from .errors import FastcapError
from .judging import analyzer_for, judge, trust_store
from .options import judge_options
from .reassembly import DEFAULT_CAP
from .selection import DEFAULT_PORTS, FrameCounters
from .session import DEFAULT_IMPLICIT_TLS_PORTS, MAX_HELD, Session, iter_sessions
from .stream import PIECE, needs_stream
from .x509check import Analyzer

SPLIT_MIN_BYTES = 64 << 20  # smaller files take less time than starting the workers


def _worth_splitting(path: str | os.PathLike) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False  # let the one-process path report the error
    return (stat.S_ISREG(st.st_mode) and st.st_size >= SPLIT_MIN_BYTES
            and not needs_stream(path))


def has_problem(session: Session) -> bool:
    """A verdict of severity warning or error: the code alone does not say (e.g.
    client_cert_not_requested is a problem only where a certificate is expected)."""
    return any(is_problem(v) for v in session.verdicts)


@dataclass
class ScanSummary:
    """Per-file totals, filled while `scan` runs."""

    path: str
    sessions: int = 0
    with_problems: int = 0
    verdicts: Counter = field(default_factory=Counter)
    frames: int = 0
    warnings: list[str] = field(default_factory=list)
    # Nothing is dropped silently: frames or blocks not analysed, by reason ...
    skipped: Counter = field(default_factory=Counter)
    # ... byte ranges the reader could not parse and stepped over ...
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    # ... and sessions a resource limit touched (cap, budget, hold cap), by reason.
    limits: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"path": self.path, "sessions": self.sessions,
                "with_problems": self.with_problems, "frames": self.frames,
                "verdicts": dict(sorted(self.verdicts.items())), "warnings": self.warnings,
                "skipped": dict(sorted(self.skipped.items())),
                "unreadable": [list(r) for r in self.unreadable],
                "limits": dict(sorted(self.limits.items())),
                "checksums_verified": False}


def scan(path: str | os.PathLike, *, ports: Iterable[int] = DEFAULT_PORTS,
         implicit_tls_ports: Iterable[int] = DEFAULT_IMPLICIT_TLS_PORTS,
         expect_name: str | None = None, trust: str = "mozilla",
         ca_file: str | os.PathLike | None = None, backend: str = "auto",
         analyzer: Analyzer | None = None, summary: ScanSummary | None = None,
         progress: Callable[[int, int], None] | None = None,
         stream_cap: int = DEFAULT_CAP, jobs: int = 1, executor=None,
         parts: int | None = None, piece: int = PIECE, options=None,
         cross: CrossSession | None = None) -> Iterator[Session]:
    """Every TCP connection on `ports` as a judged `Session`, numbered from 1 by first frame.

    Certificate analysis is memoised per distinct chain and capture day, so one Analyzer
    (pass your own to share it across files) makes repeated certificates cheap.  `stream_cap`
    bounds the bytes kept per direction of a connection (raise it for huge chains).
    `jobs` > 1 has that many worker processes read the file's byte ranges while this one
    reassembles and judges them as they arrive, in order (`fastcap.streamed`): identical
    results, sessions still streamed.  With an `executor` (see `fastcap.parallel`) its tasks
    reassemble and judge too, with their own analyzers built from `trust`/`ca_file` and the
    same "today", and the sessions come at the end.  Compressed captures (gzip, zstd,
    lz4), pipes and `-` (stdin) are streamed `piece` bytes at a time, in one process.
    `options` (from `judge_options`) replaces the judging arguments for split scans.
    `cross` links each session to earlier ones (resumed TLS sessions, servers that asked for
    a certificate): a new one per scan unless given, e.g. to share it across files.
    Raises CaptureError for a file that is not a readable capture.
    """
    cross = CrossSession() if cross is None else cross
    where = os.fspath(path)
    analyzer = analyzer or Analyzer(trust_store(trust, ca_file))
    counters = FrameCounters()
    meta: list = []
    if executor is None and jobs > 1 and not _worth_splitting(path):
        jobs = 1
    if jobs > 1 or executor is not None:
        from . import parallel, streamed

        judge_with = analyzer if options is None else analyzer_for(options)
        options = options or judge_options(
            ports=ports, implicit_tls_ports=implicit_tls_ports, expect_name=expect_name,
            trust=trust, ca_file=ca_file, backend=backend, stream_cap=stream_cap,
            today=analyzer.today)
        split: list = []
        if executor is None:  # worker processes read, this one judges as ranges arrive
            sessions = streamed.iter_scan(path, options, judge_with, jobs=jobs, parts=parts,
                                          out=split, progress=progress)
        else:  # the executor's tasks reassemble and judge too (a Dask cluster)
            sessions = parallel.iter_split(path, options, jobs=jobs, executor=executor,
                                           parts=parts, out=split, progress=progress)
    else:
        sessions = (judge(s, analyzer, expect_name=expect_name) for s in iter_sessions(
            path, ports=ports, implicit_tls_ports=implicit_tls_ports, backend=backend,
            counters=counters, capture_out=meta, progress=progress, cap=stream_cap,
            piece=piece))
    for s in sessions:
        _link(cross, s, summary, where)
        if summary is not None:
            _count(summary, s)
        yield s
    if jobs > 1 or executor is not None:
        counters, meta = split[0].counters, [split[0].meta]
    if summary is not None:
        _totals(summary, counters, meta)


def _link(cross: CrossSession, s: Session, summary: ScanSummary | None, path: str) -> bool:
    """cross.apply, counting what it forgot in `summary`'s limits."""
    before = cross.dropped
    changed = cross.apply(s, path)
    if summary is not None and cross.dropped > before:
        summary.limits["TLS sessions or servers forgotten for linking later connections "
                       f"(over {cross.limit} remembered)"] += cross.dropped - before
    return changed


def link_counted(cross: CrossSession, s: Session, summary: ScanSummary, path: str) -> None:
    """`_link` for a session `summary` has counted already (judged and counted elsewhere,
    e.g. a whole file scanned on a cluster worker): its verdict counts follow the change."""
    codes, problem = Counter(v.code for v in s.verdicts), has_problem(s)
    if _link(cross, s, summary, path):
        summary.verdicts -= codes
        summary.verdicts.update(v.code for v in s.verdicts)
        summary.with_problems += has_problem(s) - problem


def _count(summary: ScanSummary, s: Session) -> None:
    summary.sessions += 1
    summary.with_problems += has_problem(s)
    summary.verdicts.update(v.code for v in s.verdicts)
    if s.tcp.capped:
        summary.limits["sessions cut at the per-direction byte cap (--stream-cap)"] += 1
    if s.tcp.evicted:
        summary.limits["sessions handed on before they ended (reassembly memory budget, "
                       f"or over {MAX_HELD} sessions waiting for them)"] += 1


def _totals(summary: ScanSummary, counters: FrameCounters, metas: list) -> None:
    summary.frames = counters.packets
    summary.skipped.update(counters.skipped)
    summary.limits.update(counters.notes)
    for m in metas:
        summary.warnings += [str(w) for w in m.warnings]
        summary.skipped.update(m.skipped)
        summary.unreadable += m.unreadable


@dataclass
class FileResult:
    """One file of `scan_files`: its sessions in number order and summary, or its error."""

    path: str
    sessions: list[Session]
    summary: ScanSummary
    error: str | None = None


def scan_files(paths: Iterable[str | os.PathLike], **kw) -> list[FileResult]:
    """iter_scan_files as a list."""
    return list(iter_scan_files(paths, **kw))


def iter_scan_files(paths: Iterable[str | os.PathLike], **kw) -> Iterator[FileResult]:
    """iter_file_streams with each file's sessions listed: one FileResult per file, in the
    order given, as soon as its last session is judged."""
    for fs in iter_file_streams(paths, **kw):
        sessions = list(fs.sessions)
        yield FileResult(fs.path, sessions, fs.summary, fs.errors[0] if fs.errors else None)


@dataclass
class FileStream:
    """One file of `iter_file_streams`: its sessions as they are judged, then (once they
    are exhausted) its summary and errors, complete."""

    path: str
    sessions: Iterator[Session]
    summary: ScanSummary
    errors: list[str] = field(default_factory=list)


def iter_file_streams(paths: Iterable[str | os.PathLike], *, jobs: int = 1, executor=None,
                      parts: int | None = None, options=None,
                      progress: Callable[[int, int], None] | None = None,
                      max_held: int = MAX_HELD, cross: CrossSession | None = None,
                      **kw) -> Iterator[FileStream]:
    """Several files, in the order given, as `scan` would read each one, except that files
    which continue one another (a ring buffer: each starts no earlier than the previous
    ended, and within a minute of it) are reassembled as one capture.  A session still open
    at the end of one file is completed from the next and reported once, in the file where
    it began, with `continues_into` naming the later files (its frame numbers count on into
    them, as in `mergecap -a`).  Compressed files and pipes are read alone.

    `jobs` worker processes read the ranges of the files in turn while this process
    reassembles and judges them (`fastcap.streamed`), and each file's sessions stream out
    in number order as they are judged, so memory does not grow with the number of files
    or sessions.  Exhaust a file's `sessions` before asking for the next file (what is left
    of them is read and dropped then).  At most `max_held` judged sessions wait for an
    earlier, still open connection; past that it is handed on as it stands (evicted).  With
    an `executor`, its tasks share the ranges of all files, then the flows of each run of
    continuing files, and each file comes when its run is done.  One `cross` (new unless
    given) links sessions across all the files, in the order given.  `kw`: the judging
    arguments of `scan`."""
    from . import parallel, streamed

    paths = [os.fspath(p) for p in paths]
    cross = CrossSession() if cross is None else cross
    analyzer = kw.get("analyzer")
    given = options is not None
    options = options or judge_options(
        **{k: v for k, v in kw.items() if k not in ("analyzer", "piece")},
        today=analyzer.today if analyzer is not None else None)
    alone = [executor is None and needs_stream(p) for p in paths]
    mapped = [p for p, a in zip(paths, alone, strict=True) if not a]
    if executor is not None:
        split = parallel.iter_split_files(mapped, options, jobs=jobs, executor=executor,
                                          parts=parts, progress=progress)
        events: Iterator = iter([])
    else:
        judge_with = analyzer if analyzer is not None and not given else \
            analyzer_for(options)
        events = streamed.iter_file_events(mapped, options, judge_with, jobs=jobs,
                                           parts=parts, progress=progress,
                                           max_held=max_held) if mapped else iter([])
    last: Iterator[Session] | None = None
    for p, a in zip(paths, alone, strict=True):
        for _ in last or ():  # what the caller left of the previous file
            pass
        summary = ScanSummary(p)
        fs = FileStream(p, iter([]), summary)
        if a:
            fs.sessions = _alone(p, summary, fs.errors, {**kw, "cross": cross})
        elif executor is not None:
            res = next(split)
            if res.error is None:
                for s in res.sessions:
                    _link(cross, s, summary, p)
                    _count(summary, s)
                _totals(summary, res.counters, [res.meta])
            else:
                fs.errors.append(res.error)
            fs.sessions = iter(res.sessions)
        else:
            fs.sessions = _streamed(events, summary, fs.errors, cross, p)
        last = fs.sessions
        yield fs


def _alone(path: str, summary: ScanSummary, errors: list[str], kw: dict) -> Iterator[Session]:
    try:
        yield from scan(path, summary=summary, **kw)
    except FastcapError as e:
        errors.append(str(e))


def _streamed(events: Iterator, summary: ScanSummary, errors: list[str], cross: CrossSession,
              path: str) -> Iterator[Session]:
    """One file's share of streamed.iter_file_events: its sessions, then its totals."""
    for _k, item in events:
        if isinstance(item, Session):
            _link(cross, item, summary, path)
            _count(summary, item)
            yield item
        elif item.error is not None:
            errors.append(item.error)
            return
        else:
            _totals(summary, item.counters, [item.meta])
            return
