"""A log file as numbered text lines, streamed read-only in bounded memory.

Windows writes logs and PowerShell exports in UTF-16 as often as in UTF-8, and a log may mix
in bytes of another encoding; each reader sees plain `str` lines whatever the file held, and
the byte offset of each, so a conversation's lines can be read again later (`follow`)."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import FastcapError

__all__ = ["MAX_LINE", "MAX_WARNINGS", "LogText", "TextLine"]

MAX_LINE = 64 << 10  # characters kept of one line; longer ones are cut (and warned about)
MAX_WARNINGS = 20  # per file; the rest are counted
_CHUNK = 1 << 20

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


class TextLine(NamedTuple):
    """One line of a log.  A named tuple rather than a frozen dataclass: a gigabyte log has
    millions of lines, and building a tuple costs a fifth of a frozen dataclass."""

    number: int  # 1-based
    offset: int  # byte offset of the line's start in the file
    text: str  # without its line ending, and without any CR before it (a CRLF log converted
    # to CRLF again ends its lines in CR CR LF)


def _sniff(first: bytes) -> tuple[str, int]:
    """(encoding, bytes of BOM) from the file's first bytes."""
    for bom, name in _BOMS:
        if first.startswith(bom):
            return name, len(bom)
    sample = first[:256]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):  # UTF-16 text without a BOM
        odd_nuls = sample[1::2].count(0)
        even_nuls = sample[0::2].count(0)
        return ("utf-16-le" if odd_nuls >= even_nuls else "utf-16-be"), 0
    return "utf-8", 0


class LogText:
    """One log file, opened read-only.  The encoding comes from its BOM (UTF-8, UTF-16LE/BE),
    else from NUL bytes (UTF-16 without BOM), else UTF-8 with undecodable bytes replaced
    (told once, naming the first such line).  Warnings are one line each, naming the file and
    line, at most MAX_WARNINGS per file (the rest counted in `warnings_dropped`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        try:
            mode = os.stat(self.path).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
                # a pipe (`<(...)`) or FIFO gives its bytes once, and a second open of a FIFO
                # waits for a writer that never comes: a log is read again by offset
                raise FastcapError(f"{self.path}: not a regular file (a pipe or a device?): "
                                   "logs are read more than once, give a file")
            with open(self.path, "rb") as f:
                self.size = os.fstat(f.fileno()).st_size
                first = f.read(4096)
        except OSError as e:
            raise FastcapError(f"{self.path}: cannot read: {e.strerror or e}") from None
        self.encoding, self.bom = _sniff(first)
        self.warnings: list[str] = []
        self.warnings_dropped = 0
        self._told_replaced = False

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        else:
            self.warnings_dropped += 1

    def head(self, limit: int = 8192) -> str:
        """The first `limit` bytes decoded (what format detection looks at)."""
        with open(self.path, "rb") as f:
            data = f.read(limit + self.bom)[self.bom:]
        if self.encoding.startswith("utf-16"):
            data = data[: len(data) & ~1]
        return data.decode(self.encoding, errors="replace")

    def lines(self, start: int = 0, end: int | None = None) -> Iterator[TextLine]:
        """Every line from the start of the file (numbered from 1)."""
        return self.lines_from(start, 1, end) if start == 0 else self.lines_from(start, 0, end)

    def lines_from(self, start: int, first_number: int,
                   end: int | None = None) -> Iterator[TextLine]:
        """Lines from byte offset `start` (a line start) up to and including the one that
        starts at `end`, numbered from `first_number`."""
        start = max(start, self.bom)
        if self.encoding == "utf-8":
            return self._utf8(start, first_number, end)
        return self._utf16(start, first_number, end)

    def _line(self, number: int, offset: int, raw: bytes) -> TextLine:
        if raw.endswith(b"\r"):
            raw = raw.rstrip(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            if not self._told_replaced:
                self._told_replaced = True
                self.warn(f"{self.path} line {number}: bytes that are not UTF-8, shown replaced")
        return self._cut(number, offset, text)

    def _cut(self, number: int, offset: int, text: str) -> TextLine:
        if len(text) > MAX_LINE:
            self.warn(f"{self.path} line {number}: a line over {MAX_LINE} characters, "
                      "read only its beginning")
            text = text[:MAX_LINE]
        return TextLine(number, offset, text)

    def _utf8(self, start: int, number: int, end: int | None) -> Iterator[TextLine]:
        """Whole chunks at a time: an ASCII chunk (nearly every chunk of a log) is decoded
        and split as one string, where character and byte counts agree."""
        with open(self.path, "rb") as f:
            f.seek(start)
            offset, rest, dropped = start, b"", 0  # dropped: bytes of the open line not kept
            while chunk := f.read(_CHUNK):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                block, rest = data[:cut], data[cut:]
                if block:
                    if block.isascii() and not dropped:
                        parts = block.decode("ascii").split("\n")
                        parts.pop()
                        for text in parts:
                            if end is not None and offset > end:
                                return
                            size = len(text) + 1
                            if text[-1:] == "\r":
                                text = text.rstrip("\r")
                            yield (TextLine(number, offset, text) if len(text) <= MAX_LINE
                                   else self._cut(number, offset, text))
                            offset += size
                            number += 1
                    else:
                        raws = block.split(b"\n")
                        raws.pop()
                        for raw in raws:
                            if end is not None and offset > end:
                                return
                            yield self._line(number, offset, raw)
                            offset += len(raw) + dropped + 1
                            number, dropped = number + 1, 0
                if len(rest) > 4 * MAX_LINE:  # a huge line: keep its head, count the rest
                    dropped += len(rest) - 4 * MAX_LINE
                    rest = rest[: 4 * MAX_LINE]
            if (rest or dropped) and (end is None or offset <= end):
                yield self._line(number, offset, rest)

    def _utf16(self, start: int, number: int, end: int | None) -> Iterator[TextLine]:
        width = 2
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        with open(self.path, "rb") as f:
            f.seek(start)
            offset, rest = start, ""
            while True:
                chunk = f.read(_CHUNK)
                final = not chunk
                text = rest + decoder.decode(chunk, final=final)
                parts = text.split("\n")
                rest = "" if final else parts.pop()
                for line in parts if not final or parts[-1] else parts[:-1]:
                    if end is not None and offset > end:
                        return
                    nbytes = len(line.encode(self.encoding, errors="surrogatepass")) + width
                    yield self._cut(number, offset, line.rstrip("\r"))
                    offset += nbytes
                    number += 1
                if final:
                    return
