"""What joining a big mail-server log to a big capture costs, as whole commands.

    python benchmarks/evidence_scan.py CAPTURE LOG [--repeat 3] [--jobs 1] [--json OUT]

Rows, run in turn (round robin, so load drifts alike on all) and reported as medians of wall
time and of peak private memory (RssAnon, summed over a command's processes):

- ``cat LOG``: reading the log off the page cache;
- ``read-evidence``: ``read_evidence([LOG])`` in a fresh Python: reading the log once;
- ``scan``: ``fastcap scan CAPTURE --format json``;
- ``scan+evidence``: the same with ``--evidence LOG``.

The join should add to ``scan`` no more than ``read-evidence`` (the log read once), and stay
within the memory bound (256 MB private).  JSON: benchmarks/results/evidence-scan-DATE.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare import machine, run_pipeline  # noqa: E402  (this folder, as a script)


def commands(capture: str, log: str, jobs: int) -> dict[str, list[str]]:
    scan = [sys.executable, "-m", "fastcap.cli", "scan", capture, "--format", "json",
            "-j", str(jobs)]
    return {
        "cat": ["cat", log],
        "read-evidence": [sys.executable, "-c",
                          "import sys; from fastcap.evidence.read import read_evidence; "
                          "e = read_evidence([sys.argv[1]]); print(len(e.conversations))",
                          log],
        "scan": scan,
        "scan+evidence": [*scan, "--evidence", log],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("log")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cmds = commands(args.capture, args.log, args.jobs)
    runs: dict[str, list] = {k: [] for k in cmds}
    for _ in range(args.repeat):
        for key, cmd in cmds.items():
            r = run_pipeline([cmd])
            if r.error:
                print(f"{key}: {r.error}", file=sys.stderr)
                return 1
            runs[key].append(r)
    rows = {k: {"wall_s": statistics.median(r.wall for r in v),
                "peak_private_mb": statistics.median(r.peak_kb for r in v) / 1024,
                "walls": [round(r.wall, 3) for r in v]} for k, v in runs.items()}
    added = rows["scan+evidence"]["wall_s"] - rows["scan"]["wall_s"]
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": machine(), "capture": args.capture,
           "capture_bytes": Path(args.capture).stat().st_size, "log": args.log,
           "log_bytes": Path(args.log).stat().st_size, "jobs": args.jobs,
           "repeat": args.repeat, "rows": rows,
           "join_adds_s": added,
           "join_adds_over_read_evidence": added / rows["read-evidence"]["wall_s"]}
    for k, r in rows.items():
        print(f"{k:15s} {r['wall_s']:8.2f} s  {r['peak_private_mb']:8.1f} MB")
    print(f"the join adds {added:.2f} s = {doc['join_adds_over_read_evidence']:.2f} x "
          "reading the log once")
    out = args.json or HERE / "results" / f"evidence-scan-{dt.date.today():%Y%m%d}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
