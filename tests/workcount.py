"""Bounds on the work a call does, counted rather than timed: a hang guard that holds on a
loaded machine as on an idle one, and fails on a quadratic or looping change at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fastcap

SRC = str(Path(fastcap.__file__).resolve().parent)


class OverBudget(BaseException):
    """Raised inside the counted code as soon as the count passes its bound, so a looping
    change fails in a moment instead of running for minutes.  Not an Exception: code that
    catches those (a parser turning errors into findings) must not swallow it and loop on."""


class Tally:
    """A running count against a bound."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.count = limit, what, 0

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.count > self.limit:
            raise OverBudget(f"{self.what}: more than {self.limit}")


@contextmanager
def python_calls(limit: int, under: str = SRC) -> Iterator[Tally]:
    """Count the Python function calls made in the source files under `under` (fastcap's
    own by default), in every thread, and fail once they pass `limit`."""
    tally = Tally(limit, f"Python calls in {under}")
    own: dict[object, bool] = {}

    def hook(frame, event, _arg):
        if event == "call":
            code = frame.f_code
            mine = own.get(code)
            if mine is None:
                mine = own[code] = code.co_filename.startswith(under)
            if mine:
                tally.add()

    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        yield tally
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    assert tally.count <= limit, f"{tally.what}: {tally.count} > {limit}"


@contextmanager
def python_lines(limit: int, under: str = SRC) -> Iterator[Tally]:
    """Count the Python lines run in the source files under `under` (fastcap's own by
    default), in this thread, and fail once they pass `limit`: a loop in pure Python that
    makes no call (a byte walked at a time) shows here, not in python_calls."""
    tally = Tally(limit, f"Python lines in {under}")
    own: dict[object, bool] = {}

    def line(_frame, event, _arg):
        if event == "line":
            tally.add()
        return line

    def call(frame, _event, _arg):
        code = frame.f_code
        mine = own.get(code)
        if mine is None:
            mine = own[code] = code.co_filename.startswith(under)
        return line if mine else None

    sys.settrace(call)
    try:
        yield tally
    finally:
        sys.settrace(None)
    assert tally.count <= limit, f"{tally.what}: {tally.count} > {limit}"


def metered(monkeypatch, owner: object, name: str, tally: Tally,
            size: Callable[..., int] = lambda *a, **k: 1) -> None:
    """Replace `owner.name` by a wrapper that adds size(*args, **kwargs) to `tally` per call."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        tally.add(size(*args, **kwargs))
        return inner(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
