"""Syslog line headers: when (UTC nanoseconds), which host, which program and pid.

Mail logs come in several header formats, often from one site: RFC 3164 (`Mar 10 09:31:17
relay1 postfix/smtp[2214]: ...`, local time without a year or zone), RFC 5424 (`<22>1
2026-03-10T09:31:17.412+00:00 relay1 postfix/smtp 2214 - - ...`), rsyslog's
RSYSLOG_FileFormat (an RFC 3339 stamp, then a 3164-style tag) and journalctl's short-iso and
short-iso-precise (`2026-03-10T10:31:17+0100`, newer systemd `+01:00`).  rsyslog's own RFC
5424 template (RSYSLOG_SyslogProtocol23Format) writes two spaces before the message; both
belong to the header.  A line is matched by one precompiled pattern per format (the last that
worked is tried first) and its time is built from slices, with the date-to-seconds step done
once per minute of log, since this runs on every line of gigabyte logs.

RFC 3164 stamps need a year and a zone: the year is `year` if given (the year of the file's
first line; it moves on when the month falls back, December to January), else that of the
file's modification time (a date more than a day after it is from the year before); the zone
is `utc_offset_s` (local time minus UTC; default 0, UTC), or a `LogZone` naming an IANA zone,
whose offset each time takes as it was then (see `logzone` for the repeated and skipped hour).
RFC 3339 stamps carry their own zone; one without a zone is taken as local time in that zone
as well."""

from __future__ import annotations

import datetime as _dt
import re
from typing import NamedTuple

from .logzone import LogZone, as_zone
from .records import in_ns_range

__all__ = ["SyslogHeader", "SyslogParser", "parse_header"]

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_FRAC_SCALE = tuple(10 ** (9 - n) for n in range(10))  # digits after the point -> ns factor

# The tag of RFC 3164 and of the file formats: "prog[pid]: " (pid and tag both optional).
_TAG = r"(?:(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: ?)?"
_R3164 = re.compile(
    r"(?:<\d{1,3}>)?(?P<key>(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hm>\d\d:\d\d)):"
    r"(?P<sec>\d\d)"
    r"(?P<frac>\.\d{1,9})? (?P<host>\S+) " + _TAG)
_RISO = re.compile(
    r"(?P<key>\d{4}-\d\d-\d\d[T ]\d\d:\d\d):(?P<sec>\d\d)(?P<frac>[.,]\d{1,9})?"
    r"(?P<tz>Z|[+-]\d\d:?\d\d)? (?P<host>\S+) " + _TAG)
_R5424 = re.compile(
    r"<\d{1,3}>1 (?P<key>\d{4}-\d\d-\d\dT\d\d:\d\d):(?P<sec>\d\d)(?P<frac>\.\d{1,9})?"
    r"(?P<tz>Z|[+-]\d\d:\d\d) (?P<host>\S+) (?P<prog>\S+) (?P<pid>\S+) \S+ "
    r"(?:-|(?:\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\])+)(?: [\ufeff ]?|$)")
_ISO, _RFC5424, _RFC3164 = 0, 1, 2
_FORMATS = ((_ISO, _RISO), (_RFC5424, _R5424), (_RFC3164, _R3164))


class SyslogHeader(NamedTuple):
    """One line's header; `program` is "" when the line has no tag."""

    time_ns: int
    host: str
    program: str
    pid: int | None
    message: str


class SyslogParser:
    """Reads headers of one file's lines, remembering what the next line likely needs (its
    format, the minute it starts in, the RFC 3164 year).  Not shared between files."""

    __slots__ = ("_fmt", "_iso_key", "_iso_base", "_key", "_base", "_tz", "_offset",
                 "_logzone", "_named", "_near", "_local_key", "_local_base", "_year", "_month",
                 "_mtime_s")

    def __init__(self, *, year: int | None = None, utc_offset_s: int | LogZone = 0,
                 mtime_ns: int | None = None) -> None:
        self._fmt = _FORMATS
        self._iso_key = ""
        self._iso_base = 0
        self._key = ""
        self._base = 0
        self._tz: dict[str, int] = {"Z": 0}
        self._logzone = zone = as_zone(utc_offset_s)
        self._offset = zone.offset_s
        self._named = zone.name is not None  # then each minute has its own offset
        self._near = zone.near_s  # the last line's UTC seconds (for a repeated hour)
        self._local_key = ""
        self._local_base = 0
        self._year = year
        self._month = 0
        if year is None and mtime_ns is None:
            mtime_ns = _dt.datetime.now(_dt.UTC).timestamp() * 1e9
        self._mtime_s = None if mtime_ns is None else int(mtime_ns // 1_000_000_000)

    def match(self, text: str) -> tuple[int, re.Match[str]] | None:
        """(format, match) of the header, or None when the line is not syslog."""
        fmts = self._fmt
        for kind, rx in fmts:
            m = rx.match(text)
            if m is not None:
                if kind != fmts[0][0]:  # this file's format: try it first from now on
                    self._fmt = ((kind, rx), *(f for f in fmts if f[0] != kind))
                return kind, m
        return None

    def time_ns(self, kind: int, m: re.Match[str]) -> int:
        """UTC nanoseconds of a matched header; ValueError naming the flaw if the date is
        not a real one (Feb 29 of a common year, month 13, ...)."""
        key, sec = m.group("key", "sec")
        if kind == _RFC3164:
            if key != self._key:
                self._base = self._minute_3164(m["mon"], int(m["day"]), m["hm"])
                self._key = key
            secs = self._base
        else:
            if key != self._iso_key:
                self._iso_base = _minute(int(key[:4]), int(key[5:7]), int(key[8:10]),
                                         int(key[11:13]), int(key[14:16]))
                self._iso_key = key
            tz = m["tz"]
            if tz is None and self._named:
                if key != self._local_key:
                    self._local_base = self._logzone.to_utc_s(self._iso_base, self._near)
                    self._local_key = key
                secs = self._local_base
            elif tz is None:
                secs = self._iso_base - self._offset
            else:
                zone = self._tz.get(tz)
                secs = self._iso_base - (self._zone(tz) if zone is None else zone)
        if sec > "60":
            raise ValueError(f"no such time {key[-5:]}:{sec}")
        secs += int(sec)
        self._near = secs
        frac = m["frac"]
        ns = secs * 1_000_000_000
        if frac:
            ns += int(frac[1:]) * _FRAC_SCALE[len(frac) - 1]
        if in_ns_range(ns) is None:
            raise ValueError("a date outside 1677-2262, those a capture can carry")
        return ns

    def parse(self, text: str) -> SyslogHeader | None:
        """The header of one line, None when it is not a syslog line; ValueError for a
        syslog line whose date is impossible."""
        found = self.match(text)
        if found is None:
            return None
        kind, m = found
        prog, pid = m.group("prog", "pid")
        if pid is not None and not (pid.isascii() and pid.isdigit()):  # isdigit takes "²"
            pid = None
        return SyslogHeader(self.time_ns(kind, m), m["host"],
                            "" if prog is None or prog == "-" else prog,
                            None if pid is None else int(pid), text[m.end():])

    def _zone(self, tz: str) -> int:
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        if hh > 23 or mm > 59:
            raise ValueError(f"no such zone offset {tz}")
        self._tz[tz] = value = sign * (hh * 3600 + mm * 60)
        return value

    def _minute_3164(self, mon: str, day: int, hm: str) -> int:
        month = _MONTHS.get(mon)
        if month is None:
            raise ValueError(f"no such month {mon!r}")
        hh, mi = int(hm[:2]), int(hm[3:5])
        if self._year is not None:
            year = self._year
            if not self._month:
                self._month = month
            elif month < self._month - 6:  # December to January: the next year
                self._year = year = year + 1
                self._month = month
            elif month > self._month + 6:  # a late line from December after January
                year -= 1
            else:
                self._month = month
            return self._utc(_minute(year, month, day, hh, mi))
        assert self._mtime_s is not None  # the file's year is that of its local time
        year = self._logzone.local_year(self._mtime_s)
        try:
            base = self._utc(_minute(year, month, day, hh, mi))
        except ValueError:  # Feb 29 of a common year: from an earlier (leap) year
            base = None
        if base is None or base > self._mtime_s + 86400:
            base = self._utc(_minute(year - 1, month, day, hh, mi))
        return base

    def _utc(self, local_s: int) -> int:
        """UTC seconds of a local minute, in the zone (a repeated time: nearer the last
        line)."""
        if self._named:
            return self._logzone.to_utc_s(local_s, self._near)
        return local_s - self._offset


def _minute(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Seconds from the epoch to the start of that minute (as if UTC); ValueError if there
    is no such date or time."""
    if hour > 23 or minute > 59:
        raise ValueError(f"no such time {hour:02}:{minute:02}")
    try:
        days = _dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except (ValueError, OverflowError):  # OverflowError: a year past C's int
        raise ValueError(f"no such date {year:04}-{month:02}-{day:02}") from None
    return days * 86400 + hour * 3600 + minute * 60


def parse_header(text: str, *, year: int | None = None, utc_offset_s: int | LogZone = 0,
                 mtime_ns: int | None = None) -> SyslogHeader | None:
    """One line's header, for a single line (a reader of many lines keeps a SyslogParser)."""
    return SyslogParser(year=year, utc_offset_s=utc_offset_s, mtime_ns=mtime_ns).parse(text)
