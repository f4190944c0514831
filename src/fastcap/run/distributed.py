"""Scans on an existing Dask cluster (`pip install 'fastcap[dask]'`).

The per-range and per-flow tasks of `fastcap.run.split` run as Dask tasks; the client only
plans, stitches and merges, so results equal a local scan.  Workers open the capture files
themselves: the paths must name the same files on every worker (shared storage mounted at
the same place).  That is checked first, and a path a worker cannot see is reported with
that worker's address instead of failing deep inside a task.  A compressed file cannot be
split, and its payloads must outlive its walk to join it to a ring's files beside it: among
several files, the client reads it (as a local scan's main process does), and a run holding
it is reassembled there.  A pipe, a compressed file given alone, and one the client cannot
open are scanned whole by one task, and not joined.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..errors import FastcapError
from ..judge.crosssession import CrossSession
from ..options import ScanOptions, resolve
from ..session import Session
from .scanner import ScanSummary, link_counted
from .scanner import iter_scan_files as local_scan_files
from .scanner import scan as local_scan


class DaskExecutor:
    """The run engine's executor protocol (`workers.Executor`) as Dask tasks on `client`'s
    cluster: `map` gathers results in order, `submit`/`get` keep tasks in flight."""

    local_first = False

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, fn: Callable, items: list) -> list:
        if not items:
            return []
        return self.client.gather(self.client.map(fn, items, pure=False))

    def submit(self, fn: Callable, item: Any) -> Any:
        return self.client.submit(fn, item, pure=False)

    def get(self, handle: Any) -> Any:
        return handle.result()

    def close(self) -> None:
        pass  # the cluster belongs to the caller

    @property
    def workers(self) -> int:
        """Worker threads in the cluster: how many tasks run at once."""
        return max(1, sum(self.client.nthreads().values()))


@dataclass(frozen=True, slots=True)
class FileScan:
    """One file's result: its sessions in number order and its summary, or why it failed."""

    path: str
    sessions: tuple[Session, ...] = ()
    summary: ScanSummary | None = None
    error: str | None = None


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.isfile(p) and p != "-"]


def unseen_paths(client: Any, paths: Iterable[str]) -> dict[str, str]:
    """{path: address of a worker that cannot see it} for every path some worker lacks."""
    paths = [os.fsdecode(p) for p in paths]
    out: dict[str, str] = {}
    for worker, missing in sorted(client.run(_missing, paths).items()):
        for p in missing:
            out.setdefault(p, worker)
    return out


def _needs_stream(path: str) -> bool:
    from ..read.stream import needs_stream

    return needs_stream(path)


def _here(path: str) -> bool:
    """A compressed file this process can read: read here, its payloads kept here, it is
    joined to the files beside it as a local scan joins a ring's members."""
    from ..read.stream import is_compressed_file

    return is_compressed_file(path)


def _whole_file(job: tuple[str, Any]) -> tuple[list[Session], ScanSummary, str | None]:
    from ..judge.judging import analyzer_for

    path, o = job
    found = local_scan(path, replace(o, jobs=1), analyzer=analyzer_for(o),
                       cross=CrossSession(enabled=False))  # linked by the client, in order
    try:
        return list(found), found.summary, None
    except FastcapError as e:
        return [], found.summary, str(e)


def scan_files(paths: Iterable[str | os.PathLike], client: Any,
               options: ScanOptions | None = None, **kw: Any) -> Iterator[FileScan]:
    """Scan each file on the cluster of `client` (a `dask.distributed.Client`), in order,
    with `options` (a ScanOptions) or the keywords of `scanner.scan` that build one.

    Each file is split into `parts` byte ranges (default: the cluster's worker threads);
    files that continue one another are joined as `scanner.scan_files` joins them.  A file
    that fails (not visible to a worker, not a capture) yields a FileScan with its `error`;
    the others go on.  The options are checked at the call, before the cluster is asked.
    """
    return _scan_files([os.fsdecode(p) for p in paths], client,
                       resolve(options, kw, "scan_files"))


def _scan_files(paths: list[str], client: Any, options: ScanOptions) -> Iterator[FileScan]:
    ex = DaskExecutor(client)
    unseen = unseen_paths(client, paths)
    seen = [p for p in paths if p not in unseen]
    streamed = dict(zip(seen, ex.map(_needs_stream, seen), strict=True))
    if len(paths) > 1:  # a compressed file this process can read is read here, joined
        streamed.update((p, False) for p in seen if streamed[p] and _here(p))
    mapped = [p for p in seen if not streamed[p]]
    mapped_set = set(mapped)
    whole = [p for p in seen if streamed[p]]
    done: dict[int, FileScan] = {}
    cross = CrossSession()  # links sessions across all files, in the order given
    on_cluster = replace(options, jobs=ex.workers, parts=options.parts or ex.workers)
    # Files the cluster reads whole, or cannot see, lie between: those on either side of
    # one are no one run.
    after_gap = [i > 0 and paths[i - 1] not in mapped_set
                 for i, p in enumerate(paths) if p in mapped_set]
    split = iter(local_scan_files(mapped, on_cluster, executor=ex, cross=cross,
                                  apart={m for m, gap in enumerate(after_gap) if gap})
                 if mapped else [])
    alone = iter(ex.map(_whole_file, [(p, options) for p in whole]))
    for i, path in enumerate(paths):
        if path in unseen:
            done[i] = FileScan(path, error=f"{path}: not visible to Dask worker {unseen[path]}: "
                                           f"workers open capture files themselves, so put "
                                           f"them on storage every worker mounts at the same "
                                           f"path")
        elif streamed[path]:
            found, summary, error = next(alone)
            linked, summary = link_counted(cross, found, summary, path)
            done[i] = FileScan(path, linked, summary, error)
        else:
            r = next(split)
            done[i] = FileScan(path, tuple(r.sessions), r.summary, r.error)
        yield done.pop(i)


def scan(paths: Iterable[str | os.PathLike] | str | os.PathLike, client: Any,
         options: ScanOptions | None = None, **kw: Any) -> list[FileScan]:
    """`scan_files` for one path or many, as a list."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return list(scan_files(paths, client, options, **kw))
