"""Time and memory of reading a big mail-server log, next to the floor a reader cannot beat.

    python benchmarks/evidence_bench.py LOG [--template T [--size 1G]] [--repeat 3]
                                            [--json OUT] [--no-tracemalloc] [--skip KEY,...]

A 1 GB protocol log must read in seconds and in well under 256 MB, so this measures, each in a
fresh Python process (its peak RSS is then the reader's, not this script's):

- ``cat LOG > /dev/null``: the disk / page cache floor;
- ``python-lines``: a plain ``for line in open(LOG)`` loop: the floor of any Python reader;
- ``logtext-lines``: ``fastcap.evidence.text.LogText(LOG).lines()``: the streamed, numbered
  lines every format module reads;
- ``read-evidence``: ``fastcap.evidence.read.read_evidence([LOG])``: detection, parsing and the
  kept conversations (their count, the kind, the warnings are reported);
- ``read-evidence-tracemalloc``: the same under ``tracemalloc``, for the peak of Python
  allocations (slower; timed but not comparable; --no-tracemalloc skips it).

Peak RSS is the process's high-water mark (VmHWM) less its size after imports; where
/proc/self/clear_refs cannot reset it, the whole high-water mark is given.  A row whose import
or run fails says so in its note ("failed: ...") and the others go on; the JSON is always
written (default benchmarks/results/evidence-<size>-<date>.json).  With --template and a LOG
that does not exist, LOG is first made by benchmarks/biglog.py from that template.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("cat", "python-lines", "logtext-lines", "read-evidence", "read-evidence-tracemalloc")
WHAT = {
    "cat": "cat LOG > /dev/null",
    "python-lines": "for line in open(LOG): n += 1",
    "logtext-lines": "fastcap.evidence.text.LogText(LOG).lines()",
    "read-evidence": "fastcap.evidence.read.read_evidence([LOG])",
    "read-evidence-tracemalloc": "read_evidence([LOG]) under tracemalloc",
}


# --- child side: one measurement, its result as one JSON line on stdout ---------------------


def _hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _child(key: str, log: str) -> dict:
    facts: dict = {}
    if key == "python-lines":
        run = _python_lines
    elif key == "logtext-lines":
        from fastcap.evidence.text import LogText

        def run(path: str) -> dict:
            n = sum(1 for _ in LogText(path).lines())
            return {"lines": n}
    elif key.startswith("read-evidence"):
        from fastcap.evidence.read import read_evidence

        def run(path: str) -> dict:
            ev = read_evidence([path])
            f = ev.files[0] if ev.files else None
            return {"conversations": len(ev.conversations), "warnings": len(ev.warnings),
                    "kind": getattr(f, "kind", None), "lines": getattr(f, "lines", None),
                    "first_warning": ev.warnings[0] if ev.warnings else None}
    else:
        raise SystemExit(f"unknown measurement {key!r}")
    traced = key.endswith("tracemalloc")
    if traced:
        import tracemalloc

        tracemalloc.start()
    reset = _reset_hwm()
    base = _hwm_kb() if reset else 0
    t0 = time.perf_counter()
    facts = run(log)
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "facts": facts, "hwm_reset": reset}
    hwm = _hwm_kb()
    if hwm is not None and base is not None:
        out["peak_rss_mb"] = (hwm - base) / 1024
    if traced:
        out["peak_traced_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    return out


def _python_lines(path: str) -> dict:
    n = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for _ in fh:
            n += 1
    return {"lines": n}


# --- parent side -------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        mem = "? GiB"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def measure(key: str, log: str, timeout: float) -> dict:
    """One run of ``key`` in a fresh process: {"seconds", ...} or {"error": "..."}."""
    try:
        if key == "cat":
            t0 = time.perf_counter()
            with open(os.devnull, "wb") as null:
                subprocess.run(["cat", log], stdout=null, check=True, timeout=timeout)
            return {"seconds": time.perf_counter() - t0, "facts": {}}
        proc = subprocess.run([sys.executable, __file__, "--child", key, log],
                              capture_output=True, text=True, env=_env(), timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no result on stdout: {proc.stdout[-200:]!r}"}


def row(key: str, log: str, size: int, repeat: int, timeout: float) -> dict:
    runs = [measure(key, log, timeout) for _ in range(repeat)]
    ok = [r for r in runs if "error" not in r]
    out: dict = {"what": WHAT[key], "key": key, "runs": len(ok), "note": ""}
    if not ok:
        out["note"] = f"failed: {runs[0]['error']}"
        return out
    secs = [r["seconds"] for r in ok]
    out["seconds"] = secs
    out["median_s"] = statistics.median(secs)
    out["mb_per_s"] = size / 2**20 / out["median_s"] if out["median_s"] > 0 else None
    out["facts"] = ok[-1].get("facts", {})
    for k in ("peak_rss_mb", "peak_traced_mb"):
        vals = [r[k] for r in ok if r.get(k) is not None]
        if vals:
            out[k] = max(vals)
    if ok and not all(r.get("hwm_reset", True) for r in ok):
        out["note"] = "peak RSS includes the interpreter (high-water mark not resettable)"
    if len(ok) < len(runs):
        first = next(r for r in runs if "error" in r)["error"]
        failed = f"{len(runs) - len(ok)} run(s) failed: {first}"
        out["note"] = f"{out['note']}; {failed}" if out["note"] else failed
    return out


def _num(r: dict, key: str, fmt: str) -> str:
    v = r.get(key)
    return format(v, fmt) if isinstance(v, int | float) else "-"


def _table(rows: list[dict]) -> str:
    lines = [f"{'row':<28}{'median s':>10}{'MB/s':>10}{'peak RSS MB':>13}{'traced MB':>11}  note"]
    for r in rows:
        lines.append(f"{r['key']:<28}{_num(r, 'median_s', '.3f'):>10}"
                     f"{_num(r, 'mb_per_s', '.0f'):>10}{_num(r, 'peak_rss_mb', '.1f'):>13}"
                     f"{_num(r, 'peak_traced_mb', '.1f'):>11}  {r['note']}")
    return "\n".join(lines)


def _size_tag(size: int) -> str:
    for unit, n in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if size >= n:
            return f"{size / n:.0f}{unit}"
    return str(size)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", help="the log to read (made from --template when missing)")
    ap.add_argument("--template", help="a W3C protocol log for benchmarks/biglog.py")
    ap.add_argument("--size", default="1G", help="size of the generated log (default 1G)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--json", help="where to write the results (default "
                    "benchmarks/results/evidence-SIZE-DATE.json)")
    ap.add_argument("--no-tracemalloc", action="store_true")
    ap.add_argument("--skip", default="", help=f"rows to leave out: {','.join(KEYS)}")
    args = ap.parse_args(argv)
    log = Path(args.log)
    if not log.exists():
        if not args.template:
            ap.error(f"{log} does not exist (give --template to generate it)")
        sys.path.insert(0, str(ROOT))
        from benchmarks.biglog import generate, parse_size

        t0 = time.perf_counter()
        generate(args.template, log, parse_size(args.size))
        print(f"generated {log} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    size = log.stat().st_size
    skip = {k.strip() for k in args.skip.split(",") if k.strip()}
    if args.no_tracemalloc:
        skip.add("read-evidence-tracemalloc")
    measure("cat", str(log), args.timeout)  # read once: every row starts from a warm cache
    rows = []
    for key in KEYS:
        if key in skip:
            continue
        repeat = 1 if key.endswith("tracemalloc") else args.repeat
        rows.append(row(key, str(log), size, repeat, args.timeout))
        print(f"{key}: {rows[-1].get('median_s', '-')} s {rows[-1]['note']}", file=sys.stderr)
    result = {
        "file": str(log),
        "size": size,
        "machine": machine(),
        "python": platform.python_version(),
        "page_cache": "warm (read once with cat first)",
        "repeat": args.repeat,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": rows,
    }
    out = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / (
        f"evidence-{_size_tag(size)}-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(_table(rows))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
