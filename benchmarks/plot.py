"""Throughput and peak private memory against capture size, as a PNG (and the numbers as JSON).

    python benchmarks/plot.py [--sizes 256M,512M,1G,2G] [--repeat 5] [--seed 1]
                              [--sessions-per-gib 500] [--format pcap] [--jobs N]
                              [--with scan-j1,scan-jN,scan-inproc,tcpdump,cat]
                              [--data-dir bench-data/scaling] [--keep-cache]
                              [--out benchmarks/results/scaling.png]

Captures come from gen_capture.py with one seed and one SMTP session density (500 per GiB by
default: the 1000 sessions of bench-data/2g.pcap), and are cached in --data-dir (under the
git-ignored bench-data/).  Each file is dropped from the page cache and read back once with
`cat` (unless --keep-cache), then the contenders run round-robin on it, --repeat times; a
point is the median, memory the peak RssAnon summed over the command's processes (as
compare.py measures it).  Two panels: GB/s against file size and private MB against file
size.  The whole-command rows include interpreter start and imports (~0.5 s for `scan`), which
is why their throughput climbs with size; the in-process row does not.  With the defaults on
2 cores: ~30 s to generate the captures once, then about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from compare import HERE, PY, fastcap_scan, machine, parse_size, run_pipeline, warm

CONTENDERS = ("scan-j1", "scan-jN", "scan-inproc", "select-inproc", "stats", "tcpdump", "cat")
STYLE = {  # key: (colour, line style)
    "scan-j1": ("tab:blue", "-"),
    "scan-jN": ("tab:cyan", "-"),
    "scan-inproc": ("tab:blue", "--"),
    "select-inproc": ("tab:purple", "--"),
    "stats": ("tab:purple", "-"),
    "tcpdump": ("tab:orange", "-"),
    "cat": ("tab:gray", ":"),
}


def contender(key: str, path: str, jobs: int) -> tuple[str, list[list[str]], str]:
    """(label, pipeline, timing) of one line of the plot."""
    stage = str(HERE / "_fastcap_stage.py")
    return {
        "scan-j1": ("fastcap scan -j 1, whole command", [fastcap_scan(path, 1)], "wall"),
        "scan-jN": (f"fastcap scan -j {jobs}, whole command", [fastcap_scan(path, jobs)],
                    "wall"),
        "scan-inproc": ("fastcap scan, in-process", [[PY, stage, path, "scan", "native"]],
                        "inner"),
        "select-inproc": ("fastcap walk+decode+select, in-process",
                          [[PY, stage, path, "select", "native"]], "inner"),
        "stats": ("fastcap stats, whole command",
                  [[PY, "-m", "fastcap.cli", "stats", "--json", path]], "wall"),
        "tcpdump": ("tcpdump -r F -w /dev/null 'tcp port 25'",
                    [["tcpdump", "-r", path, "-w", "/dev/null", "tcp port 25"]], "wall"),
        "cat": ("cat F > /dev/null", [["cat", path]], "wall"),
    }[key]


def capture(data_dir: Path, text: str, nbytes: int, args: argparse.Namespace) -> dict:
    """The generated capture of about `nbytes`, made once and cached."""
    sessions = max(1, round(args.sessions_per_gib * nbytes / 2**30))
    label = text.strip().upper()
    path = data_dir / f"scale-{label}-seed{args.seed}-{sessions}smtp.{args.format}"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        subprocess.run([PY, str(HERE / "gen_capture.py"), str(path), "--size", str(nbytes),
                        "--format", args.format, "--smtp-sessions", str(sessions),
                        "--seed", str(args.seed)], check=True)
    return {"label": label, "path": str(path), "bytes": path.stat().st_size,
            "smtp_sessions": sessions}


def measure(files: list[dict], keys: list[str], args: argparse.Namespace) -> dict:
    jobs = args.jobs or os.cpu_count() or 1
    series = {k: {"label": contender(k, "F", jobs)[0], "points": []} for k in keys}
    for f in files:
        warm(f["path"], args.keep_cache)
        secs: dict[str, list[float]] = {k: [] for k in keys}
        peaks: dict[str, list[int]] = {k: [] for k in keys}
        errors: dict[str, str] = {}
        for rep in range(args.repeat):  # round-robin, as compare.py
            for k in keys:
                if k in errors:
                    continue
                _label, cmds, timing = contender(k, f["path"], jobs)
                if cmds[0][0] != PY and not any(
                        os.access(os.path.join(d, cmds[0][0]), os.X_OK)
                        for d in os.environ.get("PATH", "").split(os.pathsep)):
                    errors[k] = f"not installed: {cmds[0][0]}"
                    continue
                print(f"[{f['label']} {rep + 1}/{args.repeat}] {k}", file=sys.stderr, flush=True)
                r = run_pipeline(cmds, capture=timing == "inner")
                if r.error is None and timing == "inner":
                    try:
                        secs[k].append(json.loads(r.out)["seconds"])
                    except (ValueError, KeyError):
                        r.error = "no JSON result"
                elif r.error is None:
                    secs[k].append(r.wall)
                if r.error:
                    errors[k] = f"failed: {r.error}"
                    continue
                peaks[k].append(r.peak_kb)
        for k in keys:
            point: dict = {"label": f["label"], "bytes": f["bytes"]}
            if k in errors:
                point["error"] = errors[k]
            else:
                med = statistics.median(secs[k])
                point.update(median_s=med, gb_per_s=f["bytes"] / med / 1e9,
                             peak_private_mb=max(peaks[k]) / 1024, seconds=secs[k])
            series[k]["points"].append(point)
    return series


def plot(series: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    sizes: set[float] = set()
    for key, s in series.items():
        pts = [p for p in s["points"] if "error" not in p]
        if not pts:
            continue
        x = [p["bytes"] / 1e9 for p in pts]
        sizes.update(x)
        colour, ls = STYLE.get(key, (None, "-"))
        kw = {"color": colour, "linestyle": ls, "marker": "o", "label": s["label"]}
        ax_t.plot(x, [p["gb_per_s"] for p in pts], **kw)
        ax_m.plot(x, [p["peak_private_mb"] for p in pts], **kw)
    for ax, ylabel in ((ax_t, "throughput, GB/s (median)"),
                       (ax_m, "peak private memory, MB (RssAnon)")):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted(sizes)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{x:.2f}" for x in sorted(sizes)])
        ax.set_xlabel("capture size, GB")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    ax_t.set_title("throughput vs file size")
    ax_m.set_title("peak private memory vs file size")
    ax_t.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256M,512M,1G,2G",
                    help="comma-separated capture sizes, as gen_capture.py's --size")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sessions-per-gib", type=float, default=500,
                    help="SMTP session density (default 500: 1000 in 2 GiB)")
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--jobs", type=int, help="N of the scan-jN line (default: CPUs)")
    ap.add_argument("--with", dest="keys", default="scan-j1,scan-jN,scan-inproc,tcpdump,cat",
                    help="comma-separated lines to draw, of: " + ",".join(CONTENDERS))
    ap.add_argument("--data-dir", type=Path, default=HERE.parent / "bench-data" / "scaling")
    ap.add_argument("--keep-cache", action="store_true",
                    help="measure the page cache as found instead of dropping each file and "
                         "reading it back once with cat")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scaling.png")
    args = ap.parse_args()
    keys = [k for k in args.keys.split(",") if k]
    if bad := set(keys) - set(CONTENDERS):
        ap.error(f"--with: unknown {', '.join(sorted(bad))} (known: {', '.join(CONTENDERS)})")
    texts = [t for t in args.sizes.split(",") if t.strip()]
    files = [capture(args.data_dir, t, parse_size(t), args) for t in texts]
    files.sort(key=lambda f: f["bytes"])
    series = measure(files, keys, args)

    mach = machine()
    title = (f"fastcap vs file size: gen_capture.py --seed {args.seed}, "
             f"{args.sessions_per_gib:g} SMTP sessions/GiB, {args.format}; median of "
             f"{args.repeat}, page cache {'as found' if args.keep_cache else 'freshly read'}"
             f"\n{mach}")
    plot(series, args.out, title)
    json_out = args.out.with_suffix(".json")
    json_out.write_text(json.dumps(
        {"machine": mach, "seed": args.seed, "sessions_per_gib": args.sessions_per_gib,
         "format": args.format, "repeat": args.repeat, "keep_cache": args.keep_cache,
         "files": files, "series": series}, indent=2) + "\n")

    width = max(len(s["label"]) for s in series.values())
    print(f"{'what':{width}} {'GB':>6} {'median s':>9} {'GB/s':>7} {'private MB':>10}")
    for s in series.values():
        for p in s["points"]:
            if "error" in p:
                print(f"{s['label']:{width}} {p['bytes'] / 1e9:6.2f}  {p['error']}")
            else:
                print(f"{s['label']:{width}} {p['bytes'] / 1e9:6.2f} {p['median_s']:9.3f} "
                      f"{p['gb_per_s']:7.2f} {p['peak_private_mb']:10.1f}")
    print(f"wrote {args.out} and {json_out}")


if __name__ == "__main__":
    main()
