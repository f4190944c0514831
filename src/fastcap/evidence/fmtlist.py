"""Connector and certificate settings from `Format-List` text (`Get-InboundConnector | fl`),
the form admins paste into support tickets most often.

PowerShell's list view writes each property as its name, padded to the object's longest name,
then " : " and the value's text; a value wider than the console continues on the next lines,
indented to where the value began (cut at a space in en, fr, de, it, pt and es cultures, the
space kept at the line's end, a word only when wider than the column; cut where the line is
full in others, counting console cells: a CJK character takes two), and each line of a value
of several lines the same way (an empty one as the column's spaces, which copies strip).
Objects are separated by blank lines: a blank line followed by properties the object does not
have yet, padded to its width, is a value's empty line (a Comment ending in a line break), not
an object's end.  A collection is written `{a, b}` (`{}` when empty) and cut after
`$FormatEnumerationLimit` items (4 unless set) with "..." before the brace; dates are in the
culture of the machine that printed them.

What cannot be read back soundly is refused, never guessed: a collection fastcap uses that was
cut short, a line that is neither a property nor a continuation, a property twice in one object
(two objects run together) - one warning naming the line, and no settings from the file.  A
date is read where its day is certain (see `_read_dates`); one that could be read two ways
is not read - the listing's own dates are the only sign of its culture, and 03/04/2026 is 3
April in en-GB and most cultures but 4 March in the invariant one (pwsh with no locale), so a
guess could misjudge expiry by months - and one warning names it with both readings.  The
prompt lines of a console paste (`PS C:\\> Get-InboundConnector | fl`) end an object like a
blank line."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .logdates import ExportDates, could_swap, orders_shown, two_readings
from .logzone import LogZone
from .powershell import KNOWN_PROPERTIES, settings_from
from .settings import Settings

__all__ = ["looks_like", "read_settings"]

Warn = Callable[[str], None]

_PROPERTY = re.compile(r"([A-Za-z][A-Za-z0-9]*) *:(?: (.*)|)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # PowerShell 7 colours the names on a console
# the prompt and command a paste from a console starts with: "PS C:\> Get-InboundConnector |
# fl", or the Exchange Management Shell's "[PS] C:\Windows\system32>..."
_PROMPT = re.compile(r"(?:\[PS\]|PS) [^>]*>")
# Collections fastcap reads: one cut short by $FormatEnumerationLimit cannot be judged.
_USED_LISTS = frozenset({"senderipaddresses", "senderdomains", "certificatedomains",
                         "smarthosts"})
_DATES = frozenset({"notafter", "notbefore"})
_FORMS = "ISO 8601, M/D/YYYY, D/M/YYYY, D.M.YYYY, YYYY/M/D, YYYY-MM-DD tt h:mm:ss"
# a date year first with a month or day of one digit, as zh-CN prints it (2026/3/6 15:04:05);
# ja-JP's 2026/03/06 is also en-ZA's, a culture that wraps at spaces
_YEAR_SLASH = re.compile(r"(?<![\d/])\d{4}/(?:\d/\d{1,2}|\d\d/\d)(?![\d/]) \d{1,2}:\d\d")
_HOW = "set $FormatEnumerationLimit = -1 first, or export with ConvertTo-Json -Depth 4"
# one object read: its first line, its values by lower-case name, and each property's name as
# printed and the line it starts on
_Object = tuple[int, dict[str, Any], dict[str, tuple[str, int]]]


class Refused(ValueError):
    """Format-List text that cannot be read back soundly; its message names the line."""


def looks_like(head: str) -> bool:
    """Format-List text: most of its first lines are "Name : value" (or continuations), and
    one of them names a connector or certificate property fastcap reads."""
    lines = [s for s in (_ANSI.sub("", s) for s in head.lstrip("\ufeff").splitlines()[:60])
             if s.strip() and not _PROMPT.match(s)]
    if len(lines) < 2:
        return False
    props = [m.group(1).lower() for s in lines if (m := _PROPERTY.match(s))]
    indented = sum(1 for s in lines if s[:1].isspace())
    return (len(props) >= 2 and (len(props) + indented) * 10 >= len(lines) * 9
            and any(p in KNOWN_PROPERTIES for p in props))


def read_settings(text: str, path: str, warn: Warn, *,
                  utc_offset_s: int | LogZone = 0) -> Settings:
    """Every inbound connector, send connector and Exchange certificate in `text`; each
    object's `Where.line` is the line it starts on.  Ambiguous text is one warning and no
    settings.  Dates are the printing machine's local time, in `utc_offset_s`."""
    try:
        objects = _objects(text.lstrip("\ufeff").splitlines())
    except Refused as e:
        warn(f"{path} {e}")
        return Settings()
    _read_dates(objects, path, warn, utc_offset_s)
    return settings_from([(line, obj) for line, obj, _ in objects], path, warn, unit="line")


def _read_dates(objects: list[_Object], path: str, warn: Warn,
                utc_offset_s: int | LogZone) -> None:
    """NotBefore and NotAfter as UTC ns where their text says one day for certain: the
    culture's order of day and month comes from the date itself (13/09, 09/13, 06.12, ISO,
    2026/12/06) or from another slashed date in the file (one Format-List prints in one
    culture).  A date that could be read two ways, or is in no form read, is None and named
    in one warning: its property, its line, and the two days it could be."""
    values = [v for _, obj, _ in objects for v in obj.values() if isinstance(v, str)]
    shown = orders_shown(values)
    order = next(iter(shown)) if len(shown) == 1 else None  # fixed for the file
    dates = ExportDates(utc_offset_s)
    dates.day_first = order
    unread: list[tuple[int, str, str]] = []  # (object's line, the date, what it is)
    swaps = False
    for first, obj, lines in objects:
        for key in [k for k in obj if k in _DATES]:  # in the listing's order
            value = obj[key]
            if not isinstance(value, str):
                continue
            obj[key] = None  # present, even when not read: no "has no NotAfter" warning
            if not value:
                continue
            said = f"{lines[key][0]} {value!r} (line {lines[key][1]})"
            if could_swap(value, order):
                swaps = True
                unread.append((first, value, f"{said} is "
                               + " or ".join(two_readings(value) or ())))
                continue
            ns, _ = dates.ns(value)
            if ns is None:
                unread.append((first, value, f"{said} is in no form read ({_FORMS})"))
            else:  # as ConvertTo-Json writes it, in UTC: read as every export's dates are
                obj[key] = _iso_utc(ns)
    if unread:
        _warn_unread(unread, path, warn, swaps, two=bool(shown))


def _warn_unread(unread: list[tuple[int, str, str]], path: str, warn: Warn, swaps: bool, *,
                 two: bool) -> None:
    """One warning for the dates not read: each with its property, line and the days it could
    be, and why neither is taken where one could be read two ways."""
    said = "; ".join(why for _, _, why in unread[:6])
    if swaps:
        said += (" - day and month could be either way round, month first as en-US and the "
                 "invariant culture (pwsh with no locale set) print them or day first as "
                 "en-GB, en-SG, fr-FR and most others do, and "
                 + ("the listing's dates show both orders (two cultures)" if two
                    else "no date in the listing has a day over 12 to show which"))
    warn(f"{path} line {unread[0][0]}: {len(unread)} date(s) such as {unread[0][1]!r} not "
         f"read, not guessed (certificate expiry is not judged): {said}; export with "
         "ConvertTo-Json -Depth 4")


def _iso_utc(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()
    return f"{when}.{frac:09d}Z"


# one property as printed: the line it starts on, its name, the text of each of its lines
_Printed = tuple[int, str, list[str]]


def _objects(lines: list[str]) -> list[_Object]:
    """Each object's first line, its properties by lower-case name, and where each is."""
    lines = [_ANSI.sub("", raw) for raw in lines]
    # the console's width in cells, where some line fills it (a prompt line is the console's
    # own)
    width = max((_cells(s.rstrip()) for s in lines if not _PROMPT.match(s)), default=0)
    out: list[dict[str, _Printed]] = []
    cuts: list[_Cut] = []
    obj: dict[str, _Printed] = {}
    key: str | None = None
    column = colon = 0
    blanks = 0  # blank lines since the last line read: an object's end, or a value's lines
    for number, line in enumerate(lines, 1):
        prompt = _PROMPT.match(line) is not None
        if not line.strip() and not prompt:
            blanks += 1
            continue
        m = None if prompt else _PROPERTY.match(line)
        if obj and (prompt or (blanks and m is not None
                               and _next_object(lines, number - 1, obj, colon))):
            out.append(obj)
            obj, key = {}, None
        if prompt:
            blanks = 0
            continue
        if m is not None:
            if key is not None and blanks:
                obj[key][2].append("\n" * blanks)  # the value's last lines were empty
            blanks = 0
            key = m.group(1).lower()
            if key in obj:
                raise Refused(f"line {number}: {m.group(1)} a second time in one object (a "
                              "blank line between objects lost?); not read as Format-List "
                              "output")
            obj[key] = (number, m.group(1), [m.group(2) or ""])
            column = len(line) - len(m.group(2) or "")
            colon = line.index(":", m.end(1))
            continue
        if key is None or len(line) - len(line.lstrip(" ")) < column:
            raise Refused(f"line {number}: neither \"Name : value\" nor a value continued "
                          "under its column; not read as Format-List output")
        pieces = obj[key][2]
        if blanks:  # empty lines of a value of several lines, written as the column's spaces
            pieces.append("\n" * (blanks + 1))
            blanks = 0
        elif not pieces[-1].endswith(" "):
            cuts.append(_cut(pieces, line[column:], _cells(lines[number - 2].rstrip()),
                             width - column))
        pieces.append(line[column:])
    if obj:
        out.append(obj)
    _put_back_spaces(cuts, width, east_asian=_east_asian(lines))
    return [(min(p[0] for p in o.values()), _values(o), {k: (p[1], p[0]) for k, p in o.items()})
            for o in out]


def _wide(c: int) -> bool:
    """PowerShell's DisplayCells table (after Markus Kuhn's wcwidth): the East Asian wide and
    fullwidth ranges of the Basic Multilingual Plane."""
    return c >= 0x1100 and (c <= 0x115F or c in (0x2329, 0x232A)
                            or (0x2E80 <= c <= 0xA4CF and c != 0x303F)
                            or 0xAC00 <= c <= 0xD7A3 or 0xF900 <= c <= 0xFAFF
                            or 0xFE10 <= c <= 0xFE19 or 0xFE30 <= c <= 0xFE6F
                            or 0xFF00 <= c <= 0xFF60 or 0xFFE0 <= c <= 0xFFE6)


def _cells(text: str) -> int:
    """Console cells PowerShell wraps `text` by: two for a wide character, and two for one
    beyond the BMP (it counts each UTF-16 half as one)."""
    if text.isascii():
        return len(text)
    return sum(2 if ord(ch) > 0xFFFF or _wide(ord(ch)) else 1 for ch in text)


# a value's line cut without a space at its end: its pieces, the piece's index, the line's
# cells, the cells of the character after the cut, and the value's column in cells
_Cut = tuple[list[str], int, int, int, int]


def _cut(pieces: list[str], after: str, width: int, field: int) -> _Cut:
    return pieces, len(pieces) - 1, width, _cells(after[:1]) or 1, field


def _fits(pieces: list[str], i: int, field: int) -> bool:
    """Whether the word across the cut after `pieces[i]`, with the space after it, would fit
    on a line of its own.  That space is on the next line, or stripped from its end when more
    of the value follows (a line break ends a word with no space)."""
    after = pieces[i + 1]
    word = _cells(pieces[i].rsplit(" ", 1)[-1]) + _cells(after.split(" ", 1)[0])
    spaced = " " in after or (i + 2 < len(pieces) and not pieces[i + 2].startswith("\n"))
    return word + spaced <= field


def _east_asian(lines: list[str]) -> bool:
    """Whether the listing shows a culture that cuts anywhere: text in wide characters (ja,
    zh, ko), or a date written year first as zh-CN prints it."""
    return any((not s.isascii() and any(_wide(ord(ch)) for ch in s))
               or _YEAR_SLASH.search(s) is not None for s in lines)


def _put_back_spaces(cuts: list[_Cut], width: int, *, east_asian: bool) -> None:
    """The space after each cut a copy stripped from the line's end.  The cultures that wrap
    at spaces (en, fr, de, it, pt, es) cut a word only when it and its space are wider than
    the column, on a full line; the others cut every line where it is full.  A line is full
    when the next character would not fit in the console's width (the widest line, when some
    line fills it), counted in cells: a wide character takes two, so a line one cell short is
    full when one comes next (or the copy stripped a space that filled it: the two cannot be
    told apart, and the first is read).  So a line not full lost a space; so did a full one
    where the word across it would fit on a line - unless every cut is on a full line (or
    one a stripped space short of it) and one of them splits such a word, as only cutting
    anywhere does: shown by two cuts or more, or by one in a listing of an East Asian culture
    (alone, the widest line might have been cut at a space on a wider console)."""
    fits = [_fits(pieces, i, field) for pieces, i, _, _, field in cuts]
    anywhere = ((len(cuts) > 1 or east_asian)
                and all(w + 1 + nxt > width for _, _, w, nxt, _ in cuts)
                and any(w + nxt > width and f
                        for (_, _, w, nxt, _), f in zip(cuts, fits, strict=True)))
    for (pieces, i, w, nxt, _), f in zip(cuts, fits, strict=True):
        if w + nxt <= width or (f and not anywhere):
            pieces[i] += " "


def _next_object(lines: list[str], at: int, obj: dict[str, _Printed], colon: int) -> bool:
    """Whether the properties from `lines[at]` on, after blank lines, are another object's:
    one of them is already in `obj`, or their names are padded to another width.  Otherwise
    the blank lines were the empty last lines of a value (a Comment ending in a line
    break): PowerShell separates objects by blank lines too."""
    for line in lines[at:]:
        if not line.strip() or _PROMPT.match(line):
            return False
        m = _PROPERTY.match(line)
        if m is not None and (m.group(1).lower() in obj
                              or line.index(":", m.end(1)) != colon):
            return True
    return False


def _values(obj: dict[str, _Printed]) -> dict[str, Any]:
    """Each property's text joined; a collection `{a, b}` as its items."""
    out: dict[str, Any] = {}
    for key, (line, name, pieces) in obj.items():
        text = "".join(pieces).strip()
        if not (text.startswith("{") and text.endswith("}")):
            out[key] = text
            continue
        inner = text[1:-1].strip()
        if inner.endswith(("...", "\u2026")):
            if key in _USED_LISTS:
                raise Refused(f"line {line}: {name} is cut short (\"...\" after "
                              f"$FormatEnumerationLimit items); not read: {_HOW}")
            continue
        out[key] = [item.strip() for item in inner.split(",") if item.strip()]
    return out
