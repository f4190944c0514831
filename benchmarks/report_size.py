"""Size and build time of the HTML report of a big capture, and its load time in Chromium.

    python benchmarks/gen_capture.py /tmp/100k.pcap --size 500M --smtp-sessions 100000
    python benchmarks/report_size.py /tmp/100k.pcap [--jobs N] [--json OUT] [--keep FILE]

The sessions come from scanning a generated capture (real OpenSSL conversations replayed with
fresh addresses, benchmarks/gen_capture.py), not from synthesised records.  Reported, each
once (wall time, this process): the scan; the walk that reads the ladders' frame times; the
walk that reads each session's frames (for `frame N`); the page data; rendering and writing
the file; the file's size (and gzipped).  With Debian's
chromium and chromium-driver and Selenium installed, also the page's load time (navigation
start to the load event, the table's first rows drawn), a filter, a sort and opening one
session's ladder, each as the page's own clock measures it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if "fastcap" not in sys.modules:  # run from a checkout; imported (by tests), the path stays
    sys.path.insert(0, str(HERE.parent / "src"))  # as it is, so child processes import alike

from fastcap import __version__  # noqa: E402
from fastcap.options import DEFAULT_PORTS  # noqa: E402
from fastcap.out.html import ScanFacts, frames_wanted, page_data, render_report  # noqa: E402
from fastcap.read.frametimes import frame_times  # noqa: E402
from fastcap.run.frameruns import frame_runs  # noqa: E402
from fastcap.run.scanner import scan  # noqa: E402


def build(capture: str, jobs: int) -> tuple[dict, str]:
    timings = {}
    t = time.perf_counter()
    run = scan(capture, jobs=jobs)
    sessions = list(run)
    timings["scan_s"] = time.perf_counter() - t
    results = [(capture, sessions, run.summary)]
    t = time.perf_counter()
    times = {capture: frame_times(capture, frames_wanted(sessions))}
    timings["frame_times_s"] = time.perf_counter() - t
    t = time.perf_counter()
    runs = {capture: frame_runs(capture, sessions, DEFAULT_PORTS)}
    timings["frame_runs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    page = page_data(results, times=times, runs=runs,
                     scan=ScanFacts(seconds=timings["scan_s"], version=__version__))
    timings["page_data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    html = render_report(page)
    timings["render_s"] = time.perf_counter() - t
    raw = html.encode("utf-8")
    timings.update(sessions=len(sessions), capture_bytes=os.path.getsize(capture),
                   report_bytes=len(raw), report_gzip_bytes=len(gzip.compress(raw, 6)),
                   strings=len(page["strings"]), certs=len(page["certs"]),
                   arrows=sum(len(r[page["columns"].index("ladder")]) // 4
                              for r in page["sessions"]))
    return timings, html


_MEASURE = """
const done = arguments[arguments.length - 1];
const t0 = performance.now();
const box = document.getElementById('filter');
box.value = 'no_client_cert';
box.dispatchEvent(new Event('input'));
setTimeout(function () {
  const t1 = performance.now();
  document.querySelector('th[data-key="client"]').click();
  const t2 = performance.now();
  document.querySelector('tr.session').click();
  const t3 = performance.now();
  done({filter_ms: t1 - t0 - 150, sort_ms: t2 - t1, open_ladder_ms: t3 - t2,
        shown: document.querySelectorAll('tr.session').length,
        arrows: document.querySelectorAll('tr.detail g.arrow').length});
}, 150);
"""


def browser(path: str) -> dict | None:
    """Load time and interaction times in headless Chromium, or None without one."""
    try:
        from selenium import webdriver
    except ImportError:
        return None
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        return None
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        o.add_argument(a)
    d = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=o)
    try:
        d.set_script_timeout(120)
        t = time.perf_counter()
        d.get(Path(path).resolve().as_uri())
        wall = time.perf_counter() - t
        nav = d.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {load_ms: n.loadEventEnd, dom_ms: n.domContentLoadedEventEnd,"
            " rows: document.querySelectorAll('tr.session').length,"
            " heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null};")
        nav["get_wall_s"] = wall
        nav.update(d.execute_async_script(_MEASURE))
        return nav
    finally:
        d.quit()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", metavar="OUT", help="write the numbers here too")
    ap.add_argument("--keep", metavar="FILE", help="keep the report at FILE")
    args = ap.parse_args(argv)
    numbers, html = build(args.capture, args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or os.path.join(tmp, "report.html")
        Path(path).write_text(html, "utf-8")
        numbers["browser"] = browser(path)
    print(json.dumps(numbers, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
