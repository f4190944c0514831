"""The main job: every SMTP session of a capture, with its certificates judged and a verdict
list a mail admin can act on.  `scan()` is the embedding API; the CLI only formats it."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import FastcapError
from ..judge.crosssession import CrossSession
from ..judge.diagnose import is_problem
from ..judge.judging import Checker, analyzer_for, judge
from ..judge.judging import trust_store as trust_store
from ..options import AnyPath, ScanOptions, resolve
from ..options import judge_options as judge_options
from ..read.counts import Counts as Counts  # its home before the reader used it too
from ..read.stream import needs_stream, stream_kind
from ..select.checksums import rewritten_note
from ..select.selection import FrameCounters
from ..session import MAX_HELD, Session, evolve, iter_sessions, with_keys
from .executor import Executor

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


_NONE = Counts()


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """Per-file totals of a scan, handed back once its sessions are read (`Scan.summary`,
    `FileStream.summary`): frozen, so no later step changes what a caller holds; a step
    that adds to them (`attach_evidence`) hands back a new one (`dataclasses.replace`)."""

    path: str
    sessions: int = 0
    with_problems: int = 0
    verdicts: Counts = _NONE
    frames: int = 0
    warnings: tuple[str, ...] = ()
    # Nothing is dropped silently: frames or blocks not analysed, by reason ...
    skipped: Counts = _NONE
    # ... byte ranges the reader could not parse and stepped over ...
    unreadable: tuple[tuple[int, int], ...] = ()
    # ... and sessions a resource limit touched (cap, budget, hold cap), by reason.
    limits: Counts = _NONE
    # ICMP errors quoting a TCP header on a selected port (any length): none, and the
    # report's frame lists need not read past the last session for one
    icmp_about_selected: int = 0
    # read on from the file before it, as one run of a ring buffer's files (frame numbers
    # counting on): where the report looks for ICMP errors quoting that file's sessions
    joined: bool = False
    # the TCP checksums summed to tell a rewritten capture (`select.checksums`), and those
    # of them wrong and no offload's: the warning's counts, for a footer that says so
    checksums_sampled: int = 0
    checksums_rewritten: int = 0

    def __post_init__(self) -> None:
        for name in ("verdicts", "skipped", "limits"):  # given as a dict or Counter
            if not isinstance(getattr(self, name), Counts):
                object.__setattr__(self, name, Counts(getattr(self, name)))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "unreadable", tuple(tuple(r) for r in self.unreadable))

    def to_dict(self) -> dict:
        return {"path": self.path, "sessions": self.sessions,
                "with_problems": self.with_problems, "frames": self.frames,
                "verdicts": dict(sorted(self.verdicts.items())),
                "warnings": list(self.warnings), "skipped": dict(sorted(self.skipped.items())),
                "unreadable": [list(r) for r in self.unreadable],
                "limits": dict(sorted(self.limits.items())),
                "checksums_verified": False, "checksums_sampled": self.checksums_sampled,
                "checksums_rewritten": self.checksums_rewritten}


@dataclass
class _Tally:
    """A summary while its scan runs: counted into here, in one scan's own code, and
    handed out frozen (`frozen`) once the scan's sessions are read."""

    path: str
    sessions: int = 0
    with_problems: int = 0
    verdicts: Counter = field(default_factory=Counter)
    frames: int = 0
    warnings: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    limits: Counter = field(default_factory=Counter)
    icmp_about_selected: int = 0
    joined: bool = False
    checksums_sampled: int = 0
    checksums_rewritten: int = 0
    errors: list[str] = field(default_factory=list)  # a file stream's, not the summary's

    def frozen(self) -> ScanSummary:
        return ScanSummary(self.path, self.sessions, self.with_problems,
                           Counts(self.verdicts), self.frames, tuple(self.warnings),
                           Counts(self.skipped), tuple(self.unreadable),
                           Counts(self.limits), self.icmp_about_selected, self.joined,
                           self.checksums_sampled, self.checksums_rewritten)


class SummaryPending(RuntimeError):
    """A scan's summary asked for before its sessions were exhausted: the totals are not
    known until the last session is judged."""


class Scan(Iterator[Session]):
    """What `scan` returns: its sessions, as they are judged, then (once they are
    exhausted, or the scan raised) its frozen `summary`."""

    __slots__ = ("path", "_sessions", "_tally", "_summary")

    def __init__(self, path: str, sessions: Iterator[Session], tally: _Tally) -> None:
        self.path = path
        self._sessions = sessions
        self._tally = tally
        self._summary: ScanSummary | None = None

    def __iter__(self) -> Scan:
        return self

    def __next__(self) -> Session:
        try:
            return next(self._sessions)
        except (StopIteration, FastcapError):
            if self._summary is None:
                self._summary = self._tally.frozen()
            raise

    def close(self) -> None:
        """Stop the scan early (as a generator's `close`): its summary stays pending."""
        close = getattr(self._sessions, "close", None)
        if close is not None:
            close()

    @property
    def summary(self) -> ScanSummary:
        """The file's totals; SummaryPending until the sessions are exhausted."""
        if self._summary is None:
            raise SummaryPending(f"{self.path}: the summary is complete only once the scan's "
                                 "sessions are exhausted: read them all first")
        return self._summary

    @property
    def errors(self) -> tuple[str, ...]:
        """Why a file of `iter_file_streams` could not be read (its summary's time)."""
        self.summary  # noqa: B018 - pending until then
        return tuple(self._tally.errors)


def _resolve(options: ScanOptions | None, kw: dict[str, Any], analyzer: Checker | None,
             caller: str) -> ScanOptions:
    """The scan's options; built from keywords, they judge "today" as `analyzer` does."""
    if options is None and analyzer is not None and "today" not in kw:
        kw = {**kw, "today": analyzer.today}
    return resolve(options, kw, caller)


def scan(path: AnyPath, options: ScanOptions | None = None, *,
         analyzer: Checker | None = None,
         progress: Callable[[int, int], None] | None = None,
         executor: Executor | None = None, cross: CrossSession | None = None,
         **kw: Any) -> Scan:
    """Every TCP connection on `ports` as a judged `Session`, numbered from 1 by first frame,
    from an iterator (`Scan`) whose `summary`, the file's frozen totals, is there once the
    sessions are exhausted (SummaryPending before).

    What to scan and how to judge it is one `options` (a `ScanOptions`) or the keywords
    that build one (`ports`, `implicit_tls_ports`, `expect_name`, `trust`, `ca_file`,
    `backend`, `stream_cap`, `jobs`, `parts`, `piece`, `today`), not both; they are checked
    before anything is read (ValueError/TypeError).
    Certificate analysis is memoised per distinct chain and capture day, so one Analyzer
    (pass your own to share it across files; it then judges in this process instead of one
    built from `trust`/`ca_file`) makes repeated certificates cheap.  `stream_cap`
    bounds the bytes kept per direction of a connection (raise it for huge chains).
    `jobs` > 1 has that many worker processes read the file's byte ranges while this one
    reassembles and judges them as they arrive, in order (`fastcap.run.streamed`): identical
    results, sessions still streamed.  With an `executor` (see `fastcap.run.split`) its tasks
    reassemble and judge too, with their own analyzers built from `trust`/`ca_file` and the
    same "today", and the sessions come at the end.  Compressed captures (gzip, zstd,
    lz4), pipes and `-` (stdin) are streamed `piece` bytes at a time, in one process.
    `cross` links each session to earlier ones (resumed TLS sessions, servers that asked for
    a certificate): a new one per scan unless given, e.g. to share it across files.
    Raises CaptureError for a file that is not a readable capture.
    """
    o = _resolve(options, kw, analyzer, "scan")
    path = os.fsdecode(path)  # a bytes path as text, for the names in messages
    tally = _Tally(path)
    return Scan(path, _scan(path, o, analyzer or analyzer_for(o), tally, progress, executor,
                            CrossSession() if cross is None else cross, MAX_HELD), tally)


def _keyed(o: ScanOptions, path: str | os.PathLike | None = None
           ) -> tuple[ScanOptions, list[str]]:
    """``with_keys(o, path)`` and the warnings reading those keys gave (a garbled line of a
    key log file or of ``path``'s Decryption Secrets Blocks, each naming its source and line),
    for the summary: the API reports them there as the CLI does on stderr.  Keys read before
    (the CLI reads the key log files first and reports them itself) give none, so each is
    told once."""
    keys = o.key_index
    told = (len(keys.warnings), keys.warnings_dropped) if keys is not None else (0, 0)
    keyed = with_keys(o, path)
    new = keyed.key_index
    if keyed is o or new is None:
        return keyed, []
    if new is not keys:
        told = (0, 0)
    out = list(new.warnings[told[0]:])
    if new.warnings_dropped > told[1]:
        out.append(f"{new.warnings_dropped - told[1]} more key log warning(s) not listed")
    return keyed, out


def _scan(path: str | os.PathLike, o: ScanOptions, analyzer: Checker,
          summary: _Tally, progress: Callable[[int, int], None] | None,
          executor: Executor | None, cross: CrossSession, max_held: int
          ) -> Iterator[Session]:
    where = os.fspath(path)
    o, key_warnings = _keyed(o, path)  # iter_sessions and the workers find them read
    summary.warnings += key_warnings
    counters = FrameCounters()
    meta: list = []
    jobs = o.jobs
    if executor is None and jobs > 1 and not _worth_splitting(path):
        jobs = 1
    if jobs > 1 or executor is not None:
        from . import split, streamed

        found: list = []
        if executor is None:  # worker processes read, this one judges as ranges arrive
            sessions = streamed.iter_scan(path, o, analyzer, jobs=jobs, parts=o.parts,
                                          out=found, progress=progress)
        else:  # the executor's tasks reassemble and judge too (a Dask cluster)
            sessions = split.iter_split(path, o, jobs=jobs, executor=executor,
                                        parts=o.parts, out=found, progress=progress)
    else:
        sessions = (judge(s, analyzer, expect_name=o.expect_name) for s in iter_sessions(
            path, o, counters=counters, capture_out=meta, progress=progress,
            max_held=max_held))
    for s in sessions:
        s = _link(cross, s, summary, where)
        _count(summary, s, max_held)
        yield s
    if jobs > 1 or executor is not None:
        counters, meta = found[0].counters, [found[0].meta]
    _totals(summary, counters, meta)


def _link(cross: CrossSession, s: Session, summary: _Tally, path: str) -> Session:
    """cross.link, its verdicts in a session like `s` (`s` itself when it linked none),
    counting what it forgot in `summary`'s limits."""
    before = cross.dropped
    linked = cross.link(s, path)
    if cross.dropped > before:
        summary.limits["TLS sessions or servers forgotten for linking later connections "
                       f"(over {cross.limit} remembered)"] += cross.dropped - before
    return s if linked is None else evolve(s, verdicts=tuple(linked))


def link_counted(cross: CrossSession, sessions: Iterable[Session], summary: ScanSummary,
                 path: str) -> tuple[tuple[Session, ...], ScanSummary]:
    """`_link` for sessions `summary` has counted already (judged and counted elsewhere,
    e.g. a whole file scanned on a cluster worker): the linked sessions and a summary whose
    verdict counts follow the change."""
    tally = _Tally(summary.path, summary.sessions, summary.with_problems,
                   Counter(summary.verdicts), summary.frames, list(summary.warnings),
                   Counter(summary.skipped), list(summary.unreadable),
                   Counter(summary.limits), summary.icmp_about_selected, summary.joined,
                   summary.checksums_sampled, summary.checksums_rewritten)
    out = []
    for s in sessions:
        linked = _link(cross, s, tally, path)
        if linked is not s:
            tally.verdicts -= Counter(v.code for v in s.verdicts)
            tally.verdicts.update(v.code for v in linked.verdicts)
            tally.with_problems += has_problem(linked) - has_problem(s)
        out.append(linked)
    return tuple(out), tally.frozen()


def _count(summary: _Tally, s: Session, max_held: int) -> None:
    """`s` in `summary`'s counts; `max_held` is the hold cap its scan ran with, which the
    limit an evicted session is counted under names."""
    summary.sessions += 1
    summary.with_problems += has_problem(s)
    verdicts = summary.verdicts
    for v in s.verdicts:  # a session's two or three: Counter.update's generator cost more
        verdicts[v.code] += 1
    if s.tcp.capped:
        summary.limits["sessions cut at the per-direction byte cap (--stream-cap)"] += 1
    if s.tcp.evicted:
        summary.limits["sessions handed on before they ended (reassembly memory budget, "
                       f"or over {max_held} sessions waiting for them)"] += 1


def _totals(summary: _Tally, counters: FrameCounters, metas: list) -> None:
    # Wireshark's frame count, as `stats` gives it: pcapng blocks it numbers as frames
    # without a packet (custom, systemd journal) count too.
    summary.frames = counters.packets + sum(sum(m.other_records.values()) for m in metas)
    summary.skipped.update(counters.skipped)
    summary.limits.update(counters.notes)
    summary.icmp_about_selected += counters.icmp_about_selected
    summary.checksums_sampled += counters.checksums_sampled
    summary.checksums_rewritten += counters.checksums_rewritten
    for m in metas:
        summary.warnings += [str(w) for w in m.warnings]
        summary.skipped.update(m.skipped)
        summary.unreadable += m.unreadable
    rewritten = rewritten_note(summary.path, counters.checksums_sampled,
                               counters.checksums_rewritten, counters.checksums_first,
                               counters.checksums_flows)
    if rewritten:
        summary.warnings.append(rewritten)


@dataclass(frozen=True, slots=True)
class FileResult:
    """One file of `scan_files`: its sessions in number order and summary, or its error."""

    path: str
    sessions: tuple[Session, ...]
    summary: ScanSummary
    error: str | None = None


def scan_files(paths: Iterable[AnyPath], options: ScanOptions | None = None,
               **kw: Any) -> list[FileResult]:
    """iter_scan_files as a list."""
    return list(iter_scan_files(paths, options, **kw))


def iter_scan_files(paths: Iterable[AnyPath], options: ScanOptions | None = None,
                    **kw: Any) -> Iterator[FileResult]:
    """iter_file_streams with each file's sessions listed: one FileResult per file, in the
    order given, as soon as its last session is judged.  Not a generator itself, so a bad
    option raises here, as in the other scan functions, not at the first file."""
    return (FileResult(fs.path, tuple(fs.sessions), fs.summary,
                       fs.errors[0] if fs.errors else None)
            for fs in iter_file_streams(paths, options, **kw))


@dataclass(frozen=True, slots=True)
class FileStream:
    """One file of `iter_file_streams`: its sessions as they are judged, then (once they
    are exhausted) its frozen summary and its errors (SummaryPending before)."""

    path: str
    sessions: Scan

    @property
    def summary(self) -> ScanSummary:
        return self.sessions.summary

    @property
    def errors(self) -> tuple[str, ...]:
        return self.sessions.errors


def iter_file_streams(paths: Iterable[AnyPath], options: ScanOptions | None = None,
                      *, executor: Executor | None = None,
                      analyzer: Checker | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      max_held: int = MAX_HELD, cross: CrossSession | None = None,
                      apart: Collection[int] = (), **kw: Any) -> Iterator[FileStream]:
    """Several files, in the order given, as `scan` would read each one, except that files
    which continue one another (a ring buffer: each starts no earlier than the previous
    ended, and within a minute of it) are reassembled as one capture.  A session still open
    at the end of one file is completed from the next and reported once, in the file where
    it began, with `continues_into` naming the later files (its frame numbers count on into
    them, as in `mergecap -a`).  Compressed files are joined too (read in this process,
    which keeps their payloads, with an `executor` too); pipes and `-` are read alone, and
    the files on either side of one are no one run; nor is a file whose index is in `apart`
    joined to the one before it.

    `jobs` worker processes read the ranges of the files in turn while this process
    reassembles and judges them (`fastcap.run.streamed`), and each file's sessions stream out
    in number order as they are judged, so memory does not grow with the number of files
    or sessions.  Exhaust a file's `sessions` before asking for the next file (what is left
    of them is read and dropped then).  At most `max_held` judged sessions wait for an
    earlier, still open connection; past that it is handed on as it stands (evicted).  With
    an `executor`, its tasks share the ranges of all files, then the flows of each run of
    continuing files, and each file comes when its run is done.  One `cross` (new unless
    given) links sessions across all the files, in the order given.  `options` or `kw`:
    as for `scan`."""
    o = _resolve(options, kw, analyzer, "iter_file_streams")
    return _iter_file_streams([os.fsdecode(p) for p in paths], o, executor,
                              analyzer or analyzer_for(o), progress, max_held,
                              CrossSession() if cross is None else cross, frozenset(apart))


def _iter_file_streams(paths: list[str], o: ScanOptions, executor: Executor | None,
                       analyzer: Checker,
                       progress: Callable[[int, int], None] | None, max_held: int,
                       cross: CrossSession, apart_at: frozenset[int]
                       ) -> Iterator[FileStream]:
    from . import split, streamed

    jobs, parts = o.jobs, o.parts
    alone = [_read_alone(p, len(paths) == 1) for p in paths]
    mapped = [p for p, a in zip(paths, alone, strict=True) if not a]
    # A file read alone lies between: the files on either side of it are no one run.
    apart = {m for m, i in enumerate(i for i, a in enumerate(alone) if not a)
             if i in apart_at or (i > 0 and alone[i - 1])}
    # The key log files' keys serve every file (told in the first file's summary); a file's
    # secrets blocks serve its own sessions and those of the files that continue it, as
    # the walk meets them (KeysAsRead), never a file read apart, as tshark reads each file.
    o, key_warnings = _keyed(o)
    if executor is not None:
        dealt = split.iter_split_files(mapped, o, jobs=jobs, executor=executor,
                                       parts=parts, progress=progress, apart=apart)
        events: Iterator = iter([])
    else:
        events = streamed.iter_file_events(mapped, o, analyzer, jobs=jobs,
                                           parts=parts, progress=progress,
                                           max_held=max_held, apart=apart
                                           ) if mapped else iter([])
    last: Iterator[Session] | None = None
    for p, a in zip(paths, alone, strict=True):
        for _ in last or ():  # what the caller left of the previous file
            pass
        summary = _Tally(p)
        summary.warnings += key_warnings
        key_warnings = []
        if a:
            sessions = _alone(p, summary, o, analyzer, cross, max_held)
        elif executor is not None:
            res = next(dealt)
            linked: list[Session] = []
            if res.error is None:
                linked = [_link(cross, s, summary, p) for s in res.sessions]
                for s in linked:
                    _count(summary, s, MAX_HELD)
                _totals(summary, res.counters, [res.meta])
                summary.joined = res.joined
            else:
                summary.errors.append(res.error)
            sessions = iter(linked)
        else:
            sessions = _streamed(events, summary, cross, p, max_held)
        fs = FileStream(p, Scan(p, sessions, summary))
        last = fs.sessions
        yield fs


def _read_alone(path: str, no_compressed: bool) -> bool:
    """A pipe or `-`, which only a stream reader in this process can read, and with
    `no_compressed` a compressed file too (one file alone needs no joining, and streamed
    it is judged while it is read)."""
    kind = stream_kind(path)  # one look at the file
    return kind == "pipe" or (kind == "compressed" and no_compressed)


def _alone(path: str, summary: _Tally, o: ScanOptions, analyzer: Checker,
           cross: CrossSession, max_held: int) -> Iterator[Session]:
    """A compressed file or a pipe: read in this process, as `scan` reads it."""
    try:
        yield from _scan(path, replace(o, jobs=1), analyzer, summary, None, None, cross,
                         max_held)
    except FastcapError as e:
        summary.errors.append(str(e))


def _streamed(events: Iterator, summary: _Tally, cross: CrossSession, path: str,
              max_held: int) -> Iterator[Session]:
    """One file's share of streamed.iter_file_events: its sessions, then its totals."""
    for _k, item in events:
        if isinstance(item, Session):
            item = _link(cross, item, summary, path)
            _count(summary, item, max_held)
            yield item
        elif item.error is not None:
            summary.errors.append(item.error)
            return
        else:
            _totals(summary, item.counters, [item.meta])
            summary.joined = item.joined
            return
