"""Dates of Exchange logs and PowerShell CSV exports, to UTC nanoseconds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from .logzone import LogZone, as_zone
from .records import in_ns_range

__all__ = ["ExportDates", "could_swap", "day_first_of", "orders_shown", "two_readings"]

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?"
                  r"\s*(Z|[+-]\d\d:?\d\d)?")
_SLASHED = re.compile(r"(\d{1,2})([/.])(\d{1,2})[/.](\d{4}),?\s+(\d{1,2}):(\d\d)"
                      r"(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?\s*([AaPp]\.?[Mm]\.?)?")
# year first with slashes: Export-Csv in ja-JP (2026/03/10 9:15:02) and zh-CN (2026/3/10)
_YEAR_FIRST = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2}),?\s+(\d{1,2}):(\d\d)"
                         r"(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?")
# year first with the day period before the hour: ko-KR (2026-03-10 오후 9:15:02), zh-TW
# (2026/3/10 下午 09:15:02), ja-JP set to 12 hours (2026/03/10 午後 9:15:02)
_PERIOD_FIRST = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2}),?\s+(\S+)\s*(\d{1,2}):(\d\d)"
                           r"(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?")
_PERIODS = {"\uc624\uc804": False, "\uc624\ud6c4": True,  # ko: 오전, 오후
            "\u4e0a\u5348": False, "\u4e0b\u5348": True,  # zh: 上午, 下午
            "\u5348\u524d": False, "\u5348\u5f8c": True,  # ja: 午前, 午後
            "AM": False, "PM": True}
_EPOCH_DAY = date(1970, 1, 1).toordinal()


class ExportDates:
    """Dates as Exchange logs and PowerShell exports write them, to UTC nanoseconds.

    ISO 8601 (with `Z`, an offset, or none), `M/D/YYYY h:mm:ss AM` (Export-Csv in en-US),
    `D/M/YYYY` when the day is over 12, `D.M.YYYY`, `YYYY/M/D` (ja-JP, zh-CN), and year first
    with the day period before the hour (ko-KR `2026-03-10 오후 9:15:02`, zh-TW `下午`).  One
    export is written in one culture, so the first slashed date that shows its order (a first
    number over 12: en-GB's day first; a second one: month first) fixes it for the dates after
    it; before, a date that could be either is read month first (`ambiguous`).  A date
    without a zone is local time in `utc_offset_s` (seconds east of UTC, default 0: UTC, as
    the message logs write) or a LogZone (an IANA zone: each date its own offset; a repeated
    local time is the reading nearer the previous date's).  The last day seen is remembered:
    most lines share it."""

    __slots__ = ("_day_key", "_day_s", "_zone", "day_first", "near_s", "offset_ns")

    def __init__(self, utc_offset_s: int | LogZone) -> None:
        zone = as_zone(utc_offset_s)
        self._zone = zone if zone.name is not None else None
        self.offset_ns = zone.offset_s * 1_000_000_000
        self.near_s = zone.near_s  # UTC seconds of the last date read
        self._day_key: tuple[int, int, int] | None = None
        self._day_s = 0
        self.day_first: bool | None = None  # the slashed dates' order, once a date shows it

    def _day(self, y: int, m: int, d: int) -> int:
        key = (y, m, d)
        if key != self._day_key:
            self._day_s = (date(y, m, d).toordinal() - _EPOCH_DAY) * 86400
            self._day_key = key
        return self._day_s

    def ns(self, text: str) -> tuple[int | None, bool]:
        """(ns, ambiguous): None when not a date; ambiguous when day and month could swap."""
        text = text.strip()
        try:
            if len(text) == 24 and text[23] == "Z" and text[10] == "T" and text[19] == ".":
                # yyyy-mm-ddThh:mm:ss.fffZ, every line of a tracking log
                secs = self._day(int(text[:4]), int(text[5:7]), int(text[8:10]))
                return self._finish(secs, int(text[11:13]), int(text[14:16]),
                                    int(text[17:19]), text[20:23], "Z"), False
            m = _ISO.fullmatch(text)
            if m:
                y, mo, d, hh, mi, ss, frac, zone = m.groups()
                secs = self._day(int(y), int(mo), int(d))
                return self._finish(secs, int(hh), int(mi), int(ss or 0), frac, zone), False
            m = _SLASHED.fullmatch(text)
            if m:
                return self._slashed(m)
            m = _YEAR_FIRST.fullmatch(text)
            if m:
                y, mo, d, hh, mi, ss, frac = m.groups()
                secs = self._day(int(y), int(mo), int(d))
                return self._finish(secs, int(hh), int(mi), int(ss or 0), frac, None), False
            m = _PERIOD_FIRST.fullmatch(text)
            if m and (after_noon := _PERIODS.get(m[5].upper())) is not None:
                y, _, mo, d, _, hh, mi, ss, frac = m.groups()
                hour = int(hh)
                if not 1 <= hour <= 12:
                    return None, False
                secs = self._day(int(y), int(mo), int(d))
                hour = hour % 12 + (12 if after_noon else 0)
                return self._finish(secs, hour, int(mi), int(ss or 0), frac, None), False
        except ValueError:
            pass
        return None, False

    def _slashed(self, m: re.Match[str]) -> tuple[int | None, bool]:
        a, sep, b, y, hh, mi, ss, frac, ampm = m.groups()
        first, second, hour = int(a), int(b), int(hh)
        ambiguous = False
        if sep == "/" and self.day_first is None and (first > 12) != (second > 12):
            self.day_first = first > 12  # this export's order, shown by this date
        if sep == "." or first > 12 or (self.day_first and second <= 12):
            day, month = first, second  # 10.03.2026 (de), 13/03/2026 (en-GB): day first
        else:  # M/D/YYYY as Export-Csv writes in en-US; unsure when both are <= 12
            month, day = first, second
            ambiguous = (not ampm and second <= 12 and first != second
                         and self.day_first is None)
        if ampm:
            if not 1 <= hour <= 12:
                return None, False
            hour = hour % 12 + (12 if ampm[0] in "Pp" else 0)
        secs = self._day(int(y), month, day)
        return self._finish(secs, hour, int(mi), int(ss or 0), frac, None), ambiguous

    def _finish(self, day_s: int, hh: int, mi: int, ss: int, frac: str | None,
                zone: str | None) -> int | None:
        if hh > 23 or mi > 59 or ss > 60:
            return None
        ns = (day_s + hh * 3600 + mi * 60 + ss) * 1_000_000_000
        if frac:
            ns += int(frac.ljust(9, "0"))
        if zone is None and self._zone is not None:
            local_s = day_s + hh * 3600 + mi * 60 + ss
            utc_s = self._zone.to_utc_s(local_s, self.near_s)
            self.near_s = utc_s
            return in_ns_range(ns + (utc_s - local_s) * 1_000_000_000)
        if zone is None:
            return in_ns_range(ns - self.offset_ns)
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000_000
        return in_ns_range(ns)


def _slashed_pair(text: str) -> tuple[int, int] | None:
    m = _SLASHED.fullmatch(text.strip())
    return (int(m[1]), int(m[3])) if m is not None and m[2] == "/" else None


def orders_shown(texts: Iterable[str]) -> set[bool]:
    """The orders (True: day first) the slashed dates among `texts` show, each by one
    number over 12."""
    shown: set[bool] = set()
    for text in texts:
        pair = _slashed_pair(text)
        if pair is not None and (pair[0] > 12) != (pair[1] > 12):
            shown.add(pair[0] > 12)
    return shown


def day_first_of(texts: Iterable[str]) -> bool | None:
    """Whether the slashed dates among `texts`, printed in one culture, put the day first:
    shown by any of them with one number over 12; None when none shows it, or two show
    different orders (two cultures: none is trusted)."""
    shown = orders_shown(texts)
    return shown.pop() if len(shown) == 1 else None


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def two_readings(text: str) -> tuple[str, str] | None:
    """The day a slashed date is read as month first, and day first ("4 March 2026",
    "3 April 2026" for 03/04/2026), for a warning that names both; None when not one."""
    m = _SLASHED.fullmatch(text.strip())
    if m is None or m[2] != "/":
        return None
    a, b, y = int(m[1]), int(m[3]), m[4]
    if not (1 <= a <= 12 and 1 <= b <= 12):
        return None
    return f"{b} {_MONTHS[a - 1]} {y}", f"{a} {_MONTHS[b - 1]} {y}"


def could_swap(text: str, day_first: bool | None) -> bool:
    """Whether `text` is a slashed date that reads as two different days (6/12 or 12/6) and
    the order of its culture is not known: en-US writes month first, en-SG day first, both
    with AM/PM, so nothing in the date itself tells."""
    pair = _slashed_pair(text)
    return (pair is not None and day_first is None and pair[0] != pair[1]
            and pair[0] <= 12 and pair[1] <= 12)
