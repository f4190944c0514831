"""Which log conversation tells the story of which capture session.

A log and a capture see the same connection from two places and two clocks, so the join
works in two steps: first it estimates, per log file, how far the log host's clock is from the
capture's (the *skew*) from pairs that cannot be anything else; then it pairs every
conversation with the closest session that fits, after correcting its times by that skew.

Rules, and why:

- **Exact endpoints** (basis ``"endpoints"``).  A log that gives both ends with ports (Exchange
  protocol logs) names one TCP connection: its (local, remote) must equal the session's
  (client, server) in the order ``host_role`` implies (the writer was the client: local is
  the client; it was the server: local is the server), and its start, corrected by the skew,
  must lie within ``tolerance_s`` of the session's first frame.  Ports are reused, so time
  still decides between connections with the same four-tuple; the closest wins.
- **Time and peer** (basis ``"time-and-peer"``).  A log that names only the peer (Postfix,
  message traces: IP, perhaps its port) is matched to a session with that peer address on
  the same side (the server for a log written by the client, the client for one written by
  the server), whose span overlaps the conversation's widened by ``window_s`` on each side.
  A log that gives its own address is held to it when the capture shows that address on
  any session (the capture point is then on the log host's side of any NAT): the session
  must carry it, and its port when logged; a log with both ends is then judged by the exact
  rule alone.  When the capture never shows the log's own address (a NAT between the log
  host and the capture point), a log with both ends is matched by time and peer too.
- **Skew** per log file: the median of (log start - capture start) over unambiguous pairs,
  so a few wrong pairs cannot move it: exact endpoints with exactly one candidate each way
  within ``MAX_SKEW_S``; where busy servers reuse ports so that none is, the densest
  cluster of exact-endpoint offsets when it clearly stands out (`_cluster`); if a file has
  neither, a conversation and a session of the same peer that are each the other's only
  candidate within ``MAX_SKEW_S``.  No pair: 0.  ``skew_s``
  given overrides the estimate for every file (``Skew.given``).  ``Skew.spread_ns`` is how far
  the pairs disagree (largest minus smallest offset): a wide spread means the pairs are not
  one clock's offset and the joins deserve doubt.
- **One session per conversation, several conversations per session.**  A conversation
  matches at most the one session closest in time (|delta|, then capture file and session
  number); a session may gather matches from several logs (a send log and a message trace)
  and, for message logs, several messages.
- **Input order does not matter.**  Conversations with the same file and first line are one
  conversation (a log given twice); every output is sorted: matches by the conversation's
  (start, file, line), unmatched conversations likewise, unmatched sessions by (file, number),
  skews by file.

Defaults: ``DEFAULT_TOLERANCE_S`` (300 s) for exact endpoints, generous because the endpoints
already decide and clocks drift; ``DEFAULT_WINDOW_S`` (10 s) for time and peer, narrow because
time is then most of the evidence; ``MAX_SKEW_S`` (12 h) covers a log written in local time
read as UTC.  Cost: O((S + C) log(S + C)) with dict and bisect indexes.
"""

from __future__ import annotations

import datetime as dt
import gc
import ipaddress
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import Any

from ..options import DEFAULT_JOIN_TOLERANCE_S, DEFAULT_JOIN_WINDOW_S
from ..pickling import compact
from ..session import Session
from .records import LogConversation

__all__ = ["DEFAULT_TOLERANCE_S", "DEFAULT_WINDOW_S", "MAX_SKEW_S", "JoinResult", "Match",
           "SessionKey", "Skew", "join", "normal_ip"]

DEFAULT_TOLERANCE_S = DEFAULT_JOIN_TOLERANCE_S  # exact endpoints: |delta| allowed after skew
# time and peer: the conversation's span, widened by this, overlaps the session's
DEFAULT_WINDOW_S = DEFAULT_JOIN_WINDOW_S
MAX_SKEW_S = 12 * 3600.0  # how far skew estimation looks for unambiguous pairs

MESSAGE_KINDS = frozenset({"message-tracking", "message-trace"})
_NS = 1_000_000_000


def normal_ip(text: str) -> str:
    """An address as the capture prints it: brackets and zone dropped, an IPv4-mapped IPv6
    address as IPv4, IPv6 compressed and lower case (RFC 5952); other text unchanged."""
    t = text.strip().strip("[]").partition("%")[0]
    try:
        addr = ipaddress.ip_address(t)
    except ValueError:
        return text
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _split_endpoint(text: str) -> tuple[str, int]:
    """("ip", port) of "ip:port" or "[v6]:port"."""
    host, _, port = text.rpartition(":")
    return normal_ip(host), int(port)


@compact
@dataclass(frozen=True, slots=True)
class SessionKey:
    """What a capture session offers the join: its endpoints and its span, by the capture's
    clock, and where to find it (capture file, session number, first frame)."""

    file: str
    number: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start_ns: int
    end_ns: int
    first_frame: int

    @classmethod
    def of(cls, s: Session, file: str) -> SessionKey:
        # a log names the connection's ends, whatever TURN made of the roles (roles_turned)
        client, server = (s.server, s.client) if s.roles_turned else (s.client, s.server)
        cip, cport = _split_endpoint(client)
        sip, sport = _split_endpoint(server)
        return cls(file, s.number, cip, cport, sip, sport, s.first_ts_ns, s.last_ts_ns,
                   s.first_frame)


@compact
@dataclass(frozen=True, slots=True)
class Match:
    """A conversation joined to a session, and on what grounds."""

    key: SessionKey
    conversation: LogConversation
    basis: str  # "endpoints" | "time-and-peer"
    delta_ns: int  # conversation.start_ns - skew - key.start_ns

    def to_dict(self) -> dict[str, Any]:
        c = self.conversation
        return {
            "source": c.kind,
            "file": c.file,
            "line": c.first.line,
            "time": iso_utc(c.start_ns),
            "kind": "message" if c.kind in MESSAGE_KINDS else "connection",
            "basis": self.basis,
            "delta_s": round(self.delta_ns / _NS, 6),
            "facts": c.to_dict(),
        }


def iso_utc(ns: int) -> str:
    """ISO 8601 UTC with microseconds, as "2026-03-10T09:15:02.118000Z"."""
    t = dt.datetime.fromtimestamp(ns // _NS, dt.UTC).replace(microsecond=ns % _NS // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@compact
@dataclass(frozen=True, slots=True)
class Skew:
    """A log file's clock minus the capture's, and how it was found."""

    file: str
    ns: int
    pairs: int  # unambiguous pairs it was estimated from (0 when given or none found)
    spread_ns: int  # largest minus smallest offset among those pairs
    given: bool  # set by the caller (skew_s), not estimated

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "skew_s": self.ns / _NS, "pairs": self.pairs,
                "spread_s": self.spread_ns / _NS, "given": self.given}


@dataclass(frozen=True)
class JoinResult:
    """Every conversation either matched or listed unmatched; every session likewise."""

    matches: Mapping[tuple[str, int], tuple[Match, ...]]  # (capture file, session number) ->
    unmatched_conversations: tuple[LogConversation, ...]
    unmatched_sessions: tuple[SessionKey, ...]
    skews: tuple[Skew, ...]  # one per log file with conversations, by file


# --- indexes -------------------------------------------------------------------------------

class _Group:
    """Sessions sharing a key, sorted by start, with the running maximum of their ends (so a
    window query can stop walking back once no earlier session reaches the window), and, for
    a peer group, each session's own-side address and peer port."""

    __slots__ = ("ends", "keys", "own", "peer_port", "peer_ports", "reach", "starts")

    def __init__(self, keys: list[SessionKey], side: str | None = None) -> None:
        if len(keys) > 1:
            keys.sort(key=_session_order)
        self.keys = keys
        self.starts = [k.start_ns for k in keys]
        if side is None:  # an exact four-tuple: only starts are asked
            return
        self.ends = [k.end_ns for k in keys]
        self.reach = list(accumulate(self.ends, max))
        if side == "server":
            self.own = [(k.client_ip, k.client_port) for k in keys]
            self.peer_ports = [k.server_port for k in keys]
        else:
            self.own = [(k.server_ip, k.server_port) for k in keys]
            self.peer_ports = [k.client_port for k in keys]
        ports = set(self.peer_ports)
        self.peer_port = ports.pop() if len(ports) == 1 else None  # the one, if all share it


class _PeerIndex:
    """Peer groups built on first use: a log of one side never pays for the other's."""

    __slots__ = ("built", "lists")

    def __init__(self, lists: dict[tuple[str, str], list[SessionKey]]) -> None:
        self.lists, self.built = lists, {}

    def __contains__(self, key: object) -> bool:
        return key in self.lists

    def __getitem__(self, key: tuple[str, str]) -> _Group:
        g = self.built.get(key)
        if g is None:
            g = self.built[key] = _Group(self.lists[key], key[0])
        return g

    def get(self, key: tuple[str, str]) -> _Group | None:
        return self[key] if key in self.lists else None


def _session_order(k: SessionKey) -> tuple[int, str, int]:
    return (k.start_ns, k.file, k.number)


class _Conv:
    """A conversation's normalised addresses in the session's terms, and what a session of
    its peer must also agree with (see the rules): `own` None when nothing, else the log's
    own (address, port or None) when the capture saw that address."""

    __slots__ = ("c", "exact", "own", "peer", "peer_port", "start")

    def __init__(self, c: LogConversation, memo: dict[str, str], seen: set[str]) -> None:
        self.c, self.start = c, c.start_ns
        local = c.local_ip
        if local is not None:
            local = memo.get(local) or memo.setdefault(local, normal_ip(local))
        remote = c.remote_ip
        if remote is not None:
            remote = memo.get(remote) or memo.setdefault(remote, normal_ip(remote))
        side = "server" if c.host_role == "client" else "client"
        self.peer = None if remote is None else (side, remote)
        self.peer_port = c.remote_port
        self.exact = None
        self.own = None
        if local is not None and local in seen:
            self.own = (local, c.local_port)
            if remote is not None and c.local_port is not None and c.remote_port is not None:
                self.exact = ((local, c.local_port, remote, c.remote_port) if side == "server"
                              else (remote, c.remote_port, local, c.local_port))
                self.peer = None  # the capture sees this host: the exact rule alone decides

    def fits(self, g: _Group, i: int) -> bool:
        """Session i of peer group g agrees with the peer port and own address given."""
        if self.peer_port is not None and self.peer_port != g.peer_ports[i]:
            return False
        own = self.own
        if own is None:
            return True
        ip, port = g.own[i]
        return own[0] == ip and (own[1] is None or own[1] == port)


# --- skew ----------------------------------------------------------------------------------

def _median(xs: list[int]) -> int:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) // 2


def _offsets(convs: list[_Conv], by_exact: dict, by_peer: _PeerIndex, max_ns: int
             ) -> list[int]:
    """Log start minus capture start of a file's unambiguous pairs: exact endpoints first,
    else same peer; each pair's two halves are each other's only candidate within max_ns."""
    mine: dict[Any, list[int]] = {}
    for v in convs:
        if v.exact is not None and v.exact in by_exact:
            mine.setdefault(v.exact, []).append(v.start)
    exact = [v for v in convs if v.exact in mine]
    out = _pairs(exact, mine, by_exact, max_ns, True) or _cluster(exact, by_exact, max_ns)
    if out:
        return out
    mine = {}
    for v in convs:
        if v.peer is not None and v.peer in by_peer:
            mine.setdefault(v.peer, []).append(v.start)
    return _pairs([v for v in convs if v.peer in mine], mine, by_peer, max_ns, False)


def _pairs(convs: list[_Conv], mine: dict, index: dict | _PeerIndex, max_ns: int,
           exact: bool) -> list[int]:
    groups = {}
    for k, starts in mine.items():
        starts.sort()
        groups[k] = (starts, index[k])
    out = []
    for v in convs:
        starts, g = groups[v.exact if exact else v.peer]
        t = v.start
        lo = bisect_left(g.starts, t - max_ns)
        hi = bisect_right(g.starts, t + max_ns)
        if hi - lo > 1 and (exact or v.own is None and v.peer_port in (None, g.peer_port)):
            continue  # every session there fits: ambiguous, without asking each
        one = None
        for i in range(lo, hi):
            if exact or v.fits(g, i):
                if one is not None:
                    one = -1
                    break
                one = i
        if one is None or one < 0:
            continue
        s = g.starts[one]
        if bisect_right(starts, s + max_ns) - bisect_left(starts, s - max_ns) == 1:
            out.append(t - s)
    return out


_CLUSTER_NS = 2 * _NS  # how closely the offsets of true pairs agree (log line vs SYN)
_CANDIDATES = 8  # per conversation, when ports recur within MAX_SKEW_S


def _densest(offsets: list[int], skip: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """(count, first, last): the most offsets within _CLUSTER_NS of each other, as an index
    range of the sorted `offsets` (of those outside the value range `skip`, if given)."""
    xs = offsets if skip is None else [x for x in offsets if not skip[0] <= x <= skip[1]]
    best, lo = (0, 0, -1), 0
    for hi, x in enumerate(xs):
        while x - xs[lo] > _CLUSTER_NS:
            lo += 1
        if hi - lo + 1 > best[0]:
            best = (hi - lo + 1, lo, hi)
    return best


def _cluster(convs: list[_Conv], by_exact: dict, max_ns: int) -> list[int]:
    """When busy servers reuse ports within MAX_SKEW_S no pair is unambiguous; the true skew
    still stands out: every captured connection gives one offset near it, while the offsets
    to other connections with a recurring four-tuple scatter.  The densest cluster counts
    when it holds at least 3 offsets and 3 times as many as any other cluster."""
    offsets = []
    for v in convs:
        g = by_exact[v.exact]
        t = v.start
        lo = bisect_left(g.starts, t - max_ns)
        hi = min(bisect_right(g.starts, t + max_ns), lo + _CANDIDATES)
        offsets += [t - g.starts[i] for i in range(lo, hi)]
    offsets.sort()
    n, first, last = _densest(offsets)
    if n < 3:
        return []
    a, b = offsets[first], offsets[last]
    rival = _densest(offsets, (a - _CLUSTER_NS, b + _CLUSTER_NS))[0]
    return offsets[first:last + 1] if n >= 3 * rival else []


# --- matching ------------------------------------------------------------------------------

def _exact_match(v: _Conv, g: _Group, skew: int, tol: int) -> tuple[SessionKey, int] | None:
    t = v.start - skew
    starts = g.starts
    if len(starts) == 1:
        d = t - starts[0]
        return (g.keys[0], d) if -tol <= d <= tol else None
    best = None
    for i in range(bisect_left(starts, t - tol), bisect_right(starts, t + tol)):
        d = t - starts[i]
        if best is None or abs(d) < abs(best[1]):  # sorted by (start, file, number): ties
            best = (g.keys[i], d)                   # keep the first
    return best


def _peer_match(v: _Conv, g: _Group, skew: int, win: int) -> tuple[SessionKey, int] | None:
    """The session closest in start whose span overlaps the widened conversation's.  To the
    right of the target, the first session starting within the window overlaps; to the left,
    walk back while some earlier session still reaches the window."""
    c = v.c
    target = v.start - skew
    end = c.end_ns if c.end_ns > v.start else v.start
    lo, hi = target - win, end - skew + win
    starts = g.starts
    best, dist = -1, 0
    pos = bisect_left(starts, target)
    for i in range(pos, bisect_right(starts, hi)):
        if v.fits(g, i):
            best, dist = i, starts[i] - target
            break
    ends, reach = g.ends, g.reach
    i = pos - 1
    while i >= 0 and reach[i] >= lo:
        d = target - starts[i]
        if best >= 0 and d > dist:
            break
        if ends[i] >= lo and v.fits(g, i):
            best, dist = i, d  # equal distance: the earlier in (start, file, number) order
        i -= 1
    if best < 0:
        return None
    k = g.keys[best]
    return k, target - k.start_ns


def join(sessions: Iterable[SessionKey], conversations: Iterable[LogConversation], *,
         tolerance_s: float = DEFAULT_TOLERANCE_S, window_s: float = DEFAULT_WINDOW_S,
         skew_s: float | None = None) -> JoinResult:
    """Join log conversations to capture sessions by the rules in this module's docstring."""
    # Hundreds of thousands of small index objects, none of them in a reference cycle: the
    # collector's passes over them (triggered by the allocations alone) would cost as much
    # as the join, so it waits until the join is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _join(sessions, conversations, tolerance_s, window_s, skew_s)
    finally:
        if collecting:
            gc.enable()


def _join(sessions: Iterable[SessionKey], conversations: Iterable[LogConversation],
          tolerance_s: float, window_s: float, skew_s: float | None) -> JoinResult:
    keys = {(k.file, k.number): k for k in sessions}
    by_exact_l: dict[tuple, list[SessionKey]] = {}
    by_peer_l: dict[tuple, list[SessionKey]] = {}
    seen: set[str] = set()
    for k in keys.values():
        by_exact_l.setdefault((k.client_ip, k.client_port, k.server_ip, k.server_port),
                              []).append(k)
        by_peer_l.setdefault(("server", k.server_ip), []).append(k)
        by_peer_l.setdefault(("client", k.client_ip), []).append(k)
        seen.add(k.client_ip)
        seen.add(k.server_ip)
    by_exact = {t: _Group(ks) for t, ks in by_exact_l.items()}
    by_peer = _PeerIndex(by_peer_l)

    unique: dict[tuple[str, int], LogConversation] = {}
    for c in conversations:
        had = unique.setdefault((c.file, c.first.line), c)
        if had is not c and had != c and _conv_order(c) < _conv_order(had):
            unique[(c.file, c.first.line)] = c
    memo: dict[str, str] = {}
    per_file: dict[str, list[_Conv]] = {}
    for c in unique.values():
        per_file.setdefault(c.file, []).append(_Conv(c, memo, seen))

    tol, win, max_ns = int(tolerance_s * _NS), int(window_s * _NS), int(MAX_SKEW_S * _NS)
    found: dict[tuple[str, int], list[Match]] = {}
    unmatched: list[LogConversation] = []
    skews = []
    for file in sorted(per_file):
        convs = per_file[file]
        if skew_s is not None:
            skew = Skew(file, round(skew_s * _NS), 0, 0, True)
        else:
            offsets = _offsets(convs, by_exact, by_peer, max_ns)
            skew = Skew(file, _median(offsets) if offsets else 0, len(offsets),
                        max(offsets) - min(offsets) if offsets else 0, False)
        skews.append(skew)
        ns = skew.ns
        for v in convs:
            hit = None
            if v.exact is not None:
                g = by_exact.get(v.exact)
                if g is not None and (hit := _exact_match(v, g, ns, tol)) is not None:
                    k, delta = hit
                    found.setdefault((k.file, k.number), []).append(
                        Match(k, v.c, "endpoints", delta))
                    continue
            elif v.peer is not None:
                g = by_peer.get(v.peer)
                if g is not None and (hit := _peer_match(v, g, ns, win)) is not None:
                    k, delta = hit
                    found.setdefault((k.file, k.number), []).append(
                        Match(k, v.c, "time-and-peer", delta))
                    continue
            unmatched.append(v.c)
    matches = {ident: (ms[0],) if len(ms) == 1 else tuple(sorted(ms, key=_match_order))
               for ident, ms in sorted(found.items())}
    return JoinResult(
        matches=matches,
        unmatched_conversations=tuple(sorted(unmatched, key=_conv_order)),
        unmatched_sessions=tuple(keys[i] for i in sorted(keys) if i not in matches),
        skews=tuple(skews),
    )


_conv_order = attrgetter("start_ns", "file", "first.line", "end_ns", "last.line")


def _match_order(m: Match) -> tuple[int, str, int, int, int]:
    return _conv_order(m.conversation)
