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


class Ahead:
    """``fn(*args)`` started now on a thread; :meth:`result` waits for it."""

    __slots__ = ("_thread", "_value", "_error")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name="fastcap-walk-ahead")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def wait(self) -> None:
        """Until the call has returned (the buffers it writes are then the caller's again)."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class Slot:
    """The one walk ahead a walk may have pending: each walk (one ``windows()`` generator) has
    its own, so two walks of one capture never take each other's windows."""

    __slots__ = ("_call",)

    def __init__(self) -> None:
        self._call: Ahead | None = None

    @property
    def pending(self) -> bool:
        return self._call is not None

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        self._call = Ahead(fn, *args)

    def result(self) -> Any:
        call, self._call = self._call, None
        assert call is not None
        return call.result()

    def settle(self) -> None:
        """Wait for a pending call, dropping its result (the walk is being closed)."""
        call, self._call = self._call, None
        if call is not None:
            call.wait()
