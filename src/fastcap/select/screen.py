"""Select before decoding: which rows of a window need their headers decoded at all.

Most frames of a big capture have a common layout (`layouts`) and are not on a selected port:
for them `stats` needs only a few counts, and the scan nothing.  So the rows of a common layout
are checked and counted column-wise, and headers are built only for the rows that matter: TCP
rows of a common layout on a selected port and UDP rows on a tunnel port (from the fixed-offset
reads), and every row of another layout (ICMP errors, fragments, other link types, damaged
headers...) through the general decoder.  The decoded rows plus the counts give exactly what
decoding every row would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode import Headers, _as_linktype, _check, _decode_general, fill_common
from .flows import port_lut
from .layouts import Layout, parts
from .tunnels import GENEVE_PORT, VXLAN_PORT, Opened, open_tunnels

__all__ = ["TUNNEL_PORTS", "Ports", "Screened", "screen"]

_FEW_PORTS = 4  # up to this many selected ports are compared; more go through the table
# UDP ports whose datagrams Wireshark opens as a tunnel of Ethernet frames (cloud traffic
# mirrors): their rows are decoded, and opened (`tunnels`).
TUNNEL_PORTS = {VXLAN_PORT: "VXLAN", GENEVE_PORT: "Geneve"}


@dataclass(frozen=True, slots=True)
class Screened:
    """One window, split: `rows` with their headers, and counts of all other rows.

    Every other row has a common layout and is not a TCP row on a selected port nor a UDP row on
    a tunnel port: its status is OK, it is no fragment, and it is TCP or UDP with both ports
    captured.  `headers` are the outermost headers of `rows` (what `stats` counts); `opened`,
    when some rows are tunnels, their innermost (what is selected)."""

    rows: np.ndarray  # int64 window rows, ascending
    headers: Headers  # aligned with rows
    ipv4: int  # the other rows: IPv4 ones
    ipv6: int
    tcp: int
    udp: int
    opened: Opened | None = None

    @property
    def inner(self) -> Headers:
        """The headers selection reads: each row's innermost frame."""
        return self.headers if self.opened is None else self.opened.headers


@dataclass(frozen=True, slots=True)
class Ports:
    """The selected ports, matched against port words as loaded (bytes swapped).  Built once
    per walk (`Ports.of`): `screen` runs per window."""

    few: tuple[int, ...] | None  # up to _FEW_PORTS ports, bytes swapped: compared
    table: np.ndarray | None  # else a 65536-entry table indexed by the swapped port

    @classmethod
    def of(cls, lut: np.ndarray) -> Ports:
        """From flows.port_lut's table."""
        ports = np.flatnonzero(lut)
        if len(ports) <= _FEW_PORTS:
            return cls(tuple(((ports & 0xFF) << 8 | ports >> 8).tolist()), None)
        return cls(None, lut.reshape(256, 256).T.reshape(-1).copy())

    def match(self, words: np.ndarray) -> np.ndarray:
        """Rows whose port word (contiguous uint32 as loaded) holds a selected source or
        destination port."""
        pair = words.view(np.uint16)  # source, destination, source, ...
        if self.table is not None:
            eq = np.take(self.table, pair)
        elif self.few:
            eq = pair == self.few[0]
            for p in self.few[1:]:
                eq |= pair == p
        else:
            return np.zeros(len(words), bool)
        return eq.view(np.uint16) != 0  # either of the row's two flags


_TUNNELS = Ports.of(port_lut(TUNNEL_PORTS))


def screen(slab: np.ndarray, caplen: np.ndarray, linktype: np.ndarray,
           ports: Ports | np.ndarray, *, buf: np.ndarray | None = None,
           offset: np.ndarray | None = None, orig_len: np.ndarray | None = None) -> Screened:
    """Split a window by the selected `ports` (a Ports, or flows.port_lut's table); see the
    module docstring.  `buf`, `offset` and `orig_len` are decode_headers': rows whose headers
    run past the slab are re-read."""
    slab, cap = _check(slab, caplen)
    n = len(cap)
    lt = _as_linktype(linktype, n)
    if not isinstance(ports, Ports):
        ports = Ports.of(ports)
    need = np.ones(n, bool)
    picked: dict[Layout, list[np.ndarray]] = {}  # window rows to decode, by layout
    counts = {4: 0, 6: 0, "tcp": 0, "udp": 0}
    for part in parts(slab, cap, lt):
        hit = np.flatnonzero(ports.match(part.ports))
        ok_tcp = part.ok & part.tcp
        at = hit[ok_tcp[hit]]  # TCP rows of this layout on a selected port: decoded
        n_ok, n_tcp = int(np.count_nonzero(part.ok)), int(np.count_nonzero(ok_tcp))
        n_tun = 0
        if n_ok > n_tcp:  # UDP rows on a tunnel port: decoded too, to be counted as such
            tun = np.flatnonzero(_TUNNELS.match(part.ports) & part.ok & ~part.tcp)
            if tun.size:
                n_tun, at = len(tun), np.concatenate((at, tun))
        counts[6 if part.layout.v6 else 4] += n_ok - len(at)
        counts["tcp"] += n_tcp - len(at) + n_tun
        counts["udp"] += n_ok - n_tcp - n_tun
        if part.rows is None:  # rows of the layout are counted; the others stay needed
            np.logical_not(part.ok, out=need[part.start:part.start + len(part.ok)])
        else:
            need[part.rows[part.ok]] = False
        if at.size:
            win_rows = part.window_rows(at)
            need[win_rows] = True
            picked.setdefault(part.layout, []).append(win_rows)
    rows = np.flatnonzero(need)
    h = Headers.empty(len(rows))
    common = np.zeros(len(rows), bool)
    for lay, found in picked.items():
        win_rows = np.concatenate(found)
        dst = np.searchsorted(rows, win_rows)
        fill_common(h, dst, slab, win_rows, lay)
        common[dst] = True
    rest = np.flatnonzero(~common)
    if rest.size:
        r = rows[rest]
        off = None if offset is None else np.asarray(offset)[r]
        sub = slab if len(r) == n else slab[r]
        wire = None if orig_len is None else np.asarray(orig_len)[r]
        h._put(rest, _decode_general(sub, cap[r], lt[r], buf, off, wire))
    opened = open_tunnels(h, slab, cap, lt, rows, buf=buf, offset=offset, orig_len=orig_len)
    return Screened(rows, h, counts[4], counts[6], counts["tcp"], counts["udp"], opened)
