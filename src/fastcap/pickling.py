"""Cheaper pickling for the frozen, slotted dataclasses a Session is made of.

`-j N` copies judged sessions from worker processes back to the parent.  The pickling that
`dataclass(slots=True)` provides calls `dataclasses.fields()` and `object.__setattr__` for
every field of every object, which made the copy of a session cost a third of judging it.
A class marked `compact` pickles as (class, field values) and is rebuilt through its slot
descriptors: the same object, at half the cost.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def _rebuild(cls: type, values: tuple) -> Any:
    obj = object.__new__(cls)
    for store, value in zip(cls.__compact_setters__, values, strict=True):
        store(obj, value)
    return obj


def compact(cls: type[T]) -> type[T]:
    """Class decorator (below ``@dataclass(frozen=True, slots=True)``): pickle as field
    values.  Only for classes without ``__post_init__``, whose fields are their whole state."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: compact needs a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: compact would skip __post_init__")
    names = tuple(f.name for f in dataclasses.fields(cls))
    cls.__compact_setters__ = tuple(vars(cls)[n].__set__ for n in names)

    def __reduce__(self: Any) -> tuple:
        return _rebuild, (type(self), tuple([getattr(self, n) for n in names]))

    cls.__reduce__ = __reduce__
    return cls


def maker(cls: type[T]) -> Any:
    """A function building a `compact` class from all its field values (positional or by
    name, no defaults) through its slot descriptors, as `_rebuild` does: a frozen dataclass's
    ``__init__`` stores each field with ``object.__setattr__``, which costs twice as much, and
    the records of a session are built by the dozen.  The same object as the class makes."""
    if not hasattr(cls, "__compact_setters__"):
        raise TypeError(f"{cls.__name__}: maker needs a compact class")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update((f"_set{i}", s) for i, s in enumerate(cls.__compact_setters__))
    body = "".join(f"    _set{i}(obj, {n})\n" for i, n in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", scope)
    make = scope["make"]
    make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
    make.__doc__ = f"{cls.__name__}(...) through its slot descriptors."
    return make
