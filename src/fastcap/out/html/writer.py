"""Render the report page (Jinja2, autoescaped) and write it as one self-contained file.

The page data goes into a `<script type="application/json">` element; `embed_json` escapes
`<`, `>`, `&` and the JavaScript line separators, so no string from a packet can end that
element or be read as markup.  The stylesheet and script are package files inlined as they
are: the page fetches nothing."""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from importlib import resources
from typing import Any

from .data import plain_rows

__all__ = ["embed_json", "render_report", "write_report"]


def embed_json(data: Any) -> str:
    """JSON safe inside a script element: ASCII only (so U+2028/2029 and every other
    non-ASCII character become \\u escapes) and no `<`, `>` or `&` at all."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    # three replaces: str.translate walks a 100 MB document character by character
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("fastcap.out.html", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)


def _asset(name: str) -> str:
    return resources.files("fastcap.out.html").joinpath("templates", name).read_text("utf-8")


_PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_OK = "#2ca02c"
CHART_W, CHART_H = 720, 140
# sessions written as a plain table for a browser without scripts: enough to read, while the
# report of 100,000 sessions does not grow by a second copy of them all
PLAIN_ROWS = 1000
# sessions printed at most (as filtered and sorted): more is hundreds of sheets, and tens of
# seconds of the browser's layout before its print dialog shows; a filter prints the others
PRINT_ROWS = 1000


def timeline_bars(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The stacked bars of the timeline chart: one rectangle per bin and verdict."""
    bins = timeline["bins"]
    if not bins:
        return []
    top = max(1, max(sum(b) for b in bins))
    w = CHART_W / len(bins)
    colours = [_OK if c == "ok" else _PALETTE[i % len(_PALETTE)]
               for i, c in enumerate(timeline["codes"])]
    bars = []
    for i, counts in enumerate(bins):
        y = CHART_H
        for k, n in enumerate(counts):
            if n:
                h = CHART_H * n / top
                y -= h
                bars.append({"x": round(i * w, 2), "y": round(y, 2), "w": round(w - 1, 2),
                             "h": round(h, 2), "code": timeline["codes"][k], "n": n,
                             "fill": colours[k]})
    return bars


def chart_name(timeline: dict[str, Any]) -> str:
    """The chart's text alternative: its bars are drawing only, so its name gives each
    verdict's count over the whole span."""
    totals = [sum(b[k] for b in timeline["bins"]) for k in range(len(timeline["codes"]))]
    counts = ", ".join(f"{c} {n}" for c, n in zip(timeline["codes"], totals, strict=True))
    return "sessions per verdict over time" + (f": {counts}" if counts else "")


def page_title(page: dict[str, Any]) -> str:
    """The window's (and a tab's, a bookmark's, a saved file's) name: which capture (by its
    label, the folders that tell it from another file of its name too) and what was found,
    so two reports open side by side are told apart without opening them."""
    paths = [f.get("label") or f["path"] for f in page["files"]] or [
        os.path.basename(e["path"]) or e["path"] for e in page["errors"]]
    what = paths[0] if paths else "no capture"
    if len(paths) > 1:
        what += f" and {len(paths) - 1} more file(s)"
    counted = sum(f["sessions"] for f in page["files"])
    return f"fastcap report: {what}: {page['with_problems']} of {counted} session(s) with problems"


def legend(timeline: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c, _OK if c == "ok" else _PALETTE[i % len(_PALETTE)])
            for i, c in enumerate(timeline["codes"])]


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def _rate(bytes_per_s: float) -> str:
    """0.33 MB/s, 12.5 MB/s, 950 MB/s, 3.12 GB/s: small files scan at small rates too."""
    mb = bytes_per_s / 1e6
    if mb >= 1000:
        return f"{mb / 1000:.2f} GB/s"
    return f"{mb:.0f} MB/s" if mb >= 100 else f"{mb:.3g} MB/s"


def render_report(page: dict[str, Any]) -> str:
    """The whole HTML document for `page` (from `page_data`)."""
    from markupsafe import Markup

    env = _environment()
    total = sum(f["size"] or 0 for f in page["files"])
    secs = page["scan_seconds"]
    speed = _rate(total / secs) if secs else None
    counted = sum(f["sessions"] for f in page["files"])
    return env.get_template("report.html.j2").render(
        plain=plain_rows(page, PLAIN_ROWS), plain_rows=PLAIN_ROWS, print_rows=PRINT_ROWS,
        page=page, data_json=Markup(embed_json(page)), bars=timeline_bars(page["timeline"]),
        chart_name=chart_name(page["timeline"]), title=page_title(page),
        legend=legend(page["timeline"]), chart_w=CHART_W, chart_h=CHART_H, size=_size,
        when=_when, total_size=total, speed=speed, counted=counted,
        css=Markup(_asset("report.css")), js=Markup(_asset("report.js")))


def write_report(path: str | os.PathLike, page: dict[str, Any]) -> int:
    """Write the page to `path` atomically (a reader never sees half a report); its size."""
    text = render_report(page).encode("utf-8")
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".fastcap-report-", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(target)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(text)
