"""What one SMTP session costs in Python, against the least its frozen records can cost.

    python benchmarks/gen_capture.py /tmp/s20k.pcap --size 1G --smtp-sessions 20000
    python benchmarks/session_floor.py /tmp/s20k.pcap [--repeat 5] [--json OUT]

A judged session is handed on as frozen records (the Session, its TCP facts, SMTP dialogue
and its command and reply records, the TLS handshake, hellos, extensions, certificate facts,
checks, verdicts, and a Where for every position reported).  However fast the parsing that
finds their values, those records have to be built.  This prints, per session, medians of
``--repeat`` runs in this one process:

- the in-process scan (``fastcap.scan``, every session judged), whole file / sessions;
- its stages, each called again on the inputs the scan gave it, where that gives back exactly
  what the scan got (``replay_of``): the connections (walk, select, reassembly, hand-over
  from C), the SMTP dialogues, the TLS handshakes, judging and linking, beside the time the
  scan spent in the cyclic garbage collector; "the rest" is what the scan costs beyond them
  (how each connection starts, the Session and TCP records, number order, counts, and the
  stages' extra cost when they alternate session by session);
- the same scan with the collector set as the command line sets it (what was made before
  frozen, the youngest generation collected every 20,000 allocations instead of 700), and
  the collector's share of it: what a program embedding fastcap gains by doing the same;
- the JSON line of each session (``--format jsonl``'s writer);
- the floor: the same sessions' records built again from their own field values, by the
  fastest way this code builds them (a slotted record's slot descriptors, as
  ``pickling.maker`` does; ``__init__`` for the others), nothing parsed or looked up;
- the copy between processes, as `-j N` with flows dealt to workers would need it: a judged
  session pickled (in the worker) and unpickled (in the parent), now, and the copy's floor,
  the same values with every record a plain tuple of its field values (what any format
  carrying those Python values costs, before the parent builds the records again).

The floor is a lower bound of the scan's per-session cost under the design's frozen records,
not a target: it leaves out every byte read and every decision.  The copy's floor plus the
records' floor is the least a parent process pays for a session another process judged.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if "fastcap" not in sys.modules:  # run from a checkout; imported (by tests), the path stays
    sys.path.insert(0, str(HERE.parent / "src"))  # as it is, so child processes import alike
if str(HERE) not in sys.path:  # for _fastcap_stage, once
    sys.path.insert(0, str(HERE))

from _fastcap_stage import reassemble  # noqa: E402
from fastcap.cli import _YOUNG, tune_allocator  # noqa: E402
from fastcap.judge.crosssession import CrossSession  # noqa: E402
from fastcap.judge.judging import analyzer_for, judgement  # noqa: E402
from fastcap.options import judge_options  # noqa: E402
from fastcap.out.jsonline import session_line  # noqa: E402
from fastcap.pickling import maker  # noqa: E402
from fastcap.proto.smtp import parse_dialogue  # noqa: E402
from fastcap.proto.smtp.dialogue import (  # noqa: E402
    connection_bytes,
    with_zeek_sizes,
    zeek_may_violate,
)
from fastcap.proto.tls import parse_handshake  # noqa: E402
from fastcap.run.scanner import scan  # noqa: E402
from fastcap.session import Session, iter_sessions  # noqa: E402


def records_of(root: Any) -> list[Any]:
    """Every dataclass instance reachable from ``root`` through fields, lists, tuples and
    dict values, each once, parents before children."""
    out: list[Any] = []
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append(obj)
            todo.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif isinstance(obj, list | tuple):
            todo.extend(obj)
        elif isinstance(obj, dict):
            todo.extend(obj.values())
    return out


def rebuild_plan(sessions: list[Any]) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """(builder, field values) for every record of every session: a compact record through
    its slot descriptors, any other through its class with its init fields."""
    builders: dict[type, tuple[Callable[..., Any], tuple[str, ...]]] = {}
    plan = []
    for s in sessions:
        for obj in records_of(s):
            cls = type(obj)
            if cls not in builders:
                if hasattr(cls, "__compact_setters__"):
                    names = tuple(f.name for f in dataclasses.fields(cls))
                    builders[cls] = (maker(cls), names)
                else:
                    names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
                    builders[cls] = (cls, names)
            build, names = builders[cls]
            plan.append((build, tuple([getattr(obj, n) for n in names])))
    return plan


def plain_values(root: Any) -> Any:
    """``root`` with every record replaced by the tuple of its field values (lists, tuples and
    dict values followed; a record reached twice gives the same tuple, as pickle's memo would
    share it).  Every other value is the very object the record holds."""
    done: dict[int, tuple[Any, ...]] = {}

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            key = id(obj)
            if key not in done:
                done[key] = tuple([plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)])
            return done[key]
        if isinstance(obj, list):
            return [plain(x) for x in obj]
        if isinstance(obj, tuple):
            return tuple([plain(x) for x in obj])
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj

    return plain(root)


@dataclasses.dataclass(frozen=True)
class Replay:
    """The calls one scan made per session, each with its inputs, kept only where calling it
    again gives back exactly what the scan got: so timing them again times that scan's work."""

    dialogues: list[tuple[Any, Any]]  # dialogue_of(c2s, s2c) of an ordinary dialogue
    handshakes: list[tuple[Any, Any, int, int]]  # parse_handshake(c2s, s2c, c_at, s_at)
    built: list[Session]  # every session as built, before judging, streams kept
    judged: list[Session]  # the same, judged (checks and verdicts), not yet linked


def dialogue_of(c2s: Any, s2c: Any) -> Any:
    """An ordinary dialogue as the scan builds it: parsed, then given the connection's bytes
    as Zeek's DPD counts them (for the Zeek logs) where it may meet a violation."""
    d = parse_dialogue(c2s, s2c)
    return with_zeek_sizes(d, connection_bytes(c2s, s2c)) if zeek_may_violate(d) else d


def replay_of(path: str, scanned: list[Session]) -> Replay:
    """The stage calls behind ``scanned`` (the scan of ``path``), read again from the streams
    of the same sessions.  A dialogue is read as an ordinary one (the client's stream not TLS
    from its first byte, no cut start), a handshake from where STARTTLS handed over; the
    others (implicit TLS, a capture that began mid-session, a decrypted one) are left out
    rather than read another way.  Raises ValueError when judging or linking again does not
    give the scan's checks and verdicts."""
    built = list(iter_sessions(path, keep_streams=True))
    if [s.number for s in built] != [s.number for s in scanned]:
        raise ValueError(f"{path}: the sessions built differ from the ones scanned")
    dialogues, handshakes = [], []
    for s in built:
        if s.smtp is not None and dialogue_of(s.c2s, s.s2c) == s.smtp:
            dialogues.append((s.c2s, s.s2c))
            c_at, s_at = s.smtp.tls_c2s_offset, s.smtp.tls_s2c_offset
            if (s.tls is not None and c_at is not None and s_at is not None
                    and parse_handshake(s.c2s, s.s2c, c_at, s_at) == s.tls):
                handshakes.append((s.c2s, s.s2c, c_at, s_at))
    analyzer = analyzer_for(judge_options())
    judged = []
    for s in built:
        j = judgement(s, analyzer)
        judged.append(dataclasses.replace(s, client_check=j.client_check,
                                          server_check=j.server_check,
                                          verdicts=j.verdicts))
    cross = CrossSession()
    for s, done in zip(judged, scanned, strict=True):
        linked = cross.link(s, path)
        verdicts = s.verdicts if linked is None else tuple(linked)
        if (s.client_check, s.server_check, verdicts) != (
                done.client_check, done.server_check, done.verdicts):
            raise ValueError(f"{path}: session {s.number} judged again differs from its scan")
    return Replay(dialogues, handshakes, built, judged)


def fresh_streams(sessions: list[Session]) -> dict[int, Any]:
    """A copy of each session's two streams, by the original's id, as the reassembler hands
    them over: the same bytes and segment map, and no frame lookup table yet (a stream
    builds that on its first lookup, inside the scan's parsing, so timing the parse again
    on a stream that has one would leave that out)."""
    out: dict[int, Any] = {}
    for s in sessions:
        out[id(s.c2s)], out[id(s.s2c)] = dataclasses.replace(s.c2s), dataclasses.replace(s.s2c)
    return out


def stage_times(repeat: int, path: str, replay: Replay) -> dict[str, float]:
    """Medians, in seconds for all the sessions, of each stage called again on its own
    inputs: the connections (walk, select, reassembly and the hand-over of each connection
    from C), SMTP dialogues, TLS handshakes, judging (a new analyzer each time, whose first
    check loads the trust store, as each scan's does) and linking (a new CrossSession)."""
    fresh: dict[int, Any] = {}

    def renew() -> None:
        fresh.clear()
        fresh.update(fresh_streams(replay.built))

    def smtp() -> None:
        for c2s, s2c in replay.dialogues:
            dialogue_of(fresh[id(c2s)], fresh[id(s2c)])

    def tls() -> None:
        for c2s, s2c, c_at, s_at in replay.handshakes:
            parse_handshake(fresh[id(c2s)], fresh[id(s2c)], c_at, s_at)

    options = judge_options()

    def judging() -> None:
        analyzer = analyzer_for(options)
        for s in replay.built:
            judgement(s, analyzer)

    def linking() -> None:
        cross = CrossSession()
        for s in replay.judged:
            cross.link(s, path)

    return {name: _median_of(repeat, run, setup) for name, run, setup in
            (("reassembly", lambda: reassemble(path, "auto"), None), ("smtp", smtp, renew),
             ("tls", tls, renew), ("judging", judging, None), ("linking", linking, None))}


class CollectorClock:
    """Time the cyclic garbage collector spends, run by run (``next_run`` starts a run's
    total), through ``gc.callbacks`` while the context is open.  The scans timed here run
    with the collector's default thresholds, as in a program embedding fastcap; the command
    line collects less often (see ``fastcap.cli``)."""

    def __init__(self) -> None:
        self.runs: list[float] = []
        self._began = 0.0

    def next_run(self) -> None:
        self.runs.append(0.0)

    def _tick(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self.runs:
            self.runs[-1] += time.perf_counter() - self._began

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self._tick)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._tick)


@contextlib.contextmanager
def collector_as_the_command_sets_it() -> Iterator[None]:
    """The collector as ``fastcap``'s command line leaves it after its imports, which a
    program embedding fastcap can do too: all made so far frozen, the youngest generation
    collected every ``_YOUNG`` allocations; after, the thresholds as they were and nothing
    frozen (``main`` enters it with nothing frozen)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_YOUNG, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _copy_times(repeat: int, objs: list[Any]) -> tuple[float, float]:
    """Medians of pickling each object alone and of unpickling it, in seconds for all; what
    is made is dropped at once, as a process handing sessions on does."""
    top = pickle.HIGHEST_PROTOCOL
    blobs = [pickle.dumps(o, top) for o in objs]

    def dumps() -> None:
        for o in objs:
            pickle.dumps(o, top)

    def loads() -> None:
        for b in blobs:
            pickle.loads(b)

    return _median_of(repeat, dumps), _median_of(repeat, loads)


def _median_of(repeat: int, run: Callable[[], Any], setup: Callable[[], Any] | None = None
               ) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    tune_allocator()  # as the command line does
    path = args.capture

    def scan_all() -> int:
        return sum(1 for _ in scan(path))

    # The first scan loads the trust store and the lazily imported code; the timed scans
    # hold no session (a scan streams them), so the sessions kept for the other rows are
    # gathered after them.
    if not scan_all():
        raise SystemExit(f"{path}: no SMTP sessions")
    with CollectorClock() as collecting:
        scan_s = _median_of(args.repeat, scan_all, setup=collecting.next_run)
    gc_s = statistics.median(collecting.runs)
    with collector_as_the_command_sets_it(), CollectorClock() as collecting:
        tuned_s = _median_of(args.repeat, scan_all, setup=collecting.next_run)
    tuned_gc_s = statistics.median(collecting.runs)
    sessions = list(scan(path))
    n = len(sessions)
    plan = rebuild_plan(sessions)
    plain = [plain_values(x) for x in sessions]
    replay = replay_of(path, sessions)
    # A scan streams its sessions: keep those held here out of the collector's walks.
    gc.freeze()

    stages = stage_times(args.repeat, path, replay)

    copy_dumps, copy_loads = _copy_times(args.repeat, sessions)
    floor_dumps, floor_loads = _copy_times(args.repeat, plain)

    def lines() -> None:
        for s in sessions:
            session_line(s, path, 1)

    def floor() -> None:
        for build, values in plan:
            build(*values)

    result = {
        "capture": path, "sessions": n, "records_per_session": len(plan) / n,
        "repeat": args.repeat,
        "scan_us": scan_s / n * 1e6,
        "scan_gc_us": gc_s / n * 1e6,
        "scan_tuned_us": tuned_s / n * 1e6,
        "scan_tuned_gc_us": tuned_gc_s / n * 1e6,
        "json_line_us": _median_of(args.repeat, lines) / n * 1e6,
        "floor_us": _median_of(args.repeat, floor) / n * 1e6,
        "copy_pickle_us": copy_dumps / n * 1e6,
        "copy_unpickle_us": copy_loads / n * 1e6,
        "copy_floor_pickle_us": floor_dumps / n * 1e6,
        "copy_floor_unpickle_us": floor_loads / n * 1e6,
        "replayed_dialogues": len(replay.dialogues),
        "replayed_handshakes": len(replay.handshakes),
        **{f"stage_{k}_us": v / n * 1e6 for k, v in stages.items()},
    }
    hs = len(replay.handshakes)
    result["stage_tls_per_handshake_us"] = stages["tls"] / hs * 1e6 if hs else None
    # what the stages called again leave of the scan: how a connection starts (cut or
    # not, TLS or SMTP), the Session and TCP records, number order, the summary's counts
    # (exact when every dialogue and handshake was read again)
    result["stage_rest_us"] = (result["scan_us"] - result["scan_gc_us"]
                               - sum(v / n * 1e6 for v in stages.values()))
    print(f"{path}: {n} sessions, {result['records_per_session']:.1f} records each; "
          f"per session, medians of {args.repeat}:")
    print(f"  in-process scan        {result['scan_us']:8.1f} us")
    print(f"    of which connections {result['stage_reassembly_us']:8.1f} us  "
          f"(walk, select, reassembly, hand-over from C)")
    print(f"             SMTP        {result['stage_smtp_us']:8.1f} us  "
          f"({len(replay.dialogues)} dialogues read again)")
    per_hs = result["stage_tls_per_handshake_us"]
    print(f"             TLS         {result['stage_tls_us']:8.1f} us  "
          f"({hs} handshakes read again"
          + (f", {per_hs:.1f} us each)" if per_hs is not None else ")"))
    print(f"             judging     {result['stage_judging_us']:8.1f} us")
    print(f"             linking     {result['stage_linking_us']:8.1f} us")
    print(f"             collector   {result['scan_gc_us']:8.1f} us  (the cyclic GC, "
          f"default thresholds)")
    print(f"             the rest    {result['stage_rest_us']:8.1f} us  (reading a "
          f"connection's start, Session records, order, counts)")
    print(f"  the same scan, collector set as the command line sets it: "
          f"{result['scan_tuned_us']:.1f} us, of which the collector "
          f"{result['scan_tuned_gc_us']:.1f} us")
    print(f"  JSON line              {result['json_line_us']:8.1f} us")
    print(f"  floor: records rebuilt {result['floor_us']:8.1f} us")
    print(f"  copy: pickle, unpickle {result['copy_pickle_us']:8.1f} us "
          f"{result['copy_unpickle_us']:8.1f} us")
    print(f"  copy's floor: the same {result['copy_floor_pickle_us']:8.1f} us "
          f"{result['copy_floor_unpickle_us']:8.1f} us  (records as plain tuples)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
