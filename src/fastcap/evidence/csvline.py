"""One line of a comma-separated log or export as its fields.

Exchange's W3C logs quote a field only when it holds a comma or a quote, PowerShell's
Export-Csv quotes every field; both double a quote inside one.  Export-Csv writes a line
break inside a field as it is, so one record can run over several lines of the file:
`records` joins them while a quote is open."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from .text import TextLine

__all__ = ["MAX_RECORD_LINES", "records", "split_line"]

MAX_RECORD_LINES = 64  # lines one record may run over; a quote left open longer is broken


def records(lines: Iterable[TextLine],
            whole: Callable[[str], bool] = lambda _: True) -> Iterator[TextLine]:
    """The CSV records of `lines`: a line with a quote left open is joined ("\n") with the
    lines after it until the quote closes, as the record's first line (its number and
    offset).  A quote still open after MAX_RECORD_LINES lines, or at the end, or a join
    `whole` refuses (two damaged lines balancing each other's quotes: not a record of the
    header's width), is broken: that line is given alone (split_line refuses it) and the
    lines after it are read again."""
    source = iter(lines)
    pending: deque[TextLine] = deque()
    while True:
        line = pending.popleft() if pending else next(source, None)
        if line is None:
            return
        quotes = line.text.count('"')
        if not quotes & 1:
            yield line
            continue
        parts = [line]
        while quotes & 1 and len(parts) < MAX_RECORD_LINES:
            more = pending.popleft() if pending else next(source, None)
            if more is None:
                break
            parts.append(more)
            quotes += more.text.count('"')
        joined = "" if quotes & 1 else "\n".join(p.text for p in parts)
        if joined and whole(joined):
            yield line._replace(text=joined)
        else:
            yield line
            pending.extendleft(reversed(parts[1:]))


def split_line(line: str) -> list[str] | None:
    """The fields of one CSV line (Exchange quotes a field only when it holds a comma or a
    quote, Export-Csv always; `""` is a quote inside one); None when its quoting is broken.
    Built on str.split, as the csv module costs several times more per line."""
    if '"' not in line:
        return line.split(",")
    segments = line.split('"')
    if not len(segments) & 1:  # an odd number of quotes
        return None
    fields: list[str] = []
    field = ""
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if i & 1:  # between an opening and a closing quote
            field += segment
        elif 0 < i < last and not segment:  # a closing quote followed by a quote: `""`
            field += '"'
        else:
            parts = segment.split(",")
            field += parts[0]
            if len(parts) > 1:
                fields.append(field)
                fields.extend(parts[1:-1])
                field = parts[-1]
    fields.append(field)
    return fields
