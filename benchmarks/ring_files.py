"""One capture against the same capture cut into ring-buffer files, scanned as a directory.

    python benchmarks/ring_files.py FILE [--pieces 10,50] [--jobs 1,2] [--repeat 3]
                                         [--json OUT] [--before DIR]

FILE (a pcap) is cut into N files of about equal size at record borders, each with the
file's header, as `dumpcap -b filesize:...` would write them (cached next to FILE in
FILE.ring-N/).  Then `fastcap scan --format jsonl -j J` runs on FILE and on each directory,
round-robin: median wall seconds, peak private memory (RssAnon summed over the command's
processes, as compare.py measures it) and a check that every row reports the same sessions
(client, server, first and last timestamp, verdict codes: frame numbers and session numbers
are per file, so they differ by design).  Memory that grew with the number of files, or a
session lost or doubled at a file border, shows here.

--before DIR (an older source tree with its C module built, as for compare.py) runs every
row there too, alternating with this tree's in each round (now first in odd rounds, before
first in even ones), and adds each row's before median and now / before.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import statistics
import struct
import sys
from pathlib import Path

from compare import machine, run_pipeline, warm  # this folder is on sys.path

SCAN = [sys.executable, "-c", "import sys; from fastcap.cli import main; sys.exit(main())",
        "scan", "--format", "jsonl"]


def cut(path: Path, pieces: int) -> Path:
    """`pieces` files of about equal size in PATH.ring-N/ (kept when already there)."""
    out = path.with_name(f"{path.name}.ring-{pieces}")
    if out.is_dir() and len(list(out.iterdir())) == pieces:
        return out
    out.mkdir(exist_ok=True)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        magic = mm[:4]
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            raise SystemExit(f"{path}: not a little-endian pcap file")
        head, size, off = mm[:24], len(mm), 24
        for i in range(pieces):
            goal = size * (i + 1) // pieces
            start = off
            while off + 16 <= size and (off < goal or i == pieces - 1):
                (incl,) = struct.unpack_from("<I", mm, off + 8)
                off += 16 + incl
            (out / f"ring_{i:05d}.pcap").write_bytes(head + mm[start:off])
    return out


def sessions_of(jsonl: str) -> list[tuple]:
    rows = []
    for line in jsonl.splitlines():
        s = json.loads(line)
        rows.append((s["client"], s["server"], s["first_ts_ns"], s["last_ts_ns"],
                     tuple(v["code"] for v in s["verdicts"])))
    return sorted(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--pieces", default="10,50")
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--before", type=Path, help="an older source tree, run alternating")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    trees = {"now": {**os.environ, "PYTHONPATH": str(here / "src")}}
    if args.before:
        trees["before"] = {**os.environ, "PYTHONPATH": str(args.before.resolve() / "src")}
    targets = [("one file", args.file)] + [
        (f"{n} files", cut(args.file, int(n))) for n in args.pieces.split(",")]
    for _, t in targets:
        for f in ([t] if t.is_file() else sorted(t.iterdir())):
            warm(str(f), False)
    rows = {(name, j, tree): [] for name, _ in targets for j in args.jobs.split(",")
            for tree in trees}
    outs: dict[tuple, list[tuple]] = {}
    for rep in range(args.repeat):
        for name, t in targets:
            for j in args.jobs.split(","):
                for tree in (list(trees) if rep % 2 == 0 else list(trees)[::-1]):
                    r = run_pipeline([[*SCAN, "-j", j, str(t)]], capture=True,
                                     env=trees[tree])
                    if r.error:
                        raise SystemExit(f"{name} -j {j} ({tree}): {r.error}")
                    rows[(name, j, tree)].append((r.wall, r.peak_kb))
                    outs[(name, j, tree)] = sessions_of(r.out)
    want = outs[("one file", args.jobs.split(",")[0], "now")]
    size = args.file.stat().st_size
    print(f"file: {args.file} ({size / 1e9:.2f} GB, {len(want)} sessions)   machine: "
          f"{machine()}")
    print(f"median of {args.repeat} round-robin runs; private MB = peak RssAnon of all the "
          "command's processes")
    print(f"{'input':<12} {'-j':>3} {'tree':<6} {'seconds':>8} {'GB/s':>6} "
          f"{'private MB':>11}  sessions  now/before")
    table = []
    for (name, j, tree), runs in rows.items():
        wall = statistics.median(w for w, _ in runs)
        peak = max(p for _, p in runs) / 1024
        same = outs[(name, j, tree)] == want
        row = {"input": name, "jobs": int(j), "tree": tree, "seconds": wall,
               "seconds_each": [w for w, _ in runs], "private_mb": peak,
               "same_sessions": same}
        ratio = ""
        if tree == "before":
            now = next(r for r in table if (r["input"], r["jobs"]) == (name, int(j)))
            row["now_over_before"] = now["seconds"] / wall
            ratio = f"{row['now_over_before']:.3f}"
        print(f"{name:<12} {j:>3} {tree:<6} {wall:8.3f} {size / wall / 1e9:6.2f} "
              f"{peak:11.1f}  {'same' if same else 'DIFFERENT':<9} {ratio}")
        table.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"file": str(args.file), "machine": machine(),
                                               "python": platform.python_version(),
                                               "before": str(args.before or ""),
                                               "rows": table}, indent=1))
    return 0 if all(r["same_sessions"] for r in table) else 1


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.exit(main())
