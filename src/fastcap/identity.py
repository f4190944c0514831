"""A key that compares the object it wraps by identity, for memoising work on frozen facts
that have no hash of their own (they hold lists) or whose equality would cost more than the
work: the same object recurs from session to session."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ByIdentity(Generic[T]):
    """Hashes and compares as `obj`'s identity.  A cache holding the key keeps `obj` alive,
    so its id cannot be reused by another object while the entry lives."""

    __slots__ = ("obj",)

    def __init__(self, obj: T) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and self.obj is other.obj
