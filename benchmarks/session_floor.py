"""What one SMTP session costs in Python, against the least its frozen records can cost.

    python benchmarks/gen_capture.py /tmp/s20k.pcap --size 1G --smtp-sessions 20000
    python benchmarks/session_floor.py /tmp/s20k.pcap [--repeat 5] [--json OUT]

A judged session is handed on as frozen records (the Session, its TCP facts, SMTP dialogue
and its command and reply records, the TLS handshake, hellos, extensions, certificate facts,
checks, verdicts, and a Where for every position reported).  However fast the parsing that
finds their values, those records have to be built.  This prints, per session, medians of
``--repeat`` runs in this one process:

- the in-process scan (``fastcap.scan``, every session judged), whole file / sessions;
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
import dataclasses
import gc
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from fastcap.cli import tune_allocator  # noqa: E402
from fastcap.out.jsonline import session_line  # noqa: E402
from fastcap.pickling import maker  # noqa: E402
from fastcap.run.scanner import ScanSummary, scan  # noqa: E402


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


def _median_of(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
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
        return sum(1 for _ in scan(path, summary=ScanSummary(path)))

    # The first scan loads the trust store and the lazily imported code; the timed scans
    # hold no session (a scan streams them), so the sessions kept for the other rows are
    # gathered after them.
    if not scan_all():
        raise SystemExit(f"{path}: no SMTP sessions")
    scan_s = _median_of(args.repeat, scan_all)
    sessions = list(scan(path, summary=ScanSummary(path)))
    n = len(sessions)
    plan = rebuild_plan(sessions)
    plain = [plain_values(x) for x in sessions]
    # A scan streams its sessions: keep those held here out of the collector's walks.
    gc.freeze()

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
        "json_line_us": _median_of(args.repeat, lines) / n * 1e6,
        "floor_us": _median_of(args.repeat, floor) / n * 1e6,
        "copy_pickle_us": copy_dumps / n * 1e6,
        "copy_unpickle_us": copy_loads / n * 1e6,
        "copy_floor_pickle_us": floor_dumps / n * 1e6,
        "copy_floor_unpickle_us": floor_loads / n * 1e6,
    }
    print(f"{path}: {n} sessions, {result['records_per_session']:.1f} records each; "
          f"per session, medians of {args.repeat}:")
    print(f"  in-process scan        {result['scan_us']:8.1f} us")
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
