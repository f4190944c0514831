"""What the join needs of each log conversation, for a few dozen bytes each.

A gigabyte log holds a few hundred thousand conversations.  As objects, even stripped of
their facts, they cost some 600 bytes each (the object, two `Where`s, a dozen ints), which
with the scan's own memory passes the 256 MB bound.  Here each conversation is one row of
typed arrays, and `SlimConversation` is a two-slot view of a row that reads like a
`LogConversation` without facts: its endpoints, times and where, and the empty defaults for
the rest (`Evidence.materialize` reads those again from the file)."""

from __future__ import annotations

from array import array
from dataclasses import fields

from .records import LogConversation, Where

__all__ = ["SlimConversation", "SlimStore"]

_DEFAULTS = {f.name: f.default for f in fields(LogConversation)}
_ROLES = ("client", "server")


class SlimStore:
    """The rows: numbers in typed arrays, repeated strings (kinds, files, addresses) once."""

    def __init__(self) -> None:
        self.ints = {name: array("q") for name in (
            "first_line", "first_offset", "last_line", "last_offset", "start_ns", "end_ns")}
        self.ports = {name: array("l") for name in ("local_port", "remote_port")}
        self.refs = {name: array("l") for name in ("kind", "file", "local_ip", "remote_ip")}
        self.role = array("b")
        self.starttls = array("b")
        self._strings: list[str | None] = []
        self._index: dict[str | None, int] = {}

    def _ref(self, text: str | None) -> int:
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self._strings)
            self._strings.append(text)
        return i

    def add(self, c: LogConversation) -> SlimConversation:
        i = len(self.role)
        for name, col in (("first_line", c.first.line), ("first_offset", c.first.offset),
                          ("last_line", c.last.line), ("last_offset", c.last.offset),
                          ("start_ns", c.start_ns), ("end_ns", c.end_ns)):
            self.ints[name].append(col)
        self.ports["local_port"].append(-1 if c.local_port is None else c.local_port)
        self.ports["remote_port"].append(-1 if c.remote_port is None else c.remote_port)
        for name in ("kind", "file", "local_ip", "remote_ip"):
            self.refs[name].append(self._ref(getattr(c, name)))
        self.role.append(_ROLES.index(c.host_role) if c.host_role in _ROLES else 0)
        self.starttls.append(bool(c.starttls))
        return SlimConversation(self, i)

    def string(self, name: str, i: int) -> str | None:
        return self._strings[self.refs[name][i]]


class SlimConversation:
    """One row of a SlimStore, read as a LogConversation whose facts are left out."""

    __slots__ = ("_i", "_s")
    slim = True

    def __init__(self, store: SlimStore, i: int) -> None:
        self._s, self._i = store, i

    @property
    def kind(self) -> str:
        return self._s.string("kind", self._i)  # type: ignore[return-value]

    @property
    def file(self) -> str:
        return self._s.string("file", self._i)  # type: ignore[return-value]

    @property
    def first(self) -> Where:
        s, i = self._s, self._i
        return Where(self.file, s.ints["first_line"][i], s.ints["first_offset"][i])

    @property
    def last(self) -> Where:
        s, i = self._s, self._i
        return Where(self.file, s.ints["last_line"][i], s.ints["last_offset"][i])

    @property
    def start_ns(self) -> int:
        return self._s.ints["start_ns"][self._i]

    @property
    def end_ns(self) -> int:
        return self._s.ints["end_ns"][self._i]

    @property
    def host_role(self) -> str:
        return _ROLES[self._s.role[self._i]]

    @property
    def local_ip(self) -> str | None:
        return self._s.string("local_ip", self._i)

    @property
    def remote_ip(self) -> str | None:
        return self._s.string("remote_ip", self._i)

    @property
    def local_port(self) -> int | None:
        p = self._s.ports["local_port"][self._i]
        return None if p < 0 else p

    @property
    def remote_port(self) -> int | None:
        p = self._s.ports["remote_port"][self._i]
        return None if p < 0 else p

    @property
    def starttls(self) -> bool:
        return bool(self._s.starttls[self._i])

    def __getattr__(self, name: str):
        """The facts left out: their empty defaults."""
        if name in _DEFAULTS:
            return _DEFAULTS[name]
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SlimConversation):
            return self._s is other._s and self._i == other._i
        return NotImplemented

    def __hash__(self) -> int:
        return hash((id(self._s), self._i))

    def __repr__(self) -> str:
        return f"SlimConversation({self.first}, {self.kind}, start_ns={self.start_ns})"

    def rejection(self) -> None:
        return None

    def to_dict(self) -> dict:
        return LogConversation(self.kind, self.file, self.first, self.last, self.start_ns,
                               self.end_ns, self.host_role, self.local_ip, self.local_port,
                               self.remote_ip, self.remote_port, starttls=self.starttls,
                               slim=True).to_dict()
