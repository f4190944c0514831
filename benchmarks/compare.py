"""Side-by-side throughput and private memory of fastcap and the usual tools, in one run.

    python benchmarks/compare.py FILE [--repeat 5] [--tshark] [--json OUT] [--keep-cache|--cold]

The file is dropped from the page cache and read back once with `cat` (pass --keep-cache to
measure the cache as it is); then every contender reads the same page-cache-resident file in
round-robin order.  The table gives the median of `--repeat` runs, GB/s, the ratio to
tcpdump's BPF prefilter, and peak private memory (RssAnon, sampled every 2 ms: RSS would count
the file's mapped page cache).  fastcap rows
assert the frame and selection counts against the first fastcap run, so a fast wrong answer
fails loudly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd: list[str], capture: bool) -> tuple[float, int, str]:
    """Wall seconds, peak RssAnon (KiB) and (when `capture`) stdout of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _rss_anon_kb(proc.pid))
        time.sleep(0.002)
    out = proc.stdout.read().decode() if proc.stdout else ""
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return wall, peak, out


def drop_from_cache(path: str) -> None:
    """Evict the file's pages (POSIX_FADV_DONTNEED), so the warm-up read that follows leaves
    it in a known state: freshly read.  Pages that have aged in the cache can end up split
    into small folios (e.g. after the kernel's DAMON reclaim), which makes every page fault
    of an mmap walk several times dearer while read()-based tools barely notice; without
    this step results depend on the file's history."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tshark", action="store_true", help="also time tshark (slow: ~30 MB/s)")
    ap.add_argument("--json", help="write the table as JSON here")
    ap.add_argument("--cold", action="store_true",
                    help="drop the file from the page cache before every run: disk-bound "
                         "throughput instead of page-cache throughput")
    ap.add_argument("--keep-cache", action="store_true",
                    help="measure the file's page cache as it is instead of dropping it and "
                         "reading it back once with cat first")
    args = ap.parse_args()
    path = args.file
    size = os.path.getsize(path)
    if not args.keep_cache:
        drop_from_cache(path)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    py = sys.executable
    stage = str(HERE / "_fastcap_stage.py")
    contenders: list[tuple[str, list[str], str]] = [
        ("cat F > /dev/null", ["cat", path], "wall"),
    ]
    if shutil.which("tcpdump"):
        contenders.append(
            (
                "tcpdump -r F -w /dev/null 'tcp port 25'",
                ["tcpdump", "-r", path, "-w", "/dev/null", "tcp port 25"],
                "wall",
            )
        )
    contenders += [
        ("fastcap walk (C), in-process", [py, stage, path, "walk", "native"], "inner"),
        (
            "fastcap walk+decode+select (C), in-process",
            [py, stage, path, "select", "native"],
            "inner",
        ),
        (
            "fastcap + TCP reassembly (C), in-process",
            [py, stage, path, "reassemble", "native"],
            "inner",
        ),
        (
            "fastcap + reassembly, SMTP, TLS (C), in-process",
            [py, stage, path, "sessions", "native"],
            "inner",
        ),
        (
            "fastcap scan: + certificates, verdicts, in-proc.",
            [py, stage, path, "scan", "native"],
            "inner",
        ),
        (
            "fastcap stats (C), whole command",
            [py, "-m", "fastcap.cli", "stats", "--json", path],
            "wall",
        ),
        (
            "fastcap scan, whole command",
            [py, "-m", "fastcap.cli", "scan", "--format", "jsonl", path],
            "wall",
        ),
    ]
    if args.tshark and shutil.which("tshark"):
        contenders.append(
            (
                "tshark -r F -Y tcp.port==25",
                ["tshark", "-r", path, "-n", "-Y", "tcp.port==25"],
                "wall",
            )
        )

    rows, references = [], {}
    # Round-robin: every repeat runs each contender once, so drift in the machine's state
    # (other tenants, page cache, frequency) hits all of them alike instead of one block.
    secs: dict[str, list[float]] = {name: [] for name, _c, _t in contenders}
    peaks: dict[str, list[int]] = {name: [] for name, _c, _t in contenders}
    for rep in range(args.repeat):
        for name, cmd, timing in contenders:
            if name.startswith("tshark") and rep:
                continue  # ~100x slower: once is enough
            if args.cold:
                drop_from_cache(path)
            wall, peak, out = run(cmd, capture=timing == "inner")
            if timing == "inner":
                res = json.loads(out)
                secs[name].append(res.pop("seconds"))
                key = next((k for k in ("selected_frames", "connections", "sessions",
                                                      "scanned_sessions") if k in res),
                           None)
                if key in res:
                    ref = references.setdefault(key, res)
                    assert res == ref, f"{name}: {res} != {ref}"
            else:
                secs[name].append(wall)
            peaks[name].append(peak)
    for name, _cmd, _timing in contenders:
        med = statistics.median(secs[name])
        rows.append(
            {
                "what": name,
                "median_s": med,
                "gb_per_s": size / med / 1e9,
                "peak_private_mb": max(peaks[name]) / 1024,
                "runs": len(secs[name]),
            }
        )
    base = next((r for r in rows if r["what"].startswith("tcpdump")), None)
    state = "cold (dropped before every run)" if args.cold else (
        "as found" if args.keep_cache else "freshly read with cat")
    print(f"file: {path} ({size / 1e9:.2f} GB, page cache {state})   machine: {machine()}")
    for ref in references.values():
        print(f"fastcap found: {ref}")
    print(f"{'what':48} {'median s':>9} {'GB/s':>7} {'x tcpdump':>10} {'private MB':>11}")
    for r in rows:
        ratio = base["median_s"] / r["median_s"] if base else float("nan")
        r["x_tcpdump"] = ratio
        print(
            f"{r['what']:48} {r['median_s']:9.3f} {r['gb_per_s']:7.2f} {ratio:10.2f} "
            f"{r['peak_private_mb']:11.1f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"file": path, "size": size, "machine": machine(), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
