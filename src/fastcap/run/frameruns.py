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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..read.capture import DEFAULT_WINDOW
from ..read.stream import open_capture
from ..select.flows import FlowTable
from ..select.selection import iter_selected
from ..session import Session, endpoint_text

__all__ = ["FrameRuns", "frame_runs"]

_SPAN_BITS = 32  # a frame's place in its session's span, in the low bits of a sort key
_PLACE = (1 << _SPAN_BITS) - 1


@dataclass(frozen=True, slots=True)
class FrameRuns(Sequence):
    """Per session, its connection's frames in [first, last] as alternating run lengths,
    own frames first (own, others, own, ..., own); [] when they are the whole span (one
    run), None when the walk did not find its first and last frame (its frames are not
    known).  Held as two flat arrays, not a list per session: a relay's 100,000 sessions
    of 50 frames each would otherwise keep millions of Python ints."""

    known: np.ndarray  # bool, per session
    start: np.ndarray  # int64, per session and one more: where its items begin in `items`
    items: np.ndarray  # the run lengths of all sessions, one after another
    # ICMP errors quoting a session's connection before its first or after its last frame
    # (tshark's stream holds them too): their sessions and frames, by session then frame
    beyond_session: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    beyond_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.known)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not self.known[i]:
            return None
        return self.items[self.start[i]:self.start[i + 1]].tolist()

    def beyond(self, i: int) -> list[int]:
        """Session `i`'s frames outside its first..last frame (ICMP errors), in order."""
        lo, hi = np.searchsorted(self.beyond_session, [i, i + 1])
        return self.beyond_frame[lo:hi].tolist()


def _ordered(sessions: Sequence[Session]) -> tuple[np.ndarray, np.ndarray, dict]:
    """The sessions in order of (endpoint pair, first frame): that order, the pair of each
    (its number), and each endpoint pair's number."""
    pair_of: dict[frozenset[str], int] = {}
    pair = np.array([pair_of.setdefault(frozenset((s.client, s.server)), len(pair_of))
                     for s in sessions], np.int64)
    first = np.array([s.first_frame for s in sessions], np.int64)
    order = np.lexsort((first, pair))
    return order, pair[order], pair_of


def frame_runs(path: str | os.PathLike, sessions: Sequence[Session], ports: Iterable[int], *,
               backend: str = "auto",
               then: Sequence[str | os.PathLike] = (),
               window: int = DEFAULT_WINDOW, read_on: bool = True,
               skip: Mapping[str, int] | None = None) -> FrameRuns:
    """Per session of `path` (in order), its connection's frames within its first and last
    frame (a `FrameRuns`); frames are Wireshark's numbers (those of `then`, the ring-buffer
    files a session goes on into, numbered on from the file before's last).  A frame of
    a connection is its session's whose span holds it, the latest begun of its endpoints'
    (as tshark's stream).  The walk reads on past the last session's last frame to the
    last file's end, an ICMP error quoting a connection being in its stream however late
    it comes, unless not `read_on` (the scan counted no such error in the files: then it
    stops there).  Past that frame only the errors are looked at.  `skip`: files of `then`
    not read, only numbered on by the frames given (the scan's count), where neither a
    session's frame nor an ICMP error about a selected port lies."""
    n = len(sessions)
    if not n:
        return FrameRuns(np.zeros(0, bool), np.zeros(1, np.int64), np.zeros(0, np.int64))
    ports = frozenset(ports)
    order, pair_sorted, pair_of = _ordered(sessions)
    first = np.array([s.first_frame for s in sessions], np.int64)
    last = np.array([s.last_frame for s in sessions], np.int64)
    key_sorted = pair_sorted << 40 | first[order]
    end = int(last.max())
    flows = FlowTable()
    flow_pair = np.full(64, -1, np.int64)  # flow id -> its endpoints' pair number, -1: none
    known_flows = 0
    keys: list[np.ndarray] = []  # per batch: session << _SPAN_BITS | place in its span
    beyond: list[tuple[np.ndarray, np.ndarray]] = []  # quoting errors outside their span
    before = seen = 0

    def share(frame_no: np.ndarray, flow: np.ndarray) -> None:
        nonlocal flow_pair, known_flows
        if len(flows.keys) > known_flows:
            if len(flows.keys) > len(flow_pair):
                flow_pair = np.concatenate([flow_pair, np.full(len(flows.keys), -1, np.int64)])
            for fid in range(known_flows, len(flows.keys)):
                k = flows.keys[fid]
                flow_pair[fid] = pair_of.get(frozenset((endpoint_text(k.a_addr, k.a_port),
                                                        endpoint_text(k.b_addr, k.b_port))),
                                             -1)
            known_flows = len(flows.keys)
        keys.append(_place(frame_no + before, flow, flow_pair, key_sorted, order, first,
                           last))

    def quoted(frame_no: np.ndarray, flow: np.ndarray) -> None:
        share(frame_no, flow)
        beyond.append(_beyond(frame_no + before, flow, flow_pair, key_sorted, order, first,
                              last))

    files = (path, *then)
    for k, each in enumerate(files):
        if k and skip and each in skip:
            before += skip[each]
            continue
        with open_capture(each, backend=backend, window=window) as cap:
            for sel in iter_selected(cap, ports, flows=flows, quoted=quoted):
                if seen < end:  # past every span only the ICMP errors (`quoted`) count
                    share(sel.frame_no, sel.flow)
                if len(sel.frame_no):
                    seen = max(seen, int(sel.frame_no.max()) + before)
                if seen >= end and not read_on:
                    break
        if seen >= end and not read_on:
            break
        if k + 1 < len(files):
            before += _frames_in(each, backend)
    runs = _runs(np.concatenate(keys) if keys else np.zeros(0, np.int64), first, last)
    if not beyond:
        return runs
    b_sess = np.concatenate([x for x, _ in beyond])
    b_frame = np.concatenate([y for _, y in beyond])
    o = np.lexsort((b_frame, b_sess))
    return FrameRuns(runs.known, runs.start, runs.items, b_sess[o], b_frame[o])


def _place(numbers: np.ndarray, flow: np.ndarray, flow_pair: np.ndarray,
           key_sorted: np.ndarray, order: np.ndarray, first: np.ndarray,
           last: np.ndarray) -> np.ndarray:
    """A batch's frames of the sessions' connections as sort keys (session, place in its
    span): one binary search of the sessions by (endpoint pair, first frame) per frame,
    so a batch costs its length's logarithm per frame whatever its sessions' count."""
    pair = np.where(flow >= 0, flow_pair[np.maximum(flow, 0)], -1)  # -1: an IP fragment's
    mine = np.flatnonzero(pair >= 0)
    if not len(mine):
        return np.zeros(0, np.int64)
    pair, numbers = pair[mine], numbers[mine]
    at = np.searchsorted(key_sorted, pair << 40 | numbers, side="right") - 1
    ok = at >= 0
    at = np.maximum(at, 0)
    s = order[at]
    ok &= (key_sorted[at] >> 40 == pair) & (numbers <= last[s])
    s, numbers = s[ok], numbers[ok]
    return s << _SPAN_BITS | (numbers - first[s])


def _beyond(numbers: np.ndarray, flow: np.ndarray, flow_pair: np.ndarray,
            key_sorted: np.ndarray, order: np.ndarray, first: np.ndarray,
            last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sessions, frames) of a batch's ICMP errors quoting a session's connection outside
    every span of its endpoints' sessions: the latest begun before it, else (before the
    first SYN) the first, as tshark's stream has them."""
    pair = np.where(flow >= 0, flow_pair[np.maximum(flow, 0)], -1)
    mine = np.flatnonzero(pair >= 0)
    pair, numbers = pair[mine], numbers[mine]
    at = np.searchsorted(key_sorted, pair << 40 | numbers, side="right") - 1
    lead = np.searchsorted(key_sorted, pair << 40, side="left")  # the pair's first session
    at = np.where((at >= 0) & (key_sorted[np.maximum(at, 0)] >> 40 == pair), at, lead)
    s = order[np.minimum(at, len(order) - 1)]
    out = (numbers < first[s]) | (numbers > last[s])
    return s[out], numbers[out]


def _runs(keys: np.ndarray, first: np.ndarray, last: np.ndarray) -> FrameRuns:
    """`FrameRuns` of the frames `keys` gives (each session's, in any order, maybe twice;
    sorted here in place).  Whole-array steps, each array let go once used: a relay's
    millions of frames cost a few of their arrays at once, not a Python object each."""
    n = len(first)
    keys.sort()
    if len(keys):  # a frame twice (fragments' rows) once
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    # a run of a session's frames begins where the key is not the one before plus one (a
    # session's place runs below 2**32, so a new session breaks a run too)
    new = np.ones(len(keys), bool)
    np.not_equal(keys[1:], keys[:-1] + 1, out=new[1:])
    begins = np.flatnonzero(new)
    del new
    run_sess = keys[begins] >> _SPAN_BITS
    lo_place = keys[begins] & _PLACE
    hi_place = keys[np.r_[begins[1:] - 1, len(keys) - 1] if len(keys) else begins] & _PLACE
    del keys, begins
    first_run = np.r_[True, run_sess[1:] != run_sess[:-1]] if len(run_sess) else run_sess > 0
    # known: the session's first frame and last frame are its own
    lo = np.full(n, -1, np.int64)
    hi = np.full(n, -1, np.int64)
    lo[run_sess[first_run]] = lo_place[first_run]
    hi[run_sess[np.r_[first_run[1:], True]]] = hi_place[np.r_[first_run[1:], True]]
    known = (lo == 0) & (hi == last - first)
    del lo, hi
    count = np.bincount(run_sess, minlength=n)
    # items per session: own, then (gap, own) for each further run; none when one run
    size = np.where(known & (count > 1), 2 * count - 1, 0)
    start = np.zeros(n + 1, np.int64)
    np.cumsum(size, out=start[1:])
    keep = size[run_sess] > 0
    # the k-th run of a session (from 0): its own frames at item 2k, the gap before at 2k-1
    idx = np.arange(len(run_sess))
    at = start[run_sess] + 2 * (idx - np.maximum.accumulate(np.where(first_run, idx, 0)))
    del idx
    items = np.zeros(int(start[-1]), np.int64 if n and int((last - first).max()) >= 2**31
                     else np.int32)
    items[at[keep]] = (hi_place - lo_place + 1)[keep]
    later = keep & ~first_run
    items[at[later] - 1] = lo_place[later] - hi_place[np.flatnonzero(later) - 1] - 1
    return FrameRuns(known, start, items)


def _frames_in(path: str | os.PathLike, backend: str) -> int:
    """How many frames a file holds (a ring-buffer file none of whose frames was selected)."""
    n = 0
    with open_capture(path, backend=backend) as cap:
        for win in cap.windows():
            if len(win.frame_no):
                n = int(win.frame_no[-1])
    return n
