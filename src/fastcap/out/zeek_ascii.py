"""Zeek's ASCII (TSV) log format: the header lines and how each value is written.

Written to match Zeek's own ASCII writer with its default settings (tab separator, ","
between set and vector items, "(empty)" for an empty string or container, "-" for an unset
field, valid UTF-8 passed through), so tools built for Zeek's logs read fastcap's unchanged.
Values are bytes: what a packet carried is written back as those bytes, escaped where Zeek
escapes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

SEPARATOR = b"\t"
SET_SEPARATOR = b","
EMPTY = b"(empty)"
UNSET = b"-"

# Code points Zeek escapes although they are valid UTF-8: controls (C0, DEL, C1), the
# private use area and the specials block.
_BAD_CODE_POINTS = re.compile("[\x00-\x1f\x7f-\x9f\ue000-\uf8ff\ufff0-\uffff]")
_PLAIN_ASCII = re.compile(rb"[\x20-\x7e]*")
_SPECIAL = re.compile(rb"[\\\t]")
_SPECIAL_IN_CONTAINER = re.compile(rb"[\\\t,]")


def _hex(byte: int) -> bytes:
    return b"\\x%02x" % byte


def _escape_run(run: bytes) -> bytes:
    """One stretch between separators and backslashes, as Zeek's UTF-8 escaping does it:
    kept whole when it is valid UTF-8 without controls, else every byte outside printable
    ASCII written as \\xHH."""
    if _PLAIN_ASCII.fullmatch(run):
        return run
    try:
        ok = not _BAD_CODE_POINTS.search(run.decode("utf-8"))
    except UnicodeDecodeError:
        ok = False
    if ok:
        return run
    return b"".join(bytes((b,)) if 0x20 <= b < 0x7F else _hex(b) for b in run)


def escape(data: bytes, in_container: bool = False) -> bytes:
    """A string value as Zeek writes it: the separator (and, inside a set or vector, the set
    separator) as \\xHH, a backslash doubled, controls and invalid UTF-8 as \\xHH, "" as
    (empty), and a value that would read as "-" or "(empty)" with its first byte escaped."""
    if not data:
        return EMPTY
    head = b""
    if data in (UNSET, EMPTY):
        head, data = _hex(data[0]), data[1:]
    special = _SPECIAL_IN_CONTAINER if in_container else _SPECIAL
    out = [head]
    at = 0
    for m in special.finditer(data):
        out.append(_escape_run(data[at:m.start()]))
        out.append(b"\\\\" if m.group() == b"\\" else _hex(m.group()[0]))
        at = m.end()
    out.append(_escape_run(data[at:]))
    return b"".join(out)


def text_bytes(text: str) -> bytes:
    """A string fastcap read from packets, back to the bytes it came from where it can."""
    return text.encode("utf-8", "surrogateescape")


def zeek_time(ns: int) -> bytes:
    """Seconds since the epoch with six decimals (Zeek's `time`), from nanoseconds cut to
    microseconds, as libpcap hands Zeek a nanosecond capture's times (123456789 ns:
    .123456); before 1970 (a pcapng `if_tsoffset` can put times there) negative, the sign
    then the magnitude, as printf's %.6f writes it."""
    us = abs(ns) // 1000
    return b"%s%d.%06d" % (b"-" if ns < 0 else b"", *divmod(us, 1_000_000))


def _scalar(value: object, ztype: str, in_container: bool) -> bytes:
    if ztype == "string":
        raw = value if isinstance(value, bytes) else text_bytes(str(value))
        return escape(raw, in_container)
    if ztype == "bool":
        return b"T" if value else b"F"
    if ztype == "time":
        return zeek_time(int(value))  # type: ignore[call-overload]
    if ztype in ("count", "port", "int"):
        return b"%d" % int(value)  # type: ignore[call-overload]
    if ztype == "addr":
        return str(value).encode("ascii")
    raise ValueError(f"no Zeek writer for type {ztype}")


def value_bytes(value: object, ztype: str) -> bytes:
    """One field: None is unset; a set or vector is its items joined by the set separator
    ("(empty)" when it has none)."""
    if value is None:
        return UNSET
    if ztype.startswith(("set[", "vector[")):
        inner = ztype[ztype.index("[") + 1:-1]
        items = list(value)  # type: ignore[call-overload]
        if not items:
            return EMPTY
        return SET_SEPARATOR.join(_scalar(v, inner, True) for v in items)
    return _scalar(value, ztype, False)


def row_bytes(values: Sequence[object], types: Sequence[str]) -> bytes:
    """One log line (with its newline); a line that would start like a header line gets its
    first byte escaped, as Zeek does."""
    line = SEPARATOR.join(value_bytes(v, t) for v, t in zip(values, types, strict=True))
    if line.startswith(b"#"):
        line = _hex(line[0]) + line[1:]
    return line + b"\n"


def stamp(t: float | None = None) -> bytes:
    """The #open / #close time: local wall-clock time, as Zeek writes it."""
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(t)).encode("ascii")


def header_bytes(path: str, fields: Iterable[str], types: Iterable[str],
                 opened: float | None = None) -> bytes:
    """The header lines of a log: separators, markers, path, open time, fields and types."""
    return b"".join([
        b"#separator \\x09\n",
        b"#set_separator\t" + SET_SEPARATOR + b"\n",
        b"#empty_field\t" + EMPTY + b"\n",
        b"#unset_field\t" + UNSET + b"\n",
        b"#path\t" + path.encode("ascii") + b"\n",
        b"#open\t" + stamp(opened) + b"\n",
        b"#fields\t" + "\t".join(fields).encode("ascii") + b"\n",
        b"#types\t" + "\t".join(types).encode("ascii") + b"\n",
    ])


def close_bytes(closed: float | None = None) -> bytes:
    return b"#close\t" + stamp(closed) + b"\n"
