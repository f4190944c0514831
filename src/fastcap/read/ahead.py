"""One walker call run on a thread of its own while the caller works on the window before.

The C walker releases the GIL, so on a machine with a spare core the walk of the next window
costs the caller nothing but the wait for whatever part of it is not done yet: the frame walk
and the header screen that follows it overlap instead of taking turns.  Only the C call itself
runs on the thread; everything that decides what to read next stays with the caller, so
warnings, resynchronisation and counters happen in the same order as without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Slot:
    """The one walk ahead a walk may have pending: ``fn(*args)`` on a thread of its own.  Each
    walk (one ``windows()`` generator) has its own, so two walks of one capture never take
    each other's windows."""

    __slots__ = ("_thread", "_value", "_error")

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def pending(self) -> bool:
        return self._thread is not None

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name="fastcap-walk-ahead")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> Any:
        """The call's result, once it has returned (its buffers are the caller's again)."""
        self.settle()
        value, error = self._value, self._error
        self._value = self._error = None
        if error is not None:
            raise error
        return value

    def settle(self) -> None:
        """Wait for a pending call (the walk is being closed: its result is not wanted)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
