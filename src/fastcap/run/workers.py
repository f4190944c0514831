"""Where a run's tasks execute: this process, a pool of local processes, or (in
`distributed`) a Dask cluster, all behind one protocol.  `map` serves plans and flow
dealing, where every task is known up front; `submit`/`get` serve the streamed reader,
which keeps only a few ranges in flight so memory stays small.

Results cross back pickled by the task itself, with the cyclic GC paused on both sides:
they are tens of thousands of small objects that all live on, so collections triggered by
their allocation find nothing to free and only walk the heap again and again.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from ..errors import FastcapError
from .executor import Executor as Executor
from .executor import Submitter as Submitter


@contextmanager
def _gc_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _run_dumped(job: tuple[Callable, Any]) -> bytes:
    """A task as a worker runs it: its result pickled there, while the GC is off."""
    fn, item = job
    with _gc_paused():
        return pickle.dumps(fn(item), protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> Any:
    with _gc_paused():
        return pickle.loads(data)


def _context() -> Any:
    """Workers start the way the program chose (`multiprocessing.set_start_method`), if it
    chose.  Otherwise they are forked where the platform allows, so they start with this
    process's imports instead of paying for them again, and spawned elsewhere.  A fork copies
    only the calling thread, and every lock as it is at that instant: a program that runs
    threads of its own (Python 3.12 and later warn of it) chooses "forkserver" or "spawn",
    whose workers start clean but import the program's main module again, so it needs the
    ``if __name__ == "__main__":`` guard."""
    chosen = multiprocessing.get_start_method(allow_none=True)
    if chosen is not None:
        return multiprocessing.get_context(chosen)
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


READER_NICENESS = 10  # how far workers feeding this process step back (see PoolExecutor)


def _worker_start(behind: bool) -> None:
    """A worker's first step.  Ctrl-C at a terminal reaches every process of the group: the
    main process stops the run (its tasks not started are dropped, the running ones end),
    so a worker ignores it, instead of printing its own KeyboardInterrupt traceback.
    `behind`, when this process consumes every result in turn: lower the worker's priority,
    so that on a machine with fewer cores than processes the scheduler gives the main
    process, which the whole run waits on, a core first.  Where the priority cannot be
    changed, nothing else changes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # born with it blocked: see _sigint_blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if behind:
        try:
            os.nice(READER_NICENESS)
        except (AttributeError, OSError):
            pass


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread while the pool may start workers (in `submit`): a
    worker inherits the mask, so a Ctrl-C that comes before its first step stays pending
    until that step has it ignored, instead of killing the worker with a traceback.  Here
    it is delivered when the mask is restored, so the run still stops."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class SerialExecutor:
    """Runs every task here, in order: the same run without the processes (what the tests
    use to split files at many points cheaply, and `-j 1` reading)."""

    local_first = False

    def map(self, fn: Callable, items: list) -> list:
        return [fn(x) for x in items]

    def submit(self, fn: Callable, item: Any) -> tuple[Callable, Any]:
        return fn, item  # run when asked for, so nothing is held ahead of its turn

    def get(self, handle: tuple[Callable, Any]) -> Any:
        fn, item = handle
        return fn(item)

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WorkerLost(FastcapError):
    """A worker process ended without giving its result: killed (the OOM killer, a user), or
    a signal such as SIGBUS, which a memory-mapped file cut short while it is read raises.
    The run cannot be completed; what was reported before stands."""

    def __init__(self) -> None:
        super().__init__("a worker process ended without its result (killed, or a signal "
                         "such as SIGBUS from a file cut short while it was read); what was "
                         "reported before this is complete, the rest of the run is not")


def _result(future: Future) -> Any:
    """A task's result; a lost worker is a WorkerLost, not a wait for ever."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerLost from None


class PoolExecutor:
    """`jobs` processes on this machine.  With `local_first` (for `map`), this process is
    one of them: the first task of every map runs here while `jobs - 1` workers take the
    rest.  Without it (the streamed reader, where this process judges), `jobs` workers
    take every task, at a lower priority than this process: its serial work bounds the run
    (measured on 2 cores with -j 2, the run took 6 % less time so).

    The workers are a `concurrent.futures` process pool, which tells when one dies (a
    `multiprocessing.Pool` starts another and leaves the lost task's caller waiting for
    ever): every task then fails with WorkerLost."""

    def __init__(self, jobs: int, *, local_first: bool = True) -> None:
        self.jobs = max(1, jobs)
        self.local_first = local_first
        workers = self.jobs - 1 if local_first else self.jobs
        self._pool = (ProcessPoolExecutor(workers, mp_context=_context(),
                                          initializer=_worker_start, initargs=(not local_first,))
                      if workers > 0 else None)

    def map(self, fn: Callable, items: list) -> list:
        if not items:
            return []
        if self._pool is None or len(items) == 1:
            return [fn(x) for x in items]
        rest = items if not self.local_first else items[1:]
        pending = [self.submit(fn, x) for x in rest]
        first = []
        if self.local_first:
            with _gc_paused():
                first = [fn(items[0])]
        return [*first, *(_loads(_result(f)) for f in pending)]

    def submit(self, fn: Callable, item: Any) -> Any:
        if self._pool is None:
            return fn, item
        try:
            with _sigint_blocked():
                return self._pool.submit(_run_dumped, (fn, item))
        except BrokenProcessPool:
            raise WorkerLost from None

    def get(self, handle: Any) -> Any:
        if self._pool is None:
            fn, item = handle
            return fn(item)
        return _loads(_result(handle))

    def close(self) -> None:
        """Tasks not started are dropped; those running finish (each is one byte range or
        one plan, so this is short) and the workers leave."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
