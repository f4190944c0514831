"""A read-only mapping of counts, shared by every frozen record that hands counts back: the
reader's `CaptureMeta` first, then a scan's `ScanSummary`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Counts(Mapping[str, int]):
    """Counts by reason or code, read-only: a `Counter`'s numbers handed back in a frozen
    record (equal to a dict of the same counts; a missing key is a KeyError).  Kept in the
    order first counted, which the summary table keeps among equal counts."""

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        self._counts = dict(counts)

    def __getitem__(self, key: str) -> int:
        return self._counts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __hash__(self) -> int:
        return hash(frozenset(self._counts.items()))

    def __repr__(self) -> str:
        return f"Counts({self._counts!r})"

    def __reduce__(self) -> tuple:
        return Counts, (tuple(self._counts.items()),)


NONE = Counts()
