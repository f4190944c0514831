"""Where the start-up of ``fastcap scan`` goes, and what fastcap itself adds to the floor.

    python benchmarks/startup_parts.py [CAPTURE] [--repeat 9] [--json OUT]

Start-up happens once per process, so every run is a fresh interpreter; rows are medians of
``--repeat`` rounds, the rows of a round run one after another:

- the interpreter alone (``python -c pass``);
- the floor: the interpreter importing numpy and ``cryptography.x509`` (numpy's BLAS threads
  unstarted, as the command leaves them), as compare.py's "floor" row;
- the command: ``python -m fastcap.cli scan -j 1 --format jsonl CAPTURE`` (the 26-frame
  example unless given), as compare.py's "start-up" row;
- the same command timing itself in its own process (the instrumentation adds ~10 ms): the
  time spent in ``dataclasses`` making fastcap's record classes (every dataclass a scan
  imports), and of that, compiling their methods (``__init__``, ``__repr__``, ``__eq__``,
  ``__hash__`` and, for a frozen one, ``__setattr__`` and ``__delattr__``: dataclasses writes
  them as source text and runs it with ``exec``, timed here);
- an experiment, against that instrumented row: the same command with every method's text
  compiled once, in an earlier process, and the code objects loaded from a file and reused
  (the ``exec`` dataclasses calls answered from them by text).  This shows what compiling the
  methods costs a command, net of loading the code; fastcap does not do it, since it means
  replacing a function inside the standard library's ``dataclasses``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import FLOOR, machine  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "exchange-online-no-client-cert.pcap"
PY = sys.executable

# Run in the command's own process: time dataclasses' processing of fastcap's classes and
# the exec of their methods' text inside it, optionally answered from a cache of code
# objects, then run the command.
# argv: report file, cache file or "", then the command's arguments.
_INSIDE = r"""
import dataclasses, json, marshal, os, sys, time
t0 = time.perf_counter()
report, cache_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
spent = {"classes": 0.0, "methods": 0.0, "count": 0, "compiled": 0, "load": 0.0, "names": []}
cache = None
if cache_path:
    cache = {}
    if os.path.exists(cache_path):
        t = time.perf_counter()
        with open(cache_path, "rb") as f:
            cache = marshal.load(f)
        spent["load"] = time.perf_counter() - t
ours = [False]  # inside the processing of one of fastcap's classes


def timed_exec(src, g=None, l=None, plain_exec=exec):
    # dataclasses compiles and runs the text of its methods here
    t = time.perf_counter()
    try:
        code = src
        if cache is not None and isinstance(src, str):
            code = cache.get(src)
            if code is None:
                code = cache[src] = compile(src, "<string>", "exec")
                spent["compiled"] += 1
        return plain_exec(code, g, l)
    finally:
        if ours[0]:
            spent["methods"] += time.perf_counter() - t


def process_class(cls, *a, process=dataclasses._process_class, **k):
    if not cls.__module__.startswith("fastcap"):
        return process(cls, *a, **k)
    t = time.perf_counter()
    ours[0] = True
    try:
        return process(cls, *a, **k)
    finally:
        ours[0] = False
        spent["classes"] += time.perf_counter() - t
        spent["count"] += 1
        spent["names"].append(f"{cls.__module__}.{cls.__qualname__}")


dataclasses.exec = timed_exec
dataclasses._process_class = process_class
from fastcap.cli import main, single_threaded_blas
sys.argv = ["fastcap", *argv]  # main() without arguments: fastcap is the program
single_threaded_blas()  # as the console script does before main()
try:
    main()
except SystemExit:
    pass
spent["total"] = time.perf_counter() - t0
with open(report, "w") as f:
    json.dump(spent, f)
if cache is not None and spent["compiled"]:
    with open(cache_path, "wb") as f:
        marshal.dump(cache, f)
"""


def wall(cmd: list[str], stderr: int = subprocess.DEVNULL) -> tuple[float, str | None]:
    """Wall seconds of `cmd`, and its stderr when asked for (``subprocess.PIPE``)."""
    t = time.perf_counter()
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True, check=False)
    return time.perf_counter() - t, run.stderr


def inside(capture: str, cache: str, report: str) -> tuple[float, dict]:
    """Wall seconds of the instrumented command, and what it measured in itself (a run that
    broke before writing its report stops the script, rather than leave an earlier one read)."""
    cmd = [PY, "-c", _INSIDE, report, cache, "scan", "-j", "1", "--format", "jsonl", capture]
    Path(report).unlink(missing_ok=True)
    took, err = wall(cmd, subprocess.PIPE)
    if not os.path.exists(report):
        raise SystemExit(f"the instrumented command wrote no report:\n{(err or '')[-2000:]}")
    with open(report) as f:
        return took, json.load(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", nargs="?", default=str(EXAMPLE))
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    command = [PY, "-m", "fastcap.cli", "scan", "-j", "1", "--format", "jsonl", args.capture]
    rows: dict[str, list[float]] = {k: [] for k in (
        "interpreter_s", "floor_s", "command_s", "timed_command_s", "timed_in_process_s",
        "record_classes_s", "their_methods_s", "cached_command_s", "cached_record_classes_s",
        "cache_load_s")}
    classes = 0
    with tempfile.TemporaryDirectory() as tmp:
        report, cache = os.path.join(tmp, "report.json"), os.path.join(tmp, "methods.marshal")
        inside(args.capture, cache, report)  # fills the cache, and warms the page cache
        for _ in range(args.repeat):
            rows["interpreter_s"].append(wall([PY, "-c", "pass"])[0])
            rows["floor_s"].append(wall(FLOOR)[0])
            rows["command_s"].append(wall(command)[0])
            took, got = inside(args.capture, "", report)
            rows["timed_command_s"].append(took)
            rows["timed_in_process_s"].append(got["total"])
            rows["record_classes_s"].append(got["classes"])
            rows["their_methods_s"].append(got["methods"])
            classes = got["count"]
            took, got = inside(args.capture, cache, report)
            if got["compiled"]:
                raise SystemExit("the cache of compiled methods missed: the experiment is void")
            rows["cached_command_s"].append(took)
            rows["cached_record_classes_s"].append(got["classes"])
            rows["cache_load_s"].append(got["load"])
    med = {k: statistics.median(v) for k, v in rows.items()}
    out = {"capture": args.capture, "repeat": args.repeat, "python": platform.python_version(),
           "machine": machine(), "fastcap_record_classes": classes, **med}
    labels = [
        ("interpreter_s", "python -c pass"),
        ("floor_s", "floor: import numpy, cryptography.x509 (no BLAS threads)"),
        ("command_s", "fastcap scan -j 1 --format jsonl (the start-up row)"),
        ("timed_command_s", "the same, timing itself (instrumented)"),
        ("record_classes_s", f"  of which: dataclasses making {classes} record classes"),
        ("their_methods_s", "    of which: compiling their methods (exec of their text)"),
        ("cached_command_s", "experiment: their code compiled earlier, reused (instr.)"),
        ("cached_record_classes_s", "  of which: dataclasses making the record classes"),
        ("cache_load_s", "  of which: loading the code (marshal)"),
    ]
    print(f"{args.capture}: medians of {args.repeat} rounds, {out['machine']}, "
          f"Python {out['python']}")
    for key, label in labels:
        print(f"{label:<62} {med[key] * 1000:8.1f} ms")
    print(f"{'fastcap beyond the floor':<62} {(med['command_s'] - med['floor_s']) * 1000:8.1f} ms")
    saved = med["timed_command_s"] - med["cached_command_s"]
    print(f"{'what the experiment saves the (instrumented) command':<62} {saved * 1000:8.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
