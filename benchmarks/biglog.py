"""Write a big Exchange SMTP protocol log by repeating the conversations of a small one.

    python benchmarks/biglog.py TEMPLATE OUT [--size 1G] [--session SID] [--gap-ms 50]
                                             [--start 2026-03-10T00:00:00Z]

Reading mail-server logs must stay fast and small on the gigabyte files busy servers keep, and
such a file cannot be committed; this builds one from a W3C protocol log in the documented
shape (``#Software``, ``#Version``, ``#Log-type``, ``#Date``, ``#Fields`` header lines, then CSV
lines date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,
data,context).  The header is kept once; the template's conversations (lines grouped by
session-id, each in its own order; ``--session`` keeps one) are laid end to end, ``--gap-ms``
apart, and repeated.  Each copy gets its own date-time (the template's offsets within the
conversation, from the copy's start), a fresh session-id (the template's first six hex digits,
then a counter) and a fresh local-endpoint port (1025..65535 in turn, so unique among any
64,511 consecutive conversations, as a busy server's ephemeral ports are); everything else on
the line is kept byte for byte.  The file ends at the last whole line that fits: its size is
``--size`` less at most one line.

Speed: the time stamps of a block of copies are formatted at once with numpy, and each copy of
the template is one ``str.format`` call, so 1 GiB takes seconds, not minutes.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PORTS = 65535 - 1025 + 1
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$", re.I)


def parse_size(text: str) -> int:
    """'1G', '500M', '1.5GiB', '123' -> bytes (binary multiples)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def split_csv(line: str) -> list[str]:
    """The raw text of each comma-separated field (quotes kept), so a line can be put back
    together byte for byte with ``",".join``."""
    fields, start, quoted = [], 0, False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append(line[start:i])
            start = i + 1
    fields.append(line[start:])
    return fields


def _ms(stamp: str) -> int:
    """Milliseconds since the epoch of a W3C date-time such as 2026-03-10T09:15:02.118Z."""
    return int(np.datetime64(stamp.strip().rstrip("Z"), "ms").astype(np.int64))


@dataclass(frozen=True, slots=True)
class Unit:
    """The template's conversations laid end to end, ready to format as one string: time
    stamp placeholders first, then one session-id and one port placeholder per conversation."""

    header: str
    fmt: str
    offsets_ms: np.ndarray  # per line, from the unit's start
    period_ms: int  # from one unit's start to the next
    start_ms: int  # the template's first conversation's first time
    sid_prefixes: tuple[str, ...]
    newline: str


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _slot(index: int) -> str:
    """A positional ``str.format`` placeholder."""
    return "{" + str(index) + "}"


def load_template(path: str | Path, *, session: str | None = None, gap_ms: int = 50) -> Unit:
    """Read a W3C protocol log and turn its conversations into a :class:`Unit`."""
    text = Path(path).read_bytes().decode("utf-8-sig")
    newline = "\r\n" if "\r\n" in text else "\n"
    header: list[str] = []
    fields: list[str] = []
    convs: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            if not convs:
                header.append(line)
            if line.startswith("#Fields:"):
                fields = [f.strip() for f in line[len("#Fields:"):].split(",")]
            continue
        if not line.strip():
            continue
        if not fields:
            raise ValueError(f"{path}: a data line before the #Fields header")
        raw = split_csv(line)
        sid = raw[fields.index("session-id")]
        if session is None or sid == session:
            convs.setdefault(sid, []).append(raw)
    if not convs:
        raise ValueError(f"{path}: no conversation" + (f" {session}" if session else ""))
    i_time, i_sid = fields.index("date-time"), fields.index("session-id")
    i_local = fields.index("local-endpoint")
    n_lines = sum(len(c) for c in convs.values())
    parts: list[str] = []
    offsets: list[int] = []
    prefixes: list[str] = []
    t = 0
    k = 0
    start_ms = 0
    for j, (sid, lines) in enumerate(convs.items()):
        times = [_ms(raw[i_time]) for raw in lines]
        first = min(times)
        start_ms = start_ms or first
        prefixes.append(sid[:6])
        for raw, ms in zip(lines, times, strict=True):
            out = [_escape(f) for f in raw]
            out[i_time] = _slot(k) + "Z"
            out[i_sid] = _slot(n_lines + j)
            host, sep, port = raw[i_local].rpartition(":")
            if sep and port.isdigit():
                out[i_local] = f"{_escape(host)}:{_slot(n_lines + len(convs) + j)}"
            parts.append(",".join(out) + newline)
            offsets.append(t + ms - first)
            k += 1
        t += max(times) - first + gap_ms
    return Unit(newline.join(header) + newline if header else "", "".join(parts),
                np.array(offsets, dtype=np.int64), t, start_ms, tuple(prefixes), newline)


def generate(template: str | Path, out: str | Path, size: int, *, session: str | None = None,
             gap_ms: int = 50, start: str | None = None, block: int = 2048) -> int:
    """Write ``out`` of at most ``size`` bytes (less at most one line); returns the number
    of conversations begun."""
    unit = load_template(template, session=session, gap_ms=gap_ms)
    per_unit = len(unit.sid_prefixes)
    base = _ms(start) if start else unit.start_ms
    written = 0
    counter = 0  # conversations so far: session-id counter and port
    with open(out, "wb") as fh:
        head = unit.header.encode()
        if len(head) > size:
            return 0
        fh.write(head)
        written = len(head)
        u = 0
        while True:
            starts = base + (u + np.arange(block, dtype=np.int64)) * unit.period_ms
            stamps = np.datetime_as_string(
                (starts[:, None] + unit.offsets_ms[None, :]).astype("datetime64[ms]"), unit="ms")
            chunk: list[bytes] = []
            for row in stamps.tolist():
                ids = [f"{p}{counter + j:010X}" for j, p in enumerate(unit.sid_prefixes)]
                ports = [1025 + (counter + j) % PORTS for j in range(per_unit)]
                data = unit.fmt.format(*row, *ids, *ports).encode()
                if written + len(data) > size:
                    fh.write(b"".join(chunk))
                    tail = _tail(fh, data, size - written, unit.newline.encode())
                    return counter + sum(1 for sid in ids if sid.encode() in tail)
                chunk.append(data)
                written += len(data)
                counter += per_unit
            fh.write(b"".join(chunk))
            u += block


def _tail(fh, data: bytes, room: int, newline: bytes) -> bytes:
    """Write the whole lines of ``data`` that fit in ``room`` bytes, and return them."""
    cut = data.rfind(newline, 0, room)
    tail = data[:cut + len(newline)] if cut >= 0 else b""
    fh.write(tail)
    return tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("template", help="a W3C SMTP protocol log (the conversations to repeat)")
    ap.add_argument("out", help="the log to write")
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"),
                    help="bytes to write (default 1G = 1 GiB)")
    ap.add_argument("--session", help="repeat only this session-id of the template")
    ap.add_argument("--gap-ms", type=int, default=50,
                    help="pause between one conversation's last line and the next's first")
    ap.add_argument("--start", help="first conversation's time, e.g. 2026-03-10T00:00:00Z "
                    "(default: the template's first)")
    args = ap.parse_args(argv)
    n = generate(args.template, args.out, args.size, session=args.session,
                 gap_ms=args.gap_ms, start=args.start)
    print(f"{args.out}: {Path(args.out).stat().st_size} bytes, {n} conversations",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
