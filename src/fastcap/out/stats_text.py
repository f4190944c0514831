"""`fastcap stats` as text: one fact per line, in the order capinfos prints them."""

from __future__ import annotations

import datetime as dt

from ..select.stats import FileStats
from .textsafe import printable


def _fmt_ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d} UTC"


def format_text(s: FileStats) -> str:
    """Human-readable block, one fact per line, like capinfos."""
    ports = ",".join(map(str, s.ports))
    orders = "/".join(dict.fromkeys(s.byte_orders)) or "-"
    fmt = s.format + (" (nanosecond)" if s.nanosecond else "")
    extra = "".join(f", {v} {k} block(s)" for k, v in s.other_records.items())
    lines = [
        f"File:              {printable(s.path)}",
        f"Format:            {fmt}, {orders} endian"
        + (f", {s.sections} sections" if s.sections > 1 else ""),
        f"Link types:        {', '.join(s.linktypes) or '-'}"
        + (f" ({s.interfaces} interfaces)" if s.interfaces > 1 else ""),
        f"Frames:            {s.frames} ({s.packets} packets{extra})",
        f"Captured bytes:    {s.bytes} (file size {s.size}"
        + (f", decompressed from {s.compression})" if s.compression else ")"),
        f"First timestamp:   {_fmt_ts(s.first_ts_ns)}",
        f"Last timestamp:    {_fmt_ts(s.last_ts_ns)}",
        f"IPv4 / IPv6:       {s.ipv4} / {s.ipv6}",
        f"TCP / UDP / other: {s.tcp} / {s.udp} / {s.other}",
        f"IP fragments:      {s.fragments}",
        f"Snapped frames:    {s.snapped}",
        f"Port(s) {ports}:".ljust(19) + f"{s.selected_frames} frames in {s.selected_flows} flows"
        + (f", {s.icmp_about_selected} ICMP errors about them" if s.icmp_about_selected else ""),
        f"Reader:            {s.backend}",
    ]
    for name, count in s.tunnels.items():
        lines.append(f"Opened tunnel:     {name}: {count}")
    for reason, count in sorted(s.skipped.items()):
        lines.append(f"Skipped:           {reason}: {count}")
    for reason, count in sorted(s.limits.items()):
        lines.append(f"Limit:             {reason}: {count}")
    for a, b in s.unreadable:
        lines.append(f"Unreadable:        bytes {a}-{b - 1} ({b - a} bytes)")
    lines.append("Checksums:         not verified (as Wireshark by default); a sample "
                 f"summed: {s.checksums_rewritten} of {s.checksums_sampled} small IPv4/IPv6 "
                 "segments wrong and no offload's")
    for w in s.warnings:
        lines.append(f"Warning:           {printable(w, backslashes=False)}")
    return "\n".join(lines)
