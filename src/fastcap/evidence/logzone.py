"""The zone of log times written without one (RFC 3164 syslog, a cmdlet export's local
Timestamp): a fixed offset, or an IANA zone whose offset moves with daylight saving time.

A fixed offset reads a log that spans a DST change an hour off for part of it; with a zone
name each time gets the offset in force at that local time.  Two local times need a rule:

* a time the clocks went back over (the repeated hour in autumn) happened twice: it is read
  the first time round, unless that puts it more than STEP_BACK_S before the previous line
  (the log's clock has stepped back: the second time round), so a log in time order passes
  from the first reading to the second where its clock goes back; with no previous line, the
  first.  Lines a few minutes out of order stay in their pass;
* a time the clocks skipped (the lost hour in spring) never happened: it is read with the
  offset before the change (zoneinfo's fold=0), so 02:30 in a 02:00 to 03:00 gap is the
  instant 03:30 names after it."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["STEP_BACK_S", "LogZone", "as_zone"]

STEP_BACK_S = 300  # how far before the previous line a repeated time may be and stay first
_EPOCH = datetime(1970, 1, 1)
_AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LogZone:
    """A fixed offset (`offset_s`, local minus UTC) when `name` is None, else the IANA zone
    `name` (`offset_s` unused).  `near_s`, for a part of a log read again, is the UTC second
    its first line was read at, so that a repeated time there is read as it was then."""

    offset_s: int = 0
    name: str | None = None
    near_s: int | None = None

    @classmethod
    def named(cls, name: str) -> LogZone:
        """The IANA zone `name`; ValueError if the zone database has no such zone."""
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"no time zone {name!r} in the zone database") from None
        return cls(0, name, None)

    def offsets(self, local_s: int) -> tuple[int, int]:
        """(first, second) offsets of the wall-clock time `local_s` (seconds from 1970 as if
        UTC): equal unless the time is repeated (first > second) or skipped (first <
        second)."""
        if self.name is None:
            return self.offset_s, self.offset_s
        zone = zoneinfo.ZoneInfo(self.name)  # cached by zoneinfo
        wall = _EPOCH + timedelta(seconds=local_s)
        return (int(wall.replace(tzinfo=zone).utcoffset().total_seconds()),
                int(wall.replace(tzinfo=zone, fold=1).utcoffset().total_seconds()))

    def to_utc_s(self, local_s: int, near_s: int | None = None) -> int:
        """UTC seconds of wall-clock `local_s`; `near_s` (UTC seconds of the previous line)
        picks between the two readings of a repeated time (see the module docstring)."""
        if self.name is None:
            return local_s - self.offset_s
        first, second = self.offsets(local_s)
        if first > second and near_s is not None and local_s - first < near_s - STEP_BACK_S:
            return local_s - second
        return local_s - first

    def local_year(self, utc_s: int) -> int:
        """The year at UTC seconds `utc_s` in this zone."""
        when = _AWARE_EPOCH + timedelta(seconds=utc_s)
        if self.name is None:
            return (when + timedelta(seconds=self.offset_s)).year
        return when.astimezone(zoneinfo.ZoneInfo(self.name)).year


def as_zone(zone: int | LogZone) -> LogZone:
    """A LogZone from what the readers are given: seconds east of UTC, or a LogZone."""
    return zone if isinstance(zone, LogZone) else LogZone(int(zone))
