"""Cheaper pickling for the frozen, slotted dataclasses a Session is made of.

Judged sessions cross process boundaries when an executor's tasks judge them (a Dask cluster,
`run.split`).  The pickling that `dataclass(slots=True)` provides calls `dataclasses.fields()`
and `object.__setattr__` for every field of every object, which made the copy of a session
cost a third of judging it.  A class marked `compact` pickles as its own builder (`maker`)
and its field values, read by one C attribute getter; unpickling a record is one call of
straight-line code storing each value through its slot descriptor.  The same object.
"""

from __future__ import annotations

import dataclasses
import threading
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

_MAKE = "__compact_make__"  # the class attribute holding its builder, where pickle finds it


class _Builder:
    """A compact class's builder before it is first needed: compiling it costs ~0.1 ms, and
    most runs pickle nothing, so it is made (and put in this attribute's place) on first
    use, by pickling or unpickling alike.  Once, under a lock: threads pickling at once
    must all name the one function the class holds, or pickle refuses it."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.lock = threading.Lock()

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return maker(self.cls)


def compact(cls: type[T]) -> type[T]:
    """Class decorator (written above ``@dataclass(frozen=True, slots=True)``): pickle as
    the class's builder and field values.  Only for classes without ``__post_init__``, whose
    fields are their whole state."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: compact needs a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: compact would skip __post_init__")
    names = tuple(f.name for f in dataclasses.fields(cls))
    cls.__compact_setters__ = tuple(vars(cls)[n].__set__ for n in names)
    setattr(cls, _MAKE, _Builder(cls))
    if len(names) == 1:
        get = attrgetter(names[0])

        def __reduce__(self: Any) -> tuple:
            return cls.__compact_make__, (get(self),)
    else:
        values = attrgetter(*names) if names else (lambda _: ())

        def __reduce__(self: Any) -> tuple:
            return cls.__compact_make__, values(self)

    cls.__reduce__ = __reduce__
    return cls


def maker(cls: type[T]) -> Any:
    """A function building a `compact` class from all its field values (positional or by
    name, no defaults) through its slot descriptors: a frozen dataclass's ``__init__``
    stores each field with ``object.__setattr__``, which costs twice as much, and the
    records of a session are built by the dozen.  The same object as the class makes.
    One per class, which is also what its pickles name."""
    if "__compact_setters__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: maker needs a compact class")
    made = vars(cls)[_MAKE]  # compact put a _Builder there
    if isinstance(made, staticmethod):
        return made.__func__
    with made.lock:
        made = vars(cls)[_MAKE]
        if isinstance(made, staticmethod):  # another thread made it meanwhile
            return made.__func__
        return _build(cls)


def _build(cls: type) -> Any:
    """Compile the builder and put it in the class, where pickle looks for it."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update((f"_set{i}", s) for i, s in enumerate(cls.__compact_setters__))
    body = "".join(f"    _set{i}(obj, {n})\n" for i, n in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", scope)
    make = scope["make"]
    # pickle names a function by module and qualified name, and checks it finds this one
    make.__name__ = _MAKE
    make.__module__ = cls.__module__
    make.__qualname__ = f"{cls.__qualname__}.{_MAKE}"
    make.__doc__ = f"{cls.__name__}(...) through its slot descriptors."
    setattr(cls, _MAKE, staticmethod(make))
    return make
