"""What a run needs from whatever executes its tasks, apart from the executors themselves
(`workers`): a function's type hints name it without loading multiprocessing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Executor(Protocol):
    """What a run needs from an executor.  `local_first`: the first task of a `map` runs
    in this process (its results need no copying, so it may be dealt more work)."""

    local_first: bool

    def map(self, fn: Callable, items: list) -> list: ...


class Submitter(Protocol):
    """An executor the streamed reader can keep a few tasks in flight on."""

    def submit(self, fn: Callable, item: Any) -> Any: ...

    def get(self, handle: Any) -> Any: ...

    def close(self) -> None: ...
