"""Timestamps of chosen frames, for lining a session's packets up with log lines by time.

Sessions keep frame numbers, not times (a timestamp per segment would cost every scan for
what only `follow --evidence` needs), so the times are read again here: one walk of the
capture up to the last frame asked for."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from .frames import F_NO_TS
from .stream import open_capture

__all__ = ["frame_times"]


def frame_times(path: str | os.PathLike, frames: Iterable[int], *,
                backend: str = "auto",
                then: Sequence[str | os.PathLike] = ()) -> dict[int, int]:
    """frame number -> capture timestamp (ns since the epoch) for each of `frames` the file
    has with a time (a Simple Packet Block's frame has none: it dates nothing); the walk
    stops after the highest one.  `then`: the ring-buffer files a session goes
    on into, whose frames are numbered on from the last one of the file before (as
    ``mergecap -a`` numbers them, and as the session's frames are)."""
    wanted = np.unique(np.fromiter((int(f) for f in frames), dtype=np.int64))
    out: dict[int, int] = {}
    if wanted.size == 0:
        return out
    last = int(wanted[-1])
    before = 0  # frames of the files already walked
    for each in (path, *then):
        seen = before
        with open_capture(each, backend=backend) as cap:
            for win in cap.windows():
                numbers = win.frame_no + before
                hit = np.isin(numbers, wanted) & ((win.flags & F_NO_TS) == 0)
                for f, t in zip(numbers[hit].tolist(), win.ts_ns[hit].tolist(), strict=True):
                    out[f] = t
                if len(numbers):
                    seen = int(numbers[-1])
                    if seen >= last:
                        return out
        before = seen
    return out
