"""Which frames of the capture each session's TCP connection holds, as runs: what the
report needs to answer `frame N` for a bare ACK or a data segment, not only for the frames
its ladder names.

A session keeps its first and last frame, not every frame (a list per session would cost
every scan for what only the report asks), so the report walks the capture again with the
scan's own selection (ports, tunnels, fragments: `iter_selected`) and sorts the selected
frames inside each session's span to the session of their endpoints, with the ICMP errors
that quote a connection, which tshark puts in its `tcp.stream` too.  Where no other
connection's frame falls inside a session's span its frames are one run and cost nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from ..read.stream import open_capture
from ..select.flows import FlowTable
from ..select.selection import iter_selected
from ..session import Session, endpoint_text

__all__ = ["frame_runs"]


def _owners(sessions: Sequence[Session]) -> dict[frozenset[str], list[int]]:
    """Endpoint pair -> the indexes of the sessions between them, by first frame."""
    out: dict[frozenset[str], list[int]] = {}
    for i, s in enumerate(sessions):
        out.setdefault(frozenset((s.client, s.server)), []).append(i)
    for ids in out.values():
        ids.sort(key=lambda i: sessions[i].first_frame)
    return out


def _runs(frames: np.ndarray, first: int, last: int) -> list[int] | None:
    """A session's own frames in [first, last] as alternating run lengths, own frames first
    (own, others, own, ..., own); [] when they are the whole span (one run), None when the
    walk did not find its first and last frame (its frames are not known)."""
    if not len(frames) or frames[0] != first or frames[-1] != last:
        return None
    if len(frames) == last - first + 1:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(frames) - 1]))
    out: list[int] = []
    prev_end = None
    for a, b in zip(frames[starts].tolist(), frames[ends].tolist(), strict=True):
        if prev_end is not None:
            out.append(a - prev_end - 1)
        out.append(b - a + 1)
        prev_end = b
    return out


def frame_runs(path: str | os.PathLike, sessions: Sequence[Session], ports: Iterable[int], *,
               backend: str = "auto",
               then: Sequence[str | os.PathLike] = ()) -> list[list[int] | None]:
    """Per session of `path` (in order), its connection's frames within its first and last
    frame as `_runs` gives them (None: not found); frames are Wireshark's numbers (those of
    `then`, the ring-buffer files a session goes on into, numbered on from the file before's
    last).  The walk stops after the last session's last frame."""
    out: list[list[int] | None] = [None] * len(sessions)
    if not sessions:
        return out
    ports = frozenset(ports)
    pairs = _owners(sessions)
    first = np.array([s.first_frame for s in sessions], np.int64)
    last = np.array([s.last_frame for s in sessions], np.int64)
    end = int(last.max())
    got: list[list[np.ndarray]] = [[] for _ in sessions]
    flows = FlowTable()
    by_flow: list[list[int]] = []  # flow id -> the sessions of its endpoints
    before = seen = 0

    def share(frame_no: np.ndarray, flow: np.ndarray) -> None:
        while len(by_flow) < len(flows.keys):
            k = flows.keys[len(by_flow)]
            by_flow.append(pairs.get(frozenset((endpoint_text(k.a_addr, k.a_port),
                                                endpoint_text(k.b_addr, k.b_port))), []))
        _share(frame_no + before, flow, by_flow, first, last, got)

    for each in (path, *then):
        with open_capture(each, backend=backend) as cap:
            for sel in iter_selected(cap, ports, flows=flows, quoted=share):
                numbers = sel.frame_no + before
                share(sel.frame_no, sel.flow)
                if len(sel.frame_no):
                    seen = max(seen, int(numbers.max()))
                if seen >= end:
                    break
        if seen >= end:
            break
        before += _frames_in(each, backend)
    for i, parts in enumerate(got):
        frames = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        out[i] = _runs(frames, int(first[i]), int(last[i]))
    return out


def _share(numbers: np.ndarray, flow: np.ndarray, by_flow: list[list[int]],
           first: np.ndarray, last: np.ndarray, got: list[list[np.ndarray]]) -> None:
    """Hand a batch's frame numbers to the sessions whose endpoints and span they fall in:
    one sort of the batch by flow and frame, then a binary search per session of each
    flow, so a batch of many connections costs its length's logarithm per frame, not its
    flow count."""
    order = np.lexsort((numbers, flow))
    flows = flow[order]
    frames = numbers[order]  # ascending within each flow (fragment rows may come late)
    cuts = np.flatnonzero(np.diff(flows)) + 1
    for a, b in zip(np.concatenate(([0], cuts)).tolist(),
                    np.concatenate((cuts, [len(flows)])).tolist(), strict=True):
        fid = int(flows[a])
        mine = by_flow[fid] if fid >= 0 else ()  # -1: an IP fragment, in no connection
        if not mine:
            continue
        fr = frames[a:b]
        for i in mine:
            lo, hi = np.searchsorted(fr, (first[i], last[i] + 1))
            if hi > lo:
                got[i].append(fr[lo:hi])


def _frames_in(path: str | os.PathLike, backend: str) -> int:
    """How many frames a file holds (a ring-buffer file none of whose frames was selected)."""
    n = 0
    with open_capture(path, backend=backend) as cap:
        for win in cap.windows():
            if len(win.frame_no):
                n = int(win.frame_no[-1])
    return n
