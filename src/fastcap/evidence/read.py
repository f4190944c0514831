"""The entry point of the evidence stage: files in, conversations and settings out.

Each file's kind comes from its content (`detect`); a file no reader knows, or cannot be
read, gives one warning and is skipped, and the other files still count.  Files are only
ever opened for reading.  Warnings are one line each, naming the file (and the line), at
most `text.MAX_WARNINGS` per file with the rest counted."""

from __future__ import annotations

import inspect
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from ..errors import FastcapError
from . import tracking
from .detect import LOG_READERS, SETTINGS_READERS, kind_of
from .logzone import LogZone, as_zone
from .powershell import KNOWN_PROPERTIES
from .records import LogConversation
from .settings import Settings
from .slim import SlimStore
from .text import MAX_WARNINGS, LogText, TextLine

__all__ = ["MAX_SETTINGS_BYTES", "Evidence", "EvidenceFile", "read_evidence"]

MAX_SETTINGS_BYTES = 64 << 20  # a PowerShell export larger than this is not read
# A file is read again whole, rather than by region, for this many conversations or more
# whose regions (plus what starting one costs) add up to half the file.
_WHOLE_FILE_FROM = 32
_REGION_COST = 16 << 10
_HEADER_LINES = 64  # a W3C log's header lines (#Fields ...) are read before a region


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """One input file as read: what it was taken for and how much it gave."""

    path: str
    kind: str  # as detect.kind_of names it
    encoding: str
    lines: int  # lines read (0 for a settings export)
    conversations: int


@dataclass(frozen=True)
class Evidence:
    """Everything the evidence files said."""

    files: tuple[EvidenceFile, ...]
    conversations: tuple[LogConversation, ...]  # sorted by (start_ns, file, first line)
    settings: Settings
    warnings: tuple[str, ...]

    year: int | None = None  # how syslog times without a year or zone were read
    utc_offset_s: int | LogZone = 0  # seconds east of UTC, or an IANA zone

    def full(self, conv: LogConversation) -> LogConversation:
        """`conv` with all its facts (see `materialize`)."""
        return self.materialize([conv])[0]

    def materialize(self, convs: Iterable[LogConversation]) -> list[LogConversation]:
        """The conversations with all their facts, in the order given.

        `conversations` keeps only what the join needs of each (endpoints, times, where):
        the facts of a conversation (certificates, replies, notes) cost a kilobyte or two,
        a 1 GB log has a few hundred thousand conversations, and only those joined to a
        session or listed are ever looked at.  Their facts are read again from the file:
        from the conversation's first line to its last, or the whole file once when many of
        its conversations are wanted."""
        convs = list(convs)
        out: list[LogConversation] = list(convs)
        by_file: dict[str, list[int]] = {}
        for i, c in enumerate(convs):
            if c.slim:
                by_file.setdefault(c.file, []).append(i)
        for path, idx in by_file.items():
            kind = next((f.kind for f in self.files if f.path == path), None)
            module = LOG_READERS.get(kind or "")
            if module is None:
                continue
            wanted = {convs[i].first.line: i for i in idx}
            spans = sum(convs[i].last.offset - convs[i].first.offset + _REGION_COST
                        for i in idx)
            try:
                if len(wanted) >= _WHOLE_FILE_FROM and spans >= _size(path) // 2:
                    self._pick(module, LogText(path), wanted, convs, out)
                else:
                    # a syslog file has no header, and a region of it is read with the year
                    # its first line had: a given year moves on through the whole file
                    syslog = kind == "syslog"
                    for i in idx:
                        c = convs[i]
                        region = _Region(path, c.first.offset, c.first.line, c.last.offset,
                                         header=not syslog)
                        year = (_local_year(c.start_ns, self.utc_offset_s)
                                if syslog and self.year is not None else self.year)
                        zone = self.utc_offset_s
                        if isinstance(zone, LogZone) and zone.name is not None:
                            # a repeated local time on its first line: as first read
                            zone = replace(zone, near_s=c.start_ns // 1_000_000_000)
                        self._pick(module, region, {c.first.line: i}, convs, out, year, zone)
            except (FastcapError, OSError):
                continue  # the file went away: the slim conversations are what is left
        return out

    def _pick(self, module, text: LogText, wanted: dict[int, int],
              convs: list[LogConversation], out: list[LogConversation],
              year: int | None = None, zone: int | LogZone | None = None) -> None:
        left = dict(wanted)
        for got in module.conversations(text, lambda _w: None, year=year or self.year,
                                        utc_offset_s=self.utc_offset_s if zone is None
                                        else zone):
            i = left.pop(got.first.line, None)
            if i is not None and got.start_ns == convs[i].start_ns:
                out[i] = got
            if not left:
                return

    def lines_of(self, conv: LogConversation) -> list[tuple[int, TextLine]]:
        """(log time ns, line) of the lines of one conversation, read again from its file
        (for `follow`); empty if the file is gone or not a log read here."""
        kind = next((f.kind for f in self.files if f.path == conv.file), None)
        module = LOG_READERS.get(kind or "")
        if module is None:
            return []
        if conv.slim:  # which lines are its own is a fact too (a session-id, a pid)
            conv = self.full(conv)
        kw = ({"utc_offset_s": self.utc_offset_s}
              if "utc_offset_s" in inspect.signature(module.lines_of).parameters else {})
        try:
            return list(module.lines_of(LogText(conv.file), conv, **kw))
        except (FastcapError, OSError):
            return []


class _Counted(LogText):
    """A LogText that remembers the number of the last line it handed out."""

    last_line = 0

    def lines_from(self, start: int, first_number: int,
                   end: int | None = None) -> Iterator[TextLine]:
        line = None
        for line in super().lines_from(start, first_number, end):
            yield line
        if line is not None:
            self.last_line = max(self.last_line, line.number)


class _Region(LogText):
    """The part of a log from one line to another, after the file's header lines (a W3C
    log's #Fields say what its columns are; `header` False for a file that has none)."""

    def __init__(self, path: str, start: int, first_number: int, end: int, *,
                 header: bool = True) -> None:
        super().__init__(path)
        self._region = (start, first_number, end)
        self._header = header

    def lines(self, start: int = 0, end: int | None = None) -> Iterator[TextLine]:
        """The file's header (its leading "#" lines, and a CSV export's column names after
        them or after Export-Csv's "#TYPE" line), then the region.  A W3C log's first data
        line is not header: it belongs to a session or message the region may hold too."""
        begin, number, stop = self._region
        last = -1
        w3c = False
        for line in itertools.islice(self.lines_from(0, 1),
                                     _HEADER_LINES if self._header else 0):
            if line.offset >= begin:
                break
            text = line.text
            if text.startswith("#"):
                w3c = w3c or text[:5].upper() != "#TYPE"
            elif not text.strip():
                continue  # the readers skip blank lines
            elif w3c:
                break
            last = line.offset
            yield line
            if not text.startswith("#"):
                break
        if begin > last:
            yield from self.lines_from(begin, number, stop)


_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
               (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"))
# Format-List's "Name : value" ("Name :" when the value is empty)
_LIST_LINE = re.compile(r"[A-Za-z][A-Za-z0-9]*\s*:(?: |$)")
_TABLE_RULE = re.compile(r" *-+(?: +-+)* *$")  # Format-Table's line under the column names
_AS_JSON = "export the objects with ConvertTo-Json -Depth 4"


def _unknown_hint(text: LogText) -> str:
    """What an unread file seems to be, when that is the usual mistake: a rotated log still
    compressed, or the cmdlets' output in a form that loses values: printed (Format-List of
    no connector, Format-Table, whose columns are cut to "...") or Export-Csv (which writes a
    multi-valued property such as SenderIPAddresses as its .NET type name, and dates in the
    exporting machine's locale)."""
    try:
        with open(text.path, "rb") as f:
            magic = f.read(6)
    except OSError:
        return ""
    for prefix, name in _COMPRESSED:
        if magic.startswith(prefix):
            return f"; it is {name}-compressed: decompress it first"
    head = text.head()
    sep = tracking.other_delimiter(head)
    if sep is not None:
        return (f"; it is an export with {'tabs' if sep == chr(9) else repr(sep)} between "
                "fields (Export-Csv -UseCulture or -Delimiter): export it with commas, "
                "Export-Csv's default")
    lines = [s for s in head.splitlines()[:40] if s.strip()]
    if lines and _list_lines(lines) * 2 > len(lines):
        return f"; it looks like printed PowerShell output (Format-List): {_AS_JSON}"
    if any(_TABLE_RULE.match(rule) and _under_names(names, rule)
           for names, rule in itertools.pairwise(lines[:10])):
        return ("; it looks like printed PowerShell output (Format-Table, whose columns are "
                f"cut short): {_AS_JSON}")
    first = next((s for s in lines if not s.startswith("#")), "")
    cells = {c.strip().strip('"').lower() for c in re.split(r"[,;]", first)}
    if len(cells) > 1 and cells & KNOWN_PROPERTIES:
        return ("; it looks like connector or certificate settings from Export-Csv, which "
                "writes multi-valued properties as .NET type names and dates in the local "
                f"format: {_AS_JSON}")
    return ""


def _list_lines(lines: list[str]) -> int:
    """How many of `lines` are Format-List's: "Name : value", or a long value's next line,
    indented to where the value began (RawData and CertificateDomains wrap onto dozens)."""
    count, column = 0, None
    for line in lines:
        m = _LIST_LINE.match(line)
        if m is not None:
            count, column = count + 1, m.end()
        elif column is not None and len(line) > column and line[:column].isspace() \
                and not line[column].isspace():
            count += 1
        else:
            column = None
    return count


def _under_names(names: str, rule: str) -> bool:
    """Whether each run of dashes in `rule` starts under the start of a column name in
    `names`, as Format-Table underlines its headings."""
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    return bool(starts) and all(i < len(names) and not names[i].isspace()
                                and (i == 0 or names[i - 1].isspace()) for i in starts)


def _local_year(ns: int, utc_offset_s: int | LogZone) -> int:
    """The year of UTC nanoseconds `ns` in the zone `utc_offset_s` (seconds local minus UTC,
    or a LogZone)."""
    return as_zone(utc_offset_s).local_year(ns // 1_000_000_000)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _settings_text(text: LogText) -> str:
    """The whole of a (small) settings export, decoded as LogText found it encoded."""
    with open(text.path, "rb") as f:
        data = f.read(MAX_SETTINGS_BYTES + 1)
    if len(data) > MAX_SETTINGS_BYTES:
        raise FastcapError(f"{text.path}: over {MAX_SETTINGS_BYTES >> 20} MB, "
                           "not read as a settings export")
    return data[text.bom:].decode(text.encoding, errors="replace")


def read_evidence(paths: Sequence[str | os.PathLike], *, year: int | None = None,
                  utc_offset_s: int | LogZone = 0, only: str | None = None) -> Evidence:
    """Reads every file: log files into conversations, settings exports into Settings.
    Never raises on content; an unreadable or unknown file is a warning.  `only` ("logs" or
    "settings") reads just that part, and tells only its files' warnings: the scan reads the
    small settings before the capture (they set the expected name) and the logs after it, so
    the two never take memory at once."""
    if only not in (None, "logs", "settings"):
        raise ValueError(f"only must be 'logs' or 'settings', not {only!r}")
    files: list[EvidenceFile] = []
    convs: list[LogConversation] = []
    store = SlimStore()  # what the join needs of each; the facts are read again on demand
    settings = Settings()
    warnings: list[str] = []
    seen: set[tuple[int, int]] = set()
    for p in paths:
        path = os.fspath(p)
        try:  # one file under two names (./a.log, a link) is read once, as a name given twice
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        except OSError:
            pass  # told below
        try:
            text = _Counted(path)
            kind = kind_of(text.head())
        except (FastcapError, OSError) as e:
            if only != "settings":  # told once, by the logs' reading
                warnings.append(str(e) if isinstance(e, FastcapError)
                                else f"{path}: cannot read: {e.strerror or e}")
            continue
        if (only == "settings" and kind in LOG_READERS) or (
                only == "logs" and kind is not None and kind not in LOG_READERS):
            continue
        if kind is None and only == "settings":
            continue  # told by the logs' reading
        if kind is None:
            warnings.append(f"{path}: not a log fastcap reads (not an Exchange protocol or "
                            "message tracking log, a message trace export, a syslog mail "
                            "log, or connector settings from ConvertTo-Json, Format-List or "
                            "Export-Clixml)"
                            f"{_unknown_hint(text)}")
            continue
        n_convs = 0
        try:
            if kind in LOG_READERS:
                for conv in LOG_READERS[kind].conversations(
                        text, text.warn, year=year, utc_offset_s=utc_offset_s):
                    convs.append(store.add(conv))
                    n_convs += 1
            else:
                reader = SETTINGS_READERS[kind].read_settings
                kw = ({"utc_offset_s": utc_offset_s}  # Format-List: local time, no zone
                      if "utc_offset_s" in inspect.signature(reader).parameters else {})
                got = reader(_settings_text(text), path, text.warn, **kw)
                settings = settings.merged(got)
        except FastcapError as e:
            text.warn(str(e))
        except OSError as e:
            text.warn(f"{path}: cannot read: {e.strerror or e}")
        warnings.extend(text.warnings)
        if text.warnings_dropped:
            warnings.append(f"{path}: {text.warnings_dropped} more warnings not shown "
                            f"(at most {MAX_WARNINGS} a file)")
        files.append(EvidenceFile(path, kind, text.encoding, text.last_line, n_convs))
    convs.sort(key=lambda c: (c.start_ns, c.file, c.first.line))
    return Evidence(tuple(files), tuple(convs), settings, tuple(warnings), year, utc_offset_s)
